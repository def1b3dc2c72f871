//! A recording resource API: remembers every request it gets and answers with an echo.
//! `/slow` answers after 3 s (timeouts), `/bytes` echoes the body as binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Seen {
    /// Every value of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The bearer token sent, if exactly one `Authorization: Bearer` header came.
    pub fn bearer(&self) -> Option<&str> {
        match self.header("authorization").as_slice() {
            [one] => one.strip_prefix("Bearer "),
            _ => None,
        }
    }
}

/// The running upstream and what it saw.
#[derive(Clone)]
pub struct Upstream {
    /// Base URL (with a path, to test that calls stay below it).
    pub base: String,
    /// Requests received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    rules: Arc<Mutex<Rules>>,
}

#[derive(Default)]
struct Rules {
    rejected: Vec<String>,
    reject_all: bool,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    rules: Arc<Mutex<Rules>>,
}

impl Upstream {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(Rules::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let base = format!("http://{}/v1/", listener.local_addr().expect("addr"));
        let shared = Shared {
            seen: seen.clone(),
            rules: rules.clone(),
        };
        let router = axum::Router::new().fallback(record).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, seen, rules }
    }

    /// Answers 401 to calls bearing `token` from now on.
    pub fn reject(&self, token: &str) {
        self.rules.lock().expect("lock").rejected.push(token.to_owned());
    }

    /// Answers 401 to every call from now on.
    pub fn reject_all(&self) {
        self.rules.lock().expect("lock").reject_all = true;
    }

    /// Everything seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn record(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let entry = Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("<binary>").to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let bearer = entry.bearer().map(str::to_owned);
    shared.seen.lock().expect("lock").push(entry);
    let refused = {
        let rules = shared.rules.lock().expect("lock");
        rules.reject_all || bearer.is_some_and(|b| rules.rejected.contains(&b))
    };
    if refused {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer error=\"invalid_token\"")],
        )
            .into_response();
    }
    let path = parts.uri.path();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if path.ends_with("/bytes") {
        return (
            [
                ("content-type", "application/octet-stream"),
                ("set-cookie", "upstream=1"),
            ],
            body,
        )
            .into_response();
    }
    let echo = serde_json::json!({ "method": parts.method.as_str(), "uri": parts.uri.to_string() });
    (
        [
            ("content-type", "application/json"),
            ("set-cookie", "upstream=1"),
            ("x-upstream", "yes"),
        ],
        echo.to_string(),
    )
        .into_response()
}
