//! `BENCHMARKS.md` and `bench/proxy.svg`, from what one run measured.
//!
//! Targets are reported, never asserted: a missed target is a finding, explained in the
//! analysis (`bench/findings.md`, included as written).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use bff_bench::stats::{Summary, median, summarize};

use crate::lambda::{ColdResult, FUNCTIONS, HELLO, LambdaResults};
use crate::load::LoadResults;
use crate::sizes::Size;

/// Lambda prices used for the cost section (US East (N. Virginia), first pricing tier).
pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4;
/// x86_64 duration price per GB-second.
pub const X86_GB_SECOND: f64 = 0.000_016_666_7;
/// Price per request.
pub const PER_MILLION_REQUESTS: f64 = 0.20;
/// CloudFront HTTPS requests, United States and Europe, per 10,000.
pub const CLOUDFRONT_PER_10K_HTTPS: f64 = 0.0100;
/// The configured memory of every function.
pub const MEMORY_MB: f64 = 128.0;

/// The machine and tools of the run.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Tool versions (`rustc`, `node`, `wrk`).
    pub tools: Vec<(String, String)>,
    /// Load average when the run started and ended.
    pub load_start: String,
    /// Load average when the run ended.
    pub load_end: String,
    /// When the run started (UTC).
    pub date: String,
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|_| "not found".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    /// Reads the machine at the start of a run.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: command_output("uname", &["-r"]),
            tools: vec![
                ("rustc".into(), command_output("rustc", &["-V"])),
                ("node".into(), command_output("node", &["--version"])),
                ("wrk".into(), command_output("wrk", &["--version"])),
            ],
            load_start: loadavg(),
            load_end: String::new(),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }

    /// Adds what is read at the end of the run.
    pub fn finish(mut self) -> Self {
        self.load_end = loadavg();
        self
    }
}

/// One criterion benchmark's result.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// Median time, ns.
    pub median_ns: f64,
    /// 95% confidence interval of the median, ns.
    pub low_ns: f64,
    /// Upper bound.
    pub high_ns: f64,
}

/// The criterion results of `benches/handlers.rs`, by benchmark id.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Criterion(pub BTreeMap<String, Estimate>);

