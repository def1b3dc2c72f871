//! A store wrapper that counts reads and writes, to check what a request costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bff::store::{
    ClientTokenRecord, ClientTokenStore, DocumentCache, LoginTransaction, ReplayGuard, SessionIndex, SessionRecord,
    SessionStore, Store, StoreError, StoreKey, TransactionStore,
};

/// Counts of store calls since the last reset, and the faults to inject.
#[derive(Debug, Default)]
pub struct Counts {
    reads: AtomicUsize,
    writes: AtomicUsize,
    deletes_to_fail: AtomicUsize,
}

impl Counts {
    /// Reads (gets, index queries).
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Writes (puts, updates, deletes, takes).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Starts counting from zero.
    pub fn reset(&self) {
        self.reads.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
    }

    /// Makes the next `n` session deletes fail as unavailable.
    pub fn fail_next_session_deletes(&self, n: usize) {
        self.deletes_to_fail.store(n, Ordering::SeqCst);
    }

    fn failing_delete(&self) -> bool {
        self.deletes_to_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

/// `inner`, counting every call into `counts`.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    /// The counters.
    pub counts: Arc<Counts>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, counts: Arc<Counts>) -> Self {
        Self { inner, counts }
    }
}

#[async_trait]
impl TransactionStore for CountingStore {
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError> {
        self.counts.write();
        self.inner.put_transaction(key, tx).await
    }

    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError> {
        self.counts.write();
        self.inner.take_transaction(key, now).await
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError> {
        self.counts.write();
        self.inner.put_session(key, session).await
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        self.counts.read();
        self.inner.get_session(key, now).await
    }

    async fn update_session(
        &self,
        key: &StoreKey,
        session: &SessionRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.counts.write();
        self.inner.update_session(key, session, expected_version).await
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        self.counts.write();
        if self.counts.failing_delete() {
            return Err(StoreError::Unavailable("injected delete failure".into()));
        }
        self.inner.delete_session(key).await
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        self.counts.write();
        self.inner.delete_session_at(key, expected).await
    }
}

#[async_trait]
impl SessionIndex for CountingStore {
    async fn sessions_with_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.counts.read();
        self.inner.sessions_with_sid(sid).await
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.counts.read();
        self.inner.sessions_of_sub(sub).await
    }
}

#[async_trait]
impl ReplayGuard for CountingStore {
    async fn first_use(&self, key: &StoreKey, expires_at: i64) -> Result<bool, StoreError> {
        self.counts.write();
        self.inner.first_use(key, expires_at).await
    }

    async fn forget_use(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.counts.write();
        self.inner.forget_use(key).await
    }
}

#[async_trait]
impl DocumentCache for CountingStore {
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError> {
        self.counts.read();
        self.inner.get_document(key, now).await
    }

    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError> {
        self.counts.write();
        self.inner.put_document(key, document, expires_at).await
    }
}

#[async_trait]
impl ClientTokenStore for CountingStore {
    async fn get_client_token(
        &self,
        key: &StoreKey,
        consistent: bool,
    ) -> Result<Option<ClientTokenRecord>, StoreError> {
        self.counts.read();
        self.inner.get_client_token(key, consistent).await
    }

    async fn put_client_token(
        &self,
        key: &StoreKey,
        record: &ClientTokenRecord,
        expected: Option<u64>,
        keep_until: i64,
    ) -> Result<(), StoreError> {
        self.counts.write();
        self.inner.put_client_token(key, record, expected, keep_until).await
    }
}
