//! A store decorator that seals every token and PKCE verifier before it is written and
//! opens it after it is read, bound to the item's store key (see [`crate::platform::seal`]).
//!
//! A value that does not open (tampered, copied under another key, sealed with a key no
//! longer configured) makes its item read as absent: the user logs in again, and the
//! event is logged without the value.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    ClientTokenRecord, ClientTokenStore, DocumentCache, LoginTransaction, ReplayGuard, SessionIndex, SessionRecord,
    SessionStore, Store, StoreError, StoreKey, TransactionStore,
};
use crate::domain::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken};
use crate::platform::seal::{SealError, Sealer};

/// `inner`, with tokens sealed at rest.
pub struct SealedStore {
    inner: Arc<dyn Store>,
    sealer: Arc<Sealer>,
}

impl SealedStore {
    /// Seals what goes into `inner` with `sealer`.
    pub fn new(inner: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        Self { inner, sealer }
    }

    fn seal_session(&self, key: &StoreKey, s: &SessionRecord) -> SessionRecord {
        let ctx = key.as_str();
        let mut sealed = s.clone();
        sealed.access_token = AccessToken::new(self.sealer.seal(s.access_token.secret(), ctx));
        sealed.refresh_token = s
            .refresh_token
            .as_ref()
            .map(|t| RefreshToken::new(self.sealer.seal(t.secret(), ctx)));
        sealed.id_token = IdToken::new(self.sealer.seal(s.id_token.secret(), ctx));
        for api in &mut sealed.api_tokens {
            api.access_token = AccessToken::new(self.sealer.seal(api.access_token.secret(), ctx));
        }
        sealed
    }

    fn open_session(&self, key: &StoreKey, s: SessionRecord) -> Result<SessionRecord, SealError> {
        let ctx = key.as_str();
        let mut opened = s;
        opened.access_token = AccessToken::new(self.sealer.open(opened.access_token.secret(), ctx)?);
        opened.refresh_token = match &opened.refresh_token {
            Some(t) => Some(RefreshToken::new(self.sealer.open(t.secret(), ctx)?)),
            None => None,
        };
        opened.id_token = IdToken::new(self.sealer.open(opened.id_token.secret(), ctx)?);
        for api in &mut opened.api_tokens {
            api.access_token = AccessToken::new(self.sealer.open(api.access_token.secret(), ctx)?);
        }
        Ok(opened)
    }

    fn opened_or_absent(&self, key: &StoreKey, s: Option<SessionRecord>) -> Option<SessionRecord> {
        let s = s?;
        match self.open_session(key, s) {
            Ok(opened) => Some(opened),
            Err(e) => {
                tracing::warn!(error = %e, "a stored session does not open; treated as absent");
                None
            }
        }
    }
}

