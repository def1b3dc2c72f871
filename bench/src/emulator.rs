//! A Lambda Runtime API emulator and the function-URL events it delivers.
//!
//! It implements what a `provided.al2023` bootstrap talks to: `GET
//! /2018-06-01/runtime/invocation/next` (answered with the event and the
//! `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//! `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id` headers), `POST
//! .../invocation/{id}/response` (buffered JSON, or a streamed
//! `application/vnd.awslambda.http-integration-response` body: a JSON prelude, eight NUL
//! bytes, then the body), `POST .../invocation/{id}/error` and `POST .../init/error`.
//!
//! One emulator serves one function process, as one Lambda execution environment does:
//! it starts the release binary with the environment Lambda gives a bootstrap, hands it
//! queued events one at a time, and records when each answer was fully posted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// How long one invocation may take before the harness gives up on it.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The function's answer to one invocation, and when it came.
#[derive(Debug)]
pub struct Outcome {
    /// When `/next` handed the event over.
    pub delivered: Instant,
    /// When the answer's request line and headers had arrived (a streamed body follows).
    pub started: Instant,
    /// When the answer had been posted completely.
    pub received: Instant,
    /// HTTP status of the function-URL response.
    pub status: u16,
    /// Response headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// `Set-Cookie` values.
    pub cookies: Vec<String>,
    /// Response body.
    pub body: Vec<u8>,
}

impl Outcome {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `name=value` of the `Set-Cookie` for `name`, without attributes.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            let pair = c.split(';').next()?.trim();
            pair.strip_prefix(&format!("{name}="))
                .filter(|value| !value.is_empty())
                .map(|_| pair.to_owned())
        })
    }

    /// Time from delivery to the complete answer.
    pub fn duration(&self) -> Duration {
        self.received.saturating_duration_since(self.delivered)
    }
}

struct Queued {
    event: Vec<u8>,
    reply: oneshot::Sender<Result<Outcome, String>>,
}

