//! The HTTP client towards the upstream API: the adapter behind forwarding.
//!
//! It is hyper's own pooled client over rustls, not reqwest: reqwest's layers (redirects,
//! retries, cookies) each parse the URL again on every call and cost as much CPU per
//! proxied call as the rest of the HTTP exchange, and the proxy needs none of them.
//!
//! Answers are streamed, never read whole: [`Upstream::forward`] returns once the
//! upstream's status and headers are in, with the body as an [`UpstreamBody`] that yields
//! the upstream's chunks as they arrive, so memory does not grow with an answer's size.
//! Two timeouts apply: the route's timeout up to the response head, and [`IDLE_TIMEOUT`]
//! between two chunks of the body; the whole transfer has no cap of its own.
//!
//! A request body goes whole ([`RequestBody::Whole`], what Lambda delivers) or as a
//! stream ([`RequestBody::Streamed`], what `bff-local` passes on for large uploads). A
//! streamed body is sent as the browser sends it, with the same idle timeout between two
//! chunks, and the head timeout starts only once it is all sent: an upload takes as long
//! as it takes. A browser that breaks its upload off breaks the upstream call off too
//! (the upstream never gets a shorter body that looks complete).
//!
//! Redirects are returned to the browser as they are, never followed with the user's
//! token. This module never logs a token.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::header::HeaderMap;
use http::{Method, StatusCode, Uri};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::domain::forwarding::browser_response_headers;
use crate::platform::dpop::DpopNonces;

/// The longest the upstream may stay silent in the middle of a body before the answer is
/// broken off. It counts only time the BFF waits on the upstream, not time the browser
/// takes to read. Below CloudFront's 60 s origin read timeout of the proxy, which also
/// applies between two packets.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A chunk stream whose items may fail with any error.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// Any error of a byte stream's source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the client sends it.
type SentBody = UnsyncBoxBody<Bytes, BoxError>;

/// The body of a call to the upstream.
pub enum RequestBody {
    /// Bytes held whole; such a call can be sent again.
    Whole(Bytes),
    /// Bytes still arriving from the browser, sent on as they come; sent once only.
    Streamed {
        /// The chunks.
        chunks: ByteStream,
        /// The length the browser declared, if it did (then the upstream gets it too).
        length: Option<u64>,
    },
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Whole(bytes) => f.debug_tuple("Whole").field(&bytes.len()).finish(),
            Self::Streamed { length, .. } => f.debug_struct("Streamed").field("length", length).finish(),
        }
    }
}

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
    /// The browser's streamed request body broke off or went silent, so the call was
    /// broken off too.
    #[error("request body broke off: {0}")]
    RequestBodyBrokeOff(String),
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
    client: Client<HttpsConnector<HttpConnector>, SentBody>,
    head_timeout: Duration,
    /// The last DPoP nonce (RFC 9449 §9) this upstream's origin handed out.
    pub dpop_nonces: DpopNonces,
}

impl Upstream {
    /// A client for `base` that waits at most `head_timeout` for an answer's status and
    /// headers; redirects are returned to the browser as they are, never followed with
    /// the user's token.
    pub fn new(base: Url, head_timeout: Duration) -> Result<Self, UpstreamError> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(3).min(head_timeout)));
        let tls = crate::platform::trust::client_tls_config().map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        // `http` only where the configuration allowed it: loopback upstreams.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
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
        mut headers: HeaderMap,
        body: RequestBody,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let (body, upload): (SentBody, _) = match body {
            RequestBody::Whole(bytes) => (Full::new(bytes).map_err(|never| match never {}).boxed_unsync(), None),
            RequestBody::Streamed { chunks, length } => {
                if let Some(length) = length {
                    headers.insert(http::header::CONTENT_LENGTH, length.into());
                }
                let (outgoing, upload) = Outgoing::new(chunks, IDLE_TIMEOUT);
                let frames = StreamBody::new(outgoing.map(|chunk| chunk.map(Frame::data).map_err(BoxError::from)));
                (frames.boxed_unsync(), Some(upload))
            }
        };
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamError::Unreachable(e.to_string()))?;
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let sent = self.client.request(request);
        // The head timeout counts from the end of the request body: an upload as long as
        // the browser keeps sending, then the route's timeout for the upstream's answer.
        let mut all_sent = upload.clone();
        let head_deadline = async move {
            if let Some(upload) = all_sent.as_mut() {
                let _ = upload.wait_for(|state| *state != Upload::Sending).await;
            }
            tokio::time::sleep(self.head_timeout).await;
        };
        let response = tokio::select! {
            response = sent => response.map_err(|e| match upload.as_ref().map(|u| *u.borrow()) {
                Some(Upload::BrokeOff) => UpstreamError::RequestBodyBrokeOff(causes(&e)),
                _ => upstream_error(&e),
            })?,
            () = head_deadline => return Err(UpstreamError::Timeout),
        };
        let status = response.status();
        let headers = browser_response_headers(response.headers());
        let chunks = response
            .into_body()
            .into_data_stream()
            .map(|chunk| chunk.map_err(|e| UpstreamError::BrokeOff(causes(&e))));
        Ok(UpstreamAnswer {
            status,
            headers,
            body: UpstreamBody::new(chunks, IDLE_TIMEOUT),
        })
    }
}

/// How far a streamed request body got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    Sending,
    Sent,
    BrokeOff,
}

