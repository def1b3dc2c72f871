//! `bff-local` as a separate process whose standard output and standard error are kept
//! in memory, so a test can read every log line the BFF wrote (to prove no secret is in
//! one, or that nothing panicked) and choose the DynamoDB endpoint it talks to.
//!
//! [`crate::process::spawn`] is the plain variant (output inherited, the shared DynamoDB
//! Local); this one owns its output and its store settings. Every process started here is
//! killed when its handle is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The store a captured `bff-local` runs on.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// The embedded in-memory store.
    Memory,
    /// DynamoDB (Local) at `endpoint`, on `table` (created by `bff-local` when missing).
    Dynamo {
        /// The DynamoDB endpoint, e.g. `http://127.0.0.1:8000`.
        endpoint: String,
        /// The table name.
        table: String,
    },
}

/// A running `bff-local` whose output is kept; killed on drop.
pub struct CapturedBff {
    /// Its origin (`http://127.0.0.1:<port>`).
    pub url: String,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl CapturedBff {
    /// Everything the process wrote so far (stdout and stderr, line by line), with
    /// terminal colour codes removed.
    pub fn output(&self) -> String {
        let bytes = self.output.lock().map(|b| b.clone()).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process and returns everything it wrote.
    pub fn stop(mut self) -> String {
        self.kill_and_drain();
        self.output()
    }

    fn kill_and_drain(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for CapturedBff {
    fn drop(&mut self) {
        self.kill_and_drain();
    }
}

/// A free loopback address for a BFF to listen on. Chosen before the BFF starts, so the
/// test can register `http://<addr>` as the BFF's public origin at the provider first.
pub fn free_listen_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("addr")
}

fn command(env: &HashMap<&'static str, String>, store: &StoreBackend, rust_log: &str) -> Command {
    let mut command = Command::new(crate::process::binary());
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", rust_log)
        .env("AWS_REGION", crate::dynamodb::REGION)
        .env("AWS_ACCESS_KEY_ID", "dummykey")
        .env("AWS_SECRET_ACCESS_KEY", "dummysecret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match store {
        StoreBackend::Memory => {
            command.env("BFF_STORE", "memory");
        }
        StoreBackend::Dynamo { endpoint, table } => {
            command
                .env("BFF_STORE", "dynamodb")
                .env("BFF_TABLE", table)
                .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint);
        }
    }
    command
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Ok(mut all) = into.lock() {
                        all.extend_from_slice(&line);
                    }
                }
            }
        }
    })
}

/// Starts `bff-local` on `listen` with `env` (the `BFF_*` configuration), `store` and the
/// log filter `rust_log`, and waits until it answers HTTP.
pub async fn spawn(
    env: &HashMap<&'static str, String>,
    store: StoreBackend,
    listen: SocketAddr,
    rust_log: &str,
) -> CapturedBff {
    let mut child = command(env, &store, rust_log)
        .env("BFF_LISTEN", listen.to_string())
        .spawn()
        .expect("start bff-local");
    let output = Arc::new(Mutex::new(Vec::new()));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        panic!("bff-local's output pipes were not created");
    };
    let readers = vec![collect(stdout, output.clone()), collect(stderr, output.clone())];
    let mut process = CapturedBff {
        url: format!("http://{listen}"),
        child,
        output,
        readers,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if client.get(format!("{}/auth/me", process.url)).send().await.is_ok() {
            return process;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            process.kill_and_drain();
            panic!("bff-local exited at start ({status}): {}", process.output());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process.kill_and_drain();
    panic!("bff-local did not start at {}: {}", process.url, process.output());
}

/// Runs `bff-local` with `env` on the memory store, expecting it to stop by itself (a
/// refused configuration); returns its exit status and everything it wrote. Panics if it
/// is still running after `within`.
pub fn run_to_exit(env: &HashMap<&'static str, String>, within: Duration) -> (ExitStatus, String) {
    let listen = free_listen_addr();
    let mut child = command(env, &StoreBackend::Memory, "info")
        .env("BFF_LISTEN", listen.to_string())
        .spawn()
        .expect("start bff-local");
    let output = Arc::new(Mutex::new(Vec::new()));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        panic!("bff-local's output pipes were not created");
    };
    let readers = [collect(stdout, output.clone()), collect(stderr, output.clone())];
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bff-local kept running with a configuration it should refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for reader in readers {
        let _ = reader.join();
    }
    let bytes = output.lock().map(|b| b.clone()).unwrap_or_default();
    (status, strip_ansi(&String::from_utf8_lossy(&bytes)))
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