impl Criterion {
    /// Reads `target/criterion/handlers/*/new/estimates.json`.
    pub fn read(dir: &Path) -> Self {
        let mut found = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(dir.join("handlers")) else {
            return Self(found);
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path().join("new/estimates.json");
            let Some(json) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            else {
                continue;
            };
            let median = &json["median"];
            found.insert(
                id,
                Estimate {
                    median_ns: median["point_estimate"].as_f64().unwrap_or(f64::NAN),
                    low_ns: median["confidence_interval"]["lower_bound"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    high_ns: median["confidence_interval"]["upper_bound"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                },
            );
        }
        Self(found)
    }
}

/// Everything the report is written from (kept as `target/bench/results.json`, so the
/// report can be written again without measuring: `bff-bench report`).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// The machine.
    pub machine: Machine,
    /// Emulator measurements.
    pub lambda: LambdaResults,
    /// `wrk` measurements.
    pub load: LoadResults,
    /// Package sizes by binary.
    pub sizes: BTreeMap<String, Size>,
    /// Criterion results.
    pub criterion: Criterion,
    /// In-process store and provider call counts (`target/bench/inprocess.json`).
    pub inprocess: Option<serde_json::Value>,
    /// Cold starts under Lambda CPU shares over TLS.
    #[serde(default)]
    pub shares: Option<ShareRun>,
    /// The hot-key simulation (`bff-bench hotkeys`).
    #[serde(default)]
    pub hotkeys: Option<crate::hotkeys::HotkeysRun>,
    /// How long the run took, seconds.
    pub elapsed_seconds: f64,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mib_bytes(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

fn calls_text(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, n)| if *n == 1 { k.clone() } else { format!("{k} ×{n}") })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_provider_path(path: &str) -> &str {
    match path {
        "/.well-known/openid-configuration" => "discovery",
        "/jwks" => "JWKS",
        "/token" => "token",
        "/token/revocation" => "revocation",
        _ => path,
    }
}

fn provider_text(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, n)| {
            let name = describe_provider_path(k);
            if *n == 1 {
                name.to_owned()
            } else {
                format!("{name} ×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cost per million API calls through the proxy at `duration_ms` billed per call.
fn lambda_cost_per_million(duration_ms: f64, price_per_gb_s: f64) -> (f64, f64) {
    let billed_ms = duration_ms.ceil().max(1.0);
    let compute = 1e6 * billed_ms / 1000.0 * (MEMORY_MB / 1024.0) * price_per_gb_s;
    (billed_ms, compute)
}

/// The whole `BENCHMARKS.md`.
pub fn markdown(input: &Input) -> String {
    let mut out = String::new();
    let m = &input.machine;
    let lambda = &input.lambda;
    let load = &input.load;

    // ---- measurements the summary needs
    let cold_ratio: BTreeMap<&str, f64> = FUNCTIONS
        .iter()
        .filter_map(|f| {
            let r = lambda.cold.get(*f)?;
            Some((*f, median(&ratios(&r.total_ms, &r.floor_ms))))
        })
        .collect();
    let init_ratio: BTreeMap<&str, f64> = FUNCTIONS
        .iter()
        .filter_map(|f| {
            let r = lambda.cold.get(*f)?;
            Some((*f, median(&ratios(&r.init_ms, &r.floor_init_ms))))
        })
        .collect();
    let worst_cold = cold_ratio
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(f, r)| (f.to_string(), *r))
        .unwrap_or_default();
    let worst_init = init_ratio
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(f, r)| (f.to_string(), *r))
        .unwrap_or_default();
    let cell = |who: &str, c: u32| load.cell(who, c);
    let direct1 = cell("direct", 1);
    let bff1 = cell("bff-local", 1);
    let overhead_p50_ms = (bff1.median(|r| r.p50_us) - direct1.median(|r| r.p50_us)) / 1000.0;
    let overhead_p99_ms = (bff1.median(|r| r.p99_us) - direct1.median(|r| r.p99_us)) / 1000.0;
    let top = load.concurrencies.iter().copied().max().unwrap_or(64);
    let bff_top = cell("bff-local", top);
    let node_top = cell("node", top);
    let rps_ratio = bff_top.median(|r| r.rps) / node_top.median(|r| r.rps);
    let p99_ratio = bff_top.median(|r| r.p99_us) / node_top.median(|r| r.p99_us);
    let direct_top = cell("direct", top);
    let direct_share = bff_top.median(|r| r.rps) / direct_top.median(|r| r.rps);
    let rss_bff = load.peak_rss_kib.get("bff-local").copied().unwrap_or(0);
    let rss_node = load.peak_rss_kib.get("node").copied().unwrap_or(0);
    let rss_ratio = rss_bff as f64 / rss_node.max(1) as f64;
    let worst_bootstrap_rss = FUNCTIONS
        .iter()
        .filter_map(|f| lambda.warm.get(*f).map(|w| (f.to_string(), w.peak_rss_kib)))
        .max_by_key(|(_, kib)| *kib)
        .unwrap_or_default();
    let worst_zip = FUNCTIONS
        .iter()
        .filter_map(|f| input.sizes.get(*f).map(|s| (f.to_string(), s.zipped)))
        .max_by_key(|(_, z)| *z)
        .unwrap_or_default();

    // ---- header
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `bash bench/run.sh` on {} (the harness is `bench/`; do not edit this file by hand, \
         run the command again). The run took {:.1} min.\n",
        m.date,
        input.elapsed_seconds / 60.0
    );
    let _ = writeln!(
        out,
        "**Machine:** {}, {} logical CPUs, {:.0} GiB, Linux {}. {}. Load average {} at the start and {} at the end: \
         other builds and test runs share these two cores, so every comparison is measured side by side in the \
         same run, interleaved and repeated, and reported as medians and ratios. x86_64 binaries; AWS would run \
         the same code on arm64 (Graviton).\n",
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.tools
            .iter()
            .map(|(k, v)| format!("{k}: `{v}`"))
            .collect::<Vec<_>>()
            .join(", "),
        m.load_start,
        m.load_end
    );

    // ---- summary
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(out, "| target | measured | verdict |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| each cold start ≤ 1.5× the hello-world floor (spawn → first answer) | worst {} at {:.2}× | {} |",
        worst_cold.0,
        worst_cold.1,
        verdict(worst_cold.1 <= 1.5)
    );
    let _ = writeln!(
        out,
        "| (init only: spawn → first `/next`, no network in the floor either) | worst {} at {:.2}× | {} |",
        worst_init.0,
        worst_init.1,
        verdict(worst_init.1 <= 1.5)
    );
    let _ = writeln!(
        out,
        "| proxy overhead ≤ 0.5 ms p50 at c=1 | {:.3} ms p50 ({:.3} ms p99) | {} |",
        overhead_p50_ms,
        overhead_p99_ms,
        verdict(overhead_p50_ms <= 0.5)
    );
    let _ = writeln!(
        out,
        "| throughput ≥ 5× Node at c={top} | {:.1}× | {} |",
        rps_ratio,
        verdict(rps_ratio >= 5.0)
    );
    let _ = writeln!(
        out,
        "| bff-local serves ≥ 30 % of upstream-direct req/s at c={top} (session read, unsealing and header work included) | {} | {} |",
        if direct_share.is_finite() {
            let floor = cell("passthrough", top).median(|r| r.rps) / direct_top.median(|r| r.rps);
            let floor = if floor.is_finite() && floor > 0.0 {
                format!("; a bare pass-through: {:.0} %", floor * 100.0)
            } else {
                String::new()
            };
            format!(
                "{:.0} % ({:.0} of {:.0} req/s{floor})",
                direct_share * 100.0,
                bff_top.median(|r| r.rps),
                direct_top.median(|r| r.rps)
            )
        } else {
            "upstream directly not measured at this concurrency".to_owned()
        },
        verdict(direct_share >= 0.3)
    );
    let _ = writeln!(
        out,
        "| p99 ≤ 1/3 of Node's at c={top} | {:.2}× Node's | {} |",
        p99_ratio,
        verdict(p99_ratio <= 1.0 / 3.0)
    );
    let _ = writeln!(
        out,
        "| peak RSS ≤ 1/3 of Node's (under load) | {:.1} MB vs {:.1} MB = {:.2}× | {} |",
        mb(rss_bff),
        mb(rss_node),
        rss_ratio,
        verdict(rss_ratio <= 1.0 / 3.0)
    );
    let _ = writeln!(
        out,
        "| bootstrap peak RSS ≤ 32 MB over 1,000 warm invocations | worst {} at {:.1} MB | {} |",
        worst_bootstrap_rss.0,
        mb(worst_bootstrap_rss.1),
        verdict(mb(worst_bootstrap_rss.1) <= 32.0)
    );
    let _ = writeln!(
        out,
        "| zipped package ≤ 5 MB | worst {} at {:.2} MB | {} |",
        worst_zip.0,
        mib_bytes(worst_zip.1),
        verdict(mib_bytes(worst_zip.1) <= 5.0)
    );
    let proxy_cold_provider = lambda
        .cold
        .get("bff-proxy")
        .map(|r| r.calls.provider.values().sum::<u64>())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "| the cold proxy path makes no provider call unless a refresh is due | {} provider call(s) | {} |\n",
        proxy_cold_provider,
        verdict(proxy_cold_provider == 0)
    );
    let _ = writeln!(
        out,
        "The reasons for every missed target, and what would change them, are under [Findings](#findings).\n"
    );

    cold_section(&mut out, input, &cold_ratio, &init_ratio);
    warm_section(&mut out, input);
    load_section(&mut out, input, overhead_p50_ms, overhead_p99_ms);
    memory_section(&mut out, input);
    store_section(&mut out, input);
    // A run without the phase keeps the last `bff-bench hotkeys` figures.
    let hotkeys = input.hotkeys.clone().or_else(|| {
        std::fs::read_to_string(bff_bench::results_dir().join("hotkeys.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    });
    if let Some(run) = &hotkeys {
        out.push_str(&hotkeys_section(run, &ModelBasis::from_input(input)));
        out.push('\n');
    }
    cost_section(&mut out, input);

    if let Ok(soak) = std::fs::read_to_string(bff_bench::repo_root().join("bench/soak.md")) {
        out.push_str(&soak_section(&soak));
    }

    let _ = writeln!(out, "## Findings\n");
    let findings = bff_bench::repo_root().join("bench/findings.md");
    match std::fs::read_to_string(&findings) {
        Ok(text) => {
            let _ = writeln!(out, "{}", text.trim());
        }
        Err(_) => {
            let _ = writeln!(out, "(bench/findings.md is missing)");
        }
    }
    match &input.shares {
        Some(run) => splice_shares(&out, run),
        None => out,
    }
}

/// The "Soak" section around the last soak run's figures (`bench/soak.md`, written by
/// `bff-bench soak`; not part of `bench/run.sh`).
pub fn soak_section(figures: &str) -> String {
    format!(
        "## Soak\n\n\
         Faults survived over time, not a speed figure, and not part of `bench/run.sh` or the test \
         command. The documented command is the 30-minute run, `bash bench/soak.sh` \
         (`bash bench/soak.sh --minutes 2` for a short one); it writes `bench/soak.md` and this \
         section, and traces each lost session in `target/bench/soak/lost-sessions.txt`. The \
         detection was checked with a build whose refresh lease was disabled (every instance \
         refreshing on its own), without faults: the provider saw refresh tokens presented twice \
         and the harness reported the sessions they belonged to as lost.\n\n{}\n\n",
        figures.trim()
    )
}

fn fmt_summary_ms(s: &Summary) -> String {
    format!("{:.1} / {:.1}", s.p50, s.p90)
}

fn cold_section(out: &mut String, input: &Input, cold_ratio: &BTreeMap<&str, f64>, init_ratio: &BTreeMap<&str, f64>) {
    let lambda = &input.lambda;
    let n = lambda.cold.values().map(|r| r.total_ms.len()).max().unwrap_or(0);
    let _ = writeln!(out, "## 1. Cold start per function\n");
    let _ = writeln!(
        out,
        "A Lambda Runtime API emulator in the harness (`bench/src/emulator.rs`) starts each function's release \
         binary as Lambda starts a `provided.al2023` bootstrap: a clean environment with \
         `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`, \
         `AWS_LAMBDA_FUNCTION_VERSION`, `AWS_REGION`, `_HANDLER`, `LAMBDA_TASK_ROOT`, dummy credentials, and the \
         `BFF_*` configuration with the secrets given by reference (`BFF_CLIENT_SECRET_ARN`, \
         `BFF_ORIGIN_VERIFY_ARN`, `BFF_TOKEN_KEYS_ARN`, a fixed test key) as `template.yaml` deploys them, read \
         from a fake Secrets Manager (`AWS_ENDPOINT_URL_SECRETS_MANAGER`). The store is DynamoDB Local behind a \
         counting proxy (`AWS_ENDPOINT_URL_DYNAMODB`); the provider is the real `oidc-provider` of \
         `infra/provider.mjs`, counting requests by path. The first event is queued before the spawn, so the \
         time is spawn → first answer completely posted.\n"
    );
    let _ = writeln!(
        out,
        "Each function gets a realistic function-URL event (from `shared/tests/data/function_url_event.json`) \
         of one real login: the login's redirect is walked through the provider's pages, its callback goes to \
         the callback function, the session cookie to `/auth/me` and `/api/orders`, and a logout at the provider \
         produces the logout token for the back-channel function. Every function cold start is paired with a \
         hello-world cold start (`bench/hello`, same `lambda_http`, Tokio and release profile) right before it; \
         the ratio is the median of the {n} paired ratios (2 warm-up rounds discarded).\n"
    );
    let _ = writeln!(
        out,
        "| function | first answer p50 / p90 (ms) | floor p50 / p90 (ms) | ratio | init p50 (ms) | floor init p50 (ms) | init ratio | answer upload p50 (ms) |\n|---|---|---|---|---|---|---|---|"
    );
    for f in FUNCTIONS {
        let Some(r) = lambda.cold.get(f) else { continue };
        let _ = writeln!(
            out,
            "| {f} | {} | {} | {:.2}× | {:.1} | {:.1} | {:.2}× | {:.1} |",
            fmt_summary_ms(&summarize(&r.total_ms)),
            fmt_summary_ms(&summarize(&r.floor_ms)),
            cold_ratio.get(f).copied().unwrap_or(f64::NAN),
            median(&r.init_ms),
            median(&r.floor_init_ms),
            init_ratio.get(f).copied().unwrap_or(f64::NAN),
            median(&r.upload_ms),
        );
    }
    variant_table(
        out,
        lambda,
        "\n**The same cold starts with the system trust store.** The AWS SDK's HTTPS client trusts the five \
         Amazon Trust Services roots compiled in; reading the operating system's whole store instead took most \
         of a bootstrap's start-up CPU (see Findings). Each round above also started every function once more, \
         for its own login, with `SSL_CERT_FILE` naming the machine's CA bundle, which adds that store (the \
         opt-in for TLS-inspecting proxies and private CAs):\n",
        "system store added",
        |r| (&r.system_store_init_ms, &r.system_store_total_ms),
    );
    variant_table(
        out,
        lambda,
        "\n**The same cold starts without the secret reads.** As deployed, a function reads its secrets \
         (client secret, origin-verify value, token keys) from Secrets Manager during init, concurrently, before \
         it builds its clients: round trips the hello-world floor does not make. Each round also started every \
         function once more with the same values given as plain variables (`BFF_CLIENT_SECRET`, …), which is \
         how much of init those reads take here (on loopback; in AWS a Secrets Manager read takes longer):\n",
        "secrets as plain values",
        |r| (&r.plain_secrets_init_ms, &r.plain_secrets_total_ms),
    );
    let _ = writeln!(
        out,
        "\n*Init* is spawn → the bootstrap's first `GET /next` (what Lambda reports as Init Duration); the rest \
         of the first answer is the first invocation itself. *Answer upload* is the time from the answer's \
         headers reaching the Runtime API to its last byte: non-zero only for the proxy, whose function URL \
         streams (see Findings).\n"
    );
    let _ = writeln!(
        out,
        "**What each first invocation does over the network** (counted by the provider's `GET /__test/requests`, \
         the DynamoDB proxy and the fake Secrets Manager; identical in every one of the {n} cold starts unless \
         marked):\n"
    );
    let _ = writeln!(
        out,
        "| function | provider | store (DynamoDB) | Secrets Manager |\n|---|---|---|---|"
    );
    for f in FUNCTIONS {
        let Some(r) = lambda.cold.get(f) else { continue };
        let _ = writeln!(
            out,
            "| {f} | {} | {} | {}{} |",
            provider_text(&r.calls.provider),
            calls_text(&r.calls.store),
            calls_text(&r.calls.secrets),
            if r.calls_constant { "" } else { " (varied between runs)" }
        );
    }
    let discovery_everywhere = FUNCTIONS
        .iter()
        .filter(|f| {
            lambda
                .cold
                .get(**f)
                .is_some_and(|r| r.calls.provider.contains_key("/.well-known/openid-configuration"))
        })
        .count();
    let jwks_everywhere = FUNCTIONS
        .iter()
        .filter(|f| {
            lambda
                .cold
                .get(**f)
                .is_some_and(|r| r.calls.provider.contains_key("/jwks"))
        })
        .count();
    if discovery_everywhere + jwks_everywhere > 0 {
        let _ = writeln!(
            out,
            "\n{discovery_everywhere} of the 5 functions fetch discovery from the provider on their first invocation \
             and {jwks_everywhere} fetch the JWKS: **every cold start of those functions pays these provider round \
             trips again** (in AWS, TLS round trips of tens of milliseconds each); see Findings.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "\nNo cold start fetches discovery or the JWKS from the provider: both come from the store's shared \
             document cache (a `GetItem` each, counted above; the provider is asked at most once an hour across all \
             instances, see the in-process counts in section 5). The callback's one provider call is the code \
             exchange itself, and the cold proxy makes none.\n"
        );
    }
}

fn warm_section(out: &mut String, input: &Input) {
    let _ = writeln!(out, "## 2. Warm handler cost (in-process)\n");
    let _ = writeln!(
        out,
        "Criterion benches (`bench/benches/handlers.rs`, `cargo bench -p bff-bench --bench handlers`, release \
         profile) call `bff::http::router::handle(&app, function, request)` on an `App` with the in-memory store \
         (`MemoryStore`, tokens sealed as in production) against the real provider and a fast upstream on \
         loopback. Provider and upstream round trips are included where the handler makes them; discovery and \
         JWKS are cached (warm process). Every callback iteration uses a fresh authorization code: the login \
         handler starts a grant, the headless browser walks the provider's pages (not timed), and the timed \
         part is the callback handler alone.\n"
    );
    let rows = [
        (
            "login_redirect",
            "`GET /auth/login`: state, nonce, PKCE, store the transaction, 302",
        ),
        (
            "callback",
            "`GET /auth/callback`: take the transaction, code exchange at the provider, ID-token validation, new session",
        ),
        (
            "callback_token_exchange",
            "…of which: the code exchange alone (`Oidc::exchange_code`, provider round trip)",
        ),
        (
            "id_token_validation",
            "…of which: ID-token validation alone (`Oidc::verify_id_token`, RS256, cached JWKS)",
        ),
        ("me", "`GET /auth/me`: session read, claims as JSON"),
        (
            "proxy_valid_token",
            "`GET /api/orders` with a valid token: session read, upstream call, answer",
        ),
        (
            "proxy_refresh",
            "`GET /api/orders` with a token due for refresh: lease, refresh grant at the provider, ID-token validation, save, upstream call",
        ),
    ];
    let _ = writeln!(
        out,
        "| bench | median | 95% CI of the median | what it does |\n|---|---|---|---|"
    );
    for (id, what) in rows {
        match input.criterion.0.get(id) {
            Some(e) => {
                let _ = writeln!(
                    out,
                    "| `{id}` | {} | {} – {} | {what} |",
                    human_ns(e.median_ns),
                    human_ns(e.low_ns),
                    human_ns(e.high_ns)
                );
            }
            None => {
                let _ = writeln!(out, "| `{id}` | not run | | {what} |");
            }
        }
    }
    let _ = writeln!(out);
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn load_section(out: &mut String, input: &Input, overhead_p50_ms: f64, overhead_p99_ms: f64) {
    let load = &input.load;
    let cell = |who: &str, c: u32| load.cell(who, c);
    let _ = writeln!(out, "## 3. Proxy overhead and throughput\n");
    let _ = writeln!(
        out,
        "`wrk` (Debian) sends `GET /api/orders?status=open` with a logged-in session cookie and `X-CSRF: 1`. \
         The upstream is a small Rust server on loopback (`bff-bench upstream`, a {}-byte JSON answer). \
         `bff-local` is the release build with the in-memory store (`BFF_STORE=memory`, default log level, \
         logs to a file); the Node BFF (`bench/node-bff`: express 5, express-openid-connect 3.4, \
         http-proxy-middleware 3, one Node process, `NODE_ENV=production`) keeps its session in its encrypted \
         cookie, as that library does by default, and refreshes only an expired token. Both logged in through \
         the same provider and forward to the same upstream with the user's access token. Each cell is the \
         median of {} runs of {} s, the three contenders (the upstream directly, bff-local, the Node BFF) \
         interleaved at every concurrency (order reversed every other round) after a warm-up; wrk uses 1 \
         thread at c=1 and 2 otherwise, on the same two cores as the servers. \
         Exact command (bff-local, c={}): `{}`.\n",
        bff_bench::upstream::BODY.len(),
        load.reps,
        load.seconds,
        load.concurrencies.iter().max().copied().unwrap_or(64),
        load.example_command
    );
    let direct = cell("direct", 1);
    let bff = cell("bff-local", 1);
    let node = cell("node", 1);
    let _ = writeln!(out, "**Overhead at concurrency 1** (latency per request):\n");
    let _ = writeln!(
        out,
        "| path | p50 | p99 | req/s |\n|---|---|---|---|\n| upstream directly | {:.3} ms | {:.3} ms | {:.0} |\n| through bff-local | {:.3} ms | {:.3} ms | {:.0} |\n| through the Node BFF | {:.3} ms | {:.3} ms | {:.0} |\n",
        direct.median(|r| r.p50_us) / 1000.0,
        direct.median(|r| r.p99_us) / 1000.0,
        direct.median(|r| r.rps),
        bff.median(|r| r.p50_us) / 1000.0,
        bff.median(|r| r.p99_us) / 1000.0,
        bff.median(|r| r.rps),
        node.median(|r| r.p50_us) / 1000.0,
        node.median(|r| r.p99_us) / 1000.0,
        node.median(|r| r.rps),
    );
    let node_overhead = (node.median(|r| r.p50_us) - direct.median(|r| r.p50_us)) / 1000.0;
    let _ = writeln!(
        out,
        "bff-local adds **{overhead_p50_ms:.3} ms at p50** ({overhead_p99_ms:.3} ms at p99); the Node BFF adds \
         {node_overhead:.3} ms at p50.\n"
    );
    let _ = writeln!(
        out,
        "**Throughput** ([chart](bench/proxy.svg)):\n\n![proxy throughput](bench/proxy.svg)\n"
    );
    let _ = writeln!(
        out,
        "| c | upstream directly req/s | pass-through req/s | its share of direct | its CPU/req | bff-local req/s | share of direct | share of pass-through | p50 | p99 | CPU/req | Node req/s | p50 | p99 | CPU/req | req/s ratio | p99 ratio |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for &c in &load.concurrencies {
        let d = cell("direct", c);
        let p = cell("passthrough", c);
        let b = cell("bff-local", c);
        let n = cell("node", c);
        let share = |of: f64| {
            if of > 0.0 {
                format!("{:.0} %", b.median(|r| r.rps) / of * 100.0)
            } else {
                "–".to_owned()
            }
        };
        let _ = writeln!(
            out,
            "| {c} | {:.0} | {:.0} | {:.0} % | {:.0} µs | {:.0} | {:.0} % | {} | {:.2} ms | {:.2} ms | {:.0} µs | {:.0} | {:.2} ms | {:.2} ms | {:.0} µs | {:.1}× | {:.2}× |",
            d.median(|r| r.rps),
            p.median(|r| r.rps),
            p.median(|r| r.rps) / d.median(|r| r.rps) * 100.0,
            p.median(|r| r.cpu_us_per_request),
            b.median(|r| r.rps),
            b.median(|r| r.rps) / d.median(|r| r.rps) * 100.0,
            share(p.median(|r| r.rps)),
            b.median(|r| r.p50_us) / 1000.0,
            b.median(|r| r.p99_us) / 1000.0,
            b.median(|r| r.cpu_us_per_request),
            n.median(|r| r.rps),
            n.median(|r| r.p50_us) / 1000.0,
            n.median(|r| r.p99_us) / 1000.0,
            n.median(|r| r.cpu_us_per_request),
            b.median(|r| r.rps) / n.median(|r| r.rps),
            b.median(|r| r.p99_us) / n.median(|r| r.p99_us),
        );
    }
    let errors: u64 = load.cells.values().map(|c| c.errors()).sum();
    let requests: u64 = load.cells.values().map(|c| c.requests()).sum();
    let _ = writeln!(
        out,
        "\n\"Upstream directly\" is `wrk` against the upstream itself at the same concurrency, in the same \
         rounds: the physical floor of this machine, what a proxy that did no work of its own would approach. \
         \"Share of direct\" is bff-local's req/s divided by it; the rest is what one proxied call costs on \
         top (the session read from the embedded store, opening its sealed tokens, the header policy, \
         a second HTTP exchange and the access log) on the same two cores that wrk and the upstream use. \
         The pass-through (`bff-bench passthrough`) is a proxy on the BFF's own HTTP stack (axum and hyper \
         serving, hyper's pooled client calling the upstream) doing nothing else: no session, token, header \
         rules, log line or metrics. Its share of direct is the floor any proxy reaches here, the cost of \
         the second loopback exchange alone; bff-local's share of the pass-through is what its own work \
         leaves. \
         CPU/req is the server process's user + system CPU time per request (from `/proc/<pid>/stat`), the \
         figure least disturbed by other work on the machine. Failed requests over all runs: {errors} of \
         {requests}.\n"
    );
    let _ = writeln!(
        out,
        "**Peak RSS** (`VmHWM`, after all runs): bff-local {:.1} MB, Node BFF {:.1} MB, upstream {:.1} MB.\n",
        mb(load.peak_rss_kib.get("bff-local").copied().unwrap_or(0)),
        mb(load.peak_rss_kib.get("node").copied().unwrap_or(0)),
        mb(load.peak_rss_kib.get("upstream").copied().unwrap_or(0)),
    );
}

fn memory_section(out: &mut String, input: &Input) {
    let lambda = &input.lambda;
    let _ = writeln!(out, "## 4. Memory and size\n");
    let _ = writeln!(
        out,
        "Each function runs warm in its own emulated environment while {} real logins go through all of them \
         (login, provider pages, callback, `/auth/me`, `/api/orders`, logout at the provider, back-channel \
         logout), then one session calls `/api/orders` {} more times (and `/auth/me` a quarter as often); \
         {:.0} s in all. Peak RSS is `VmHWM` of \
         the bootstrap process at the end; duration is delivery of the event → answer posted (what Lambda \
         bills), the cold first invocation excluded. Sizes are of the x86_64 release binaries \
         (`strip = \"symbols\"`), and of the zip holding the binary as `bootstrap` (`zip -9`).\n",
        lambda.journeys, lambda.steady.calls, lambda.warm_seconds
    );
    let _ = writeln!(
        out,
        "| binary | warm invocations | warm duration p50 / p90 (ms) | RSS after 1st (MB) | peak RSS (MB) | binary (MB) | zipped (MB) |\n|---|---|---|---|---|---|---|"
    );
    let mut names: Vec<&str> = FUNCTIONS.to_vec();
    names.push(HELLO);
    for name in names {
        let w = lambda.warm.get(name).cloned().unwrap_or_default();
        let s = input.sizes.get(name).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.1} | {:.1} | {:.2}{} | {:.2} |",
            w.invocations,
            fmt_summary_ms(&w.duration_ms),
            mb(w.first_rss_kib),
            mb(w.peak_rss_kib),
            mib_bytes(s.binary),
            if s.stripped { "" } else { " (not stripped)" },
            mib_bytes(s.zipped),
        );
    }
    if let Some(s) = input.sizes.get("bff-local") {
        let _ = writeln!(
            out,
            "| bff-local (not deployed) | | | | | {:.2} | {:.2} |",
            mib_bytes(s.binary),
            mib_bytes(s.zipped)
        );
    }
    let _ = writeln!(out);
}

fn store_section(out: &mut String, input: &Input) {
    let lambda = &input.lambda;
    let _ = writeln!(out, "## 5. Store efficiency\n");
    let _ = writeln!(
        out,
        "Through the Lambda functions and the DynamoDB counting proxy (real adapter, real operations):\n"
    );
    let _ = writeln!(out, "| operation | DynamoDB operations |\n|---|---|");
    let per_call = |map: &BTreeMap<String, f64>| {
        if map.is_empty() {
            "none".to_owned()
        } else {
            map.iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        out,
        "| proxied API call, steady state (one session, {} calls; provider requests meanwhile: {}) | {} per call |",
        lambda.steady.calls,
        lambda.steady.provider_requests,
        per_call(&lambda.steady.store_per_call)
    );
    let _ = writeln!(
        out,
        "| `/auth/me`, steady state ({} calls) | {} per call |",
        lambda.steady.me_calls,
        per_call(&lambda.steady.me_store_per_call)
    );
    for (f, what) in [
        ("bff-login", "login (`/auth/login`)"),
        ("bff-callback", "login (`/auth/callback`)"),
        ("bff-backchannel", "back-channel logout (one session)"),
    ] {
        if let Some(r) = lambda.cold.get(f) {
            let _ = writeln!(out, "| {what} | {} |", calls_text(&r.calls.store));
        }
    }
    let _ = writeln!(out);
    match &input.inprocess {
        Some(json) => {
            let _ = writeln!(
                out,
                "In-process, with a counting wrapper around the store (as `tests/src/counting.rs`) and the \
                 provider's request counter; \"cold\" is a fresh `App` (empty discovery and JWKS caches), as in a \
                 new Lambda instance:\n"
            );
            let _ = writeln!(
                out,
                "| operation | store reads (of which documents) | store writes (of which documents) | provider requests |\n|---|---|---|---|"
            );
            for op in json["operations"].as_array().into_iter().flatten() {
                let provider = op["provider"]
                    .as_object()
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| match fmt_count(v).as_str() {
                                "1" => describe_provider_path(k).to_owned(),
                                n => format!("{} ×{n}", describe_provider_path(k)),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| "none".to_owned());
                let _ = writeln!(
                    out,
                    "| {} | {} ({}) | {} ({}) | {} |",
                    op["name"].as_str().unwrap_or("?"),
                    fmt_count(&op["reads"]),
                    fmt_count(&op["document_reads"]),
                    fmt_count(&op["writes"]),
                    fmt_count(&op["document_writes"]),
                    provider
                );
            }
            let _ = writeln!(out);
        }
        None => {
            let _ = writeln!(
                out,
                "(In-process counts missing: `target/bench/inprocess.json` was not written.)\n"
            );
        }
    }
}

fn fmt_count(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if (x - x.round()).abs() < 1e-9 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "?".into(),
    }
}

/// One table comparing the cold starts as deployed with a variant of them (`label`), whose
/// init and first-answer samples `samples` picks; nothing when the run has none.
fn variant_table(
    out: &mut String,
    lambda: &LambdaResults,
    intro: &str,
    label: &str,
    samples: impl Fn(&ColdResult) -> (&Vec<f64>, &Vec<f64>),
) {
    if lambda.cold.values().all(|r| samples(r).0.is_empty()) {
        return;
    }
    let _ = writeln!(out, "{intro}");
    let _ = writeln!(
        out,
        "| function | init p50 as deployed (ms) | init p50, {label} (ms) | init ratio to the floor, {label} | \
         first answer p50 as deployed (ms) | first answer p50, {label} (ms) | first answer ratio to the floor, \
         {label} |\n|---|---|---|---|---|---|---|"
    );
    for f in FUNCTIONS {
        let Some(r) = lambda.cold.get(f) else { continue };
        let (init, total) = samples(r);
        let _ = writeln!(
            out,
            "| {f} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} | {:.2}× |",
            median(&r.init_ms),
            median(init),
            median(init) / median(&r.floor_init_ms),
            median(&r.total_ms),
            median(total),
            median(total) / median(&r.floor_ms),
        );
    }
}

/// An answer upload at least this long (ms) is a stall worth pricing separately.
const STALL_MS: f64 = 1.0;

fn cost_section(out: &mut String, input: &Input) {
    let steady = &input.lambda.steady.duration_ms;
    let _ = writeln!(out, "## Cost per million API calls\n");
    let _ = writeln!(
        out,
        "Prices used (AWS Lambda, US East (N. Virginia), first tier, as published on aws.amazon.com/lambda/pricing \
         and checked on {}): arm64 **${ARM64_GB_SECOND:.10} per GB-second**, x86_64 ${X86_GB_SECOND:.10} per \
         GB-second, **${PER_MILLION_REQUESTS:.2} per million requests**; duration is billed per 1 ms, rounded up, \
         and since 1 August 2025 the init phase of a cold start is billed like the invocation for every runtime \
         (custom runtimes such as `provided.al2023` always were). Memory: {MEMORY_MB:.0} MB = 0.125 GB.\n",
        input.machine.date.split(' ').next().unwrap_or("")
    );
    let upload = &input.lambda.steady.upload_ms;
    let _ = writeln!(
        out,
        "Measured warm proxy duration (steady state: one session, {} back-to-back calls through the emulator, \
         event delivered → answer posted): p50 **{:.2} ms**, p90 {:.2} ms, p99 {:.2} ms; of which the streamed \
         answer's upload (headers → last byte) p50 {:.2} ms.{}\n",
        input.lambda.steady.calls,
        steady.p50,
        steady.p90,
        steady.p99,
        upload.p50,
        if upload.p50 >= STALL_MS {
            " The last two rows are the same calls without that upload stall (see Findings)."
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "| duration basis | billed per call | arm64 compute | + requests | arm64 total | x86_64 total |\n|---|---|---|---|---|---|"
    );
    let stall = upload.p50.max(0.0);
    let mut rows = vec![
        ("measured p50", steady.p50),
        ("measured p90", steady.p90),
        ("measured p99", steady.p99),
    ];
    if stall >= STALL_MS {
        rows.push(("p50 without the upload stall", (steady.p50 - stall).max(0.0)));
        rows.push(("p90 without the upload stall", (steady.p90 - stall).max(0.0)));
    }
    for (label, ms) in rows {
        let (billed, arm) = lambda_cost_per_million(ms, ARM64_GB_SECOND);
        let (_, x86) = lambda_cost_per_million(ms, X86_GB_SECOND);
        let _ = writeln!(
            out,
            "| {label} ({ms:.2} ms) | {billed:.0} ms | ${arm:.4} | ${PER_MILLION_REQUESTS:.2} | **${:.4}** | ${:.4} |",
            arm + PER_MILLION_REQUESTS,
            x86 + PER_MILLION_REQUESTS
        );
    }
    let per_ms = 1e6 / 1000.0 * (MEMORY_MB / 1024.0) * ARM64_GB_SECOND;
    let _ = writeln!(
        out,
        "\nEvery further millisecond billed costs ${per_ms:.4} per million calls on arm64 at 128 MB. In AWS the \
         proxy's duration is dominated by waiting: one DynamoDB `GetItem` (single-digit ms) and the upstream API \
         itself, both on loopback here; a proxy invocation that waits 20 ms for its API costs 21 ms × the rate \
         above, so the request charge and the API's own latency dominate, not the BFF's CPU time. Cold starts \
         add their init duration once per new instance. On top come the session read, one strongly consistent \
         `GetItem` (1 read request unit for an item up to 4 KB; DynamoDB on-demand: $0.125 per million read \
         request units in us-east-1 since the November 2024 price cut), and CloudWatch Logs ingestion of the \
         platform's own lines for each invocation (start, end and report) and of the function's one access-log \
         line (JSON, about 300 bytes): well under a kilobyte per call at $0.50 per GB, about $0.3 per million \
         calls.\n"
    );
    let _ = writeln!(
        out,
        "**Function URLs** cost nothing beyond the Lambda request and duration charges. Response streaming (the \
         proxy's `RESPONSE_STREAM` URL) is charged only for bytes beyond the first 6 MB of a response. \
         **CloudFront** in front (one origin for the front end and the BFF) charges per request and per byte: \
         HTTPS requests ${CLOUDFRONT_PER_10K_HTTPS:.4} per 10,000 in the United States and Europe (= ${:.2} per \
         million, more than the Lambda request charge), data transfer out from $0.085 per GB, with an always-free \
         tier of 10 million requests and 1 TB per month; origin fetches from the function URL are not charged as \
         data transfer out of Lambda. CloudFront's flat-rate plans change this arithmetic for steady traffic.\n",
        CLOUDFRONT_PER_10K_HTTPS * 100.0
    );
}

/// `bench/proxy.svg`: requests per second and p99 latency of bff-local and the Node BFF
/// at each concurrency.
pub fn chart(load: &LoadResults) -> String {
    let cell = |who: &str, c: u32| load.cell(who, c);
    let concurrencies = &load.concurrencies;
    let width = 760.0;
    let height = 380.0;
    let panel_w = 330.0;
    let panel_h = 230.0;
    let top = 90.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        svg,
        r##"<text x="20" y="26" font-size="16" font-weight="600" fill="#222">/api proxy through the BFF: bff-local (Rust) vs the Node BFF</text>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="20" y="46" fill="#555">same upstream, same provider, wrk on loopback, medians of {} × {} s runs; 2 shared cores</text>"##,
        load.reps, load.seconds
    );
    let colors = [("bff-local", "#c2410c"), ("node", "#2563eb")];
    type Metric = fn(&crate::load::Run) -> f64;
    let panels: [(&str, Metric, f64); 2] = [
        ("requests per second (higher is better)", |r| r.rps, 20.0),
        ("p99 latency, ms (lower is better)", |r| r.p99_us / 1000.0, 400.0),
    ];
    for (title, metric, x0) in panels {
        let values: Vec<f64> = concurrencies
            .iter()
            .flat_map(|&c| colors.iter().map(move |(who, _)| (who, c)))
            .map(|(who, c)| cell(who, c).median(metric))
            .collect();
        let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9) * 1.15;
        let _ = writeln!(
            svg,
            r##"<text x="{x0}" y="{}" font-weight="600" fill="#333">{title}</text>"##,
            top - 6.0
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="#999"/>"##,
            top + panel_h,
            x0 + panel_w,
            top + panel_h
        );
        let group_w = panel_w / concurrencies.len().max(1) as f64;
        let bar_w = group_w * 0.32;
        for (i, &c) in concurrencies.iter().enumerate() {
            let gx = x0 + group_w * i as f64 + group_w * 0.14;
            for (j, (who, color)) in colors.iter().enumerate() {
                let v = cell(who, c).median(metric);
                let h = if v.is_finite() { v / max * panel_h } else { 0.0 };
                let x = gx + j as f64 * (bar_w + 4.0);
                let y = top + panel_h - h;
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{color}"><title>{who} c={c}: {v:.2}</title></rect>"#
                );
                let label = if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                };
                let _ = writeln!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#333">{label}</text>"##,
                    x + bar_w / 2.0,
                    y - 3.0
                );
            }
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">c={c}</text>"##,
                gx + bar_w + 2.0,
                top + panel_h + 16.0
            );
        }
    }
    for (j, (who, color)) in colors.iter().enumerate() {
        let x = 20.0 + j as f64 * 140.0;
        let y = height - 24.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/>"#,
            y - 10.0
        );
        let name = if *who == "node" {
            "Node BFF (express)"
        } else {
            "bff-local (Rust)"
        };
        let _ = writeln!(svg, r##"<text x="{}" y="{y}" fill="#333">{name}</text>"##, x + 18.0);
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

/// The load average now (`/proc/loadavg`, 1, 5 and 15 minutes).
pub fn load_average() -> String {
    loadavg()
}

/// The date and time now, UTC.
pub fn utc_now() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

/// The cold starts under Lambda CPU shares (`bff-bench cold`, `target/bench/shares.json`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ShareRun {
    /// When the run started (UTC).
    pub when: String,
    /// Load average at the start.
    pub load_start: String,
    /// ...and at the end.
    pub load_end: String,
    /// How long it took, min.
    pub minutes: f64,
    /// Cold starts per program and size (after two discarded rounds).
    pub iterations: usize,
    /// The round trip the terminators added (`BENCH_TLS_DELAY_MS`), ms.
    #[serde(default)]
    pub delay_ms: u64,
    /// By memory size.
    pub results: Vec<crate::lambda::ShareResult>,
}

