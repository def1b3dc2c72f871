//! `GET /auth/me` and `POST /auth/logout`.
//!
//! `/auth/me` answers the user's ID-token claims and the session's expiries, never a
//! token. Logout deletes the session from the store, clears the cookie and answers where
//! to send the browser: the provider's end-session URL (with `id_token_hint`, the one
//! place an ID token leaves the BFF, as RP-Initiated Logout asks) or the BFF's own page.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use crate::access_log;
use crate::app::App;
use crate::csrf;
use crate::errors::ApiError;
use crate::handlers::{current_session, json_or_error};
use crate::session::session_key;
use crate::web;

/// Handles `/auth/me` and `/auth/logout`.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    if let Some(preflight) = csrf::preflight(&req, &app.config) {
        return web::no_store(preflight);
    }
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/auth/me") => me(app, &req).await,
        (&Method::POST, "/auth/logout") => logout(app, &req).await,
        (_, "/auth/me" | "/auth/logout") => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    };
    let mut response = json_or_error(result);
    csrf::add_cors(&mut response, req.headers(), &app.config);
    web::no_store(response)
}

async fn me(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    csrf::check_origin(req.headers(), &app.config)?;
    let (_, session) = current_session(app, req.headers())
        .await?
        .ok_or_else(ApiError::login_required)?;
    let mut body = session.claims;
    body.insert(
        "session".into(),
        serde_json::json!({ "expires_at": session.expires_at, "idle_expires_at": session.idle_expires_at }),
    );
    let sub = session.sub.clone();
    Ok(access_log::for_user(
        web::json(StatusCode::OK, &Value::Object(body)),
        &sub,
    ))
}

async fn logout(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    csrf::check_anti_forgery(req.headers(), &app.config)?;
    let ended = match app.cookies.session_id(req.headers()) {
        Some(id) => app.store.delete_session(&session_key(&id)).await?,
        None => None,
    };
    if let Some(refresh_token) = ended.as_ref().and_then(|s| s.refresh_token.as_ref()) {
        // RFC 7009: the provider forgets the grant too, so a copy of the token is worthless.
        app.oidc.revoke(refresh_token).await;
    }
    let logout_url = app
        .oidc
        .logout_url(&app.config, ended.as_ref().map(|s| &s.id_token))
        .await;
    let mut response = web::json(StatusCode::OK, &serde_json::json!({ "logout_url": logout_url }));
    if let Some(session) = &ended {
        response = access_log::for_user(response, &session.sub);
    }
    web::set_cookie(&mut response, &app.cookies.clear_session_cookie());
    Ok(response)
}
