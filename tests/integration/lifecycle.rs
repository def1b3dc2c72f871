//! Token and session lifecycle: single-flight refresh across independent instances,
//! crashed refreshers, idle and absolute expiry, the cost of a steady-state call, the
//! upstream-401 retry and its throttle, and every kind of logout.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bff::domain::secret::SessionId;
use bff::domain::session::FORCED_REFRESH_INTERVAL_SECS;
use bff::store::session_key;
use bff::store::{RefreshLease, SessionRecord, Store, StoreKey};
use bff_testkit::browser::BffBrowser;
use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app, spawn_app_with};
use bff_tests::counting::{CountingStore, Counts};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A provider whose access tokens live 10 s, so expiry happens within a test (with margin
/// for a slow machine: a wave of calls has 5 s before the next refresh would be due).
fn short_lived_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "10")]))
}

async fn session_of(app: &TestApp, browser: &BffBrowser) -> (StoreKey, SessionRecord) {
    let key = session_key(&SessionId::new(browser.cookie("bff-session").expect("session cookie")));
    let session = app
        .store
        .get_session(&key, app.app.clock.now())
        .await
        .expect("store")
        .expect("session");
    (key, session)
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("json");
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_calls_after_expiry_across_three_processes_make_exactly_one_refresh_grant() {
    let provider = short_lived_provider();
    let mut options = Options::new(StoreKind::Dynamo);
    options.provider = Some(provider);
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let cookie = browser.cookies();

    // Two more BFF instances: separate processes sharing only the DynamoDB table.
    let table = app.table.clone().expect("dynamodb table");
    let others = [
        bff_tests::process::spawn(&app.env, &table).await,
        bff_tests::process::spawn(&app.env, &table).await,
    ];
    let origins = [app.url.clone(), others[0].url.clone(), others[1].url.clone()];
    let http = reqwest::Client::new();

    for wave in 1..=2u64 {
        // Tokens live 10 s and are refreshed within half their lifetime of expiry.
        let (_, session) = session_of(&app, &browser).await;
        let due_at = session.access_expires_at.expect("expiry") - 5;
        let wait = (due_at - app.app.clock.now()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 300)).await;

        let before = provider.grants("refresh_token").await;
        let calls = (0..50).map(|i| {
            let url = format!("{}/api/wave{wave}/{i}", origins[i % origins.len()]);
            http.get(url).header("Cookie", &cookie).header("X-CSRF", "1").send()
        });
        let results = futures_util::future::join_all(calls).await;
        for result in results {
            assert_eq!(result.expect("call").status(), StatusCode::OK, "every call succeeds");
        }
        let after = provider.grants("refresh_token").await;
        assert_eq!(
            after - before,
            1,
            "wave {wave}: exactly one refresh grant for fifty concurrent calls"
        );
    }
    // The second wave used the rotated refresh token: had the first rotation been lost,
    // the provider would have refused it and the session would be gone.
    let (_, session) = session_of(&app, &browser).await;
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 100);
    let last = seen.last().and_then(|s| s.bearer()).expect("bearer");
    assert!(
        provider.userinfo_sub(session.access_token.secret()).await.is_some(),
        "the stored token is live"
    );
    assert!(provider.userinfo_sub(last).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_process_finishes_the_requests_in_flight_first() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let table = app.table.clone().expect("dynamodb table");
    let mut env = app.env.clone();
    env.insert("BFF_UPSTREAM_TIMEOUT_SECS", "10".to_owned());
    let mut other = bff_tests::process::spawn(&env, &table).await;
    let http = reqwest::Client::new();

    // The upstream holds `/slow` for 3 s; SIGTERM arrives while the call is in flight.
    let call = http
        .get(format!("{}/api/slow", other.url))
        .header("Cookie", browser.cookies())
        .header("X-CSRF", "1")
        .send();
    let in_flight = tokio::spawn(call);
    tokio::time::sleep(Duration::from_millis(800)).await;
    other.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        http.get(format!("{}/auth/me", other.url)).send().await.is_err(),
        "a stopping process takes no new connection"
    );
    let answer = in_flight.await.expect("task").expect("the call in flight is answered");
    assert_eq!(answer.status(), StatusCode::OK, "and answered in full");
    answer.bytes().await.expect("whole body");
    assert!(
        other.exited_within(Duration::from_secs(10)).await,
        "the process exits once its requests are done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_refreshers_lease_expires_and_another_caller_refreshes() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let (key, session) = session_of(&app, &browser).await;

    // The access token has expired, and a refresher took the lease and then died.
    app.clock.advance(600);
    let mut crashed = session.clone();
    crashed.refresh_lease = Some(RefreshLease {
        owner: "crashed".into(),
        until_ms: app.app.clock.now_ms() + 1500,
    });
    crashed.version = session.version + 1;
    app.store
        .update_session(&key, &crashed, session.version)
        .await
        .expect("plant lease");

    let started = Instant::now();
    let response = browser.api(Method::GET, "/api/after-crash").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "waited for the lease to expire"
    );
    let (_, after) = session_of(&app, &browser).await;
    assert!(after.refresh_lease.is_none(), "the new holder released the lease");
    assert_ne!(after.access_token, session.access_token, "a fresh access token");
    assert_eq!(app.upstream.requests()[0].bearer(), Some(after.access_token.secret()));
}

