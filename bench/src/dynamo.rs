//! DynamoDB Local (from `infra/dynamodb-local.mjs`) behind a counting proxy: the Lambda
//! functions reach the store through `AWS_ENDPOINT_URL_DYNAMODB` pointing at the proxy,
//! which counts every operation by its `X-Amz-Target` before forwarding it unchanged, and
//! records every `GetItem` and `PutItem` by key (`Key.pk.S`, `Item.pk.S`) with its time,
//! consistency and item size, for the hot-key simulation (`bff-bench hotkeys`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::process::Command;

use crate::procs::{Proc, start_ready};

/// Store operations counted so far, by DynamoDB operation name (`GetItem`, `PutItem`, ...).
pub type OpCounts = bff_bench::Counts;

/// One `GetItem` or `PutItem` through the proxy.
#[derive(Clone, Debug)]
pub struct KeyAccess {
    /// When the proxy received it, ms since the Unix epoch.
    pub at_ms: u64,
    /// `GetItem` or `PutItem`.
    pub operation: String,
    /// The table.
    pub table: String,
    /// The item's partition key.
    pub pk: String,
    /// A strongly consistent read (`ConsistentRead: true`).
    pub consistent: bool,
    /// The item's size as DynamoDB bills it (attribute names and values), bytes: the item
    /// read (0 when absent) or written.
    pub item_bytes: usize,
}

/// DynamoDB Local and the counting proxy in front of it.
pub struct Dynamo {
    /// DynamoDB Local's own endpoint.
    pub direct: String,
    /// The counting proxy's endpoint: what the functions are given.
    pub counted: String,
    counts: Arc<Mutex<OpCounts>>,
    accesses: Arc<Mutex<Vec<KeyAccess>>>,
    _engine: Proc,
}

#[derive(Clone)]
struct Shared {
    target: String,
    http: reqwest::Client,
    counts: Arc<Mutex<OpCounts>>,
    accesses: Arc<Mutex<Vec<KeyAccess>>>,
}

