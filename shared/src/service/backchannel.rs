//! OpenID Connect Back-Channel Logout 1.0: the provider ends sessions.
//!
//! When the `logout_token` validates and its `jti` was never seen, every matching
//! session ends: those with its `sid`, or, with only `sub`, every session of that user.
//! Sessions are found through the store's secondary indexes, never a scan.

use crate::platform::metrics::{self, EndReason, Event};
use futures_util::stream::{self, StreamExt as _};

use super::Deps;
use crate::domain::secret::hash;
use crate::oidc::{LOGOUT_TOKEN_MAX_AGE_SECS, MAX_CLOCK_SKEW_SECS, OidcError};
use crate::store::{StoreError, StoreKey};

/// How many sessions are deleted at once (logout of every session uses it too).
pub const PARALLEL_DELETES: usize = 16;

/// Ends the session at `key`: with both `sid` and `sub` in the token, only if it is
/// `sub`'s (a session of another subject is not this logout's). `true` when it ended.
async fn end_if_named(
    deps: &Deps<'_>,
    key: StoreKey,
    sub: &Option<String>,
    has_sid: bool,
    now: i64,
) -> Result<bool, StoreError> {
    if let (Some(sub), true) = (sub, has_sid)
        && let Some(session) = deps.store.get_session(&key, now).await?
        && session.sub != *sub
    {
        return Ok(false);
    }
    let ended = deps.store.delete_session(&key).await?.is_some();
    if ended {
        metrics::record(Event::SessionsEnded(EndReason::Backchannel, 1));
    }
    Ok(ended)
}

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
        (Some(sid), _) => deps.store.sessions_with_sid(sid).await,
        (None, Some(sub)) => deps.store.sessions_of_sub(sub).await,
        (None, None) => Ok(Vec::new()),
    };
    // Deleted a few at a time, so that a user with many sessions fits in the function's
    // timeout. Should any deletion fail, the token's use is forgotten: the provider's
    // retry then finishes the job instead of being refused as a replay.
    let deleted = match keys {
        Ok(keys) => {
            stream::iter(keys)
                .map(|key| end_if_named(deps, key, &claims.sub, claims.sid.is_some(), now))
                .buffer_unordered(PARALLEL_DELETES)
                .collect::<Vec<_>>()
                .await
        }
        Err(e) => vec![Err(e)],
    };
    let mut ended = 0;
    for result in deleted {
        match result {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => {
                if let Err(forget) = deps.store.forget_use(&replay_key).await {
                    tracing::warn!(error = %forget, "could not forget a half-done logout token");
                }
                return Err(e.into());
            }
        }
    }
    tracing::info!(sessions = ended, "back-channel logout");
    Ok(ended)
}
