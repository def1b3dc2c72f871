//! Several APIs behind one BFF (`BFF_APIS`): each route's upstream gets the token its
//! route asks for (RFC 8707 resources as JWTs from `oidc-provider`, the login's own
//! token, the BFF's client-credentials token, or none), and no upstream ever sees
//! another route's token.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use bff::App;
use bff::domain::clock::Clock as _;
use bff::domain::routes::TokenTarget;
use bff::domain::secret::SessionId;
use bff::platform::config::Config;
use bff::store::Store;
use bff::store::session_key;
use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, spawn_app_with};
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::on_both_stores;

on_both_stores!(
    each_route_gets_its_own_token_and_no_upstream_sees_another_routes,
    a_route_token_is_refreshed_when_due_while_the_others_stay,
    a_refused_route_token_answers_502_and_leaves_the_session_and_other_routes,
);

/// The claims of a JWT access token (the upstreams here only read them).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Every bearer token `upstream` has received.
fn tokens_seen(upstream: &Upstream) -> HashSet<String> {
    upstream
        .requests()
        .iter()
        .filter_map(|seen| seen.bearer().map(str::to_owned))
        .collect()
}

/// The upstreams of [`routes_json`], one per route.
struct Apis {
    orders: Upstream,
    billing: Upstream,
    catalog: Upstream,
    status: Upstream,
    reports: Upstream,
    refused: Upstream,
    rest: Upstream,
}

impl Apis {
    async fn start() -> Self {
        Self {
            orders: Upstream::start().await,
            billing: Upstream::start().await,
            catalog: Upstream::start().await,
            status: Upstream::start().await,
            reports: Upstream::start().await,
            refused: Upstream::start().await,
            rest: Upstream::start().await,
        }
    }

    /// `BFF_APIS` for these upstreams.
    fn routes_json(&self) -> String {
        serde_json::json!([
            {"path": "/api/orders", "upstream": self.orders.base, "resource": "https://orders.example"},
            {"path": "/api/billing", "upstream": self.billing.base, "token": "user",
             "resource": "https://billing.example", "methods": ["GET"]},
            {"path": "/api/catalog", "upstream": self.catalog.base, "token": "user_or_none"},
            {"path": "/api/status", "upstream": self.status.base, "token": "none"},
            {"path": "/api/reports", "upstream": self.reports.base, "token": "client",
             "resource": "https://reports.example", "scope": "api:read"},
            // A scope the login never asked for: the provider refuses the route's token.
            {"path": "/api/refused", "upstream": self.refused.base, "scope": "openid admin:all"},
            // A resource the provider does not know: it refuses the client token.
            {"path": "/api/unknown", "upstream": self.refused.base, "token": "client",
             "resource": "https://unknown.test"},
            {"path": "/api", "upstream": self.rest.base},
        ])
        .to_string()
    }
}

async fn spawn(store: StoreKind, apis: &Apis) -> bff_tests::app::TestApp {
    let mut options = Options::new(store);
    options.env.push(("BFF_APIS", apis.routes_json()));
    spawn_app_with(options).await
}

