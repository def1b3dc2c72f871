//! `bff-bench`: the benchmark driver behind `bash bench/run.sh`.
//!
//! ```text
//! bff-bench run         measure everything, write BENCHMARKS.md and bench/proxy.svg
//! bff-bench report      write them again from the last run's target/bench/results.json
//! bff-bench cold        only the cold starts under Lambda CPU shares (128, 512, 1769 MB)
//!                       over TLS, with the Node peer; writes target/bench/shares.json and
//!                       that part of BENCHMARKS.md, keeping the rest of the file
//! bff-bench hotkeys     the hot-key simulation: BENCH_HOTKEYS_INSTANCES (2000) emulated cold
//!                       instances at BENCH_HOTKEYS_RATE (400) a second against DynamoDB Local
//!                       behind the counting proxy, with one copy of each provider document
//!                       and strongly consistent client-token reads (the layout before), then
//!                       as built; reads per key per second, and the capacity model. Writes
//!                       target/bench/hotkeys.json and that part of BENCHMARKS.md, keeping
//!                       the rest of the file
//! bff-bench upstream    serve the fast loopback upstream (prints `READY <base URL>`)
//! bff-bench passthrough BASE
//!                       a bare pass-through proxy to BASE on the BFF's HTTP stack, the
//!                       floor of any proxy here (prints `READY <URL>`)
//! bff-bench calls --bff-local PATH [--calls N] [--dpop]
//!                       N warm proxied calls of one session through PATH (bff-local, or
//!                       a script running it under callgrind), for instruction counts
//! bff-bench calls --bff-local A --bff-local B ... --wrk SECONDS [--rounds R] [--dpop]
//!                       wrk at c=64 against the upstream directly, the pass-through
//!                       and each build of bff-local, interleaved: a quick A/B of two builds
//! bff-bench soak [--minutes N] [--sessions N] [--access-token-ttl S] [--bff-local PATH]
//!                       faults over time (bench/soak.sh); writes bench/soak.md and the
//!                       "Soak" section of BENCHMARKS.md
//! ```
//!
//! `run` expects the release binaries (`cargo build --release`) and the criterion results
//! of `cargo bench -p bff-bench --bench handlers` (read from `target/criterion`). Knobs,
//! for quick trials only (the documented figures use the defaults):
//! `BENCH_COLD_ITERATIONS` (20), `BENCH_WARM_INVOCATIONS` (1000), `BENCH_LOAD_SECONDS` (8),
//! `BENCH_LOAD_REPS` (3), `BENCH_SHARE_ITERATIONS` (15), `BENCH_PHASES` (`cold,share,warm,load,hotkeys`),
//! `BENCH_HOTKEYS_INSTANCES` (2000), `BENCH_HOTKEYS_RATE` (400), `BENCH_SHARE_SIZES`
//! (`128,512,1769`), `BENCH_SHARE_NODE=off` (no Node peer in the CPU-share cold starts),
//! `BENCH_SECRETS_BATCH=off` (the fake Secrets Manager refuses `BatchGetSecretValue`, so
//! the functions read each secret on its own: the comparison without the batch),
//! `BENCH_TLS_DELAY_MS` (0: a round trip the CPU-share phase's TLS terminators add to each
//! connection set-up and answer, as between a function and AWS endpoints in its region),
//! and `BENCH_BIN_DIR` (where the
//! function binaries are taken from, default `target/release`; for profiling wrappers).

mod calls;
mod dynamo;
mod emulator;
mod hotkeys;
mod lambda;
mod load;
mod nodecold;
mod passthrough;
mod procs;
mod report;
mod share;
mod sizes;
mod soak;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bff_testkit::Provider;
use tokio::process::Command;

pub(crate) fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(2).collect();
    let outcome = match mode.as_str() {
        "upstream" => {
            upstream();
            Ok(())
        }
        "passthrough" => match args.first() {
            Some(upstream) => {
                exit_when_stdin_closes();
                block_on(passthrough::serve(upstream))
            }
            None => Err("passthrough wants the upstream's base URL".into()),
        },
        "run" => block_on(run()),
        "soak" => soak::Plan::from_args(&args).and_then(|plan| block_on(soak::run(plan))),
        "calls" => calls::Plan::from_args(&args).and_then(|plan| block_on(calls::run(plan))),
        "cold" => block_on(cold_only()),
        "hotkeys" => block_on(hotkeys_only()),
        "hotkeys-instances" => block_on(hotkeys::instances()),
        "report" => report_again(),
        _ => {
            eprintln!(
                "usage: bff-bench run | bff-bench cold | bff-bench hotkeys | bff-bench report | bff-bench upstream | bff-bench soak [--minutes N] | bff-bench calls --bff-local PATH [--calls N | --wrk SECONDS] [--dpop]"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = outcome {
        eprintln!("bff-bench: {e}");
        std::process::exit(1);
    }
}

/// Runs `work` to its end on a multi-threaded runtime.
fn block_on<F: std::future::Future<Output = Result<(), String>>>(work: F) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(work)
}

/// Ends this process when the harness closes its stdin (or ends, however it ends).
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}

