//! The core grant end to end: login → provider login and consent → callback → session →
//! API proxy → logout, and the ways each step must refuse.

use crate::attack_kit::{header, set_cookies};
use bff::domain::secret::{SessionId, hash, random_token};
use bff::store::StoreKey;
use bff::store::session_key;
use bff_testkit::browser::{location, raw_get};
use bff_tests::app::{Options, StoreKind, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::on_both_stores;

on_both_stores!(
    full_flow_login_me_api_logout,
    replayed_callback_is_rejected,
    callback_without_the_transaction_cookie_is_rejected,
    callback_with_a_foreign_state_is_rejected,
    provider_access_denied_is_shown_as_such,
    two_interleaved_logins_both_succeed,
    api_without_x_csrf_is_refused_and_nothing_is_forwarded,
    open_redirect_return_to_values_are_refused,
    preset_session_cookie_is_never_adopted,
    new_login_ends_the_previous_session_in_the_store,
    new_login_ends_the_previous_session_though_the_cross_site_callback_carries_no_session_cookie,
    access_token_is_refreshed_when_due,
    proxy_path_cannot_climb_out_of_the_upstream_base,
    upstream_failures_answer_502_and_504,
    request_and_response_bodies_are_binary_safe,
    cors_preflight_answers_only_allowed_origins,
);

async fn full_flow_login_me_api_logout(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();

    // Login through the provider's real login and consent pages.
    let callback = browser.login("alice", "/orders?x=1").await;
    assert_eq!(callback.status(), StatusCode::FOUND);
    assert_eq!(location(&callback), "/orders?x=1");
    assert_eq!(header(&callback, "referrer-policy"), "no-referrer");
    assert_eq!(header(&callback, "cache-control"), "no-store");
    let cookies = set_cookies(&callback);
    let session_set = cookies
        .iter()
        .find(|c| c.starts_with("bff-session="))
        .expect("session cookie set");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session_set.contains(attribute), "{attribute} missing: {session_set}");
    }
    for absent in ["Max-Age", "Expires", "Domain"] {
        assert!(!session_set.contains(absent), "{absent} present: {session_set}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("bff-tx=;") && c.contains("Max-Age=0")),
        "tx cookie cleared"
    );

    // The store keys the session by the hash of the cookie value, never the value.
    let session_cookie = browser.cookie("bff-session").expect("session cookie in jar");
    assert_eq!(session_cookie.len(), 43, "256-bit id");
    let now = app.app.clock.now();
    let by_hash = app
        .store
        .get_session(&session_key(&SessionId::new(&session_cookie)), now)
        .await
        .expect("store");
    let session = by_hash.expect("session stored under the hash");
    assert!(
        app.store
            .get_session(&StoreKey::session(&session_cookie), now)
            .await
            .expect("store")
            .is_none()
    );
    assert!(session.refresh_token.is_some(), "provider issued a refresh token");

    // /auth/me: claims and expiries, never a token.
    let me = browser.get("/auth/me").await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(header(&me, "cache-control"), "no-store");
    let me_text = me.text().await.expect("body");
    let me: Value = serde_json::from_str(&me_text).expect("json");
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice Example");
    assert!(me["session"]["expires_at"].as_i64().expect("expires_at") > now);
    assert!(me["session"]["idle_expires_at"].as_i64().expect("idle_expires_at") > now);
    assert!(me.get("nonce").is_none());

    // The API call reaches the upstream with the user's bearer token and no cookie.
    let api = browser.api(Method::GET, "/api/orders/42?x=1").await;
    assert_eq!(api.status(), StatusCode::OK);
    assert!(
        set_cookies(&api).is_empty(),
        "upstream Set-Cookie never reaches the browser"
    );
    assert_eq!(header(&api, "x-upstream"), "yes");
    let echo: Value = api.json().await.expect("json");
    assert_eq!(echo["uri"], "/v1/orders/42?x=1");
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 1);
    let token = seen[0].bearer().expect("one bearer token").to_owned();
    assert_eq!(
        app.provider.userinfo_sub(&token).await.as_deref(),
        Some("alice"),
        "a live token of alice"
    );
    assert!(seen[0].header("cookie").is_empty(), "no cookie upstream");
    assert!(seen[0].header("x-csrf").is_empty(), "no anti-forgery header upstream");
    for body in [&me_text, &echo.to_string()] {
        assert!(!body.contains(&token), "the access token reached the browser");
        assert!(
            !body.contains(session.id_token.secret()),
            "the ID token reached the browser"
        );
    }

    // Logout: store and cookie cleared, provider end-session URL with id_token_hint.
    let logout = browser.logout().await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert!(
        set_cookies(&logout)
            .iter()
            .any(|c| c.starts_with("bff-session=;") && c.contains("Max-Age=0"))
    );
    let body: Value = logout.json().await.expect("json");
    let logout_url = url::Url::parse(body["logout_url"].as_str().expect("logout_url")).expect("url");
    assert!(
        logout_url
            .as_str()
            .starts_with(&format!("{}/session/end", app.provider.issuer))
    );
    let params: std::collections::HashMap<_, _> = logout_url.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], app.client.client_id);
    assert_eq!(params["post_logout_redirect_uri"], format!("{}/", app.url));
    assert_eq!(params["id_token_hint"], session.id_token.secret());
    assert!(params["state"].len() >= 22, "a random state of 128 bits at least");

    // The old cookie is worth nothing now.
    let replay = app.browser();
    replay.set_cookie("bff-session", &session_cookie);
    let me_again = replay.get("/auth/me").await;
    assert_eq!(me_again.status(), StatusCode::UNAUTHORIZED);
    let error: Value = me_again.json().await.expect("json");
    assert_eq!(error["error"], "login_required");
    assert_eq!(
        replay.api(Method::GET, "/api/orders").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.upstream.requests().len(), 1, "nothing forwarded without a session");
}

