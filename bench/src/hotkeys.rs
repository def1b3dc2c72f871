//! `bff-bench hotkeys`: a burst of cold starts against one table, to see which items every
//! new instance reads and how fast.
//!
//! On AWS a traffic spike starts thousands of Lambda instances within seconds, and each
//! new instance reads the same few items: the cached discovery document and JWKS and,
//! with a `client` route, the client-credentials token. DynamoDB serves at most 3,000
//! read units a second per partition, and an item never spans partitions, so those items
//! cap how fast instances can start. This simulation starts `BENCH_HOTKEYS_INSTANCES`
//! emulated cold instances at `BENCH_HOTKEYS_RATE` a second against DynamoDB Local behind
//! the counting proxy (which records every `GetItem`/`PutItem` by key), once with the
//! layout before (one copy of each document, a strongly consistent client-token read) and
//! once with the layout as built (`bff::store::DOCUMENT_COPIES` copies, an eventually
//! consistent first read), each on a table of its own, and reports reads per key per
//! second.
//!
//! Each instance is a fresh in-process `App` with its own DynamoDB client, built as a
//! Lambda instance builds it (`bff::platform::aws::sdk_config`, `dynamodb::client`), so its
//! in-process caches are empty; the instances run in a child process (`bff-bench
//! hotkeys-instances`) whose environment is a function's. Each does a cold start's store
//! reads: discovery, the JWKS, the client token of a `client` route, one session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bff::domain::routes::TokenKind;
use bff::domain::secret::{hash, random_token};
use bff::http::app::App;
use bff::platform::aws;
use bff::platform::config::Config;
use bff::service::client_token::ClientTokens;
use bff::store::StoreKey;
use bff::store::dynamodb::{self, DynamoStore};
use bff_testkit::Provider;
use tokio::process::Command;

use crate::dynamo::{Dynamo, KeyAccess, epoch_ms};

/// DynamoDB's read throughput per partition, read units per second ("Partitions and data
/// distribution", Amazon DynamoDB Developer Guide; an item never spans partitions).
pub const PARTITION_RCU_PER_S: f64 = 3000.0;
/// DynamoDB's write throughput per partition, write units per second (same source).
pub const PARTITION_WCU_PER_S: f64 = 1000.0;
/// One read unit reads this much of an item, strongly consistent; an eventually
/// consistent read costs half ("Read/write capacity mode", DynamoDB Developer Guide).
pub const READ_UNIT_BYTES: usize = 4096;
/// One write unit writes this much of an item (same source).
pub const WRITE_UNIT_BYTES: usize = 1024;
/// On-demand tables' default per-table throughput quota, read and write units per second
/// (Service, account, and table quotas in Amazon DynamoDB; raisable through Service
/// Quotas).
pub const TABLE_QUOTA_PER_S: f64 = 40_000.0;

/// Instances per layout (knob `BENCH_HOTKEYS_INSTANCES`).
const DEFAULT_INSTANCES: usize = 2000;
/// Instances started per second (knob `BENCH_HOTKEYS_RATE`).
const DEFAULT_RATE: usize = 400;
/// The public URL the instances are configured with (nothing listens there).
const PUBLIC_URL: &str = "http://127.0.0.1:9";
/// The `client` route's resource.
const CLIENT_RESOURCE: &str = "https://reports.example";

/// The two layouts, as run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// One copy of each document; every client-token read strongly consistent.
    Before,
    /// `DOCUMENT_COPIES` copies; the client token read eventually consistent first.
    After,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Before, Self::After].into_iter().find(|l| l.name() == name)
    }

    fn describe(self) -> String {
        match self {
            Self::Before => "one copy of each document, client token read strongly consistent".into(),
            Self::After => format!(
                "{} copies of each document, client token read eventually consistent first",
                bff::store::DOCUMENT_COPIES
            ),
        }
    }
}

/// One key's reads during a burst.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyReads {
    /// What the key holds (`discovery copy 3`, `client token`, `sessions (1,999 keys)`).
    pub label: String,
    /// Reads during the burst.
    pub reads: u64,
    /// Most reads in any one-second window.
    pub peak_per_s: u64,
    /// Most read units in any one-second window.
    pub peak_rcu_per_s: f64,
    /// Share of the reads that were strongly consistent.
    pub consistent_share: f64,
    /// Largest item size read, bytes (0: never present).
    pub item_bytes: usize,
    /// Read units of one read of it (the most expensive one seen).
    pub rcu_per_read: f64,
}

