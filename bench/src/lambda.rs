//! The Lambda functions measured from the outside, through the Runtime API emulator:
//! cold starts (each next to the hello-world floor), what a first invocation does over
//! the network, warm invocations with peak memory, and steady-state store calls.
//!
//! Every invocation is a real request of a real login: the login function's redirect is
//! walked through the provider's pages, its callback is delivered to the callback
//! function, and so on, so each function does its full work on its first event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use bff_bench::delta;
use bff_bench::stats::{Summary, summarize};
use bff_testkit::Browser;
use bff_testkit::provider::{Provider, RequestCounts};
use tokio::sync::mpsc;

use crate::dynamo::{Dynamo, OpCounts};
use crate::emulator::{Call, Events, Function, Instance, Outcome};

/// The five BFF functions, in the order a login uses them.
pub const FUNCTIONS: [&str; 5] = [
    "bff-login",
    "bff-callback",
    "bff-session",
    "bff-proxy",
    "bff-backchannel",
];
/// The floor.
pub const HELLO: &str = "bench-hello";

/// The origin the functions believe they serve (https: the cookies are `__Host-` ones, as
/// deployed). Nothing listens there: the harness delivers every request as an event.
const PUBLIC_URL: &str = "https://bff.example.com";
const ORIGIN_VERIFY: &str = "cloudfront-proof-for-the-bench";
const TABLE: &str = "bff-bench";
const SESSION_COOKIE: &str = "__Host-Http-bff-session";
const TX_COOKIE: &str = "__Host-Http-bff-tx";

fn secret_arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}")
}

/// Calls made to the fake Secrets Manager, by operation, and when each was answered.
#[derive(Clone, Default)]
pub struct SecretsCounter(Arc<Mutex<OpCounts>>, Arc<Mutex<Vec<Instant>>>);

impl SecretsCounter {
    fn snapshot(&self) -> OpCounts {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Network calls of one invocation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calls {
    /// Provider requests by path.
    pub provider: RequestCounts,
    /// DynamoDB operations.
    pub store: OpCounts,
    /// Secrets Manager operations.
    pub secrets: OpCounts,
}

/// Cold starts of one function next to the floor, each sample paired with a hello cold
/// start taken just before it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ColdResult {
    /// Spawn to first answer posted, ms.
    pub total_ms: Vec<f64>,
    /// Spawn to the first `GET /next` (the init phase Lambda reports), ms.
    pub init_ms: Vec<f64>,
    /// The paired floor: spawn to first answer of the hello-world, ms.
    pub floor_ms: Vec<f64>,
    /// The paired floor's init, ms.
    pub floor_init_ms: Vec<f64>,
    /// From the answer's headers to its last byte, ms (a streamed answer's upload).
    pub upload_ms: Vec<f64>,
    /// The same function with the operating system's trust store added: first answer, ms.
    pub system_store_total_ms: Vec<f64>,
    /// ...and its init, ms.
    pub system_store_init_ms: Vec<f64>,
    /// The same function given its secrets as plain values, no Secrets Manager read:
    /// first answer, ms.
    #[serde(default)]
    pub plain_secrets_total_ms: Vec<f64>,
    /// ...and its init, ms.
    #[serde(default)]
    pub plain_secrets_init_ms: Vec<f64>,
    /// The first invocation's network calls (first sample), and whether every sample
    /// made the same calls.
    pub calls: Calls,
    /// Every sample made the same calls.
    pub calls_constant: bool,
}

/// Warm invocations of one function.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct WarmResult {
    /// Delivery to complete answer, ms.
    pub duration_ms: Summary,
    /// From the answer's headers to its last byte, ms.
    pub upload_ms: Summary,
    /// Peak RSS over the run, KiB.
    pub peak_rss_kib: u64,
    /// RSS after the first invocation, KiB.
    pub first_rss_kib: u64,
    /// Invocations.
    pub invocations: usize,
}

