//! The proxy function's own binary under a Lambda Runtime API emulator that reads its
//! streamed answers frame by frame, as Lambda does for a `RESPONSE_STREAM` function URL.
//!
//! The emulator implements what the runtime talks to: `GET
//! /2018-06-01/runtime/invocation/next` (a function-URL event from the repository's
//! fixture `shared/tests/data/function_url_event.json`) and `POST
//! .../invocation/{id}/response` (the JSON prelude, eight NUL bytes, then the body, then
//! the trailers that report a mid-stream error). It hands every part to the test as it
//! arrives, one bounded channel deep, so the function meets back-pressure as it would in
//! Lambda. Init and invocation errors end the invocation as a failure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;

/// One part of a streamed answer, as the Runtime API received it.
#[derive(Debug)]
pub enum Part {
    /// The prelude: status, headers and cookies.
    Head(serde_json::Value),
    /// Body bytes.
    Data(Bytes),
    /// Trailers after the body (a mid-stream error's report).
    Trailers(HeaderMap),
    /// The answer was posted completely.
    End,
    /// The function failed: an invocation or init error, or a broken post.
    Failed(String),
}

/// An event to deliver, and where the answer's parts go.
type Queued = (Vec<u8>, mpsc::Sender<Part>);

#[derive(Default)]
struct Shared {
    events: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Queued>>>,
    answers: Mutex<HashMap<String, mpsc::Sender<Part>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A running proxy function with its Runtime API; the process is killed on drop.
pub struct ProxyFunction {
    events: mpsc::UnboundedSender<Queued>,
    child: Child,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ProxyFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

/// The proxy function's binary, built by the test command (`cargo build -p bff-proxy`).
pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    let path = target.join("debug/bff-proxy");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p bff-proxy` (infra/test.sh does)",
        path.display()
    );
    path
}

impl ProxyFunction {
    /// Starts the proxy function with `env` (its `BFF_*` configuration) against a new
    /// Runtime API, as a 128 MB Lambda execution environment.
    pub async fn start(env: &HashMap<&'static str, String>) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(Some(receiver)),
            ..Shared::default()
        });
        let router = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let address = listener.local_addr().expect("runtime API address").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "bff-proxy"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bff-proxy"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]test"),
            ("AWS_REGION", crate::dynamodb::REGION),
            ("AWS_ACCESS_KEY_ID", "dummykey"),
            ("AWS_SECRET_ACCESS_KEY", "dummysecret"),
            ("RUST_LOG", "warn"),
        ];
        let child = Command::new(binary())
            .env_clear()
            .envs(lambda)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the proxy function");
        Self { events, child, server }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Invokes the function with a function-URL `method` request for `path` with
    /// `headers`; the receiver yields the answer's parts as the function posts them.
    pub fn invoke(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> mpsc::Receiver<Part> {
        let fixture = crate::repo_root().join("shared/tests/data/function_url_event.json");
        let text = std::fs::read_to_string(&fixture).expect("event fixture");
        let text = text
            .replace("{{PATH}}", path)
            .replace("{{QUERY}}", "")
            .replace("{{METHOD}}", method)
            .replace("{{COOKIE}}", "a=b");
        let mut event: serde_json::Value = serde_json::from_str(&text).expect("event JSON");
        for (name, value) in headers {
            event["headers"][name.to_ascii_lowercase()] = (*value).into();
        }
        let (parts, answer) = mpsc::channel(1);
        let _ = self
            .events
            .send((serde_json::to_vec(&event).unwrap_or_default(), parts));
        answer
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let queued = {
        let mut events = shared.events.lock().await;
        match events.as_mut() {
            Some(events) => events.recv().await,
            None => None,
        }
    };
    let Some((event, parts)) = queued else {
        return StatusCode::GONE.into_response();
    };
    let n = shared.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("6c2f4d2e-0000-4000-8000-{n:012}");
    if let Ok(mut answers) = shared.answers.lock() {
        answers.insert(id.clone(), parts);
    }
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 900_000)
        .unwrap_or_default();
    (
        [
            ("content-type", "application/json".to_owned()),
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bff-proxy".to_owned(),
            ),
            ("lambda-runtime-trace-id", format!("Root=1-6743a1b2-{n:024x};Sampled=0")),
        ],
        event,
    )
        .into_response()
}

fn take(shared: &Shared, id: &str) -> Option<mpsc::Sender<Part>> {
    shared.answers.lock().ok().and_then(|mut answers| answers.remove(id))
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, request: Request) -> StatusCode {
    let Some(parts) = take(&shared, &id) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut body = request.into_body();
    // The prelude ends at the first eight NUL bytes; the body follows.
    let mut prelude: Option<Vec<u8>> = Some(Vec::new());
    loop {
        let part = match body.frame().await {
            None => Part::End,
            Some(Err(e)) => Part::Failed(format!("the answer's post broke off: {e}")),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match prelude.as_mut() {
                    Some(head) => {
                        head.extend_from_slice(&data);
                        let Some(at) = head.windows(8).position(|w| w == [0u8; 8]) else {
                            continue;
                        };
                        let json = serde_json::from_slice(&head[..at]).unwrap_or_default();
                        let rest = Bytes::copy_from_slice(&head[at + 8..]);
                        prelude = None;
                        if parts.send(Part::Head(json)).await.is_err() {
                            break;
                        }
                        if rest.is_empty() {
                            continue;
                        }
                        Part::Data(rest)
                    }
                    None => Part::Data(data),
                },
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => Part::Trailers(trailers),
                    Err(_) => continue,
                },
            },
        };
        let last = matches!(part, Part::End | Part::Failed(_));
        if parts.send(part).await.is_err() || last {
            break;
        }
    }
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    if let Some(parts) = take(&shared, &id) {
        let _ = parts
            .send(Part::Failed(format!(
                "invocation error: {}",
                String::from_utf8_lossy(&body)
            )))
            .await;
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let pending: Vec<_> = shared
        .answers
        .lock()
        .map(|mut answers| answers.drain().map(|(_, parts)| parts).collect())
        .unwrap_or_default();
    for parts in pending {
        let _ = parts
            .send(Part::Failed(format!("init error: {}", String::from_utf8_lossy(&body))))
            .await;
    }
    StatusCode::ACCEPTED
}
