//! Ending a session at the user's request: the store forgets it, the provider revokes
//! its refresh token (RFC 7009, best effort), and the browser is told where to go: the
//! provider's end-session URL (with `id_token_hint`, the one place an ID token leaves
//! the BFF, as RP-Initiated Logout asks) or the BFF's own page.

use super::Deps;
use crate::domain::secret::SessionId;
use crate::platform::metrics::{self, EndReason, Event};
use crate::store::{StoreError, session_key};

/// A logout done.
#[derive(Debug)]
pub struct LoggedOut {
    /// Where to send the browser.
    pub logout_url: String,
    /// The user whose session ended, when there was one.
    pub sub: Option<String>,
}

/// Ends the session `id` (if any). Without a session it still answers a logout URL.
pub async fn logout(deps: &Deps<'_>, id: Option<SessionId>) -> Result<LoggedOut, StoreError> {
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
