//! Ending a session at the user's request: the store forgets it, the provider revokes
//! its refresh token (RFC 7009, best effort), and the browser is told where to go: the
//! provider's end-session URL (with `id_token_hint`, the one place an ID token leaves
//! the BFF, as RP-Initiated Logout asks) or the BFF's own page.
//!
//! With [`Scope::All`] every other session of the same user ends first, found through
//! the store's `sub` index (as back-channel logout finds them), never a scan. The
//! browser's own session ends last, so a store failure half-way leaves it in place and
//! the same request can be sent again to finish the job.

use futures_util::stream::{self, StreamExt as _};

use super::Deps;
use super::backchannel::PARALLEL_DELETES;
use crate::domain::secret::SessionId;
use crate::platform::metrics::{self, EndReason, Event};
use crate::store::{StoreError, StoreKey, session_key};

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The browser's own session.
    This,
    /// Every session of the browser's user.
    All,
}

/// A logout done.
#[derive(Debug)]
pub struct LoggedOut {
    /// Where to send the browser.
    pub logout_url: String,
    /// The user whose session ended, when there was one.
    pub sub: Option<String>,
}

/// Ends the session `id` (if any), and with [`Scope::All`] every other session of its
/// user. Without a session it still answers a logout URL.
pub async fn logout(deps: &Deps<'_>, id: Option<SessionId>, scope: Scope) -> Result<LoggedOut, StoreError> {
    if let (Scope::All, Some(id)) = (scope, &id) {
        let key = session_key(id);
        if let Some(session) = deps.store.get_session(&key, deps.clock.now()).await? {
            end_other_sessions(deps, &session.sub, &key).await?;
        }
    }
    let ended = match id {
        Some(id) => deps.store.delete_session(&session_key(&id)).await?,
        None => None,
    };
    if ended.is_some() {
        metrics::record(Event::SessionsEnded(EndReason::Logout, 1));
    }
    if let Some(refresh_token) = ended.as_ref().and_then(|s| s.refresh_token.as_ref()) {
        // RFC 7009: the provider forgets the grant too, so a copy of the token is worthless.
        deps.oidc.revoke(refresh_token).await;
    }
    let logout_url = deps
        .oidc
        .logout_url(deps.config, ended.as_ref().map(|s| &s.id_token))
        .await;
    Ok(LoggedOut {
        logout_url,
        sub: ended.map(|s| s.sub),
    })
}

/// Ends every session of `sub` but `keep`, a few at a time; their refresh tokens are
/// revoked (best effort). Any failed deletion fails the whole: the caller answers 503.
async fn end_other_sessions(deps: &Deps<'_>, sub: &str, keep: &StoreKey) -> Result<usize, StoreError> {
    let others: Vec<StoreKey> = deps
        .store
        .sessions_of_sub(sub)
        .await?
        .into_iter()
        .filter(|key| key != keep)
        .collect();
    let results: Vec<_> = stream::iter(others)
        .map(|key| async move {
            let ended = deps.store.delete_session(&key).await?;
            if let Some(refresh_token) = ended.as_ref().and_then(|s| s.refresh_token.as_ref()) {
                deps.oidc.revoke(refresh_token).await;
            }
            Ok::<bool, StoreError>(ended.is_some())
        })
        .buffer_unordered(PARALLEL_DELETES)
        .collect()
        .await;
    let mut ended = 0;
    for result in results {
        if result? {
            ended += 1;
        }
    }
    if ended > 0 {
        metrics::record(Event::SessionsEnded(EndReason::Logout, ended));
    }
    tracing::info!(sessions = ended, "logout of every other session of the user");
    Ok(ended as usize)
}
