//! A local AWS KMS for the `private_key_jwt` tests: `moto` in server mode, one per test
//! process.
//!
//! moto's KMS creates real key pairs (RSA and ECC) and signs with them, so a signature it
//! returns verifies with the public key it gives (`GetPublicKey`), and its `Verify` checks
//! signatures for real. `infra/test.sh` installs it from PyPI into `.local/moto-venv`
//! (`infra/lib.sh`'s `ensure_moto`). It is started through a small Python wrapper that
//! exits when its stdin closes, so it never outlives the test process. Clients built here
//! use the local endpoint and dummy static credentials only: nothing reaches AWS.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::config::Credentials;

/// The moto installation `infra/lib.sh`'s `ensure_moto` makes.
pub fn python() -> PathBuf {
    crate::repo_root().join(".local/moto-venv/bin/python")
}

/// Runs moto's server on 127.0.0.1 on a free port, and exits when stdin closes.
const WRAPPER: &str = r#"
import os, sys, threading
def watch():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", "0"])
"#;

struct LocalKms {
    endpoint: String,
    _stdin: ChildStdin,
    _child: Child,
}

static LOCAL: OnceLock<LocalKms> = OnceLock::new();

/// The endpoint of this process's moto server, started on first use (blocks for a few
/// seconds; call it through `spawn_blocking` from async code).
pub fn endpoint() -> String {
    LOCAL.get_or_init(start).endpoint.clone()
}

fn start() -> LocalKms {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: install moto with `bash infra/test.sh` (or: source infra/lib.sh; ensure_moto)",
        python.display()
    );
    let mut child = Command::new(&python)
        .args(["-c", WRAPPER])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moto");
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    let endpoint = loop {
        line.clear();
        let read = stderr.read_line(&mut line).expect("moto output");
        assert!(read > 0, "moto exited before it served");
        if let Some(at) = line.find("Running on http://127.0.0.1:") {
            break line[at + "Running on ".len()..].trim().to_owned();
        }
    };
    // Keep reading its log, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    LocalKms {
        endpoint,
        _stdin: stdin,
        _child: child,
    }
}

/// An AWS configuration pointing KMS at the local server, with dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    let endpoint = tokio::task::spawn_blocking(endpoint)
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kms::config::SharedCredentialsProvider::new(Credentials::new(
            "dummykey",
            "dummysecret",
            None,
            None,
            "bff-tests",
        )))
        .http_client(bff::platform::aws::https_client(false))
        .build()
}
