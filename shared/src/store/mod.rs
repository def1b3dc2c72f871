//! Storage of login transactions and sessions, behind two narrow traits.
//!
//! The port is named by role ([`TransactionStore`], [`SessionStore`]); the adapters by
//! technology ([`memory`], [`dynamodb`]). Every handler asks for the narrowest trait it
//! needs, which matches the IAM actions its Lambda function is granted.
//!
//! Keys are always hashes ([`StoreKey`]): the store never sees a raw session id or state.
//! Expiry is enforced here as well as by TTL, because DynamoDB deletes expired items late
//! (hours), so an expired item must read as absent.

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod dynamodb;
pub mod memory;
pub mod sealed;

use async_trait::async_trait;

use crate::domain::secret::SessionId;
pub use crate::domain::session::{ClientTokenRecord, LoginTransaction, RefreshLease, SessionRecord};

/// How many copies of each cached provider document the store keeps (see
/// [`StoreKey::document`]): a read takes one at random, a provider fetch writes them all.
/// DynamoDB serves at most 3,000 read units a second per partition, so eight copies of a
/// JWKS that costs 1 unit per eventually consistent read carry 24,000 cold starts a
/// second before any copy throttles (BENCHMARKS.md, "Hot keys").
pub const DOCUMENT_COPIES: usize = 8;

/// A store key: a kind prefix and the SHA-256 of a browser-held secret, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// Key of the login transaction whose `state` hashes to `state_hash`.
    pub fn transaction(state_hash: &str) -> Self {
        Self(format!("tx#{state_hash}"))
    }

    /// Key of the session whose id hashes to `session_hash`.
    pub fn session(session_hash: &str) -> Self {
        Self(format!("session#{session_hash}"))
    }

    /// Key remembering one use of an identifier (a logout token's `jti`), by its hash.
    pub fn replay(id_hash: &str) -> Self {
        Self(format!("used#{id_hash}"))
    }

    /// Key of the BFF's client-credentials token for the target `target_id` (a stable
    /// serialisation of the target; hashed here).
    pub fn client_token(target_id: &str) -> Self {
        Self(format!("client#{}", crate::domain::secret::hash(target_id)))
    }

    /// Key of copy `copy` of a cached provider document (discovery, JWKS) for `issuer`.
    /// Every cold start reads one of these documents, so each is kept in
    /// [`DOCUMENT_COPIES`] items on as many partitions: one item alone would cap cold
    /// starts at what one DynamoDB partition serves.
    pub fn document(kind: &str, issuer: &str, copy: usize) -> Self {
        Self(format!("doc#{kind}#{}#{copy}", crate::domain::secret::hash(issuer)))
    }

    /// A key that never holds an item, for reads that only check or open the way to the
    /// store (readiness, a cold start's first connection). One of [`DOCUMENT_COPIES`] at
    /// random, as a document read takes: a burst of cold starts must not all read one item.
    pub fn probe() -> Self {
        Self::document("probe", "probe", rand::random_range(0..DOCUMENT_COPIES))
    }

    /// The key as stored (the table's partition key value).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The store key of a session id: a hash, never the id.
pub fn session_key(id: &SessionId) -> StoreKey {
    StoreKey::session(&id.hashed())
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item in another state (exists already, or its
    /// version moved on).
    #[error("conditional write failed")]
    Conflict,
    /// The backing store could not be reached or refused the call (throttling included).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item was present but could not be decoded.
    #[error("corrupt item: {0}")]
    Corrupt(String),
}

/// Login transactions: written once at login, consumed exactly once at the callback.
#[async_trait]
pub trait TransactionStore: Send + Sync {
    /// Writes a new transaction; [`StoreError::Conflict`] if the key already exists.
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError>;

    /// Atomically deletes and returns the transaction, or `None` when it is absent or
    /// expired at `now`. Two concurrent calls never both get `Some`.
    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError>;
}

/// Sessions keyed by the hash of the session id.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session; [`StoreError::Conflict`] if the key already exists.
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError>;

    /// Reads a session, `None` when absent or when its TTL has passed at `now`.
    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError>;

    /// Replaces a session if its stored version is `expected_version`; the new record's
    /// version is written as given. [`StoreError::Conflict`] when the version moved on or
    /// the session is gone.
    async fn update_session(
        &self,
        key: &StoreKey,
        session: &SessionRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;

    /// Deletes a session and returns what it held, `None` when there was nothing.
    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError>;

    /// Deletes a session only if its stored version is `expected`; `false` when the
    /// version moved on (someone else updated it) or the session is gone.
    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError>;
}

/// Finding sessions for back-channel logout, through secondary indexes, never a scan.
#[async_trait]
pub trait SessionIndex: Send + Sync {
    /// Keys of the sessions whose provider session id is `sid`.
    async fn sessions_with_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError>;

    /// Keys of every session of subject `sub`.
    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError>;
}

/// One-time use of identifiers, such as a logout token's `jti`.
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    /// Records `key` until `expires_at`; `false` when it was recorded already (a replay).
    async fn first_use(&self, key: &StoreKey, expires_at: i64) -> Result<bool, StoreError>;

    /// Forgets `key`, so that a use whose work failed half-way can be retried.
    async fn forget_use(&self, key: &StoreKey) -> Result<(), StoreError>;
}

/// Public documents shared by every instance (the provider's discovery and JWKS), so a
/// cold start need not fetch them from the provider. [`sealed::SealedStore`] tags them,
/// and reads one without a valid tag as absent.
#[async_trait]
pub trait DocumentCache: Send + Sync {
    /// The document at `key`, `None` when absent or expired at `now`.
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError>;

    /// Stores `document` at `key` until `expires_at`, replacing what was there.
    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError>;
}

/// The BFF's own client-credentials tokens, one item per target, shared by every
/// instance so that one grant serves them all.
#[async_trait]
pub trait ClientTokenStore: Send + Sync {
    /// The record at `key`, whatever its expiry (the caller judges the token's age).
    /// `consistent: false` may return a record up to about a second old (DynamoDB's
    /// eventually consistent read, half the cost and served by every replica);
    /// `consistent: true` returns the last write.
    async fn get_client_token(&self, key: &StoreKey, consistent: bool)
    -> Result<Option<ClientTokenRecord>, StoreError>;

    /// Writes `record` if the stored version is `expected` (`None`: if there is no record
    /// yet); [`StoreError::Conflict`] otherwise. The item lives until `keep_until`.
    async fn put_client_token(
        &self,
        key: &StoreKey,
        record: &ClientTokenRecord,
        expected: Option<u64>,
        keep_until: i64,
    ) -> Result<(), StoreError>;
}

/// Every store role: what `bff-local` and the test harness hand to every handler.
pub trait Store:
    TransactionStore + SessionStore + SessionIndex + ReplayGuard + DocumentCache + ClientTokenStore
{
}

impl<T: TransactionStore + SessionStore + SessionIndex + ReplayGuard + DocumentCache + ClientTokenStore> Store for T {}
