//! The BFF under attack from the browser side, by cross-site calls: forged calls to
//! `/api/*` and `POST /auth/logout` (missing or wrong `X-CSRF`, foreign or `null`
//! `Origin`, cross-site fetch metadata, logout by `GET`), and CORS (only the allowed
//! origin gets CORS headers, and the upstream cannot widen them).
//!
//! Every attack is its own test whose name starts with `attack_`; the tables below
//! (one macro each) turn every row into such a test, and every one of them must pass,
//! i.e. the attack must be blocked. The calls are made with a session planted straight
//! into the store (no provider round trip), which must survive them.
//!
//! References: draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend),
//! §6.1.3.2 in particular, the Fetch standard's CORS protocol, the OWASP Cross-Site
//! Request Forgery Prevention Cheat Sheet, RFC 9700 (OAuth 2.0 Security Best Current
//! Practice), RFC 9110/9112 (HTTP).

use bff_tests::app::{StoreKind, spawn_app};
use reqwest::{Method, StatusCode};

use crate::attack_kit::{
    ALLOWED_ORIGIN, app_with_hostile_upstream, assert_harmless, error_code, header, plant_session, set_cookies,
    sets_cookie,
};

// ------------------------------------------------------------------------------------
// Cross-site request forgery on /api/* and POST /auth/logout (BFF draft §6.1.3.2)
// ------------------------------------------------------------------------------------

/// A forged call is refused with 403 and `code`; nothing reaches the upstream, the
/// session survives, and the same browser's genuine call still works afterwards.
/// `{origin}` in a header value stands for the BFF's own origin.
async fn forged_call_is_refused(name: &str, method: Method, path: &str, headers: &[(&str, &str)], code: &str) {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let mut request = planted.browser.http.request(method, format!("{}{path}", app.url));
    for (header, value) in headers {
        request = request.header(*header, value.replace("{origin}", &app.url));
    }
    if path == "/auth/logout" || headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("content-type")) {
        request = request.body("amount=1000&to=mallory");
    }
    let response = request.send().await.expect("call");
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
    assert!(
        !sets_cookie(&set_cookies(&response), "bff-session") && set_cookies(&response).is_empty(),
        "{name}: a refused call changes no cookie"
    );
    assert_eq!(error_code(response).await, code, "{name}");
    assert_harmless(&app, &planted, name).await;
}

/// Declares the forgery table: every row becomes its own `#[tokio::test]`.
macro_rules! forgery_attacks {
    ($($(#[$meta:meta])* $name:ident: $method:ident $path:literal [$(($h:expr, $v:expr)),* $(,)?] => $code:literal;)+) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                forged_call_is_refused(stringify!($name), Method::$method, $path, &[$(($h, $v)),*], $code).await;
            }
        )+
    };
}

