//! An operator's view of one user's sessions, and ending them (`bff-admin`).
//!
//! Sessions are found through the store's `sub` index, never a scan. Only what is in the
//! clear in the store is read: `sub`, login time, expiries and the browser family. No
//! token is opened, so this needs no token keys; and nothing that identifies a session
//! to the BFF (its id, the hash the store keys it by) is shown. A session is named by a
//! short handle instead: a truncated SHA-256 of its store key under a label of its own.
//! The store key is itself a hash of the session id, so a handle leads back to neither
//! the cookie nor the item; it only tells one user's sessions apart. It is not keyed,
//! on purpose: an operator can end a session with table access alone, without the token
//! keys, and someone who can read the table's keys can already delete its items.

use crate::domain::secret::hash;
use crate::domain::session::{SessionRecord, is_live};
use crate::platform::metrics::{self, EndReason, Event};
use crate::store::{SessionIndex, SessionStore, StoreError, StoreKey};

/// Characters of a session handle (base64url): 48 bits, plenty to tell one user's
/// sessions apart.
pub const HANDLE_LEN: usize = 8;

/// Label hashed with the store key into a handle, so a handle is no other hash's prefix.
const HANDLE_LABEL: &str = "bff-admin session handle";

/// One live session, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Short name of the session for [`end_session`]; not its id nor its store key.
    pub handle: String,
    /// Epoch seconds of login.
    pub created_at: i64,
    /// Epoch seconds of the last request seen, at most an eighth of the idle window
    /// early (the idle expiry slides only that often), never before login.
    pub last_seen_at: i64,
    /// Epoch seconds when it ends if left idle.
    pub idle_expires_at: i64,
    /// Epoch seconds when it ends whatever happens.
    pub expires_at: i64,
    /// The browser family it was created from (`Chrome`, `Firefox`, ..., `other`).
    pub user_agent: String,
}

/// What [`end_session`] can fail on.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No live session of the user has this handle.
    #[error("no live session of this user has the handle {0:?}")]
    UnknownHandle(String),
    /// More than one live session of the user has this handle (never seen in practice:
    /// 48 bits); nothing was ended.
    #[error("several sessions of this user have the handle {0:?}; end them all instead")]
    AmbiguousHandle(String),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The handle naming the session stored at `key`.
pub fn handle_of(key: &StoreKey) -> String {
    hash(&format!("{HANDLE_LABEL}\n{}", key.as_str()))
        .chars()
        .take(HANDLE_LEN)
        .collect()
}

/// The live sessions of `sub` at `now`, oldest first; `idle_secs` is the configured idle
/// window (`BFF_SESSION_IDLE_SECS`), from which the last activity is told.
pub async fn sessions_of<S>(store: &S, sub: &str, now: i64, idle_secs: i64) -> Result<Vec<SessionSummary>, StoreError>
where
    S: SessionStore + SessionIndex + ?Sized,
{
    let mut sessions: Vec<SessionSummary> = live_sessions(store, sub, now)
        .await?
        .into_iter()
        .map(|(key, session)| SessionSummary {
            handle: handle_of(&key),
            created_at: session.created_at,
            // The idle expiry was last slid to (then + idle_secs).
            last_seen_at: session
                .idle_expires_at
                .saturating_sub(idle_secs)
                .max(session.created_at),
            idle_expires_at: session.idle_expires_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent.unwrap_or_else(|| "other".to_owned()),
        })
        .collect();
    sessions.sort_by(|a, b| (a.created_at, &a.handle).cmp(&(b.created_at, &b.handle)));
    Ok(sessions)
}

/// Ends the live session of `sub` named `handle`.
pub async fn end_session<S>(store: &S, sub: &str, handle: &str, now: i64) -> Result<(), AdminError>
where
    S: SessionStore + SessionIndex + ?Sized,
{
    let mut found: Vec<StoreKey> = live_sessions(store, sub, now)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| handle_of(key) == handle)
        .collect();
    let key = match (found.pop(), found.is_empty()) {
        (Some(key), true) => key,
        (Some(_), false) => return Err(AdminError::AmbiguousHandle(handle.to_owned())),
        (None, _) => return Err(AdminError::UnknownHandle(handle.to_owned())),
    };
    if store.delete_session(&key).await?.is_some() {
        metrics::record(Event::SessionsEnded(EndReason::Admin, 1));
        tracing::info!(reason = "admin", sessions = 1, "sessions ended");
    }
    Ok(())
}

/// Ends every session of `sub`; returns how many of them were live at `now` (expired
/// ones the table has not swept yet are deleted too, uncounted).
pub async fn end_all<S>(store: &S, sub: &str, now: i64) -> Result<u32, StoreError>
where
    S: SessionStore + SessionIndex + ?Sized,
{
    let mut ended = 0;
    for key in store.sessions_of_sub(sub).await? {
        if let Some(session) = store.delete_session(&key).await?
            && is_live(&session, now)
        {
            ended += 1;
        }
    }
    if ended > 0 {
        metrics::record(Event::SessionsEnded(EndReason::Admin, ended));
    }
    tracing::info!(reason = "admin", sessions = ended, "sessions ended");
    Ok(ended)
}

