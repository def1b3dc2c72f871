//! The Node BFF's cold start, the peer of the functions' under the same CPU share: the
//! process started in the share's cgroup, until it listens (its init), then its first
//! answer to an API call with a session cookie from an earlier login (its sessions live in
//! the encrypted cookie, so a fresh process serves it). Its floor is a Node hello-world
//! HTTP server started the same way: the difference is the BFF's libraries (express,
//! express-openid-connect, http-proxy-middleware) and its first request's work.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bff_testkit::{Browser, Provider};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::procs::{free_port, start_ready};
use crate::share::Share;

/// A Node hello-world: answers every request with a small JSON body.
const NODE_HELLO: &str = "require('http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); \
    s.end('{\"hello\":\"world\"}'); }).listen(Number(process.env.PORT), '127.0.0.1', \
    () => process.stdout.write('READY {}\\n'));";

const SESSION_SECRET: &str = "a-long-random-benchmark-session-secret-0123456789";

/// The Node BFF's configuration and a logged-in session cookie for it.
pub struct NodePeer {
    port: u16,
    env: Vec<(String, String)>,
    cookie: String,
    log: PathBuf,
}

impl NodePeer {
    /// Registers the Node BFF at `provider`, starts it once unconfined and logs in through
    /// it for the session cookie the cold starts present. With `ca_file`, the provider is
    /// behind TLS and Node trusts that CA through `NODE_EXTRA_CA_CERTS` (its opt-in).
    pub async fn prepare(
        provider: &Provider,
        upstream: &str,
        logs: &Path,
        ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let client = provider.register(&origin, "client_secret_basic").await;
        let env: Vec<(String, String)> = [
            ("BFF_ISSUER", provider.issuer.as_str()),
            ("BFF_CLIENT_ID", client.client_id.as_str()),
            ("BFF_CLIENT_SECRET", client.client_secret.as_str()),
            ("BFF_PUBLIC_URL", origin.as_str()),
            ("BFF_UPSTREAM_URL", upstream),
            ("BFF_SESSION_SECRET", SESSION_SECRET),
            ("BFF_LISTEN", &format!("127.0.0.1:{port}")),
            ("NODE_ENV", "production"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(ca_file.map(|ca| ("NODE_EXTRA_CA_CERTS".to_owned(), ca.display().to_string())))
        .collect();
        let mut command = Command::new("node");
        command
            .arg(bff_bench::repo_root().join("bench/node-bff/server.js"))
            .arg("--exit-on-stdin-close")
            .envs(env.iter().cloned());
        let log = logs.join("node-bff-cold.log");
        let warm = start_ready("node BFF", command, Some(&log), Duration::from_secs(30)).await;
        let browser = match ca_file {
            Some(ca) => Browser::trusting(ca),
            None => Browser::new(),
        };
        let status = browser.login_at(&origin, "coldstart", "/").await.status();
        let cookie = crate::load::session_cookies(&browser, &origin, "appSession");
        warm.stop().await;
        if !status.is_redirection() || cookie.is_empty() {
            return Err(format!("node BFF login: callback answered {status}, cookie {cookie:?}"));
        }
        Ok(Self { port, env, cookie, log })
    }

    /// One cold start in `share`: the BFF (`bff`) or the hello-world; returns (first
    /// answer, init) in ms.
    pub async fn cold(&self, share: &Share, bff: bool) -> Result<(f64, f64), String> {
        let mut command = Command::new("node");
        if bff {
            command
                .arg(bff_bench::repo_root().join("bench/node-bff/server.js"))
                .envs(self.env.iter().cloned());
        } else {
            command
                .arg("-e")
                .arg(NODE_HELLO)
                .env("PORT", self.port.to_string())
                .env("NODE_ENV", "production");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let (spawned, child) = share.spawn(move || (Instant::now(), command.spawn()))?;
        let mut child = child.map_err(|e| format!("node: {e}"))?;
        if !share.holds(child.id().unwrap_or(0)) {
            return Err("node did not start in its CPU share's cgroup".into());
        }
        let stdout = child.stdout.take().ok_or("node stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("READY") {
                    return Some(Instant::now());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or("node did not print READY")?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{}", self.port);
        let request = if bff {
            client
                .get(format!("{base}/api/orders?status=open"))
                .header("cookie", &self.cookie)
                .header("x-csrf", "1")
        } else {
            client.get(format!("{base}/"))
        };
        let response = request.send().await.map_err(|e| format!("node first request: {e}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let answered = Instant::now();
        let _ = child.kill().await;
        let expected = if bff {
            bff_bench::upstream::BODY.as_bytes()
        } else {
            b"{\"hello\":\"world\"}"
        };
        if !status.is_success() || body.as_ref() != expected {
            return Err(format!(
                "node {}: first answer {status} {}",
                if bff { "BFF" } else { "hello" },
                String::from_utf8_lossy(&body)
            ));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok((
            ms(answered.saturating_duration_since(spawned)),
            ms(ready.saturating_duration_since(spawned)),
        ))
    }
}