forgery_attacks! {
    /// BFF draft §6.1.3.2: a cross-site form post (no custom header possible) to the API.
    attack_csrf_api_form_post_without_x_csrf: POST "/api/transfer"
        [("Content-Type", "application/x-www-form-urlencoded")] => "csrf_header_missing";
    /// A simple cross-site GET (an image or link) to the API.
    attack_csrf_api_get_without_x_csrf: GET "/api/orders" [] => "csrf_header_missing";
    /// A DELETE without the header.
    attack_csrf_api_delete_without_x_csrf: DELETE "/api/orders/1" [] => "csrf_header_missing";
    /// The header with another value.
    attack_csrf_api_wrong_x_csrf_value: POST "/api/transfer" [("X-CSRF", "0")] => "csrf_header_missing";
    /// The header with a truthy-looking value.
    attack_csrf_api_x_csrf_true: POST "/api/transfer" [("X-CSRF", "true")] => "csrf_header_missing";
    /// The header listed twice in one value.
    attack_csrf_api_x_csrf_list_value: POST "/api/transfer" [("X-CSRF", "1, 1")] => "csrf_header_missing";
    /// The header empty.
    attack_csrf_api_x_csrf_empty: POST "/api/transfer" [("X-CSRF", "")] => "csrf_header_missing";
    /// The header given twice: not "exactly once".
    attack_csrf_api_x_csrf_twice: POST "/api/transfer" [("X-CSRF", "1"), ("X-CSRF", "1")] => "csrf_header_missing";
    /// The anti-forgery value in the query instead of a header.
    attack_csrf_api_x_csrf_in_query: POST "/api/transfer?X-CSRF=1&x-csrf=1" [] => "csrf_header_missing";
    /// A foreign `Origin` with the header (a preflight the attacker's page cannot pass,
    /// refused outright as a second layer).
    attack_csrf_api_foreign_origin: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "https://evil.example.com")] => "origin_not_allowed";
    /// `Origin: null` (sandboxed iframes, data: URLs, some redirects).
    attack_csrf_api_null_origin: POST "/api/transfer" [("X-CSRF", "1"), ("Origin", "null")] => "origin_not_allowed";
    /// An origin that merely starts with an allowed one.
    attack_csrf_api_allowed_origin_prefix: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "http://localhost:5173.evil.com")] => "origin_not_allowed";
    /// The BFF's own origin with a trailing slash: not the same string, not an origin.
    attack_csrf_api_own_origin_with_path: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "{origin}/")] => "origin_not_allowed";
    /// The allowed origin on another scheme.
    attack_csrf_api_allowed_origin_other_scheme: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "https://localhost:5173")] => "origin_not_allowed";
    /// No `Origin`, but fetch metadata says cross-site.
    attack_csrf_api_sec_fetch_site_cross_site: POST "/api/transfer"
        [("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site")] => "cross_site_request";
    /// BFF draft §6.1.3.2: a cross-site form post to logout (forced logout).
    attack_csrf_logout_without_x_csrf: POST "/auth/logout"
        [("Content-Type", "application/x-www-form-urlencoded")] => "csrf_header_missing";
    /// Logout with a wrong header value.
    attack_csrf_logout_wrong_x_csrf_value: POST "/auth/logout" [("X-CSRF", "yes")] => "csrf_header_missing";
    /// Logout from a foreign origin.
    attack_csrf_logout_foreign_origin: POST "/auth/logout"
        [("X-CSRF", "1"), ("Origin", "https://evil.example.com")] => "origin_not_allowed";
    /// Logout from `Origin: null`.
    attack_csrf_logout_null_origin: POST "/auth/logout" [("X-CSRF", "1"), ("Origin", "null")] => "origin_not_allowed";
    /// Logout marked cross-site by fetch metadata.
    attack_csrf_logout_sec_fetch_site_cross_site: POST "/auth/logout"
        [("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site")] => "cross_site_request";
}

/// BFF draft §6.1.3.2 and OWASP CSRF: logout is a POST; a cross-site link or image
/// (`GET /auth/logout`) cannot end the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csrf_logout_by_get_navigation_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        let response = planted
            .browser
            .http
            .request(method.clone(), format!("{}/auth/logout", app.url))
            .header("X-CSRF", "1")
            .send()
            .await
            .expect("call");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(set_cookies(&response).is_empty(), "{method}: no cookie change");
    }
    assert_harmless(&app, &planted, "logout by another method").await;
}

// ------------------------------------------------------------------------------------
// CORS (BFF draft §6.1.3.2, Fetch standard CORS protocol)
// ------------------------------------------------------------------------------------

fn vary_has_origin(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"))
}

async fn preflight(http: &reqwest::Client, url: &str, origin: &str) -> reqwest::Response {
    http.request(Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "x-csrf, content-type")
        .send()
        .await
        .expect("preflight")
}

/// The allowed front-end origin gets exactly its own origin back with credentials, on
/// preflights and actual answers of every CORS-enabled endpoint; answers vary on
/// `Origin`; and the preflight never reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_allowed_origin_exactly_with_credentials_and_vary_origin() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let http = &planted.browser.http;
    for path in ["/api/orders/1", "/auth/me", "/auth/logout"] {
        let response = preflight(http, &format!("{}{path}", app.url), ALLOWED_ORIGIN).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            ALLOWED_ORIGIN,
            "{path}"
        );
        assert_eq!(header(&response, "access-control-allow-credentials"), "true", "{path}");
        let allowed_headers = header(&response, "access-control-allow-headers").to_ascii_lowercase();
        assert!(
            allowed_headers.contains("x-csrf") && allowed_headers.contains("content-type"),
            "{path}"
        );
        assert!(!allowed_headers.contains('*'), "{path}: no wildcard");
        assert!(
            header(&response, "access-control-allow-methods").contains("DELETE"),
            "{path}"
        );
    }
    assert!(
        app.upstream.requests().is_empty(),
        "a preflight never reaches the upstream"
    );

    let me = http
        .get(format!("{}/auth/me", app.url))
        .header("Origin", ALLOWED_ORIGIN)
        .send()
        .await
        .expect("me");
    let api = http
        .get(format!("{}/api/orders", app.url))
        .header("Origin", ALLOWED_ORIGIN)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("api");
    for response in [&me, &api] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response, "access-control-allow-origin"), ALLOWED_ORIGIN);
        assert_eq!(header(response, "access-control-allow-credentials"), "true");
        assert!(vary_has_origin(response), "Vary: Origin");
    }
    // A same-origin answer varies on Origin too, so no cache hands it to a CORS caller.
    let same_origin = planted.browser.api(Method::GET, "/api/orders").await;
    assert!(same_origin.headers().get("access-control-allow-origin").is_none());
    assert!(vary_has_origin(&same_origin), "Vary: Origin on same-origin answers");
}

