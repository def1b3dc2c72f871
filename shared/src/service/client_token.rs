//! The BFF's own client-credentials tokens, for API routes whose token kind is `client`.
//!
//! One token per target (resource, audience, scope) serves every user and every
//! instance: it is kept in the store (sealed), renewed before it expires by exactly one
//! caller at a time across instances (a lease in the token's item, as for session
//! refreshes), and remembered in process memory meanwhile, so that a steady-state call
//! costs no store read for it. Client credentials never rotate, so a renewal whose write
//! fails still serves its caller; the next caller renews again.
//!
//! Every new instance reads the one item of a target, so the first read is eventually
//! consistent: half the read units, and served by any of the partition's replicas. A
//! stale record is harmless when its token is still valid and not due (any token the
//! provider issued for the target serves); anything else (no record, a token expired or
//! due, a lease of another instance's grant) is read again strongly consistent before the
//! instance decides to renew or wait, so renewals stay as rare as before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::refresh::{LEASE_MS, RefreshError};
use crate::domain::clock::Clock;
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, random_token};
use crate::domain::session::{ClientTokenRecord, HeldToken, RefreshLease};
use crate::oidc::{Oidc, OidcError, TokenSet};
use crate::store::{ClientTokenStore, StoreError, StoreKey};

/// Lifetime assumed for a token whose answer had no `expires_in`.
pub const ASSUMED_LIFETIME_SECS: i64 = 300;
/// An upstream's 401 forces a renewal only of a token at least this old, so a stream of
/// 401s never becomes a stream of grants.
pub const REJECTION_MIN_AGE_SECS: i64 = 30;
/// How long a token item outlives its token in the table (then TTL removes it).
const KEEP_SECS: i64 = 24 * 60 * 60;
/// How often a waiting caller re-reads the item.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// Part of the lease kept for writing the token after the grant.
const WRITE_BUDGET_MS: i64 = 2_000;

/// The provider as client tokens need it.
#[async_trait]
pub trait ClientGrant: Send + Sync {
    /// Makes discovery ready, so that it does not happen under the lease.
    async fn prepare(&self) -> Result<(), OidcError>;

    /// The client-credentials grant for `target`.
    async fn client_credentials(&self, target: &TokenTarget) -> Result<TokenSet, OidcError>;
}

#[async_trait]
impl ClientGrant for Oidc {
    async fn prepare(&self) -> Result<(), OidcError> {
        self.metadata().await.map(|_| ())
    }

    async fn client_credentials(&self, target: &TokenTarget) -> Result<TokenSet, OidcError> {
        Oidc::client_credentials(self, target).await
    }
}

/// This process's memory of client tokens, in front of the store.
pub struct ClientTokens {
    memo: Mutex<HashMap<TokenTarget, HeldToken>>,
    // Whether the first store read of a call is eventually consistent.
    eventual_first: bool,
}

impl Default for ClientTokens {
    fn default() -> Self {
        Self {
            memo: Mutex::default(),
            eventual_first: true,
        }
    }
}

impl ClientTokens {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty memory whose every store read is strongly consistent: the read order
    /// before eventually consistent first reads, for the capacity simulation
    /// (`bff-bench hotkeys`).
    pub fn strongly_consistent_only() -> Self {
        Self {
            eventual_first: false,
            ..Self::default()
        }
    }

