//! Metrics: every counter moves when its event happens (read from `GET /metrics`, the
//! Prometheus text), every EMF line a JSON-logging `bff-local` writes has the structure
//! CloudWatch requires, and no series or dimension carries a user, a token, a session id
//! or a path.

use std::collections::HashMap;
use std::sync::Arc;

use bff_testkit::BffBrowser;
use bff_testkit::provider;
use bff_tests::app::{Options, StoreKind, TEST_TOKEN_KEYS, spawn_app, spawn_app_with};
use bff_tests::capture::{StoreBackend, free_listen_addr, spawn};
use bff_tests::dynamodb::Dedicated;
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every series of `GET /metrics`, by name and labels as written.
async fn counters(base: &str) -> HashMap<String, f64> {
    let response = reqwest::get(format!("{base}/metrics")).await.expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "Prometheus text format"
    );
    let text = response.text().await.expect("text");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            (
                series.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("bad value {line:?}")),
            )
        })
        .collect()
}

/// How much `series` grew between two readings.
fn grew(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// Reads the counters around `event` and returns them before and after.
macro_rules! around {
    ($url:expr, $event:expr) => {{
        let before = counters($url).await;
        $event;
        (before, counters($url).await)
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_counter_moves_when_its_event_happens() {
    let app = spawn_app(StoreKind::Memory).await;
    let url = app.url.as_str();
    let browser = app.browser();

    let (before, after) = around!(url, browser.login("alice", "/").await);
    assert_eq!(grew(&before, &after, "bff_logins_started_total"), 1.0);
    assert_eq!(grew(&before, &after, "bff_logins_completed_total"), 1.0);

    let (before, after) = around!(url, browser.api(Method::GET, "/api/orders/4711").await);
    assert_eq!(
        grew(
            &before,
            &after,
            r#"bff_upstream_answers_total{route="api",class="2xx"}"#
        ),
        1.0
    );
    assert_eq!(
        grew(&before, &after, r#"bff_upstream_latency_seconds_count{route="api"}"#),
        1.0
    );
    assert_eq!(
        grew(&before, &after, r#"bff_requests_total{route="api",class="2xx"}"#),
        1.0
    );

    // A refused token older than the forced-refresh interval: one refresh at the
    // provider, the call retried once.
    app.clock.advance(31);
    app.upstream.reject_all();
    let (before, after) = around!(url, browser.api(Method::GET, "/api/orders").await);
    assert_eq!(
        grew(
            &before,
            &after,
            r#"bff_upstream_answers_total{route="api",class="4xx"}"#
        ),
        2.0
    );
    assert_eq!(grew(&before, &after, r#"bff_refreshes_total{outcome="done"}"#), 1.0);
    // The upstream's 401 passed on is not an error of the BFF.
    assert_eq!(grew(&before, &after, r#"bff_errors_5xx_total{route="api"}"#), 0.0);

    let (before, after) = around!(url, browser.get("/auth/callback?code=c&state=unknown").await);
    assert_eq!(
        grew(&before, &after, r#"bff_logins_failed_total{reason="invalid_state"}"#),
        1.0
    );
    let denied = app.browser();
    let authorize = denied.start_login("/").await;
    let callback = denied.deny(&authorize).await;
    let (before, after) = around!(url, denied.get(&callback).await);
    assert_eq!(
        grew(&before, &after, r#"bff_logins_failed_total{reason="access_denied"}"#),
        1.0
    );

    // A second login in the same browser replaces the first session.
    let (before, after) = around!(url, browser.login("alice", "/").await);
    assert_eq!(
        grew(&before, &after, r#"bff_sessions_ended_total{reason="replaced"}"#),
        1.0
    );
    let (before, after) = around!(url, browser.logout().await);
    assert_eq!(
        grew(&before, &after, r#"bff_sessions_ended_total{reason="logout"}"#),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_and_the_bff_s_own_5xx_answers_are_counted() {
    let mut dynamo = tokio::task::spawn_blocking(Dedicated::start)
        .await
        .expect("dynamodb local");
    let mut options = Options::new(StoreKind::Dynamo);
    options.own_store = Some(Arc::new(dynamo.fresh_store().await));
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let before = counters(&app.url).await;
    assert_eq!(before.get("bff_store_errors_total").copied().unwrap_or(0.0), 0.0);

    let dynamo = tokio::task::spawn_blocking(move || {
        dynamo.stop();
        dynamo
    })
    .await
    .expect("stop");
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let after = counters(&app.url).await;
    assert!(grew(&before, &after, "bff_store_errors_total") >= 1.0, "{after:?}");
    assert_eq!(grew(&before, &after, r#"bff_errors_5xx_total{route="me"}"#), 1.0);
    drop(dynamo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_means_no_endpoint() {
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_METRICS", "off".to_owned()));
    let app = spawn_app_with(options).await;
    let response = reqwest::get(format!("{}/metrics", app.url)).await.expect("metrics");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// The EMF records among `log`'s lines.
fn emf_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect()
}

/// Asserts `line` is a valid CloudWatch Embedded Metric Format record.
fn assert_emf(line: &Value) {
    let aws = &line["_aws"];
    assert!(
        aws["Timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
        "Timestamp in ms: {line}"
    );
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics array");
    assert!(!directives.is_empty());
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace");
        assert!(!namespace.is_empty() && namespace.len() <= 255);
        let sets = directive["Dimensions"].as_array().expect("Dimensions");
        assert!(!sets.is_empty());
        for set in sets {
            let keys = set.as_array().expect("a dimension set is an array");
            assert!(!keys.is_empty() && keys.len() <= 30);
            for key in keys {
                let key = key.as_str().expect("dimension key");
                assert!(
                    line[key].is_string(),
                    "dimension {key} missing at the top level: {line}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            let unit = metric["Unit"].as_str().expect("Unit");
            assert!(["Count", "Milliseconds"].contains(&unit), "{unit}");
            match &line[name] {
                Value::Number(_) => {}
                Value::Array(values) => assert!(!values.is_empty() && values.iter().all(Value::is_number)),
                other => panic!("metric {name} is {other} at the top level: {line}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_emf_line_is_well_formed_and_names_no_user_token_session_or_path() {
    let provider = provider::shared();
    let listen = free_listen_addr();
    let origin = format!("http://{listen}");
    let client = provider.register(&origin, "client_secret_basic").await;
    let upstream = Upstream::start().await;
    let mut env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id.clone()),
        ("BFF_CLIENT_SECRET", client.client_secret.clone()),
        ("BFF_PUBLIC_URL", origin.clone()),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
        ("BFF_LOG_FORMAT", "json".to_owned()),
        ("BFF_METRICS_NAMESPACE", "BFF/test".to_owned()),
    ]);
    let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
    let browser = BffBrowser::new(&bff.url, &provider.issuer);
    browser.login("alice", "/").await;
    let session = browser.cookie("bff-session").expect("session cookie");
    let me: Value = browser.get("/auth/me").await.json().await.expect("me");
    let sub = me["sub"].as_str().expect("sub").to_owned();
    assert_eq!(
        browser
            .api(Method::GET, "/api/users/alice-4711/orders?secret=query-secret-q7")
            .await
            .status(),
        StatusCode::OK
    );
    let refused = reqwest::get(format!("{}/api/orders", bff.url)).await.expect("refused");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    browser.logout().await;
    let token = upstream.requests()[0].bearer().expect("bearer").to_owned();

    let log = bff.stop();
    let lines = emf_lines(&log);
    let access = log.lines().filter(|l| l.contains(r#""target":"access""#)).count();
    assert!(access >= 6, "{log}");
    assert_eq!(lines.len(), access, "one EMF line per request:\n{log}");
    let routes = [
        "login",
        "callback",
        "me",
        "logout",
        "backchannel_logout",
        "api",
        "healthz",
        "readyz",
        "metrics",
        "other",
    ];
    for line in &lines {
        assert_emf(line);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "BFF/test");
        assert_eq!(line["Service"], "bff");
        let route = line["Route"].as_str().expect("Route");
        assert!(routes.contains(&route), "Route {route}");
        let text = line.to_string();
        // Long enough that a random request id cannot contain them by chance.
        for secret in [
            session.as_str(),
            sub.as_str(),
            token.as_str(),
            "alice-4711",
            "alice",
            "query-secret-q7",
        ] {
            assert!(!text.contains(secret), "{secret:?} in an EMF line: {text}");
        }
    }
    let counted = |name: &str| lines.iter().filter_map(|l| l[name].as_f64()).sum::<f64>();
    assert_eq!(counted("LoginsStarted"), 1.0);
    assert_eq!(counted("LoginsCompleted"), 1.0);
    assert_eq!(counted("UpstreamAnswers.2xx"), 1.0);
    assert_eq!(counted("SessionsEnded.logout"), 1.0);
    assert!(lines.iter().any(|l| l["UpstreamLatency"].is_array()));

    // With metrics off, no EMF line at all.
    env.insert("BFF_METRICS", "off".to_owned());
    let listen = free_listen_addr();
    env.insert("BFF_PUBLIC_URL", format!("http://{listen}"));
    let quiet = spawn(&env, StoreBackend::Memory, listen, "info").await;
    reqwest::get(format!("{}/auth/me", quiet.url)).await.expect("me");
    let log = quiet.stop();
    assert!(log.contains(r#""target":"access""#), "{log}");
    assert!(emf_lines(&log).is_empty(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_counts_the_session_it_ends() {
    let mut options = Options::new(StoreKind::Memory);
    options.backchannel = true;
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let series = r#"bff_sessions_ended_total{reason="backchannel"}"#;
    let before = counters(&app.url).await;
    browser.logout_at_provider(&browser.issuer).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while browser.get("/auth/me").await.status() == StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the back-channel logout never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(grew(&before, &counters(&app.url).await, series), 1.0);
}
