//! Starting the Authorization Code Grant: fresh `state` and `nonce` (256 bits each) and a
//! PKCE S256 verifier; the transaction (verifier, nonce, returnTo, what the login asked of
//! the authentication) goes to the store under the hash of `state`, never under `state`
//! itself. With `BFF_DPOP=on` the login's DPoP key is made here and kept (sealed) with
//! the transaction, for the code exchange and then the session. The browser's current session is untouched here: a step-up or silent login
//! that fails leaves it as it was.

use super::Deps;
use crate::domain::login_options::LoginOptions;
use crate::domain::secret::{PkceVerifier, SessionId, hash, random_token};
use crate::domain::session::LoginTransaction;
use crate::oidc::{AuthorizationRequest, OidcError};
use crate::platform::dpop::DpopKey;
use crate::store::{StoreError, StoreKey};

/// Lifetime of a login transaction and of its cookie, in seconds: how long a login may
/// take, from `/auth/login` to the callback.
pub const LOGIN_TX_SECS: i64 = 600;

/// A login under way: where to send the browser, and the `state` it must bring back.
#[derive(Debug)]
pub struct LoginStarted {
    /// The provider's authorization URL for this login.
    pub location: String,
    /// The login's `state`, to remember in the browser.
    pub state: String,
}

/// Why a login could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The provider's discovery could not be read.
    #[error("login could not start at the provider: {0}")]
    Provider(#[from] OidcError),
    /// The transaction could not be stored.
    #[error("the login transaction was not stored: {0}")]
    Store(#[from] StoreError),
}

/// Starts a login with `options` (validated) that returns to `return_to` (validated) and
/// replaces the browser's session `current`, if any, once it completes.
pub async fn start(
    deps: &Deps<'_>,
    return_to: String,
    options: LoginOptions,
    current: Option<SessionId>,
) -> Result<LoginStarted, LoginError> {
    let state = random_token(32);
    let nonce = random_token(32);
    let verifier = PkceVerifier::generate();
    let options = options.or(&deps.config.login_defaults);
    let request = AuthorizationRequest {
        state: &state,
        nonce: &nonce,
        verifier: &verifier,
        options: &options,
    };
    let location = deps.oidc.authorization_url(deps.config, &request).await?;
    // The session's DPoP key: the code exchange already proves possession of it.
    let dpop_key = if deps.config.dpop {
        Some(DpopKey::generate().map_err(|e| LoginError::Provider(OidcError::Dpop(e.to_string())))?)
    } else {
        None
    };
    let tx = LoginTransaction {
        pkce_verifier: verifier,
        nonce,
        return_to,
        expires_at: deps.clock.now() + LOGIN_TX_SECS,
        replaces_session: current.map(|id| id.hashed()),
        requirements: options.requirements(),
        silent: options.is_silent(),
        dpop_key,
    };
    deps.store
        .put_transaction(&StoreKey::transaction(&hash(&state)), &tx)
        .await?;
    Ok(LoginStarted { location, state })
}
