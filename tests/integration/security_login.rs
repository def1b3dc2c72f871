//! The BFF under attack from the browser side, at login: login CSRF and
//! authorization-code injection, a callback posted by a form, a spoofed `Host` that would
//! move the redirect URI or the logout target, and clickjacking of the BFF's own pages.
//! The login tests walk the provider's real pages.
//!
//! Every attack is its own test whose name starts with `attack_`, and every one of them
//! must pass, i.e. the attack must be blocked.
//!
//! References: RFC 9700 (OAuth 2.0 Security Best Current Practice) §4.1, §4.5 and §4.7,
//! draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend), OWASP Clickjacking
//! Defense Cheat Sheet, RFC 9110/9112 (HTTP).

use bff_testkit::browser::location;
use bff_tests::app::{StoreKind, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::attack_kit::{
    assert_still_logged_out, header, query_param, raw_exchange, raw_request, set_cookies, with_param,
};

// ------------------------------------------------------------------------------------
// Login CSRF and authorization-code injection (RFC 9700 §4.7 and §4.5)
// ------------------------------------------------------------------------------------

/// RFC 9700 §4.7 (CSRF on the redirect URI): an attacker finishes a login as himself at
/// the provider and makes the victim's browser open his callback URL. The victim's
/// browser never started that login, so nothing happens: no session (the victim is not
/// logged in as the attacker), and the victim's own pending login is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_login_csrf_attackers_callback_opened_in_the_victims_browser_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    let authorize = attacker.start_login("/").await;
    let forged_callback = attacker.authenticate(&authorize, "mallory").await;

    let victim = app.browser();
    let own_authorize = victim.start_login("/victim").await;
    let response = victim.get(&forged_callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert!(response.headers().get("location").is_none(), "not sent anywhere");
    assert!(
        !set_cookies(&response).iter().any(|c| c.starts_with("bff-tx=")),
        "the victim's pending logins are untouched"
    );
    assert_still_logged_out(&victim, &response, "the attacker's callback").await;

    // The victim's own login still completes, as the victim.
    let own_callback = victim.authenticate(&own_authorize, "alice").await;
    let done = victim.get(&own_callback).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), "/victim");
    let me: Value = victim.get("/auth/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
}

/// RFC 9700 §4.5 (authorization code injection): the attacker puts his own code into a
/// callback carrying the victim's genuine `state`, so the state check passes. PKCE stops
/// it: the code was issued for the attacker's challenge, the BFF redeems it with the
/// victim's verifier, the provider refuses, and no session is created for anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_authorization_code_injection_into_the_victims_state_is_refused_by_pkce() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    let attacker_authorize = attacker.start_login("/").await;
    let attacker_callback = attacker.authenticate(&attacker_authorize, "mallory").await;
    let attackers_code = query_param(&attacker_callback, "code");

    let victim = app.browser();
    let victim_authorize = victim.start_login("/").await;
    let victim_state = query_param(&victim_authorize, "state");
    let injected = with_param(&attacker_callback, "state", &victim_state);
    assert_eq!(query_param(&injected, "code"), attackers_code);

    let response = victim.get(&injected).await;
    assert!(
        response.status().is_client_error() || response.status().is_server_error(),
        "refused, got {}",
        response.status()
    );
    assert!(response.headers().get("location").is_none());
    assert!(victim.cookie("bff-session").is_none());
    assert_still_logged_out(&victim, &response, "the injected code").await;
}

/// RFC 9700 §4.7: a callback whose `state` is given twice (the victim's own and the
/// attacker's) is refused before anything is redeemed: two parsers must never read
/// different values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_login_csrf_callback_with_a_duplicated_state_parameter_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    let attacker_callback = attacker.authenticate(&attacker.start_login("/").await, "mallory").await;
    let victim = app.browser();
    let victim_state = query_param(&victim.start_login("/").await, "state");
    for polluted in [
        format!("{attacker_callback}&state={victim_state}"),
        format!(
            "{}/auth/callback?state={victim_state}&{}",
            app.url,
            attacker_callback.split_once('?').expect("query").1
        ),
    ] {
        let response = victim.get(&polluted).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{polluted}");
        assert_still_logged_out(&victim, &response, &polluted).await;
    }
}

/// RFC 9700 §4.1 (redirect URI manipulation): the redirect URI and the post-logout URL
/// come from configuration only. A request whose `Host` or forwarding headers name the
/// attacker's site cannot make the provider send the code (or the browser) there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_host_header_cannot_change_the_redirect_uri_or_the_logout_target() {
    let app = spawn_app(StoreKind::Memory).await;
    let spoofed = [
        ("Host", "evil.example.com"),
        ("X-Forwarded-Host", "evil.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "host=evil.example.com;proto=https"),
    ];
    let request = raw_request(&app.url, "GET", "/auth/login?returnTo=/", &spoofed, b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 302, "{}", response.text());
    let authorize = response.header("location")[0].to_owned();
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        format!("{}/auth/callback", app.url)
    );
    assert!(!authorize.contains("evil"), "{authorize}");

    let mut headers = spoofed.to_vec();
    headers.push(("X-CSRF", "1"));
    let request = raw_request(&app.url, "POST", "/auth/logout", &headers, b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(!response.text().contains("evil"), "{}", response.text());
}

/// RFC 9700 §4.7 and the BFF draft: the callback is a top-level GET navigation only; a
/// callback posted by a form (`response_mode=form_post` injection) or called with any
/// other method is refused and creates no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_callback_posted_by_a_form_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    let callback = browser.authenticate(&browser.start_login("/").await, "alice").await;
    let (path, query) = callback.split_once('?').expect("query");
    for method in [Method::POST, Method::PUT] {
        let response = browser
            .http
            .request(method.clone(), path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(query.to_owned())
            .send()
            .await
            .expect("callback");
        assert!(response.status().is_client_error(), "{method}: {}", response.status());
        assert_still_logged_out(&browser, &response, method.as_str()).await;
    }
    // The genuine GET still completes: the refused attempts did not spend the login.
    assert_eq!(browser.get(&callback).await.status(), StatusCode::FOUND);
}

/// OWASP Clickjacking Defense: the BFF's own pages (the callback's error pages) can be
/// framed by nobody, and load no script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_clickjacking_the_bffs_pages_cannot_be_framed() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    for page in [
        "/auth/callback?error=access_denied",
        "/auth/callback?code=x&state=y",
        "/auth/callback",
    ] {
        let response = browser.get(page).await;
        assert!(header(&response, "content-type").starts_with("text/html"), "{page}");
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{page}: {csp}");
    }
}
