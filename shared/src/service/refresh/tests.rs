//! The refresh state machine against in-memory fakes of its ports: the in-memory store
//! (optionally failing writes on demand), a scripted provider and a clock that follows
//! tokio's paused time. No process, no socket; each case runs in milliseconds of real
//! time. Cases marked "today" document behaviour the fault-tolerance work changes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::domain::secret::SessionId;
use crate::service::tokio_clock::TokioClock;
use crate::store::memory::MemoryStore;
use crate::store::session_key;

/// A provider answering the refresh grant from a script, after `delay`; its refreshed ID
/// tokens validate as naming `id_token_sub` (or fail validation when `None`).
#[derive(Default)]
struct FakeProvider {
    answers: Mutex<VecDeque<Result<TokenSet, OidcError>>>,
    presented: Mutex<Vec<String>>,
    targets: Mutex<Vec<TokenTarget>>,
    delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    id_token_sub: Mutex<Option<String>>,
}

/// Counts a grant in flight until dropped (a grant cut short by a timeout included).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeProvider {
    fn answering(answers: Vec<Result<TokenSet, OidcError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into()),
            ..Self::default()
        }
    }

    fn slowed(self, delay: Duration) -> Self {
        *self.delay.lock().expect("lock") = delay;
        self
    }

    fn with_id_tokens_for(self, sub: Option<&str>) -> Self {
        *self.id_token_sub.lock().expect("lock") = sub.map(str::to_owned);
        self
    }

    fn grants(&self) -> Vec<String> {
        self.presented.lock().expect("lock").clone()
    }
}

#[async_trait]
impl RefreshGrant for FakeProvider {
    async fn prepare(&self) -> Result<(), OidcError> {
        Ok(())
    }

    async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        target: &TokenTarget,
        _dpop: Option<&crate::domain::secret::DpopKeySecret>,
    ) -> Result<TokenSet, OidcError> {
        self.targets.lock().expect("lock").push(target.clone());
        self.presented
            .lock()
            .expect("lock")
            .push(refresh_token.secret().to_owned());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let _counted = InFlight(&self.in_flight);
        let delay = *self.delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        self.answers
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Err(OidcError::Unreachable("no scripted answer".into())))
    }

    async fn verify_refreshed_id_token(&self, _: &IdToken, _: i64) -> Result<VerifiedClaims, OidcError> {
        match self.id_token_sub.lock().expect("lock").clone() {
            Some(sub) => Ok(VerifiedClaims {
                claims: serde_json::json!({ "sub": sub, "name": "New Name" })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                sub,
                sid: None,
            }),
            None => Err(OidcError::InvalidIdToken("bad signature".into())),
        }
    }
}

/// The in-memory store, with every write failing as unavailable until `fail_until`.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_until: Mutex<Option<Instant>>,
    /// The next write lands, but its answer is lost and the retry finds the condition
    /// failed: a conflict, as the SDK reports it.
    lose_next_answer: AtomicBool,
    /// The next write lands, but its answer is lost and the retries fail too: unavailable.
    lose_next_answer_and_retries: AtomicBool,
}

impl FlakyStore {
    fn fail_writes_for(&self, outage: Duration) {
        *self.fail_until.lock().expect("lock") = Some(Instant::now() + outage);
    }
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError> {
        self.inner.put_session(key, session).await
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get_session(key, now).await
    }

    async fn update_session(&self, key: &StoreKey, session: &SessionRecord, expected: u64) -> Result<(), StoreError> {
        let failing = self
            .fail_until
            .lock()
            .expect("lock")
            .is_some_and(|until| Instant::now() < until);
        if failing {
            return Err(StoreError::Unavailable("injected write failure".into()));
        }
        self.inner.update_session(key, session, expected).await?;
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Conflict);
        }
        if self.lose_next_answer_and_retries.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected lost answer".into()));
        }
        Ok(())
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.delete_session(key).await
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        self.inner.delete_session_at(key, expected).await
    }
}

fn tokens_with_id_token(access: &str, refresh: &str) -> TokenSet {
    TokenSet {
        token_type: Default::default(),
        id_token: Some(IdToken::new("refreshed-id-token")),
        ..tokens(access, refresh)
    }
}

fn tokens(access: &str, refresh: &str) -> TokenSet {
    TokenSet {
        token_type: Default::default(),
        access_token: AccessToken::new(access),
        refresh_token: Some(RefreshToken::new(refresh)),
        expires_in: Some(300),
        id_token: None,
    }
}

