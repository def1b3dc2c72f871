//! An operator's view of one user's sessions, and ending them (`bff-admin`).
//!
//! Sessions are found through the store's `sub` index, never a scan. Only what is in the
//! clear in the store is read: `sub`, login time, expiries and the browser family. No
//! token is opened, so this needs no token keys; and nothing that identifies a session
//! to the BFF (its id, the hash the store keys it by) is shown: a session is named by a
//! short handle, a truncated one-way hash of its store key under a label of its own,
//! which neither opens the session nor finds it in the table.

use crate::domain::secret::hash;
use crate::domain::session::{SessionRecord, is_live};
use crate::store::{SessionIndex, SessionStore, StoreError, StoreKey};

/// Characters of a session handle: 48 bits, plenty to tell one user's sessions apart.
const HANDLE_LEN: usize = 8;

/// Label hashed with the store key into a handle, so a handle is no other hash.
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
    #[error("no session of this user has the handle {0:?}")]
    UnknownHandle(String),
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
/// window (`BFF_SESSION_IDLE_SECS`), from which the last activity is estimated.
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
    let found = live_sessions(store, sub, now)
        .await?
        .into_iter()
        .find(|(key, _)| handle_of(key) == handle);
    let Some((key, _)) = found else {
        return Err(AdminError::UnknownHandle(handle.to_owned()));
    };
    store.delete_session(&key).await?;
    tracing::info!(sessions = 1, "sessions ended by an operator");
    Ok(())
}

/// Ends every session of `sub`; returns how many there were.
pub async fn end_all<S>(store: &S, sub: &str) -> Result<usize, StoreError>
where
    S: SessionStore + SessionIndex + ?Sized,
{
    let mut ended = 0;
    for key in store.sessions_of_sub(sub).await? {
        if store.delete_session(&key).await?.is_some() {
            ended += 1;
        }
    }
    tracing::info!(sessions = ended, "sessions ended by an operator");
    Ok(ended)
}

/// The live sessions of `sub` with their keys. The index is read as written; each item
/// is read again and kept only when it still names `sub`.
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
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::session_key;

    fn session(sub: &str, created_at: i64, user_agent: Option<&str>) -> SessionRecord {
        let mut record = crate::store::contract::sample_session(sub);
        record.created_at = created_at;
        record.idle_expires_at = created_at + 600;
        record.expires_at = created_at + 6000;
        record.user_agent = user_agent.map(str::to_owned);
        record
    }

    #[tokio::test]
    async fn lists_only_the_user_s_live_sessions_by_handle_and_ends_them() {
        let store = MemoryStore::new();
        let ids: Vec<_> = (0..4).map(|_| crate::domain::secret::SessionId::generate()).collect();
        let keys: Vec<_> = ids.iter().map(session_key).collect();
        store.put_session(&keys[0], &session("alice", 100, Some("Firefox"))).await.expect("put");
        store.put_session(&keys[1], &session("alice", 50, None)).await.expect("put");
        store.put_session(&keys[2], &session("bob", 60, Some("Chrome"))).await.expect("put");
        store.put_session(&keys[3], &session("alice", -10_000, None)).await.expect("put");

        let listed = sessions_of(&store, "alice", 200, 600).await.expect("list");
        assert_eq!(listed.len(), 2, "bob's and the expired one are not listed");
        assert_eq!(listed[0].created_at, 50);
        assert_eq!(listed[0].user_agent, "other");
        assert_eq!(listed[1].user_agent, "Firefox");
        assert_eq!(listed[1].last_seen_at, 100);
        for (summary, key) in listed.iter().zip([&keys[1], &keys[0]]) {
            assert_eq!(summary.handle, handle_of(key));
            assert_eq!(summary.handle.len(), HANDLE_LEN);
            assert!(!key.as_str().contains(&summary.handle), "the handle is not part of the key");
        }

        assert!(matches!(
            end_session(&store, "bob", &listed[0].handle, 200).await,
            Err(AdminError::UnknownHandle(_))
        ));
        end_session(&store, "alice", &listed[0].handle, 200).await.expect("end");
        assert!(store.get_session(&keys[1], 200).await.expect("get").is_none());
        assert!(store.get_session(&keys[0], 200).await.expect("get").is_some());

        assert_eq!(end_all(&store, "alice").await.expect("end all"), 2);
        assert!(store.get_session(&keys[0], 200).await.expect("get").is_none());
        assert!(store.get_session(&keys[2], 200).await.expect("get").is_some(), "bob's stays");
    }
}