#[async_trait]
impl TransactionStore for SealedStore {
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError> {
        let sealed = LoginTransaction {
            pkce_verifier: PkceVerifier::new(self.sealer.seal(tx.pkce_verifier.secret(), key.as_str())),
            ..tx.copy()
        };
        self.inner.put_transaction(key, &sealed).await
    }

    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError> {
        let Some(tx) = self.inner.take_transaction(key, now).await? else {
            return Ok(None);
        };
        match self.sealer.open(tx.pkce_verifier.secret(), key.as_str()) {
            Ok(verifier) => Ok(Some(LoginTransaction {
                pkce_verifier: PkceVerifier::new(verifier),
                ..tx
            })),
            Err(e) => {
                tracing::warn!(error = %e, "a stored login transaction does not open; treated as absent");
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl SessionStore for SealedStore {
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError> {
        self.inner.put_session(key, &self.seal_session(key, session)).await
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let stored = self.inner.get_session(key, now).await?;
        Ok(self.opened_or_absent(key, stored))
    }

    async fn update_session(&self, key: &StoreKey, session: &SessionRecord, expected: u64) -> Result<(), StoreError> {
        self.inner
            .update_session(key, &self.seal_session(key, session), expected)
            .await
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        let deleted = self.inner.delete_session(key).await?;
        Ok(self.opened_or_absent(key, deleted))
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        self.inner.delete_session_at(key, expected).await
    }
}

#[async_trait]
impl SessionIndex for SealedStore {
    async fn sessions_with_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.inner.sessions_with_sid(sid).await
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.inner.sessions_of_sub(sub).await
    }
}

#[async_trait]
impl ReplayGuard for SealedStore {
    async fn first_use(&self, key: &StoreKey, expires_at: i64) -> Result<bool, StoreError> {
        self.inner.first_use(key, expires_at).await
    }

    async fn forget_use(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.inner.forget_use(key).await
    }
}

#[async_trait]
impl DocumentCache for SealedStore {
    // Public documents: nothing to seal.
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError> {
        self.inner.get_document(key, now).await
    }

    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError> {
        self.inner.put_document(key, document, expires_at).await
    }
}

#[async_trait]
impl ClientTokenStore for SealedStore {
    async fn get_client_token(&self, key: &StoreKey) -> Result<Option<ClientTokenRecord>, StoreError> {
        let Some(mut record) = self.inner.get_client_token(key).await? else {
            return Ok(None);
        };
        if let Some(token) = &record.access_token {
            match self.sealer.open(token.secret(), key.as_str()) {
                Ok(opened) => record.access_token = Some(AccessToken::new(opened)),
                Err(e) => {
                    // Unusable, but its version chain continues: the next renewal replaces it.
                    tracing::warn!(error = %e, "a stored client token does not open; treated as expired");
                    record.access_token = None;
                }
            }
        }
        Ok(Some(record))
    }

    async fn put_client_token(
        &self,
        key: &StoreKey,
        record: &ClientTokenRecord,
        expected: Option<u64>,
        keep_until: i64,
    ) -> Result<(), StoreError> {
        let mut sealed = record.clone();
        sealed.access_token = record
            .access_token
            .as_ref()
            .map(|t| AccessToken::new(self.sealer.seal(t.secret(), key.as_str())));
        self.inner.put_client_token(key, &sealed, expected, keep_until).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn keys(spec: &str) -> Arc<Sealer> {
        let key = |b: u8| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [b; 32]);
        let spec = spec.replace("K1", &key(1)).replace("K2", &key(2));
        Arc::new(Sealer::from_config(&spec).expect("keys"))
    }

    fn record() -> SessionRecord {
        SessionRecord {
            sub: "alice".into(),
            sid: None,
            claims: serde_json::Map::new(),
            id_token: IdToken::new("id-token-plain"),
            access_token: AccessToken::new("access-token-plain"),
            access_expires_at: Some(i64::MAX / 2),
            access_issued_at: 0,
            refresh_token: Some(RefreshToken::new("refresh-token-plain")),
            created_at: 0,
            expires_at: i64::MAX / 2,
            idle_expires_at: i64::MAX / 2,
            version: 1,
            refresh_lease: None,
            refresh_started_at: None,
            api_tokens: vec![crate::domain::session::ApiToken {
                target: crate::domain::routes::TokenTarget {
                    resource: Some("https://orders.example".into()),
                    ..Default::default()
                },
                access_token: AccessToken::new("api-token-plain"),
                expires_at: None,
                issued_at: 0,
            }],
        }
    }

    /// A memory store and a store sealing into it with key `k1`.
    fn stores() -> (Arc<MemoryStore>, SealedStore) {
        let inner = Arc::new(MemoryStore::new());
        let sealed = SealedStore::new(inner.clone(), keys("k1:K1"));
        (inner, sealed)
    }

    /// [`stores`], with [`record`] put through the sealing store under the session key `name`.
    async fn stores_with_a_session(name: &str) -> (Arc<MemoryStore>, SealedStore, StoreKey) {
        let (inner, sealed) = stores();
        let key = StoreKey::session(name);
        sealed.put_session(&key, &record()).await.expect("put");
        (inner, sealed, key)
    }

    /// The session at `key` as the inner store holds it.
    async fn raw_session(inner: &MemoryStore, key: &StoreKey) -> SessionRecord {
        inner.get_session(key, 0).await.expect("get").expect("present")
    }

    #[tokio::test]
    async fn the_inner_store_holds_only_sealed_tokens() {
        let (inner, sealed, key) = stores_with_a_session("h1").await;
        let raw = raw_session(&inner, &key).await;
        let raw_json = serde_json::to_string(&raw).expect("json");
        assert!(
            !raw_json.contains("plain"),
            "no plaintext token in the store: {raw_json}"
        );
        let opened = sealed.get_session(&key, 0).await.expect("get").expect("opens");
        assert_eq!(opened.access_token.secret(), "access-token-plain");
        assert_eq!(opened.refresh_token.expect("refresh").secret(), "refresh-token-plain");
        assert_eq!(opened.api_tokens[0].access_token.secret(), "api-token-plain");
    }

    #[tokio::test]
    async fn an_item_copied_under_another_key_reads_as_absent() {
        let (inner, sealed, key) = stores_with_a_session("victim").await;
        let raw = raw_session(&inner, &key).await;
        let stolen = StoreKey::session("attacker");
        inner.put_session(&stolen, &raw).await.expect("copy");
        assert!(sealed.get_session(&stolen, 0).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn rotated_keys_open_old_items_and_seal_new_ones_with_the_new_key() {
        let (inner, _old, key) = stores_with_a_session("h2").await;
        let rotated = SealedStore::new(inner.clone(), keys("k2:K2,k1:K1"));
        let mut session = rotated
            .get_session(&key, 0)
            .await
            .expect("get")
            .expect("old item opens");
        session.version = 2;
        rotated.update_session(&key, &session, 1).await.expect("update");
        let raw = raw_session(&inner, &key).await;
        assert!(
            raw.access_token.secret().starts_with("v1.k2."),
            "new writes use the new key"
        );
    }

    #[tokio::test]
    async fn pkce_verifiers_are_sealed_too() {
        let (inner, sealed) = stores();
        let key = StoreKey::transaction("t1");
        let tx = LoginTransaction {
            pkce_verifier: PkceVerifier::new("verifier-plain"),
            nonce: "n".into(),
            return_to: "/".into(),
            expires_at: i64::MAX / 2,
            replaces_session: None,
        };
        sealed.put_transaction(&key, &tx).await.expect("put");
        let copy = StoreKey::transaction("t2");
        let raw = inner.take_transaction(&key, 0).await.expect("take").expect("present");
        assert!(!raw.pkce_verifier.secret().contains("plain"));
        inner.put_transaction(&key, &raw).await.expect("put back");
        let opened = sealed.take_transaction(&key, 0).await.expect("take").expect("opens");
        assert_eq!(opened.pkce_verifier.secret(), "verifier-plain");
        inner.put_transaction(&copy, &raw).await.expect("copy");
        assert!(
            sealed.take_transaction(&copy, 0).await.expect("take").is_none(),
            "bound to its key"
        );
    }
}
