//! Start-up of a Lambda function: tracing, configuration, clients, then the runtime loop.
//!
//! Everything here runs once per cold start. A configuration error ends the process at
//! once with one line naming the variable, so a bad deployment never answers 500 later.

use std::future::Future;
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};

use crate::app::App;
use crate::config::Config;
use crate::store::dynamodb::{DynamoStore, client_from_env};

/// Logs as JSON lines (what CloudWatch expects), level from `RUST_LOG` (default `info`).
pub fn init_tracing_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(env_filter())
        .with_current_span(false)
        .without_time() // CloudWatch stamps every line itself.
        .try_init();
}

/// Human-readable logs for local runs.
pub fn init_tracing_pretty() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_target(false)
        .try_init();
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Prints `error` as the one line a failed start-up leaves, and exits non-zero.
pub fn exit_on_startup_error(error: impl std::fmt::Display) -> ! {
    eprintln!("bff: configuration error: {error}");
    std::process::exit(2)
}

/// Which optional parts a function needs configured at start-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The function forwards API calls, so `BFF_UPSTREAM_URL` is required.
    pub upstream: bool,
}

/// Reads the configuration and builds the context with the DynamoDB store, or exits.
pub async fn lambda_app(needs: Needs) -> Arc<App> {
    let config = Config::from_env().unwrap_or_else(|e| exit_on_startup_error(e));
    if needs.upstream
        && let Err(e) = config.require_upstream()
    {
        exit_on_startup_error(e);
    }
    let store = DynamoStore::new(client_from_env().await, config.table.clone());
    Arc::new(App::new(config, Arc::new(store)).unwrap_or_else(|e| exit_on_startup_error(e)))
}

/// Runs one Lambda function: `handler` answers every invocation with the shared context.
pub async fn run_lambda<F, Fut>(needs: Needs, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Arc<App>, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    init_tracing_json();
    let app = lambda_app(needs).await;
    lambda_http::run(service_fn(|req| {
        let response = handler(app.clone(), req);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

/// The error a Lambda function's `main` may return.
pub use lambda_http::Error as LambdaError;