async fn replayed_callback_is_rejected(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    let authorize = browser.start_login("/").await;
    let callback = browser.authenticate(&authorize, "alice").await;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::FOUND);

    // Same browser, same URL again (the tx cookie was cleared, so put the state back).
    let state = url::Url::parse(&callback)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("state")
        .1
        .to_string();
    browser.set_cookie("bff-tx", &state);
    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert!(header(&replayed, "content-type").starts_with("text/html"));
    assert!(
        !set_cookies(&replayed)
            .iter()
            .any(|c| c.starts_with("bff-session=") && !c.starts_with("bff-session=;"))
    );
}

async fn callback_without_the_transaction_cookie_is_rejected(store: StoreKind) {
    let app = spawn_app(store).await;
    let victim = app.browser();
    let authorize = victim.start_login("/").await;
    let callback = victim.authenticate(&authorize, "alice").await;

    // Login CSRF: another browser presents the callback.
    let attacker = app.browser();
    let forged = attacker.get(&callback).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(
        set_cookies(&forged).iter().all(|c| !c.starts_with("bff-session=")),
        "no session cookie"
    );
    assert!(attacker.cookie("bff-session").is_none());
    assert_eq!(attacker.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);

    // The attempt did not burn the real browser's login.
    assert_eq!(victim.get(&callback).await.status(), StatusCode::FOUND);
    assert_eq!(victim.get("/auth/me").await.status(), StatusCode::OK);
}

