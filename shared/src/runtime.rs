//! Start-up of a Lambda function: tracing, secrets, configuration, clients, then the
//! runtime loop with origin verification in front of the handler.
//!
//! Everything here runs once per cold start. A configuration error (an unreadable secret
//! reference included) ends the process at once with one line naming the variable, so a
//! bad deployment never answers 500 later. Every invocation passes
//! [`edge::check_origin`] before its handler: with `BFF_ORIGIN_VERIFY` configured, a
//! request that did not come through CloudFront is answered 403 and reaches no handler.
//! This module never logs a secret; `bff-local` does not use its Lambda entry points.

use std::future::Future;
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};

use crate::access_log;
use crate::app::App;
use crate::aws;
use crate::config::{Config, ConfigError};
use crate::edge::{self, OriginVerify};
use crate::secrets::{self, SECRET_VARIABLES, SecretsManager};
use crate::store::dynamodb::{self, DynamoStore};

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
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// The function forwards API calls, so `BFF_UPSTREAM_URL` is required.
    pub upstream: bool,
    /// The function authenticates at the provider's token endpoint, so the client secret
    /// is required. A function that never does (login, back-channel logout) is deployed
    /// without access to it.
    pub client_secret: bool,
}

impl Default for Needs {
    /// What most functions need: the client secret, no upstream.
    fn default() -> Self {
        Self {
            upstream: false,
            client_secret: true,
        }
    }
}

/// What a Lambda function builds once per cold start.
pub struct LambdaApp {
    /// The context every handler borrows.
    pub app: Arc<App>,
    /// The value CloudFront proves itself with; `None` turns verification off.
    pub origin_verify: Option<OriginVerify>,
}

/// Resolves secret references, reads the configuration (which must include
/// `BFF_TOKEN_KEYS` in a Lambda function) and builds the context with the DynamoDB store,
/// or exits.
pub async fn lambda_app(needs: Needs) -> LambdaApp {
    let env = |name: &str| std::env::var(name).ok();
    let has_reference = SECRET_VARIABLES
        .iter()
        .any(|name| env(&format!("{name}{}", secrets::REFERENCE_SUFFIX)).is_some_and(|v| !v.trim().is_empty()));
    // One SDK configuration for both clients, loaded once per cold start.
    let sdk = aws::sdk_config().await;
    // The Secrets Manager client is built only when a reference needs it.
    let resolved = if has_reference {
        secrets::resolve(env, &SecretsManager::from_config(&sdk))
            .await
            .unwrap_or_else(|e| exit_on_startup_error(e))
    } else {
        secrets::ResolvedSecrets::default()
    };
    let lookup = resolved.lookup(env);

    let config = Config::from_lookup(&lookup).unwrap_or_else(|e| exit_on_startup_error(e));
    if let Err(e) = check_needs(needs, &config) {
        exit_on_startup_error(e);
    }
    let origin_verify = OriginVerify::from_lookup(&lookup);
    if origin_verify.is_none() {
        tracing::warn!("origin verification is off: BFF_ORIGIN_VERIFY is not set, direct calls are served");
    }
    let store = DynamoStore::new(dynamodb::client(&sdk), config.table.clone());
    let app = Arc::new(App::new(config, Arc::new(store)).unwrap_or_else(|e| exit_on_startup_error(e)));
    LambdaApp { app, origin_verify }
}

/// Whether `config` holds what a function with `needs` requires.
fn check_needs(needs: Needs, config: &Config) -> Result<(), ConfigError> {
    if needs.upstream {
        config.require_upstream()?;
    }
    if needs.client_secret {
        config.require_client_secret()?;
    }
    // Every function shares the table, so every instance must seal and open tokens with the
    // same keys: a key of the process's own would leave other functions unable to read them.
    config.require_token_keys()?;
    Ok(())
}