/// One session in a store, on a clock that follows tokio's paused time.
struct Fixture {
    store: FlakyStore,
    clock: TokioClock,
    key: StoreKey,
    record: SessionRecord,
}

impl Fixture {
    /// A session whose access token (300 s) expires `expires_in` seconds from now,
    /// changed by `edit` before it is stored.
    async fn new(expires_in: i64, edit: impl FnOnce(&mut SessionRecord, &TokioClock)) -> Self {
        let (store, clock) = (FlakyStore::default(), TokioClock::new());
        let now = clock.now();
        let mut record = SessionRecord {
            access_token_type: Default::default(),
            dpop_key: None,
            sub: "alice".into(),
            sid: None,
            claims: serde_json::Map::new(),
            id_token: IdToken::new("id"),
            access_token: AccessToken::new("access-1"),
            access_expires_at: Some(now + expires_in),
            access_issued_at: now + expires_in - 300,
            refresh_token: Some(RefreshToken::new("refresh-1")),
            created_at: now - 600,
            expires_at: now + 86_400,
            idle_expires_at: now + 86_400,
            version: 1,
            refresh_lease: None,
            refresh_started_at: None,
            user_agent: None,
            api_tokens: Vec::new(),
            userinfo: None,
        };
        edit(&mut record, &clock);
        let key = session_key(&SessionId::generate());
        store.put_session(&key, &record).await.expect("plant");
        Self {
            store,
            clock,
            key,
            record,
        }
    }

    fn refresher<'a>(&'a self, provider: &'a FakeProvider) -> Refresher<'a, FlakyStore, FakeProvider> {
        Refresher::new(&self.store, provider, &self.clock)
    }

