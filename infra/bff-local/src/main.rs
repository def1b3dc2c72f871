//! `bff-local`: the whole BFF in one process, for local development and tests.
//!
//! Reads the same configuration as the Lambda functions, plus `BFF_STORE` (`memory`, the
//! default, or `dynamodb`), `BFF_LISTEN` (default `127.0.0.1:8080`) and `BFF_STATIC_DIR`
//! (a front-end folder served on the same origin), and `BFF_LOG_FORMAT=json` for JSON
//! log lines as the Lambda functions write them (with their EMF metric lines, unless
//! `BFF_METRICS=off`).

use std::sync::Arc;

use bff::App;
use bff::platform::config::Config;
use bff::platform::logging::{exit_on_startup_error, init_tracing_json, init_tracing_pretty};
use bff::store::Store;
use bff::store::dynamodb::{self, DynamoStore, create_table};
use bff::store::memory::MemoryStore;

#[tokio::main]
async fn main() {
    // JSON lines as in Lambda when asked (log tests parse them), readable text otherwise.
    let json_log = std::env::var("BFF_LOG_FORMAT").as_deref() == Ok("json");
    if json_log {
        init_tracing_json();
    } else {
        init_tracing_pretty();
    }
    let config = Config::from_env().unwrap_or_else(|e| exit_on_startup_error(e));
    if let Err(e) = config
        .require_routes()
        .map(|_| ())
        .and(config.require_client_secret().map(|_| ()))
    {
        exit_on_startup_error(e);
    }
    let listen = std::env::var("BFF_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let store: Arc<dyn Store> = match std::env::var("BFF_STORE").as_deref() {
        Ok("memory") | Err(_) => Arc::new(MemoryStore::new()),
        Ok("dynamodb") => {
            let client = dynamodb::client(&bff::platform::aws::sdk_config().await);
            // Locally the table is created on start; in AWS the SAM template owns it.
            if let Err(e) = create_table(&client, &config.table).await {
                exit_on_startup_error(format!("BFF_STORE=dynamodb: cannot create table {}: {e}", config.table));
            }
            Arc::new(DynamoStore::new(client, config.table.clone()))
        }
        Ok(_) => exit_on_startup_error("BFF_STORE is invalid: must be `memory` or `dynamodb`"),
    };
    let static_dir = std::env::var_os("BFF_STATIC_DIR").map(Into::into);
    let mut app = App::new(config, store).unwrap_or_else(|e| exit_on_startup_error(e));
    if let Err(e) = app.oidc.check_par_setting(&app.config).await {
        exit_on_startup_error(e);
    }
    // EMF lines go with the Lambda-style JSON log only; `/metrics` serves the counters.
    app.emf_lines = app.config.metrics && json_log;
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| exit_on_startup_error(format!("BFF_LISTEN={listen}: {e}")));
    tracing::info!("bff-local listening on http://{listen}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = bff_local::serve(listener, app, static_dir, shutdown).await {
        exit_on_startup_error(format!("server error: {e}"));
    }
}