/// The first-answer targets under a CPU share: (memory, bound on the ratio to the floor).
const SHARE_TARGETS: [(u32, f64); 2] = [(128, 3.0), (1769, 1.5)];

const SHARE_ROW_PREFIX: &str = "| first answer at ";
const SHARE_START: &str = "<!-- cpu-share:start -->";
const SHARE_END: &str = "<!-- cpu-share:end -->";

/// The target rows of the CPU-share cold starts.
fn share_target_rows(run: &ShareRun) -> Vec<String> {
    let mut rows = Vec::new();
    for (memory, bound) in SHARE_TARGETS {
        let Some(result) = run.results.iter().find(|r| r.memory_mb == memory) else {
            continue;
        };
        let ratios: Vec<(&str, f64)> = FUNCTIONS
            .iter()
            .filter_map(|f| {
                let c = result.cold.get(*f)?;
                Some((*f, median(&ratios(&c.total_ms, &c.floor_ms))))
            })
            .collect();
        let Some((worst, ratio)) = ratios.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let missed: Vec<String> = ratios
            .iter()
            .filter(|(_, r)| *r > bound)
            .map(|(f, r)| format!("{f} {r:.2}×"))
            .collect();
        rows.push(format!(
            "{SHARE_ROW_PREFIX}{memory} MB (CPU share {:.1} % of a core, AWS endpoints over TLS) ≤ {bound}× the hello-world floor under the same share | worst {worst} at {ratio:.2}×{} | {} |",
            result.quota_us as f64 / PERIOD_PERCENT,
            if missed.is_empty() { String::new() } else { format!(" (over: {})", missed.join(", ")) },
            verdict(missed.is_empty())
        ));
    }
    rows
}

