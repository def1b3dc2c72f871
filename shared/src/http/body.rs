//! The body of an answer leaving the edge: whole bytes the BFF made itself, or an
//! upstream body streaming through.
//!
//! The edge stays independent of how an answer is carried: `bff-local` hands a
//! [`ResponseBody`] to hyper, the proxy's Lambda function to the runtime's streaming
//! response, the other functions take the whole bytes, and tests read either directly.
//! A stream that fails ends with an error frame, never with a clean end: the carrier
//! breaks the response off, so a short body never passes for a complete one.
//!
//! Requests come the other way: a carrier that can stream them (`bff-local`, for uploads
//! too large to keep) leaves the body empty and puts a [`StreamedRequestBody`] in the
//! request's extensions, which the proxy takes to send on as it arrives.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Frame, SizeHint};
use lambda_http::Body;

use crate::upstream::{ByteStream, RequestBody, UpstreamBody, UpstreamError};

/// An answer's body: whole, or streamed from the upstream.
pub enum ResponseBody {
    /// Bytes the BFF holds whole (its own answers).
    Full(Body),
    /// An upstream body, chunk by chunk.
    Stream(UpstreamBody),
}

impl ResponseBody {
    /// The whole body, when it is not a stream.
    pub fn full(&self) -> Option<&Body> {
        match self {
            Self::Full(body) => Some(body),
            Self::Stream(_) => None,
        }
    }
}

impl From<Body> for ResponseBody {
    fn from(body: Body) -> Self {
        Self::Full(body)
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(body) => f.debug_tuple("Full").field(body).finish(),
            Self::Stream(body) => f.debug_tuple("Stream").field(body).finish(),
        }
    }
}

/// A request body still arriving from the browser, carried in the request's extensions
/// (they must be `Clone` and `Sync`); the first [`take`](Self::take) gets it.
#[derive(Clone)]
pub struct StreamedRequestBody(Arc<Mutex<Option<RequestBody>>>);

impl StreamedRequestBody {
    /// The body of `chunks`, of the declared `length` if any.
    pub fn new(chunks: ByteStream, length: Option<u64>) -> Self {
        Self(Arc::new(Mutex::new(Some(RequestBody::Streamed { chunks, length }))))
    }

    /// The body, the first time only.
    pub fn take(&self) -> Option<RequestBody> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The bytes of a whole body.
fn bytes_of(body: Body) -> Bytes {
    match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        // Body is non-exhaustive upstream; any other form carries no payload.
        _ => Bytes::new(),
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            Self::Full(body) => {
                let bytes = bytes_of(std::mem::replace(body, Body::Empty));
                Poll::Ready((!bytes.is_empty()).then(|| Ok(Frame::data(bytes))))
            }
            Self::Stream(stream) => Pin::new(stream)
                .poll_next(cx)
                .map(|next| next.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(Body::Empty))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Body::Empty) => SizeHint::with_exact(0),
            Self::Full(Body::Text(text)) => SizeHint::with_exact(text.len() as u64),
            Self::Full(Body::Binary(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn a_whole_body_is_one_frame() {
        let collected = ResponseBody::from(Body::Text("hello".into())).collect().await;
        assert_eq!(collected.ok().map(|c| c.to_bytes()), Some(Bytes::from_static(b"hello")));
    }

    #[tokio::test]
    async fn a_stream_that_breaks_off_ends_in_an_error_not_a_clean_end() {
        let chunks = stream::iter([
            Ok(Bytes::from_static(b"first")),
            Err(UpstreamError::BrokeOff("reset".into())),
        ]);
        let mut body = ResponseBody::Stream(UpstreamBody::new(chunks, Duration::from_secs(30)));
        let first = body.frame().await.and_then(|f| f.ok()).and_then(|f| f.into_data().ok());
        assert_eq!(first, Some(Bytes::from_static(b"first")));
        assert!(matches!(body.frame().await, Some(Err(UpstreamError::BrokeOff(_)))));
    }
}