    /// One call of the service on the planted record.
    async fn usable(
        &self,
        provider: &FakeProvider,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, RefreshError> {
        self.refresher(provider)
            .usable_access_token(&self.key, self.record.clone(), rejected)
            .await
    }

    async fn stored(&self) -> Option<SessionRecord> {
        self.store.get_session(&self.key, self.clock.now()).await.expect("read")
    }

    /// Another instance's write, `after` from now: the stored session changed by `change`.
    async fn written_elsewhere(&self, after: Duration, change: impl FnOnce(&mut SessionRecord, &TokioClock)) {
        tokio::time::sleep(after).await;
        let current = self.stored().await.expect("there");
        let mut next = current.clone();
        change(&mut next, &self.clock);
        next.version = current.version + 1;
        self.store
            .update_session(&self.key, &next, current.version)
            .await
            .expect("the other instance's write");
    }

    /// A refresh whose grant (100 ms) rotates the tokens, with every store write failing
    /// for `outage` from the middle of the grant on.
    async fn refresh_during_outage(&self, outage: Duration) -> Result<AccessToken, RefreshError> {
        let provider =
            FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]).slowed(Duration::from_millis(100));
        let fail = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.store.fail_writes_for(outage);
        };
        tokio::join!(self.usable(&provider, None), fail).0
    }

    /// A lease another instance holds for `ms` from now.
    fn held_elsewhere(clock: &TokioClock, owner: &str, ms: i64) -> Option<RefreshLease> {
        Some(RefreshLease {
            owner: owner.into(),
            until_ms: clock.now_ms() + ms,
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_not_yet_due_is_used_without_asking_the_provider() {
    let at = Fixture::new(200, |_, _| {}).await;
    let provider = FakeProvider::default();
    assert_eq!(at.usable(&provider, None).await.expect("token").secret(), "access-1");
    assert!(provider.grants().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_lease_holder_refreshes_once_and_saves_both_rotated_tokens() {
    let at = Fixture::new(10, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]);
    assert_eq!(at.usable(&provider, None).await.expect("token").secret(), "access-2");
    assert_eq!(provider.grants(), ["refresh-1"]);
    let saved = at.stored().await.expect("session kept");
    assert_eq!(saved.access_token.secret(), "access-2");
    assert_eq!(saved.refresh_token.expect("rotated").secret(), "refresh-2");
    assert!(saved.refresh_lease.is_none(), "the lease is released with the write");
}

#[tokio::test(start_paused = true)]
async fn a_lease_held_elsewhere_lets_a_still_valid_token_serve() {
    let at = Fixture::new(10, |r, clock| {
        r.refresh_lease = Fixture::held_elsewhere(clock, "other", LEASE_MS)
    })
    .await;
    let provider = FakeProvider::default();
    assert_eq!(at.usable(&provider, None).await.expect("token").secret(), "access-1");
    assert!(provider.grants().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_caller_without_a_valid_token_waits_for_the_lease_holders_write() {
    let at = Fixture::new(-1, |r, clock| {
        r.refresh_lease = Fixture::held_elsewhere(clock, "other", LEASE_MS)
    })
    .await;
    let provider = FakeProvider::default();
    let other = at.written_elsewhere(Duration::from_millis(750), |r, clock| {
        r.access_token = AccessToken::new("access-other");
        r.access_expires_at = Some(clock.now() + 300);
        r.access_issued_at = clock.now();
        r.refresh_lease = None;
    });
    let (token, ()) = tokio::join!(at.usable(&provider, None), other);
    assert_eq!(token.expect("token").secret(), "access-other");
    assert!(
        provider.grants().is_empty(),
        "the waiter never spends the refresh token"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_when_the_lease_holder_never_finishes() {
    // A holder that keeps renewing: the lease never lapses while the waiter waits.
    let at = Fixture::new(-1, |r, clock| {
        r.refresh_lease = Fixture::held_elsewhere(clock, "other", 10 * LEASE_MS)
    })
    .await;
    let err = at.usable(&FakeProvider::default(), None).await.expect_err("gives up");
    assert!(matches!(err, RefreshError::InProgress), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn invalid_grant_ends_the_session() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Err(OidcError::Rejected {
        error: "invalid_grant".into(),
    })]);
    let err = at.usable(&provider, None).await.expect_err("ended");
    assert!(matches!(err, RefreshError::SessionEnded), "{err:?}");
    assert!(at.stored().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_provider_timeout_keeps_the_session_and_serves_a_still_valid_token() {
    let at = Fixture::new(30, |_, _| {}).await;
    let provider =
        FakeProvider::answering(vec![Err(OidcError::Timeout), Err(OidcError::Timeout)]).slowed(PROVIDER_TIMEOUT);
    assert_eq!(
        at.usable(&provider, None).await.expect("old token").secret(),
        "access-1"
    );
    let kept = at.stored().await.expect("session kept");
    assert!(kept.refresh_lease.is_none(), "the lease is released");

    // Once the old token has expired too, the timeout reaches the caller.
    let mut expired = kept.clone();
    expired.access_expires_at = Some(at.clock.now() - 1);
    expired.version += 1;
    at.store
        .update_session(&at.key, &expired, kept.version)
        .await
        .expect("expire");
    let err = at
        .refresher(&provider)
        .usable_access_token(&at.key, expired, None)
        .await
        .expect_err("timeout");
    assert!(matches!(err, RefreshError::Provider(OidcError::Timeout)), "{err:?}");
    assert!(at.stored().await.is_some());
}

#[tokio::test(start_paused = true)]
async fn two_instances_racing_after_expiry_make_exactly_one_grant() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]).slowed(Duration::from_secs(1));
    let (a, b) = tokio::join!(at.usable(&provider, None), at.usable(&provider, None));
    assert_eq!(a.expect("first").secret(), "access-2");
    assert_eq!(b.expect("second").secret(), "access-2");
    assert_eq!(provider.grants(), ["refresh-1"]);
    let saved = at.stored().await.expect("kept");
    assert_eq!(saved.refresh_token.expect("rotated").secret(), "refresh-2");
}

#[tokio::test(start_paused = true)]
async fn an_upstream_rejection_refreshes_even_a_token_that_is_not_due() {
    let at = Fixture::new(200, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]);
    let rejected = AccessToken::new("access-1");
    assert_eq!(
        at.usable(&provider, Some(&rejected)).await.expect("token").secret(),
        "access-2"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upstream_rejection_of_a_token_obtained_moments_ago_forces_no_refresh() {
    let at = Fixture::new(200, |r, clock| r.access_issued_at = clock.now() - 10).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]);
    let rejected = AccessToken::new("access-1");
    assert_eq!(
        at.usable(&provider, Some(&rejected)).await.expect("token").secret(),
        "access-1",
        "the refused token comes back: the caller's 401 stands"
    );
    assert!(provider.grants().is_empty(), "no token request");
}

/// A forced refresh that failed at the provider counts against the interval too: the
/// next refusal, from any instance, reads its start from the store.
#[tokio::test(start_paused = true)]
async fn a_failed_forced_refresh_throttles_the_next_one() {
    let at = Fixture::new(200, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![
        Err(OidcError::Unreachable("down".into())),
        Ok(tokens("access-2", "refresh-2")),
    ]);
    let rejected = AccessToken::new("access-1");
    assert!(matches!(
        at.usable(&provider, Some(&rejected)).await,
        Err(RefreshError::Provider(_))
    ));
    let stored = at.stored().await.expect("kept");
    assert_eq!(stored.refresh_started_at, Some(at.clock.now()));
    let again = at
        .refresher(&provider)
        .usable_access_token(&at.key, stored, Some(&rejected))
        .await;
    assert_eq!(again.expect("token").secret(), "access-1");
    assert_eq!(provider.grants(), ["refresh-1"], "one token request in the interval");

    tokio::time::advance(Duration::from_secs(31)).await;
    let stored = at.stored().await.expect("kept");
    let later = at
        .refresher(&provider)
        .usable_access_token(&at.key, stored, Some(&rejected))
        .await;
    assert_eq!(
        later.expect("token").secret(),
        "access-2",
        "allowed again after the interval"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_refresh_token_an_expired_session_ends() {
    let at = Fixture::new(-1, |r, _| r.refresh_token = None).await;
    let err = at.usable(&FakeProvider::default(), None).await.expect_err("ended");
    assert!(matches!(err, RefreshError::SessionEnded));
    assert!(at.stored().await.is_none());
}

/// A store outage right after the provider rotated the refresh token is outlasted: the
/// write is retried until the lease is about to lapse, and the rotated token is kept.
#[tokio::test(start_paused = true)]
async fn a_store_outage_after_rotation_is_retried_and_the_rotated_token_kept() {
    let at = Fixture::new(-1, |_, _| {}).await;
    // The lease write succeeds; writes fail for 2 s from the middle of the grant on.
    let result = at.refresh_during_outage(Duration::from_secs(2)).await;
    assert_eq!(result.expect("token").secret(), "access-2");
    let kept = at.stored().await.expect("session kept");
    assert_eq!(kept.refresh_token.expect("token").secret(), "refresh-2");
    assert!(kept.refresh_lease.is_none());
}

/// An outage longer than the lease: the caller gets a store error, the session stays.
#[tokio::test(start_paused = true)]
async fn a_store_outage_longer_than_the_lease_answers_a_store_error_and_keeps_the_session() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let started = at.clock.now_ms();
    let result = at
        .refresh_during_outage(Duration::from_millis(2 * LEASE_MS as u64))
        .await;
    assert!(matches!(result, Err(RefreshError::Store(_))), "{result:?}");
    assert!(at.stored().await.is_some(), "nobody deleted the session");
    assert!(
        at.clock.now_ms() - started < LEASE_MS,
        "gave up before the lease lapsed"
    );
}

/// A token endpoint slower than the lease: the holder gives up the grant while its lease
/// still holds, so no two grants are ever in flight for one session, and the session stays.
#[tokio::test(start_paused = true)]
async fn a_token_endpoint_slower_than_the_lease_never_overlaps_two_grants() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![
        Ok(tokens("access-2", "refresh-2")),
        Ok(tokens("access-3", "refresh-3")),
    ])
    .slowed(Duration::from_millis(LEASE_MS as u64 + 500));
    let late = async {
        tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 - 100)).await;
        let current = at.stored().await.expect("still there");
        at.refresher(&provider)
            .usable_access_token(&at.key, current, None)
            .await
    };
    let (first, _) = tokio::join!(at.usable(&provider, None), late);
    assert!(
        matches!(first, Err(RefreshError::Provider(OidcError::Timeout))),
        "{first:?}"
    );
    assert_eq!(
        provider.most_in_flight.load(Ordering::SeqCst),
        1,
        "two grants overlapped"
    );
    assert!(at.stored().await.is_some(), "the session survives");
}

/// `invalid_grant` ends only the session as this caller read it: one another instance
/// refreshed meanwhile is kept, and its token is used.
#[tokio::test(start_paused = true)]
async fn invalid_grant_spares_a_session_another_instance_refreshed() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let reused = Err(OidcError::Rejected {
        error: "invalid_grant".into(),
    });
    let provider = FakeProvider::answering(vec![reused]).slowed(Duration::from_secs(1));
    let other = at.written_elsewhere(Duration::from_millis(500), |r, clock| {
        r.access_token = AccessToken::new("access-other");
        r.refresh_token = Some(RefreshToken::new("refresh-other"));
        r.access_expires_at = Some(clock.now() + 300);
        r.refresh_lease = None;
    });
    let (token, ()) = tokio::join!(at.usable(&provider, None), other);
    assert_eq!(token.expect("the other instance's token").secret(), "access-other");
    let kept = at.stored().await.expect("session kept");
    assert_eq!(kept.refresh_token.expect("token").secret(), "refresh-other");
}

/// The answer to the lease write is lost and the retry reads as a conflict: the caller
/// recognises its own lease and refreshes at once, without waiting it out.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_to_the_lease_write_is_not_mistaken_for_another_holder() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]);
    at.store.lose_next_answer.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(at.usable(&provider, None).await.expect("token").secret(), "access-2");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(provider.grants(), ["refresh-1"]);
    let saved = at.stored().await.expect("kept");
    assert_eq!(saved.refresh_token.expect("rotated").secret(), "refresh-2");
}