async fn lifetimes(idle: &str, max: &str) -> TestApp {
    let mut options = Options::new(StoreKind::Dynamo);
    options.env.push(("BFF_SESSION_IDLE_SECS", idle.to_owned()));
    options.env.push(("BFF_SESSION_MAX_SECS", max.to_owned()));
    spawn_app_with(options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_expires_and_is_answered_401() {
    let app = lifetimes("100", "1000").await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    // Each step leaves tens of seconds of margin, so a slow machine cannot flip it.
    app.clock.advance(60);
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::OK,
        "activity within the idle window"
    );
    app.clock.advance(60);
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::OK,
        "120 s after login: the idle expiry slid"
    );
    app.clock.advance(101);
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        browser.api(Method::GET, "/api/x").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(app.upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_lifetime_ends_an_active_session() {
    let app = lifetimes("100", "150").await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    for _ in 0..2 {
        app.clock.advance(60);
        assert_eq!(browser.get("/auth/me").await.status(), StatusCode::OK);
    }
    app.clock.advance(31);
    let response = browser.get("/auth/me").await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "active, but past the absolute lifetime"
    );
    let (key, _) = (
        session_key(&SessionId::new(browser.cookie("bff-session").expect("cookie"))),
        (),
    );
    assert!(
        app.store
            .get_session(&key, app.app.clock.now())
            .await
            .expect("store")
            .is_none()
    );
}

static COUNTS: OnceLock<Arc<Counts>> = OnceLock::new();

fn counted(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(CountingStore::new(store, COUNTS.get_or_init(Default::default).clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_proxy_call_is_one_store_read_and_no_write() {
    let mut options = Options::new(StoreKind::Dynamo);
    options.wrap_store = Some(counted);
    let app = spawn_app_with(options).await;
    let counts = COUNTS.get().expect("counting store").clone();
    let browser = app.browser();
    browser.login("alice", "/").await;
    assert_eq!(browser.api(Method::GET, "/api/warm").await.status(), StatusCode::OK);
    for _ in 0..5 {
        counts.reset();
        assert_eq!(browser.api(Method::GET, "/api/steady").await.status(), StatusCode::OK);
        assert_eq!((counts.reads(), counts.writes()), (1, 0), "one read, no write");
    }
}

/// A new app with alice logged in, and the access token her first API call carried.
async fn after_first_call(store: StoreKind) -> (TestApp, BffBrowser, String) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    assert_eq!(browser.api(Method::GET, "/api/first").await.status(), StatusCode::OK);
    let first = app.upstream.requests()[0].bearer().expect("bearer").to_owned();
    (app, browser, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_401_refreshes_once_and_retries_once_never_looping() {
    let (app, browser, first) = after_first_call(StoreKind::Dynamo).await;

    // The upstream stops accepting the token though it has not expired, longer than the
    // forced-refresh interval after it was obtained.
    app.clock.advance(FORCED_REFRESH_INTERVAL_SECS + 1);
    app.upstream.reject(&first);
    let retried = browser.api(Method::POST, "/api/retried").await;
    assert_eq!(retried.status(), StatusCode::OK, "refreshed and retried");
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 3, "one refused call, one retry");
    assert_eq!(seen[1].bearer(), Some(first.as_str()));
    let second = seen[2].bearer().expect("bearer");
    assert_ne!(second, first);
    assert_eq!(app.provider.userinfo_sub(second).await.as_deref(), Some("alice"));

    // An upstream that refuses everything, moments after that refresh: its 401 stands
    // with no refresh and no retry.
    app.upstream.reject_all();
    let refused = browser.api(Method::GET, "/api/refused").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.upstream.requests().len(), 4, "no retry within the interval");

    // Once the interval has passed: one refresh and one retry, then its 401 stands.
    app.clock.advance(FORCED_REFRESH_INTERVAL_SECS + 1);
    let refused = browser.api(Method::GET, "/api/refused-later").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 6, "one call and one retry, no loop");
    assert_ne!(
        seen[5].bearer(),
        seen[4].bearer(),
        "the retry carried a refreshed token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_401_to_a_streamed_upload_stands_but_the_next_call_has_a_renewed_token() {
    let (app, browser, first) = after_first_call(StoreKind::Memory).await;
    let post = |body: Vec<u8>| {
        browser
            .http
            .post(format!("{}/api/upload", app.url))
            .header("X-CSRF", "1")
            .body(body)
            .send()
    };

    // Too large to keep: streamed to the upstream, so it cannot be sent again.
    app.clock.advance(FORCED_REFRESH_INTERVAL_SECS + 1);
    app.upstream.reject(&first);
    let large = vec![b'l'; bff_local::KEPT_BODY_BYTES + 1];
    let refused = post(large.clone()).await.expect("answer");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "the upstream's 401 stands");
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 2, "no retry of a streamed body");
    assert_eq!(
        (seen[1].bearer(), seen[1].body.len()),
        (Some(first.as_str()), large.len())
    );

    // The token was renewed all the same: the next call carries a new one at once.
    assert_eq!(browser.api(Method::GET, "/api/next").await.status(), StatusCode::OK);
    let renewed = app.upstream.requests()[2].bearer().expect("bearer").to_owned();
    assert_ne!(renewed, first, "renewed after the 401");

    // Small enough to keep: refreshed and sent again, whole.
    app.clock.advance(FORCED_REFRESH_INTERVAL_SECS + 1);
    app.upstream.reject(&renewed);
    let small = vec![b's'; bff_local::KEPT_BODY_BYTES];
    assert_eq!(post(small.clone()).await.expect("answer").status(), StatusCode::OK);
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 5, "one refused call, one retry");
    assert_eq!(seen[3].bearer(), Some(renewed.as_str()));
    assert_ne!(seen[4].bearer(), Some(renewed.as_str()), "the retry has a new token");
    assert!(seen[3..].iter().all(|s| s.body == small), "both carried the whole body");
}

