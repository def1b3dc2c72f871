//! The HTTP client towards the upstream API (reqwest): the adapter behind forwarding.
//!
//! Redirects are returned to the browser as they are, never followed with the user's
//! token. This module never logs a token.

use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, StatusCode};
use url::Url;

use crate::domain::forwarding::browser_response_headers;

/// What can go wrong calling the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream could not be reached or broke the connection.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
}

/// The HTTP client towards the upstream API.
pub struct Upstream {
    /// The base URL every call stays below.
    pub base: Url,
    client: reqwest::Client,
}

impl Upstream {
    /// A client for `base` with the given whole-call timeout; redirects are returned to
    /// the browser as they are, never followed with the user's token.
    pub fn new(base: Url, timeout: Duration) -> Result<Self, UpstreamError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        Ok(Self { base, client })
    }

    /// Sends one call and returns the upstream's answer for the browser.
    pub async fn forward(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), UpstreamError> {
        let response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(upstream_error)?;
        let status = response.status();
        let headers = browser_response_headers(response.headers());
        let body = response.bytes().await.map_err(upstream_error)?;
        Ok((status, headers, body))
    }
}

fn upstream_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unreachable(e.without_url().to_string())
    }
}
