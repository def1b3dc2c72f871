//! OpenID Connect Back-Channel Logout 1.0: the provider ends sessions.
//!
//! When the `logout_token` validates and its `jti` was never seen, every matching
//! session ends: those with its `sid`, or, with only `sub`, every session of that user.
//! Sessions are found through the store's secondary indexes, never a scan.

use super::Deps;
use crate::domain::secret::hash;
use crate::oidc::{LOGOUT_TOKEN_MAX_AGE_SECS, MAX_CLOCK_SKEW_SECS, OidcError};
use crate::store::{StoreError, StoreKey};

/// Why a back-channel logout was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    /// The request carries no `logout_token`.
    #[error("no logout_token")]
    MissingToken,
    /// The logout token did not validate.
    #[error("invalid logout token: {0}")]
    InvalidToken(OidcError),
    /// The logout token's `jti` was used before.
    #[error("the logout token was already used")]
    Replayed,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates `token` and ends the sessions it names; returns how many ended.
pub async fn end_sessions(deps: &Deps<'_>, token: &str) -> Result<usize, BackchannelError> {
    let now = deps.clock.now();
    let claims = deps
        .oidc
        .verify_logout_token(token, now)
        .await
        .map_err(BackchannelError::InvalidToken)?;
    // Remembered for as long as the token could be accepted at all.
    let replay_key = StoreKey::replay(&hash(&format!("{}\n{}", deps.config.issuer, claims.jti)));
    let remember_until = claims.iat + LOGOUT_TOKEN_MAX_AGE_SECS + MAX_CLOCK_SKEW_SECS;
    if !deps.store.first_use(&replay_key, remember_until).await? {
        return Err(BackchannelError::Replayed);
    }

    let keys = match (&claims.sid, &claims.sub) {
        (Some(sid), _) => deps.store.sessions_with_sid(sid).await?,
        (None, Some(sub)) => deps.store.sessions_of_sub(sub).await?,
        (None, None) => Vec::new(),
    };
    let mut ended = 0;
    for key in keys {
        // With both sid and sub, a session of another subject is not this logout's.
        if let (Some(sub), Some(_)) = (&claims.sub, &claims.sid)
            && let Some(session) = deps.store.get_session(&key, now).await?
            && session.sub != *sub
        {
            continue;
        }
        if deps.store.delete_session(&key).await?.is_some() {
            ended += 1;
        }
    }
    tracing::info!(sessions = ended, "back-channel logout");
    Ok(ended)
}