async fn each_route_gets_its_own_token_and_no_upstream_sees_another_routes(store: StoreKind) {
    let apis = Apis::start().await;
    let app = spawn(store, &apis).await;

    // Without a session: `none` and `user_or_none` are forwarded with no token at all;
    // `user` and `client` routes answer 401 and forward nothing.
    let anonymous = app.browser();
    assert_eq!(
        anonymous.api(Method::GET, "/api/status/up").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        anonymous.api(Method::GET, "/api/catalog/items").await.status(),
        StatusCode::OK
    );
    for path in ["/api/orders/1", "/api/reports/daily", "/api/other"] {
        assert_eq!(
            anonymous.api(Method::GET, path).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert!(apis.orders.requests().is_empty() && apis.reports.requests().is_empty());
    for upstream in [&apis.status, &apis.catalog] {
        let seen = upstream.requests();
        assert!(
            seen.iter().all(|s| s.header("authorization").is_empty()),
            "no token without a session"
        );
    }

    let browser = app.browser();
    browser.login("alice", "/").await;
    for path in [
        "/api/orders/7",
        "/api/billing/invoices",
        "/api/catalog/items",
        "/api/status/up",
        "/api/reports/daily",
        "/api/other/thing",
    ] {
        let answer = browser.api(Method::GET, path).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
    }

    // Each route's upstream got a token for its own resource, and its path below its base.
    let orders = apis.orders.requests();
    assert!(orders.last().expect("orders called").uri.ends_with("/v1/7"));
    let orders_token = orders.last().and_then(|s| s.bearer()).expect("orders token").to_owned();
    assert_eq!(claims(&orders_token)["aud"], "https://orders.example");
    assert_eq!(claims(&orders_token)["sub"], "alice");
    let billing_token = apis.billing.requests()[0].bearer().expect("billing token").to_owned();
    assert_eq!(claims(&billing_token)["aud"], "https://billing.example");
    let reports_token = apis.reports.requests()[0].bearer().expect("reports token").to_owned();
    assert_eq!(claims(&reports_token)["aud"], "https://reports.example");
    assert_eq!(claims(&reports_token)["client_id"], app.client.client_id.as_str());
    assert!(
        claims(&reports_token).get("sub").is_none_or(|sub| sub != "alice"),
        "never the user's"
    );
    // The login's own token serves routes without a target.
    let login_token = apis.rest.requests()[0].bearer().expect("login token").to_owned();
    let catalog_tokens = tokens_seen(&apis.catalog);
    assert_eq!(catalog_tokens, HashSet::from([login_token.clone()]));
    assert!(
        apis.status
            .requests()
            .iter()
            .all(|s| s.header("authorization").is_empty()),
        "a `none` route never gets a token"
    );

    // No upstream ever saw another route's token.
    let seen = [
        tokens_seen(&apis.orders),
        tokens_seen(&apis.billing),
        tokens_seen(&apis.reports),
        tokens_seen(&apis.rest),
    ];
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            assert!(a.is_disjoint(b), "a token reached two routes' upstreams");
        }
    }

    // A method the route does not allow: 405 with `Allow`, nothing forwarded.
    let before = apis.billing.requests().len();
    let refused = browser.api(Method::POST, "/api/billing/invoices").await;
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "GET");
    assert_eq!(
        refused.json::<Value>().await.expect("json")["error"],
        "method_not_allowed"
    );
    assert_eq!(apis.billing.requests().len(), before, "nothing forwarded");

    // A route's prefix is whole segments: `/api/ordersX` is the catch-all's.
    let orders_before = apis.orders.requests().len();
    assert_eq!(browser.api(Method::GET, "/api/ordersX").await.status(), StatusCode::OK);
    assert_eq!(apis.orders.requests().len(), orders_before);

    // The route tokens live in the session (sealed at rest) and go with it at logout.
    let cookie = browser.cookie("bff-session").expect("session");
    let key = session_key(&SessionId::new(&cookie));
    let session = app
        .store
        .get_session(&key, app.clock.now())
        .await
        .expect("read")
        .expect("live");
    assert_eq!(session.api_tokens.len(), 2, "orders and billing tokens kept");
    assert_eq!(browser.logout().await.status(), StatusCode::OK);
    assert!(
        app.store
            .get_session(&key, app.clock.now())
            .await
            .expect("read")
            .is_none()
    );
}

async fn a_route_token_is_refreshed_when_due_while_the_others_stay(store: StoreKind) {
    let apis = Apis::start().await;
    let app = spawn(store, &apis).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    for path in ["/api/orders/1", "/api/billing/1"] {
        assert_eq!(browser.api(Method::GET, path).await.status(), StatusCode::OK);
    }
    let cookie = browser.cookie("bff-session").expect("session");
    let key = session_key(&SessionId::new(&cookie));
    let before = app
        .store
        .get_session(&key, app.clock.now())
        .await
        .expect("read")
        .expect("live");
    let billing = TokenTarget {
        resource: Some("https://billing.example".into()),
        ..TokenTarget::default()
    };
    let orders = TokenTarget {
        resource: Some("https://orders.example".into()),
        ..TokenTarget::default()
    };

    // The orders token is due (close to its expiry); billing is not asked for.
    app.clock.advance(290);
    assert_eq!(browser.api(Method::GET, "/api/orders/2").await.status(), StatusCode::OK);
    let after = app
        .store
        .get_session(&key, app.clock.now())
        .await
        .expect("read")
        .expect("live");
    let old_orders = before.token_for(&orders).expect("orders").access_token;
    let new_orders = after.token_for(&orders).expect("orders").access_token;
    assert_ne!(old_orders, new_orders, "the orders token was refreshed");
    assert_eq!(
        apis.orders.requests().last().and_then(|s| s.bearer()),
        Some(new_orders.secret()),
        "and the new one was sent"
    );
    assert_eq!(
        before.token_for(&billing).expect("billing").access_token,
        after.token_for(&billing).expect("billing").access_token,
        "the billing token stays until it is used and due"
    );
    assert_eq!(before.access_token, after.access_token, "the login's token stays");
    assert_ne!(
        before.refresh_token, after.refresh_token,
        "the provider rotated the refresh token"
    );
}