/// Steady state of one session calling the API through the warm proxy function.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SteadyResult {
    /// Proxy invocations.
    pub calls: usize,
    /// Delivery to complete answer, ms.
    pub duration_ms: Summary,
    /// The streamed answer's upload, ms.
    pub upload_ms: Summary,
    /// Store operations per call.
    pub store_per_call: BTreeMap<String, f64>,
    /// Provider requests during the run.
    pub provider_requests: u64,
    /// `/auth/me` invocations with the same session and their store operations per call.
    pub me_calls: usize,
    /// Store operations per `/auth/me`.
    pub me_store_per_call: BTreeMap<String, f64>,
}

/// Everything measured through the emulator.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LambdaResults {
    /// Cold starts by function.
    pub cold: BTreeMap<String, ColdResult>,
    /// Warm runs by function (hello included).
    pub warm: BTreeMap<String, WarmResult>,
    /// The proxy's steady state.
    pub steady: SteadyResult,
    /// Wall time of the warm journeys, s.
    pub warm_seconds: f64,
    /// Logins that went through every warm function.
    pub journeys: usize,
}

/// The environment the functions run in: provider, store, upstream, secrets and the
/// back-channel logout sink.
pub struct Stack<'a> {
    provider: &'a Provider,
    dynamo: &'a Dynamo,
    secrets: SecretsCounter,
    events: Events,
    functions: BTreeMap<String, Function>,
    /// The same functions with `SSL_CERT_FILE` naming the machine's CA bundle, when it has
    /// one: what a deployment that opts into the system trust store pays at cold start.
    system_store: Option<BTreeMap<String, Function>>,
    /// The same functions with their secrets as plain values: how much of a cold start
    /// the Secrets Manager round trips take.
    plain_secrets: BTreeMap<String, Function>,
    /// The test CA whose terminators are in front of DynamoDB, Secrets Manager and the
    /// provider, when the functions reach them over TLS.
    tls: Option<&'a bff_testkit::tls::Tls>,
    logout_tokens: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    logs: PathBuf,
}