/// µs of quota per 1 % of a 100 ms period.
const PERIOD_PERCENT: f64 = 1000.0;

/// The section on cold starts under CPU shares, between its markers.
fn share_section(run: &ShareRun) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{SHARE_START}");
    let _ = writeln!(out, "### Cold start under a Lambda CPU share, over TLS\n");
    let quotas = run
        .results
        .iter()
        .map(|r| format!("{} MB → `{} 100000`", r.memory_mb, r.quota_us))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "Measured by `bff-bench cold` on {} in {:.1} min; load average {} at the start and {} at the end (other \
         builds share the two cores). Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB: \
         each bootstrap, the hello-world floor and the Node peer are started inside a cgroup (v1 `cpu` controller) \
         whose quota is that share of one core per 100 ms period ({quotas}; `cpu.cfs_quota_us` / \
         `cpu.cfs_period_us`), and every measured process is checked to be in it. The first event is queued before \
         the spawn, as in section 1; {} cold starts per program and size after two discarded rounds, each paired \
         with a floor cold start just before it under the same share; ratios are medians of the paired ratios.\n",
        run.when, run.minutes, run.load_start, run.load_end, run.iterations
    );
    let _ = writeln!(
        out,
        "**TLS.** DynamoDB (its counting proxy), the fake Secrets Manager and the provider are reached over HTTPS, \
         as in AWS and in any real deployment: a test CA made for the run (RSA 2048, like Amazon's server \
         certificates) signs a certificate for `localhost`; a terminator in the harness (rustls) completes a full \
         TLS handshake on every connection and forwards the plain bytes. `AWS_ENDPOINT_URL_DYNAMODB` and \
         `AWS_ENDPOINT_URL_SECRETS_MANAGER` are `https://localhost:<port>`, and this phase has a provider of its own \
         (the same `infra/provider.mjs`) whose issuer is its terminator's `https://localhost:<port>`. The functions \
         trust the CA through the documented opt-in, `SSL_CERT_FILE` naming the CA's file alone (finding F1), which \
         both their AWS SDK clients and their provider and upstream clients honour; the Node BFF through Node's, \
         `NODE_EXTRA_CA_CERTS`. *TLS* is the sum over the cold start's connections of accept → handshake complete \
         at the terminator, which holds the client's side of the handshake (key exchange, certificate chain \
         verification under the share); concurrent handshakes overlap, so the sum can exceed the wall time they \
         took. *Secrets* is the first Secrets Manager connection accepted → the last secret answered (handshakes \
         included). The hello-world floor makes no network call, so it has no TLS to do; the upstream stays on \
         plain HTTP for both BFFs. Node's floor is a Node hello-world HTTP server; Node's *init* is spawn → \
         listening, its first answer a `GET /api/orders` with the session cookie of an earlier login (the request \
         is sent once it listens, so the connection set-up is in it); the Node BFF keeps its session in its \
         cookie and has no secrets to read.{}\n",
        match run.delay_ms {
            0 => String::new(),
            ms => format!(
                " The terminators add about {ms} ms of round trip (`BENCH_TLS_DELAY_MS`): they wait {ms} ms after \
                 accepting a connection, again after its handshake, and before passing on each chunk of an answer."
            ),
        }
    );
    for result in &run.results {
        let _ = writeln!(
            out,
            "**{} MB** (quota {} µs per 100 ms; the cgroup was throttled in {} periods, {:.0} ms in all):\n",
            result.memory_mb, result.quota_us, result.throttled_periods, result.throttled_ms
        );
        let _ = writeln!(
            out,
            "| program | first answer p50 / p90 (ms) | floor p50 (ms) | ratio | init p50 (ms) | floor init p50 (ms) | init ratio | TLS connections (resumed) | TLS p50 (ms) | secrets p50 (ms) |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        let mut names: Vec<&str> = FUNCTIONS.to_vec();
        names.push("node-bff");
        for name in names {
            let Some(c) = result.cold.get(name) else {
                continue;
            };
            let total = summarize(&c.total_ms);
            let label = if name == "node-bff" {
                "Node BFF (floor: Node hello)"
            } else {
                name
            };
            let _ = writeln!(
                out,
                "| {label} | {:.1} / {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} | {:.2}× | {:.0} ({:.0}) | {:.1} | {:.1} |",
                total.p50,
                total.p90,
                median(&c.floor_ms),
                median(&ratios(&c.total_ms, &c.floor_ms)),
                median(&c.init_ms),
                median(&c.floor_init_ms),
                median(&ratios(&c.init_ms, &c.floor_init_ms)),
                median(&c.tls_connections),
                median(&c.tls_resumed),
                median(&c.tls_ms),
                median(&c.secrets_ms),
            );
        }
        let _ = writeln!(out);
    }
    // Why a missed target is missed: the measured breakdown of each function over it.
    for (memory, bound) in SHARE_TARGETS {
        let Some(result) = run.results.iter().find(|r| r.memory_mb == memory) else {
            continue;
        };
        let over: Vec<String> = FUNCTIONS
            .iter()
            .filter_map(|f| {
                let c = result.cold.get(*f)?;
                let ratio = median(&ratios(&c.total_ms, &c.floor_ms));
                (ratio > bound).then(|| {
                    let total = median(&c.total_ms);
                    let init = median(&c.init_ms);
                    format!(
                        "{f} {ratio:.2}× (first answer {total:.1} ms against the floor's {:.1}: init {init:.1} ms, of \
                         which the secret reads {:.1} ms, against the floor's init {:.1}; then the first invocation \
                         {:.1} ms with {}; TLS handshakes {:.1} ms summed over {:.0} connections)",
                        median(&c.floor_ms),
                        median(&c.secrets_ms),
                        median(&c.floor_init_ms),
                        total - init,
                        calls_text(&c.calls.store).replace("none", "no store call"),
                        median(&c.tls_ms),
                        median(&c.tls_connections),
                    )
                })
            })
            .collect();
        if !over.is_empty() {
            let _ = writeln!(out, "**Over {bound}× at {memory} MB:** {}.\n", over.join("; "));
        }
    }
    let _ = writeln!(out, "{SHARE_END}");
    out
}

