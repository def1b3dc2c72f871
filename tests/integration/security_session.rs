//! The BFF under attack from the browser side, on the session cookie: session fixation
//! (at login and through the upstream's `Set-Cookie`), a session cookie sent twice,
//! session ids the BFF did not issue, and cookie tossing against the deployed
//! `__Host-Http-` cookies, whose attributes are checked too.
//!
//! Every attack is its own test whose name starts with `attack_`, and every one of them
//! must pass, i.e. the attack must be blocked. Tests that need a logged-in user without
//! caring how the tokens were obtained plant a session straight into the store (no
//! provider round trip); tests about the login itself walk the provider's real pages.
//!
//! References: the OWASP Session Management Cheat Sheet, RFC 6265bis (cookies) §4.1.3.2
//! and §8.6, draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend), RFC 9700
//! (OAuth 2.0 Security Best Current Practice).

use bff::domain::secret::{SessionId, hash, random_token};
use bff::store::session_key;
use bff_testkit::browser::{location, raw_get};
use bff_tests::app::{Options, StoreKind, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::attack_kit::{
    app_with_hostile_upstream, assert_harmless, plant_session, query_param, session_exists, set_cookies, walk_provider,
};

// ------------------------------------------------------------------------------------
// Session fixation and cookie injection (OWASP Session Management, RFC 6265bis)
// ------------------------------------------------------------------------------------

/// OWASP Session Management ("renew the session id after any privilege level change"):
/// the attacker plants his own *live* session id in the victim's browser. When the victim
/// logs in, the BFF issues a brand-new id and ends the planted session, so the attacker's
/// id never becomes the victim's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_fixation_with_the_attackers_live_session_id_is_defeated_at_login() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    attacker.login("mallory", "/").await;
    let fixed = attacker.cookie("bff-session").expect("attacker's session");

    let victim = app.browser();
    victim.set_cookie("bff-session", &fixed);
    victim.login("alice", "/").await;
    let issued = victim.cookie("bff-session").expect("victim's session");
    assert_ne!(issued, fixed, "login issues a new id");
    let me: Value = victim.get("/auth/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");

    // The fixed id is worthless now: ended in the store, never alice's.
    assert!(!session_exists(&app, &fixed).await, "the planted session was ended");
    let replay = attacker.get("/auth/me").await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

/// RFC 6265bis §8.6 (weak integrity: cookie tossing) and OWASP Session Management: a
/// session cookie sent twice, in one header or in two, is ignored whichever copy is
/// genuine, so an injected duplicate can never choose the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_cookie_sent_twice_is_ignored() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let other = plant_session(&app).await;
    let genuine = format!("bff-session={}", planted.id);
    let injected = format!("bff-session={}", other.id);
    let fake = format!("bff-session={}", random_token(32));

    let (status, _) = raw_get(&app.url, "/auth/me", &[("Cookie", &genuine)]).await;
    assert_eq!(status, 200, "control: the genuine cookie alone works");
    for cookies in [
        vec![format!("{genuine}; {injected}")],
        vec![format!("{injected}; {genuine}")],
        vec![format!("{genuine}; {fake}")],
        vec![format!("{genuine}; {genuine}")],
        vec![genuine.clone(), injected.clone()],
        vec![fake.clone(), genuine.clone()],
    ] {
        let headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("Cookie", c.as_str())).collect();
        let (status, body) = raw_get(&app.url, "/auth/me", &headers).await;
        assert_eq!(status, 401, "{cookies:?}: {body}");
        assert!(!body.contains("alice"), "{cookies:?}");
    }
}

/// OWASP Session Management ("session id content"): only ids the BFF issued are honoured.
/// Knowing the store's key for a session (the hash of its id), a near-miss of the id, or
/// an oversized or oddly encoded value gives nothing, and never an error other than 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_cookie_values_the_bff_did_not_issue_are_never_adopted() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let key = session_key(&SessionId::new(&planted.id));
    let key_hash = key.as_str().trim_start_matches("session#").to_owned();
    let mut flipped = planted.id.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for value in [
        key_hash.clone(),
        key.as_str().to_owned(),
        hash(&planted.id),
        flipped,
        format!("{}=", planted.id),
        format!("\"{}x\"", &planted.id[..42]),
        format!("{}%41", &planted.id[..41]),
        "A".repeat(4000),
        String::new(),
    ] {
        let cookie = format!("bff-session={value}");
        let (status, _) = raw_get(&app.url, "/auth/me", &[("Cookie", &cookie)]).await;
        assert_eq!(status, 401, "{value:?}");
        let (status, _) = raw_get(&app.url, "/api/x", &[("Cookie", cookie.as_str()), ("X-CSRF", "1")]).await;
        assert_eq!(status, 401, "{value:?}");
    }
    assert_harmless(&app, &planted, "cookie values the BFF did not issue").await;
}

