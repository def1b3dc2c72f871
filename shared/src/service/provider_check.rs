//! The provider-session check (`BFF_PROVIDER_SESSION_CHECK_SECS`) for requests that send
//! no token of the user's: `/auth/me`, and API routes with the BFF's own token. A proxied
//! call with the user's token gets the same check from the refresh that serves it.
//!
//! A provider without back-channel logout never tells the BFF that the user logged out
//! there; the refresh grant asks it. When the check is due
//! ([`provider_check_due`]), the session's token is refreshed through the single-flight
//! [`Refresher`]; `invalid_grant` ends the session there. A provider that is down or slow
//! is not a logout: the session stays.

use super::refresh::{RefreshError, Refresher};
use super::{Deps, SessionError};
use crate::domain::session::{SessionRecord, provider_check_due};
use crate::store::StoreKey;

/// `session` (read under `key`) when the provider still knows its grant, or when no check
/// is due; [`SessionError::Expired`] when the check ended it.
pub async fn checked_with_provider(
    deps: &Deps<'_>,
    key: &StoreKey,
    session: SessionRecord,
) -> Result<SessionRecord, SessionError> {
    let every = deps.config.provider_session_check_secs;
    if !provider_check_due(&session, every, deps.clock.now()) {
        return Ok(session);
    }
    let refresher = Refresher::new(deps.store, deps.oidc, deps.clock).checking_provider_every(every);
    match refresher.usable_access_token(key, session.clone(), None).await {
        Ok(_) => Ok(session),
        Err(RefreshError::SessionEnded) => Err(SessionError::Expired),
        Err(e) => {
            tracing::warn!(error = %e, "provider session not checked; the session stays");
            Ok(session)
        }
    }
}
