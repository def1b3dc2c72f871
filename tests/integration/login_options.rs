//! Login options against `oidc-provider`: pushed authorization requests (RFC 9126) with
//! the provider offering and requiring them, the options `/auth/login` takes (and the
//! ones it refuses), silent login with `prompt=none`, `max_age` and `acr_values` checked
//! in the ID token, and a step-up login that keeps the current session until the new one
//! exists.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bff::domain::secret::SessionId;
use bff::store::session_key;
use bff_testkit::browser::{join, location};
use bff_testkit::{BffBrowser, Provider};
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app, spawn_app_with};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use url::Url;

use crate::attack_kit::set_cookies;
use crate::on_both_stores;

on_both_stores!(
    pushed_login_puts_nothing_but_client_id_and_request_uri_in_the_url,
    step_up_keeps_the_current_session_until_the_new_one_exists,
);

/// A provider that advertises and accepts pushed authorization requests.
fn par_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&[("PROVIDER_PAR", "on")]))
}

/// A provider that accepts authorization requests only when pushed.
fn par_required_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&[("PROVIDER_PAR", "required")]))
}

async fn spawn_on(store: StoreKind, provider: &'static Provider, env: &[(&'static str, &str)]) -> TestApp {
    let mut options = Options::new(store);
    options.provider = Some(provider);
    options.env = env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    spawn_app_with(options).await
}

/// `GET /auth/login` with `query` (errors come back as JSON: no `Accept: text/html`).
async fn login_with(browser: &BffBrowser, query: &[(&str, &str)]) -> Response {
    let url = Url::parse_with_params(&format!("{}/auth/login", browser.bff), query).expect("login URL");
    browser.get(url.as_str()).await
}

/// A whole login with `query` as `user`: `/auth/login`, the provider's pages, then the
/// callback, whose answer is returned.
async fn log_in_with(browser: &BffBrowser, user: &str, query: &[(&str, &str)]) -> Response {
    let started = login_with(browser, query).await;
    assert_eq!(
        started.status(),
        StatusCode::FOUND,
        "login must redirect to the provider"
    );
    let authorize = join(&format!("{}/auth/login", browser.bff), &location(&started));
    let callback = browser.authenticate(&authorize, user).await;
    browser.get(&callback).await
}