/// The answer to the lease write is lost and the retries fail as well: the store says
/// unavailable, yet the lease is ours; the caller reads it back and refreshes instead of
/// leaving a lease behind that every caller would wait out.
#[tokio::test(start_paused = true)]
async fn a_lease_write_that_landed_but_reported_failure_is_not_left_behind() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]);
    at.store.lose_next_answer_and_retries.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(at.usable(&provider, None).await.expect("token").secret(), "access-2");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "waited out its own lease: {:?}",
        started.elapsed()
    );
    assert_eq!(provider.grants(), ["refresh-1"]);
    let saved = at.stored().await.expect("kept");
    assert!(saved.refresh_lease.is_none());
    assert_eq!(saved.refresh_token.expect("rotated").secret(), "refresh-2");
}

/// A refreshed ID token that fails validation, or names another user, ends the session
/// cleanly; a valid one updates the claims.
#[tokio::test(start_paused = true)]
async fn a_refreshed_id_token_must_validate_and_name_the_same_user() {
    for (sub, ends) in [(None, true), (Some("mallory"), true), (Some("alice"), false)] {
        let at = Fixture::new(-1, |_, _| {}).await;
        let provider =
            FakeProvider::answering(vec![Ok(tokens_with_id_token("access-2", "refresh-2"))]).with_id_tokens_for(sub);
        let result = at.usable(&provider, None).await;
        if ends {
            assert!(matches!(result, Err(RefreshError::SessionEnded)), "{sub:?}: {result:?}");
            assert!(at.stored().await.is_none(), "{sub:?}");
        } else {
            assert_eq!(result.expect("token").secret(), "access-2");
            let saved = at.stored().await.expect("kept");
            assert_eq!(saved.claims["name"], "New Name");
            assert_eq!(saved.id_token.secret(), "refreshed-id-token");
        }
    }
}

