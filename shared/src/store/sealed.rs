//! A store decorator that seals every token, PKCE verifier and the session's personal
//! claims before they are written and opens them after they are read, bound to the item's
//! store key and to the field they are in (see [`crate::platform::seal`]); and that
//! authenticates the provider documents it caches.
//!
//! A value that does not open (tampered, copied under another key or into another field,
//! sealed with a key no longer configured, or in an earlier format) makes its item read as
//! absent: the user logs in again, and the event is logged without the value.
//!
//! Of a session only what an index or the store itself needs stays in the clear: `sub`
//! and `sid` (the back-channel logout indexes), expiries, the version, the refresh lease
//! and the browser family (for the operator's listing). The claims `/auth/me` shows (name,
//! e-mail, picture, ...) are sealed as one value, and the userinfo endpoint's claims as
//! another, each bound to its own field.
//!
//! Cached discovery and JWKS documents are public but decide where the BFF sends codes
//! and secrets and which keys sign ID tokens: each carries an HMAC over the document, its
//! store key (kind and issuer) and its expiry, under a key derived from the sealing keys.
//! A document without a valid tag (written by anyone without the keys) reads as absent
//! and is fetched again from the provider. Without `BFF_TOKEN_KEYS` every process has keys
//! of its own, so it trusts only documents it cached itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    ClientTokenRecord, ClientTokenStore, DocumentCache, LoginTransaction, ReplayGuard, SessionIndex, SessionRecord,
    SessionStore, Store, StoreError, StoreKey, TransactionStore,
};
use crate::domain::secret::{AccessToken, DpopKeySecret, IdToken, PkceVerifier, RefreshToken};
use crate::platform::seal::{SealError, Sealer};

/// The field names sealed values are bound to (those of the stored record).
const ACCESS_TOKEN: &str = "access_token";
const REFRESH_TOKEN: &str = "refresh_token";
const ID_TOKEN: &str = "id_token";
const CLAIMS: &str = "claims";
const USERINFO: &str = "userinfo";
const PKCE_VERIFIER: &str = "pkce_verifier";
const DPOP_KEY: &str = "dpop_key";

/// The one member of a stored session's `claims`: the claims as JSON, sealed.
const SEALED_CLAIMS: &str = "sealed";

/// First part of what a cached document's tag covers, so that no other tag made with the
/// same key could pass for a document's.
const DOCUMENT_TAG_LABEL: &str = "bff provider document";

/// The field an API route's token is bound to: its target too, so that two routes'
/// tokens swapped inside one item do not open.
fn api_token_field(target: &crate::domain::routes::TokenTarget) -> String {
    format!("api_token {}", serde_json::to_string(target).unwrap_or_default())
}

/// How many opened sessions a process keeps at most; when full, it starts again empty.
const OPENED_SESSIONS: usize = 1024;

/// `inner`, with tokens and personal claims sealed and cached documents authenticated.
pub struct SealedStore {
    inner: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    opened: OpenedSessions,
}

/// Sessions this process opened, each under its store key with the item it was opened
/// from. A session read again with the very same sealed values opens to the very same
/// plaintexts, so those are taken from here instead of being opened again (a warm API call
/// then skips the key derivations and decryptions); any other sealed value, a tampered one
/// included, is opened afresh and must verify. What the store keeps in the clear
/// (expiries, version, lease) always comes from the item just read.
#[derive(Default)]
struct OpenedSessions(Mutex<HashMap<String, (SessionRecord, SessionRecord)>>);

impl OpenedSessions {
    /// The opened session kept for `key`, if it was opened from the sealed values `stored` has.
    fn get(&self, key: &StoreKey, stored: &SessionRecord) -> Option<SessionRecord> {
        let kept = self.0.lock().ok()?;
        kept.get(key.as_str())
            .filter(|(from, _)| same_sealed_values(from, stored))
            .map(|(_, opened)| opened.clone())
    }

