//! Userinfo after login (OIDC Core §5.3): against an `oidc-provider` that, as OIDC Core
//! §5.4 has it and as many providers do, puts the profile and e-mail claims in the
//! userinfo answer only, never in the ID token.
//!
//! Its test hooks make two login names misbehave at the userinfo endpoint:
//! `userinfo-other-sub` is answered with another subject, `userinfo-fails` with a 500.

use std::sync::OnceLock;
use std::time::Duration;

use bff::domain::secret::SessionId;
use bff::domain::session::SessionRecord;
use bff::store::session_key;
use bff_testkit::BffBrowser;
use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attack_kit::set_cookies;
use crate::on_both_stores;

/// A provider whose ID tokens carry `sub` and no profile or e-mail claim.
fn conforming_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&[("PROVIDER_CONFORM_ID_TOKEN_CLAIMS", "1")]))
}

async fn spawn(store: StoreKind, env: &[(&'static str, &str)], metadata: Option<Value>) -> TestApp {
    let mut options = Options::new(store);
    options.provider = Some(conforming_provider());
    options.env = env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    options.client_metadata = metadata;
    spawn_app_with(options).await
}

async fn session_of(app: &TestApp, browser: &BffBrowser) -> SessionRecord {
    let id = SessionId::new(browser.cookie("bff-session").expect("session cookie"));
    app.store
        .get_session(&session_key(&id), app.app.clock.now())
        .await
        .expect("store")
        .expect("session")
}

async fn me(browser: &BffBrowser) -> Value {
    let me = browser.get("/auth/me").await;
    assert_eq!(me.status(), StatusCode::OK);
    me.json().await.expect("json")
}

on_both_stores!(profile_claims_only_in_userinfo_reach_auth_me);

/// `auto`: the ID token lacks the requested profile and e-mail claims, so userinfo is
/// asked once; its claims are kept in the session (sealed) and shown by `/auth/me`.
async fn profile_claims_only_in_userinfo_reach_auth_me(store: StoreKind) {
    let app = spawn(store, &[], None).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let session = session_of(&app, &browser).await;
    assert!(
        !session.claims.contains_key("name") && !session.claims.contains_key("email"),
        "the ID token has no profile: {:?}",
        session.claims
    );
    let userinfo = session.userinfo.as_ref().expect("userinfo kept");
    assert_eq!(userinfo["email"], "alice@example.com");
    for protocol in ["iss", "aud", "iat", "exp"] {
        assert!(!userinfo.contains_key(protocol), "{protocol} kept");
    }
    let me = me(&browser).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["name"], "Alice Example");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["email_verified"], true);
    assert!(me["session"]["expires_at"].is_i64());
}

/// A signed userinfo answer (`application/jwt`) is verified with the provider's JWKS
/// and used like a plain one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_userinfo_answers_are_verified_and_used() {
    let app = spawn(
        StoreKind::Memory,
        &[],
        Some(json!({"userinfo_signed_response_alg": "RS256"})),
    )
    .await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let me = me(&browser).await;
    assert_eq!(me["name"], "Alice Example");
    assert_eq!(me["email"], "alice@example.com");
    for protocol in ["iss", "aud", "iat", "exp"] {
        assert!(me.get(protocol).is_none(), "{protocol} shown: {me}");
    }
}

/// OIDC Core §5.3.2: userinfo naming another subject fails the login, and nothing of it
/// reaches a session or the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_naming_another_subject_fails_the_login() {
    let app = spawn(StoreKind::Memory, &[], None).await;
    let browser = app.browser();
    let callback = browser.login("userinfo-other-sub", "/").await;
    assert_eq!(callback.status(), StatusCode::BAD_GATEWAY);
    assert!(
        !set_cookies(&callback).iter().any(|c| c.starts_with("bff-session=")),
        "no session cookie"
    );
    let page = callback.text().await.expect("page");
    assert!(page.contains("userinfo_subject_mismatch"), "{page}");
    assert!(!page.contains("someone-else"), "nothing of the answer is shown");
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
}

/// A userinfo endpoint that fails does not fail the login: the session has the ID
/// token's claims alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_userinfo_endpoint_does_not_fail_the_login() {
    let app = spawn(StoreKind::Memory, &[], None).await;
    let browser = app.browser();
    assert_eq!(browser.login("userinfo-fails", "/").await.status(), StatusCode::FOUND);
    assert!(session_of(&app, &browser).await.userinfo.is_none());
    let me = me(&browser).await;
    assert_eq!(me["sub"], "userinfo-fails");
    assert!(me.get("email").is_none(), "{me}");
}

