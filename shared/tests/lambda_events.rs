//! The handlers fed real Lambda function-URL events (the JSON AWS sends), without the
//! runtime: query strings and the `cookies` array must reach them as they do locally.

use std::sync::Arc;

use bff::App;
use bff::domain::secret::{AccessToken, IdToken, SessionId};
use bff::http::body::ResponseBody;
use bff::http::router::unit;
use bff::platform::config::Config;
use bff::store::SessionRecord;
use bff::store::memory::MemoryStore;
use bff::store::session_key;
use lambda_http::Body;

const EVENT: &str = include_str!("data/function_url_event.json");

fn event(method: &str, path: &str, query: &str, cookie: &str) -> lambda_http::Request {
    let json = EVENT
        .replace("{{METHOD}}", method)
        .replace("{{PATH}}", path)
        .replace("{{QUERY}}", query)
        .replace("{{COOKIE}}", cookie);
    lambda_http::request::from_str(&json).expect("a valid function URL event")
}

fn app() -> (App, Arc<MemoryStore>) {
    let config = Config::from_lookup(|name| {
        Some(
            match name {
                // Nothing listens there: discovery fails at once.
                "BFF_ISSUER" => "https://127.0.0.1:1",
                "BFF_CLIENT_ID" => "client",
                "BFF_CLIENT_SECRET" => "secret",
                "BFF_PUBLIC_URL" => "https://app.example.com",
                _ => return None,
            }
            .to_owned(),
        )
    })
    .expect("config");
    let store = Arc::new(MemoryStore::new());
    (App::new(config, store.clone()).expect("app"), store)
}

fn body_json(response: &lambda_http::Response<ResponseBody>) -> serde_json::Value {
    match response.body().full() {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("json"),
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn session_cookie_from_the_events_cookie_array_reaches_auth_me() {
    let (app, store) = app();
    let id = SessionId::generate();
    let now = app.clock.now();
    let record = SessionRecord {
        access_token_type: Default::default(),
        dpop_key: None,
        sub: "alice".into(),
        sid: None,
        claims: serde_json::json!({"sub": "alice", "name": "Alice"})
            .as_object()
            .expect("object")
            .clone(),
        id_token: IdToken::new("header.payload.signature"),
        access_token: AccessToken::new("access"),
        access_expires_at: Some(now + 300),
        access_issued_at: now,
        refresh_token: None,
        created_at: now,
        expires_at: now + 3600,
        idle_expires_at: now + 600,
        version: 1,
        refresh_lease: None,
        refresh_started_at: None,
        user_agent: None,
        api_tokens: Vec::new(),
        userinfo: None,
    };
    // Through the app's store, which seals the tokens as the handlers expect.
    app.store.put_session(&session_key(&id), &record).await.expect("put");
    assert_eq!(store.session_count(), 1);

    let cookie = format!("__Host-Http-bff-session={}", id.secret());
    let response = bff::http::router::handle(&app, unit::Session, event("GET", "/auth/me", "", &cookie)).await;
    assert_eq!(response.status(), 200);
    let me = body_json(&response);
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["session"]["expires_at"], now + 3600);

    let without = bff::http::router::handle(&app, unit::Session, event("GET", "/auth/me", "", "other=1")).await;
    assert_eq!(without.status(), 401);
}

#[tokio::test]
async fn return_to_from_the_events_raw_query_is_validated() {
    let (app, _) = app();
    let response = bff::http::router::handle(
        &app,
        unit::Login,
        event("GET", "/auth/login", "returnTo=%2F%2Fevil.com", "a=b"),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(body_json(&response)["error"], "invalid_return_to");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn api_call_without_anti_forgery_header_is_refused_before_any_lookup() {
    let (app, _) = app();
    let response = bff::http::router::handle(&app, unit::Proxy, event("POST", "/api/orders", "", "a=b")).await;
    assert_eq!(response.status(), 403);
    assert_eq!(body_json(&response)["error"], "csrf_header_missing");
}

#[tokio::test]
async fn logout_falls_back_to_the_bffs_own_page_when_the_provider_is_down() {
    let (app, _) = app();
    let refused = bff::http::router::handle(&app, unit::Session, event("POST", "/auth/logout", "", "a=b")).await;
    assert_eq!(refused.status(), 403, "no X-CSRF header");
    let mut request = event("POST", "/auth/logout", "", "a=b");
    request.headers_mut().insert("x-csrf", "1".parse().expect("value"));
    let response = bff::http::router::handle(&app, unit::Session, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response)["logout_url"], "https://app.example.com/");
    let cleared = response.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().expect("ascii");
        c.starts_with("__Host-Http-bff-session=;") && c.contains("Max-Age=0")
    });
    assert!(cleared, "the session cookie is cleared");
}