async fn me(browser: &BffBrowser) -> (StatusCode, Value) {
    let response = browser.get("/auth/me").await;
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

fn query_names(url: &str) -> Vec<String> {
    Url::parse(url)
        .expect("URL")
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect()
}

async fn error_code(response: Response) -> String {
    let body = response.text().await.expect("body");
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(body)
}

async fn pushed_login_puts_nothing_but_client_id_and_request_uri_in_the_url(store: StoreKind) {
    let provider = par_provider();
    let app = spawn_on(store, provider, &[]).await;
    let browser = app.browser();
    let pushed_before = provider.requests().await.get("/request").copied().unwrap_or(0);

    let started = login_with(
        &browser,
        &[("returnTo", "/orders?x=1"), ("acr_values", "urn:bff:loa:2")],
    )
    .await;
    assert_eq!(started.status(), StatusCode::FOUND);
    let authorize = location(&started);
    assert!(
        authorize.starts_with(&format!("{}/auth?", provider.issuer)),
        "{authorize}"
    );
    let mut names = query_names(&authorize);
    names.sort();
    assert_eq!(names, ["client_id", "request_uri"], "{authorize}");
    for secret in [
        "state",
        "nonce",
        "code_challenge",
        "scope",
        "redirect_uri",
        "acr_values",
    ] {
        assert!(!authorize.contains(secret), "{secret} in the URL: {authorize}");
    }
    let pushed = provider.requests().await.get("/request").copied().unwrap_or(0);
    assert_eq!(pushed, pushed_before + 1, "one pushed request per login");

    // The full login completes through the pushed request, and the option pushed with it
    // reached the provider: the ID token shows the context asked for.
    let callback = browser.get(&browser.authenticate(&authorize, "alice").await).await;
    assert_eq!(
        callback.status(),
        StatusCode::FOUND,
        "{}",
        callback.text().await.unwrap_or_default()
    );
    assert_eq!(location(&callback), "/orders?x=1");
    let (status, me) = me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["acr"], "urn:bff:loa:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_requires_pushed_requests_gets_them() {
    let app = spawn_on(StoreKind::Memory, par_required_provider(), &[]).await;
    let browser = app.browser();
    let callback = log_in_with(&browser, "alice", &[("returnTo", "/x")]).await;
    assert_eq!(
        callback.status(),
        StatusCode::FOUND,
        "{}",
        callback.text().await.unwrap_or_default()
    );
    assert_eq!(location(&callback), "/x");
    assert_eq!(me(&browser).await.0, StatusCode::OK);

    // BFF_PAR=off cannot talk to it: the login says so instead of sending the browser to
    // an error at the provider.
    let off = spawn_on(StoreKind::Memory, par_required_provider(), &[("BFF_PAR", "off")]).await;
    let refused = login_with(&off.browser(), &[("returnTo", "/x")]).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(set_cookies(&refused).is_empty(), "no login transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_off_sends_the_request_in_the_url_even_when_the_provider_offers_par() {
    let provider = par_provider();
    let app = spawn_on(StoreKind::Memory, provider, &[("BFF_PAR", "off")]).await;
    let browser = app.browser();
    let started = login_with(&browser, &[("returnTo", "/x")]).await;
    let names = query_names(&location(&started));
    assert!(names.iter().any(|n| n == "state") && !names.iter().any(|n| n == "request_uri"));
    let callback = log_in_with(&browser, "alice", &[("returnTo", "/x")]).await;
    assert_eq!(callback.status(), StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_on_with_a_provider_without_par_stops_start_up_and_refuses_logins() {
    // The shared provider takes no pushed requests.
    let app = spawn_app_with({
        let mut options = Options::new(StoreKind::Memory);
        options.env = vec![("BFF_PAR", "on".to_owned())];
        options
    })
    .await;
    let refused = login_with(&app.browser(), &[("returnTo", "/x")]).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);

    // bff-local itself does not start: one line naming the variable.
    let mut env: HashMap<&str, String> = app.env.clone();
    env.insert("BFF_LISTEN", "127.0.0.1:0".to_owned());
    let mut child = std::process::Command::new(bff_tests::process::binary())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start bff-local");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bff-local started with BFF_PAR=on and a provider without PAR");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!status.success());
    let line = stderr.lines().find(|l| l.contains("configuration error")).unwrap_or("");
    assert!(line.contains("BFF_PAR=on"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_login_parameters_are_refused_with_400() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    let long_hint = "a".repeat(300);
    let refused: &[&[(&str, &str)]] = &[
        &[("returnTo", "/"), ("redirect_uri", "https://evil.example/cb")],
        &[("returnTo", "/"), ("scope", "openid admin")],
        &[("returnTo", "/"), ("response_mode", "form_post")],
        &[("returnTo", "/"), ("prompt", "admin")],
        &[("returnTo", "/"), ("prompt", "none login")],
        &[("returnTo", "/"), ("prompt", "login"), ("prompt", "none")],
        &[("returnTo", "/"), ("max_age", "-5")],
        &[("returnTo", "/"), ("login_hint", "alice\r\nX: 1")],
        &[("returnTo", "/"), ("login_hint", &long_hint)],
        &[("returnTo", "/"), ("acr_values", "gold\u{0}")],
        &[("returnTo", "/"), ("ui_locales", "en_US")],
        &[("returnTo", "/"), ("organization", "org 1")],
    ];
    for query in refused {
        let response = login_with(&browser, query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query:?}");
        assert!(set_cookies(&response).is_empty(), "no login transaction for {query:?}");
        assert_eq!(error_code(response).await, "invalid_request", "{query:?}");
    }
    // Every known option with a good value starts a login and reaches the provider.
    let accepted = login_with(
        &browser,
        &[
            ("returnTo", "/"),
            ("prompt", "login consent"),
            ("login_hint", "alice@example.com"),
            ("max_age", "600"),
            ("acr_values", "urn:bff:loa:1"),
            ("ui_locales", "de-CH en"),
            ("organization", "org_123"),
        ],
    )
    .await;
    assert_eq!(accepted.status(), StatusCode::FOUND);
    let authorize: HashMap<String, String> = Url::parse(&location(&accepted))
        .expect("URL")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(authorize["prompt"], "login consent");
    assert_eq!(authorize["login_hint"], "alice@example.com");
    assert_eq!(authorize["max_age"], "600");
    assert_eq!(authorize["ui_locales"], "de-CH en");
    assert_eq!(authorize["organization"], "org_123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_login_without_a_provider_session_goes_back_with_login_required() {
    for provider in [bff_testkit::provider::shared(), par_provider()] {
        let app = spawn_on(StoreKind::Memory, provider, &[]).await;
        let browser = app.browser();
        let callback = log_in_with(
            &browser,
            "nobody",
            &[("returnTo", "/app?tab=2#top"), ("prompt", "none")],
        )
        .await;
        assert_eq!(
            callback.status(),
            StatusCode::FOUND,
            "{}",
            callback.text().await.unwrap_or_default()
        );
        assert_eq!(location(&callback), "/app?tab=2&error=login_required#top");
        assert!(
            !set_cookies(&callback).iter().any(|c| c.starts_with("bff-session=")),
            "no session cookie"
        );
        assert_eq!(me(&browser).await.0, StatusCode::UNAUTHORIZED);
    }

    // A provider error on a login that was not silent is still an error page.
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    let started = login_with(&browser, &[("returnTo", "/x")]).await;
    let denied = browser.deny(&location(&started)).await;
    let page = browser.get(&denied).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_login_with_a_provider_session_logs_in_without_a_page() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let first = browser.cookie("bff-session").expect("session");

    let started = login_with(&browser, &[("returnTo", "/x"), ("prompt", "none")]).await;
    let mut url = join(&format!("{}/auth/login", app.url), &location(&started));
    // Redirects only: no login or consent page may appear.
    while !url.starts_with(&format!("{}/auth/callback", app.url)) {
        let hop = browser.get(&url).await;
        assert!(hop.status().is_redirection(), "a page at {url}");
        url = join(&url, &location(&hop));
    }
    let callback = browser.get(&url).await;
    assert_eq!(location(&callback), "/x");
    let second = browser.cookie("bff-session").expect("session");
    assert_ne!(second, first, "a new session");
    let (status, me) = me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_checked_against_auth_time() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    let callback = log_in_with(&browser, "alice", &[("returnTo", "/"), ("max_age", "60")]).await;
    assert_eq!(callback.status(), StatusCode::FOUND);
    let (_, me) = me(&browser).await;
    let auth_time = me["auth_time"].as_i64().expect("auth_time in the ID token");

    // The provider's sign-in is reused, and it is older than the BFF allows for
    // max_age=60 (the BFF's clock runs 1000 s ahead): refused, and the session stays.
    app.clock.advance(1000);
    let stale = log_in_with(&browser, "alice", &[("returnTo", "/"), ("max_age", "60")]).await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert!(
        stale
            .text()
            .await
            .expect("page")
            .contains("insufficient_user_authentication")
    );
    let (status, still) = self::me(&browser).await;
    assert_eq!((status, still["auth_time"].as_i64()), (StatusCode::OK, Some(auth_time)));

    // Without max_age the same sign-in is fine.
    let callback = log_in_with(&browser, "alice", &[("returnTo", "/")]).await;
    assert_eq!(callback.status(), StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_values_are_checked_in_the_id_token() {
    let app = spawn_app(StoreKind::Memory).await;
    let asked = [("returnTo", "/"), ("acr_values", "urn:bff:loa:2")];

    let strong = app.browser();
    let callback = log_in_with(&strong, "alice", &asked).await;
    assert_eq!(callback.status(), StatusCode::FOUND);
    assert_eq!(me(&strong).await.1["acr"], "urn:bff:loa:2");

    // The provider signs this user in at a lower level than asked.
    let weak = app.browser();
    let callback = log_in_with(&weak, "weak-bob", &asked).await;
    assert_eq!(callback.status(), StatusCode::FORBIDDEN);
    assert!(
        callback
            .text()
            .await
            .expect("page")
            .contains("insufficient_user_authentication")
    );
    assert_eq!(me(&weak).await.0, StatusCode::UNAUTHORIZED, "no session");
}

async fn step_up_keeps_the_current_session_until_the_new_one_exists(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let first = browser.cookie("bff-session").expect("session");
    let step_up = [
        ("returnTo", "/pay"),
        ("acr_values", "urn:bff:loa:2"),
        ("prompt", "login"),
    ];

    // A step-up that fails (the sign-in is weaker than asked) leaves the session as it was.
    let failed = log_in_with(&browser, "weak-alice", &step_up).await;
    assert_eq!(failed.status(), StatusCode::FORBIDDEN);
    assert_eq!(browser.cookie("bff-session").as_deref(), Some(first.as_str()));
    let (status, me_now) = me(&browser).await;
    assert_eq!((status, me_now["sub"].as_str()), (StatusCode::OK, Some("alice")));
    assert!(me_now.get("acr").is_none());

    // One that succeeds replaces it: the new session has the context, the old one is gone.
    let done = log_in_with(&browser, "alice", &step_up).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), "/pay");
    let second = browser.cookie("bff-session").expect("session");
    assert_ne!(second, first);
    assert_eq!(me(&browser).await.1["acr"], "urn:bff:loa:2");
    let now = app.app.clock.now();
    let old = app.store.get_session(&session_key(&SessionId::new(&first)), now).await;
    assert!(
        old.expect("store").is_none(),
        "the replaced session is ended in the store"
    );
}