/// OWASP Session Management (session fixation): an upstream (or anyone who controls its
/// answers) cannot set or overwrite the BFF's cookies through a proxied response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_fixation_via_upstream_set_cookie_is_stripped() {
    let app = app_with_hostile_upstream(&[
        (
            "set-cookie",
            "bff-session=attacker-chosen-session-id-0000000000000000; Path=/",
        ),
        ("set-cookie", "__Host-Http-bff-session=x; Path=/; Secure"),
        ("set-cookie", "bff-tx=attacker; Path=/"),
    ])
    .await;
    let planted = plant_session(&app).await;
    let response = planted.browser.api(Method::GET, "/api/x").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
    assert_eq!(
        planted.browser.cookie("bff-session").as_deref(),
        Some(planted.id.as_str())
    );
    assert!(planted.browser.cookie("bff-tx").is_none());
}

// ------------------------------------------------------------------------------------
// Cookies in deployed mode (RFC 6265bis `__Host-` prefix, BFF draft §6.1.3.2)
// ------------------------------------------------------------------------------------

/// The deployed origin the cookie tests configure (served over loopback by the harness).
const DEPLOYED_ORIGIN: &str = "https://app.example.com";

/// The attributes of a `Set-Cookie` value, lower-cased, without the name/value pair.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// RFC 6265bis §4.1.3.2 and the BFF draft §6.1.3.2: deployed on https, the login
/// transaction cookie is `__Host-Http-bff-tx` with `Secure; HttpOnly; SameSite=Lax;
/// Path=/` and no `Domain`, so no subdomain can set or read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_login_transaction_cookie_is_host_prefixed_secure_httponly_lax() {
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_PUBLIC_URL", DEPLOYED_ORIGIN.to_owned()));
    let app = spawn_app_with(options).await;
    let response = app.browser().get("/auth/login?returnTo=/x").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        query_param(&location(&response), "redirect_uri"),
        format!("{DEPLOYED_ORIGIN}/auth/callback")
    );
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let tx = &cookies[0];
    assert!(tx.starts_with("__Host-Http-bff-tx="), "{tx}");
    let attrs = attributes(tx);
    for want in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {tx}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "no Domain: {tx}");
}

/// RFC 6265bis §4.1.3.2 (cookie tossing from a sibling subdomain or a plain-http
/// man-in-the-middle): deployed, the session cookie is `__Host-Http-bff-session` with
/// `Secure; HttpOnly; SameSite=Strict; Path=/`, and the BFF reads only that name: a
/// cookie without the prefix, which anyone on a subdomain could set, is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cookie_tossing_with_an_unprefixed_session_cookie_is_ignored_when_deployed() {
    // A client whose redirect URI is the deployed origin; the browser's redirect there is
    // caught and replayed against the BFF's loopback address.
    let base = spawn_app(StoreKind::Memory).await;
    let client = base.provider.register(DEPLOYED_ORIGIN, "client_secret_basic").await;
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_PUBLIC_URL", DEPLOYED_ORIGIN.to_owned()));
    options.env.push(("BFF_CLIENT_ID", client.client_id.clone()));
    options.env.push(("BFF_CLIENT_SECRET", client.client_secret.clone()));
    let app = spawn_app_with(options).await;
    let browser = app.browser();

    let login = browser.get("/auth/login?returnTo=/home").await;
    let tx = set_cookies(&login)[0].split(';').next().expect("pair").to_owned();
    let authorize = location(&login);
    let callback = walk_provider(
        &browser,
        &authorize,
        "alice",
        &format!("{DEPLOYED_ORIGIN}/auth/callback"),
    )
    .await;
    let local_callback = callback.replacen(DEPLOYED_ORIGIN, &app.url, 1);
    let done = browser
        .http
        .get(&local_callback)
        .header("Cookie", &tx)
        .send()
        .await
        .expect("callback");
    assert_eq!(done.status(), StatusCode::FOUND);
    let session = set_cookies(&done)
        .into_iter()
        .find(|c| c.starts_with("__Host-Http-bff-session="))
        .expect("session cookie");
    let attrs = attributes(&session);
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {session}");
    }
    for absent in ["domain", "max-age", "expires"] {
        assert!(!attrs.iter().any(|a| a.starts_with(absent)), "{absent}: {session}");
    }
    let id = session
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .expect("pair")
        .1
        .to_owned();

    let me = |cookie: String| {
        let http = reqwest::Client::new();
        let url = format!("{}/auth/me", app.url);
        async move {
            http.get(url)
                .header("Cookie", cookie)
                .send()
                .await
                .expect("me")
                .status()
        }
    };
    assert_eq!(me(format!("__Host-Http-bff-session={id}")).await, StatusCode::OK);
    for tossed in [
        format!("bff-session={id}"),
        format!("__Host-bff-session={id}"),
        format!("__host-http-bff-session={id}"),
        format!("__Secure-Http-bff-session={id}"),
        format!("Http-bff-session={id}"),
    ] {
        assert_eq!(me(tossed.clone()).await, StatusCode::UNAUTHORIZED, "{tossed}");
    }
}