/// One layout's burst.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LayoutRun {
    /// `before` or `after`.
    pub name: String,
    /// What the layout is.
    pub description: String,
    /// Instances whose reads all succeeded.
    pub ok: usize,
    /// Instances with a failed step.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Seconds from the first instance's start to the last one's end.
    pub seconds: f64,
    /// Seconds over which the instances were started.
    pub launch_seconds: f64,
    /// One instance's store reads, start to end, p50 / p99, ms.
    pub latency_ms: (f64, f64),
    /// Provider requests during the burst, by path.
    pub provider: BTreeMap<String, u64>,
    /// `GetItem`s during the burst.
    pub reads: u64,
    /// `PutItem`s during the burst.
    pub writes: u64,
    /// Most `GetItem`s in any one-second window, all keys.
    pub peak_reads_per_s: u64,
    /// Most read units in any one-second window, all keys.
    pub peak_rcu_per_s: f64,
    /// The keys, most read per second first (sessions folded into one row).
    pub keys: Vec<KeyReads>,
}

/// A whole `bff-bench hotkeys` run.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct HotkeysRun {
    /// When it ran (UTC).
    pub when: String,
    /// Load average at the start and at the end.
    pub load: (String, String),
    /// Instances per layout.
    pub instances: usize,
    /// Instances started per second (the aim).
    pub rate: usize,
    /// `bff::store::DOCUMENT_COPIES`.
    pub copies: usize,
    /// Before, then after.
    pub layouts: Vec<LayoutRun>,
}

/// Runs both layouts against `dynamo` (whose table setup this does) and `provider`.
pub async fn run(provider: &Provider, dynamo: &Dynamo, logs: &std::path::Path) -> Result<HotkeysRun, String> {
    let instances = crate::knob("BENCH_HOTKEYS_INSTANCES", DEFAULT_INSTANCES).max(1);
    let rate = crate::knob("BENCH_HOTKEYS_RATE", DEFAULT_RATE).max(1);
    let load_start = crate::report::load_average();
    let client = provider.register(PUBLIC_URL, "client_secret_basic").await;
    // DynamoDB Local (a JVM) answers its first thousands of calls slowly while it compiles
    // them: an unreported burst first, so that neither layout pays for that.
    let warmup = (instances / 4).clamp(1, 500);
    crate::dynamo::create_table(&dynamo.direct, "hotkeys-warmup").await?;
    eprintln!("  warm-up: {warmup} cold instances, not reported");
    spawn_instances(
        Layout::After,
        "hotkeys-warmup",
        provider,
        &client,
        dynamo,
        warmup,
        rate,
        logs,
    )
    .await?;
    let mut layouts = Vec::new();
    for layout in [Layout::Before, Layout::After] {
        let table = format!("hotkeys-{}", layout.name());
        crate::dynamo::create_table(&dynamo.direct, &table).await?;
        eprintln!(
            "  {}: {instances} cold instances at {rate}/s ({})",
            layout.name(),
            layout.describe()
        );
        let provider_before = provider.requests().await;
        let burst = spawn_instances(layout, &table, provider, &client, dynamo, instances, rate, logs).await?;
        let provider_after = provider.requests().await;
        let accesses = dynamo.accesses(&table, burst.start_ms, burst.end_ms);
        let result = summarise(
            layout,
            &burst,
            &accesses,
            bff_bench::delta(&provider_before, &provider_after),
        );
        eprintln!(
            "    {} ok, {} failed in {:.1} s; {} reads, peak {}/s ({:.0} RCU/s); hottest: {}",
            result.ok,
            result.failed,
            result.seconds,
            result.reads,
            result.peak_reads_per_s,
            result.peak_rcu_per_s,
            result
                .keys
                .first()
                .map(|k| format!("{} {}/s", k.label, k.peak_per_s))
                .unwrap_or_default()
        );
        layouts.push(result);
    }
    Ok(HotkeysRun {
        when: crate::report::utc_now(),
        load: (load_start, crate::report::load_average()),
        instances,
        rate,
        copies: bff::store::DOCUMENT_COPIES,
        layouts,
    })
}

/// What the child process reports of its burst.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Burst {
    start_ms: u64,
    end_ms: u64,
    launch_seconds: f64,
    ok: usize,
    failed: usize,
    first_error: Option<String>,
    latencies_ms: Vec<f64>,
}

