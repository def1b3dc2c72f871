//! Warm proxied calls through `bff-local`, for instruction counts and quick A/B runs:
//!
//! ```text
//! bff-bench calls --bff-local PATH [--calls N] [--dpop]
//! bff-bench calls --bff-local A --bff-local B ... --wrk SECONDS [--rounds R] [--dpop]
//! ```
//!
//! Starts the provider and the loopback upstream, starts each `PATH` (the binary, or a
//! script that `exec`s it under a profiler) with the in-memory store and logs one browser
//! in to each. Without `--wrk`: sends `N` `GET /api/orders?status=open` to the one `PATH`
//! on one kept-alive connection, each checked to answer the upstream's body, then stops
//! it with `SIGTERM` so a profiler writes its output; two runs with different `N` give the
//! cost of one call as the difference of their totals over the difference of their `N`,
//! start-up and login cancelled out. With `--wrk`: `R` rounds of `wrk` at c=64 against
//! the upstream directly, the bare pass-through (`bff-bench passthrough`) and each `PATH`,
//! interleaved (order reversed every other round), as the load phase runs them; prints
//! req/s, the share of direct and CPU per request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bff_bench::stats::median;
use bff_testkit::{Browser, Provider};
use tokio::process::{Child, Command};

use crate::load::{Target, wrk};
use crate::procs::{free_port, wait_http};

/// What to run.
pub struct Plan {
    bff_locals: Vec<PathBuf>,
    calls: usize,
    dpop: bool,
    wrk_seconds: Option<u64>,
    rounds: usize,
}

impl Plan {
    /// From the arguments after `calls`.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut plan = Self {
            bff_locals: Vec::new(),
            calls: 2000,
            dpop: false,
            wrk_seconds: None,
            rounds: 2,
        };
        let mut args = args.iter();
        let number = |v: Option<&String>, what: &str| -> Result<u64, String> {
            v.and_then(|n| n.parse().ok()).ok_or(format!("{what} wants a number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bff-local" => plan
                    .bff_locals
                    .push(args.next().map(PathBuf::from).ok_or("--bff-local wants a path")?),
                "--calls" => plan.calls = number(args.next(), "--calls")? as usize,
                "--wrk" => plan.wrk_seconds = Some(number(args.next(), "--wrk")?),
                "--rounds" => plan.rounds = number(args.next(), "--rounds")? as usize,
                "--dpop" => plan.dpop = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if plan.bff_locals.is_empty() || (plan.wrk_seconds.is_none() && plan.bff_locals.len() > 1) {
            return Err("one --bff-local PATH, or several with --wrk SECONDS".into());
        }
        Ok(plan)
    }
}

/// One running `bff-local` with a logged-in session.
struct Running {
    child: Child,
    origin: String,
    cookie: String,
}

/// Runs `plan`.
pub async fn run(plan: Plan) -> Result<(), String> {
    let logs = bff_bench::results_dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let provider = tokio::task::spawn_blocking(|| Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "3600")]))
        .await
        .map_err(|e| e.to_string())?;
    let mut upstream_command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    upstream_command.arg("upstream");
    // Its own process, as in the load phase, so its CPU time is its own.
    let upstream = crate::procs::start_ready("upstream", upstream_command, None, Duration::from_secs(10)).await;
    let upstream_url = upstream.ready.trim().to_owned();

    let mut running = Vec::new();
    for (i, path) in plan.bff_locals.iter().enumerate() {
        let log = logs.join(format!("calls-bff-local-{i}.log"));
        running.push(start(&provider, &upstream_url, path, &log, plan.dpop).await?);
    }
    let outcome = match plan.wrk_seconds {
        None => sequential(&running[0], plan.calls, plan.dpop).await,
        Some(seconds) => {
            let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            command.arg("passthrough").arg(&upstream_url);
            let passthrough = crate::procs::start_ready("passthrough", command, None, Duration::from_secs(10)).await;
            let floor = Target {
                name: "passthrough",
                url: format!("{}api/orders?status=open", passthrough.ready.trim()),
                headers: Vec::new(),
                pid: passthrough.pid(),
            };
            let outcome = ab(&plan, &running, &upstream_url, upstream.pid(), floor, seconds, &logs).await;
            passthrough.stop().await;
            outcome
        }
    };
    for mut bff in running {
        // SIGTERM, not SIGKILL: bff-local shuts down cleanly and a profiler writes its output.
        if let Some(pid) = bff.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(300), bff.child.wait()).await;
    }
    upstream.stop().await;
    outcome
}

