//! `POST /auth/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0.
//!
//! The provider posts a signed `logout_token`; when it validates and its `jti` was never
//! seen, every matching session ends: those with its `sid`, or, with only `sub`, every
//! session of that user. Sessions are found through the store's secondary indexes, never
//! a scan. Answers 200 on success and 400 JSON otherwise, never cached.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

use crate::app::App;
use crate::errors::ApiError;
use crate::oidc::LOGOUT_TOKEN_MAX_AGE_SECS;
use crate::secret::hash;
use crate::store::StoreKey;
use crate::web;

/// Handles the provider's back-channel logout request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let response = match logout(app, &req).await {
        Ok(()) => {
            let mut ok = Response::new(Body::Empty);
            *ok.status_mut() = StatusCode::OK;
            ok
        }
        Err(e) => e.to_json(),
    };
    web::no_store(response)
}

async fn logout(app: &App, req: &Request) -> Result<(), ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(web::body_bytes(req.body()))
        .into_owned()
        .collect();
    let token = web::single_param(&form, "logout_token")
        .map_err(|e| ApiError::bad_request("invalid_request", e))?
        .ok_or_else(|| ApiError::bad_request("invalid_request", "no logout_token"))?;
    let now = app.clock.now();
    let claims = app.oidc.verify_logout_token(token, now).await.map_err(|e| {
        tracing::warn!(error = %e, "back-channel logout token refused");
        ApiError::bad_request("invalid_request", "the logout token is not valid")
    })?;
    // Remembered for as long as the token could be accepted at all.
    let replay_key = StoreKey::replay(&hash(&format!("{}\n{}", app.config.issuer, claims.jti)));
    let remember_until = claims.iat + LOGOUT_TOKEN_MAX_AGE_SECS + crate::oidc::MAX_CLOCK_SKEW_SECS;
    if !app.store.first_use(&replay_key, remember_until).await? {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the logout token was already used",
        ));
    }

    let keys = match (&claims.sid, &claims.sub) {
        (Some(sid), _) => app.store.sessions_with_sid(sid).await?,
        (None, Some(sub)) => app.store.sessions_of_sub(sub).await?,
        (None, None) => Vec::new(),
    };
    let mut ended = 0;
    for key in keys {
        // With both sid and sub, a session of another subject is not this logout's.
        if let (Some(sub), Some(_)) = (&claims.sub, &claims.sid)
            && let Some(session) = app.store.get_session(&key, now).await?
            && session.sub != *sub
        {
            continue;
        }
        if app.store.delete_session(&key).await?.is_some() {
            ended += 1;
        }
    }
    tracing::info!(sessions = ended, "back-channel logout");
    Ok(())
}
