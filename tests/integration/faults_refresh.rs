//! The refresh lease under faults, with real processes: the BFF's store reaches DynamoDB
//! Local through a fault proxy that drops writes, loses the answers to writes, or delays
//! them; the provider (`oidc-provider`, rotating refresh tokens) holds token requests on
//! demand and counts how often each refresh token is presented.
//!
//! What must hold under every fault: a refresh token is presented at most once, and never
//! while another presentation of it is pending (a second use of a rotated token ends the
//! user's grant at the provider); the session survives; and no caller waits out a lease
//! nobody holds.

use std::time::{Duration, Instant};

use bff::domain::secret::SessionId;
use bff::store::{SessionRecord, StoreKey, session_key};
use bff_testkit::browser::BffBrowser;
use bff_testkit::fault_proxy::{Fault, FaultProxy};
use bff_tests::app::{Instance, Options, StoreKind, TestApp, spawn_app_with};
use reqwest::{Method, StatusCode};

/// Moves the BFF's clock past the access token's expiry (the provider's default lifetime
/// is 300 s), so the next call must refresh; the idle window (24 h by default) does not
/// slide, so the first write to the session is the refresh lease.
const PAST_EXPIRY_SECS: i64 = 301;
/// How long the store refuses writes in the outage scenarios.
const OUTAGE: Duration = Duration::from_secs(2);
/// Longer than the refresh lease (14 s): the provider holds the token request this long.
const SLOWER_THAN_THE_LEASE_MS: u64 = 15_000;
/// What "promptly" means for a call that needs one refresh and at most one retried write:
/// well under the lease, which a caller would wait out behind an orphaned lease.
const PROMPT: Duration = Duration::from_secs(5);

/// A BFF on DynamoDB Local behind a fault proxy, with a user logged in.
struct Rig {
    app: TestApp,
    proxy: FaultProxy,
    alice: BffBrowser,
    key: StoreKey,
    before: SessionRecord,
}

impl Rig {
    async fn start() -> Self {
        let target = tokio::task::spawn_blocking(bff_tests::dynamodb::endpoint)
            .await
            .expect("endpoint");
        let proxy = FaultProxy::start(&target).await;
        let mut options = Options::new(StoreKind::Dynamo);
        options.dynamo_endpoint = Some(proxy.endpoint.clone());
        let app = spawn_app_with(options).await;
        let alice = app.browser();
        alice.login("alice", "/").await;
        let key = session_key(&SessionId::new(alice.cookie("bff-session").expect("session cookie")));
        let before = stored(&app, &key).await.expect("session after login");
        Self {
            app,
            proxy,
            alice,
            key,
            before,
        }
    }

    /// A fault on the writes to this user's session only.
    fn on_session(&self, fault: Fault) -> Fault {
        fault.only_containing(self.key.as_str())
    }

    /// An API call from the user to `instance` (or the first one).
    async fn call(&self, instance: Option<&Instance>, path: &str) -> (StatusCode, Duration) {
        let started = Instant::now();
        let status = match instance {
            None => self.alice.api(Method::GET, path).await.status(),
            Some(other) => self
                .alice
                .http
                .get(format!("{}{path}", other.url))
                .header("X-CSRF", "1")
                .send()
                .await
                .expect("call")
                .status(),
        };
        (status, started.elapsed())
    }

    async fn session(&self) -> Option<SessionRecord> {
        stored(&self.app, &self.key).await
    }

    /// The session kept the user logged in with a newly issued, live refresh token and
    /// no lease, and the provider processed each refresh token once.
    async fn assert_refreshed_once(&self, what: &str) -> SessionRecord {
        let after = self
            .session()
            .await
            .unwrap_or_else(|| panic!("{what}: the session is gone"));
        assert!(after.refresh_lease.is_none(), "{what}: the lease was released");
        assert_ne!(
            after.refresh_token, self.before.refresh_token,
            "{what}: the rotated refresh token was stored"
        );
        let seen = self.app.provider.refresh_presentations(&self.app.client).await;
        assert_eq!(
            seen.most_of_one_token(),
            1,
            "{what}: a refresh token presented twice: {seen:?}"
        );
        assert_eq!(seen.overlapping, 0, "{what}: presentations overlapped: {seen:?}");
        after
    }