async fn start(provider: &Provider, upstream: &str, path: &Path, log: &Path, dpop: bool) -> Result<Running, String> {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let client = provider.register(&origin, "client_secret_basic").await;
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut bff = Command::new(path);
    bff.env_clear()
        .envs([
            ("BFF_ISSUER", provider.issuer.as_str()),
            ("BFF_CLIENT_ID", client.client_id.as_str()),
            ("BFF_CLIENT_SECRET", client.client_secret.as_str()),
            ("BFF_PUBLIC_URL", origin.as_str()),
            ("BFF_UPSTREAM_URL", upstream),
            ("BFF_TOKEN_KEYS", bff_bench::BENCH_TOKEN_KEYS),
            ("BFF_STORE", "memory"),
            ("BFF_DPOP", if dpop { "on" } else { "off" }),
            ("BFF_LISTEN", &format!("127.0.0.1:{port}")),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true);
    let child = bff.spawn().map_err(|e| format!("{}: {e}", path.display()))?;
    // A profiler slows start-up down by an order of magnitude.
    wait_http(&format!("{origin}/auth/me"), Duration::from_secs(300)).await;
    let browser = Browser::new();
    let status = browser.login_at(&origin, "calls", "/").await.status();
    if !status.is_redirection() {
        return Err(format!("{}: login: callback answered {status}", path.display()));
    }
    let cookie = crate::load::session_cookies(&browser, &origin, "bff-session=");
    Ok(Running { child, origin, cookie })
}

async fn sequential(bff: &Running, calls: usize, dpop: bool) -> Result<(), String> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/orders?status=open", bff.origin);
    let started = Instant::now();
    for i in 0..calls {
        let answer = http
            .get(&url)
            .header("Cookie", &bff.cookie)
            .header("X-CSRF", "1")
            .send()
            .await
            .map_err(|e| format!("call {i}: {e}"))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| format!("call {i}: {e}"))?;
        if status != 200 || body != bff_bench::upstream::BODY {
            return Err(format!("call {i} answered {status}: {body}"));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{calls} calls in {:.2} s ({:.1} µs per call, DPoP {})",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / calls.max(1) as f64,
        if dpop { "on" } else { "off" }
    );
    Ok(())
}

async fn ab(
    plan: &Plan,
    running: &[Running],
    upstream: &str,
    upstream_pid: u32,
    floor: Target,
    seconds: u64,
    logs: &Path,
) -> Result<(), String> {
    let script = logs.join("report.lua");
    std::fs::write(&script, crate::load::REPORT_SCRIPT).map_err(|e| e.to_string())?;
    let mut targets = vec![Target {
        name: "direct",
        url: format!("{upstream}orders?status=open"),
        headers: Vec::new(),
        pid: upstream_pid,
    }];
    targets.push(floor);
    for bff in running {
        targets.push(Target {
            name: "bff-local",
            url: format!("{}/api/orders?status=open", bff.origin),
            headers: vec![format!("Cookie: {}", bff.cookie), "X-CSRF: 1".to_owned()],
            pid: bff.child.id().unwrap_or(0),
        });
    }
    for target in &targets {
        wrk(target, 64, 2, &script).await?;
    }
    let mut runs: Vec<Vec<crate::load::Run>> = vec![Vec::new(); targets.len()];
    for round in 0..plan.rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            runs[i].push(wrk(&targets[i], 64, seconds, &script).await?);
        }
    }
    let rps = |i: usize| median(&runs[i].iter().map(|r| r.rps).collect::<Vec<_>>());
    let direct = rps(0);
    println!("c=64, {} rounds of {seconds} s, medians:", plan.rounds);
    println!("upstream directly: {direct:.0} req/s");
    let names =
        std::iter::once("pass-through".to_owned()).chain(plan.bff_locals.iter().map(|p| p.display().to_string()));
    for (i, name) in names.enumerate() {
        let cpu = median(&runs[i + 1].iter().map(|r| r.cpu_us_per_request).collect::<Vec<_>>());
        let p99 = median(&runs[i + 1].iter().map(|r| r.p99_us).collect::<Vec<_>>());
        let errors: u64 = runs[i + 1].iter().map(|r| r.errors).sum();
        println!(
            "{name}: {:.0} req/s = {:.1} % of direct, p99 {:.2} ms, CPU/req {cpu:.0} µs, {errors} errors (req/s by round: {:?})",
            rps(i + 1),
            rps(i + 1) / direct * 100.0,
            p99 / 1000.0,
            runs[i + 1].iter().map(|r| r.rps.round()).collect::<Vec<_>>()
        );
    }
    Ok(())
}