    fn keep(&self, key: &StoreKey, stored: SessionRecord, opened: &SessionRecord) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() >= OPENED_SESSIONS && !kept.contains_key(key.as_str()) {
                kept.clear();
            }
            kept.insert(key.as_str().to_owned(), (stored, opened.clone()));
        }
    }

    /// Drops what is kept for `key`: its session was written or deleted.
    fn forget(&self, key: &StoreKey) {
        if let Ok(mut kept) = self.0.lock() {
            kept.remove(key.as_str());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|kept| kept.len()).unwrap_or_default()
    }
}

/// Whether `a` and `b` hold the same sealed values in the same fields (route tokens with
/// the same targets), so they open to the same plaintexts.
fn same_sealed_values(a: &SessionRecord, b: &SessionRecord) -> bool {
    a.access_token.secret() == b.access_token.secret()
        && a.refresh_token.as_ref().map(|t| t.secret()) == b.refresh_token.as_ref().map(|t| t.secret())
        && a.id_token.secret() == b.id_token.secret()
        && a.dpop_key.as_ref().map(|k| k.secret()) == b.dpop_key.as_ref().map(|k| k.secret())
        && a.claims == b.claims
        && a.userinfo == b.userinfo
        && a.api_tokens.len() == b.api_tokens.len()
        && a.api_tokens
            .iter()
            .zip(&b.api_tokens)
            .all(|(x, y)| x.target == y.target && x.access_token.secret() == y.access_token.secret())
}

/// `stored` with the plaintexts of `opened`, which was opened from the same sealed values.
fn with_plaintexts(mut stored: SessionRecord, opened: SessionRecord) -> SessionRecord {
    stored.access_token = opened.access_token;
    stored.refresh_token = opened.refresh_token;
    stored.id_token = opened.id_token;
    stored.dpop_key = opened.dpop_key;
    stored.claims = opened.claims;
    stored.userinfo = opened.userinfo;
    for (api, plain) in stored.api_tokens.iter_mut().zip(opened.api_tokens) {
        api.access_token = plain.access_token;
    }
    stored
}

impl SealedStore {
    /// Seals what goes into `inner` with `sealer`.
    pub fn new(inner: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        Self {
            inner,
            sealer,
            opened: OpenedSessions::default(),
        }
    }

    fn seal_session(&self, key: &StoreKey, s: &SessionRecord) -> Result<SessionRecord, StoreError> {
        let item = key.as_str();
        let encode = |claims: &serde_json::Map<String, serde_json::Value>| {
            serde_json::to_string(claims)
                .map_err(|e| StoreError::Corrupt(format!("session claims not encodable ({:?})", e.classify())))
        };
        let claims = encode(&s.claims)?;
        let mut sealed = s.clone();
        sealed.access_token = AccessToken::new(self.sealer.seal(s.access_token.secret(), item, ACCESS_TOKEN));
        sealed.refresh_token = s
            .refresh_token
            .as_ref()
            .map(|t| RefreshToken::new(self.sealer.seal(t.secret(), item, REFRESH_TOKEN)));
        sealed.id_token = IdToken::new(self.sealer.seal(s.id_token.secret(), item, ID_TOKEN));
        sealed.dpop_key = s
            .dpop_key
            .as_ref()
            .map(|k| DpopKeySecret::new(self.sealer.seal(k.secret(), item, DPOP_KEY)));
        sealed.claims = serde_json::Map::from_iter([(
            SEALED_CLAIMS.to_owned(),
            serde_json::Value::String(self.sealer.seal(&claims, item, CLAIMS)),
        )]);
        sealed.userinfo = match &s.userinfo {
            Some(userinfo) => Some(serde_json::Map::from_iter([(
                SEALED_CLAIMS.to_owned(),
                serde_json::Value::String(self.sealer.seal(&encode(userinfo)?, item, USERINFO)),
            )])),
            None => None,
        };
        for api in &mut sealed.api_tokens {
            let field = api_token_field(&api.target);
            api.access_token = AccessToken::new(self.sealer.seal(api.access_token.secret(), item, &field));
        }
        Ok(sealed)
    }