/// When another instance takes the lease over between the grant and the write (clocks
/// apart), the rotated tokens still land: the store held the spent refresh token, which
/// the new holder could only present in vain.
#[tokio::test(start_paused = true)]
async fn a_lease_taken_over_before_the_write_keeps_the_rotated_refresh_token() {
    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]).slowed(Duration::from_secs(1));
    let thief = at.written_elsewhere(Duration::from_millis(500), |r, clock| {
        r.refresh_lease = Fixture::held_elsewhere(clock, "thief", LEASE_MS);
    });
    let (token, ()) = tokio::join!(at.usable(&provider, None), thief);
    assert_eq!(token.expect("token").secret(), "access-2");
    let kept = at.stored().await.expect("there");
    assert_eq!(kept.refresh_token.expect("token").secret(), "refresh-2");
    assert!(kept.refresh_lease.is_none());
}

fn orders() -> TokenTarget {
    TokenTarget {
        resource: Some("https://orders.example".into()),
        ..TokenTarget::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_route_token_comes_from_the_refresh_grant_for_its_target_beside_the_login_token() {
    let f = Fixture::new(3_000, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("orders-1", "refresh-2"))]);
    let token = f
        .refresher(&provider)
        .usable_token_for(&f.key, f.record.clone(), &orders(), None)
        .await
        .expect("route token");
    assert_eq!(token.secret(), "orders-1");
    assert_eq!(*provider.targets.lock().expect("lock"), vec![orders()]);
    let stored = f.stored().await.expect("kept");
    assert_eq!(
        stored.access_token.secret(),
        "access-1",
        "the login's token is untouched"
    );
    assert_eq!(
        stored.refresh_token.as_ref().expect("rt").secret(),
        "refresh-2",
        "rotation kept"
    );
    assert_eq!(
        stored.token_for(&orders()).expect("held").access_token.secret(),
        "orders-1"
    );
    // Steady state: the stored route token serves without another grant.
    let again = f
        .refresher(&provider)
        .usable_token_for(&f.key, stored, &orders(), None)
        .await
        .expect("again");
    assert_eq!((again.secret(), provider.grants().len()), ("orders-1", 1));
}

