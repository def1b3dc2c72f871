//! The local server: every BFF endpoint on one origin, as CloudFront presents the Lambda
//! functions in AWS, running the very same router through [`bff::route`].
//!
//! Paths outside `/auth/*`, `/api/*` and the operator's probes (`/healthz`, `/readyz`)
//! are served from an optional static folder (the front end), as the S3 origin is in AWS.
//!
//! Request bodies of API calls up to [`KEPT_BODY_BYTES`] are read whole, so the proxy can
//! send the call again after an upstream 401 as in Lambda. Larger ones stream to the
//! upstream as they arrive, of any size, and are sent once (an upstream 401 then reaches
//! the browser as it is). Bodies of `/auth/*` calls are read whole, up to
//! [`MAX_BODY_BYTES`] (what a function URL accepts).
//!
//! Answers are never read whole: an upstream body goes to hyper as a stream, written as
//! the browser reads it, so memory does not grow with its size; an upstream that breaks
//! off breaks the connection off (no terminating chunk, or fewer bytes than the
//! `Content-Length` announced).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use bff::App;
use bff::http::body::{ResponseBody, StreamedRequestBody};
use bff::http::error::{ErrorAnswer, RequestError};
use bff::http::router::Route;
use bff::upstream::{BoxError, ByteStream};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};

/// Largest request body accepted by `/auth/*` (Lambda function URLs accept 6 MB).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// API request bodies up to this size are kept whole, so the call can be sent again after
/// an upstream 401; larger ones stream to the upstream and are sent once.
pub const KEPT_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
struct Shared {
    app: Arc<App>,
    static_dir: Option<PathBuf>,
}

/// The axum router serving `app`, and `static_dir` for every other path.
pub fn router(app: Arc<App>, static_dir: Option<PathBuf>) -> axum::Router {
    axum::Router::new()
        .fallback(dispatch)
        .with_state(Shared { app, static_dir })
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    static_dir: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app, static_dir))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn dispatch(State(shared): State<Shared>, req: Request) -> Response {
    let path = req.uri().path();
    let route = Route::of(path);
    if route.is_none() && !path.starts_with("/auth/") {
        return match &shared.static_dir {
            Some(dir) => static_file(dir, path).await,
            None => plain(StatusCode::NOT_FOUND, "not found"),
        };
    }
    let (mut parts, body) = req.into_parts();
    let bytes = if route == Some(Route::Api) {
        match read_ahead(body, KEPT_BODY_BYTES).await {
            Ok(Incoming::Whole(bytes)) => bytes,
            Ok(Incoming::Streaming(chunks)) => {
                let length = parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                parts.extensions.insert(StreamedRequestBody::new(chunks, length));
                Bytes::new()
            }
            Err(_) => return refused(RequestError::Invalid("the request body broke off".into())),
        }
    } else {
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => return refused(RequestError::BodyTooLarge),
        }
    };
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(bytes.to_vec())
    };
    // Run to completion even when the client hangs up, as a Lambda invocation does: a
    // caller that gives up (a provider delivering a logout token, say) must not cut the
    // request's work in half. The answer's body streams on after that, as the client reads.
    let app = shared.app.clone();
    let request = http::Request::from_parts(parts, body);
    let Ok(response) = tokio::spawn(async move { bff::route(&app, request).await }).await else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    response.map(AxumBody::new)
}

/// A request body read up to a limit: whole when it ended within it, else a stream of what
/// was read and the rest.
enum Incoming {
    Whole(Bytes),
    Streaming(ByteStream),
}

/// Reads `body` until it ends or more than `keep` bytes have come.
async fn read_ahead(body: AxumBody, keep: usize) -> Result<Incoming, axum::Error> {
    let mut chunks = body.into_data_stream();
    let mut kept: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while size <= keep {
        let Some(chunk) = chunks.next().await else {
            return Ok(Incoming::Whole(match kept.len() {
                0 => Bytes::new(),
                1 => kept.swap_remove(0),
                _ => Bytes::from(kept.concat()),
            }));
        };
        let chunk = chunk?;
        size += chunk.len();
        kept.push(chunk);
    }
    let rest = chunks.map_err(|e| Box::new(e) as BoxError);
    Ok(Incoming::Streaming(Box::pin(
        stream::iter(kept.into_iter().map(Ok)).chain(rest),
    )))
}

fn refused(error: RequestError) -> Response {
    let answer = ErrorAnswer::from(error).to_json();
    answer.map(|body| AxumBody::new(ResponseBody::from(body)))
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(AxumBody::from(text));
    *response.status_mut() = status;
    response
}

async fn static_file(dir: &Path, path: &str) -> Response {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "index.html" } else { relative };
    let candidate = Path::new(relative);
    // Only plain names below the folder: no `..`, no absolute paths.
    if !candidate.components().all(|c| matches!(c, Component::Normal(_))) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let Ok(bytes) = tokio::fs::read(dir.join(candidate)).await else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let content_type = match candidate.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    let mut response = Response::new(AxumBody::from(bytes));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    response
}
