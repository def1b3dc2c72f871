//! The floor a proxy in front of the upstream can reach on this machine: a pass-through
//! on the BFF's own HTTP stack (axum and hyper serving, hyper's pooled client calling the
//! upstream, the answer streamed back) and nothing else: no session, no token, no header
//! rules, no log line, no metrics. What the BFF serves below it is the cost of its own
//! work; what this serves below the upstream directly is the cost of a second loopback
//! exchange on the same cores.
//!
//! `bff-bench passthrough UPSTREAM_BASE` prints `READY http://127.0.0.1:<port>/` and
//! serves until its stdin closes; `/api/<rest>` goes to `UPSTREAM_BASE<rest>`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type Upstream = (Client<HttpConnector, Body>, url::Url);

/// Serves the pass-through in front of `upstream` (a base URL ending in `/`).
pub async fn serve(upstream: &str) -> Result<(), String> {
    let upstream = url::Url::parse(upstream).map_err(|e| format!("upstream: {e}"))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("READY http://{addr}/");
    let router = axum::Router::new().fallback(pass).with_state((client, upstream));
    axum::serve(listener, router).await.map_err(|e| e.to_string())
}

/// Sends the request's method and path below `/api/` on to the upstream, and its answer
/// back as it streams.
async fn pass(State((client, upstream)): State<Upstream>, req: Request) -> Response {
    let rest = req.uri().path_and_query().map_or("", |p| p.as_str());
    let rest = rest.strip_prefix("/api/").unwrap_or(rest.trim_start_matches('/'));
    let Some(uri) = upstream
        .join(rest)
        .ok()
        .and_then(|url| url.as_str().parse::<Uri>().ok())
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut onward = axum::http::Request::new(Body::empty());
    *onward.method_mut() = req.method().clone();
    *onward.uri_mut() = uri;
    match client.request(onward).await {
        Ok(answer) => answer.map(Body::new),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