/// Runs `bff-bench hotkeys-instances` for `layout` with a function's environment.
#[allow(clippy::too_many_arguments)]
async fn spawn_instances(
    layout: Layout,
    table: &str,
    provider: &Provider,
    client: &bff_testkit::RegisteredClient,
    dynamo: &Dynamo,
    instances: usize,
    rate: usize,
    logs: &std::path::Path,
) -> Result<Burst, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let apis = serde_json::json!([
        {"path": "/api/reports", "upstream": "http://127.0.0.1:9/", "token": "client", "resource": CLIENT_RESOURCE},
        {"path": "/api", "upstream": "http://127.0.0.1:9/"},
    ]);
    let log_path = logs.join(format!("{table}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg("hotkeys-instances")
        .env_clear()
        .envs([
            ("HOTKEYS_LAYOUT", layout.name().to_owned()),
            ("HOTKEYS_INSTANCES", instances.to_string()),
            ("HOTKEYS_RATE", rate.to_string()),
            ("BFF_ISSUER", provider.issuer.clone()),
            ("BFF_CLIENT_ID", client.client_id.clone()),
            ("BFF_CLIENT_SECRET", client.client_secret.clone()),
            ("BFF_PUBLIC_URL", PUBLIC_URL.to_owned()),
            ("BFF_APIS", apis.to_string()),
            ("BFF_TOKEN_KEYS", bff_bench::BENCH_TOKEN_KEYS.to_owned()),
            ("BFF_TABLE", table.to_owned()),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamo.counted.clone()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "benchkey".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "benchsecret".to_owned()),
        ])
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("hotkeys-instances: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .map_err(|e| format!("hotkeys-instances ({}): {e}; see {}", output.status, log_path.display()))
}

/// `bff-bench hotkeys-instances`: in a function's environment, one instance to put the
/// deployment in its steady state (documents and client token stored), then the burst.
/// Prints the [`Burst`] as one JSON line.
pub async fn instances() -> Result<(), String> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let layout = Layout::parse(&env("HOTKEYS_LAYOUT")?).ok_or("HOTKEYS_LAYOUT: before or after")?;
    let count: usize = env("HOTKEYS_INSTANCES")?.parse().map_err(|_| "HOTKEYS_INSTANCES")?;
    let rate: f64 = env("HOTKEYS_RATE")?.parse().map_err(|_| "HOTKEYS_RATE")?;
    cold_instance(layout).await?;
    // Lets the proxy's clock pass the warm-up's last call before the burst's start.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let start_ms = epoch_ms();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let due = Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        tasks.spawn(async move {
            let at = Instant::now();
            cold_instance(layout)
                .await
                .map(|()| at.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let launch_seconds = started.elapsed().as_secs_f64();
    let mut burst = Burst {
        start_ms,
        launch_seconds,
        ..Burst::default()
    };
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(ms) => {
                burst.ok += 1;
                burst.latencies_ms.push(ms);
            }
            Err(e) => {
                burst.failed += 1;
                burst.first_error.get_or_insert(e);
            }
        }
    }
    burst.end_ms = epoch_ms();
    println!("{}", serde_json::to_string(&burst).map_err(|e| e.to_string())?);
    Ok(())
}

/// One new instance: configuration, SDK and store client as a Lambda cold start builds
/// them, then the store reads of its first calls.
async fn cold_instance(layout: Layout) -> Result<(), String> {
    let sdk = aws::sdk_config().await;
    let config = Config::from_lookup(|name| std::env::var(name).ok()).map_err(|e| e.to_string())?;
    let store = DynamoStore::new(dynamodb::client(&sdk), config.table.clone());
    let mut app = App::new(config, Arc::new(store)).map_err(|e| e.to_string())?;
    if layout == Layout::Before {
        app.oidc.set_document_copies(1);
        app.client_tokens = ClientTokens::strongly_consistent_only();
    }
    app.oidc.metadata().await.map_err(|e| format!("discovery: {e}"))?;
    app.oidc.keys_ready().await.map_err(|e| format!("JWKS: {e}"))?;
    let target = app
        .config
        .routes
        .iter()
        .find(|route| matches!(route.token, TokenKind::Client))
        .map(|route| route.target.clone())
        .ok_or("no client route")?;
    app.client_tokens
        .token(app.store.as_ref(), &app.oidc, app.clock.as_ref(), &target, None)
        .await
        .map_err(|e| format!("client token: {e}"))?;
    let session = StoreKey::session(&hash(&random_token(16)));
    app.store
        .get_session(&session, app.clock.now())
        .await
        .map_err(|e| format!("session: {e}"))?;
    Ok(())
}

/// What a key holds, for the report.
fn label(pk: &str) -> String {
    let copy = pk.rsplit('#').next().unwrap_or("?");
    if pk.starts_with("doc#discovery#") {
        format!("discovery copy {copy}")
    } else if pk.starts_with("doc#jwks#") {
        format!("JWKS copy {copy}")
    } else if pk.starts_with("client#") {
        "client token".into()
    } else {
        pk.split('#').next().unwrap_or("?").to_owned()
    }
}

