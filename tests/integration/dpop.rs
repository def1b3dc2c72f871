//! DPoP (RFC 9449) with `BFF_DPOP=on` against `oidc-provider` (its `dPoP` feature, with
//! `nonceSecret` and nonces required: `PROVIDER_DPOP=nonce`) and the recording upstream
//! as a DPoP resource server that verifies every proof (signature with the `jwk`, `ath`,
//! `htm`, `htu`, a fresh `jti`) and can demand its own nonce.
//!
//! oidc-provider checks the token-endpoint side for real: a proof on every token request,
//! signed by the key its `jwk` names, `htm`/`htu` of the token endpoint, a never-seen
//! `jti`, and the provider's nonce (the first request is refused with `use_dpop_nonce`).

use std::collections::BTreeSet;

use bff::domain::secret::AccessToken;
use bff::platform::dpop::DpopKey;
use bff_testkit::browser::location;
use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app_with};
use bff_tests::faulty_idp::{Edit, SUBJECT, Scenario, spawn_app_against};
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A BFF with `BFF_DPOP=on` on its own provider started with `provider_env`.
async fn spawn_dpop(store: StoreKind, provider_env: &[(&str, &str)]) -> TestApp {
    let provider: &'static Provider = Box::leak(Box::new(Provider::start(provider_env)));
    let mut options = Options::new(store);
    options.provider = Some(provider);
    options.env.push(("BFF_DPOP", "on".into()));
    spawn_app_with(options).await
}

async fn token_requests(app: &TestApp) -> u64 {
    app.provider.requests().await.get("/token").copied().unwrap_or(0)
}

/// The `Authorization` headers the upstream received, in order.
fn authorizations(upstream: &Upstream) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .map(|seen| seen.header("authorization").join(", "))
        .collect()
}

/// Login, API calls and a refresh, each bound to the session's one key, with the nonce
/// dance at the provider and at the upstream.
async fn login_calls_and_refresh_are_dpop_bound(store: StoreKind) {
    let app = spawn_dpop(store, &[("PROVIDER_DPOP", "nonce")]).await;
    app.upstream.demand_dpop_nonce("upstream-nonce-1");
    let browser = app.browser();

    let callback = browser.login("alice", "/").await;
    assert_eq!(callback.status(), StatusCode::FOUND, "the code exchange must succeed");
    assert_eq!(app.provider.grants("authorization_code").await, 1);
    assert_eq!(
        token_requests(&app).await,
        2,
        "the first proof without a nonce is refused (use_dpop_nonce), the one retry with it succeeds"
    );

    let answer = browser.api(Method::GET, "/api/me?x=1").await;
    assert_eq!(answer.status(), StatusCode::OK);
    let verdicts = app.upstream.dpop_verdicts();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(verdicts[0].outcome, Err("use_dpop_nonce".into()));
    assert_eq!(verdicts[0].nonce, None);
    let jkt = verdicts[1].outcome.clone().expect("the retry's proof verifies");
    assert_eq!(verdicts[1].nonce.as_deref(), Some("upstream-nonce-1"));
    let first = authorizations(&app.upstream);
    assert!(first[1].starts_with("DPoP "), "{first:?}");

    // The upstream's nonce is remembered: the next call needs no retry.
    assert_eq!(browser.api(Method::POST, "/api/orders").await.status(), StatusCode::OK);
    assert_eq!(app.upstream.dpop_verdicts().len(), 3);

    // Close to expiry: the next call refreshes first, with a proof of the same key.
    app.clock.advance(290);
    assert_eq!(browser.api(Method::GET, "/api/me").await.status(), StatusCode::OK);
    assert_eq!(app.provider.grants("refresh_token").await, 1, "one refresh grant");
    assert_eq!(token_requests(&app).await, 3, "the provider's nonce is remembered");
    let verdicts = app.upstream.dpop_verdicts();
    let last = verdicts.last().expect("verdict");
    assert_eq!(last.outcome, Ok(jkt.clone()), "the same key after the refresh");
    let all = authorizations(&app.upstream);
    let last_token = all.last().expect("call");
    assert!(last_token.starts_with("DPoP "), "{last_token}");
    assert_ne!(last_token, &first[1], "a refreshed token");
    let keys: BTreeSet<_> = verdicts.iter().filter_map(|v| v.outcome.clone().ok()).collect();
    assert_eq!(keys.len(), 1, "one key for the whole session");
    assert_eq!(
        app.app.dpop_keys.parses(),
        1,
        "the proxy parses the session's key once, not on every call"
    );

    // Another session has its own key.
    let other = app.browser();
    assert_eq!(other.login("bob", "/").await.status(), StatusCode::FOUND);
    assert_eq!(other.api(Method::GET, "/api/me").await.status(), StatusCode::OK);
    let theirs = app.upstream.dpop_verdicts().last().expect("verdict").outcome.clone();
    assert!(theirs.is_ok() && theirs != Ok(jkt), "{theirs:?}");
    assert_eq!(app.app.dpop_keys.parses(), 2, "each session's key parsed for it");
}

