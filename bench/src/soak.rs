//! `bff-bench soak`: mixed traffic from many sessions through three `bff-local` processes
//! sharing one DynamoDB Local (behind the fault proxy) and one `oidc-provider` that rotates
//! refresh tokens and issues short-lived access tokens, while faults are injected at
//! random: store writes dropped, delayed or answered into the void, the token endpoint
//! held, `bff-local` processes stopped (`SIGTERM`: requests in flight finish) or killed
//! (`SIGKILL`, as a crash) and restarted on the same port.
//!
//! Each session calls one instance at a time, and now and then several at once (as a page
//! loading from several APIs does), so instances race for the same session's refresh.
//!
//! It reports the sessions lost (a session answered 401 after its login, or not working at
//! the end once the faults stop; goal 0), the refresh tokens the provider saw presented
//! twice (goal 0) and the answers by status, and writes them to `bench/soak.md` and the
//! "Soak" section of `BENCHMARKS.md`. A lost session is traced to the provider's record:
//! was its refresh token presented twice, and was a process killed just after the first
//! presentation (the rotated token then died with the process). Everything listens on
//! loopback only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_testkit::fault_proxy::{Fault, FaultProxy};
use bff_testkit::provider::RepeatedToken;
use bff_testkit::{Browser, Provider, RegisteredClient};
use tokio::process::{Child, Command};

use crate::procs::{Proc, free_port, start_ready};

/// What one soak run is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How long the traffic and the faults last.
    pub duration: Duration,
    /// Logged-in sessions sending traffic.
    pub sessions: usize,
    /// `bff-local` processes sharing the table.
    pub instances: usize,
    /// The provider's access-token lifetime, seconds (refreshes are due at half of it).
    pub access_token_ttl: u64,
    /// The `bff-local` binary.
    pub bff_local: PathBuf,
    /// Whether faults are injected (`--faults off` gives the same traffic without them).
    pub faults: bool,
    /// The mean pause between a session's calls, milliseconds (uniform over half to
    /// one and a half of it).
    pub pause_ms: u64,
}

impl Plan {
    /// Reads `--minutes N`, `--sessions N`, `--access-token-ttl S`, `--pause-ms N`,
    /// `--bff-local PATH` and `--faults on|off` from `args`; defaults: 30 minutes, 200
    /// sessions, 30 s, 1500 ms, the `dev-local` build of `bff-local`, faults on.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut plan = Self {
            duration: Duration::from_secs(30 * 60),
            sessions: 200,
            instances: 3,
            access_token_ttl: 30,
            bff_local: bff_bench::target_dir().join("dev-local/bff-local"),
            faults: true,
            pause_ms: 1500,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--minutes" => plan.duration = Duration::from_secs_f64(number()? * 60.0),
                "--sessions" => plan.sessions = number()? as usize,
                "--access-token-ttl" => plan.access_token_ttl = number()? as u64,
                "--bff-local" => plan.bff_local = PathBuf::from(value),
                "--faults" => plan.faults = value != "off",
                "--pause-ms" => plan.pause_ms = number()? as u64,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if plan.sessions == 0 || plan.access_token_ttl < 4 || plan.pause_ms < 2 {
            return Err("--sessions must be positive, --access-token-ttl at least 4 and --pause-ms at least 2".into());
        }
        Ok(plan)
    }
}

/// A small xorshift generator: the harness needs spread, not cryptographic quality.
struct Dice(u64);