/// A provider of its own, so that its count of refresh grants is this test's alone.
fn throttle_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&[]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_upstream_401s_make_one_refresh_grant_reach_the_browser_and_keep_the_session() {
    let provider = throttle_provider();
    let mut options = Options::new(StoreKind::Dynamo);
    options.provider = Some(provider);
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let (key, _) = session_of(&app, &browser).await;

    // Long enough after login that the first 401 may force a refresh.
    app.clock.advance(FORCED_REFRESH_INTERVAL_SECS + 1);
    app.upstream.reject_all();
    let before = provider.grants("refresh_token").await;
    for i in 0..20 {
        let response = browser.api(Method::GET, &format!("/api/refused/{i}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "call {i}");
        // The upstream's own answer, as it is: its challenge, and no BFF error body.
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "call {i}"
        );
        assert_eq!(response.text().await.expect("body"), "", "call {i}");
    }
    let grants = provider.grants("refresh_token").await - before;
    assert_eq!(grants, 1, "one refresh grant for twenty upstream 401s in the interval");
    assert_eq!(app.upstream.requests().len(), 21, "twenty calls and one retry");

    let (_, session) = session_of(&app, &browser).await;
    assert!(session.refresh_lease.is_none());
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::OK,
        "the session stays"
    );
    assert!(
        app.store
            .get_session(&key, app.app.clock.now())
            .await
            .expect("store")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_revoked_at_the_provider_ends_the_session() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let (key, session) = session_of(&app, &browser).await;
    let refresh_token = session.refresh_token.expect("refresh token");
    app.provider.revoke(&app.client, refresh_token.secret()).await;

    app.clock.advance(300);
    let response = browser.api(Method::GET, "/api/after-revocation").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "session_expired");
    assert!(
        app.store
            .get_session(&key, app.app.clock.now())
            .await
            .expect("store")
            .is_none(),
        "item gone"
    );
    assert!(app.upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_refresh_token_at_the_provider() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let (_, session) = session_of(&app, &browser).await;
    let refresh_token = session.refresh_token.expect("refresh token");
    let (status, _) = app
        .provider
        .token_request(
            &app.client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.secret()),
            ],
        )
        .await;
    assert_eq!(status, 200, "the refresh token works before logout");
    // That use rotated it; log out with the session's current token.
    let (_, session) = session_of(&app, &browser).await;
    let current = session.refresh_token.expect("refresh token");
    assert_eq!(browser.logout().await.status(), StatusCode::OK);
    let (status, body) = app
        .provider
        .token_request(
            &app.client,
            &[("grant_type", "refresh_token"), ("refresh_token", current.secret())],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant", "revoked at logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_logout_url_serves_providers_without_end_session_endpoint() {
    let mut options = Options::new(StoreKind::Memory);
    options.env.push((
        "BFF_LOGOUT_URL",
        "https://tenant.example.com/v2/logout?client_id={client_id}&returnTo={post_logout_redirect_uri}".to_owned(),
    ));
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let body: Value = browser.logout().await.json().await.expect("json");
    let expected = format!(
        "https://tenant.example.com/v2/logout?client_id={}&returnTo={}",
        app.client.client_id,
        url::form_urlencoded::byte_serialize(format!("{}/", app.url).as_bytes()).collect::<String>()
    );
    assert_eq!(body["logout_url"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_from_the_provider_ends_the_session() {
    let mut options = Options::new(StoreKind::Dynamo);
    options.backchannel = true;
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let (_, session) = session_of(&app, &browser).await;
    assert!(session.sid.is_some(), "the provider sent a sid");
    let tokens_before = app.provider.sent_logout_tokens().await.len();

    // Logged out at the provider itself (RP-initiated from elsewhere): the provider then
    // sends back-channel logout tokens to every client of that provider session.
    browser.logout_at_provider(&browser.issuer).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while browser.get("/auth/me").await.status() == StatusCode::OK {
        assert!(Instant::now() < deadline, "the back-channel logout never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        browser.api(Method::GET, "/api/x").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The token the provider sent cannot be replayed, nor can a tampered copy pass.
    let tokens = app.provider.sent_logout_tokens().await;
    assert!(tokens.len() > tokens_before);
    let token = tokens.last().expect("a logout token").clone();
    let post = |token: String| {
        browser
            .http
            .post(format!("{}/auth/backchannel-logout", app.url))
            .form(&[("logout_token", token)])
            .send()
    };
    let replayed = post(token.clone()).await.expect("post");
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST, "replayed jti");
    assert_eq!(replayed.headers()["cache-control"], "no-store");

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = bff_tests::b64::decode(&parts[1]);
    let mut claims: Value = serde_json::from_slice(&payload).expect("claims");
    claims["jti"] = "a-fresh-jti-so-only-the-signature-can-refuse-it".into();
    parts[1] = bff_tests::b64::encode(claims.to_string().as_bytes());
    let tampered = post(parts.join(".")).await.expect("post");
    assert_eq!(tampered.status(), StatusCode::BAD_REQUEST, "bad signature");
    assert_eq!(
        post("not.a.jwt".into()).await.expect("post").status(),
        StatusCode::BAD_REQUEST
    );
}

static FAULTS: OnceLock<Arc<Counts>> = OnceLock::new();

fn faulty(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(CountingStore::new(store, FAULTS.get_or_init(Default::default).clone()))
}

/// A user with fifty sessions is logged out of all of them by one logout token; when a
/// deletion fails half-way, the token's use is not recorded, so the provider's retry of
/// the same token finishes the job instead of being refused as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_ends_fifty_sessions_and_a_retry_finishes_a_half_done_one() {
    let mut options = Options::new(StoreKind::Dynamo);
    options.backchannel = true;
    options.wrap_store = Some(faulty);
    let app = spawn_app_with(options).await;
    let faults = FAULTS.get().expect("faulty store").clone();
    let browser = app.browser();
    browser.login("alice", "/").await;
    let (key, session) = session_of(&app, &browser).await;
    let mut keys = vec![key];
    for _ in 1..50 {
        let other = session_key(&SessionId::generate());
        app.store.put_session(&other, &session).await.expect("plant");
        keys.push(other);
    }
    let remaining = || async {
        let mut left = 0;
        for key in &keys {
            if app
                .store
                .get_session(key, app.app.clock.now())
                .await
                .expect("store")
                .is_some()
            {
                left += 1;
            }
        }
        left
    };
    let sent_before = app.provider.sent_logout_tokens().await.len();

    faults.fail_next_session_deletes(1);
    browser.logout_at_provider(&browser.issuer).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while remaining().await > 1 {
        assert!(Instant::now() < deadline, "the back-channel logout never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining().await, 1, "one deletion failed");

    // The provider is shared by the tests running at once: take the token sent to this
    // test's client.
    let tokens = app.provider.sent_logout_tokens().await;
    let token = tokens[sent_before..]
        .iter()
        .rev()
        .find(|token| {
            let payload = token.split('.').nth(1).expect("a JWS");
            let claims: Value = serde_json::from_slice(&bff_tests::b64::decode(payload)).expect("claims");
            claims["aud"] == app.client.client_id.as_str()
        })
        .expect("a logout token for this client")
        .clone();
    // The provider's retry. The first delivery may still be finishing (its answer, 503,
    // comes after the last deletion): a replay answer is accepted only until then.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let retry = browser
            .http
            .post(format!("{}/auth/backchannel-logout", app.url))
            .form(&[("logout_token", token.clone())])
            .send()
            .await
            .expect("post");
        if retry.status() == StatusCode::OK {
            break;
        }
        assert_eq!(retry.status(), StatusCode::BAD_REQUEST);
        assert!(Instant::now() < deadline, "the retry stays refused as a replay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining().await, 0, "every session of the user has ended");
}
