//! The HTTP client towards the upstream API (reqwest): the adapter behind forwarding.
//!
//! Answers are streamed, never read whole: [`Upstream::forward`] returns once the
//! upstream's status and headers are in, with the body as an [`UpstreamBody`] that yields
//! the upstream's chunks as they arrive, so memory does not grow with an answer's size.
//! Two timeouts apply: the route's timeout up to the response head, and [`IDLE_TIMEOUT`]
//! between two chunks of the body; the whole transfer has no cap of its own.
//!
//! Redirects are returned to the browser as they are, never followed with the user's
//! token. This module never logs a token.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::header::HeaderMap;
use http::{Method, StatusCode};
use url::Url;

use crate::domain::forwarding::browser_response_headers;
use crate::platform::dpop::DpopNonces;

/// The longest the upstream may stay silent in the middle of a body before the answer is
/// broken off. It counts only time the BFF waits on the upstream, not time the browser
/// takes to read. Below CloudFront's 60 s origin read timeout of the proxy, which also
/// applies between two packets.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong calling the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream did not send its response head in time.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream could not be reached or broke the connection before its head.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream stopped sending in the middle of a body for [`IDLE_TIMEOUT`].
    #[error("upstream went silent mid-body")]
    IdleTimeout,
    /// The upstream broke the connection in the middle of a body.
    #[error("upstream broke off mid-body: {0}")]
    BrokeOff(String),
}

/// The upstream's answer: status and headers for the browser, and the body still to come.
#[derive(Debug)]
pub struct UpstreamAnswer {
    /// The upstream's status.
    pub status: StatusCode,
    /// The upstream's headers, filtered for the browser (`Content-Length` kept).
    pub headers: HeaderMap,
    /// The body, chunk by chunk.
    pub body: UpstreamBody,
}

/// The HTTP client towards the upstream API.
pub struct Upstream {
    /// The base URL every call stays below.
    pub base: Url,
    client: reqwest::Client,
    head_timeout: Duration,
    /// The last DPoP nonce (RFC 9449 §9) this upstream's origin handed out.
    pub dpop_nonces: DpopNonces,
}

impl Upstream {
    /// A client for `base` that waits at most `head_timeout` for an answer's status and
    /// headers; redirects are returned to the browser as they are, never followed with
    /// the user's token.
    pub fn new(base: Url, head_timeout: Duration) -> Result<Self, UpstreamError> {
        let client = crate::platform::trust::with_extra_roots(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3).min(head_timeout))
            .build()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        Ok(Self {
            base,
            client,
            head_timeout,
            dpop_nonces: DpopNonces::default(),
        })
    }

    /// Sends one call and returns the upstream's answer for the browser as soon as its
    /// head is in; the body follows through [`UpstreamAnswer::body`].
    pub async fn forward(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let sent = self.client.request(method, url).headers(headers).body(body).send();
        let response = tokio::time::timeout(self.head_timeout, sent)
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(upstream_error)?;
        let status = response.status();
        let headers = browser_response_headers(response.headers());
        let chunks = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| UpstreamError::BrokeOff(e.without_url().to_string())));
        Ok(UpstreamAnswer {
            status,
            headers,
            body: UpstreamBody::new(chunks, IDLE_TIMEOUT),
        })
    }
}

fn upstream_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unreachable(e.without_url().to_string())
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// An upstream body on its way: the chunks as the upstream sends them, ended by an error
/// when the upstream breaks off or stays silent for longer than the idle timeout (so a
/// short body is never passed off as complete). Holds one chunk at a time.
pub struct UpstreamBody {
    chunks: Chunks,
    idle: Duration,
    /// When waiting for the next chunk gives up; set when the wait starts.
    deadline: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    done: bool,
}

impl UpstreamBody {
    /// A body of `chunks`, broken off after `idle` without a chunk while it is read.
    pub fn new(chunks: impl Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static, idle: Duration) -> Self {
        Self {
            chunks: Box::pin(chunks),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            done: false,
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.waiting {
            // The idle clock runs only while the BFF waits on the upstream: time the
            // browser takes to read the previous chunk does not count.
            let at = tokio::time::Instant::now() + self.idle;
            self.deadline.as_mut().reset(at);
            self.waiting = true;
        }
        match self.chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.waiting = false;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "upstream answer broken off");
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!(
                        idle_secs = self.idle.as_secs(),
                        "upstream went silent mid-body; answer broken off"
                    );
                    self.done = true;
                    Poll::Ready(Some(Err(UpstreamError::IdleTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    /// Chunks `a`, then `b` after `pause`.
    fn paused(pause: Duration) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Send {
        stream::iter([Bytes::from_static(b"a"), Bytes::from_static(b"b")])
            .enumerate()
            .then(move |(i, chunk)| async move {
                if i == 1 {
                    tokio::time::sleep(pause).await;
                }
                Ok(chunk)
            })
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_shorter_than_the_idle_timeout_is_waited_out() {
        let mut body = UpstreamBody::new(paused(Duration::from_secs(29)), Duration::from_secs(30));
        assert_eq!(body.next().await.map(|c| c.ok()), Some(Some(Bytes::from_static(b"a"))));
        assert_eq!(body.next().await.map(|c| c.ok()), Some(Some(Bytes::from_static(b"b"))));
        assert!(body.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_silent_for_the_idle_timeout_breaks_the_body_off() {
        let mut body = UpstreamBody::new(paused(Duration::from_secs(31)), Duration::from_secs(30));
        assert!(matches!(body.next().await, Some(Ok(_))));
        assert!(matches!(body.next().await, Some(Err(UpstreamError::IdleTimeout))));
        assert!(body.next().await.is_none(), "nothing after the error");
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_reader_takes_does_not_count_as_idle() {
        let mut body = UpstreamBody::new(paused(Duration::from_secs(20)), Duration::from_secs(30));
        assert!(matches!(body.next().await, Some(Ok(_))));
        // A slow browser: 25 s before it asks for more, then the upstream needs 20 s.
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(matches!(body.next().await, Some(Ok(_))));
    }
}
