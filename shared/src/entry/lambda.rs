//! The Lambda entry: start-up of a function (tracing, secrets, configuration, clients),
//! then the runtime loop with origin verification in front of the router.
//!
//! Everything before the loop runs once per cold start. A configuration error (an
//! unreadable secret reference included) ends the process at once with one line naming
//! the variable, so a bad deployment never answers 500 later. Every invocation passes
//! [`origin_verify::verify`] before the router: with `BFF_ORIGIN_VERIFY` configured, a
//! request that did not come through CloudFront is answered 403 and reaches no handler.
//! Whether the answer is buffered or streamed is the one difference between functions
//! (the proxy streams). This module never logs a secret; `bff-local` does not use it.

use std::future::Future;
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};
use tracing::Instrument as _;

use crate::http::access_log;
use crate::http::app::App;
use crate::http::body::ResponseBody;
use crate::http::error::ErrorAnswer;
use crate::http::origin_verify::{self, OriginVerify};
use crate::http::router::{self, Function, Unit, route_name};
use crate::platform::aws;
use crate::platform::config::{self, Config, ConfigError, ParMode};
use crate::platform::logging::{exit_on_startup_error, init_tracing_json};
use crate::platform::secrets_manager::{self, SECRET_VARIABLES, SecretsManager};
use crate::platform::{kms, metrics, trace_scope};
use crate::store::dynamodb::{self, DynamoStore};

/// The error a Lambda function's `main` may return.
pub use lambda_http::Error as LambdaError;

/// Which optional parts a function needs configured at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// The function forwards API calls, so `BFF_UPSTREAM_URL` is required.
    pub upstream: bool,
    /// The function authenticates at the provider's token endpoint, so the client's
    /// credentials are required (the secret, or the `private_key_jwt` key). A function that
    /// never does (back-channel logout) is deployed without access to them.
    pub client_credentials: bool,
    /// The function pushes authorization requests (RFC 9126), authenticated as at the
    /// token endpoint: it needs the client's credentials unless `BFF_PAR=off`.
    pub pushes_requests: bool,
}

impl Default for Needs {
    /// What most functions need: the client's credentials, no upstream.
    fn default() -> Self {
        Self {
            upstream: false,
            client_credentials: true,
            pushes_requests: false,
        }
    }
}

impl Needs {
    /// What `function` needs.
    pub fn of(function: Function) -> Self {
        match function {
            Function::Login => Self {
                client_credentials: false,
                pushes_requests: true,
                ..Self::default()
            },
            Function::Backchannel => Self {
                client_credentials: false,
                ..Self::default()
            },
            Function::Proxy => Self {
                upstream: true,
                ..Self::default()
            },
            Function::Callback | Function::Session | Function::All => Self::default(),
        }
    }
}

/// What a Lambda function builds once per cold start.
pub struct ColdStart {
    /// The context every invocation borrows.
    pub app: Arc<App>,
    /// The value CloudFront proves itself with; `None` turns verification off.
    pub origin_verify: Option<OriginVerify>,
}