    /// The stored tokens work: after the next expiry the rotated refresh token is
    /// accepted, and the call succeeds.
    async fn assert_next_refresh_works(&self, what: &str) {
        self.app.clock.advance(PAST_EXPIRY_SECS);
        let (status, _) = self.call(None, "/api/next").await;
        assert_eq!(status, StatusCode::OK, "{what}: the next refresh works");
        let seen = self.app.provider.refresh_presentations(&self.app.client).await;
        assert_eq!(seen.most_of_one_token(), 1, "{what}: {seen:?}");
        assert!(self.session().await.is_some(), "{what}: the session survives");
    }
}

async fn stored(app: &TestApp, key: &StoreKey) -> Option<SessionRecord> {
    app.store.get_session(key, app.app.clock.now()).await.expect("store")
}

/// The store refuses every write to the session for 2 s from the moment the lease is
/// taken: the provider has rotated the refresh token, the BFF keeps retrying the write
/// of the new one until the store is back, answers the call, and the next refresh uses
/// the rotated token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_after_rotation_keeps_the_rotated_token() {
    let rig = Rig::start().await;
    rig.app.clock.advance(PAST_EXPIRY_SECS);
    rig.proxy
        .arm(rig.on_session(Fault::drop_write().after(1).for_period(OUTAGE)));

    let (status, took) = rig.call(None, "/api/after-rotation").await;
    assert_eq!(status, StatusCode::OK, "the call is answered once the store is back");
    assert!(took >= OUTAGE, "the write waited for the store: {took:?}");
    assert!(took < Duration::from_secs(10), "within the lease: {took:?}");
    assert!(rig.proxy.stats().dropped >= 2, "{:?}", rig.proxy.stats());
    let after = rig.assert_refreshed_once("outage").await;
    assert_eq!(
        rig.app.upstream.requests()[0].bearer(),
        Some(after.access_token.secret()),
        "the upstream got the stored access token"
    );
    rig.assert_next_refresh_works("outage").await;
}

/// DynamoDB takes the lease write but its answer never arrives: the SDK's retry of the
/// write finds the version moved, the BFF recognises its own lease and refreshes at once
/// instead of waiting out the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answer_to_the_lease_write_costs_no_lease_wait() {
    let rig = Rig::start().await;
    rig.app.clock.advance(PAST_EXPIRY_SECS);
    rig.proxy.arm(rig.on_session(Fault::lose_answer()));

    let (status, took) = rig.call(None, "/api/after-lost-answer").await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < PROMPT, "no wait for an orphaned lease: {took:?}");
    assert_eq!(rig.proxy.stats().answers_lost, 1);
    rig.assert_refreshed_once("lost answer").await;
    rig.assert_next_refresh_works("lost answer").await;
}

/// The lease write lands but its answer is lost, and the SDK's two retries of it are
/// dropped too: the store reports a failure, yet the lease is the caller's. It reads the
/// session back and refreshes at once, leaving no lease behind for others to wait out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_write_reported_failed_after_it_landed_leaves_no_orphaned_lease() {
    let rig = Rig::start().await;
    rig.app.clock.advance(PAST_EXPIRY_SECS);
    rig.proxy.arm(rig.on_session(Fault::lose_answer()));
    rig.proxy.arm(rig.on_session(Fault::drop_write().times(2)));

    let (status, took) = rig.call(None, "/api/after-lost-answer").await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < PROMPT, "no wait for an orphaned lease: {took:?}");
    let stats = rig.proxy.stats();
    assert_eq!((stats.answers_lost, stats.dropped), (1, 2), "{stats:?}");
    rig.assert_refreshed_once("lost answer, failed retries").await;
    rig.assert_next_refresh_works("lost answer, failed retries").await;
}