/// Runs one Lambda function with a buffered response: `handler` answers every verified
/// invocation with the shared context.
pub async fn run_lambda<F, Fut>(needs: Needs, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Arc<App>, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    init_tracing_json();
    let started = lambda_app(needs).await;
    lambda_http::run(service_fn(|req| {
        let response = answer(&started, &handler, req);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

/// Runs one Lambda function whose function URL uses `InvokeMode: RESPONSE_STREAM`: the
/// response is sent as a stream (status and headers first, then the body), which lifts
/// the 6 MB limit of buffered responses. Otherwise as [`run_lambda`].
pub async fn run_lambda_streaming<F, Fut>(needs: Needs, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Arc<App>, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    init_tracing_json();
    let started = lambda_app(needs).await;
    lambda_http::run_with_streaming_response(service_fn(|req| {
        let response = answer(&started, &handler, req);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

/// Checks the request's origin, then calls `handler` only when it passes. The handler is
/// called here, not inside the returned future, so the future owns all it needs.
fn answer<F, Fut>(
    started: &LambdaApp,
    handler: &F,
    mut req: Request,
) -> impl Future<Output = Response<Body>> + Send + use<F, Fut>
where
    F: Fn(Arc<App>, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    // The same access-log line `bff-local` writes: one per invocation.
    let logged = access_log::Started::new(&req, access_log::route_name(req.uri().path()));
    let verdict = edge::check_origin(req.headers_mut(), started.origin_verify.as_ref());
    let pending = verdict.passes().then(|| handler(started.app.clone(), req));
    async move {
        let response = match pending {
            Some(response) => response.await,
            None => {
                tracing::warn!(status = 403, "request refused: it did not come through CloudFront");
                edge::origin_not_verified()
            }
        };
        logged.finish(&response);
        response
    }
}

/// The error a Lambda function's `main` may return.
pub use lambda_http::Error as LambdaError;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http::StatusCode;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn started(origin_verify: Option<&str>) -> LambdaApp {
        let config = Config::from_lookup(|name| {
            match name {
                "BFF_ISSUER" => Some("https://id.example.com"),
                "BFF_CLIENT_ID" => Some("client"),
                "BFF_CLIENT_SECRET" => Some("s3cret"),
                "BFF_PUBLIC_URL" => Some("https://app.example.com"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .expect("valid configuration");
        let app = App::new(config, Arc::new(MemoryStore::new())).expect("context");
        LambdaApp {
            app: Arc::new(app),
            origin_verify: origin_verify.and_then(OriginVerify::new),
        }
    }

    #[test]
    fn only_a_function_that_needs_no_client_secret_starts_without_one() {
        let load = |secret: Option<&str>| {
            Config::from_lookup(|name| {
                match name {
                    "BFF_ISSUER" => Some("https://id.example.com"),
                    "BFF_CLIENT_ID" => Some("client"),
                    "BFF_CLIENT_SECRET" => secret,
                    "BFF_PUBLIC_URL" => Some("https://app.example.com"),
                    "BFF_TOKEN_KEYS" => Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                    _ => None,
                }
                .map(str::to_owned)
            })
            .expect("valid configuration")
        };
        let login = Needs {
            client_secret: false,
            ..Needs::default()
        };
        assert_eq!(check_needs(login, &load(None)), Ok(()));
        assert_eq!(
            check_needs(Needs::default(), &load(None)),
            Err(ConfigError::Missing("BFF_CLIENT_SECRET"))
        );
        assert_eq!(check_needs(Needs::default(), &load(Some("s3cret"))), Ok(()));
        let proxy = Needs {
            upstream: true,
            ..Needs::default()
        };
        assert_eq!(
            check_needs(proxy, &load(Some("s3cret"))),
            Err(ConfigError::Missing("BFF_UPSTREAM_URL"))
        );
    }

    fn request(origin_header: Option<&str>) -> Request {
        let mut builder = http::Request::builder().uri("https://app.example.com/api/orders");
        if let Some(value) = origin_header {
            builder = builder.header("x-origin-verify", value);
        }
        builder.body(Body::Empty).expect("request")
    }

    #[tokio::test]
    async fn the_handler_sees_only_verified_requests_and_never_the_header() {
        let seen = Mutex::new(Vec::new());
        let handler = |_app: Arc<App>, req: Request| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(req.headers().contains_key("x-origin-verify"));
            }
            async { Response::new(Body::Text("handled".into())) }
        };
        let cases = [
            (Some("edge-proof"), Some("edge-proof"), StatusCode::OK),
            (Some("edge-proof"), None, StatusCode::FORBIDDEN),
            (Some("edge-proof"), Some("guess"), StatusCode::FORBIDDEN),
            (None, Some("anything"), StatusCode::OK),
            (None, None, StatusCode::OK),
        ];
        for (configured, sent, status) in cases {
            let response = answer(&started(configured), &handler, request(sent)).await;
            assert_eq!(response.status(), status, "configured {configured:?}, sent {sent:?}");
        }
        // Three requests reached the handler, none of them with the header.
        assert_eq!(
            seen.lock().map(|s| s.clone()).unwrap_or_default(),
            [false, false, false]
        );
    }

    /// Collects what the log writes, for the assertions below.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_invocation_writes_one_access_line_refused_ones_included() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let handler = |_app: Arc<App>, _req: Request| async { Response::new(Body::Text("handled".into())) };
        let started = started(Some("edge-proof"));
        answer(&started, &handler, request(Some("edge-proof"))).await;
        answer(&started, &handler, request(None)).await;

        let text = String::from_utf8(captured.0.lock().map(|c| c.clone()).unwrap_or_default()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["target"] == "access")
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for (line, status) in lines.iter().zip([200, 403]) {
            assert_eq!(line["fields"]["route"], "api");
            assert_eq!(line["fields"]["method"], "GET");
            assert_eq!(line["fields"]["status"], status);
            assert!(line["fields"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
        }
        assert!(!text.contains("edge-proof"), "the origin secret must never be logged");
    }
}