/// `BFF_USERINFO=off`: userinfo is never asked, even when the ID token lacks the profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_off_keeps_the_id_tokens_claims_only() {
    let app = spawn(StoreKind::Memory, &[("BFF_USERINFO", "off")], None).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    assert!(session_of(&app, &browser).await.userinfo.is_none());
    assert!(me(&browser).await.get("email").is_none());
}

/// `auto` asks nothing when the ID token already has the profile; `always` asks anyway,
/// and the ID token's claims win over userinfo's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_asks_only_when_the_id_token_lacks_the_profile_and_always_asks() {
    let auto = spawn_app(StoreKind::Memory).await;
    let browser = auto.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let session = session_of(&auto, &browser).await;
    assert_eq!(
        session.claims["name"], "Alice Example",
        "the profile is in the ID token"
    );
    assert!(session.userinfo.is_none(), "auto: userinfo not asked");

    let mut options = Options::new(StoreKind::Memory);
    options.env = vec![("BFF_USERINFO", "always".to_owned())];
    let always = spawn_app_with(options).await;
    let browser = always.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let mut session = session_of(&always, &browser).await;
    assert_eq!(
        session.userinfo.as_ref().expect("always: userinfo asked")["email"],
        "alice@example.com"
    );
    // Were the two to disagree, the ID token's claim is shown.
    session
        .userinfo
        .as_mut()
        .expect("userinfo")
        .insert("name".into(), "Not From The ID Token".into());
    assert_eq!(session.shown_claims()["name"], "Alice Example");
}

/// A bad `BFF_USERINFO` stops start-up with one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_userinfo_setting_stops_bff_local_at_start() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut env = app.env.clone();
    env.insert("BFF_USERINFO", "sometimes".to_owned());
    let (status, output) =
        tokio::task::spawn_blocking(move || bff_tests::capture::run_to_exit(&env, Duration::from_secs(20)))
            .await
            .expect("join");
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("BFF_USERINFO"), "{output}");
    assert!(!output.contains("listening"), "{output}");
}

/// `/auth/me` keeps what step-up needs (`auth_time`, here asked for with `max_age`) and
/// shows no claim about the token itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_me_keeps_auth_time_for_step_up_and_shows_no_protocol_claim() {
    let mut options = Options::new(StoreKind::Memory);
    options.env = vec![("BFF_AUTH_PARAMS", "max_age=600".to_owned())];
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
    let me = me(&browser).await;
    assert!(me["auth_time"].as_i64().is_some_and(|t| t > 0), "{me}");
    for protocol in ["iss", "aud", "azp", "exp", "iat", "nonce", "at_hash", "sid", "jti"] {
        assert!(me.get(protocol).is_none(), "{protocol} shown: {me}");
    }
}

/// A signed userinfo answer whose signature does not verify is refused: the login still
/// succeeds with the ID token's claims alone, none of the answer's claims reach
/// `/auth/me`, and the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_userinfo_answer_with_a_bad_signature_is_refused_and_logged() {
    use bff_tests::capture::{StoreBackend, free_listen_addr, spawn};
    use std::collections::HashMap;

    let provider = conforming_provider();
    let listen = free_listen_addr();
    let origin = format!("http://{listen}");
    let client = provider
        .register_client(
            &origin,
            "client_secret_basic",
            None,
            Some(&json!({"userinfo_signed_response_alg": "RS256"})),
        )
        .await;
    let env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id),
        ("BFF_CLIENT_SECRET", client.client_secret),
        ("BFF_PUBLIC_URL", origin),
        ("BFF_UPSTREAM_URL", "http://127.0.0.1:1/".to_owned()),
    ]);
    let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
    let browser = BffBrowser::new(&bff.url, &provider.issuer);
    assert_eq!(
        browser.login("userinfo-bad-signature", "/").await.status(),
        StatusCode::FOUND
    );
    let me = me(&browser).await;
    assert_eq!(me["sub"], "userinfo-bad-signature");
    for claim in ["name", "email", "email_verified", "preferred_username"] {
        assert!(me.get(claim).is_none(), "{claim} from the refused answer: {me}");
    }
    let log = bff.stop();
    assert!(
        log.lines().any(
            |l| l.contains("userinfo failed") && l.contains("signed answer refused: the signature does not verify")
        ),
        "{log}"
    );
}
