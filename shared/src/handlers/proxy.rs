//! `/api/{rest}`: forwards the call to the upstream with the user's access token,
//! refreshing it first when it is about to expire.

use bytes::Bytes;
use lambda_http::{Body, Request, Response};

use crate::app::App;
use crate::csrf;
use crate::errors::ApiError;
use crate::handlers::{current_session, json_or_error};
use crate::oidc::OidcError;
use crate::proxy::{browser_response, upstream_request_headers, upstream_url};
use crate::secret::AccessToken;
use crate::session::refresh_due;
use crate::store::{SessionRecord, StoreError, StoreKey};
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
            http::StatusCode::BAD_GATEWAY,
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
    let token = usable_access_token(app, &key, session).await?;

    let headers = upstream_request_headers(req.headers(), &token);
    let body = Bytes::copy_from_slice(web::body_bytes(req.body()));
    let (status, headers, body) = upstream.forward(req.method().clone(), url, headers, body).await?;
    Ok(browser_response(status, headers, body))
}

/// The access token to send: the stored one, or a freshly refreshed one when it is due.
async fn usable_access_token(app: &App, key: &StoreKey, session: SessionRecord) -> Result<AccessToken, ApiError> {
    let now = app.clock.now();
    if !refresh_due(&session, now) {
        return Ok(session.access_token);
    }
    let still_valid = session.access_expires_at.is_some_and(|exp| now < exp);
    let Some(refresh_token) = session.refresh_token.clone() else {
        if still_valid {
            return Ok(session.access_token);
        }
        end_session(app, key).await;
        return Err(ApiError::session_expired());
    };

    match app.oidc.refresh(&refresh_token).await {
        Ok(tokens) => {
            let mut refreshed = session.clone();
            let now = app.clock.now();
            if let Some(id_token) = tokens.id_token {
                // A refreshed ID token is kept only if it validates and names the same user.
                match app.oidc.verify_id_token(&id_token, None, now).await {
                    Ok(claims) if claims.sub == session.sub => {
                        refreshed.claims = claims.claims;
                        refreshed.id_token = id_token;
                    }
                    Ok(_) => tracing::warn!("refreshed ID token names another subject; ignored"),
                    Err(e) => tracing::warn!(error = %e, "refreshed ID token failed validation; ignored"),
                }
            }
            refreshed.access_token = tokens.access_token;
            refreshed.access_issued_at = now;
            refreshed.access_expires_at = tokens.expires_in.map(|secs| now.saturating_add(secs));
            // Rotation: the new refresh token replaces the old in the same write.
            if let Some(rotated) = tokens.refresh_token {
                refreshed.refresh_token = Some(rotated);
            }
            refreshed.version = session.version + 1;
            match app.store.update_session(key, &refreshed, session.version).await {
                Ok(()) => {}
                // The session changed meanwhile (ended, or touched): the new token is
                // still good for this one call.
                Err(StoreError::Conflict) => tracing::warn!("session changed during refresh"),
                Err(e) => return Err(e.into()),
            }
            Ok(refreshed.access_token)
        }
        Err(e) if e.is_invalid_grant() => {
            end_session(app, key).await;
            Err(ApiError::session_expired())
        }
        // The provider is down: the old token serves until it really expires.
        Err(_) if still_valid => Ok(session.access_token),
        Err(e) => Err(refresh_failure(e)),
    }
}

fn refresh_failure(e: OidcError) -> ApiError {
    match ApiError::from(e) {
        // A refresh is never the browser's fault: a provider 4xx other than invalid_grant
        // is a provider problem.
        err if err.status.is_client_error() => ApiError::new(
            http::StatusCode::BAD_GATEWAY,
            "provider_error",
            "the identity provider refused the refresh",
        ),
        err => err,
    }
}

async fn end_session(app: &App, key: &StoreKey) {
    if let Err(e) = app.store.delete_session(key).await {
        tracing::warn!(error = %e, "could not delete an ended session");
    }
}