async fn a_refused_route_token_answers_502_and_leaves_the_session_and_other_routes(store: StoreKind) {
    let apis = Apis::start().await;
    let app = spawn(store, &apis).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    assert_eq!(browser.api(Method::GET, "/api/orders/1").await.status(), StatusCode::OK);

    let refused = browser.api(Method::GET, "/api/refused/x").await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "api_token_refused");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("invalid_scope")),
        "{body}"
    );
    let unknown = browser.api(Method::GET, "/api/unknown/x").await;
    assert_eq!(unknown.status(), StatusCode::BAD_GATEWAY);
    let body: Value = unknown.json().await.expect("json");
    assert_eq!(body["error"], "api_token_refused");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("invalid_target")),
        "{body}"
    );
    assert!(
        apis.refused.requests().is_empty(),
        "nothing forwarded without its token"
    );

    // The session and the other routes carry on.
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::OK);
    assert_eq!(browser.api(Method::GET, "/api/orders/2").await.status(), StatusCode::OK);
    assert_eq!(browser.api(Method::GET, "/api/other").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_no_route_serves_is_404_no_route_and_nothing_is_forwarded() {
    let orders = Upstream::start().await;
    let mut options = Options::new(StoreKind::Memory);
    options.env.push((
        "BFF_APIS",
        serde_json::json!([{"path": "/api/orders", "upstream": orders.base, "token": "none"}]).to_string(),
    ));
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    for path in ["/api", "/api/billing/1", "/api/ordersX"] {
        let answer = browser.api(Method::GET, path).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.json::<Value>().await.expect("json")["error"], "no_route");
    }
    // CSRF holds on every route, whatever its token kind.
    let no_csrf = reqwest::Client::new()
        .get(format!("{}/api/orders/1", app.url))
        .send()
        .await
        .expect("call");
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    assert!(orders.requests().is_empty());
    assert_eq!(browser.api(Method::GET, "/api/orders/1").await.status(), StatusCode::OK);
}

/// Two instances on one table, twenty calls at once on a `client` route: one
/// client-credentials grant serves them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_token_is_fetched_once_for_twenty_concurrent_calls_across_two_instances() {
    let provider: &'static Provider = Box::leak(Box::new(Provider::start(&[])));
    let reports = Upstream::start().await;
    let routes = serde_json::json!([
        {"path": "/api/reports", "upstream": reports.base, "token": "client", "resource": "https://reports.example"},
    ])
    .to_string();
    let mut options = Options::new(StoreKind::Dynamo);
    options.provider = Some(provider);
    options.env.push(("BFF_APIS", routes));
    let first = spawn_app_with(options).await;
    let browser = first.browser();
    browser.login("alice", "/").await;
    let cookie = format!("bff-session={}", browser.cookie("bff-session").expect("session"));

    // The second instance: its own process memory, the same table and keys.
    let table = first.table.clone().expect("table");
    let (_, client, _) = bff_tests::dynamodb::fresh_store().await;
    let shared: Arc<dyn Store> = Arc::new(bff::store::dynamodb::DynamoStore::new(client, table));
    let env = first.env.clone();
    let config = Config::from_lookup(|name| env.get(name).cloned()).expect("config");
    let second = Arc::new(App::new(config, shared).expect("second app"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(bff_local::serve(listener, second, None, std::future::pending()));

    let http = reqwest::Client::new();
    let calls = (0..20).map(|i| {
        let base = if i % 2 == 0 { &first.url } else { &second_url };
        http.get(format!("{base}/api/reports/{i}"))
            .header("cookie", &cookie)
            .header("x-csrf", "1")
            .send()
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.expect("call").status(), StatusCode::OK);
    }
    assert_eq!(
        provider.grants("client_credentials").await,
        1,
        "one grant for both instances"
    );
    assert_eq!(tokens_seen(&reports).len(), 1, "every call carried the one token");
}
