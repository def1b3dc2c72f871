//! `/api/{rest}`: confines the path below the upstream's base, finds the session and
//! hands the call to the forwarding service; the upstream's answer goes back as it is
//! (minus the headers the browser must not see).

use bytes::Bytes;
use lambda_http::{Body, Request, Response};

use super::Reply;
use crate::domain::forwarding::upstream_url;
use crate::http::access_log;
use crate::http::app::App;
use crate::http::error::RequestError;
use crate::http::policy::EdgeRequest;
use crate::http::response::body_bytes;
use crate::service::SessionError;
use crate::service::forward::{Call, Forwarded, forward};

/// Handles every method on `/api/*`.
pub async fn handle(app: &App, req: &Request, edge: &EdgeRequest) -> Reply {
    let upstream = app.upstream.as_ref().ok_or(RequestError::UpstreamNotConfigured)?;
    let rest = req.uri().path().strip_prefix("/api").unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let url = upstream_url(&upstream.base, rest, req.uri().query())?;

    let (key, session) = app.current_session(edge).await?.ok_or(SessionError::LoginRequired)?;
    let sub = session.sub.clone();
    // Attached by the access log when the request came in; a fresh trace otherwise.
    let trace = access_log::trace_of(req);
    let call = Call {
        method: req.method().clone(),
        url,
        headers: req.headers(),
        body: Bytes::copy_from_slice(body_bytes(req.body())),
        trace: &trace,
        // The name `router::Route::Api` logs under (the router imports this module).
        route: "api",
    };
    let answer = forward(&app.deps(), upstream, &key, session, call).await?;
    Ok(access_log::for_user(browser_response(answer), &sub))
}

/// The browser's response for an upstream answer.
fn browser_response(answer: Forwarded) -> Response<Body> {
    let mut response = Response::new(if answer.body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(answer.body.to_vec())
    });
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}