/// `existing` (BENCHMARKS.md) with the CPU-share section and target rows of `run` in
/// place of earlier ones: the section before section 2, the rows first in the targets.
pub fn splice_shares(existing: &str, run: &ShareRun) -> String {
    let section = share_section(run);
    let mut text = match (existing.find(SHARE_START), existing.find(SHARE_END)) {
        (Some(a), Some(b)) if b > a => {
            let end = b + SHARE_END.len() + usize::from(existing[b + SHARE_END.len()..].starts_with('\n'));
            format!("{}{section}{}", &existing[..a], &existing[end..])
        }
        _ => match existing.find("## 2. ") {
            Some(at) => format!("{}{section}\n{}", &existing[..at], &existing[at..]),
            None => format!("{existing}\n{section}"),
        },
    };
    text = text
        .lines()
        .filter(|l| !l.starts_with(SHARE_ROW_PREFIX))
        .map(|l| format!("{l}\n"))
        .collect();
    // The findings as bench/findings.md has them now.
    if let (Some(at), Ok(findings)) = (
        text.find("## Findings\n"),
        std::fs::read_to_string(bff_bench::repo_root().join("bench/findings.md")),
    ) {
        text = format!("{}## Findings\n\n{}\n", &text[..at], findings.trim());
    }
    let rows = share_target_rows(run).join("\n");
    if let Some(targets) = text.find("## Targets")
        && let Some(rel) = text[targets..].find("|---|---|---|\n")
    {
        let at = targets + rel + "|---|---|---|\n".len();
        text.insert_str(at, &format!("{rows}\n"));
    }
    text
}

