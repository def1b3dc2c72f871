//! `GET /auth/me` and `POST /auth/logout`.
//!
//! `/auth/me` answers the user's claims (the ID token's over userinfo's) and the
//! session's expiries, never a token. Logout ends the session (with `?scope=all`, every session of the user), clears
//! the cookie and answers where to send the browser.

use http::StatusCode;
use lambda_http::Request;
use serde_json::Value;

use super::Reply;
use crate::http::access_log;
use crate::http::app::App;
use crate::http::error::RequestError;
use crate::http::policy::EdgeRequest;
use crate::http::response::{json, query_pairs, set_cookie, single_param};
use crate::service::logout::Scope;
use crate::service::provider_check::checked_with_provider;
use crate::service::{SessionError, logout};

/// Handles `GET /auth/me`.
pub async fn me(app: &App, edge: &EdgeRequest) -> Reply {
    let (key, session) = app.current_session(edge).await?.ok_or(SessionError::LoginRequired)?;
    let session = checked_with_provider(&app.deps(), &key, session).await?;
    let mut body = session.shown_claims();
    body.insert(
        "session".into(),
        serde_json::json!({ "expires_at": session.expires_at, "idle_expires_at": session.idle_expires_at }),
    );
    Ok(access_log::for_user(
        json(StatusCode::OK, &Value::Object(body)),
        &session.sub,
    ))
}

/// Handles `POST /auth/logout`; `?scope=all` ends every session of the user.
pub async fn logout(app: &App, req: &Request, edge: &EdgeRequest) -> Reply {
    let query = query_pairs(req);
    let scope = match single_param(&query, "scope").map_err(RequestError::Invalid)? {
        None => Scope::This,
        Some("all") => Scope::All,
        Some(_) => return Err(RequestError::Invalid("`scope` must be `all` when given".into()).into()),
    };
    let done = logout::logout(&app.deps(), edge.session_id(), scope).await?;
    let mut response = json(StatusCode::OK, &serde_json::json!({ "logout_url": done.logout_url }));
    if let Some(sub) = &done.sub {
        response = access_log::for_user(response, sub);
    }
    set_cookie(&mut response, &app.cookies.clear_session_cookie());
    Ok(response)
}
