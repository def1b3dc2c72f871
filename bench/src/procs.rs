//! Child processes of the harness: started with a `READY` line to wait for, killed when
//! dropped, and measured through `/proc`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// A child process, stopped when dropped: its stdin is closed first (the Node launchers,
/// started with `--exit-on-stdin-close`, then stop what they started, such as DynamoDB
/// Local's Java process), and it is killed only if it has not exited shortly after.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its stdin, kept open while the process should run.
    pub stdin: Option<ChildStdin>,
    /// What it printed after `READY ` (JSON for the Node scripts, a URL for the upstream).
    pub ready: String,
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Peak resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid())
    }

    /// Closes its stdin, waits up to five seconds for it to exit, then kills it.
    pub async fn stop(mut self) {
        self.stdin.take();
        if tokio::time::timeout(GRACE, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// How long a stopped process may take to exit before it is killed.
const GRACE: Duration = Duration::from_secs(5);

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin.take();
        let deadline = std::time::Instant::now() + GRACE;
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.start_kill();
    }
}

/// Starts `command` with stdin piped, stderr to `log` (or inherited), and waits up to
/// `timeout` for a stdout line starting with `READY `.
pub async fn start_ready(name: &str, mut command: Command, log: Option<&Path>, timeout: Duration) -> Proc {
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    match log.and_then(|path| std::fs::File::create(path).ok()) {
        Some(file) => command.stderr(file),
        None => command.stderr(Stdio::inherit()),
    };
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("READY ") {
                return Some(rest.to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("{name} did not start (no READY line within {timeout:?}); see {log:?}"));
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Proc { child, stdin, ready }
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB; 0 when unreadable.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`) of process `pid`, in KiB; 0 when unreadable.
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until `url` answers anything over HTTP, or panics after `timeout`.
pub async fn wait_http(url: &str, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer within {timeout:?}");
}