/// A streamed request body on its way to the upstream: the browser's chunks, broken off
/// after the idle timeout without one, its progress told to [`Upstream::forward`].
struct Outgoing {
    chunks: Idle<ByteStream>,
    progress: tokio::sync::watch::Sender<Upload>,
}

impl Outgoing {
    fn new(chunks: ByteStream, idle: Duration) -> (Self, tokio::sync::watch::Receiver<Upload>) {
        let (progress, upload) = tokio::sync::watch::channel(Upload::Sending);
        let chunks = Idle::new(chunks, idle);
        (Self { chunks, progress }, upload)
    }
}

impl Stream for Outgoing {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (item, state) = match std::task::ready!(self.chunks.poll_next_chunk(cx)) {
            Next::Chunk(Ok(chunk)) => return Poll::Ready(Some(Ok(chunk))),
            Next::End => (None, Upload::Sent),
            Next::Chunk(Err(e)) => (
                Some(Err(UpstreamError::RequestBodyBrokeOff(e.to_string()))),
                Upload::BrokeOff,
            ),
            Next::Silent => {
                let why = format!("no data for {} s", self.chunks.idle.as_secs());
                (Some(Err(UpstreamError::RequestBodyBrokeOff(why))), Upload::BrokeOff)
            }
        };
        self.progress.send_replace(state);
        Poll::Ready(item)
    }
}

/// The error of a call that got no answer: [`UpstreamError::Timeout`] when connecting timed
/// out, [`UpstreamError::Unreachable`] with its causes otherwise.
fn upstream_error(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return UpstreamError::Timeout;
        }
        source = cause.source();
    }
    UpstreamError::Unreachable(causes(e))
}

/// `e` and its causes, as one line (they name no URL, so no path or query reaches a log).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// What waiting for the next chunk of an [`Idle`] stream gave.
enum Next<T> {
    /// A chunk, or the source's error.
    Chunk(T),
    /// The source ended.
    End,
    /// Nothing came within the idle timeout.
    Silent,
}

/// A chunk source whose wait for the next chunk gives up after `idle`. The clock runs
/// only while waiting on the source: time the reader takes between two chunks does not
/// count.
struct Idle<S> {
    chunks: S,
    idle: Duration,
    /// When waiting for the next chunk gives up; set when the wait starts.
    deadline: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
}

impl<S: Stream + Unpin> Idle<S> {
    fn new(chunks: S, idle: Duration) -> Self {
        Self {
            chunks,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }

    fn poll_next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Next<S::Item>> {
        if !self.waiting {
            self.deadline.as_mut().reset(tokio::time::Instant::now() + self.idle);
            self.waiting = true;
        }
        match Pin::new(&mut self.chunks).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                self.waiting = false;
                Poll::Ready(Next::Chunk(item))
            }
            Poll::Ready(None) => Poll::Ready(Next::End),
            Poll::Pending => self.deadline.as_mut().poll(cx).map(|()| Next::Silent),
        }
    }
}

/// An upstream body on its way: the chunks as the upstream sends them, ended by an error
/// when the upstream breaks off or stays silent for longer than the idle timeout (so a
/// short body is never passed off as complete). Holds one chunk at a time.
pub struct UpstreamBody {
    chunks: Idle<Chunks>,
    done: bool,
}

impl UpstreamBody {
    /// A body of `chunks`, broken off after `idle` without a chunk while it is read.
    pub fn new(chunks: impl Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static, idle: Duration) -> Self {
        Self {
            chunks: Idle::new(Box::pin(chunks), idle),
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
        let next = std::task::ready!(self.chunks.poll_next_chunk(cx));
        if !matches!(next, Next::Chunk(Ok(_))) {
            self.done = true;
        }
        Poll::Ready(match next {
            Next::Chunk(Ok(chunk)) => Some(Ok(chunk)),
            Next::Chunk(Err(e)) => {
                tracing::warn!(error = %e, "upstream answer broken off");
                Some(Err(e))
            }
            Next::End => None,
            Next::Silent => {
                tracing::warn!(
                    idle_secs = self.chunks.idle.as_secs(),
                    "upstream went silent mid-body; answer broken off"
                );
                Some(Err(UpstreamError::IdleTimeout))
            }
        })
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

    /// An upload of `paused(pause)`, and what [`Outgoing`] tells of its progress.
    fn upload(pause: Duration) -> (Outgoing, tokio::sync::watch::Receiver<Upload>) {
        let chunks = paused(pause).map(|chunk| chunk.map_err(|e| Box::new(e) as BoxError));
        Outgoing::new(Box::pin(chunks), Duration::from_secs(30))
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_is_sent_once_all_its_chunks_are() {
        let (mut outgoing, progress) = upload(Duration::from_secs(29));
        assert!(matches!(outgoing.next().await, Some(Ok(_))));
        assert_eq!(*progress.borrow(), Upload::Sending, "the head timeout has not started");
        assert!(matches!(outgoing.next().await, Some(Ok(_))));
        assert!(outgoing.next().await.is_none());
        assert_eq!(*progress.borrow(), Upload::Sent);
    }

    #[tokio::test(start_paused = true)]
    async fn a_browser_silent_mid_upload_for_the_idle_timeout_breaks_the_upload_off() {
        let (mut outgoing, progress) = upload(Duration::from_secs(31));
        assert!(matches!(outgoing.next().await, Some(Ok(_))));
        assert!(matches!(
            outgoing.next().await,
            Some(Err(UpstreamError::RequestBodyBrokeOff(_)))
        ));
        assert_eq!(*progress.borrow(), Upload::BrokeOff);
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
