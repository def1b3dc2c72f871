//! `/api/{rest}`: forwards the call to the upstream with the user's access token,
//! refreshing it first when it is about to expire.
//!
//! When the upstream answers 401 to a token the BFF believed valid, the token is
//! refreshed once and the call retried once; the second answer stands, so this never
//! loops. Request bodies are always buffered (Lambda delivers them whole), so every call
//! can be replayed.

use bytes::Bytes;
use http::StatusCode;
use lambda_http::{Body, Request, Response};

use crate::access_log;
use crate::app::App;
use crate::csrf;
use crate::errors::ApiError;
use crate::handlers::{current_session, json_or_error};
use crate::proxy::{browser_response, upstream_request_headers, upstream_url};
use crate::refresh::usable_access_token;
use crate::web;

/// Handles every method on `/api/*`.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    if let Some(preflight) = csrf::preflight(&req, &app.config) {
        return preflight;
    }
    let mut response = json_or_error(forward(app, &req).await);
    csrf::add_cors(&mut response, req.headers(), &app.config);
    response
}

async fn forward(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    csrf::check_anti_forgery(req.headers(), &app.config)?;
    let upstream = app.upstream.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_not_configured",
            "no upstream API is configured",
        )
    })?;
    let rest = req.uri().path().strip_prefix("/api").unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let url = upstream_url(&upstream.base, rest, req.uri().query())?;

    let (key, session) = current_session(app, req.headers())
        .await?
        .ok_or_else(ApiError::login_required)?;
    let sub = session.sub.clone();
    let token = usable_access_token(app, &key, session, None).await?;
    let body = Bytes::copy_from_slice(web::body_bytes(req.body()));
    let send = |token| {
        let headers = upstream_request_headers(req.headers(), &token);
        upstream.forward(req.method().clone(), url.clone(), headers, body.clone())
    };
    let (mut status, mut headers, mut answer) = send(token.clone()).await?;

    if status == StatusCode::UNAUTHORIZED {
        // The upstream refused a token we believed valid (revoked, or clocks disagree).
        let session = app
            .store
            .get_session(&key, app.clock.now())
            .await?
            .ok_or_else(ApiError::session_expired)?;
        if session.refresh_token.is_none() {
            // Nothing to refresh with: the upstream's answer stands.
            return Ok(browser_response(status, headers, answer));
        }
        let retry_token = usable_access_token(app, &key, session, Some(&token)).await?;
        if retry_token != token {
            (status, headers, answer) = send(retry_token).await?;
        }
    }
    Ok(access_log::for_user(browser_response(status, headers, answer), &sub))
}