impl Dice {
    fn seeded(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self((nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// A number in `low..high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low).max(1)
    }
}

/// One `bff-local` process on a fixed port, restartable.
struct Instance {
    origin: String,
    port: u16,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    /// Starts it and waits until it answers; a start that fails (DynamoDB Local slow to
    /// create the table on a busy machine, say) is tried again, up to five times.
    async fn start(&mut self, binary: &Path) {
        for attempt in 1..=5 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("bff-local log");
            let mut child = Command::new(binary)
                .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("BFF_LISTEN", format!("127.0.0.1:{}", self.port))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let probe = reqwest::Client::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                if probe.get(format!("{}/auth/me", self.origin)).send().await.is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill().await;
            eprintln!(
                "soak: {} did not start (attempt {attempt}), see {}",
                self.origin,
                self.log.display()
            );
        }
        panic!("{} did not start; see {}", self.origin, self.log.display());
    }

    /// Kills it the hard way, as a crash would.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops it as a process manager does (SIGTERM): it finishes the requests in flight,
    /// then exits; killed if it has not after 35 s.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(35), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// What the traffic saw.
#[derive(Default)]
struct Tally {
    /// Answers by status (`error` for no answer: connection refused while an instance
    /// was down, or a timeout).
    statuses: Mutex<BTreeMap<String, u64>>,
    /// Sessions answered 401 after their login: when (ms since the Unix epoch), by which
    /// instance, and what it said.
    lost: Mutex<BTreeMap<usize, (u64, usize, String)>>,
    requests: AtomicU64,
    /// Calls sent together with others of the same session.
    concurrent: AtomicU64,
}

impl Tally {
    fn count(&self, what: String) {
        if let Ok(mut statuses) = self.statuses.lock() {
            *statuses.entry(what).or_default() += 1;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Faults injected, by kind, and when each process kill happened (ms since the epoch).
#[derive(Default)]
struct Injected {
    kinds: BTreeMap<&'static str, u64>,
    kills: Vec<u64>,
}

/// Milliseconds since the Unix epoch (the provider's clock for presentations).
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How soon after a refresh token's first presentation a kill counts as having taken the
/// rotated token with it: the grant's answer and the write of the new tokens normally take
/// milliseconds; the write's retries under a store fault take longer.
const KILL_WINDOW_MS: u64 = 3_000;

/// Runs the soak and writes its report.
pub async fn run(plan: Plan) -> Result<(), String> {
    if !plan.bff_local.exists() {
        return Err(format!(
            "{} is missing: build it (bench/soak.sh does: cargo build --profile dev-local -p bff-local)",
            plan.bff_local.display()
        ));
    }
    let work = bff_bench::results_dir().join("soak");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let started_at = chrono_like_now();
    eprintln!(
        "soak: {} min, {} sessions, {} instances; logs in {}",
        plan.duration.as_secs_f64() / 60.0,
        plan.sessions,
        plan.instances,
        work.display()
    );

    // The stack: DynamoDB Local behind the fault proxy, the provider, the upstream.
    let mut command = Command::new("node");
    command
        .arg(bff_bench::repo_root().join("infra/dynamodb-local.mjs"))
        .args(["--port", "0", "--exit-on-stdin-close"]);
    let dynamo: Proc = start_ready(
        "DynamoDB Local",
        command,
        Some(&work.join("dynamodb-local.log")),
        Duration::from_secs(60),
    )
    .await;
    let ready: serde_json::Value = serde_json::from_str(&dynamo.ready).map_err(|e| e.to_string())?;
    let endpoint = ready["endpoint"].as_str().ok_or("no DynamoDB endpoint")?.to_owned();
    let proxy = Arc::new(FaultProxy::start(&endpoint).await);
    let ttl = plan.access_token_ttl.to_string();
    let provider = Arc::new(
        tokio::task::spawn_blocking(move || Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", ttl.as_str())]))
            .await
            .map_err(|e| e.to_string())?,
    );
    let upstream = bff_bench::upstream::spawn_background();

    let ports: Vec<u16> = (0..plan.instances).map(|_| free_port()).collect();
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let client = provider.register(&public, "client_secret_basic").await;
    let env = bff_env(&provider, &client, &public, &upstream, &proxy.endpoint);
    let mut instances = Vec::new();
    for (n, port) in ports.iter().enumerate() {
        let mut instance = Instance {
            origin: format!("http://127.0.0.1:{port}"),
            port: *port,
            env: env.clone(),
            log: work.join(format!("bff-local-{n}.log")),
            child: None,
        };
        let _ = std::fs::remove_file(&instance.log);
        instance.start(&plan.bff_local).await;
        instances.push(instance);
    }
    let origins: Arc<Vec<String>> = Arc::new(instances.iter().map(|i| i.origin.clone()).collect());

    // Logins through the provider's real pages.
    let login_started = Instant::now();
    let cookies = login_all(&public, plan.sessions).await?;
    eprintln!(
        "soak: {} sessions logged in in {:.0} s",
        cookies.len(),
        login_started.elapsed().as_secs_f64()
    );

    // Traffic and faults until the deadline.
    let tally = Arc::new(Tally::default());
    let traffic_started = Instant::now();
    let deadline = tokio::time::Instant::now() + plan.duration;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut traffic = tokio::task::JoinSet::new();
    for (session, cookie) in cookies.iter().enumerate() {
        traffic.spawn(session_traffic(
            session,
            cookie.clone(),
            origins.clone(),
            http.clone(),
            tally.clone(),
            plan.pause_ms,
            deadline,
        ));
    }
    let injected = if plan.faults {
        chaos(&mut instances, &plan, &proxy, &provider, &client, deadline).await
    } else {
        tokio::time::sleep_until(deadline).await;
        Injected::default()
    };
    while traffic.join_next().await.is_some() {}
    let traffic_lasted = traffic_started.elapsed();

    // The faults end: every process up, no fault armed, a lease's time for stragglers.
    proxy.clear();
    provider.slow_token_endpoint(&client, 0, 0).await;
    for instance in &mut instances {
        if instance.child.is_none() {
            instance.start(&plan.bff_local).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(16)).await;
    let finally_lost = final_check(&http, &origins, &cookies).await;

    let seen = provider.refresh_presentations(&client).await;
    let answered_401 = tally.lost.lock().map(|l| l.clone()).unwrap_or_default();
    let mut lost: BTreeSet<usize> = answered_401.keys().copied().collect();
    lost.extend(finally_lost.iter().copied());
    let causes = trace_losses(&lost, &answered_401, &finally_lost, &seen.repeated, &injected.kills);
    let mut trace = String::new();
    for line in &causes.lines {
        let _ = writeln!(trace, "{line}");
    }
    let _ = std::fs::write(work.join("lost-sessions.txt"), &trace);
    eprint!("{trace}");
    let statuses = tally.statuses.lock().map(|s| s.clone()).unwrap_or_default();
    let report = Report {
        started_at,
        plan: plan.clone(),
        traffic_lasted,
        sessions: cookies.len(),
        lost: lost.len(),
        lost_at_the_end: finally_lost.len(),
        lost_after_kill: causes.after_kill,
        lost_twice_without_kill: causes.twice_without_kill,
        refresh_grants: seen.total(),
        presented_twice: seen.per_token.iter().filter(|n| **n > 1).count() as u64,
        twice_after_kill: seen
            .repeated
            .iter()
            .filter(|r| killed_after_first(r, &injected.kills))
            .count() as u64,
        overlapping: seen.overlapping,
        abandoned: seen.abandoned,
        requests: tally.requests.load(Ordering::Relaxed),
        concurrent: tally.concurrent.load(Ordering::Relaxed),
        statuses,
        injected,
        proxy: proxy.stats(),
        logged: logged_events(&work, plan.instances),
        machine: machine(),
    };
    let text = report.markdown();
    println!("{text}");
    std::fs::write(bff_bench::repo_root().join("bench/soak.md"), &text).map_err(|e| e.to_string())?;
    splice_into_benchmarks(&text)?;
    for instance in &mut instances {
        instance.kill().await;
    }
    dynamo.stop().await;
    Ok(())
}

/// The configuration every instance shares (`BFF_LISTEN` aside).
fn bff_env(
    provider: &Provider,
    client: &RegisteredClient,
    public: &str,
    upstream: &str,
    dynamo: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id.clone()),
        ("BFF_CLIENT_SECRET", client.client_secret.clone()),
        ("BFF_PUBLIC_URL", public.to_owned()),
        ("BFF_UPSTREAM_URL", upstream.to_owned()),
        ("BFF_TOKEN_KEYS", bff_bench::BENCH_TOKEN_KEYS.to_owned()),
        ("BFF_STORE", "dynamodb".to_owned()),
        ("BFF_TABLE", "bff-soak".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamo.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "dummykey".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "dummysecret".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

/// Logs `n` users in at `origin`, twenty at a time; returns each one's `Cookie` header. A
/// login that fails (the store slow on a busy machine, say) is tried again, up to five
/// times: the soak is about sessions once logged in.
async fn login_all(origin: &str, n: usize) -> Result<Vec<String>, String> {
    let mut cookies = vec![String::new(); n];
    let mut logins = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < n || !logins.is_empty() {
        while next < n && logins.len() < 20 {
            let origin = origin.to_owned();
            let index = next;
            logins.spawn(async move {
                let mut last = String::new();
                for _ in 0..5 {
                    let origin = origin.clone();
                    // The test kit's browser panics on an unexpected answer: one attempt
                    // per task.
                    let attempt = tokio::spawn(async move {
                        let browser = Browser::new();
                        let response = browser.login_at(&origin, &format!("soak{index}"), "/").await;
                        (response.status().as_u16(), browser.cookies(&origin))
                    })
                    .await;
                    match attempt {
                        Ok((302, cookie)) => return (index, Ok(cookie)),
                        Ok((status, _)) => last = format!("answered {status}"),
                        Err(e) => last = e.to_string(),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                (index, Err(last))
            });
            next += 1;
        }
        if let Some(done) = logins.join_next().await {
            let (index, cookie) = done.map_err(|e| format!("login task: {e}"))?;
            cookies[index] = cookie.map_err(|e| format!("login {index}: {e}"))?;
        }
    }
    Ok(cookies)
}

/// One session's traffic until `deadline` or until the session is lost: a call every
/// `pause_ms` or so to a random instance (one in ten `/auth/me`, the others `/api/*`), and
/// one time in four a burst of two to four calls at once to different instances.
async fn session_traffic(
    session: usize,
    cookie: String,
    origins: Arc<Vec<String>>,
    http: reqwest::Client,
    tally: Arc<Tally>,
    pause_ms: u64,
    deadline: tokio::time::Instant,
) {
    let mut dice = Dice::seeded(session as u64 + 1);
    // Spread the sessions' first calls over a second.
    tokio::time::sleep(Duration::from_millis(dice.between(0, 1000))).await;
    let mut call = 0u64;
    while tokio::time::Instant::now() < deadline {
        let width = if dice.between(0, 4) == 0 {
            dice.between(2, 5).min(origins.len() as u64) as usize
        } else {
            1
        };
        let first = dice.between(0, origins.len() as u64) as usize;
        let mut calls = tokio::task::JoinSet::new();
        for k in 0..width {
            call += 1;
            let instance = (first + k) % origins.len();
            let url = if dice.between(0, 10) == 0 {
                format!("{}/auth/me", origins[instance])
            } else {
                format!("{}/api/soak/{session}/{call}", origins[instance])
            };
            let request = http.get(url).header("Cookie", &cookie).header("X-CSRF", "1");
            calls.spawn(async move { (instance, answer(request).await) });
        }
        if width > 1 {
            tally.concurrent.fetch_add(width as u64, Ordering::Relaxed);
        }
        let mut ended = false;
        while let Some(done) = calls.join_next().await {
            let Ok((instance, answer)) = done else { continue };
            if answer.starts_with("401") {
                ended = true;
                if let Ok(mut lost) = tally.lost.lock() {
                    lost.entry(session).or_insert((epoch_ms(), instance, answer.clone()));
                }
            }
            tally.count(answer);
        }
        if ended {
            return;
        }
        tokio::time::sleep(Duration::from_millis(dice.between(pause_ms / 2, pause_ms * 3 / 2))).await;
    }
}

/// Sends `request`; the answer as counted: the status, for a 401 with the BFF's error code
/// (`login_required`: no such session; `session_expired`: it ended), or `error` for no
/// answer.
async fn answer(request: reqwest::RequestBuilder) -> String {
    let Ok(response) = request.send().await else {
        return "error".into();
    };
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .filter(|_| status == 401);
    match code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

/// Injects a random fault every few seconds until `deadline`; returns what it injected.
async fn chaos(
    instances: &mut [Instance],
    plan: &Plan,
    proxy: &FaultProxy,
    provider: &Provider,
    client: &RegisteredClient,
    deadline: tokio::time::Instant,
) -> Injected {
    let mut dice = Dice::seeded(0xC4A05);
    let mut injected = Injected::default();
    let mut down: Option<(usize, tokio::time::Instant)> = None;
    loop {
        let pause = Duration::from_millis(dice.between(2000, 6000));
        if tokio::time::Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        if let Some((n, back_at)) = down
            && tokio::time::Instant::now() >= back_at
        {
            instances[n].start(&plan.bff_local).await;
            down = None;
        }
        let kind = match dice.between(0, 6) {
            0 => {
                proxy.arm(Fault::drop_write().for_period(Duration::from_millis(dice.between(500, 3000))));
                "store writes failing (0.5-3 s)"
            }
            1 => {
                proxy.arm(Fault::lose_answer().times(dice.between(1, 4) as usize));
                "answers to writes lost (1-3 writes)"
            }
            2 => {
                let pause = Duration::from_millis(dice.between(200, 2500));
                proxy.arm(Fault::delay(pause).times(dice.between(1, 6) as usize));
                "writes delayed (0.2-2.5 s, 1-5 writes)"
            }
            3 => {
                provider
                    .slow_token_endpoint(client, dice.between(1000, 12_000), dice.between(1, 4))
                    .await;
                "token endpoint held (1-12 s, 1-3 requests)"
            }
            4 if down.is_none() => {
                let n = dice.between(0, instances.len() as u64) as usize;
                instances[n].stop().await;
                down = Some((
                    n,
                    tokio::time::Instant::now() + Duration::from_millis(dice.between(500, 3000)),
                ));
                "bff-local stopped (SIGTERM) and restarted"
            }
            _ if down.is_none() => {
                let n = dice.between(0, instances.len() as u64) as usize;
                instances[n].kill().await;
                injected.kills.push(epoch_ms());
                down = Some((
                    n,
                    tokio::time::Instant::now() + Duration::from_millis(dice.between(500, 3000)),
                ));
                "bff-local killed (SIGKILL, as a crash) and restarted"
            }
            _ => continue,
        };
        *injected.kinds.entry(kind).or_default() += 1;
    }
    if let Some((n, _)) = down {
        instances[n].start(&plan.bff_local).await;
    }
    injected
}

/// Sessions that do not work once the faults are over: each is called up to three times
/// (a 503 or 504 may still be a lease left by a killed process, which lapses).
async fn final_check(http: &reqwest::Client, origins: &[String], cookies: &[String]) -> BTreeSet<usize> {
    let mut lost = BTreeSet::new();
    for (session, cookie) in cookies.iter().enumerate() {
        let mut ok = false;
        for attempt in 0..3 {
            let origin = &origins[(session + attempt) % origins.len()];
            let status = http
                .get(format!("{origin}/api/soak/{session}/final"))
                .header("Cookie", cookie)
                .header("X-CSRF", "1")
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 200 {
                ok = true;
                break;
            }
            if status == 401 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if !ok {
            lost.insert(session);
        }
    }
    lost
}

/// Whether a process was killed soon after `token` was first presented.
fn killed_after_first(token: &RepeatedToken, kills: &[u64]) -> bool {
    token.at.first().is_some_and(|&first| {
        kills
            .iter()
            .any(|&kill| kill + 50 >= first && kill <= first + KILL_WINDOW_MS)
    })
}

/// The lost sessions traced to the provider's record of refresh tokens presented twice.
struct Causes {
    /// One line per lost session, for `lost-sessions.txt`.
    lines: Vec<String>,
    /// Lost with their refresh token presented twice, a process killed just after the
    /// first presentation.
    after_kill: usize,
    /// Lost with their refresh token presented twice, no kill near the first presentation.
    twice_without_kill: usize,
}

fn trace_losses(
    lost: &BTreeSet<usize>,
    answered_401: &BTreeMap<usize, (u64, usize, String)>,
    finally_lost: &BTreeSet<usize>,
    repeated: &[RepeatedToken],
    kills: &[u64],
) -> Causes {
    let mut causes = Causes {
        lines: Vec::new(),
        after_kill: 0,
        twice_without_kill: 0,
    };
    for &session in lost {
        let account = format!("soak{session}");
        let twice: Vec<&RepeatedToken> = repeated
            .iter()
            .filter(|r| r.account.as_deref() == Some(account.as_str()))
            .collect();
        let after_kill = twice.iter().any(|r| killed_after_first(r, kills));
        if after_kill {
            causes.after_kill += 1;
        } else if !twice.is_empty() {
            causes.twice_without_kill += 1;
        }
        let how = match answered_401.get(&session) {
            Some((at, instance, answer)) => format!("answered {answer} by instance {instance} at {at}"),
            None if finally_lost.contains(&session) => "not working at the end".to_owned(),
            None => "lost".to_owned(),
        };
        let presentations: Vec<String> = twice.iter().map(|r| format!("{:?}", r.at)).collect();
        causes.lines.push(format!(
            "session {session}: {how}; refresh token presented twice: {}; killed just after: {after_kill}",
            if presentations.is_empty() {
                "no".to_owned()
            } else {
                presentations.join(" ")
            }
        ));
    }
    causes
}

/// What the instances logged that explains lost rotations and error answers: lines by
/// event, over every instance's log.
fn logged_events(work: &Path, instances: usize) -> BTreeMap<&'static str, usize> {
    const EVENTS: [(&str, &str); 5] = [
        (
            "rotated tokens not saved before the lease lapsed",
            "refreshed tokens not saved before the lease lapsed",
        ),
        (
            "refresh lease lost before the tokens were saved",
            "refresh lease lost before the tokens were saved",
        ),
        ("token request timed out at the BFF", "the provider timed out"),
        ("store call timed out", "DynamoDB"),
        ("store call timed out (reads)", "GetItem: timed out"),
    ];
    let mut counts = BTreeMap::new();
    for n in 0..instances {
        let log = std::fs::read_to_string(work.join(format!("bff-local-{n}.log"))).unwrap_or_default();
        for line in log.lines() {
            for (event, needle) in EVENTS {
                let hit = match event {
                    "store call timed out" => line.contains(needle) && line.contains("timed out"),
                    _ => line.contains(needle),
                };
                if hit {
                    *counts.entry(event).or_default() += 1;
                }
            }
        }
    }
    counts
}

/// A line on the machine the run had: cores, and the load when it ended.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_default();
    format!("{cores} cores, load average over the last 15 minutes at the end {load}")
}

/// One run's figures.
struct Report {
    started_at: String,
    plan: Plan,
    traffic_lasted: Duration,
    sessions: usize,
    lost: usize,
    lost_at_the_end: usize,
    lost_after_kill: usize,
    lost_twice_without_kill: usize,
    refresh_grants: u64,
    presented_twice: u64,
    twice_after_kill: u64,
    overlapping: u64,
    abandoned: u64,
    requests: u64,
    concurrent: u64,
    statuses: BTreeMap<String, u64>,
    injected: Injected,
    proxy: bff_testkit::fault_proxy::Stats,
    logged: BTreeMap<&'static str, usize>,
    machine: String,
}

impl Report {
    fn markdown(&self) -> String {
        let mut out = String::new();
        let minutes = self.traffic_lasted.as_secs_f64() / 60.0;
        let faults = if self.plan.faults {
            "every 2–6 s one fault is injected at random"
        } else {
            "no faults are injected (`--faults off`)"
        };
        let _ = writeln!(
            out,
            "Run of {} (UTC): {minutes:.1} minutes of traffic from {} sessions through {} `bff-local` \
             processes (the `{}` build) on one DynamoDB Local behind the fault proxy, and one \
             `oidc-provider` rotating refresh tokens, access tokens living {} s (a refresh per session \
             every {} s or so). Each session calls a random instance every {:.1}–{:.1} s (one call in ten \
             `/auth/me`, the others `/api/*`), one time in four two to four instances at once; {faults}. \
             After the traffic the faults stop, every process is up, and each session is called once \
             more (up to three tries). Machine: {}, shared with other work.\n",
            self.started_at,
            self.sessions,
            self.plan.instances,
            self.plan
                .bff_local
                .parent()
                .and_then(Path::file_name)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            self.plan.access_token_ttl,
            self.plan.access_token_ttl / 2,
            self.plan.pause_ms as f64 / 2000.0,
            self.plan.pause_ms as f64 * 3.0 / 2000.0,
            self.machine,
        );
        let _ = writeln!(out, "| figure | value | goal |\n|---|---|---|");
        let _ = writeln!(
            out,
            "| sessions lost (answered 401 after login, or not working at the end) | {} of {} ({} not working at the end) | 0 |",
            self.lost, self.sessions, self.lost_at_the_end
        );
        let _ = writeln!(
            out,
            "| of those, refresh token presented twice after a process kill within {} s of its first presentation | {} | |",
            KILL_WINDOW_MS / 1000,
            self.lost_after_kill
        );
        let _ = writeln!(
            out,
            "| of those, refresh token presented twice with no kill near | {} | 0 |",
            self.lost_twice_without_kill
        );
        let _ = writeln!(
            out,
            "| refresh tokens presented twice | {} (of {} refresh grants processed; {} after a kill within {} s of the first presentation) | 0 |",
            self.presented_twice,
            self.refresh_grants,
            self.twice_after_kill,
            KILL_WINDOW_MS / 1000
        );
        let _ = writeln!(
            out,
            "| refresh-token presentations overlapping a pending one | {} | 0 |",
            self.overlapping
        );
        let _ = writeln!(
            out,
            "| requests (sent together with others of the same session) | {} ({}) | |",
            self.requests, self.concurrent
        );
        let _ = writeln!(
            out,
            "\nAnswers by status (`error`: no answer, e.g. the instance was down):\n"
        );
        let _ = writeln!(out, "| status | answers |\n|---|---|");
        for (status, n) in &self.statuses {
            let _ = writeln!(out, "| {status} | {n} |");
        }
        if self.plan.faults {
            let _ = writeln!(out, "\nFaults injected:\n\n| fault | times |\n|---|---|");
            for (kind, n) in &self.injected.kinds {
                let _ = writeln!(out, "| {kind} | {n} |");
            }
        }
        let _ = writeln!(
            out,
            "\nAt the proxy: {} writes, {} dropped, {} delayed, {} answers lost. Token requests held \
             until their client hung up (dropped unprocessed): {}.",
            self.proxy.writes, self.proxy.dropped, self.proxy.delayed, self.proxy.answers_lost, self.abandoned
        );
        let _ = writeln!(out, "\nIn the `bff-local` logs:\n\n| event | lines |\n|---|---|");
        for (event, n) in &self.logged {
            let _ = writeln!(out, "| {event} | {n} |");
        }
        out
    }
}

/// Puts `text` into `BENCHMARKS.md` as its "Soak" section (replacing an earlier one, else
/// before "Findings").
fn splice_into_benchmarks(text: &str) -> Result<(), String> {
    let path = bff_bench::repo_root().join("BENCHMARKS.md");
    let Ok(current) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let section = crate::report::soak_section(text);
    let updated = match current.find("\n## Soak\n") {
        Some(start) => {
            let rest = &current[start + 1..];
            let end = rest[3..]
                .find("\n## ")
                .map(|i| start + 1 + 3 + i + 1)
                .unwrap_or(current.len());
            format!("{}{section}{}", &current[..start + 1], &current[end..])
        }
        None => match current.find("\n## Findings\n") {
            Some(at) => format!("{}{section}{}", &current[..at + 1], &current[at + 1..]),
            None => format!("{current}\n{section}"),
        },
    };
    std::fs::write(&path, updated).map_err(|e| e.to_string())
}

/// The current UTC time as `YYYY-MM-DD HH:MM`, from `date` (the harness has no date
/// library).
fn chrono_like_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