async fn callback_with_a_foreign_state_is_rejected(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    let authorize = browser.start_login("/").await;
    let callback = browser.authenticate(&authorize, "alice").await;
    let mut url = url::Url::parse(&callback).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            (
                k.to_string(),
                if k == "state" { random_token(32) } else { v.to_string() },
            )
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let response = browser.get(url.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(browser.cookie("bff-session").is_none());
}

async fn provider_access_denied_is_shown_as_such(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    let authorize = browser.start_login("/").await;
    let callback = browser.deny(&authorize).await;
    assert!(callback.contains("error=access_denied"));
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert!(set_cookies(&response).iter().all(|c| !c.starts_with("bff-session=")));
    assert!(response.text().await.expect("page").contains("access_denied"));

    // Text from the query is shown escaped, never as markup.
    let hostile = format!(
        "/auth/callback?error=access_denied&error_description={}",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    );
    let page = browser.get(&hostile).await.text().await.expect("page");
    assert!(!page.contains("<script>alert(1)</script>"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

async fn two_interleaved_logins_both_succeed(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    let first = browser.start_login("/first").await;
    let second = browser.start_login("/second").await;
    let second_callback = browser.authenticate(&second, "alice").await;
    let first_callback = browser.authenticate(&first, "alice").await;

    let done_second = browser.get(&second_callback).await;
    assert_eq!(done_second.status(), StatusCode::FOUND);
    assert_eq!(location(&done_second), "/second");
    let done_first = browser.get(&first_callback).await;
    assert_eq!(
        done_first.status(),
        StatusCode::FOUND,
        "the other tab's login still succeeds"
    );
    assert_eq!(location(&done_first), "/first");
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::OK);

    // Cookies never pile up: twenty logins started still leave one bounded tx cookie.
    for _ in 0..20 {
        browser.start_login("/").await;
    }
    let tx = browser.cookie("bff-tx").expect("tx cookie");
    assert!(tx.split('.').count() <= bff::http::cookies::MAX_PENDING_LOGINS);
    assert_eq!(browser.cookies().matches("bff-tx=").count(), 1);
}

async fn api_without_x_csrf_is_refused_and_nothing_is_forwarded(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let url = format!("{}/api/orders", app.url);

    let missing = browser.http.get(&url).send().await.expect("call");
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"], "csrf_header_missing");
    let wrong = browser
        .http
        .post(&url)
        .header("X-CSRF", "0")
        .send()
        .await
        .expect("call");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    for origin in ["https://evil.example.com", "null"] {
        let foreign = browser
            .http
            .get(&url)
            .header("X-CSRF", "1")
            .header("Origin", origin)
            .send()
            .await
            .expect("call");
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    let cross_site = browser
        .http
        .get(&url)
        .header("X-CSRF", "1")
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("call");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let logout = browser
        .http
        .post(format!("{}/auth/logout", app.url))
        .send()
        .await
        .expect("call");
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    assert!(app.upstream.requests().is_empty(), "nothing was forwarded");
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::OK,
        "the refused logout ended nothing"
    );

    // The same call with the header goes through.
    assert_eq!(browser.api(Method::GET, "/api/orders").await.status(), StatusCode::OK);
    assert_eq!(app.upstream.requests().len(), 1);
}

async fn open_redirect_return_to_values_are_refused(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    for bad in [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "evil.com",
        "javascript:alert(1)",
        "%2F%2Fevil.com",
        "/%2F%2Fevil.com",
        "/ x",
        "https://localhost:5173.evil.com/",
    ] {
        let url = url::Url::parse_with_params(&format!("{}/auth/login", app.url), [("returnTo", bad)]).expect("url");
        let response = browser.get(url.as_str()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(response.headers().get("location").is_none(), "{bad} was followed");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_return_to");
    }
    // An allowed front-end origin is accepted and honoured after login.
    let callback = browser.login("alice", "http://localhost:5173/app").await;
    assert_eq!(location(&callback), "http://localhost:5173/app");
}

async fn preset_session_cookie_is_never_adopted(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    let planted = random_token(32);
    browser.set_cookie("bff-session", &planted);
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
    browser.login("alice", "/").await;
    let issued = browser.cookie("bff-session").expect("session");
    assert_ne!(issued, planted, "login issues a brand-new id");
    let now = app.app.clock.now();
    assert!(
        app.store
            .get_session(&StoreKey::session(&hash(&planted)), now)
            .await
            .expect("store")
            .is_none()
    );
}

/// The callback is a cross-site navigation from the provider: a browser withholds its
/// `SameSite=Strict` session cookie there. The session it held at `/auth/login` (a
/// same-site request) still ends.
async fn new_login_ends_the_previous_session_though_the_cross_site_callback_carries_no_session_cookie(
    store: StoreKind,
) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let first = browser.cookie("bff-session").expect("first session");
    let authorize = browser.start_login("/").await;
    let callback = browser.authenticate(&authorize, "alice").await;
    let tx = browser.cookie("bff-tx").expect("transaction cookie");
    // Only what a browser sends on a cross-site navigation: the Lax transaction cookie.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&callback)
        .header("cookie", format!("bff-tx={tx}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), StatusCode::FOUND);
    let old = app
        .store
        .get_session(&session_key(&SessionId::new(&first)), app.app.clock.now())
        .await
        .expect("store");
    assert!(old.is_none(), "the session held at login is gone from the store");
}

async fn new_login_ends_the_previous_session_in_the_store(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let first = browser.cookie("bff-session").expect("first");
    browser.login("alice", "/").await;
    let second = browser.cookie("bff-session").expect("second");
    assert_ne!(first, second);
    let now = app.app.clock.now();
    let old = app
        .store
        .get_session(&session_key(&SessionId::new(&first)), now)
        .await
        .expect("store");
    assert!(old.is_none(), "the old session is gone from the store");
    let other = app.browser();
    other.set_cookie("bff-session", &first);
    assert_eq!(other.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
}

async fn access_token_is_refreshed_when_due(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    assert_eq!(browser.api(Method::GET, "/api/a").await.status(), StatusCode::OK);
    let cookie = browser.cookie("bff-session").expect("session");
    let key = session_key(&SessionId::new(&cookie));
    let before = app
        .store
        .get_session(&key, app.app.clock.now())
        .await
        .expect("store")
        .expect("session");

    // The provider issues 300 s access tokens; move the BFF's clock past the lead time.
    app.clock.advance(300);
    assert_eq!(browser.api(Method::GET, "/api/b").await.status(), StatusCode::OK);
    assert_eq!(browser.api(Method::GET, "/api/c").await.status(), StatusCode::OK);
    let seen = app.upstream.requests();
    let tokens: Vec<&str> = seen.iter().map(|s| s.bearer().expect("bearer")).collect();
    assert_ne!(tokens[0], tokens[1], "a new access token after the refresh");
    assert_eq!(tokens[1], tokens[2], "a just-refreshed token is not refreshed again");
    assert_eq!(app.provider.userinfo_sub(tokens[1]).await.as_deref(), Some("alice"));

    let after = app
        .store
        .get_session(&key, app.app.clock.now())
        .await
        .expect("store")
        .expect("session");
    assert!(after.version > before.version);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotated refresh token replaced the old one"
    );
}

async fn proxy_path_cannot_climb_out_of_the_upstream_base(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let cookie = browser.cookies();
    let headers = [("Cookie", cookie.as_str()), ("X-CSRF", "1")];
    for target in [
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/api/%2E%2E/admin",
        "/api/a/..%2F..%2Fadmin",
        "/api/a%2F..%2F..%2Fadmin",
        "/api/..%5Cadmin",
        "/api//admin",
        "/api/a/./b",
    ] {
        let (status, _) = raw_get(&app.url, target, &headers).await;
        assert_eq!(status, 400, "{target}");
    }
    assert!(app.upstream.requests().is_empty(), "nothing was forwarded");
    let (status, _) = raw_get(&app.url, "/api/a/b?c=d", &headers).await;
    assert_eq!(status, 200);
    assert_eq!(app.upstream.requests()[0].uri, "/v1/a/b?c=d");
}

async fn upstream_failures_answer_502_and_504(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let slow = browser.api(Method::GET, "/api/slow").await;
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = slow.json().await.expect("json");
    assert_eq!(body["error"], "upstream_timeout");

    // An upstream nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let mut options = Options::new(store);
    options.env.push(("BFF_UPSTREAM_URL", dead));
    let down = spawn_app_with(options).await;
    let browser = down.browser();
    browser.login("alice", "/").await;
    let response = browser.api(Method::GET, "/api/x").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "upstream_unavailable");
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::OK,
        "the session survives"
    );
}

async fn request_and_response_bodies_are_binary_safe(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let response = browser
        .http
        .put(format!("{}/api/bytes", app.url))
        .header("X-CSRF", "1")
        .header("content-type", "application/octet-stream")
        .body(payload.clone())
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.expect("bytes").to_vec(), payload);
    let seen = app.upstream.requests();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].body, payload);
}