struct InFlight {
    delivered: Instant,
    reply: oneshot::Sender<Result<Outcome, String>>,
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One Runtime API endpoint, for one function process.
pub struct RuntimeApi {
    /// `127.0.0.1:<port>`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    queue: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts an emulator on a free loopback port for function `name`.
    pub async fn start(name: &str) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{name}"),
            queue: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            first_next: Mutex::new(None),
            init_error: Mutex::new(None),
            next_id: std::sync::atomic::AtomicU64::new(1),
        });
        let router = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let address = listener.local_addr().expect("runtime API address").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            queue,
            shared,
            server,
        }
    }

    /// Queues `event`; the receiver yields the function's answer.
    pub fn enqueue(&self, event: Vec<u8>) -> oneshot::Receiver<Result<Outcome, String>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.queue.send(Queued { event, reply });
        answer
    }

    /// When the function first asked for an event (its init was over).
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.first_next.lock().ok().and_then(|t| *t)
    }

    fn init_error(&self) -> Option<String> {
        self.shared.init_error.lock().ok().and_then(|e| e.clone())
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    if let Ok(mut first) = shared.first_next.lock() {
        first.get_or_insert_with(Instant::now);
    }
    let queued = shared.queue.lock().await.recv().await;
    let Some(Queued { event, reply }) = queued else {
        return StatusCode::GONE.into_response();
    };
    let n = shared.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("5b1f3c1e-0000-4000-8000-{n:012}");
    let delivered = Instant::now();
    if let Ok(mut in_flight) = shared.in_flight.lock() {
        in_flight.insert(id.clone(), InFlight { delivered, reply });
    }
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put("content-type", "application/json".into());
    put("lambda-runtime-aws-request-id", id);
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put("lambda-runtime-invoked-function-arn", shared.function_arn.clone());
    put(
        "lambda-runtime-trace-id",
        format!("Root=1-6743a1b2-{n:024x};Parent={n:016x};Sampled=0"),
    );
    (StatusCode::OK, headers, event).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    request: axum::extract::Request,
) -> StatusCode {
    // The request line and headers are in; a streamed answer's body may still be coming.
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 32 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    let received = Instant::now();
    let Some(in_flight) = shared.in_flight.lock().ok().and_then(|mut m| m.remove(&id)) else {
        return StatusCode::BAD_REQUEST;
    };
    let streamed = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/vnd.awslambda.http-integration-response"));
    let parsed = parse_answer(&body, streamed).map(|(status, headers, cookies, body)| Outcome {
        delivered: in_flight.delivered,
        started,
        received,
        status,
        headers,
        cookies,
        body,
    });
    let _ = in_flight.reply.send(parsed);
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    if let Some(in_flight) = shared.in_flight.lock().ok().and_then(|mut m| m.remove(&id)) {
        let _ = in_flight
            .reply
            .send(Err(format!("invocation error: {}", String::from_utf8_lossy(&body))));
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if let Ok(mut slot) = shared.init_error.lock() {
        *slot = Some(String::from_utf8_lossy(&body).into_owned());
    }
    StatusCode::ACCEPTED
}

type Answer = (u16, Vec<(String, String)>, Vec<String>, Vec<u8>);

/// A function-URL answer: buffered JSON, or a streamed prelude + `\0 x 8` + body.
fn parse_answer(bytes: &[u8], streamed: bool) -> Result<Answer, String> {
    let (prelude, streamed_body) = if streamed {
        let at = bytes
            .windows(8)
            .position(|w| w == [0u8; 8])
            .ok_or("streamed answer without the prelude separator")?;
        (&bytes[..at], Some(bytes[at + 8..].to_vec()))
    } else {
        (bytes, None)
    };
    let json: serde_json::Value =
        serde_json::from_slice(prelude).map_err(|e| format!("unreadable function answer: {e}"))?;
    let status = json["statusCode"].as_u64().unwrap_or(200) as u16;
    let mut headers = Vec::new();
    if let Some(map) = json["headers"].as_object() {
        for (name, value) in map {
            headers.push((name.to_ascii_lowercase(), value.as_str().unwrap_or_default().to_owned()));
        }
    }
    if let Some(map) = json["multiValueHeaders"].as_object() {
        for (name, values) in map {
            for value in values.as_array().into_iter().flatten() {
                let pair = (name.to_ascii_lowercase(), value.as_str().unwrap_or_default().to_owned());
                if !headers.contains(&pair) {
                    headers.push(pair);
                }
            }
        }
    }
    let cookies = json["cookies"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let body = match streamed_body {
        Some(body) => body,
        None => {
            let text = json["body"].as_str().unwrap_or_default();
            if json["isBase64Encoded"].as_bool() == Some(true) {
                base64_decode(text)
            } else {
                text.as_bytes().to_vec()
            }
        }
    };
    Ok((status, headers, cookies, body))
}

/// Standard base64 (with or without padding); invalid input decodes to what was valid.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&c| c == byte) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// A function as Lambda would run it: its release binary and its configuration.
#[derive(Clone, Debug)]
pub struct Function {
    /// The function name (`bff-login`, ..., `bench-hello`).
    pub name: String,
    /// The release binary (deployed as `bootstrap`).
    pub binary: PathBuf,
    /// Its environment besides what Lambda itself sets (the `BFF_*` configuration).
    pub env: Vec<(String, String)>,
    /// The memory size's CPU share it runs in; `None`: unconfined, 128 MB announced.
    pub share: Option<crate::share::Share>,
}

impl Function {
    /// The environment of a `provided.al2023` bootstrap with 128 MB, plus the function's
    /// own, with `AWS_LAMBDA_RUNTIME_API` pointing at `api`.
    fn environment(&self, api: &RuntimeApi) -> Vec<(String, String)> {
        let memory = self.share.as_ref().map_or(128, |s| s.memory_mb).to_string();
        let task_root = self.binary.parent().unwrap_or(Path::new("/")).display().to_string();
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_RUNTIME_API", api.address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.as_str()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.as_str()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]bench"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "benchkey"),
            ("AWS_SECRET_ACCESS_KEY", "benchsecret"),
            ("AWS_SESSION_TOKEN", "benchsession"),
            ("_HANDLER", "bootstrap"),
            ("LAMBDA_TASK_ROOT", task_root.as_str()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
            ("TZ", ":UTC"),
            ("LANG", "en_US.UTF-8"),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(self.env.iter().cloned());
        env
    }

    /// Starts the binary against `api`, its output appended to `log`, in its CPU share if
    /// it has one; returns it with the instant just before the spawn.
    pub fn spawn(&self, api: &RuntimeApi, log: &Path) -> (Child, Instant) {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        let errors = output.try_clone().expect("log file handle");
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .envs(self.environment(api))
            .current_dir(self.binary.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .kill_on_drop(true);
        let mut start = move || (Instant::now(), command.spawn());
        let (spawned, child) = match &self.share {
            Some(share) => share
                .spawn(start)
                .unwrap_or_else(|e| panic!("cannot start {} in its CPU share: {e}", self.binary.display())),
            None => start(),
        };
        let child = child.unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        if let Some(share) = &self.share
            && !share.holds(child.id().unwrap_or(0))
        {
            panic!("{} did not start in its CPU share's cgroup", self.binary.display());
        }
        (child, spawned)
    }
}

/// A function process with its emulator: one warm execution environment.
pub struct Instance {
    /// The function.
    pub function: Function,
    /// Its Runtime API.
    pub api: RuntimeApi,
    /// The process.
    pub child: Child,
    /// When it was spawned.
    pub spawned: Instant,
    log: PathBuf,
}

impl Instance {
    /// Starts a fresh execution environment for `function` (nothing is invoked yet).
    pub async fn start(function: &Function, log: &Path) -> Self {
        let api = RuntimeApi::start(&function.name).await;
        let (child, spawned) = function.spawn(&api, log);
        Self {
            function: function.clone(),
            api,
            child,
            spawned,
            log: log.to_path_buf(),
        }
    }

    /// A cold start: queues `event` first, then spawns the process, and returns the
    /// answer to that first event, with the instance ready for more.
    pub async fn cold(function: &Function, log: &Path, event: Vec<u8>) -> Result<(Self, Outcome), String> {
        let api = RuntimeApi::start(&function.name).await;
        let answer = api.enqueue(event);
        let (child, spawned) = function.spawn(&api, log);
        let mut instance = Self {
            function: function.clone(),
            api,
            child,
            spawned,
            log: log.to_path_buf(),
        };
        let outcome = instance.wait(answer).await?;
        Ok((instance, outcome))
    }

    /// Invokes the warm instance with `event`.
    pub async fn invoke(&mut self, event: Vec<u8>) -> Result<Outcome, String> {
        let answer = self.api.enqueue(event);
        self.wait(answer).await
    }

    async fn wait(&mut self, answer: oneshot::Receiver<Result<Outcome, String>>) -> Result<Outcome, String> {
        let name = self.function.name.clone();
        tokio::select! {
            answer = tokio::time::timeout(INVOCATION_TIMEOUT, answer) => match answer {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(format!("{name}: the emulator dropped the invocation")),
                Err(_) => Err(format!("{name}: no answer within {INVOCATION_TIMEOUT:?} (log: {})", self.log.display())),
            },
            status = self.child.wait() => Err(format!(
                "{name} exited ({status:?}) before answering; init error: {:?} (log: {})",
                self.api.init_error(),
                self.log.display()
            )),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Ends the execution environment.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Builds function-URL events from the repository's fixture
/// (`shared/tests/data/function_url_event.json`).
#[derive(Clone)]
pub struct Events {
    template: serde_json::Value,
    /// Header every event carries (CloudFront's origin-verify proof), when configured.
    pub origin_verify: Option<String>,
}

/// One request as a function URL delivers it.
#[derive(Default, Clone, Debug)]
pub struct Call {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path (`/auth/login`).
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    /// `name=value` cookies.
    pub cookies: Vec<String>,
    /// Extra headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body, sent as text.
    pub body: Option<String>,
}

impl Call {
    /// A `GET` of `path` with `query`.
    pub fn get(path: &str, query: &str) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            ..Self::default()
        }
    }

    /// With a cookie (`name=value`).
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookies.push(cookie.into());
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

impl Events {
    /// Reads the fixture from the repository.
    pub fn load(origin_verify: Option<String>) -> Self {
        let path = bff_bench::repo_root().join("shared/tests/data/function_url_event.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = text
            .replace("{{PATH}}", "/")
            .replace("{{QUERY}}", "")
            .replace("{{METHOD}}", "GET")
            .replace("{{COOKIE}}", "");
        let template = serde_json::from_str(&text).expect("the event fixture is JSON");
        Self {
            template,
            origin_verify,
        }
    }

    /// The event for `call`, as JSON bytes.
    pub fn event(&self, call: &Call) -> Vec<u8> {
        let mut event = self.template.clone();
        event["rawPath"] = call.path.clone().into();
        event["rawQueryString"] = call.query.clone().into();
        event["requestContext"]["http"]["method"] = call.method.clone().into();
        event["requestContext"]["http"]["path"] = call.path.clone().into();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        event["requestContext"]["timeEpoch"] = now.into();
        let mut cookies = vec![serde_json::Value::from("theme=dark")];
        cookies.extend(call.cookies.iter().map(|c| serde_json::Value::from(c.as_str())));
        event["cookies"] = cookies.into();
        if let Some(headers) = event["headers"].as_object_mut() {
            if let Some(value) = &self.origin_verify {
                headers.insert("x-origin-verify".into(), value.clone().into());
            }
            for (name, value) in &call.headers {
                headers.insert(name.clone(), value.clone().into());
            }
        }
        match &call.body {
            Some(body) => {
                event["body"] = body.clone().into();
                event["isBase64Encoded"] = false.into();
            }
            None => {
                if let Some(map) = event.as_object_mut() {
                    map.remove("body");
                }
            }
        }
        serde_json::to_vec(&event).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_answers_split_at_the_prelude_separator() {
        let mut bytes = br#"{"statusCode":201,"headers":{"X-A":"1"},"cookies":["a=b; Path=/"]}"#.to_vec();
        bytes.extend([0u8; 8]);
        bytes.extend(b"body");
        let (status, headers, cookies, body) = parse_answer(&bytes, true).expect("parsed");
        assert_eq!(status, 201);
        assert_eq!(headers, [("x-a".to_owned(), "1".to_owned())]);
        assert_eq!(cookies, ["a=b; Path=/"]);
        assert_eq!(body, b"body");
    }

    #[test]
    fn buffered_answers_may_be_base64() {
        let json = br#"{"statusCode":200,"body":"aGVsbG8=","isBase64Encoded":true}"#;
        let (status, _, _, body) = parse_answer(json, false).expect("parsed");
        assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
    }
}