/// Release binaries are expected in `bin_dir` under their package names. With `tls`, the
/// functions reach DynamoDB and Secrets Manager through its terminators and trust its CA
/// through `SSL_CERT_FILE`, as in AWS, where these services are only reachable over
/// HTTPS; `provider` should then be behind one of its terminators too.
pub async fn stack<'a>(
    provider: &'a Provider,
    dynamo: &'a Dynamo,
    upstream: &str,
    bin_dir: &Path,
    logs: &Path,
    tls: Option<&'a bff_testkit::tls::Tls>,
) -> Stack<'a> {
    // Where the provider posts back-channel logout tokens (the harness keeps them for the
    // backchannel function's events).
    let (token_tx, token_rx) = mpsc::unbounded_channel();
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let sink_url = format!("http://{}/backchannel", sink.local_addr().expect("sink address"));
    let router = axum::Router::new()
        .route("/backchannel", axum::routing::post(logout_sink))
        .with_state(token_tx);
    tokio::spawn(async move { axum::serve(sink, router).await });

    let client = provider
        .register_with(PUBLIC_URL, "client_secret_basic", Some(&sink_url))
        .await;

    // Secret references, resolved by the functions at cold start, as deployed.
    let secrets = SecretsCounter::default();
    let values: BTreeMap<String, String> = [
        (secret_arn("bff-client-secret"), client.client_secret.clone()),
        (secret_arn("bff-origin-verify"), ORIGIN_VERIFY.to_owned()),
        (secret_arn("bff-token-keys"), bff_bench::BENCH_TOKEN_KEYS.to_owned()),
    ]
    .into_iter()
    .collect();
    let secrets_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind secrets");
    let secrets_url = format!("http://{}", secrets_listener.local_addr().expect("secrets address"));
    let router = axum::Router::new()
        .fallback(fake_secrets_manager)
        .with_state((Arc::new(values.clone()), secrets.clone()));
    tokio::spawn(async move { axum::serve(secrets_listener, router).await });
    let (dynamodb_url, secrets_url) = match tls {
        None => (dynamo.counted.clone(), secrets_url),
        Some(tls) => {
            let plain_target = |url: &str| url.trim_start_matches("http://").trim_end_matches('/').to_owned();
            (
                tls.terminate("dynamodb", plain_target(&dynamo.counted))
                    .await
                    .expect("DynamoDB terminator"),
                tls.terminate("secretsmanager", plain_target(&secrets_url))
                    .await
                    .expect("Secrets Manager terminator"),
            )
        }
    };

    let common = |name: &str| -> Vec<(String, String)> {
        let mut env = vec![
            ("BFF_ISSUER", provider.issuer.clone()),
            ("BFF_CLIENT_ID", client.client_id.clone()),
            ("BFF_PUBLIC_URL", PUBLIC_URL.to_owned()),
            ("BFF_TABLE", TABLE.to_owned()),
            ("BFF_ORIGIN_VERIFY_ARN", secret_arn("bff-origin-verify")),
            ("BFF_TOKEN_KEYS_ARN", secret_arn("bff-token-keys")),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_url.clone()),
        ];
        if let Some(tls) = tls {
            env.push(("SSL_CERT_FILE", tls.ca_file.display().to_string()));
        }
        if matches!(name, "bff-login" | "bff-callback" | "bff-session" | "bff-proxy") {
            env.push(("BFF_CLIENT_SECRET_ARN", secret_arn("bff-client-secret")));
        }
        if name == "bff-proxy" {
            env.push(("BFF_UPSTREAM_URL", upstream.to_owned()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    };
    let mut functions = BTreeMap::new();
    for name in FUNCTIONS {
        functions.insert(
            name.to_owned(),
            Function {
                name: name.to_owned(),
                binary: bin_dir.join(name),
                env: common(name),
                share: None,
            },
        );
    }
    functions.insert(
        HELLO.to_owned(),
        Function {
            name: HELLO.to_owned(),
            binary: bin_dir.join(HELLO),
            env: Vec::new(),
            share: None,
        },
    );
    let system_store = system_bundle().map(|pem| {
        functions
            .iter()
            .filter(|(name, _)| name.as_str() != HELLO)
            .map(|(name, f)| {
                let mut f = f.clone();
                f.env.push(("SSL_CERT_FILE".to_owned(), pem.display().to_string()));
                (name.clone(), f)
            })
            .collect()
    });
    let plain_secrets = functions
        .iter()
        .filter(|(name, _)| name.as_str() != HELLO)
        .map(|(name, f)| {
            let mut f = f.clone();
            f.env = f
                .env
                .into_iter()
                .map(|(key, value)| match key.strip_suffix("_ARN") {
                    Some(plain) => (plain.to_owned(), values.get(&value).cloned().unwrap_or_default()),
                    None => (key, value),
                })
                .collect();
            (name.clone(), f)
        })
        .collect();
    Stack {
        provider,
        dynamo,
        secrets,
        events: Events::load(Some(ORIGIN_VERIFY.to_owned())),
        functions,
        system_store,
        plain_secrets,
        tls,
        logout_tokens: tokio::sync::Mutex::new(token_rx),
        logs: logs.to_path_buf(),
    }
}

/// The machine's CA bundle (Debian's, or Amazon Linux's), as `SSL_CERT_FILE` would name it.
fn system_bundle() -> Option<PathBuf> {
    ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

async fn logout_sink(State(tokens): State<mpsc::UnboundedSender<String>>, body: Bytes) -> StatusCode {
    if let Some((_, token)) = url::form_urlencoded::parse(&body).find(|(k, _)| k == "logout_token") {
        let _ = tokens.send(token.into_owned());
    }
    StatusCode::OK
}

async fn fake_secrets_manager(
    State((values, counter)): State<(Arc<BTreeMap<String, String>>, SecretsCounter)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("(none)")
        .to_owned();
    if let Ok(mut counts) = counter.0.lock() {
        *counts.entry(operation.clone()).or_default() += 1;
    }
    if let Ok(mut answered) = counter.1.lock() {
        answered.push(Instant::now());
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = request["SecretId"].as_str().unwrap_or_default();
    let json = [("content-type", "application/x-amz-json-1.1")];
    if operation == "BatchGetSecretValue" {
        // `BENCH_SECRETS_BATCH=off`: refused as by a role without the permission, so the
        // functions read each secret on its own (the comparison without the batch).
        if std::env::var("BENCH_SECRETS_BATCH").is_ok_and(|v| v == "off") {
            return (
                StatusCode::BAD_REQUEST,
                json,
                r#"{"__type":"AccessDeniedException","message":"not allowed"}"#.to_owned(),
            )
                .into_response();
        }
        let ids: Vec<&str> = request["SecretIdList"]
            .as_array()
            .map(|ids| ids.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let found: Vec<serde_json::Value> = ids
            .iter()
            .filter_map(|id| values.get(*id).map(|value| secret_value(id, value)))
            .collect();
        let errors: Vec<serde_json::Value> = ids
            .iter()
            .filter(|id| !values.contains_key(**id))
            .map(|id| serde_json::json!({"SecretId": id, "ErrorCode": "ResourceNotFoundException", "Message": "not found"}))
            .collect();
        let answer = serde_json::json!({"SecretValues": found, "Errors": errors});
        return (StatusCode::OK, json, answer.to_string()).into_response();
    }
    match (operation.as_str(), values.get(id)) {
        ("GetSecretValue", Some(value)) => (StatusCode::OK, json, secret_value(id, value).to_string()).into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            json,
            r#"{"__type":"ResourceNotFoundException","message":"not found"}"#.to_owned(),
        )
            .into_response(),
    }
}

/// A secret as Secrets Manager describes it in `GetSecretValue` and `BatchGetSecretValue`.
fn secret_value(id: &str, value: &str) -> serde_json::Value {
    serde_json::json!({
        "ARN": id,
        "Name": id.rsplit(':').next().unwrap_or(id),
        "SecretString": value,
        "VersionId": "00000000-0000-4000-8000-000000000001",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1.7e9,
    })
}

/// One user's way through the BFF, driving whichever instances it is given.
pub(crate) struct Journey {
    browser: Browser,
    user: String,
    tx_cookie: Option<String>,
    callback_query: Option<String>,
    session_cookie: Option<String>,
    logout_token: Option<String>,
}

impl Journey {
    fn new(n: usize, browser: Browser) -> Self {
        Self {
            browser,
            user: format!("user{n}"),
            tx_cookie: None,
            callback_query: None,
            session_cookie: None,
            logout_token: None,
        }
    }
}

impl Stack<'_> {
    fn function(&self, name: &str) -> &Function {
        &self.functions[name]
    }

    /// User `n`'s journey, with a browser that trusts the test CA when the provider is
    /// behind TLS.
    fn journey(&self, n: usize) -> Journey {
        let browser = match self.tls {
            Some(tls) => Browser::trusting(&tls.ca_file),
            None => Browser::new(),
        };
        Journey::new(n, browser)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    async fn snapshot(&self) -> (RequestCounts, OpCounts, OpCounts) {
        (
            self.provider.requests().await,
            self.dynamo.counts(),
            self.secrets.snapshot(),
        )
    }

    async fn calls_since(&self, before: &(RequestCounts, OpCounts, OpCounts)) -> Calls {
        let after = self.snapshot().await;
        Calls {
            provider: delta(&before.0, &after.0),
            store: delta(&before.1, &after.1),
            secrets: delta(&before.2, &after.2),
        }
    }

    /// The request `function` gets at this point of `journey`, after the browser steps
    /// that lead to it.
    async fn next_call(&self, function: &str, journey: &mut Journey) -> Call {
        match function {
            HELLO => Call::get("/", ""),
            "bff-login" => Call::get("/auth/login", "returnTo=%2Forders").header("accept", "text/html"),
            "bff-callback" => {
                let query = journey.callback_query.clone().expect("the login ran first");
                let mut call = Call::get("/auth/callback", &query).header("accept", "text/html");
                if let Some(tx) = &journey.tx_cookie {
                    call = call.cookie(tx.clone());
                }
                call
            }
            "bff-session" => Call::get("/auth/me", "").cookie(journey.session_cookie.clone().expect("logged in")),
            "bff-proxy" => Call::get("/api/orders", "status=open")
                .cookie(journey.session_cookie.clone().expect("logged in"))
                .header("x-csrf", "1"),
            "bff-backchannel" => {
                journey.browser.logout_at_provider(&self.provider.issuer).await;
                let token = tokio::time::timeout(Duration::from_secs(10), async {
                    self.logout_tokens.lock().await.recv().await
                })
                .await
                .ok()
                .flatten()
                .expect("the provider sent a back-channel logout token");
                journey.logout_token = Some(token.clone());
                let body: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("logout_token", &token)
                    .finish();
                Call {
                    method: "POST".into(),
                    path: "/auth/backchannel-logout".into(),
                    headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
                    body: Some(body),
                    ..Call::default()
                }
            }
            other => panic!("unknown function {other}"),
        }
    }

    /// Checks `outcome` and carries what it set into `journey` (and walks the provider
    /// after the login).
    async fn absorb(&self, function: &str, journey: &mut Journey, outcome: &Outcome) -> Result<(), String> {
        let expect = |status: u16| {
            if outcome.status == status {
                Ok(())
            } else {
                Err(format!(
                    "{function}: answered {} instead of {status}: {}",
                    outcome.status,
                    String::from_utf8_lossy(&outcome.body)
                ))
            }
        };
        match function {
            HELLO | "bff-session" | "bff-backchannel" => expect(200),
            "bff-login" => {
                expect(302)?;
                journey.tx_cookie = outcome.cookie(TX_COOKIE);
                let authorize = outcome.header("location").ok_or("login: no Location")?.to_owned();
                let callback = journey
                    .browser
                    .authenticate(&authorize, &format!("{PUBLIC_URL}/auth/callback"), &journey.user)
                    .await;
                journey.callback_query = callback.split_once('?').map(|(_, q)| q.to_owned());
                Ok(())
            }
            "bff-callback" => {
                expect(302)?;
                journey.session_cookie = outcome.cookie(SESSION_COOKIE);
                journey
                    .session_cookie
                    .as_ref()
                    .map(|_| ())
                    .ok_or_else(|| "callback: no session cookie".to_owned())
            }
            "bff-proxy" => {
                expect(200)?;
                if outcome.body == bff_bench::upstream::BODY.as_bytes() {
                    Ok(())
                } else {
                    Err("proxy: the upstream's body did not come through".into())
                }
            }
            other => Err(format!("unknown function {other}")),
        }
    }

    /// One cold start of `function` at this point of `journey`.
    async fn cold_once(&self, function: &str, journey: &mut Journey) -> Result<(f64, f64, f64, Calls), String> {
        self.cold_with(self.function(function), journey).await
    }

    async fn cold_with(&self, f: &Function, journey: &mut Journey) -> Result<(f64, f64, f64, Calls), String> {
        self.cold_timed(f, journey)
            .await
            .map(|(cold, _)| (cold.total, cold.init, cold.upload, cold.calls))
    }

    async fn cold_timed(&self, f: &Function, journey: &mut Journey) -> Result<(Cold, (Instant, Instant)), String> {
        let function = f.name.as_str();
        let call = self.next_call(function, journey).await;
        let event = self.events.event(&call);
        let before = self.snapshot().await;
        let (instance, outcome) = Instance::cold(f, &self.log(function), event).await?;
        let spawned = instance.spawned;
        let init = instance
            .api
            .first_next()
            .map(|t| t.saturating_duration_since(spawned))
            .unwrap_or_else(|| outcome.received.saturating_duration_since(spawned));
        let init = ms(init);
        let total = ms(outcome.received.saturating_duration_since(spawned));
        let upload = ms(outcome.received.saturating_duration_since(outcome.started));
        instance.stop().await;
        let calls = self.calls_since(&before).await;
        self.absorb(function, journey, &outcome).await?;
        Ok((
            Cold {
                total,
                init,
                upload,
                calls,
            },
            (spawned, outcome.received),
        ))
    }

    /// `iterations` journeys, each function started cold, each next to a cold hello.
    pub async fn cold_starts(&self, iterations: usize, warmup: usize) -> Result<BTreeMap<String, ColdResult>, String> {
        let mut results: BTreeMap<String, ColdResult> = BTreeMap::new();
        for i in 0..warmup + iterations {
            let mut journey = self.journey(i);
            let mut system_journey = self.journey(50_000 + i);
            let mut plain_journey = self.journey(70_000 + i);
            for function in FUNCTIONS {
                let mut floor_journey = self.journey(i);
                let (floor, floor_init, _, _) = self.cold_once(HELLO, &mut floor_journey).await?;
                let (total, init, upload, calls) = self.cold_once(function, &mut journey).await?;
                let system_store = match &self.system_store {
                    Some(functions) => Some(self.cold_with(&functions[function], &mut system_journey).await?),
                    None => None,
                };
                let plain = self
                    .cold_with(&self.plain_secrets[function], &mut plain_journey)
                    .await?;
                if i < warmup {
                    continue;
                }
                let entry = results.entry(function.to_owned()).or_default();
                if entry.total_ms.is_empty() {
                    entry.calls = calls;
                    entry.calls_constant = true;
                } else if entry.calls != calls {
                    entry.calls_constant = false;
                }
                entry.total_ms.push(total);
                entry.init_ms.push(init);
                entry.floor_ms.push(floor);
                entry.floor_init_ms.push(floor_init);
                entry.upload_ms.push(upload);
                if let Some((total, init, _, _)) = system_store {
                    entry.system_store_total_ms.push(total);
                    entry.system_store_init_ms.push(init);
                }
                entry.plain_secrets_total_ms.push(plain.0);
                entry.plain_secrets_init_ms.push(plain.1);
            }
        }
        Ok(results)
    }

    /// Every function (and the floor) warm in its own environment; `journeys` logins run
    /// through all of them. Then one session calls the API `steady` times.
    pub async fn warm(&self, journeys: usize, steady: usize) -> Result<LambdaResults, String> {
        let mut names: Vec<&str> = vec![HELLO];
        names.extend(FUNCTIONS);
        let mut instances = BTreeMap::new();
        for name in &names {
            instances.insert(*name, Instance::start(self.function(name), &self.log(name)).await);
        }
        let mut durations: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut uploads: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut invocations: BTreeMap<&str, usize> = BTreeMap::new();
        let mut first_rss = BTreeMap::new();
        let started = Instant::now();
        for i in 0..journeys {
            let mut journey = self.journey(100_000 + i);
            for name in &names {
                let call = self.next_call(name, &mut journey).await;
                let event = self.events.event(&call);
                let instance = instances.get_mut(name).ok_or("instance")?;
                let outcome = instance.invoke(event).await?;
                *invocations.entry(name).or_default() += 1;
                self.absorb(name, &mut journey, &outcome).await?;
                if i == 0 {
                    first_rss.insert(*name, crate::procs::rss_kib(instance.pid()));
                } else {
                    // The first invocation is the cold one.
                    durations.entry(name).or_default().push(ms(outcome.duration()));
                    uploads
                        .entry(name)
                        .or_default()
                        .push(ms(outcome.received.saturating_duration_since(outcome.started)));
                }
            }
        }
        let warm_seconds = started.elapsed().as_secs_f64();

        // Steady state: one session, many API calls, through the same warm instances.
        let mut journey = self.journey(999_999);
        for name in ["bff-login", "bff-callback"] {
            let call = self.next_call(name, &mut journey).await;
            let instance = instances.get_mut(name).ok_or("instance")?;
            let outcome = instance.invoke(self.events.event(&call)).await?;
            *invocations.entry(name).or_default() += 1;
            self.absorb(name, &mut journey, &outcome).await?;
        }
        let mut steady_result = SteadyResult::default();
        let mut steady_uploads = Vec::new();
        for (name, runs) in [("bff-proxy", steady), ("bff-session", steady / 4)] {
            let before = self.snapshot().await;
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let call = self.next_call(name, &mut journey).await;
                let instance = instances.get_mut(name).ok_or("instance")?;
                let outcome = instance.invoke(self.events.event(&call)).await?;
                *invocations.entry(name).or_default() += 1;
                self.absorb(name, &mut journey, &outcome).await?;
                times.push(ms(outcome.duration()));
                if name == "bff-proxy" {
                    steady_uploads.push(ms(outcome.received.saturating_duration_since(outcome.started)));
                }
            }
            let calls = self.calls_since(&before).await;
            let per_call: BTreeMap<String, f64> = calls
                .store
                .iter()
                .map(|(op, n)| (op.clone(), *n as f64 / runs.max(1) as f64))
                .collect();
            if name == "bff-proxy" {
                steady_result.calls = runs;
                steady_result.duration_ms = summarize(&times);
                steady_result.upload_ms = summarize(&steady_uploads);
                steady_result.store_per_call = per_call;
                steady_result.provider_requests = calls.provider.values().sum();
            } else {
                steady_result.me_calls = runs;
                steady_result.me_store_per_call = per_call;
            }
        }

        let mut warm = BTreeMap::new();
        for (name, instance) in instances {
            warm.insert(
                name.to_owned(),
                WarmResult {
                    duration_ms: summarize(durations.get(name).map(Vec::as_slice).unwrap_or(&[])),
                    upload_ms: summarize(uploads.get(name).map(Vec::as_slice).unwrap_or(&[])),
                    peak_rss_kib: crate::procs::peak_rss_kib(instance.pid()),
                    first_rss_kib: first_rss.get(name).copied().unwrap_or(0),
                    invocations: invocations.get(name).copied().unwrap_or(0),
                },
            );
            instance.stop().await;
        }
        Ok(LambdaResults {
            cold: BTreeMap::new(),
            warm,
            steady: steady_result,
            warm_seconds,
            journeys,
        })
    }
}

/// One cold start measured from the outside.
struct Cold {
    total: f64,
    init: f64,
    upload: f64,
    calls: Calls,
}

/// Cold starts of one program under one CPU share, each paired with a floor started just
/// before it under the same share.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ShareCold {
    /// Spawn to first answer, ms.
    pub total_ms: Vec<f64>,
    /// Spawn to the first `GET /next` (Node: to listening), ms.
    pub init_ms: Vec<f64>,
    /// The paired floor's first answer, ms.
    pub floor_ms: Vec<f64>,
    /// The paired floor's init, ms.
    pub floor_init_ms: Vec<f64>,
    /// Sum of the TLS handshakes' durations at the terminators (accept to handshake
    /// complete) during the cold start, ms.
    pub tls_ms: Vec<f64>,
    /// TLS connections opened during the cold start.
    pub tls_connections: Vec<f64>,
    /// ...of which resumed an earlier session.
    pub tls_resumed: Vec<f64>,
    /// First Secrets Manager connection accepted to last secret answered, ms (0: none).
    pub secrets_ms: Vec<f64>,
    /// The first invocation's network calls (first sample).
    pub calls: Calls,
}

impl ShareCold {
    /// Adds one cold start's TLS connections.
    fn push_handshakes(&mut self, handshakes: &[bff_testkit::tls::Handshake]) {
        self.tls_ms.push(
            handshakes
                .iter()
                .filter(|h| h.ok)
                .map(|h| ms(h.done.saturating_duration_since(h.accepted)))
                .sum(),
        );
        self.tls_connections.push(handshakes.len() as f64);
        self.tls_resumed
            .push(handshakes.iter().filter(|h| h.resumed).count() as f64);
    }
}

/// Cold starts under one memory size's CPU share.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ShareResult {
    /// The memory size, MB.
    pub memory_mb: u32,
    /// The cgroup's CPU quota per 100 ms period, µs.
    pub quota_us: u64,
    /// By program: the five functions (floor: the hello-world bootstrap) and `node-bff`
    /// (floor: a Node hello-world HTTP server).
    pub cold: BTreeMap<String, ShareCold>,
    /// Periods in which the cgroup was throttled during the run, and the time, ms.
    pub throttled_periods: u64,
    /// ...
    pub throttled_ms: f64,
}

