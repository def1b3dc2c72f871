//! The local server: every BFF endpoint on one origin, as CloudFront presents the Lambda
//! functions in AWS, running the very same router through [`bff::route`].
//!
//! Paths outside `/auth/*`, `/api/*` and the operator's probes (`/healthz`, `/readyz`)
//! are served from an optional static folder (the front end), as the S3 origin is in AWS.
//!
//! Request bodies are read whole, up to [`MAX_BODY_BYTES`] (what a function URL accepts),
//! so the proxy can replay a call after an upstream 401 as in Lambda. Answers are not:
//! an upstream body goes to hyper as a stream, written as the browser reads it, so memory
//! does not grow with its size; an upstream that breaks off breaks the connection off
//! (no terminating chunk, or fewer bytes than the `Content-Length` announced).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::Response;
use bff::App;
use bff::http::body::ResponseBody;
use bff::http::error::{ErrorAnswer, RequestError};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};

/// Largest request body accepted (Lambda function URLs accept 6 MB).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

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
    let is_bff = path.starts_with("/auth/") || bff::http::router::Route::of(path).is_some();
    if !is_bff {
        return match &shared.static_dir {
            Some(dir) => static_file(dir, path).await,
            None => plain(StatusCode::NOT_FOUND, "not found"),
        };
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let refused = ErrorAnswer::from(RequestError::BodyTooLarge).to_json();
            return refused.map(|body| AxumBody::new(ResponseBody::from(body)));
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
