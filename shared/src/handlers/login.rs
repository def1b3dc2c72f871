//! `GET /auth/login`: starts the Authorization Code Grant.
//!
//! Fresh `state` and `nonce` (256 bits each) and a PKCE S256 verifier; the transaction
//! (verifier, nonce, returnTo) goes to the store under the hash of `state`, the `state`
//! joins this browser's transaction cookie, and the browser is sent to the provider.

use http::Method;
use lambda_http::{Body, Request, Response};

use crate::app::App;
use crate::cookies::{LOGIN_TX_SECS, with_state};
use crate::errors::ApiError;
use crate::redirect::validate_return_to;
use crate::secret::{PkceVerifier, hash, random_token};
use crate::store::{LoginTransaction, StoreKey};
use crate::web;

/// Handles `GET /auth/login?returnTo=...`.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let response = match login(app, &req).await {
        Ok(response) => response,
        // A browser navigation gets a page; a script or test asking for JSON gets JSON.
        Err(e) if web::wants_html(req.headers()) => e.to_page(),
        Err(e) => e.to_json(),
    };
    web::no_store(response)
}

async fn login(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let query = web::query_pairs(req);
    let return_to = web::single_param(&query, "returnTo").map_err(|e| ApiError::bad_request("invalid_request", e))?;
    let return_to = validate_return_to(return_to, &app.config.public_origin, &app.config.allowed_origins)?;

    let state = random_token(32);
    let nonce = random_token(32);
    let verifier = PkceVerifier::generate();
    let location = app
        .oidc
        .authorization_url(&app.config, &state, &nonce, &verifier)
        .await?;

    let tx = LoginTransaction {
        pkce_verifier: verifier,
        nonce,
        return_to,
        expires_at: app.clock.now() + LOGIN_TX_SECS,
    };
    app.store
        .put_transaction(&StoreKey::transaction(&hash(&state)), &tx)
        .await?;

    let pending = with_state(app.cookies.pending_states(req.headers()), state);
    let mut response = web::redirect(&location).map_err(|_| {
        ApiError::new(
            http::StatusCode::BAD_GATEWAY,
            "provider_error",
            "bad authorization endpoint",
        )
    })?;
    web::set_cookie(&mut response, &app.cookies.tx_cookie(&pending));
    Ok(response)
}