/// The live sessions of `sub` with their keys. The index is eventually consistent: each
/// item is read again and kept only when it is there, live and still names `sub`.
async fn live_sessions<S>(store: &S, sub: &str, now: i64) -> Result<Vec<(StoreKey, SessionRecord)>, StoreError>
where
    S: SessionStore + SessionIndex + ?Sized,
{
    let mut live = Vec::new();
    for key in store.sessions_of_sub(sub).await? {
        if let Some(session) = store.get_session(&key, now).await?
            && session.sub == sub
            && is_live(&session, now)
        {
            live.push((key, session));
        }
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::secret::{AccessToken, IdToken, SessionId};
    use crate::platform::metrics::{Registry, measure};
    use crate::store::memory::MemoryStore;
    use crate::store::session_key;

    fn session(sub: &str, created_at: i64, user_agent: Option<&str>) -> SessionRecord {
        SessionRecord {
            access_token_type: Default::default(),
            dpop_key: None,
            sub: sub.to_owned(),
            sid: None,
            claims: serde_json::Map::new(),
            id_token: IdToken::new("header.payload.signature".to_owned()),
            access_token: AccessToken::new("access".to_owned()),
            access_expires_at: None,
            access_issued_at: created_at,
            refresh_token: None,
            created_at,
            // Last slid 30 s after login, with an idle window of 600 s.
            expires_at: created_at + 6000,
            idle_expires_at: created_at + 630,
            version: 1,
            refresh_lease: None,
            refresh_started_at: None,
            api_tokens: Vec::new(),
            userinfo: None,
            user_agent: user_agent.map(str::to_owned),
        }
    }

    async fn stored(store: &MemoryStore, record: SessionRecord) -> StoreKey {
        let key = session_key(&SessionId::generate());
        store.put_session(&key, &record).await.expect("put");
        key
    }

    #[tokio::test]
    async fn lists_only_the_user_s_live_sessions_under_handles_that_are_not_their_keys() {
        let store = MemoryStore::new();
        let firefox = stored(&store, session("alice", 100, Some("Firefox"))).await;
        let unknown = stored(&store, session("alice", 50, None)).await;
        stored(&store, session("bob", 60, Some("Chrome"))).await;
        stored(&store, session("alice", -10_000, Some("Edge"))).await; // expired

        let listed = sessions_of(&store, "alice", 200, 600).await.expect("list");
        assert_eq!(listed.len(), 2, "bob's and the expired one are not listed: {listed:?}");
        assert_eq!((listed[0].created_at, listed[0].user_agent.as_str()), (50, "other"));
        assert_eq!((listed[1].created_at, listed[1].user_agent.as_str()), (100, "Firefox"));
        assert_eq!(listed[1].last_seen_at, 130);
        for (summary, key) in listed.iter().zip([&unknown, &firefox]) {
            assert_eq!(summary.handle, handle_of(key));
            assert_eq!(summary.handle.len(), HANDLE_LEN);
            assert!(
                !key.as_str().contains(&summary.handle),
                "the handle is no part of the key"
            );
        }
        assert_ne!(listed[0].handle, listed[1].handle);
    }

    #[tokio::test]
    async fn ends_one_session_by_handle_or_all_and_counts_them_as_ended_by_an_operator() {
        let store = MemoryStore::new();
        let first = stored(&store, session("alice", 100, Some("Firefox"))).await;
        let second = stored(&store, session("alice", 150, None)).await;
        let bob = stored(&store, session("bob", 60, Some("Chrome"))).await;
        let registry = Arc::new(Registry::new());
        let ended = |registry: &Registry| registry.value("bff_sessions_ended_total", &[("reason", "admin")]);

        // Another user's handle, or a made-up one, ends nothing.
        let (result, _) = measure(
            &registry,
            "admin",
            end_session(&store, "bob", &handle_of(&first), 200),
            |_| (200, false),
        )
        .await;
        assert!(matches!(result, Err(AdminError::UnknownHandle(_))), "{result:?}");
        assert!(matches!(
            end_session(&store, "alice", "AAAAAAAA", 200).await,
            Err(AdminError::UnknownHandle(_))
        ));
        assert_eq!(ended(&registry), 0.0);

        let (result, invocation) = measure(
            &registry,
            "admin",
            end_session(&store, "alice", &handle_of(&first), 200),
            |_| (200, false),
        )
        .await;
        result.expect("end");
        assert!(store.get_session(&first, 200).await.expect("get").is_none());
        assert!(store.get_session(&second, 200).await.expect("get").is_some());
        assert_eq!(ended(&registry), 1.0);
        let line: serde_json::Value =
            serde_json::from_str(&invocation.emf_events("BFF", "admin", 0, "admin")).expect("json");
        assert_eq!(line["SessionsEnded.admin"], 1.0);
        assert!(
            line.get("Requests").is_none(),
            "an operator's command is no request: {line}"
        );

        let (count, _) = measure(&registry, "admin", end_all(&store, "alice", 200), |_| (200, false)).await;
        assert_eq!(count.expect("end all"), 1);
        assert!(store.get_session(&second, 200).await.expect("get").is_none());
        assert!(
            store.get_session(&bob, 200).await.expect("get").is_some(),
            "bob's stays"
        );
        assert_eq!(ended(&registry), 2.0);
    }
}