fn upstream() {
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        println!("READY {}", bff_bench::upstream::base_url(addr));
        let _ = bff_bench::upstream::serve(listener).await;
    });
}

fn step(text: &str) {
    eprintln!("\n==> {text}");
}

async fn run() -> Result<(), String> {
    let started = Instant::now();
    let machine = report::Machine::read();
    let cold_iterations = knob("BENCH_COLD_ITERATIONS", 20);
    let warm_invocations = knob("BENCH_WARM_INVOCATIONS", 1000);
    let load_seconds = knob("BENCH_LOAD_SECONDS", 8) as u64;
    let load_reps = knob("BENCH_LOAD_REPS", 3);
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "cold,share,warm,load,hotkeys".into());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);

    let results = bff_bench::results_dir();
    let logs = results.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let bin_dir = std::env::var_os("BENCH_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bff_bench::target_dir().join("release"));
    for name in lambda::FUNCTIONS.iter().chain([&lambda::HELLO, &"bff-local"]) {
        if !bin_dir.join(name).exists() {
            return Err(format!(
                "{} is missing: build the release binaries first (bash bench/run.sh does)",
                bin_dir.join(name).display()
            ));
        }
    }

    step("provider, DynamoDB Local, upstream");
    let provider = tokio::task::spawn_blocking(|| Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "3600")]))
        .await
        .map_err(|e| e.to_string())?;
    let dynamo = dynamo::Dynamo::start(&logs).await;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut upstream_command = Command::new(exe);
    upstream_command.arg("upstream");
    let upstream = procs::start_ready("upstream", upstream_command, None, Duration::from_secs(10)).await;
    let upstream_url = upstream.ready.trim().to_owned();
    create_table(&bin_dir.join("bff-local"), &provider, &dynamo.direct, &logs).await?;

    step("sizes");
    let mut sizes = BTreeMap::new();
    for name in lambda::FUNCTIONS.iter().chain([&lambda::HELLO, &"bff-local"]) {
        sizes.insert(
            name.to_string(),
            sizes::measure(&bin_dir.join(name), &results.join("zip"))?,
        );
    }

    let stack = lambda::stack(&provider, &dynamo, &upstream_url, &bin_dir, &logs, None).await;
    let mut cold = BTreeMap::new();
    if phase("cold") {
        step(&format!(
            "cold starts: {cold_iterations} per function, each next to a hello-world cold start"
        ));
        cold = stack.cold_starts(cold_iterations, 2).await?;
        for (name, result) in &cold {
            eprintln!(
                "  {name}: median {:.1} ms (init {:.1} ms, answer upload {:.1} ms; floor {:.1} ms), calls {:?}",
                bff_bench::stats::median(&result.total_ms),
                bff_bench::stats::median(&result.init_ms),
                bff_bench::stats::median(&result.upload_ms),
                bff_bench::stats::median(&result.floor_ms),
                result.calls
            );
        }
    }

    let mut shares = None;
    if phase("share") {
        let (load_start, share_started) = (report::load_average(), Instant::now());
        let iterations = knob("BENCH_SHARE_ITERATIONS", 15);
        match share_phase(&dynamo, &upstream_url, &bin_dir, &logs, iterations).await {
            Ok(results) => {
                shares = Some(report::ShareRun {
                    when: report::utc_now(),
                    load_start,
                    load_end: report::load_average(),
                    minutes: share_started.elapsed().as_secs_f64() / 60.0,
                    iterations,
                    delay_ms: tls_delay_ms(),
                    results,
                })
            }
            Err(e) => eprintln!("  skipped: {e}"),
        }
    }

    let mut lambda_results = lambda::LambdaResults::default();
    if phase("warm") {
        step(&format!(
            "warm: {warm_invocations} logins through every function, then one session's API calls"
        ));
        lambda_results = stack.warm(warm_invocations, warm_invocations).await?;
        eprintln!("  {:.0} s", lambda_results.warm_seconds);
        for (name, warm) in &lambda_results.warm {
            eprintln!(
                "  {name}: p50 {:.2} ms (upload {:.2} ms), peak RSS {} KiB",
                warm.duration_ms.p50, warm.upload_ms.p50, warm.peak_rss_kib
            );
        }
        eprintln!(
            "  steady proxy: p50 {:.2} ms p90 {:.2} (upload p50 {:.2} p90 {:.2})",
            lambda_results.steady.duration_ms.p50,
            lambda_results.steady.duration_ms.p90,
            lambda_results.steady.upload_ms.p50,
            lambda_results.steady.upload_ms.p90
        );
    }
    lambda_results.cold = cold;

    let mut load = load::LoadResults::default();
    if phase("load") {
        step(&format!(
            "proxy overhead and throughput: {load_reps} x {load_seconds} s per contender and concurrency"
        ));
        load = load::run(
            &provider,
            &upstream_url,
            upstream.pid(),
            &bin_dir.join("bff-local"),
            &logs,
            load_seconds,
            load_reps,
        )
        .await?;
    }

    let mut hotkeys = None;
    if phase("hotkeys") {
        step("hot keys: bursts of cold instances, before and after");
        hotkeys = Some(hotkeys::run(&provider, &dynamo, &logs).await?);
    }

    step("report");
    let criterion = report::Criterion::read(&bff_bench::target_dir().join("criterion"));
    let inprocess = std::fs::read_to_string(results.join("inprocess.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let machine = machine.finish();
    let input = report::Input {
        machine,
        lambda: lambda_results,
        load,
        sizes,
        criterion,
        inprocess,
        shares,
        hotkeys,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&input).map_err(|e| e.to_string())?;
    std::fs::write(results.join("results.json"), json).map_err(|e| e.to_string())?;
    write_report(&input)?;
    eprintln!(
        "wrote BENCHMARKS.md and bench/proxy.svg in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    upstream.stop().await;
    Ok(())
}

/// The memory sizes measured: all of [`share::SIZES`], or those `BENCH_SHARE_SIZES` lists
/// (comma-separated; for quick comparisons of two builds).
fn share_sizes() -> Vec<u32> {
    let listed: Vec<u32> = std::env::var("BENCH_SHARE_SIZES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|mb| share::SIZES.contains(mb))
        .collect();
    if listed.is_empty() {
        share::SIZES.to_vec()
    } else {
        listed
    }
}

/// The CPU shares of [`share_sizes`], or why they cannot be enforced.
fn shares() -> Result<Vec<share::Share>, String> {
    share_sizes().into_iter().map(share::Share::create).collect()
}

/// `BENCH_TLS_DELAY_MS`: a round trip the TLS terminators add (0, none: loopback's).
fn tls_delay_ms() -> u64 {
    knob("BENCH_TLS_DELAY_MS", 0) as u64
}

/// Cold starts under the CPU shares of 128, 512 and 1769 MB, and the Node peer, with
/// DynamoDB, Secrets Manager and the provider (a second one, whose issuer is https) behind
/// TLS terminators of a test CA.
async fn share_phase(
    dynamo: &dynamo::Dynamo,
    upstream: &str,
    bin_dir: &std::path::Path,
    logs: &std::path::Path,
    iterations: usize,
) -> Result<Vec<lambda::ShareResult>, String> {
    let shares = shares().map_err(|e| format!("cannot confine the cold starts to a CPU share: {e}"))?;
    let tls = bff_testkit::tls::Tls::create(&bff_bench::results_dir().join("tls"))?
        .with_delay(Duration::from_millis(tls_delay_ms()));
    let provider = Provider::start_behind(&tls, &[("PROVIDER_ACCESS_TOKEN_TTL", "3600")]).await?;
    let logs = logs.join("tls");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let stack = lambda::stack(&provider, dynamo, upstream, bin_dir, &logs, Some(&tls)).await;
    // `BENCH_SHARE_NODE=off` leaves the Node peer out (quick comparisons of two builds).
    let node = match std::env::var("BENCH_SHARE_NODE").as_deref() {
        Ok("off") => None,
        _ => Some(nodecold::NodePeer::prepare(&provider, upstream, &logs, Some(&tls.ca_file)).await?),
    };
    step(&format!(
        "cold starts under Lambda CPU shares ({} MB), AWS endpoints over TLS: {iterations} per function and size",
        share_sizes()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    stack.cold_shares(&shares, iterations, 2, node.as_ref()).await
}

async fn cold_only() -> Result<(), String> {
    let started = Instant::now();
    let iterations = knob("BENCH_SHARE_ITERATIONS", 15);
    let load_start = report::load_average();
    let results = bff_bench::results_dir();
    let logs = results.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let bin_dir = std::env::var_os("BENCH_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bff_bench::target_dir().join("release"));
    step("DynamoDB Local, upstream");
    let dynamo = dynamo::Dynamo::start(&logs).await;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut upstream_command = Command::new(exe);
    upstream_command.arg("upstream");
    let upstream = procs::start_ready("upstream", upstream_command, None, Duration::from_secs(10)).await;
    let upstream_url = upstream.ready.trim().to_owned();
    dynamo::create_table(&dynamo.direct, "bff-bench").await?;
    let shares = share_phase(&dynamo, &upstream_url, &bin_dir, &logs, iterations).await?;
    let run = report::ShareRun {
        when: report::utc_now(),
        load_start,
        load_end: report::load_average(),
        minutes: started.elapsed().as_secs_f64() / 60.0,
        iterations,
        delay_ms: tls_delay_ms(),
        results: shares,
    };
    let json = serde_json::to_vec_pretty(&run).map_err(|e| e.to_string())?;
    std::fs::write(results.join("shares.json"), json).map_err(|e| e.to_string())?;
    let path = bff_bench::repo_root().join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    std::fs::write(&path, report::splice_shares(&existing, &run)).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote target/bench/shares.json and BENCHMARKS.md in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    upstream.stop().await;
    Ok(())
}

/// `bff-bench hotkeys`: the simulation alone; its section of BENCHMARKS.md is replaced,
/// the rest kept. The capacity model takes the last full run's counts and durations
/// (`target/bench/results.json`, else `inprocess.json`), else those BENCHMARKS.md shows.
async fn hotkeys_only() -> Result<(), String> {
    let started = Instant::now();
    let results = bff_bench::results_dir();
    let logs = results.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    step("provider, DynamoDB Local");
    let provider = tokio::task::spawn_blocking(|| Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "3600")]))
        .await
        .map_err(|e| e.to_string())?;
    let dynamo = dynamo::Dynamo::start(&logs).await;
    step("hot keys: bursts of cold instances, before and after");
    let run = hotkeys::run(&provider, &dynamo, &logs).await?;
    let json = serde_json::to_vec_pretty(&run).map_err(|e| e.to_string())?;
    std::fs::write(results.join("hotkeys.json"), json).map_err(|e| e.to_string())?;
    let path = bff_bench::repo_root().join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let basis = report::ModelBasis::last_run(&existing);
    std::fs::write(&path, report::splice_hotkeys(&existing, &run, &basis)).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote target/bench/hotkeys.json and BENCHMARKS.md in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_report(input: &report::Input) -> Result<(), String> {
    let root = bff_bench::repo_root();
    std::fs::write(root.join("BENCHMARKS.md"), report::markdown(input)).map_err(|e| e.to_string())?;
    std::fs::write(root.join("bench/proxy.svg"), report::chart(&input.load)).map_err(|e| e.to_string())
}

fn report_again() -> Result<(), String> {
    let path = bff_bench::results_dir().join("results.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e} (run `bff-bench run` first)", path.display()))?;
    let input: report::Input = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    write_report(&input)
}

/// Creates the table the functions use, the way `bff-local` does on DynamoDB (the same
/// definition as the SAM template's), then stops it.
async fn create_table(
    bff_local: &std::path::Path,
    provider: &Provider,
    dynamodb: &str,
    logs: &std::path::Path,
) -> Result<(), String> {
    let port = procs::free_port();
    let log = std::fs::File::create(logs.join("create-table.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(bff_local)
        .env_clear()
        .envs([
            ("BFF_ISSUER", provider.issuer.as_str()),
            ("BFF_CLIENT_ID", "table-setup"),
            ("BFF_CLIENT_SECRET", "unused"),
            ("BFF_PUBLIC_URL", "http://127.0.0.1:9"),
            ("BFF_UPSTREAM_URL", "http://127.0.0.1:9/"),
            ("BFF_TOKEN_KEYS", bff_bench::BENCH_TOKEN_KEYS),
            ("BFF_STORE", "dynamodb"),
            ("BFF_TABLE", "bff-bench"),
            ("BFF_LISTEN", &format!("127.0.0.1:{port}")),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "benchkey"),
            ("AWS_SECRET_ACCESS_KEY", "benchsecret"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("bff-local: {e}"))?;
    procs::wait_http(&format!("http://127.0.0.1:{port}/auth/me"), Duration::from_secs(120)).await;
    let _ = child.kill().await;
    Ok(())
}