impl Dynamo {
    /// Starts DynamoDB Local and the proxy.
    pub async fn start(log_dir: &std::path::Path) -> Self {
        let mut command = Command::new("node");
        command
            .arg(bff_bench::repo_root().join("infra/dynamodb-local.mjs"))
            .args(["--port", "0", "--exit-on-stdin-close"]);
        let engine = start_ready(
            "DynamoDB Local",
            command,
            Some(&log_dir.join("dynamodb-local.log")),
            Duration::from_secs(60),
        )
        .await;
        let ready: serde_json::Value = serde_json::from_str(&engine.ready).expect("READY json");
        let direct = ready["endpoint"].as_str().expect("endpoint").to_owned();

        let counts = Arc::new(Mutex::new(OpCounts::new()));
        let accesses = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            target: direct.clone(),
            http: reqwest::Client::new(),
            counts: counts.clone(),
            accesses: accesses.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let counted = format!("http://{}", listener.local_addr().expect("proxy address"));
        let router = axum::Router::new().fallback(forward).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            direct,
            counted,
            counts,
            accesses,
            _engine: engine,
        }
    }

    /// A snapshot of the counts.
    pub fn counts(&self) -> OpCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The `GetItem`s and `PutItem`s on `table` received in `[from_ms, to_ms]`.
    pub fn accesses(&self, table: &str, from_ms: u64, to_ms: u64) -> Vec<KeyAccess> {
        self.accesses
            .lock()
            .map(|all| {
                all.iter()
                    .filter(|a| a.table == table && (from_ms..=to_ms).contains(&a.at_ms))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An item's size as DynamoDB counts it for capacity: each attribute's name plus its
/// value (strings and binary by length, numbers about one byte per two digits plus one,
/// booleans and nulls one byte).
pub fn item_size(item: &serde_json::Map<String, serde_json::Value>) -> usize {
    item.iter()
        .map(|(name, value)| {
            let value = value
                .as_object()
                .and_then(|typed| typed.iter().next())
                .map(|(kind, v)| (kind.as_str(), v));
            name.len()
                + match value {
                    Some(("S" | "B", serde_json::Value::String(text))) => text.len(),
                    Some(("N", serde_json::Value::String(number))) => {
                        number.trim_start_matches('-').len().div_ceil(2) + 1
                    }
                    Some(("BOOL" | "NULL", _)) => 1,
                    Some((_, other)) => other.to_string().len(),
                    None => 0,
                }
        })
        .sum()
}

/// The key access `body` (a `GetItem` or `PutItem` request) describes; `None` for other
/// operations or a body that is not one.
fn access_of(operation: &str, body: &[u8]) -> Option<KeyAccess> {
    let field = match operation {
        "GetItem" => "Key",
        "PutItem" => "Item",
        _ => return None,
    };
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let item = json[field].as_object()?;
    Some(KeyAccess {
        at_ms: epoch_ms(),
        operation: operation.to_owned(),
        table: json["TableName"].as_str()?.to_owned(),
        pk: json[field]["pk"]["S"].as_str()?.to_owned(),
        consistent: json["ConsistentRead"].as_bool() == Some(true),
        item_bytes: if operation == "PutItem" { item_size(item) } else { 0 },
    })
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("(none)")
        .to_owned();
    if let Ok(mut counts) = shared.counts.lock() {
        *counts.entry(operation.clone()).or_default() += 1;
    }
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut access = access_of(&operation, &body);
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding") {
            headers.append(name.clone(), value.clone());
        }
    }
    let sent = shared
        .http
        .request(parts.method, format!("{}{path}", shared.target))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding") {
            headers.append(name.clone(), value.clone());
        }
    }
    let bytes: Bytes = answer.bytes().await.unwrap_or_default();
    if let Some(mut access) = access.take() {
        if access.operation == "GetItem"
            && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(item) = json["Item"].as_object()
        {
            access.item_bytes = item_size(item);
        }
        if let Ok(mut accesses) = shared.accesses.lock() {
            accesses.push(access);
        }
    }
    (status, headers, bytes).into_response()
}

/// Creates the functions' table on DynamoDB Local directly (the definition of
/// `bff::store::dynamodb::create_table` and the SAM template: `pk` hash key, the `sid` and
/// `sub` keys-only indexes, on-demand), for runs without the `bff-local` binary. DynamoDB
/// Local checks the form of the signature, not its value.
pub async fn create_table(endpoint: &str, table: &str) -> Result<(), String> {
    let index = |name: &str, key: &str| {
        serde_json::json!({
            "IndexName": name,
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        })
    };
    let call = |target: &str, body: serde_json::Value| {
        reqwest::Client::new()
            .post(endpoint)
            .header("x-amz-target", format!("DynamoDB_20120810.{target}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=benchkey/20260101/eu-west-1/dynamodb/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=00",
            )
            .header("x-amz-date", "20260101T000000Z")
            .body(body.to_string())
            .send()
    };
    let created = call(
        "CreateTable",
        serde_json::json!({
            "TableName": table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sid", "AttributeType": "S"},
                {"AttributeName": "sub", "AttributeType": "S"},
            ],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [index("sid-index", "sid"), index("sub-index", "sub")],
        }),
    )
    .await
    .map_err(|e| format!("CreateTable: {e}"))?;
    let status = created.status();
    let text = created.text().await.unwrap_or_default();
    if !status.is_success() && !text.contains("ResourceInUseException") {
        return Err(format!("CreateTable: {status} {text}"));
    }
    let ttl = call(
        "UpdateTimeToLive",
        serde_json::json!({
            "TableName": table,
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": true},
        }),
    )
    .await
    .map_err(|e| format!("UpdateTimeToLive: {e}"))?;
    let _ = ttl.text().await;
    Ok(())
}