    /// A usable token for `target`: remembered, stored, or obtained now. `rejected` is a
    /// token an upstream just refused; it is renewed if it is not brand new.
    pub async fn token(
        &self,
        store: &dyn ClientTokenStore,
        grant: &dyn ClientGrant,
        clock: &dyn Clock,
        target: &TokenTarget,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, RefreshError> {
        let usable = |held: &HeldToken, now: i64| {
            let refused = rejected == Some(&held.access_token) && now - held.issued_at >= REJECTION_MIN_AGE_SECS;
            !refused && !held.is_due(now) && held.is_valid(now)
        };
        if let Some(held) = self.remembered(target)
            && usable(&held, clock.now())
        {
            return Ok(held.access_token);
        }

        let key = StoreKey::client_token(&serde_json::to_string(target).unwrap_or_default());
        if self.eventual_first
            && let Some(held) = store
                .get_client_token(&key, false)
                .await?
                .as_ref()
                .and_then(ClientTokenRecord::held)
            && usable(&held, clock.now())
        {
            self.remember(target, held.clone());
            return Ok(held.access_token);
        }
        let give_up = Instant::now() + Duration::from_millis(LEASE_MS as u64) + Duration::from_secs(2);
        let mut prepared = false;
        loop {
            let now_ms = clock.now_ms();
            let now = now_ms / 1000;
            let record = store.get_client_token(&key, true).await?;
            let held = record.as_ref().and_then(ClientTokenRecord::held);
            if let Some(held) = &held
                && usable(held, now)
            {
                self.remember(target, held.clone());
                return Ok(held.access_token.clone());
            }
            let valid = held
                .filter(|h| rejected != Some(&h.access_token) && h.is_valid(now))
                .map(|h| h.access_token);

            if record
                .as_ref()
                .and_then(|r| r.lease.as_ref())
                .is_some_and(|l| l.is_held(now_ms))
            {
                if let Some(token) = valid {
                    return Ok(token);
                }
                if Instant::now() >= give_up {
                    return Err(RefreshError::InProgress);
                }
                tokio::time::sleep(WAIT_POLL).await;
                continue;
            }
            if !prepared {
                if let Err(e) = grant.prepare().await {
                    return valid.ok_or(RefreshError::Provider(e));
                }
                prepared = true;
                continue;
            }

            let lease = RefreshLease {
                owner: random_token(16),
                until_ms: now_ms + LEASE_MS,
            };
            let expected = record.as_ref().map(|r| r.version);
            let leased = ClientTokenRecord {
                lease: Some(lease.clone()),
                version: expected.unwrap_or(0) + 1,
                ..record.unwrap_or(ClientTokenRecord {
                    access_token: None,
                    expires_at: now,
                    issued_at: now,
                    lease: None,
                    version: 0,
                })
            };
            match store.put_client_token(&key, &leased, expected, now + KEEP_SECS).await {
                Ok(()) => return self.renew(store, grant, clock, target, &key, leased, valid).await,
                Err(StoreError::Conflict) => {
                    // A write whose answer was lost and that was retried reads as a
                    // conflict: when the stored lease is ours, the first attempt landed.
                    if let Some(stored) = store.get_client_token(&key, true).await?
                        && stored.lease.as_ref() == Some(&lease)
                    {
                        return self.renew(store, grant, clock, target, &key, stored, valid).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Obtains the token under the lease held in `leased` and writes it.
    #[allow(clippy::too_many_arguments)]
    async fn renew(
        &self,
        store: &dyn ClientTokenStore,
        grant: &dyn ClientGrant,
        clock: &dyn Clock,
        target: &TokenTarget,
        key: &StoreKey,
        leased: ClientTokenRecord,
        valid: Option<AccessToken>,
    ) -> Result<AccessToken, RefreshError> {
        let until_ms = leased.lease.as_ref().map_or(0, |l| l.until_ms);
        let budget_ms = (until_ms - clock.now_ms() - WRITE_BUDGET_MS).max(0) as u64;
        let answer = tokio::time::timeout(Duration::from_millis(budget_ms), grant.client_credentials(target))
            .await
            .unwrap_or(Err(OidcError::Timeout));
        let now = clock.now();
        let (record, outcome) = match answer {
            Ok(tokens) => {
                let lifetime = tokens.expires_in.unwrap_or(ASSUMED_LIFETIME_SECS);
                let record = ClientTokenRecord {
                    access_token: Some(tokens.access_token.clone()),
                    expires_at: now.saturating_add(lifetime),
                    issued_at: now,
                    lease: None,
                    version: leased.version + 1,
                };
                (record, Ok(tokens.access_token))
            }
            Err(e) => {
                // Release the lease, keeping whatever token was there.
                let record = ClientTokenRecord {
                    lease: None,
                    version: leased.version + 1,
                    ..leased.clone()
                };
                let outcome = match (e, valid) {
                    (_, Some(token)) => Ok(token),
                    (OidcError::Rejected { error }, None) => Err(RefreshError::TargetRefused { error }),
                    (e, None) => Err(RefreshError::Provider(e)),
                };
                (record, outcome)
            }
        };
        let keep_until = record.expires_at.max(now) + KEEP_SECS;
        if let Err(e) = store
            .put_client_token(key, &record, Some(leased.version), keep_until)
            .await
        {
            // Nothing is lost: client credentials do not rotate, and the lease lapses.
            tracing::warn!(error = %e, "could not save the client token; the next caller renews it");
        }
        if let Some(held) = record.held()
            && outcome.as_ref().is_ok_and(|token| *token == held.access_token)
        {
            self.remember(target, held);
        }
        outcome
    }

    fn remembered(&self, target: &TokenTarget) -> Option<HeldToken> {
        self.memo.lock().ok()?.get(target).cloned()
    }

    fn remember(&self, target: &TokenTarget, held: HeldToken) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.insert(target.clone(), held);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::join_all;

    use super::*;
    use crate::service::tokio_clock::TokioClock;
    use crate::store::memory::MemoryStore;

    /// A provider issuing `cc-1`, `cc-2`, ... after `delay`, or refusing with `refuse`.
    struct FakeGrant {
        grants: AtomicUsize,
        delay: Duration,
        refuse: Option<&'static str>,
    }

    impl FakeGrant {
        fn new(delay: Duration) -> Self {
            Self {
                grants: AtomicUsize::new(0),
                delay,
                refuse: None,
            }
        }
    }

    #[async_trait]
    impl ClientGrant for FakeGrant {
        async fn prepare(&self) -> Result<(), OidcError> {
            Ok(())
        }

        async fn client_credentials(&self, _target: &TokenTarget) -> Result<TokenSet, OidcError> {
            tokio::time::sleep(self.delay).await;
            if let Some(error) = self.refuse {
                return Err(OidcError::Rejected { error: error.into() });
            }
            let n = self.grants.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(TokenSet {
                token_type: Default::default(),
                access_token: AccessToken::new(format!("cc-{n}")),
                refresh_token: None,
                expires_in: Some(300),
                id_token: None,
            })
        }
    }

    /// A store that records the consistency of every client-token read and, once `lag`
    /// holds a record, answers eventually consistent reads with it (a replica behind).
    struct Reads {
        inner: MemoryStore,
        reads: Mutex<Vec<bool>>,
        lag: Mutex<Option<ClientTokenRecord>>,
    }

    impl Reads {
        fn new() -> Self {
            Self {
                inner: MemoryStore::new(),
                reads: Mutex::new(Vec::new()),
                lag: Mutex::new(None),
            }
        }

        /// The consistency of the reads so far (`true`: strongly consistent), then forgets them.
        fn take(&self) -> Vec<bool> {
            std::mem::take(&mut *self.reads.lock().expect("reads"))
        }
    }

    #[async_trait]
    impl ClientTokenStore for Reads {
        async fn get_client_token(
            &self,
            key: &StoreKey,
            consistent: bool,
        ) -> Result<Option<ClientTokenRecord>, StoreError> {
            self.reads.lock().expect("reads").push(consistent);
            let lagging = self.lag.lock().expect("lag").clone();
            match lagging {
                Some(old) if !consistent => Ok(Some(old)),
                _ => self.inner.get_client_token(key, consistent).await,
            }
        }

        async fn put_client_token(
            &self,
            key: &StoreKey,
            record: &ClientTokenRecord,
            expected: Option<u64>,
            keep_until: i64,
        ) -> Result<(), StoreError> {
            self.inner.put_client_token(key, record, expected, keep_until).await
        }
    }

    fn stored(store: &MemoryStore, target: &TokenTarget) -> ClientTokenRecord {
        let key = StoreKey::client_token(&serde_json::to_string(target).expect("target"));
        let record = futures_util::FutureExt::now_or_never(store.get_client_token(&key, true));
        record.expect("memory answers at once").expect("read").expect("stored")
    }

    /// What the read-order tests share: a store of [`Reads`], a provider answering at
    /// once, the test's clock; each token is asked for by a new instance.
    struct Replica {
        store: Reads,
        grant: FakeGrant,
        clock: TokioClock,
    }

    impl Replica {
        fn new() -> Self {
            Self {
                store: Reads::new(),
                grant: FakeGrant::new(Duration::ZERO),
                clock: TokioClock::new(),
            }
        }

        /// A new instance's token; `rejected` is one an upstream just refused.
        async fn token(&self, rejected: Option<&AccessToken>) -> AccessToken {
            self.token_of(ClientTokens::new(), rejected).await
        }

        async fn token_of(&self, tokens: ClientTokens, rejected: Option<&AccessToken>) -> AccessToken {
            tokens
                .token(&self.store, &self.grant, &self.clock, &reports(), rejected)
                .await
                .expect("token")
        }

        /// The stored record as it is now.
        fn stored(&self) -> ClientTokenRecord {
            stored(&self.store.inner, &reports())
        }

        /// From now on a replica answers eventually consistent reads with `old`; the reads
        /// so far are forgotten.
        fn lag_behind_with(&self, old: ClientTokenRecord) {
            *self.store.lag.lock().expect("lag") = Some(old);
            self.store.take();
        }

        fn grants(&self) -> usize {
            self.grant.grants.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_instance_finds_a_valid_token_with_one_eventually_consistent_read() {
        let replica = Replica::new();
        let first = replica.token(None).await;
        let reads = replica.store.take();
        assert_eq!(
            reads[..2],
            [false, true],
            "nothing usable at first: read again strongly"
        );
        let again = replica.token(None).await;
        assert_eq!(again, first);
        assert_eq!(replica.store.take(), [false], "one eventually consistent read");
        assert_eq!(replica.grants(), 1);

        let before = replica.token_of(ClientTokens::strongly_consistent_only(), None).await;
        assert_eq!(before, first);
        assert_eq!(replica.store.take(), [true], "the read order before: one strong read");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_read_without_a_usable_token_is_read_again_strongly_consistent() {
        let replica = Replica::new();
        replica.token(None).await;
        let old = replica.stored();
        // The token is due; a renewal happens; a replica still holds the due record.
        tokio::time::advance(Duration::from_secs(299)).await;
        let renewed = replica.token(None).await;
        assert_eq!(renewed.secret(), "cc-2");
        replica.lag_behind_with(old);
        let token = replica.token(None).await;
        assert_eq!(token.secret(), "cc-2", "the renewed token, found by the strong read");
        assert_eq!(replica.store.take(), [false, true]);
        assert_eq!(replica.grants(), 2, "no grant for a stale replica");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_but_valid_token_serves_and_a_rejected_one_is_read_again() {
        let replica = Replica::new();
        let first = replica.token(None).await;
        let old = replica.stored();
        tokio::time::advance(Duration::from_secs(REJECTION_MIN_AGE_SECS as u64)).await;
        // An upstream refused `first`: renewed; a replica still holds `first`.
        let renewed = replica.token(Some(&first)).await;
        assert_eq!(renewed.secret(), "cc-2");
        replica.lag_behind_with(old);
        let stale = replica.token(None).await;
        assert_eq!(stale, first, "still valid: served from the replica");
        assert_eq!(replica.store.take(), [false]);
        let after_rejection = replica.token(Some(&first)).await;
        assert_eq!(after_rejection.secret(), "cc-2", "the strong read finds the renewal");
        assert_eq!(replica.store.take(), [false, true]);
        assert_eq!(replica.grants(), 2);
    }

    fn reports() -> TokenTarget {
        TokenTarget {
            scope: Some("reports:read".into()),
            ..TokenTarget::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_concurrent_calls_on_two_instances_make_one_grant() {
        let store = MemoryStore::new();
        let grant = FakeGrant::new(Duration::from_millis(300));
        let clock = TokioClock::new();
        let instances = [ClientTokens::new(), ClientTokens::new()];
        let target = reports();
        let calls = (0..20).map(|i| instances[i % 2].token(&store, &grant, &clock, &target, None));
        let tokens = join_all(calls).await;
        assert_eq!(grant.grants.load(Ordering::SeqCst), 1, "one grant for everyone");
        for token in tokens {
            assert_eq!(token.expect("token").secret(), "cc-1");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_renewed_when_due_and_targets_do_not_share_tokens() {
        let store = MemoryStore::new();
        let grant = FakeGrant::new(Duration::ZERO);
        let clock = TokioClock::new();
        let tokens = ClientTokens::new();
        let first = tokens
            .token(&store, &grant, &clock, &reports(), None)
            .await
            .expect("first");
        let again = tokens
            .token(&store, &grant, &clock, &reports(), None)
            .await
            .expect("again");
        assert_eq!((first.secret(), again.secret()), ("cc-1", "cc-1"));
        let other = TokenTarget {
            resource: Some("https://other.example".into()),
            ..TokenTarget::default()
        };
        let other_token = tokens.token(&store, &grant, &clock, &other, None).await.expect("other");
        assert_eq!(other_token.secret(), "cc-2", "another target gets its own token");
        tokio::time::advance(Duration::from_secs(299)).await;
        let renewed = tokens
            .token(&store, &grant, &clock, &reports(), None)
            .await
            .expect("renewed");
        assert_eq!(renewed.secret(), "cc-3", "renewed before it expires");
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_rejection_renews_only_a_token_older_than_the_window() {
        let store = MemoryStore::new();
        let grant = FakeGrant::new(Duration::ZERO);
        let clock = TokioClock::new();
        let tokens = ClientTokens::new();
        let first = tokens
            .token(&store, &grant, &clock, &reports(), None)
            .await
            .expect("first");
        for _ in 0..20 {
            let same = tokens.token(&store, &grant, &clock, &reports(), Some(&first)).await;
            assert_eq!(same.expect("token"), first, "a brand-new token is not renewed");
        }
        assert_eq!(grant.grants.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(REJECTION_MIN_AGE_SECS as u64)).await;
        let renewed = tokens.token(&store, &grant, &clock, &reports(), Some(&first)).await;
        assert_eq!(renewed.expect("token").secret(), "cc-2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_target_is_reported_as_such_and_the_lease_released() {
        let store = Arc::new(MemoryStore::new());
        let clock = TokioClock::new();
        let refusing = FakeGrant {
            refuse: Some("invalid_scope"),
            ..FakeGrant::new(Duration::ZERO)
        };
        let refused = ClientTokens::new()
            .token(store.as_ref(), &refusing, &clock, &reports(), None)
            .await;
        assert!(
            matches!(&refused, Err(RefreshError::TargetRefused { error }) if error == "invalid_scope"),
            "{refused:?}"
        );
        // The lease was released: another caller gets a token at once, not after a wait.
        let started = Instant::now();
        let token = ClientTokens::new()
            .token(
                store.as_ref(),
                &FakeGrant::new(Duration::ZERO),
                &clock,
                &reports(),
                None,
            )
            .await;
        assert_eq!(token.expect("token").secret(), "cc-1");
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