/// Read units of one read of an item of `bytes`.
pub fn rcu(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.max(1).div_ceil(READ_UNIT_BYTES) as f64;
    if consistent { units } else { units / 2.0 }
}

/// The largest sum of `weight` over the accesses within any one-second window.
fn peak_window(accesses: &[&KeyAccess], weight: impl Fn(&KeyAccess) -> f64) -> f64 {
    let mut sorted: Vec<&&KeyAccess> = accesses.iter().collect();
    sorted.sort_by_key(|a| a.at_ms);
    let (mut best, mut sum, mut first) = (0.0_f64, 0.0, 0);
    for (i, access) in sorted.iter().enumerate() {
        sum += weight(access);
        while sorted[first].at_ms + 1000 <= access.at_ms {
            sum -= weight(sorted[first]);
            first += 1;
        }
        debug_assert!(first <= i);
        best = best.max(sum);
    }
    best
}

fn summarise(layout: Layout, burst: &Burst, accesses: &[KeyAccess], provider: BTreeMap<String, u64>) -> LayoutRun {
    let reads: Vec<&KeyAccess> = accesses.iter().filter(|a| a.operation == "GetItem").collect();
    let cost = |a: &KeyAccess| rcu(a.item_bytes, a.consistent);
    let mut by_label: BTreeMap<String, Vec<&KeyAccess>> = BTreeMap::new();
    let mut sessions: BTreeMap<&str, usize> = BTreeMap::new();
    for access in &reads {
        let label = label(&access.pk);
        if label == "session" {
            *sessions.entry(access.pk.as_str()).or_default() += 1;
        }
        by_label.entry(label).or_default().push(access);
    }
    let mut keys: Vec<KeyReads> = by_label
        .into_iter()
        .map(|(label, list)| {
            let label = if label == "session" {
                format!(
                    "sessions ({} keys, at most {} reads each)",
                    sessions.len(),
                    sessions.values().max().copied().unwrap_or(0)
                )
            } else {
                label
            };
            let item_bytes = list.iter().map(|a| a.item_bytes).max().unwrap_or(0);
            KeyReads {
                label,
                reads: list.len() as u64,
                peak_per_s: peak_window(&list, |_| 1.0) as u64,
                peak_rcu_per_s: peak_window(&list, cost),
                consistent_share: list.iter().filter(|a| a.consistent).count() as f64 / list.len().max(1) as f64,
                item_bytes,
                rcu_per_read: list.iter().map(|a| cost(a)).fold(0.0, f64::max),
            }
        })
        .collect();
    keys.sort_by(|a, b| b.peak_rcu_per_s.total_cmp(&a.peak_rcu_per_s));
    let mut latencies = burst.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    LayoutRun {
        name: layout.name().into(),
        description: layout.describe(),
        ok: burst.ok,
        failed: burst.failed,
        first_error: burst.first_error.clone(),
        seconds: (burst.end_ms.saturating_sub(burst.start_ms)) as f64 / 1000.0,
        launch_seconds: burst.launch_seconds,
        latency_ms: (
            bff_bench::stats::quantile(&latencies, 0.5),
            bff_bench::stats::quantile(&latencies, 0.99),
        ),
        provider,
        reads: reads.len() as u64,
        writes: accesses.iter().filter(|a| a.operation == "PutItem").count() as u64,
        peak_reads_per_s: peak_window(&reads, |_| 1.0) as u64,
        peak_rcu_per_s: peak_window(&reads, cost),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(at_ms: u64, pk: &str) -> KeyAccess {
        KeyAccess {
            at_ms,
            operation: "GetItem".into(),
            table: "t".into(),
            pk: pk.into(),
            consistent: false,
            item_bytes: 5000,
        }
    }

    #[test]
    fn the_peak_window_is_the_busiest_second() {
        let all = [
            read(0, "a"),
            read(600, "a"),
            read(1100, "a"),
            read(1500, "a"),
            read(3000, "a"),
        ];
        let refs: Vec<&KeyAccess> = all.iter().collect();
        assert_eq!(peak_window(&refs, |_| 1.0), 3.0, "600, 1100 and 1500");
        assert_eq!(peak_window(&refs, |a| rcu(a.item_bytes, a.consistent)), 3.0);
    }

    #[test]
    fn read_units_round_up_per_4_kb_and_halve_when_eventually_consistent() {
        assert_eq!(rcu(0, true), 1.0);
        assert_eq!(rcu(4096, true), 1.0);
        assert_eq!(rcu(4097, true), 2.0);
        assert_eq!(rcu(4097, false), 1.0);
        assert_eq!(rcu(100, false), 0.5);
    }
}
