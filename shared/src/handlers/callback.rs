//! `GET /auth/callback`: finishes the grant and creates the session.
//!
//! The `state` must be one of this browser's pending logins (its transaction cookie);
//! the transaction is consumed exactly once (atomic delete-and-return), so a replayed
//! callback fails. Then RFC 9207 `iss`, the code exchange with the PKCE verifier, full
//! ID-token validation, and a brand-new session id. Any failure answers an error page,
//! creates no session and sets no session cookie.

use http::header::{HeaderValue, REFERRER_POLICY};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

use crate::app::App;
use crate::cookies::{holds_state, without_state};
use crate::errors::ApiError;
use crate::secret::{SessionId, hash};
use crate::session::{new_expiries, session_key};
use crate::store::{LoginTransaction, SessionRecord, StoreKey};
use crate::web;

/// Handles the provider's redirect back to the BFF.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let pending = app.cookies.pending_states(req.headers());
    let (result, consumed_state) = callback(app, &req, &pending).await;
    let mut response = result.unwrap_or_else(|e| e.to_page());
    // The state is spent whatever the outcome; drop it from the transaction cookie.
    if let Some(state) = consumed_state {
        web::set_cookie(&mut response, &app.cookies.tx_cookie(&without_state(&pending, &state)));
    }
    response
        .headers_mut()
        .insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    web::no_store(response)
}

/// The outcome, and the `state` this browser held and that is now spent, if any.
async fn callback(app: &App, req: &Request, pending: &[String]) -> (Result<Response<Body>, ApiError>, Option<String>) {
    if req.method() != Method::GET {
        return (Err(ApiError::method_not_allowed()), None);
    }
    let query = web::query_pairs(req);
    let param = |name: &str| web::single_param(&query, name).map_err(|e| ApiError::bad_request("invalid_request", e));
    let state = match param("state") {
        Ok(state) => state.filter(|s| holds_state(pending, s)).map(str::to_owned),
        Err(e) => return (Err(e), None),
    };
    let result = finish(app, req, &query, state.as_deref()).await;
    (result, state)
}

async fn finish(
    app: &App,
    req: &Request,
    query: &[(String, String)],
    state: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let param = |name: &str| web::single_param(query, name).map_err(|e| ApiError::bad_request("invalid_request", e));

    // The transaction is consumed before anything else, so it can never be used twice,
    // whether this callback succeeds, fails, or reports a provider error.
    let tx = match state {
        Some(state) => take_transaction(app, state).await?,
        None => None,
    };

    if let Some(error) = param("error")? {
        let description = param("error_description")?.unwrap_or("");
        let (status, code) = if error == "access_denied" {
            (StatusCode::FORBIDDEN, "access_denied")
        } else {
            (StatusCode::BAD_REQUEST, "provider_error")
        };
        let text = if description.is_empty() {
            format!("The identity provider answered: {error}")
        } else {
            format!("The identity provider answered: {error}: {description}")
        };
        return Err(ApiError::new(status, code, text));
    }

    let code = param("code")?.ok_or_else(|| ApiError::bad_request("invalid_request", "the callback has no code"))?;
    if param("state")?.is_none() {
        return Err(ApiError::bad_request("invalid_request", "the callback has no state"));
    }
    let Some(tx) = tx else {
        return Err(ApiError::bad_request(
            "invalid_state",
            "this login was not started in this browser, has expired, or was already used",
        ));
    };

    check_issuer(app, param("iss")?).await?;

    let tokens = app.oidc.exchange_code(code, tx.pkce_verifier).await?;
    let now = app.clock.now();
    let id_token = tokens.id_token.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "invalid_id_token",
            "the provider returned no ID token",
        )
    })?;
    let verified = app.oidc.verify_id_token(&id_token, Some(&tx.nonce), now).await?;

    let (expires_at, idle_expires_at) = new_expiries(now, app.config.session_idle_secs, app.config.session_max_secs);
    let record = SessionRecord {
        sub: verified.sub,
        sid: verified.sid,
        claims: verified.claims,
        id_token,
        access_token: tokens.access_token,
        access_expires_at: tokens.expires_in.map(|secs| now.saturating_add(secs)),
        access_issued_at: now,
        refresh_token: tokens.refresh_token,
        created_at: now,
        expires_at,
        idle_expires_at,
        version: 1,
        refresh_lease: None,
    };
    let id = SessionId::generate();
    app.store.put_session(&session_key(&id), &record).await?;

    // A new login ends the browser's previous session in the store, not only in the cookie.
    if let Some(old) = app.cookies.session_id(req.headers())
        && let Err(e) = app.store.delete_session(&session_key(&old)).await
    {
        tracing::warn!(error = %e, "could not delete the previous session");
    }

    let mut response = web::redirect(&tx.return_to)
        .map_err(|_| ApiError::bad_request("invalid_return_to", "the return address is not usable"))?;
    web::set_cookie(&mut response, &app.cookies.session_cookie(&id));
    tracing::info!(sub_hash = %hash(&record.sub), "session created");
    Ok(crate::access_log::for_user(response, &record.sub))
}

async fn take_transaction(app: &App, state: &str) -> Result<Option<LoginTransaction>, ApiError> {
    Ok(app
        .store
        .take_transaction(&StoreKey::transaction(&hash(state)), app.clock.now())
        .await?)
}

/// RFC 9207: when the provider advertises `iss` in authorization responses it must be
/// there and name our issuer; when present anyway it must still match (mix-up defence).
async fn check_issuer(app: &App, iss: Option<&str>) -> Result<(), ApiError> {
    let advertised = app
        .oidc
        .metadata()
        .await?
        .authorization_response_iss_parameter_supported;
    match iss {
        Some(iss) if iss == app.config.issuer => Ok(()),
        None if !advertised => Ok(()),
        _ => Err(ApiError::bad_request(
            "invalid_issuer",
            "the authorization response does not come from the configured identity provider",
        )),
    }
}
