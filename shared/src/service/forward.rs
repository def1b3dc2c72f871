//! Forwarding an API call with the user's access token, refreshing it first when due.
//!
//! When the upstream answers 401 to a token the BFF believed valid, the token is
//! refreshed once and the call retried once; the second answer stands, so this never
//! loops. Request bodies are always buffered (Lambda delivers them whole), so every call
//! can be replayed.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use super::refresh::{RefreshError, Refresher};
use super::{Deps, SessionError};
use crate::domain::forwarding::upstream_request_headers;
use crate::domain::session::SessionRecord;
use crate::domain::trace::TraceContext;
use crate::platform::metrics::{self, Event};
use crate::store::{StoreError, StoreKey};
use crate::upstream::{Upstream, UpstreamError};

/// The upstream's answer, as the browser may see it.
#[derive(Debug)]
pub struct Forwarded {
    /// The upstream's status.
    pub status: StatusCode,
    /// The upstream's headers, filtered for the browser.
    pub headers: HeaderMap,
    /// The upstream's body, byte for byte.
    pub body: Bytes,
}

/// Why a call was not forwarded, or its answer not returned.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The session has ended.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// No usable access token.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One call to forward: everything from the browser's request that the upstream gets.
pub struct Call<'a> {
    /// The method.
    pub method: Method,
    /// The upstream URL (already confined below the base).
    pub url: Url,
    /// The browser's headers (filtered here before they leave).
    pub headers: &'a HeaderMap,
    /// The body, byte for byte.
    pub body: Bytes,
    /// The BFF's span in the browser's trace (or a new one).
    pub trace: &'a TraceContext,
    /// The route's name, for the metrics.
    pub route: &'static str,
}

/// Sends `call` with the access token of the session `(key, session)`.
pub async fn forward(
    deps: &Deps<'_>,
    upstream: &Upstream,
    key: &StoreKey,
    session: SessionRecord,
    call: Call<'_>,
) -> Result<Forwarded, ForwardError> {
    let refresher = Refresher::new(deps.store, deps.oidc, deps.clock);
    let token = refresher.usable_access_token(key, session, None).await?;
    let send = |token| {
        let headers = upstream_request_headers(call.headers, &token, call.trace);
        let sent = upstream.forward(call.method.clone(), call.url.clone(), headers, call.body.clone());
        async move {
            let started = Instant::now();
            let answer = sent.await;
            metrics::upstream_latency(call.route, started.elapsed().as_secs_f64() * 1000.0);
            metrics::record(match &answer {
                Ok((status, _, _)) => Event::UpstreamAnswer {
                    route: call.route,
                    status: status.as_u16(),
                },
                Err(_) => Event::UpstreamFailed { route: call.route },
            });
            answer
        }
    };
    let (mut status, mut headers, mut body) = send(token.clone()).await?;

    if status == StatusCode::UNAUTHORIZED {
        // The upstream refused a token we believed valid (revoked, or clocks disagree).
        let session = deps
            .store
            .get_session(key, deps.clock.now())
            .await?
            .ok_or(SessionError::Expired)?;
        if session.refresh_token.is_some() {
            let retry_token = refresher.usable_access_token(key, session, Some(&token)).await?;
            if retry_token != token {
                (status, headers, body) = send(retry_token).await?;
            }
        }
    }
    Ok(Forwarded { status, headers, body })
}