async fn cors_preflight_answers_only_allowed_origins(store: StoreKind) {
    let app = spawn_app(store).await;
    let browser = app.browser();
    let preflight = |origin: &'static str| {
        browser
            .http
            .request(Method::OPTIONS, format!("{}/api/orders", app.url))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-csrf, content-type")
            .send()
    };
    let allowed = preflight("http://localhost:5173").await.expect("preflight");
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&allowed, "access-control-allow-origin"), "http://localhost:5173");
    assert_eq!(header(&allowed, "access-control-allow-credentials"), "true");
    assert!(header(&allowed, "access-control-allow-headers").contains("x-csrf"));
    let refused = preflight("https://evil.example.com").await.expect("preflight");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    assert!(
        app.upstream.requests().is_empty(),
        "a preflight never reaches the upstream"
    );

    // The actual call from the allowed origin carries the same CORS headers.
    browser.login("alice", "/").await;
    let call = browser
        .http
        .get(format!("{}/api/orders", app.url))
        .header("X-CSRF", "1")
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .expect("call");
    assert_eq!(call.status(), StatusCode::OK);
    assert_eq!(header(&call, "access-control-allow-origin"), "http://localhost:5173");
    assert_eq!(header(&call, "access-control-allow-credentials"), "true");
}

/// RP-Initiated Logout 1.0 §2: the end-session URL carries a fresh random `state`, and
/// the provider hands it back on the redirect to `post_logout_redirect_uri` (some
/// providers return the browser there only when `state` was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_urls_carry_a_fresh_random_state() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut states = Vec::new();
    for _ in 0..2 {
        let browser = app.browser();
        assert_eq!(browser.login("alice", "/").await.status(), StatusCode::FOUND);
        let body: Value = browser.logout().await.json().await.expect("json");
        let logout_url = url::Url::parse(body["logout_url"].as_str().expect("logout_url")).expect("url");
        let state = logout_url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("the end-session URL carries a state");
        assert!(state.len() >= 22, "128 random bits at least: {state}");

        // The provider's confirmation page, confirmed: back to the BFF with that state.
        let page = browser.get(logout_url.as_str()).await.text().await.expect("page");
        let xsrf = page
            .split(r#"name="xsrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("xsrf field on the provider's logout page")
            .to_owned();
        let confirmed = browser
            .http
            .post(format!("{}/session/end/confirm", app.provider.issuer))
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .expect("confirm");
        let back = url::Url::parse(&location(&confirmed)).expect("redirect back");
        assert_eq!(back.origin().ascii_serialization(), app.url);
        let returned = back
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        assert_eq!(returned.as_deref(), Some(state.as_str()), "the state comes back");
        states.push(state);
    }
    assert_ne!(states[0], states[1], "a fresh state per logout");
}