#[tokio::test(start_paused = true)]
async fn a_refused_route_token_leaves_the_session_and_its_other_tokens_alone() {
    let f = Fixture::new(3_000, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Err(OidcError::Rejected {
        error: "invalid_target".into(),
    })]);
    let refused = f
        .refresher(&provider)
        .usable_token_for(&f.key, f.record.clone(), &orders(), None)
        .await;
    assert!(
        matches!(&refused, Err(RefreshError::TargetRefused { error }) if error == "invalid_target"),
        "{refused:?}"
    );
    let stored = f.stored().await.expect("the session stays");
    assert_eq!(stored.access_token.secret(), "access-1");
    assert_eq!(stored.refresh_token.as_ref().expect("rt").secret(), "refresh-1");
    assert!(stored.refresh_lease.is_none(), "the lease is released");
    assert!(stored.api_tokens.is_empty());
}

/// The registry's count of refreshes that ended with `outcome`.
fn refreshes(registry: &crate::platform::metrics::Registry, outcome: RefreshOutcome) -> f64 {
    registry.value("bff_refreshes_total", &[("outcome", outcome.as_str())])
}

#[tokio::test(start_paused = true)]
async fn every_refresh_outcome_is_counted() {
    use std::sync::Arc;

    use crate::platform::metrics::{Registry, measure};

    let registry = Arc::new(Registry::new());
    let counted = |run| measure(&registry, "api", run, |_| (200, false));

    let at = Fixture::new(10, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Ok(tokens("access-2", "refresh-2"))]);
    counted(at.usable(&provider, None)).await.0.expect("refreshed");
    assert_eq!(refreshes(&registry, RefreshOutcome::Done), 1.0);

    let at = Fixture::new(-1, |r, clock| {
        r.refresh_lease = Fixture::held_elsewhere(clock, "other", LEASE_MS)
    })
    .await;
    let other = at.written_elsewhere(Duration::from_millis(750), |r, clock| {
        r.access_token = AccessToken::new("access-other");
        r.access_expires_at = Some(clock.now() + 300);
        r.refresh_lease = None;
    });
    let provider = FakeProvider::default();
    let ((waited, _), ()) = tokio::join!(counted(at.usable(&provider, None)), other);
    waited.expect("the other's token");
    assert_eq!(refreshes(&registry, RefreshOutcome::Waited), 1.0);

    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Err(OidcError::Rejected {
        error: "invalid_grant".into(),
    })]);
    counted(at.usable(&provider, None)).await.0.expect_err("ended");
    assert_eq!(refreshes(&registry, RefreshOutcome::InvalidGrant), 1.0);
    assert_eq!(
        registry.value("bff_sessions_ended_total", &[("reason", "refresh_ended")]),
        1.0
    );

    let at = Fixture::new(-1, |_, _| {}).await;
    let provider = FakeProvider::answering(vec![Err(OidcError::Timeout)]);
    counted(at.usable(&provider, None)).await.0.expect_err("provider down");
    assert_eq!(refreshes(&registry, RefreshOutcome::ProviderFailure), 1.0);

    let at = Fixture::new(-1, |_, _| {}).await;
    measure(
        &registry,
        "api",
        at.refresh_during_outage(Duration::from_secs(60)),
        |_| (200, false),
    )
    .await
    .0
    .expect_err("store down");
    assert_eq!(refreshes(&registry, RefreshOutcome::StoreFailure), 1.0);
    // Each outcome was counted once, and only its own.
    assert_eq!(refreshes(&registry, RefreshOutcome::Done), 1.0);
}
