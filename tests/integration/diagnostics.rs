//! Refusals that name their cause: the log line and the error page say precisely what
//! the provider sent and what to change, never a token, a code or a secret; and
//! `BFF_ERROR_URL` sends failed logins to a team's own page instead.

use std::collections::HashMap;

use bff_testkit::BffBrowser;
use bff_testkit::browser::location;
use bff_tests::app::{Options, StoreKind, TEST_TOKEN_KEYS, spawn_app_with};
use bff_tests::capture::{CapturedBff, StoreBackend};
use reqwest::StatusCode;
use serde_json::json;

use crate::attack_kit::{header, set_cookies};

/// An ID token signed with HMAC (LemonLDAP::NG's default for a new client is HS512):
/// refused with `invalid_id_token_alg`, the page and the log naming the algorithm
/// received and the ones accepted, in the demo's look, with no secret, code or token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hmac_signed_id_token_is_refused_naming_the_algorithm() {
    let provider = bff_testkit::provider::shared();
    for alg in ["HS256", "HS512"] {
        let listen = bff_tests::capture::free_listen_addr();
        let origin = format!("http://{listen}");
        let client = provider
            .register_client(
                &origin,
                "client_secret_basic",
                None,
                Some(&json!({"id_token_signed_response_alg": alg})),
            )
            .await;
        let env: HashMap<&'static str, String> = HashMap::from([
            ("BFF_ISSUER", provider.issuer.clone()),
            ("BFF_CLIENT_ID", client.client_id.clone()),
            ("BFF_CLIENT_SECRET", client.client_secret.clone()),
            ("BFF_PUBLIC_URL", origin.clone()),
            ("BFF_UPSTREAM_URL", "http://127.0.0.1:9".to_owned()),
            ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
        ]);
        let bff: CapturedBff = bff_tests::capture::spawn(&env, StoreBackend::Memory, listen, "info").await;
        let browser = BffBrowser::new(&bff.url, &provider.issuer);
        let authorize = browser.start_login("/").await;
        let callback_url = browser.authenticate(&authorize, "alice").await;
        let code = url::Url::parse(&callback_url)
            .expect("callback URL")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code");
        let callback = browser.get(&callback_url).await;
        assert_eq!(callback.status(), StatusCode::BAD_GATEWAY, "{alg}");
        assert!(!set_cookies(&callback).iter().any(|c| c.starts_with("bff-session=")));
        let csp = header(&callback, "content-security-policy");
        assert!(
            csp.contains("style-src 'unsafe-inline'"),
            "the page's style is allowed: {csp}"
        );
        let page = callback.text().await.expect("page");
        assert!(
            page.contains("<style>") && page.contains("prefers-color-scheme"),
            "the demo's look"
        );
        assert!(page.contains("invalid_id_token_alg"), "{page}");
        assert!(
            page.contains(alg) && page.contains("RS256"),
            "received and accepted named: {page}"
        );
        let log = bff.stop();
        let refusal = log
            .lines()
            .find(|line| line.contains("identity provider error"))
            .unwrap_or_else(|| panic!("no log line for the refusal: {log}"));
        assert!(refusal.contains(alg) && refusal.contains("RS256"), "{refusal}");
        for secret in [client.client_secret.as_str(), code.as_str()] {
            assert!(!page.contains(secret), "a secret on the page");
            assert!(!log.contains(secret), "a secret in the log");
        }
        assert!(!page.contains("eyJ"), "no token on the page");
    }
}

/// `BFF_ERROR_URL`: a failed login (refused at the provider, or a foreign state) sends
/// the browser there with `error=<code>`, and creates no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_go_to_the_error_url_with_their_code() {
    let mut options = Options::new(StoreKind::Memory);
    options.env = vec![("BFF_ERROR_URL", "/login-failed?lang=en".to_owned())];
    let app = spawn_app_with(options).await;
    let browser = app.browser();

    let authorize = browser.start_login("/").await;
    let denied = browser.get(&browser.deny(&authorize).await).await;
    assert_eq!(denied.status(), StatusCode::FOUND);
    assert_eq!(location(&denied), "/login-failed?lang=en&error=access_denied");
    assert!(!set_cookies(&denied).iter().any(|c| c.starts_with("bff-session=")));

    let foreign = browser.get("/auth/callback?code=abc&state=not-mine").await;
    assert_eq!(foreign.status(), StatusCode::FOUND);
    assert_eq!(location(&foreign), "/login-failed?lang=en&error=invalid_state");
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
}
