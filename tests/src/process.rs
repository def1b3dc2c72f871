//! `bff-local` as a separate operating-system process: independent BFF instances that
//! share nothing but the DynamoDB table, as Lambda instances do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `bff-local` process, killed on drop.
pub struct BffProcess {
    /// Its origin (`http://127.0.0.1:<port>`).
    pub url: String,
    child: Child,
}

impl Drop for BffProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BffProcess {
    /// Sends it SIGTERM, as a process manager stopping it does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Whether it has exited within `limit`.
    pub async fn exited_within(&mut self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// The `bff-local` binary the test command builds before the tests run.
pub fn binary() -> PathBuf {
    built("bff-local")
}

/// The debug build of the workspace binary `name` (`bff-local`, `bff-admin`), which the
/// test command builds before the tests run.
pub fn built(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p {name}` (infra/test.sh does)",
        path.display()
    );
    path
}

/// Starts `bff-local` with `env` (the `BFF_*` configuration) on the DynamoDB `table`.
pub async fn spawn(env: &HashMap<&'static str, String>, table: &str) -> BffProcess {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let child = Command::new(binary())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("BFF_STORE", "dynamodb")
        .env("BFF_TABLE", table)
        .env("BFF_LISTEN", addr.to_string())
        .env("AWS_ENDPOINT_URL_DYNAMODB", crate::dynamodb::endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "dummykey")
        .env("AWS_SECRET_ACCESS_KEY", "dummysecret")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start bff-local");
    let process = BffProcess {
        url: format!("http://{addr}"),
        child,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{}/auth/me", process.url)).send().await.is_ok() {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bff-local did not start at {}", process.url);
}
