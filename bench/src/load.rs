//! Proxy overhead and throughput: `wrk` against the upstream directly, against a bare
//! pass-through in front of it (`bff-bench passthrough`: the floor of any proxy here),
//! against `bff-local` in front of it, and against the Node BFF in front of it, at several
//! concurrencies, interleaved so the machine's background load hits every contender alike.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bff_bench::stats::median;
use bff_testkit::{Browser, Provider};
use tokio::process::Command;

use crate::procs::{Proc, free_port, peak_rss_kib, start_ready, wait_http};

/// Reports what `wrk` measured as one JSON line (latencies in microseconds).
pub(crate) const REPORT_SCRIPT: &str = r#"done = function(summary, latency, requests)
  io.write(string.format(
    "WRK {\"requests\":%d,\"duration_us\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50\":%d,\"p90\":%d,\"p99\":%d,\"max\":%d}\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#;

/// One `wrk` run.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Run {
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Requests that failed (connection errors, timeouts, non-2xx/3xx answers).
    pub errors: u64,
    /// Requests completed.
    pub requests: u64,
    /// Server CPU time per request, microseconds (user + system of the server process).
    pub cpu_us_per_request: f64,
}

/// The medians of repeated runs of one contender at one concurrency.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// The runs.
    pub runs: Vec<Run>,
}

impl Cell {
    /// Median of `f` over the runs.
    pub fn median(&self, f: impl Fn(&Run) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }

    /// Failed requests over all runs.
    pub fn errors(&self) -> u64 {
        self.runs.iter().map(|r| r.errors).sum()
    }

    /// Requests over all runs.
    pub fn requests(&self) -> u64 {
        self.runs.iter().map(|r| r.requests).sum()
    }
}

/// Everything the load phase measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadResults {
    /// `contender@concurrency` to runs; contenders are `direct`, `passthrough`,
    /// `bff-local`, `node`.
    pub cells: BTreeMap<String, Cell>,
    /// Peak RSS by contender (KiB): `bff-local`, `node`, `upstream`.
    pub peak_rss_kib: BTreeMap<String, u64>,
    /// Seconds per run.
    pub seconds: u64,
    /// Repetitions.
    pub reps: usize,
    /// Concurrencies.
    pub concurrencies: Vec<u32>,
    /// The exact `wrk` command line used for `bff-local` at the highest concurrency.
    pub example_command: String,
}

/// A contender: where to send requests and what to send.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) url: String,
    pub(crate) headers: Vec<String>,
    pub(crate) pid: u32,
}

