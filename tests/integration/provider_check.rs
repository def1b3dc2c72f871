//! `BFF_PROVIDER_SESSION_CHECK_SECS`: for providers without back-channel logout, the BFF
//! asks the provider with the refresh grant, at most every N seconds per session in use,
//! whether the user's grant still stands. The grant is revoked here at the provider's
//! RFC 7009 endpoint, as a logout at the provider ends it; the BFF is not told.

use bff::domain::secret::SessionId;
use bff::store::{SessionRecord, StoreKey, session_key};
use bff_testkit::BffBrowser;
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::on_both_stores;

/// The check interval of these tests. The BFF's clock is moved, so no test waits for it;
/// long enough that a slow machine's real seconds between two calls never cross it.
const CHECK_SECS: i64 = 30;

async fn spawn(store: StoreKind, check: bool) -> TestApp {
    let mut options = Options::new(store);
    if check {
        options.env = vec![("BFF_PROVIDER_SESSION_CHECK_SECS", CHECK_SECS.to_string())];
    }
    spawn_app_with(options).await
}

async fn session_of(app: &TestApp, browser: &BffBrowser) -> (StoreKey, Option<SessionRecord>) {
    let key = session_key(&SessionId::new(browser.cookie("bff-session").expect("session cookie")));
    let session = app.store.get_session(&key, app.app.clock.now()).await.expect("store");
    (key, session)
}

async fn revoke_the_grant(app: &TestApp, browser: &BffBrowser) {
    let (_, session) = session_of(app, browser).await;
    let refresh_token = session.expect("session").refresh_token.expect("refresh token");
    app.provider.revoke(&app.client, refresh_token.secret()).await;
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("json");
    body["error"].as_str().unwrap_or_default().to_owned()
}

on_both_stores!(a_grant_revoked_at_the_provider_ends_the_session_at_the_first_call_after_the_interval);

/// Within the interval a call costs no token request; the first call after it costs one;
/// once the grant is revoked, the first call after the interval answers 401 and the
/// session is gone, long before the access token (300 s) expires.
async fn a_grant_revoked_at_the_provider_ends_the_session_at_the_first_call_after_the_interval(store: StoreKind) {
    let app = spawn(store, true).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let refreshes = || async { app.provider.refresh_presentations(&app.client).await.total() };

    assert_eq!(browser.api(Method::GET, "/api/within").await.status(), StatusCode::OK);
    assert_eq!(refreshes().await, 0, "no check within the interval");
    app.clock.advance(CHECK_SECS + 1);
    assert_eq!(browser.api(Method::GET, "/api/checked").await.status(), StatusCode::OK);
    assert_eq!(refreshes().await, 1, "one check after the interval");
    assert_eq!(browser.api(Method::GET, "/api/again").await.status(), StatusCode::OK);
    assert_eq!(refreshes().await, 1, "and none again at once");

    revoke_the_grant(&app, &browser).await;
    app.clock.advance(CHECK_SECS / 2);
    assert_eq!(
        browser.api(Method::GET, "/api/not-yet").await.status(),
        StatusCode::OK,
        "within the interval the BFF does not know yet"
    );
    app.clock.advance(CHECK_SECS / 2 + 1);
    let response = browser.api(Method::GET, "/api/after-revocation").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "session_expired");
    assert!(session_of(&app, &browser).await.1.is_none(), "session gone");
    assert_eq!(
        app.upstream.requests().len(),
        4,
        "the refused call never reached the API"
    );
}

/// `/auth/me` checks too: after the interval, a revoked grant answers 401 there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_me_after_the_interval_ends_a_session_whose_grant_was_revoked() {
    let app = spawn(StoreKind::Memory, true).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    revoke_the_grant(&app, &browser).await;
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::OK,
        "within the interval"
    );
    app.clock.advance(CHECK_SECS + 1);
    let me = browser.get("/auth/me").await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(me).await, "session_expired");
    assert!(session_of(&app, &browser).await.1.is_none(), "session gone");
}

/// Without the setting, a session whose grant was revoked keeps working until its access
/// token is due for refresh (240 s here: a minute before its 300 s expire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_check_a_revoked_grant_is_noticed_only_when_the_access_token_expires() {
    let app = spawn(StoreKind::Memory, false).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    revoke_the_grant(&app, &browser).await;
    app.clock.advance(CHECK_SECS + 1);
    assert_eq!(browser.api(Method::GET, "/api/still").await.status(), StatusCode::OK);
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::OK);
    assert_eq!(app.provider.refresh_presentations(&app.client).await.total(), 0);
    app.clock.advance(300);
    let response = browser.api(Method::GET, "/api/expired").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "session_expired");
}
