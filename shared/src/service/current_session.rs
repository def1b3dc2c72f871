//! The request's live session: looked up by the hash of its id, both lifetimes checked,
//! and the idle expiry slid when due (at most once per fraction of the idle window, so
//! the steady-state request costs one read and no write).

use crate::domain::clock::Clock;
use crate::domain::secret::SessionId;
use crate::domain::session::{SessionRecord, is_live, slid_idle_expiry, touch_due};
use crate::platform::logging::user_hash;
use crate::store::{SessionStore, StoreError, StoreKey, session_key};

/// The live session of `id`: `None` when there is no id, an id the BFF never issued, or
/// an expired session (which is then deleted).
pub async fn current_session<S: SessionStore + ?Sized>(
    store: &S,
    clock: &dyn Clock,
    idle_secs: i64,
    id: Option<SessionId>,
) -> Result<Option<(StoreKey, SessionRecord)>, StoreError> {
    let Some(id) = id else {
        return Ok(None);
    };
    let key = session_key(&id);
    let now = clock.now();
    // Read even past the store's own expiry check (any `now` is later than `i64::MIN`):
    // an expired session is then logged with the reason it ended, and deleted at once
    // rather than whenever the table's TTL sweep comes by.
    let Some(mut session) = store.get_session(&key, i64::MIN).await? else {
        return Ok(None);
    };
    if !is_live(&session, now) {
        let reason = if now >= session.expires_at {
            "absolute_expiry"
        } else {
            "idle_expiry"
        };
        match store.delete_session(&key).await {
            Ok(Some(_)) => {
                tracing::info!(reason, sub_hash = %user_hash(&session.sub), "session ended");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete an expired session"),
        }
        return Ok(None);
    }
    // No slide while a refresh lease is held: the refresher's write would conflict.
    let refreshing = session
        .refresh_lease
        .as_ref()
        .is_some_and(|l| l.is_held(clock.now_ms()));
    if !refreshing && touch_due(&session, now, idle_secs) {
        let mut touched = session.clone();
        touched.idle_expires_at = slid_idle_expiry(&session, now, idle_secs);
        touched.version += 1;
        match store.update_session(&key, &touched, session.version).await {
            Ok(()) => session = touched,
            // Someone else updated it meanwhile (a refresh, another touch): theirs stands.
            Err(StoreError::Conflict) => {}
            Err(e) => tracing::warn!(error = %e, "could not slide the idle expiry"),
        }
    }
    Ok(Some((key, session)))
}