/// The provider holds the refresh request longer than the lease: the BFF gives up within
/// the lease (504) and hangs up, so the held request is never processed; the refresh
/// token was not spent, and the next call refreshes with it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_slower_than_the_lease_spends_no_token_twice() {
    let rig = Rig::start().await;
    rig.app.clock.advance(PAST_EXPIRY_SECS);
    rig.app
        .provider
        .slow_token_endpoint(&rig.app.client, SLOWER_THAN_THE_LEASE_MS, 1)
        .await;

    let (status, took) = rig.call(None, "/api/slow-provider").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(took < Duration::from_secs(13), "given up within the lease: {took:?}");
    wait_until_abandoned(&rig, 1).await;
    assert!(rig.session().await.is_some(), "the session survives the timeout");

    let (status, took) = rig.call(None, "/api/after-slow-provider").await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < PROMPT, "the lease was released: {took:?}");
    rig.assert_refreshed_once("slow provider").await;
}

/// Two instances on one table, the access token expired, both called at once, under each
/// fault: exactly one refresh grant, no refresh token presented twice or while another
/// presentation of it is pending, and the session kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_race_under_a_store_outage() {
    let rig = Rig::start().await;
    rig.proxy
        .arm(rig.on_session(Fault::drop_write().after(1).for_period(OUTAGE)));
    race(&rig, "outage", StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_race_with_a_lost_lease_answer() {
    let rig = Rig::start().await;
    rig.proxy.arm(rig.on_session(Fault::lose_answer()));
    race(&rig, "lost answer", StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_race_with_a_token_endpoint_slower_than_the_lease() {
    let rig = Rig::start().await;
    rig.app
        .provider
        .slow_token_endpoint(&rig.app.client, SLOWER_THAN_THE_LEASE_MS, 1)
        .await;
    // The lease holder gives up after the provider timeout; the other caller then takes
    // the lease and refreshes, unless it gave up waiting first (the provider's answer
    // stands either way).
    let other = rig.app.another_instance().await;
    rig.app.clock.advance(PAST_EXPIRY_SECS);
    let (first, second) = tokio::join!(rig.call(None, "/api/race-a"), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rig.call(Some(&other), "/api/race-b").await
    });
    let statuses = [first.0, second.0];
    assert!(
        statuses.contains(&StatusCode::GATEWAY_TIMEOUT),
        "the held refresh timed out: {statuses:?}"
    );
    wait_until_abandoned(&rig, 1).await;
    let seen = rig.app.provider.refresh_presentations(&rig.app.client).await;
    assert_eq!(
        seen.overlapping, 0,
        "no presentation while the held one was pending: {seen:?}"
    );
    assert!(seen.most_of_one_token() <= 1, "{seen:?}");
    assert!(rig.session().await.is_some(), "the session survives");
    // Whichever instance refreshed (or the next call), the session works on both.
    let (status, _) = rig.call(Some(&other), "/api/after-race-b").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = rig.call(None, "/api/after-race-a").await;
    assert_eq!(status, StatusCode::OK);
    rig.assert_refreshed_once("race, slow provider").await;
}

/// Both instances called at once after expiry; both answers must be `expected`, with
/// exactly one refresh grant between them.
async fn race(rig: &Rig, what: &str, expected: StatusCode) {
    let other = rig.app.another_instance().await;
    // Warm the second instance (discovery, keys) so both reach the lease together.
    let (status, _) = rig.call(Some(&other), "/api/warm").await;
    assert_eq!(status, StatusCode::OK);
    rig.app.clock.advance(PAST_EXPIRY_SECS);
    let (first, second) = tokio::join!(rig.call(None, "/api/race-a"), rig.call(Some(&other), "/api/race-b"));
    assert_eq!((first.0, second.0), (expected, expected), "{what}");
    for took in [first.1, second.1] {
        assert!(took < Duration::from_secs(10), "{what}: within the lease: {took:?}");
    }
    let seen = rig.app.provider.refresh_presentations(&rig.app.client).await;
    assert_eq!(seen.total(), 1, "{what}: exactly one refresh grant: {seen:?}");
    rig.assert_refreshed_once(what).await;
    rig.assert_next_refresh_works(what).await;
}

/// Waits until the provider dropped `n` held token requests of this client unprocessed.
async fn wait_until_abandoned(rig: &Rig, n: u64) {
    let deadline = Instant::now() + Duration::from_millis(SLOWER_THAN_THE_LEASE_MS + 2_000);
    loop {
        let seen = rig.app.provider.refresh_presentations(&rig.app.client).await;
        if seen.abandoned >= n {
            return;
        }
        assert!(Instant::now() < deadline, "the held request never ended: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
