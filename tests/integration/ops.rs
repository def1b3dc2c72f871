//! The operator's side of `bff-local`: liveness and readiness probes against the real
//! store (DynamoDB Local) and the real provider, each dependency broken in turn.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, spawn_app, spawn_app_with};
use bff_tests::dynamodb::Dedicated;
use reqwest::StatusCode;
use serde_json::Value;

/// Readiness answers within its own bound (2 s a check) plus slack for a loaded machine.
const READY_BOUND: Duration = Duration::from_secs(5);

/// `GET path` on `base`: status, JSON body and the time it took.
async fn probe(base: &str, path: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = reqwest::get(format!("{base}{path}")).await.expect(path);
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

/// Sends `signal` to `pid` through the shell's `kill`.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{signal} {pid} 2>/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

/// A process frozen with `SIGSTOP`, resumed when dropped.
struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_200_on_dynamodb_with_the_provider_up() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let (status, body, _) = probe(&app.url, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body, _) = probe(&app.url, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"], serde_json::json!({ "store": true, "provider": true }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_in_bounded_time_once_the_store_is_stopped() {
    let mut dynamo = tokio::task::spawn_blocking(Dedicated::start)
        .await
        .expect("dynamodb local");
    let mut options = Options::new(StoreKind::Dynamo);
    options.own_store = Some(Arc::new(dynamo.fresh_store().await));
    let app = spawn_app_with(options).await;
    let (status, body, _) = probe(&app.url, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let dynamo = tokio::task::spawn_blocking(move || {
        dynamo.stop();
        dynamo
    })
    .await
    .expect("stop");
    let (status, body, took) = probe(&app.url, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "not_ready");
    assert_eq!(body["checks"], serde_json::json!({ "store": false, "provider": true }));
    assert!(took < READY_BOUND, "readyz took {took:?}");
    // Liveness does not depend on the store.
    assert_eq!(probe(&app.url, "/healthz").await.0, StatusCode::OK);
    drop(dynamo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_in_bounded_time_while_the_provider_is_unreachable() {
    let provider: &'static Provider = Box::leak(Box::new(
        tokio::task::spawn_blocking(|| Provider::start(&[]))
            .await
            .expect("provider"),
    ));
    let mut options = Options::new(StoreKind::Dynamo);
    options.provider = Some(provider);
    let app = spawn_app_with(options).await;
    assert_eq!(probe(&app.url, "/readyz").await.0, StatusCode::OK);

    // A provider that accepts connections but never answers.
    let frozen = Frozen(provider.pid());
    assert!(signal(frozen.0, "STOP"));
    let (status, body, took) = probe(&app.url, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"], serde_json::json!({ "store": true, "provider": false }));
    assert!(took < READY_BOUND, "readyz took {took:?}");
    assert_eq!(probe(&app.url, "/healthz").await.0, StatusCode::OK);
    drop(frozen);
    assert_eq!(probe(&app.url, "/readyz").await.0, StatusCode::OK, "ready again");

    // A provider nobody listens for: the cached discovery does not make the BFF ready.
    let closed = bff_tests::capture::free_listen_addr();
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_ISSUER", format!("http://{closed}")));
    let app = spawn_app_with(options).await;
    let (status, body, _) = probe(&app.url, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["provider"], false);
}
