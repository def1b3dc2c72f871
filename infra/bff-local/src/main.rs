//! `bff-local`: the whole BFF in one process, for local development and tests.
//!
//! Reads the same configuration as the Lambda functions, plus `BFF_STORE` (`memory`, the
//! default, or `dynamodb`), `BFF_LISTEN` (default `127.0.0.1:8080`) and `BFF_STATIC_DIR`
//! (a front-end folder served on the same origin), and `BFF_LOG_FORMAT=json` for JSON
//! log lines as the Lambda functions write them (with their EMF metric lines, unless
//! `BFF_METRICS=off`).
//!
//! `bff-local jwks` prints the public JWKS of the `private_key_jwt` key instead (from
//! `BFF_CLIENT_KEY`, `BFF_CLIENT_KEY_ARN` or `BFF_CLIENT_KMS_KEY_ID`, with
//! `BFF_CLIENT_KEY_ID`), to register at the provider; it needs no other variable.

use std::sync::Arc;

use bff::App;
use bff::platform::config::Config;
use bff::platform::config::client_auth::ClientKey;
use bff::platform::logging::{exit_on_startup_error, init_tracing_json, init_tracing_pretty};
use bff::store::Store;
use bff::store::dynamodb::{self, DynamoStore, create_table};
use bff::store::memory::MemoryStore;

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("jwks") {
        match bff::entry::jwks::jwks_from_env().await {
            Ok(jwks) => println!("{jwks:#}"),
            Err(e) => exit_on_startup_error(e),
        }
        return;
    }
    // JSON lines as in Lambda when asked (log tests parse them), readable text otherwise.
    let json_log = std::env::var("BFF_LOG_FORMAT").as_deref() == Ok("json");
    if json_log {
        init_tracing_json();
    } else {
        init_tracing_pretty();
    }
    let mut config = Config::from_env().unwrap_or_else(|e| exit_on_startup_error(e));
    if matches!(config.client_auth.key, Some(ClientKey::Kms { .. })) {
        let sdk = bff::platform::aws::sdk_config().await;
        if let Err(e) = bff::platform::kms::load_config_key(&mut config, &sdk).await {
            exit_on_startup_error(e);
        }
    }
    if let Err(e) = config
        .require_routes()
        .map(|_| ())
        .and(config.require_client_credentials())
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
    // First, so a provider short of the profile is named as such, not by a derived setting.
    if let Err(e) = app.oidc.check_profile(&app.config).await {
        exit_on_startup_error(e);
    }
    if let Err(e) = app.oidc.check_par_setting(&app.config).await {
        exit_on_startup_error(e);
    }
    if let Err(e) = app.oidc.check_client_auth().await {
        exit_on_startup_error(e);
    }
    // EMF lines go with the Lambda-style JSON log only; `/metrics` serves the counters.
    app.emf_lines = app.config.metrics && json_log;
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| exit_on_startup_error(format!("BFF_LISTEN={listen}: {e}")));
    tracing::info!("bff-local listening on http://{listen}");
    // A stop (Ctrl-C, or SIGTERM from a process manager) lets requests in flight finish,
    // so a refresh whose tokens the provider has rotated still writes them to the store.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        stop_signal().await;
        tracing::info!("stopping: finishing the requests in flight");
        let _ = stopping.send(());
    };
    let serve = bff_local::serve(listener, app, static_dir, shutdown);
    let drain_bound = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(DRAIN_LIMIT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serve => if let Err(e) = served {
            exit_on_startup_error(format!("server error: {e}"));
        },
        () = drain_bound => tracing::warn!("stopped with requests still in flight after {DRAIN_LIMIT:?}"),
    }
}

/// How long a stop waits for the requests in flight (long downloads are cut after it).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Ctrl-C, or SIGTERM where there are signals.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