/// Resolves secret references, reads the configuration (which must include
/// `BFF_TOKEN_KEYS` in a Lambda function) and builds the context with the DynamoDB store,
/// or exits.
pub async fn cold_start(needs: Needs) -> ColdStart {
    let env = |name: &str| std::env::var(name).ok();
    let has_reference = SECRET_VARIABLES
        .iter()
        .any(|name| env(&format!("{name}{}", secrets_manager::REFERENCE_SUFFIX)).is_some_and(|v| !v.trim().is_empty()));
    // One SDK configuration for both clients, loaded once per cold start.
    let sdk = aws::sdk_config().await;
    let table = config::table_name(env).unwrap_or_else(|e| exit_on_startup_error(e));
    let dynamo = dynamodb::client(&sdk);
    // The Secrets Manager client is built only when a reference needs it.
    let secrets = async {
        if has_reference {
            secrets_manager::resolve(env, &SecretsManager::from_config(&sdk)).await
        } else {
            Ok(secrets_manager::ResolvedSecrets::default())
        }
    };
    // The store's connection is opened while the secrets are read: its round trips and
    // handshake then overlap theirs instead of delaying the first invocation.
    let (resolved, ()) = tokio::join!(secrets, dynamodb::open_connection(&dynamo, &table));
    let resolved = resolved.unwrap_or_else(|e| exit_on_startup_error(e));
    let lookup = resolved.lookup(env);

    let mut config = Config::from_lookup(&lookup).unwrap_or_else(|e| exit_on_startup_error(e));
    // A KMS key is read (its public half) only by the functions that sign with it.
    if needs.client_credentials {
        kms::load_config_key(&mut config, &sdk)
            .await
            .unwrap_or_else(|e| exit_on_startup_error(e));
    }
    if let Err(e) = check_needs(needs, &config) {
        exit_on_startup_error(e);
    }
    let origin_verify = OriginVerify::from_lookup(&lookup);
    if origin_verify.is_none() {
        tracing::warn!("origin verification is off: BFF_ORIGIN_VERIFY is not set, direct calls are served");
    }
    let store = DynamoStore::new(dynamo, config.table.clone());
    let mut app = App::new(config, Arc::new(store)).unwrap_or_else(|e| exit_on_startup_error(e));
    // First, so a provider short of the profile is named as such, not by a derived setting.
    if (needs.client_credentials || needs.pushes_requests)
        && let Err(e) = app.oidc.check_profile(&app.config).await
    {
        exit_on_startup_error(e);
    }
    if needs.pushes_requests
        && let Err(e) = app.oidc.check_par_setting(&app.config).await
    {
        exit_on_startup_error(e);
    }
    if (needs.client_credentials || needs.pushes_requests)
        && let Err(e) = app.oidc.check_client_auth().await
    {
        exit_on_startup_error(e);
    }
    // One EMF line per invocation: CloudWatch Logs turns them into metrics.
    app.emf_lines = app.config.metrics;
    ColdStart {
        app: Arc::new(app),
        origin_verify,
    }
}

/// Whether `config` holds what a function with `needs` requires.
fn check_needs(needs: Needs, config: &Config) -> Result<(), ConfigError> {
    if needs.upstream {
        config.require_routes()?;
    }
    if needs.client_credentials || (needs.pushes_requests && config.par != ParMode::Off) {
        config.require_client_credentials()?;
    }
    // Every function shares the table, so every instance must seal and open tokens with the
    // same keys: a key of the process's own would leave other functions unable to read them.
    config.require_token_keys()?;
    Ok(())
}

/// Runs `unit` as a Lambda function; only its own handlers are compiled in. The proxy's function URL uses
/// `InvokeMode: RESPONSE_STREAM`: its answers are sent as a stream (status and headers
/// first, then the upstream's body chunk by chunk as the runtime can send it on), which
/// lifts the 6 MB limit of buffered responses and keeps memory flat whatever the answer's
/// size; every other function answers buffered.
pub async fn run<U: Unit>(unit: U) -> Result<(), LambdaError> {
    init_tracing_json();
    let started = cold_start(Needs::of(U::FUNCTION)).await;
    let handler = move |app: Arc<App>, req: Request| async move { router::handle(&app, unit, req).await };
    if matches!(U::FUNCTION, Function::Proxy) {
        let service = service_fn(|req| {
            let response = answer(&started, &handler, req);
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        });
        lambda_http::run_with_streaming_response(service).await
    } else {
        let service = service_fn(|req| {
            let response = answer(&started, &handler, req);
            async move { Ok::<_, std::convert::Infallible>(buffered(response.await)) }
        });
        lambda_http::run(service).await
    }
}

/// A whole answer for a buffered function. Only the proxy's answers stream, and the proxy
/// function streams, so a stream here is a wiring mistake: answered 502, never cut short.
fn buffered(response: Response<ResponseBody>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    match body {
        ResponseBody::Full(body) => Response::from_parts(parts, body),
        ResponseBody::Stream(_) => {
            tracing::error!("a streamed answer reached a buffered function");
            ErrorAnswer::from(crate::http::error::RequestError::UpstreamNotConfigured).to_json()
        }
    }
}