    /// `s` opened, or its plaintexts as kept from an earlier read of the same sealed values.
    fn open_session(&self, key: &StoreKey, s: SessionRecord) -> Result<SessionRecord, SealError> {
        if let Some(opened) = self.opened.get(key, &s) {
            return Ok(with_plaintexts(s, opened));
        }
        let stored = s.clone();
        let opened = self.open_every_value(key, s)?;
        self.opened.keep(key, stored, &opened);
        Ok(opened)
    }

    fn open_every_value(&self, key: &StoreKey, s: SessionRecord) -> Result<SessionRecord, SealError> {
        let item = key.as_str();
        let mut opened = s;
        opened.access_token = AccessToken::new(self.sealer.open(opened.access_token.secret(), item, ACCESS_TOKEN)?);
        opened.refresh_token = match &opened.refresh_token {
            Some(t) => Some(RefreshToken::new(self.sealer.open(t.secret(), item, REFRESH_TOKEN)?)),
            None => None,
        };
        opened.id_token = IdToken::new(self.sealer.open(opened.id_token.secret(), item, ID_TOKEN)?);
        opened.dpop_key = match &opened.dpop_key {
            Some(k) => Some(DpopKeySecret::new(self.sealer.open(k.secret(), item, DPOP_KEY)?)),
            None => None,
        };
        opened.claims = self.open_claims(&opened.claims, item, CLAIMS)?;
        opened.userinfo = match &opened.userinfo {
            Some(sealed) => Some(self.open_claims(sealed, item, USERINFO)?),
            None => None,
        };
        for api in &mut opened.api_tokens {
            let field = api_token_field(&api.target);
            api.access_token = AccessToken::new(self.sealer.open(api.access_token.secret(), item, &field)?);
        }
        Ok(opened)
    }

    /// Claims sealed as the one member `sealed` of `stored`, bound to `item` and `field`.
    fn open_claims(
        &self,
        stored: &serde_json::Map<String, serde_json::Value>,
        item: &str,
        field: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SealError> {
        let sealed = match stored.get(SEALED_CLAIMS) {
            Some(serde_json::Value::String(sealed)) if stored.len() == 1 => sealed,
            // Claims in the clear, or beside the sealed ones: not written by this store.
            _ => return Err(SealError::DoesNotOpen),
        };
        let claims = self.sealer.open(sealed, item, field)?;
        serde_json::from_str(&claims).map_err(|_| SealError::DoesNotOpen)
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

    /// `document` as cached: `<expires_at> <tag>\n<document>`.
    fn wrap_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> String {
        let expires = expires_at.to_string();
        let tag = self.sealer.mac(&[DOCUMENT_TAG_LABEL, key.as_str(), &expires, document]);
        format!("{expires} {tag}\n{document}")
    }

    /// The document `stored` under `key` if its tag verifies; `None` when the expiry the
    /// tag covers has passed at `now` (a forged `ttl` attribute cannot extend it).
    fn unwrap_document<'a>(&self, key: &StoreKey, stored: &'a str, now: i64) -> Result<Option<&'a str>, SealError> {
        let (header, document) = stored.split_once('\n').ok_or(SealError::NotAuthentic)?;
        let (expires, tag) = header.split_once(' ').ok_or(SealError::NotAuthentic)?;
        self.sealer
            .verify_mac(tag, &[DOCUMENT_TAG_LABEL, key.as_str(), expires, document])?;
        let expires_at: i64 = expires.parse().map_err(|_| SealError::NotAuthentic)?;
        Ok((now < expires_at).then_some(document))
    }
}