// ---- hot keys and the capacity model (`bff-bench hotkeys`)

const HOTKEYS_START: &str = "<!-- hotkeys:start -->";
const HOTKEYS_END: &str = "<!-- hotkeys:end -->";

/// DynamoDB on-demand, us-east-1: dollars per million read request units (aws.amazon.com/
/// dynamodb/pricing/on-demand, since the November 2024 price cut).
pub const DYNAMODB_PER_MILLION_RRU: f64 = 0.125;
/// DynamoDB on-demand, us-east-1: dollars per million write request units (same page).
pub const DYNAMODB_PER_MILLION_WRU: f64 = 0.625;
/// Assumption: the share of invocations that are cold starts. AWS: "cold starts typically
/// occur in under 1% of invocations" (Lambda developer guide, execution environment
/// lifecycle); a spike has many more, which the throttle columns show per cold start.
pub const COLD_START_SHARE: f64 = 0.01;
/// Assumption: refreshes per active session per hour (an access token lifetime of one hour).
pub const REFRESHES_PER_SESSION_HOUR: f64 = 1.0;
/// Assumption: proxied calls per active session per hour (one every 30 s).
pub const CALLS_PER_SESSION_HOUR: f64 = 120.0;
/// Assumption: size of a session item (sealed access, refresh and ID tokens and claims;
/// not measured by the simulation, which reads absent sessions): a strongly consistent read
/// is 1 unit, a write 3.
pub const ASSUMED_SESSION_ITEM_BYTES: usize = 3 * 1024;
/// The request rates the cost table is priced at, per second.
const COST_RATES: [f64; 3] = [1.0, 100.0, 10_000.0];

/// What the capacity model takes from the last full run: the in-process store counts
/// (section 5), the warm proxy duration and the cold proxy's first answer at 128 MB.
#[derive(Clone, Debug, Default)]
pub struct ModelBasis {
    /// `inprocess.json`'s content (`{"operations": [...]}`).
    pub inprocess: Option<serde_json::Value>,
    /// Warm proxy invocation, p50, ms.
    pub warm_p50_ms: Option<f64>,
    /// bff-proxy's first answer of a cold start under the 128 MB CPU share, p50, ms.
    pub cold_128_ms: Option<f64>,
    /// Where the figures came from.
    pub source: String,
}

impl ModelBasis {
    /// From a full run's input.
    pub fn from_input(input: &Input) -> Self {
        Self {
            inprocess: input.inprocess.clone(),
            warm_p50_ms: (input.lambda.steady.calls > 0).then_some(input.lambda.steady.duration_ms.p50),
            cold_128_ms: input.shares.as_ref().and_then(cold_128_of),
            source: "this run".into(),
        }
    }

    /// For `bff-bench hotkeys` alone: the last full run's `results.json` (or
    /// `inprocess.json` and `shares.json`), else what `markdown` (BENCHMARKS.md) shows.
    pub fn last_run(markdown: &str) -> Self {
        let dir = bff_bench::results_dir();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        if let Some(input) = read("results.json").and_then(|t| serde_json::from_str::<Input>(&t).ok()) {
            let mut basis = Self::from_input(&input);
            basis.source = format!("the last full run ({})", input.machine.date);
            return basis;
        }
        let shares = read("shares.json").and_then(|t| serde_json::from_str::<ShareRun>(&t).ok());
        let mut basis = Self {
            inprocess: read("inprocess.json").and_then(|t| serde_json::from_str(&t).ok()),
            warm_p50_ms: None,
            cold_128_ms: shares.as_ref().and_then(cold_128_of),
            source: "target/bench".into(),
        };
        let mut from_file = Vec::new();
        if basis.inprocess.is_none() {
            basis.inprocess = inprocess_from_markdown(markdown);
            from_file.push("section 5's in-process counts");
        }
        if basis.warm_p50_ms.is_none() {
            basis.warm_p50_ms = warm_p50_from_markdown(markdown);
            from_file.push("the warm proxy p50 of \"Cost per million API calls\"");
        }
        if basis.cold_128_ms.is_none() {
            basis.cold_128_ms = cold_128_from_markdown(markdown);
            from_file.push("bff-proxy's first answer at 128 MB");
        }
        if !from_file.is_empty() {
            basis.source = format!(
                "the figures BENCHMARKS.md showed when this section was written ({})",
                from_file.join(", ")
            );
        }
        basis
    }

    fn op(&self, prefix: &str) -> Option<OpCount> {
        let ops = self.inprocess.as_ref()?["operations"].as_array()?;
        let op = ops
            .iter()
            .find(|op| op["name"].as_str().is_some_and(|n| n.starts_with(prefix)))?;
        Some(OpCount {
            reads: op["reads"].as_f64()?,
            writes: op["writes"].as_f64()?,
            document_reads: op["document_reads"].as_f64().unwrap_or(0.0),
            document_writes: op["document_writes"].as_f64().unwrap_or(0.0),
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct OpCount {
    reads: f64,
    writes: f64,
    document_reads: f64,
    document_writes: f64,
}

impl std::ops::Add for OpCount {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            reads: self.reads + o.reads,
            writes: self.writes + o.writes,
            document_reads: self.document_reads + o.document_reads,
            document_writes: self.document_writes + o.document_writes,
        }
    }
}

impl std::ops::Sub for OpCount {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            reads: self.reads - o.reads,
            writes: self.writes - o.writes,
            document_reads: self.document_reads - o.document_reads,
            document_writes: self.document_writes - o.document_writes,
        }
    }
}

fn cold_128_of(run: &ShareRun) -> Option<f64> {
    let share = run.results.iter().find(|s| s.memory_mb == 128)?;
    let cold = share.cold.get("bff-proxy")?;
    (!cold.total_ms.is_empty()).then(|| median(&cold.total_ms))
}

/// Cells of a markdown table row (`| a | b |` → `["a", "b"]`).
fn cells(line: &str) -> Vec<&str> {
    line.trim().trim_matches('|').split('|').map(str::trim).collect()
}

/// Section 5's in-process table as `inprocess.json` holds it.
fn inprocess_from_markdown(markdown: &str) -> Option<serde_json::Value> {
    let section = &markdown[markdown.find("## 5. Store efficiency")?..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let table = &section[section.find("| operation | store reads")?..];
    let pair = |cell: &str| -> Option<(f64, f64)> {
        let (total, of) = cell.split_once(" (")?;
        Some((
            total.trim().parse().ok()?,
            of.trim_end_matches(')').trim().parse().ok()?,
        ))
    };
    let operations: Vec<serde_json::Value> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|line| {
            let c = cells(line);
            let (reads, document_reads) = pair(c.get(1)?)?;
            let (writes, document_writes) = pair(c.get(2)?)?;
            Some(serde_json::json!({
                "name": c[0], "reads": reads, "writes": writes,
                "document_reads": document_reads, "document_writes": document_writes,
            }))
        })
        .collect();
    (!operations.is_empty()).then(|| serde_json::json!({ "operations": operations }))
}

fn warm_p50_from_markdown(markdown: &str) -> Option<f64> {
    let section = &markdown[markdown.find("## Cost per million API calls")?..];
    let after = &section[section.find("p50 **")? + "p50 **".len()..];
    after[..after.find(" ms**")?].trim().parse().ok()
}