crate::on_both_stores!(login_calls_and_refresh_are_dpop_bound);

/// The browser's own `DPoP` and `Authorization` headers never reach the upstream: it
/// gets exactly the BFF's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_s_dpop_and_authorization_headers_never_reach_the_upstream() {
    let app = spawn_dpop(StoreKind::Memory, &[]).await;
    app.upstream.require_dpop();
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let answer = browser
        .http
        .get(format!("{}/api/headers", app.url))
        .header("X-CSRF", "1")
        .header("Authorization", "DPoP attacker-token")
        .header("DPoP", "attacker.proof.here")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status(), StatusCode::OK);
    let seen = app.upstream.requests().pop().expect("one call");
    assert_eq!(seen.header("dpop").len(), 1);
    assert!(!seen.header("dpop")[0].contains("attacker"));
    assert_eq!(seen.header("authorization").len(), 1);
    assert!(!seen.header("authorization")[0].contains("attacker"));
    assert!(app.upstream.dpop_verdicts().last().expect("verdict").outcome.is_ok());
}

/// A provider that answers `token_type: Bearer` to a request with a proof: the token is
/// used, and sent, as Bearer, never as DPoP; the browser's own `DPoP` header stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_answer_is_sent_as_bearer() {
    let app = spawn_dpop(StoreKind::Memory, &[("PROVIDER_DPOP", "off")]).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let answer = browser
        .http
        .get(format!("{}/api/me", app.url))
        .header("X-CSRF", "1")
        .header("DPoP", "attacker.proof.here")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status(), StatusCode::OK);
    let seen = app.upstream.requests().pop().expect("one call");
    assert!(seen.bearer().is_some(), "{:?}", seen.header("authorization"));
    assert!(
        seen.header("dpop").is_empty(),
        "no proof with a Bearer token, and never the browser's"
    );
}

/// With `BFF_DPOP=off`, a provider that issues a DPoP-bound token anyway fails the login
/// with `unexpected_token_type` (RFC 6749 §7.1), and no session is made. oidc-provider
/// never answers `token_type: DPoP` to a request without a proof (a client registered
/// with `dpop_bound_access_tokens` gets `invalid_request` instead), so the deliberately
/// faulty provider of the attack suites plays this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_token_without_bff_dpop_fails_the_login_clearly() {
    let app = spawn_app_against(Scenario::honest().token_edit(Edit::Set("token_type", json!("DPoP")))).await;
    let browser = app.browser();
    let login = browser.get("/auth/login?returnTo=/").await;
    assert_eq!(login.status(), StatusCode::FOUND);
    let callback = browser.authenticate(&location(&login), SUBJECT).await;
    let answer = browser.get(&callback).await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    let page = answer.text().await.expect("page");
    assert!(page.contains("unexpected_token_type"), "{page}");
    assert!(page.contains("BFF_DPOP"), "{page}");
    assert_eq!(app.store.session_count(), 0);
    assert!(browser.cookie("bff-session").is_none());
}

