//! The request's live session: looked up by the hash of its id, both lifetimes checked,
//! and the idle expiry slid when due (at most once per fraction of the idle window, so
//! the steady-state request costs one read and no write).

use crate::domain::clock::Clock;
use crate::domain::secret::SessionId;
use crate::domain::session::{SessionRecord, is_live, slid_idle_expiry, touch_due};
use crate::platform::logging::user_hash;
use crate::platform::metrics::{self, EndReason, Event};
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
        let (reason, counted) = if now >= session.expires_at {
            ("absolute_expiry", EndReason::Absolute)
        } else {
            ("idle_expiry", EndReason::Idle)
        };
        match store.delete_session(&key).await {
            // Only the caller whose delete removed it reports the end: once per session.
            Ok(Some(_)) => {
                metrics::record(Event::SessionsEnded(counted, 1));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::secret::{AccessToken, IdToken};
    use crate::platform::metrics::{Registry, measure};
    use crate::service::tokio_clock::TokioClock;
    use crate::store::memory::MemoryStore;

    fn session(now: i64, expires_in: i64, idle_in: i64) -> SessionRecord {
        SessionRecord {
            access_token_type: Default::default(),
            dpop_key: None,
            sub: "alice".to_owned(),
            sid: None,
            claims: serde_json::Map::new(),
            id_token: IdToken::new("header.payload.signature".to_owned()),
            access_token: AccessToken::new("access".to_owned()),
            access_expires_at: None,
            access_issued_at: now - 10,
            refresh_token: None,
            created_at: now - 10,
            expires_at: now + expires_in,
            idle_expires_at: now + idle_in,
            version: 1,
            refresh_lease: None,
            refresh_started_at: None,
            api_tokens: Vec::new(),
            userinfo: None,
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn an_expired_session_presented_again_is_deleted_and_counted_by_the_lifetime_it_outlived() {
        let store = MemoryStore::new();
        let clock = TokioClock::new();
        let now = clock.now();
        let registry = Arc::new(Registry::new());
        let ended = |reason: &str| registry.value("bff_sessions_ended_total", &[("reason", reason)]);
        for (expires_in, idle_in, counted) in [(-1, 100, "absolute"), (100, -1, "idle"), (-1, -1, "absolute")] {
            let id = SessionId::generate();
            let key = session_key(&id);
            store
                .put_session(&key, &session(now, expires_in, idle_in))
                .await
                .expect("put");
            let before = ended(counted);
            let (found, _) = measure(
                &registry,
                "me",
                current_session(&store, &clock, 600, Some(SessionId::new(id.secret()))),
                |_| (401, false),
            )
            .await;
            assert!(found.expect("read").is_none());
            assert!(
                store.delete_session(&key).await.expect("delete").is_none(),
                "deleted at once"
            );
            assert_eq!(ended(counted), before + 1.0, "{counted}");
        }
        // A live one is neither ended nor counted.
        let id = SessionId::generate();
        store
            .put_session(&session_key(&id), &session(now, 100, 100))
            .await
            .expect("put");
        let (found, _) = measure(&registry, "me", current_session(&store, &clock, 600, Some(id)), |_| {
            (200, false)
        })
        .await;
        assert!(found.expect("read").is_some());
        assert_eq!(ended("idle") + ended("absolute"), 3.0);
    }
}