#[async_trait]
impl TransactionStore for SealedStore {
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError> {
        let sealed = LoginTransaction {
            pkce_verifier: PkceVerifier::new(self.sealer.seal(tx.pkce_verifier.secret(), key.as_str(), PKCE_VERIFIER)),
            dpop_key: tx
                .dpop_key
                .as_ref()
                .map(|k| DpopKeySecret::new(self.sealer.seal(k.secret(), key.as_str(), DPOP_KEY))),
            ..tx.copy()
        };
        self.inner.put_transaction(key, &sealed).await
    }

    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError> {
        let Some(tx) = self.inner.take_transaction(key, now).await? else {
            return Ok(None);
        };
        let opened = self
            .sealer
            .open(tx.pkce_verifier.secret(), key.as_str(), PKCE_VERIFIER)
            .and_then(|verifier| {
                let dpop_key = match &tx.dpop_key {
                    Some(k) => Some(DpopKeySecret::new(self.sealer.open(
                        k.secret(),
                        key.as_str(),
                        DPOP_KEY,
                    )?)),
                    None => None,
                };
                Ok((verifier, dpop_key))
            });
        match opened {
            Ok((verifier, dpop_key)) => Ok(Some(LoginTransaction {
                pkce_verifier: PkceVerifier::new(verifier),
                dpop_key,
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
        self.opened.forget(key);
        self.inner.put_session(key, &self.seal_session(key, session)?).await
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let stored = self.inner.get_session(key, now).await?;
        Ok(self.opened_or_absent(key, stored))
    }

    async fn update_session(&self, key: &StoreKey, session: &SessionRecord, expected: u64) -> Result<(), StoreError> {
        self.opened.forget(key);
        self.inner
            .update_session(key, &self.seal_session(key, session)?, expected)
            .await
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        let deleted = self.inner.delete_session(key).await?;
        let deleted = self.opened_or_absent(key, deleted);
        self.opened.forget(key);
        Ok(deleted)
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        self.opened.forget(key);
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
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError> {
        let Some(stored) = self.inner.get_document(key, now).await? else {
            return Ok(None);
        };
        match self.unwrap_document(key, &stored, now) {
            Ok(document) => Ok(document.map(str::to_owned)),
            Err(e) => {
                tracing::warn!(error = %e, "a cached provider document is not authentic; fetched again");
                Ok(None)
            }
        }
    }

    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError> {
        let stored = self.wrap_document(key, document, expires_at);
        self.inner.put_document(key, &stored, expires_at).await
    }
}

#[async_trait]
impl ClientTokenStore for SealedStore {
    async fn get_client_token(
        &self,
        key: &StoreKey,
        consistent: bool,
    ) -> Result<Option<ClientTokenRecord>, StoreError> {
        let Some(mut record) = self.inner.get_client_token(key, consistent).await? else {
            return Ok(None);
        };
        if let Some(token) = &record.access_token {
            match self.sealer.open(token.secret(), key.as_str(), ACCESS_TOKEN) {
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
            .map(|t| AccessToken::new(self.sealer.seal(t.secret(), key.as_str(), ACCESS_TOKEN)));
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
            claims: serde_json::json!({
                "sub": "alice",
                "name": "Alice Plain",
                "email": "alice-plain@example.com",
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            id_token: IdToken::new("id-token-plain"),
            access_token: AccessToken::new("access-token-plain"),
            access_token_type: crate::domain::session::TokenType::DPoP,
            dpop_key: Some(DpopKeySecret::new("dpop-key-plain")),
            access_expires_at: Some(i64::MAX / 2),
            access_issued_at: 0,
            refresh_token: Some(RefreshToken::new("refresh-token-plain")),
            created_at: 0,
            expires_at: i64::MAX / 2,
            idle_expires_at: i64::MAX / 2,
            version: 1,
            refresh_lease: None,
            refresh_started_at: None,
            user_agent: None,
            api_tokens: vec![crate::domain::session::ApiToken {
                target: crate::domain::routes::TokenTarget {
                    resource: Some("https://orders.example".into()),
                    ..Default::default()
                },
                access_token: AccessToken::new("api-token-plain"),
                token_type: crate::domain::session::TokenType::DPoP,
                expires_at: None,
                issued_at: 0,
            }],
            userinfo: serde_json::json!({"sub": "alice", "phone_number": "+1 555 plain"})
                .as_object()
                .cloned(),
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
    async fn the_inner_store_holds_only_sealed_tokens_and_claims() {
        let (inner, sealed, key) = stores_with_a_session("h1").await;
        let raw = raw_session(&inner, &key).await;
        let raw_json = serde_json::to_string(&raw).expect("json");
        assert!(
            !raw_json.contains("plain"),
            "no plaintext token or claim in the store: {raw_json}"
        );
        assert!(!raw_json.contains("email"), "not even a claim's name: {raw_json}");
        assert_eq!(raw.sub, "alice", "the index attribute stays readable");
        let opened = sealed.get_session(&key, 0).await.expect("get").expect("opens");
        assert_eq!(opened.access_token.secret(), "access-token-plain");
        assert_eq!(opened.refresh_token.expect("refresh").secret(), "refresh-token-plain");
        assert_eq!(opened.api_tokens[0].access_token.secret(), "api-token-plain");
        assert_eq!(opened.dpop_key.expect("dpop key").secret(), "dpop-key-plain");
        assert_eq!(opened.access_token_type, crate::domain::session::TokenType::DPoP);
        assert_eq!(opened.claims, record().claims);
        assert_eq!(opened.userinfo, record().userinfo);
        assert!(
            !raw_json.contains("phone_number"),
            "nor of a userinfo claim: {raw_json}"
        );
    }

    /// `value` with its last character changed: a sealed value tampered with.
    fn tampered(value: &str) -> String {
        let mut tampered = value.to_owned();
        let last = if tampered.pop() == Some('A') { 'B' } else { 'A' };
        tampered.push(last);
        tampered
    }

    #[tokio::test]
    async fn a_session_read_again_reuses_its_plaintexts_but_any_changed_sealed_value_must_open() {
        type Tamper = fn(&mut SessionRecord);
        let tampers: [(&str, Tamper); 7] = [
            ("access token", |r| {
                r.access_token = AccessToken::new(tampered(r.access_token.secret()))
            }),
            ("refresh token", |r| {
                r.refresh_token = r
                    .refresh_token
                    .as_ref()
                    .map(|t| RefreshToken::new(tampered(t.secret())));
            }),
            ("ID token", |r| r.id_token = IdToken::new(tampered(r.id_token.secret()))),
            ("DPoP key", |r| {
                r.dpop_key = r.dpop_key.as_ref().map(|k| DpopKeySecret::new(tampered(k.secret())));
            }),
            ("claims", |r| {
                if let Some(serde_json::Value::String(sealed)) = r.claims.get_mut(SEALED_CLAIMS) {
                    *sealed = tampered(sealed);
                }
            }),
            ("userinfo", |r| {
                if let Some(serde_json::Value::String(sealed)) =
                    r.userinfo.as_mut().and_then(|u| u.get_mut(SEALED_CLAIMS))
                {
                    *sealed = tampered(sealed);
                }
            }),
            ("route token", |r| {
                let token = &mut r.api_tokens[0].access_token;
                *token = AccessToken::new(tampered(token.secret()));
            }),
        ];
        for (name, tamper) in tampers {
            let (inner, sealed, key) = stores_with_a_session("kept").await;
            let first = sealed.get_session(&key, 0).await.expect("get").expect("opens");
            assert_eq!(sealed.opened.len(), 1, "kept after the first read");
            // Read again unchanged: the same plaintexts.
            let again = sealed.get_session(&key, 0).await.expect("get").expect("opens again");
            assert_eq!(again.access_token, first.access_token);
            assert_eq!(again.claims, first.claims);
            let mut raw = raw_session(&inner, &key).await;
            tamper(&mut raw);
            raw.version = 2;
            inner.update_session(&key, &raw, 1).await.expect("tamper");
            assert!(
                sealed.get_session(&key, 0).await.expect("get").is_none(),
                "a tampered {name} must void the session though it was read before"
            );
        }
    }

    #[tokio::test]
    async fn what_the_store_keeps_in_the_clear_comes_from_the_item_just_read() {
        let (inner, sealed, key) = stores_with_a_session("clear").await;
        sealed.get_session(&key, 0).await.expect("get").expect("opens");
        let mut raw = raw_session(&inner, &key).await;
        raw.version = 2;
        raw.idle_expires_at = 1234;
        raw.refresh_started_at = Some(99);
        inner.update_session(&key, &raw, 1).await.expect("update");
        let read = sealed.get_session(&key, 0).await.expect("get").expect("opens");
        assert_eq!(
            (read.version, read.idle_expires_at, read.refresh_started_at),
            (2, 1234, Some(99))
        );
        assert_eq!(read.access_token.secret(), "access-token-plain");
    }

    #[tokio::test]
    async fn written_or_deleted_sessions_are_forgotten_and_the_kept_ones_are_bounded() {
        let (_inner, sealed, key) = stores_with_a_session("forget").await;
        sealed.get_session(&key, 0).await.expect("get");
        sealed.update_session(&key, &record(), 1).await.expect("update");
        assert_eq!(sealed.opened.len(), 0, "an update forgets the plaintexts");
        sealed.get_session(&key, 0).await.expect("get");
        assert!(sealed.delete_session(&key).await.expect("delete").is_some());
        assert_eq!(sealed.opened.len(), 0, "a logout leaves no plaintext behind");
        for n in 0..=OPENED_SESSIONS {
            let key = StoreKey::session(&format!("many-{n}"));
            sealed.put_session(&key, &record()).await.expect("put");
            sealed.get_session(&key, 0).await.expect("get").expect("opens");
        }
        assert!(sealed.opened.len() <= OPENED_SESSIONS);
    }

    #[tokio::test]
    async fn tokens_swapped_between_fields_of_one_item_read_as_absent() {
        let (inner, sealed, key) = stores_with_a_session("swap").await;
        let mut raw = raw_session(&inner, &key).await;
        let refresh = raw.refresh_token.take().expect("refresh");
        raw.refresh_token = Some(RefreshToken::new(raw.access_token.secret()));
        raw.access_token = AccessToken::new(refresh.secret());
        raw.version = 2;
        inner.update_session(&key, &raw, 1).await.expect("swap");
        assert!(sealed.get_session(&key, 0).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn route_tokens_swapped_between_targets_read_as_absent() {
        let (inner, sealed) = stores();
        let key = StoreKey::session("routes");
        let mut session = record();
        let mut billing = session.api_tokens[0].clone();
        billing.target.resource = Some("https://billing.example".into());
        billing.access_token = AccessToken::new("billing-token-plain");
        session.api_tokens.push(billing);
        sealed.put_session(&key, &session).await.expect("put");
        assert_eq!(
            sealed
                .get_session(&key, 0)
                .await
                .expect("get")
                .expect("opens")
                .api_tokens
                .len(),
            2
        );
        let mut raw = raw_session(&inner, &key).await;
        let first = raw.api_tokens[0].access_token.clone();
        raw.api_tokens[0].access_token = raw.api_tokens[1].access_token.clone();
        raw.api_tokens[1].access_token = first;
        raw.version = 2;
        inner.update_session(&key, &raw, 1).await.expect("swap");
        assert!(sealed.get_session(&key, 0).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn a_session_whose_claims_are_not_sealed_reads_as_absent() {
        let (inner, sealed, key) = stores_with_a_session("clear").await;
        let mut raw = raw_session(&inner, &key).await;
        raw.claims.insert("name".into(), "Mallory".into());
        raw.version = 2;
        inner.update_session(&key, &raw, 1).await.expect("add a claim");
        assert!(sealed.get_session(&key, 0).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn userinfo_claims_in_the_clear_or_moved_from_the_claims_field_read_as_absent() {
        let (inner, sealed, key) = stores_with_a_session("userinfo").await;
        let raw = raw_session(&inner, &key).await;
        let mut clear = raw.clone();
        clear.userinfo = serde_json::json!({"sub": "alice", "name": "Mallory"})
            .as_object()
            .cloned();
        clear.version = 2;
        inner.update_session(&key, &clear, 1).await.expect("clear userinfo");
        assert!(sealed.get_session(&key, 0).await.expect("get").is_none());
        let mut moved = raw;
        moved.userinfo = Some(moved.claims.clone());
        moved.version = 3;
        inner.update_session(&key, &moved, 2).await.expect("moved claims");
        assert!(sealed.get_session(&key, 0).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn cached_documents_round_trip_until_their_expiry() {
        let (inner, sealed) = stores();
        let key = StoreKey::document("jwks", "https://idp.example", 0);
        sealed.put_document(&key, r#"{"keys":[]}"#, 100).await.expect("put");
        assert_eq!(
            sealed.get_document(&key, 99).await.expect("get").as_deref(),
            Some(r#"{"keys":[]}"#)
        );
        assert_eq!(sealed.get_document(&key, 100).await.expect("get"), None);
        let raw = inner.get_document(&key, 0).await.expect("get").expect("present");
        assert!(raw.starts_with("100 m1.k1."), "{raw}");
    }

    #[tokio::test]
    async fn documents_without_a_valid_tag_read_as_absent() {
        let (inner, sealed) = stores();
        let jwks = StoreKey::document("jwks", "https://idp.example", 0);
        let discovery = StoreKey::document("discovery", "https://idp.example", 0);
        let forged = r#"{"keys":[{"kty":"RSA","kid":"attacker"}]}"#;
        sealed.put_document(&jwks, r#"{"keys":[]}"#, 100).await.expect("put");
        let genuine = inner.get_document(&jwks, 0).await.expect("get").expect("present");
        let (header, _) = genuine.split_once('\n').expect("header");
        let (_, tag) = header.split_once(' ').expect("tag");
        let stranger = SealedStore::new(inner.clone(), Arc::new(Sealer::ephemeral()));
        let with_strangers_tag = {
            stranger.put_document(&jwks, forged, 100).await.expect("put");
            inner.get_document(&jwks, 0).await.expect("get").expect("present")
        };
        for (key, stored) in [
            // Written without the keys at all.
            (&jwks, forged.to_owned()),
            // Tagged with another key under the same key id.
            (&jwks, with_strangers_tag.replace(".ephemeral.", ".k1.")),
            // A genuine tag over another document.
            (&jwks, format!("100 {tag}\n{forged}")),
            // A genuine tag, its expiry moved on.
            (&jwks, format!("1000 {tag}\n{{\"keys\":[]}}")),
            // A genuine document of another kind.
            (&discovery, genuine.clone()),
        ] {
            inner.put_document(key, &stored, 1000).await.expect("forge");
            assert_eq!(sealed.get_document(key, 50).await.expect("get"), None, "{stored}");
        }
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
            raw.access_token.secret().starts_with("v2.k2."),
            "new writes use the new key"
        );
    }

    #[tokio::test]
    async fn pkce_verifiers_and_dpop_keys_are_sealed_too() {
        let (inner, sealed) = stores();
        let key = StoreKey::transaction("t1");
        let tx = LoginTransaction {
            pkce_verifier: PkceVerifier::new("verifier-plain"),
            nonce: "n".into(),
            return_to: "/".into(),
            expires_at: i64::MAX / 2,
            replaces_session: None,
            requirements: Default::default(),
            silent: false,
            dpop_key: Some(DpopKeySecret::new("dpop-key-plain")),
        };
        sealed.put_transaction(&key, &tx).await.expect("put");
        let copy = StoreKey::transaction("t2");
        let raw = inner.take_transaction(&key, 0).await.expect("take").expect("present");
        assert!(!raw.pkce_verifier.secret().contains("plain"));
        assert!(!raw.dpop_key.as_ref().expect("key").secret().contains("plain"));
        inner.put_transaction(&key, &raw).await.expect("put back");
        let opened = sealed.take_transaction(&key, 0).await.expect("take").expect("opens");
        assert_eq!(opened.pkce_verifier.secret(), "verifier-plain");
        assert_eq!(opened.dpop_key.expect("key").secret(), "dpop-key-plain");
        inner.put_transaction(&copy, &raw).await.expect("copy");
        assert!(
            sealed.take_transaction(&copy, 0).await.expect("take").is_none(),
            "bound to its key"
        );
    }
}