/// Runs the load phase. `upstream` is the upstream's base URL, `upstream_pid` its process.
pub async fn run(
    provider: &Provider,
    upstream: &str,
    upstream_pid: u32,
    bff_local_binary: &Path,
    logs: &Path,
    seconds: u64,
    reps: usize,
) -> Result<LoadResults, String> {
    let script = logs.join("report.lua");
    std::fs::write(&script, REPORT_SCRIPT).map_err(|e| e.to_string())?;

    // bff-local with the embedded store, as `infra/dev.sh` runs it.
    let bff_port = free_port();
    let bff_origin = format!("http://127.0.0.1:{bff_port}");
    let bff_client = provider.register(&bff_origin, "client_secret_basic").await;
    let bff_log = std::fs::File::create(logs.join("bff-local.log")).map_err(|e| e.to_string())?;
    let mut bff = Command::new(bff_local_binary);
    bff.env_clear()
        .envs([
            ("BFF_ISSUER", provider.issuer.as_str()),
            ("BFF_CLIENT_ID", bff_client.client_id.as_str()),
            ("BFF_CLIENT_SECRET", bff_client.client_secret.as_str()),
            ("BFF_PUBLIC_URL", bff_origin.as_str()),
            ("BFF_UPSTREAM_URL", upstream),
            ("BFF_TOKEN_KEYS", bff_bench::BENCH_TOKEN_KEYS),
            ("BFF_STORE", "memory"),
            ("BFF_LISTEN", &format!("127.0.0.1:{bff_port}")),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(bff_log.try_clone().map_err(|e| e.to_string())?)
        .stderr(bff_log)
        .kill_on_drop(true);
    let mut bff = bff.spawn().map_err(|e| format!("bff-local: {e}"))?;
    wait_http(&format!("{bff_origin}/auth/me"), Duration::from_secs(20)).await;

    // The Node BFF.
    let node_port = free_port();
    let node_origin = format!("http://127.0.0.1:{node_port}");
    let node_client = provider.register(&node_origin, "client_secret_basic").await;
    let mut node = Command::new("node");
    node.arg(bff_bench::repo_root().join("bench/node-bff/server.js"))
        .arg("--exit-on-stdin-close")
        .envs([
            ("BFF_ISSUER", provider.issuer.as_str()),
            ("BFF_CLIENT_ID", node_client.client_id.as_str()),
            ("BFF_CLIENT_SECRET", node_client.client_secret.as_str()),
            ("BFF_PUBLIC_URL", node_origin.as_str()),
            ("BFF_UPSTREAM_URL", upstream),
            (
                "BFF_SESSION_SECRET",
                "a-long-random-benchmark-session-secret-0123456789",
            ),
            ("BFF_LISTEN", &format!("127.0.0.1:{node_port}")),
            ("NODE_ENV", "production"),
        ]);
    let node: Proc = start_ready(
        "node BFF",
        node,
        Some(&logs.join("node-bff.log")),
        Duration::from_secs(30),
    )
    .await;

    // One logged-in browser each.
    let bff_browser = Browser::new();
    let status = bff_browser.login_at(&bff_origin, "loadtest", "/").await.status();
    if !status.is_redirection() {
        return Err(format!("bff-local login: callback answered {status}"));
    }
    let bff_cookie = session_cookies(&bff_browser, &bff_origin, "bff-session=");
    let node_browser = Browser::new();
    let status = node_browser.login_at(&node_origin, "loadtest", "/").await.status();
    if !status.is_redirection() {
        return Err(format!("node BFF login: callback answered {status}"));
    }
    let node_cookie = session_cookies(&node_browser, &node_origin, "appSession");
    if bff_cookie.is_empty() || node_cookie.is_empty() {
        return Err(format!(
            "no session cookie after login (bff-local: {bff_cookie:?}, node: {node_cookie:?})"
        ));
    }

    let mut passthrough = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    passthrough.arg("passthrough").arg(upstream);
    let passthrough = start_ready("passthrough", passthrough, None, Duration::from_secs(10)).await;

    let api_headers = |cookie: &str| vec![format!("Cookie: {cookie}"), "X-CSRF: 1".to_owned()];
    let targets = [
        Target {
            name: "direct",
            url: format!("{upstream}orders?status=open"),
            headers: Vec::new(),
            pid: upstream_pid,
        },
        Target {
            name: "passthrough",
            url: format!("{}api/orders?status=open", passthrough.ready.trim()),
            headers: Vec::new(),
            pid: passthrough.pid(),
        },
        Target {
            name: "bff-local",
            url: format!("{bff_origin}/api/orders?status=open"),
            headers: api_headers(&bff_cookie),
            pid: bff.id().unwrap_or(0),
        },
        Target {
            name: "node",
            url: format!("{node_origin}/api/orders?status=open"),
            headers: api_headers(&node_cookie),
            pid: node.pid(),
        },
    ];
    // Each answers 200 with the upstream's body before any measurement.
    let check = reqwest::Client::new();
    for target in &targets {
        let mut request = check.get(&target.url);
        for header in &target.headers {
            if let Some((name, value)) = header.split_once(": ") {
                request = request.header(name, value);
            }
        }
        let answer = request.send().await.map_err(|e| format!("{}: {e}", target.name))?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        if status != 200 || body != bff_bench::upstream::BODY {
            return Err(format!("{} answered {status}: {body}", target.name));
        }
    }

    let concurrencies = vec![1u32, 16, 64];
    let mut results = LoadResults {
        seconds,
        reps,
        concurrencies: concurrencies.clone(),
        ..LoadResults::default()
    };
    // Warm-up: every contender at the highest concurrency, briefly, unmeasured.
    for target in &targets {
        wrk(target, 64, 2, &script).await?;
    }
    for rep in 0..reps {
        for &c in &concurrencies {
            // The upstream alone at every concurrency: the floor bff-local is measured against.
            let mut order: Vec<&Target> = targets.iter().collect();
            if rep % 2 == 1 {
                order.reverse();
            }
            for target in order {
                let run = wrk(target, c, seconds, &script).await?;
                results
                    .cells
                    .entry(cell_key(target.name, c))
                    .or_default()
                    .runs
                    .push(run);
            }
        }
    }
    if let Some(bff_target) = targets.iter().find(|t| t.name == "bff-local") {
        results.example_command = command_line(bff_target, 64, seconds, &script);
    }
    results
        .peak_rss_kib
        .insert("bff-local".into(), peak_rss_kib(bff.id().unwrap_or(0)));
    results.peak_rss_kib.insert("node".into(), node.peak_rss_kib());
    results
        .peak_rss_kib
        .insert("upstream".into(), peak_rss_kib(upstream_pid));
    let _ = bff.kill().await;
    node.stop().await;
    passthrough.stop().await;
    Ok(results)
}

/// The `Cookie` header `browser` sends to `origin`, only the cookies whose name starts
/// with `prefix`: the jar keys cookies by host, not port, so the provider's cookies on
/// 127.0.0.1 would ride along with every `wrk` request otherwise.
pub(crate) fn session_cookies(browser: &Browser, origin: &str, prefix: &str) -> String {
    browser
        .cookies(origin)
        .split("; ")
        .filter(|pair| pair.starts_with(prefix))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The key of a contender at a concurrency in [`LoadResults::cells`].
pub fn cell_key(contender: &str, concurrency: u32) -> String {
    format!("{contender}@{concurrency}")
}

impl LoadResults {
    /// The runs of `contender` at `concurrency` (empty when not measured).
    pub fn cell(&self, contender: &str, concurrency: u32) -> Cell {
        self.cells
            .get(&cell_key(contender, concurrency))
            .cloned()
            .unwrap_or_default()
    }
}

fn threads(concurrency: u32) -> u32 {
    concurrency.clamp(1, 2)
}

fn command_line(target: &Target, concurrency: u32, seconds: u64, script: &Path) -> String {
    let mut line = format!(
        "wrk -t{} -c{concurrency} -d{seconds}s --latency -s {}",
        threads(concurrency),
        script.file_name().and_then(|n| n.to_str()).unwrap_or("report.lua")
    );
    for header in &target.headers {
        let shown = match header.split_once(": ") {
            Some(("Cookie", _)) => "Cookie: bff-session=<session id>".to_owned(),
            _ => header.clone(),
        };
        line.push_str(&format!(" -H '{shown}'"));
    }
    line.push_str(&format!(" {}", target.url));
    line
}

pub(crate) async fn wrk(target: &Target, concurrency: u32, seconds: u64, script: &Path) -> Result<Run, String> {
    let cpu_before = cpu_ticks(target.pid);
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{}", threads(concurrency)))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script);
    for header in &target.headers {
        command.arg("-H").arg(header);
    }
    command.arg(&target.url);
    let output = command.output().await.map_err(|e| format!("wrk: {e}"))?;
    let cpu_after = cpu_ticks(target.pid);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("WRK ")).ok_or_else(|| {
        format!(
            "wrk printed no report: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("wrk report: {e}"))?;
    let num = |k: &str| json[k].as_f64().unwrap_or(0.0);
    let requests = num("requests");
    let errors = ["connect", "read", "write", "status", "timeout"]
        .iter()
        .map(|k| num(k))
        .sum::<f64>();
    let duration_s = num("duration_us") / 1e6;
    let ticks = cpu_after.saturating_sub(cpu_before) as f64;
    Ok(Run {
        rps: if duration_s > 0.0 { requests / duration_s } else { 0.0 },
        p50_us: num("p50"),
        p99_us: num("p99"),
        errors: errors as u64,
        requests: requests as u64,
        cpu_us_per_request: if requests > 0.0 {
            ticks * 1e6 / clock_ticks_per_second() / requests
        } else {
            0.0
        },
    })
}

/// User + system CPU time of `pid` (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