fn cold_128_from_markdown(markdown: &str) -> Option<f64> {
    let section = &markdown[markdown.find("**128 MB**")?..];
    let row = section.lines().find(|l| l.starts_with("| bff-proxy |"))?;
    cells(row).get(1)?.split('/').next()?.trim().parse().ok()
}

/// The measured hot items of the run (after the change): (what, size in bytes, read units
/// of one read before, after).
fn hot_items(run: &crate::hotkeys::HotkeysRun) -> Vec<(&'static str, usize, f64, f64)> {
    let size = |layout: usize, prefix: &str| {
        run.layouts
            .get(layout)
            .into_iter()
            .flat_map(|l| &l.keys)
            .filter(|k| k.label.starts_with(prefix))
            .map(|k| k.item_bytes)
            .max()
            .unwrap_or(0)
    };
    let rcu_of = |layout: usize, prefix: &str| {
        run.layouts
            .get(layout)
            .into_iter()
            .flat_map(|l| &l.keys)
            .filter(|k| k.label.starts_with(prefix))
            .map(|k| k.rcu_per_read)
            .fold(0.0, f64::max)
    };
    [
        ("discovery", "discovery"),
        ("JWKS", "JWKS"),
        ("client token", "client token"),
    ]
    .into_iter()
    .map(|(what, prefix)| {
        (
            what,
            size(1, prefix).max(size(0, prefix)),
            rcu_of(0, prefix),
            rcu_of(1, prefix),
        )
    })
    .collect()
}

fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The "Hot keys and capacity" section, between its markers.
pub fn hotkeys_section(run: &crate::hotkeys::HotkeysRun, basis: &ModelBasis) -> String {
    use crate::hotkeys::{PARTITION_RCU_PER_S, PARTITION_WCU_PER_S, TABLE_QUOTA_PER_S, WRITE_UNIT_BYTES, rcu};
    let mut out = String::new();
    let _ = writeln!(out, "{HOTKEYS_START}");
    let _ = writeln!(out, "## Hot keys and capacity\n");
    let _ = writeln!(
        out,
        "Measured by `bff-bench hotkeys` on {}; load average {} at the start and {} at the end. A traffic spike \
         starts thousands of Lambda instances at once, and every new instance reads the same few items. DynamoDB \
         serves at most {} read units and {} write units a second per partition, and an item never spans \
         partitions. The simulation starts {} emulated cold instances per layout at {} a second, each a fresh \
         in-process `App` with its own DynamoDB client built as a Lambda cold start builds it (empty in-process \
         caches), against DynamoDB Local behind the counting proxy, which records every `GetItem` and `PutItem` \
         by key (the instances all run in one process on this machine's two cores, so they start no faster \
         than the process builds them: the achieved rate is in the table). Each instance does the union of what cold starts read: discovery and the JWKS (as a callback or \
         a refresh does), the client-credentials token of a `client` route, and one session (a random key). \
         Before the burst one instance puts the deployment in its steady state (documents cached, client token \
         stored); each layout has a table of its own. *Before*: {}. *After*: {}.\n",
        run.when,
        run.load.0,
        run.load.1,
        thousands(PARTITION_RCU_PER_S),
        thousands(PARTITION_WCU_PER_S),
        thousands(run.instances as f64),
        run.rate,
        run.layouts.first().map(|l| l.description.as_str()).unwrap_or("?"),
        run.layouts.get(1).map(|l| l.description.as_str()).unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "| layout | instances ok / failed | started in (s), instances/s | burst (s) | one instance's reads p50 / p99 (ms) | \
         GetItem | peak GetItem/s | peak read units/s | PutItem | provider requests |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for l in &run.layouts {
        let provider = if l.provider.is_empty() {
            "none".to_owned()
        } else {
            provider_text(&l.provider)
        };
        let _ = writeln!(
            out,
            "| {} | {} / {} | {:.1}, {:.0} | {:.1} | {:.1} / {:.1} | {} | {} | {:.0} | {} | {} |",
            l.name,
            l.ok,
            l.failed,
            l.launch_seconds,
            (l.ok + l.failed) as f64 / l.launch_seconds.max(1e-3),
            l.seconds,
            l.latency_ms.0,
            l.latency_ms.1,
            thousands(l.reads as f64),
            thousands(l.peak_reads_per_s as f64),
            l.peak_rcu_per_s,
            l.writes,
            provider
        );
    }
    for l in run.layouts.iter().filter(|l| l.first_error.is_some()) {
        let _ = writeln!(
            out,
            "\n{}: first failure: {}",
            l.name,
            l.first_error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "\n**Reads per key** (peak: the most in any one-second window; read units as DynamoDB bills them, from the \
         item size the proxy saw: 1 unit per 4 KB rounded up, strongly consistent; half that eventually \
         consistent; an absent item costs the minimum):\n"
    );
    let _ = writeln!(
        out,
        "| layout | key | reads | peak reads/s | item (bytes) | strongly consistent | read units per read | \
         peak read units/s |\n|---|---|---|---|---|---|---|---|"
    );
    for l in &run.layouts {
        for k in l.keys.iter().take(6) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0}% | {} | {:.0} |",
                l.name,
                k.label,
                thousands(k.reads as f64),
                thousands(k.peak_per_s as f64),
                thousands(k.item_bytes as f64),
                k.consistent_share * 100.0,
                k.rcu_per_read,
                k.peak_rcu_per_s
            );
        }
        if l.keys.len() > 6 {
            let _ = writeln!(
                out,
                "| {} | ({} more keys, each at most {} reads/s) | | | | | | |",
                l.name,
                l.keys.len() - 6,
                l.keys.iter().skip(6).map(|k| k.peak_per_s).max().unwrap_or(0)
            );
        }
    }
    let sustained = run.layouts.iter().map(|l| l.peak_reads_per_s).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\nThese rates are what DynamoDB Local on loopback sustained on this machine (at most {} `GetItem`s a \
         second, with the instances and the provider on the same two cores), not what AWS would: DynamoDB Local \
         has no partitions and never throttles, so neither the rates nor the per-instance latencies (which \
         follow this machine's load and DynamoDB Local's own warm-up, not the layout) say anything about \
         AWS. What the run shows is the shape: before, every cold start reads \
         the same discovery item and the same JWKS item, so each carries the whole burst; after, each copy \
         carries about 1/{} of it, and the client token costs half a unit per read instead of one. The limits \
         below follow from the measured item sizes and DynamoDB's published per-partition limits.\n",
        thousands(sustained as f64),
        run.copies
    );

    // ---- the model
    let _ = writeln!(out, "### Capacity model\n");
    let _ = writeln!(
        out,
        "Store operations, from the in-process counts (section 5; source: {}):\n",
        basis.source
    );
    let login = basis
        .op("`/auth/login`, warm instance")
        .zip(basis.op("`/auth/callback`, warm instance"));
    let call = basis.op("`/api/*`, valid token, warm instance");
    let refresh_row = basis.op("`/api/*`, refresh due, warm instance");
    let refresh = refresh_row.zip(call).map(|(r, c)| r - c);
    let cold_rows = [
        ("`/auth/login`, new instance", "a login's cold start"),
        ("`/auth/callback`, first in the instance", "a callback's cold start"),
        ("`/api/*`, valid token, new instance", "a proxied call's cold start"),
        ("`/api/*`, refresh due, new instance", "a refresh's cold start"),
    ];
    let _ = writeln!(
        out,
        "| operation | store reads (of which documents) | store writes (of which documents) |\n|---|---|---|"
    );
    let row = |out: &mut String, what: &str, op: Option<OpCount>| {
        let _ = match op {
            Some(o) => writeln!(
                out,
                "| {what} | {} ({}) | {} ({}) |",
                fmt_count(&o.reads.into()),
                fmt_count(&o.document_reads.into()),
                fmt_count(&o.writes.into()),
                fmt_count(&o.document_writes.into())
            ),
            None => writeln!(out, "| {what} | (not counted) | (not counted) |"),
        };
    };
    row(
        &mut out,
        "login (`/auth/login` + `/auth/callback`), warm instance",
        login.map(|(a, b)| a + b),
    );
    row(&mut out, "proxied call, warm instance", call);
    row(
        &mut out,
        "refresh (beyond the call it rides on), warm instance",
        refresh,
    );
    for (name, what) in cold_rows {
        row(&mut out, what, basis.op(name));
    }
    let _ = writeln!(
        out,
        "\nA warm instance reads no document and no client token: it keeps them in memory (documents for up \
         to an hour). Only cold starts (and the hourly expiry) read the shared items, so the hot keys are the \
         cold-start path's. A document fetched from the provider is written as {} copies ({} \
         document writes: in-process counts measured before the copies show 1 there).\n",
        run.copies, run.copies
    );

    let items = hot_items(run);
    let _ = writeln!(
        out,
        "**Hot items** (sizes measured in this run, as DynamoDB bills them: attribute names and values, the \
         sealed document with its tag; read units per read as above). A cold start reads each at most once; \
         the limit is the cold-start rate at which one item's partition reaches {} read units a second, \
         assuming, after, that the {} copies sit on distinct partitions (DynamoDB splits a partition for heat \
         and places keys by hash; copies that share a partition share its limit, so the worst case is the \
         single-item limit). The request rate is that cold-start rate at {:.0}% cold starts (the stated \
         assumption below); in a spike where every request starts an instance, the two are equal.\n",
        thousands(PARTITION_RCU_PER_S),
        run.copies,
        COLD_START_SHARE * 100.0
    );
    let _ = writeln!(
        out,
        "| item | size (bytes) | read units per read, before → after | items read by cold starts, before → \
         after | cold starts/s before one partition throttles, before → after | requests/s at {:.0}% cold \
         starts, before → after |\n|---|---|---|---|---|---|",
        COLD_START_SHARE * 100.0
    );
    let mut ceilings_before = Vec::new();
    let mut ceilings_after = Vec::new();
    for (what, bytes, before, after) in &items {
        let copies = if *what == "client token" { 1 } else { run.copies };
        let limit_before = PARTITION_RCU_PER_S / before.max(0.5);
        let limit_after = PARTITION_RCU_PER_S * copies as f64 / after.max(0.5);
        ceilings_before.push((*what, limit_before));
        ceilings_after.push((*what, limit_after));
        let _ = writeln!(
            out,
            "| {what} | {} | {before} → {after} | 1 → {copies} | {} → {} | {} → {} |",
            thousands(*bytes as f64),
            thousands(limit_before),
            thousands(limit_after),
            thousands(limit_before / COLD_START_SHARE),
            thousands(limit_after / COLD_START_SHARE),
        );
    }
    let jwks_bytes = items.iter().find(|i| i.0 == "JWKS").map_or(0, |i| i.1);
    let _ = writeln!(
        out,
        "\nThe test provider's JWKS holds one key ({} bytes stored). Providers that publish several keys with their \
         certificate chains (`x5c`, as Entra ID and Auth0 do) serve JWKS of several KB: every further 4 KB costs \
         one more unit per strongly consistent read and half a unit per eventually consistent one, so a JWKS of \
         9 KB costs 1.5 units per read and its single item throttles at {} cold starts a second ({} with the \
         copies).",
        thousands(jwks_bytes as f64),
        thousands(PARTITION_RCU_PER_S / rcu(9 * 1024, false)),
        thousands(PARTITION_RCU_PER_S * run.copies as f64 / rcu(9 * 1024, false)),
    );
    let lowest = |list: &[(&str, f64)]| {
        list.iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(w, x)| format!("{} cold starts/s ({w})", thousands(x)))
            .unwrap_or_default()
    };
    let per_cold_rcu_after: f64 = items.iter().map(|i| i.3).sum::<f64>() + rcu(ASSUMED_SESSION_ITEM_BYTES, true);
    let per_cold_rcu_before: f64 = items.iter().map(|i| i.2).sum::<f64>() + rcu(ASSUMED_SESSION_ITEM_BYTES, true);
    let doc_wcu: f64 = items
        .iter()
        .filter(|i| i.0 != "client token")
        .map(|i| i.1.max(1).div_ceil(WRITE_UNIT_BYTES) as f64)
        .sum();
    let max_doc_wcu = items
        .iter()
        .filter(|i| i.0 != "client token")
        .map(|i| i.1.max(1).div_ceil(WRITE_UNIT_BYTES) as f64)
        .fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "\nThe first item to throttle: before, at {}; after, at {}. The table as a whole: an on-demand table's \
         default quota is {} read and {} write units a second (raisable through Service Quotas), and a cold \
         start that reads everything above plus its session costs {} read units before and {} after, so the \
         table quota alone allows {} such cold starts a second before and {} after; a warm proxied call costs \
         its session read ({} unit for a session item of up to 4 KB), {} calls a second. Writes: a provider \
         fetch writes every copy of the document ({} write units per copy set of discovery and JWKS, {} before), \
         once an hour in the steady state. All copies carry one expiry, so they lapse together and the provider \
         is asked no more often than with one item; but every instance that starts in the second after the \
         expiry fetches and writes them all, as before the change one item: {} such instances a second \
         reach one copy's {} write units.\n",
        lowest(&ceilings_before),
        lowest(&ceilings_after),
        thousands(TABLE_QUOTA_PER_S),
        thousands(TABLE_QUOTA_PER_S),
        per_cold_rcu_before,
        per_cold_rcu_after,
        thousands(TABLE_QUOTA_PER_S / per_cold_rcu_before),
        thousands(TABLE_QUOTA_PER_S / per_cold_rcu_after),
        rcu(ASSUMED_SESSION_ITEM_BYTES, true),
        thousands(TABLE_QUOTA_PER_S / rcu(ASSUMED_SESSION_ITEM_BYTES, true)),
        doc_wcu * run.copies as f64,
        doc_wcu,
        thousands(PARTITION_WCU_PER_S / max_doc_wcu.max(1.0)),
        thousands(PARTITION_WCU_PER_S),
    );

    // ---- cost
    let _ = writeln!(
        out,
        "### Cost per million calls at 1, 100 and 10,000 requests a second\n"
    );
    let _ = writeln!(
        out,
        "Assumptions (constants in `bench/src/report.rs`): {:.0}% of invocations are cold starts; each active \
         session makes {:.0} proxied calls and {:.0} refresh an hour; a session item is {} bytes ({} read unit \
         per strongly consistent read, {} write units per write). Prices: Lambda ${PER_MILLION_REQUESTS:.2} per \
         million requests and ${ARM64_GB_SECOND:.10} per GB-second on arm64 at {MEMORY_MB:.0} MB, billed per ms \
         rounded up; DynamoDB on-demand ${DYNAMODB_PER_MILLION_RRU} per million read and \
         ${DYNAMODB_PER_MILLION_WRU} per million write request units (us-east-1). Durations: the warm proxy p50 \
         ({}) and, per cold start, bff-proxy's first answer at 128 MB ({}); source: {}. A cold start reads the \
         items above ({} read units after). Logins, provider calls, logs and CloudFront are left out.\n",
        COLD_START_SHARE * 100.0,
        CALLS_PER_SESSION_HOUR,
        REFRESHES_PER_SESSION_HOUR,
        thousands(ASSUMED_SESSION_ITEM_BYTES as f64),
        rcu(ASSUMED_SESSION_ITEM_BYTES, true),
        ASSUMED_SESSION_ITEM_BYTES.div_ceil(WRITE_UNIT_BYTES),
        basis
            .warm_p50_ms
            .map_or("not measured".into(), |m| format!("{m:.2} ms")),
        basis
            .cold_128_ms
            .map_or("not measured".into(), |m| format!("{m:.1} ms")),
        basis.source,
        per_cold_rcu_after,
    );
    match (basis.warm_p50_ms, call, refresh) {
        (Some(warm), Some(call), Some(refresh)) => {
            let cold_ms = basis.cold_128_ms.unwrap_or(warm);
            let gb = MEMORY_MB / 1024.0;
            let lambda_per_call = PER_MILLION_REQUESTS / 1e6 + warm.ceil().max(1.0) / 1000.0 * gb * ARM64_GB_SECOND;
            let cold_lambda = cold_ms.ceil() / 1000.0 * gb * ARM64_GB_SECOND;
            let session_rru = rcu(ASSUMED_SESSION_ITEM_BYTES, true);
            let session_wru = ASSUMED_SESSION_ITEM_BYTES.div_ceil(WRITE_UNIT_BYTES) as f64;
            let refreshes_per_call = REFRESHES_PER_SESSION_HOUR / CALLS_PER_SESSION_HOUR;
            let dynamo_per_call = call.reads * session_rru * DYNAMODB_PER_MILLION_RRU / 1e6
                + call.writes * session_wru * DYNAMODB_PER_MILLION_WRU / 1e6
                + refreshes_per_call
                    * (refresh.reads * session_rru * DYNAMODB_PER_MILLION_RRU / 1e6
                        + refresh.writes * session_wru * DYNAMODB_PER_MILLION_WRU / 1e6);
            let cold_dynamo = per_cold_rcu_after * DYNAMODB_PER_MILLION_RRU / 1e6;
            let _ = writeln!(
                out,
                "| requests/s | calls/hour | cold starts/hour | active sessions | refreshes/hour | Lambda per \
                 million calls | DynamoDB per million calls | total per million calls | per 30 days | peak read \
                 units/s (of the {} table quota) |\n|---|---|---|---|---|---|---|---|---|---|",
                thousands(TABLE_QUOTA_PER_S)
            );
            for rate in COST_RATES {
                let per_hour = rate * 3600.0;
                let cold_per_hour = per_hour * COLD_START_SHARE;
                let sessions = per_hour / CALLS_PER_SESSION_HOUR;
                let lambda = 1e6 * (lambda_per_call + COLD_START_SHARE * cold_lambda);
                let dynamo = 1e6 * (dynamo_per_call + COLD_START_SHARE * cold_dynamo);
                let month = (lambda + dynamo) * per_hour * 24.0 * 30.0 / 1e6;
                let rcu_per_s = rate
                    * (call.reads * session_rru
                        + refreshes_per_call * refresh.reads * session_rru
                        + COLD_START_SHARE * per_cold_rcu_after);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | ${lambda:.4} | ${dynamo:.4} | **${:.4}** | ${} | {} ({:.1}%) |",
                    thousands(rate),
                    thousands(per_hour),
                    thousands(cold_per_hour),
                    thousands(sessions),
                    thousands(sessions * REFRESHES_PER_SESSION_HOUR),
                    lambda + dynamo,
                    thousands(month),
                    thousands(rcu_per_s),
                    rcu_per_s / TABLE_QUOTA_PER_S * 100.0
                );
            }
            let _ = writeln!(
                out,
                "\nPer call the cost does not depend on the rate (everything scales with it); the rate decides the \
                 monthly bill and how close the table comes to its quota. The copies change the cost by nothing \
                 measurable: a provider fetch writes {} copies instead of one, about once an hour.\n",
                run.copies
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "(Not priced: the warm duration or the in-process counts are missing; run `bash bench/run.sh`.)\n"
            );
        }
    }
    let _ = writeln!(out, "{HOTKEYS_END}");
    out
}

/// `existing` (BENCHMARKS.md) with the hot-key section of `run` in place of an earlier one,
/// else placed before "Cost per million API calls".
pub fn splice_hotkeys(existing: &str, run: &crate::hotkeys::HotkeysRun, basis: &ModelBasis) -> String {
    let section = hotkeys_section(run, basis);
    match (existing.find(HOTKEYS_START), existing.find(HOTKEYS_END)) {
        (Some(a), Some(b)) if b > a => {
            let end = b + HOTKEYS_END.len() + usize::from(existing[b + HOTKEYS_END.len()..].starts_with('\n'));
            format!("{}{section}{}", &existing[..a], &existing[end..])
        }
        _ => match existing.find("## Cost per million API calls") {
            Some(at) => format!("{}{section}\n{}", &existing[..at], &existing[at..]),
            None => format!("{existing}\n{section}"),
        },
    }
}