/// Checks the request's origin, then calls `handler` only when it passes. The handler is
/// called here, not inside the returned future, so the future owns all it needs.
fn answer<F, Fut, B>(
    started: &ColdStart,
    handler: &F,
    mut req: Request,
) -> impl Future<Output = Response<B>> + Send + use<F, Fut, B>
where
    F: Fn(Arc<App>, Request) -> Fut,
    Fut: Future<Output = Response<B>> + Send,
    B: From<Body>,
{
    // The same access-log line `bff-local` writes: one per invocation.
    let route = route_name(req.uri().path());
    let logged = access_log::Started::new(&mut req, route);
    let verdict = origin_verify::verify(req.headers_mut(), started.origin_verify.as_ref());
    let trace = access_log::trace_of(&req);
    let pending = verdict.passes().then(|| handler(started.app.clone(), req));
    let app = started.app.clone();
    let span = logged.span();
    async move {
        let work = trace_scope::within(trace, async {
            match pending {
                Some(response) => response.await,
                None => {
                    tracing::warn!(status = 403, "request refused: it did not come through CloudFront");
                    origin_verify::origin_not_verified().map(B::from)
                }
            }
        })
        .instrument(span);
        // Boxed: one more layer of nested futures here takes the proxy's streaming service
        // past the compiler's depth limit for computing future layouts.
        let work = Box::pin(work);
        let (response, invocation) = metrics::measure(&app.metrics, route, work, access_log::answered).await;
        let emf = app
            .emf_lines
            .then_some((&invocation, app.config.metrics_namespace.as_str()));
        logged.finish(&response, emf);
        response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http::StatusCode;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn started(origin_verify: Option<&str>) -> ColdStart {
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
        ColdStart {
            app: Arc::new(app),
            origin_verify: origin_verify.and_then(OriginVerify::new),
        }
    }

    #[test]
    fn only_a_function_that_needs_no_client_secret_starts_without_one() {
        let load_par = |secret: Option<&str>, par: Option<&str>| {
            Config::from_lookup(|name| {
                match name {
                    "BFF_ISSUER" => Some("https://id.example.com"),
                    "BFF_CLIENT_ID" => Some("client"),
                    "BFF_CLIENT_SECRET" => secret,
                    "BFF_PAR" => par,
                    "BFF_PUBLIC_URL" => Some("https://app.example.com"),
                    "BFF_TOKEN_KEYS" => Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                    _ => None,
                }
                .map(str::to_owned)
            })
            .expect("valid configuration")
        };
        let load = |secret| load_par(secret, Some("off"));
        // The login pushes authorization requests, authenticated, unless PAR is off.
        let login = Needs::of(Function::Login);
        assert_eq!(check_needs(login, &load(None)), Ok(()));
        for par in [None, Some("auto"), Some("on")] {
            assert_eq!(
                check_needs(login, &load_par(None, par)),
                Err(ConfigError::Missing("BFF_CLIENT_SECRET"))
            );
            assert_eq!(check_needs(login, &load_par(Some("s3cret"), par)), Ok(()));
        }
        assert_eq!(
            check_needs(Needs::of(Function::Backchannel), &load_par(None, None)),
            Ok(())
        );
        assert_eq!(
            check_needs(Needs::default(), &load(None)),
            Err(ConfigError::Missing("BFF_CLIENT_SECRET"))
        );
        assert_eq!(check_needs(Needs::default(), &load(Some("s3cret"))), Ok(()));
        let proxy = Needs::of(Function::Proxy);
        assert_eq!(
            check_needs(proxy, &load(Some("s3cret"))),
            Err(ConfigError::Missing("BFF_UPSTREAM_URL (or BFF_APIS)"))
        );
    }

    fn request(origin_header: Option<&str>) -> Request {
        let mut builder = http::Request::builder().uri("https://app.example.com/api/orders");
        if let Some(value) = origin_header {
            builder = builder.header("x-origin-verify", value);
        }
        builder.body(Body::Empty).expect("request")
    }

    /// Held by the tests that write access lines: one of them reads what the log got.
    static ACCESS_LOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn the_handler_sees_only_verified_requests_and_never_the_header() {
        let _alone = ACCESS_LOG.lock().await;
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
        let _alone = ACCESS_LOG.lock().await;
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        // Another test may have registered the access line's callsite while no subscriber
        // was listening, caching "never"; look again now that this one listens.
        tracing::callsite::rebuild_interest_cache();

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