/// The test upstream itself refuses what a DPoP resource server must: a replayed `jti`,
/// a wrong `htu`, `htm` or `ath`, a DPoP token sent as Bearer, and a missing proof; so
/// the tests above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_upstream_refuses_bad_proofs() {
    let upstream = Upstream::start().await;
    upstream.require_dpop();
    let key = DpopKey::from_secret(&DpopKey::generate().expect("key")).expect("usable");
    let url = url::Url::parse(&format!("{}orders", upstream.base)).expect("url");
    let other = url::Url::parse(&format!("{}admin", upstream.base)).expect("url");
    let token = AccessToken::new("token-1");
    let now = bff::platform::dpop::unix_now();
    let http = reqwest::Client::new();
    let call = |method: Method, authorization: String, proof: Option<String>| {
        let mut request = http.request(method, url.clone()).header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        async move { request.send().await.expect("call").status() }
    };
    let good = key.proof("GET", &url, now, None, Some(&token)).expect("proof");
    let dpop = format!("DPoP {}", token.secret());
    assert_eq!(
        call(Method::GET, dpop.clone(), Some(good.clone())).await,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, dpop.clone(), Some(good)).await,
        StatusCode::UNAUTHORIZED,
        "replayed jti"
    );
    let wrong_htu = key.proof("GET", &other, now, None, Some(&token)).expect("proof");
    assert_eq!(
        call(Method::GET, dpop.clone(), Some(wrong_htu)).await,
        StatusCode::UNAUTHORIZED
    );
    let wrong_htm = key.proof("POST", &url, now, None, Some(&token)).expect("proof");
    assert_eq!(
        call(Method::GET, dpop.clone(), Some(wrong_htm)).await,
        StatusCode::UNAUTHORIZED
    );
    let wrong_ath = key
        .proof("GET", &url, now, None, Some(&AccessToken::new("other")))
        .expect("proof");
    assert_eq!(
        call(Method::GET, dpop.clone(), Some(wrong_ath)).await,
        StatusCode::UNAUTHORIZED
    );
    let as_bearer = key.proof("GET", &url, now, None, Some(&token)).expect("proof");
    assert_eq!(
        call(Method::GET, format!("Bearer {}", token.secret()), Some(as_bearer)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(Method::GET, dpop.clone(), None).await, StatusCode::UNAUTHORIZED);
    upstream.demand_dpop_nonce("n-9");
    let without = key.proof("GET", &url, now, None, Some(&token)).expect("proof");
    assert_eq!(
        call(Method::GET, dpop.clone(), Some(without)).await,
        StatusCode::UNAUTHORIZED
    );
    let with = key.proof("GET", &url, now, Some("n-9"), Some(&token)).expect("proof");
    assert_eq!(call(Method::GET, dpop, Some(with)).await, StatusCode::OK);
}

/// A route's own token (RFC 8707 `resource`, obtained with the refresh grant) is bound
/// to the session's key too, and goes upstream as DPoP with a proof of that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_s_own_token_is_dpop_bound_to_the_session_s_key() {
    let provider: &'static Provider = Box::leak(Box::new(Provider::start(&[("PROVIDER_DPOP", "nonce")])));
    let orders = Upstream::start().await;
    orders.require_dpop();
    let mut options = Options::new(StoreKind::Memory);
    options.provider = Some(provider);
    options.env.push(("BFF_DPOP", "on".into()));
    let users = Upstream::start().await;
    users.require_dpop();
    let routes = json!([
        {"path": "/api", "upstream": users.base, "token": "user"},
        {"path": "/api/orders", "upstream": orders.base, "token": "user", "resource": "https://orders.example"},
    ]);
    options.env.push(("BFF_APIS", routes.to_string()));
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    assert_eq!(browser.api(Method::GET, "/api/me").await.status(), StatusCode::OK);
    assert_eq!(browser.api(Method::GET, "/api/orders/7").await.status(), StatusCode::OK);
    assert_eq!(app.provider.grants("refresh_token").await, 1, "the route's token");
    let login_key = users.dpop_verdicts().last().expect("verdict").outcome.clone();
    let route_key = orders.dpop_verdicts().last().expect("verdict").outcome.clone();
    assert!(login_key.is_ok(), "{login_key:?}");
    assert_eq!(route_key, login_key, "one key for both tokens");
    let route_token = authorizations(&orders).pop().expect("call");
    let login_token = authorizations(&users).pop().expect("call");
    assert!(route_token.starts_with("DPoP ") && route_token != login_token);
}