/// A disallowed origin gets no CORS headers anywhere: its preflights fail, its actual
/// calls are refused without `Access-Control-Allow-*`, nothing reaches the upstream.
async fn origin_gets_no_cors(name: &str, origin: &str) {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let http = &planted.browser.http;
    for path in ["/api/orders/1", "/auth/me", "/auth/logout"] {
        let response = preflight(http, &format!("{}{path}", app.url), origin).await;
        assert!(!response.status().is_success(), "{name}: {path} preflight succeeded");
        for cors in ["access-control-allow-origin", "access-control-allow-credentials"] {
            assert!(response.headers().get(cors).is_none(), "{name}: {path} answered {cors}");
        }
    }
    let me = http
        .get(format!("{}/auth/me", app.url))
        .header("Origin", origin)
        .send()
        .await
        .expect("me");
    let api = http
        .get(format!("{}/api/orders", app.url))
        .header("Origin", origin)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("api");
    let logout = http
        .post(format!("{}/auth/logout", app.url))
        .header("Origin", origin)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("logout");
    for response in [&me, &api, &logout] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {}", response.url());
        assert!(
            response.headers().get("access-control-allow-origin").is_none(),
            "{name}"
        );
        assert!(
            response.headers().get("access-control-allow-credentials").is_none(),
            "{name}"
        );
        assert!(vary_has_origin(response), "{name}: Vary: Origin");
    }
    assert_harmless(&app, &planted, name).await;
}

/// Declares the disallowed-origin table: every row becomes its own `#[tokio::test]`.
macro_rules! cors_attacks {
    ($($(#[$meta:meta])* $name:ident: $origin:literal;)+) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                origin_gets_no_cors(stringify!($name), $origin).await;
            }
        )+
    };
}

cors_attacks! {
    /// A plainly foreign origin.
    attack_cors_foreign_origin_gets_no_cors_headers: "https://evil.example.com";
    /// `null` (sandboxed frames, `file:` and `data:` documents).
    attack_cors_null_origin_gets_no_cors_headers: "null";
    /// An origin that starts with the allowed one.
    attack_cors_allowed_origin_as_prefix_gets_no_cors_headers: "http://localhost:5173.evil.com";
    /// The allowed host on another port.
    attack_cors_allowed_host_other_port_gets_no_cors_headers: "http://localhost:5174";
    /// The allowed host on another scheme.
    attack_cors_allowed_host_other_scheme_gets_no_cors_headers: "https://localhost:5173";
    /// A subdomain of the allowed host.
    attack_cors_subdomain_of_allowed_host_gets_no_cors_headers: "http://evil.localhost:5173";
    /// The allowed origin with a trailing slash (not an origin serialisation).
    attack_cors_allowed_origin_with_slash_gets_no_cors_headers: "http://localhost:5173/";
    /// A list smuggling the allowed origin next to a foreign one.
    attack_cors_origin_list_gets_no_cors_headers: "https://evil.example.com, http://localhost:5173";
    /// A wildcard.
    attack_cors_wildcard_origin_gets_no_cors_headers: "*";
}

/// The BFF alone decides CORS: an upstream answering `Access-Control-Allow-Origin: *`
/// (or naming a foreign origin) with credentials cannot open the API to other origins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cors_upstream_cannot_open_the_api_to_foreign_origins() {
    let app = app_with_hostile_upstream(&[
        ("access-control-allow-origin", "https://evil.example.com"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-origin", "*"),
        ("access-control-expose-headers", "*"),
    ])
    .await;
    let planted = plant_session(&app).await;
    let same_origin = planted.browser.api(Method::GET, "/api/x").await;
    assert_eq!(same_origin.status(), StatusCode::OK);
    assert!(same_origin.headers().get("access-control-allow-origin").is_none());
    assert!(same_origin.headers().get("access-control-allow-credentials").is_none());
    assert!(same_origin.headers().get("access-control-expose-headers").is_none());
    let allowed = planted
        .browser
        .http
        .get(format!("{}/api/x", app.url))
        .header("Origin", ALLOWED_ORIGIN)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("call");
    let values: Vec<&str> = allowed
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(values, [ALLOWED_ORIGIN], "exactly the BFF's own answer");
}