impl Stack<'_> {
    /// `iterations` cold starts (after `warmup`) of every function and of the floor under
    /// each of `shares`, with the AWS endpoints behind TLS; and of the Node peer and its
    /// floor when given.
    pub async fn cold_shares(
        &self,
        shares: &[crate::share::Share],
        iterations: usize,
        warmup: usize,
        node: Option<&crate::nodecold::NodePeer>,
    ) -> Result<Vec<ShareResult>, String> {
        let tls = self
            .tls
            .ok_or("the cold starts under a CPU share need the stack behind TLS")?;
        let mut out = Vec::new();
        for share in shares {
            let (periods_before, throttled_before) = share.throttled();
            let mut result = ShareResult {
                memory_mb: share.memory_mb,
                quota_us: share.quota_us,
                ..ShareResult::default()
            };
            let shared = |name: &str| {
                let mut f = self.functions[name].clone();
                f.share = Some(share.clone());
                f
            };
            let hello = shared(HELLO);
            for i in 0..warmup + iterations {
                let mut journey = self.journey(200_000 + 1000 * share.memory_mb as usize + i);
                for function in FUNCTIONS {
                    // Every process starts with a whole period's quota, as in a fresh
                    // execution environment, not what the one before left of it.
                    let mut floor_journey = self.journey(i);
                    tokio::time::sleep(QUIET).await;
                    let (floor, _) = self.cold_timed(&hello, &mut floor_journey).await?;
                    tokio::time::sleep(QUIET).await;
                    let (cold, (from, to)) = self.cold_timed(&shared(function), &mut journey).await?;
                    let handshakes = tls.handshakes.between(from, to);
                    let secrets_from = handshakes
                        .iter()
                        .filter(|h| h.service == "secretsmanager")
                        .map(|h| h.accepted)
                        .min();
                    let secrets_to = self
                        .secrets
                        .1
                        .lock()
                        .map(|a| a.iter().filter(|t| **t >= from && **t <= to).max().copied())
                        .unwrap_or(None);
                    let secrets_ms = match (secrets_from, secrets_to) {
                        (Some(a), Some(b)) => ms(b.saturating_duration_since(a)),
                        _ => 0.0,
                    };
                    if i < warmup {
                        continue;
                    }
                    let entry = result.cold.entry(function.to_owned()).or_default();
                    if entry.total_ms.is_empty() {
                        entry.calls = cold.calls;
                    }
                    entry.total_ms.push(cold.total);
                    entry.init_ms.push(cold.init);
                    entry.floor_ms.push(floor.total);
                    entry.floor_init_ms.push(floor.init);
                    entry.push_handshakes(&handshakes);
                    entry.secrets_ms.push(secrets_ms);
                }
                if let Some(node) = node {
                    tokio::time::sleep(QUIET).await;
                    let floor = node.cold(share, false).await?;
                    tokio::time::sleep(QUIET).await;
                    let before = self.provider.requests().await;
                    let from = Instant::now();
                    let peer = node.cold(share, true).await?;
                    let handshakes = tls.handshakes.between(from, Instant::now());
                    let provider_calls = delta(&before, &self.provider.requests().await);
                    if i < warmup {
                        continue;
                    }
                    let entry = result.cold.entry("node-bff".to_owned()).or_default();
                    if entry.total_ms.is_empty() {
                        entry.calls.provider = provider_calls;
                    }
                    entry.total_ms.push(peer.0);
                    entry.init_ms.push(peer.1);
                    entry.floor_ms.push(floor.0);
                    entry.floor_init_ms.push(floor.1);
                    entry.push_handshakes(&handshakes);
                    entry.secrets_ms.push(0.0);
                }
            }
            let (periods_after, throttled_after) = share.throttled();
            result.throttled_periods = periods_after.saturating_sub(periods_before);
            result.throttled_ms = throttled_after.saturating_sub(throttled_before) as f64 / 1e6;
            for (name, c) in &result.cold {
                eprintln!(
                    "  {} MB {name}: first answer p50 {:.1} ms (floor {:.1}), init {:.1} (floor {:.1}), TLS {:.1} ms over {:.0} connections, secrets {:.1} ms",
                    share.memory_mb,
                    bff_bench::stats::median(&c.total_ms),
                    bff_bench::stats::median(&c.floor_ms),
                    bff_bench::stats::median(&c.init_ms),
                    bff_bench::stats::median(&c.floor_init_ms),
                    bff_bench::stats::median(&c.tls_ms),
                    bff_bench::stats::median(&c.tls_connections),
                    bff_bench::stats::median(&c.secrets_ms),
                );
            }
            out.push(result);
        }
        Ok(out)
    }
}

/// The pause before each start under a CPU share: two CFS periods, so the cgroup's quota is
/// whole again.
const QUIET: Duration = Duration::from_millis(2 * crate::share::PERIOD_US / 1000);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
