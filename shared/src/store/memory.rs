//! The embedded in-memory store: `bff-local`'s default and the unit tests' store.
//!
//! One mutex over plain maps is enough: every operation is a few map operations with no
//! await inside the lock, and this store serves one process only.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    ClientTokenRecord, ClientTokenStore, DocumentCache, LoginTransaction, ReplayGuard, SessionIndex, SessionRecord,
    SessionStore, StoreError, StoreKey, TransactionStore,
};

/// Transactions and sessions in process memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    transactions: HashMap<StoreKey, LoginTransaction>,
    sessions: HashMap<StoreKey, SessionRecord>,
    used: HashMap<StoreKey, i64>,
    documents: HashMap<StoreKey, (String, i64)>,
    client_tokens: HashMap<StoreKey, ClientTokenRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        // A poisoned lock means a panic mid-operation; report it as unavailable rather
        // than panicking in every later request.
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }

    /// Number of live sessions (expired ones included until read); for tests and metrics.
    pub fn session_count(&self) -> usize {
        self.lock().map(|inner| inner.sessions.len()).unwrap_or(0)
    }
}

/// Inserts `value` under `key` unless `map` already holds a value there.
fn insert_new<V>(map: &mut HashMap<StoreKey, V>, key: &StoreKey, value: V) -> Result<(), StoreError> {
    match map.entry(key.clone()) {
        Entry::Occupied(_) => Err(StoreError::Conflict),
        Entry::Vacant(slot) => {
            slot.insert(value);
            Ok(())
        }
    }
}

#[async_trait]
impl TransactionStore for MemoryStore {
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError> {
        insert_new(&mut self.lock()?.transactions, key, tx.copy())
    }

    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError> {
        let mut inner = self.lock()?;
        Ok(inner.transactions.remove(key).filter(|tx| tx.expires_at > now))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError> {
        insert_new(&mut self.lock()?.sessions, key, session.clone())
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.sessions.get(key).filter(|s| s.ttl() > now).cloned())
    }

    async fn update_session(&self, key: &StoreKey, session: &SessionRecord, expected: u64) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        match inner.sessions.get_mut(key) {
            Some(current) if current.version == expected => {
                *current = session.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock()?.sessions.remove(key))
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let at_version = inner.sessions.get(key).is_some_and(|s| s.version == expected);
        Ok(at_version && inner.sessions.remove(key).is_some())
    }
}

#[async_trait]
impl SessionIndex for MemoryStore {
    async fn sessions_with_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .sessions
            .iter()
            .filter(|(_, s)| s.sid.as_deref() == Some(sid))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .sessions
            .iter()
            .filter(|(_, s)| s.sub == sub)
            .map(|(k, _)| k.clone())
            .collect())
    }
}

#[async_trait]
impl ReplayGuard for MemoryStore {
    async fn first_use(&self, key: &StoreKey, expires_at: i64) -> Result<bool, StoreError> {
        Ok(insert_new(&mut self.lock()?.used, key, expires_at).is_ok())
    }

    async fn forget_use(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.lock()?.used.remove(key);
        Ok(())
    }
}

#[async_trait]
impl DocumentCache for MemoryStore {
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .documents
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(doc, _)| doc.clone()))
    }

    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError> {
        self.lock()?
            .documents
            .insert(key.clone(), (document.to_owned(), expires_at));
        Ok(())
    }
}

#[async_trait]
impl ClientTokenStore for MemoryStore {
    async fn get_client_token(
        &self,
        key: &StoreKey,
        _consistent: bool,
    ) -> Result<Option<ClientTokenRecord>, StoreError> {
        Ok(self.lock()?.client_tokens.get(key).cloned())
    }

    async fn put_client_token(
        &self,
        key: &StoreKey,
        record: &ClientTokenRecord,
        expected: Option<u64>,
        _keep_until: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let stored = inner.client_tokens.get(key).map(|r| r.version);
        if stored != expected {
            return Err(StoreError::Conflict);
        }
        inner.client_tokens.insert(key.clone(), record.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_store_contract() {
        crate::store::contract::run_all(&MemoryStore::new()).await;
    }
}
