//! Faults survived with real processes: DynamoDB Local killed in the middle of a session
//! and restarted, the identity provider frozen (`SIGSTOP`) during a login's code
//! exchange, and a slow or dead upstream while other users keep being served.
//!
//! Every fault test owns what it breaks (its own DynamoDB Local, its own provider, its
//! own `bff-local` process), stops all of it at the end through drop guards, and bounds
//! every wait. The BFF must answer each fault with the documented status
//! (`503 store_unavailable`, `504 provider_timeout`, `502`/`504` upstream) within
//! seconds, never create half a session, never panic, and recover by itself once the
//! fault is gone.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_testkit::browser::{BffBrowser, location};
use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, TEST_TOKEN_KEYS, spawn_app, spawn_app_with};
use bff_tests::capture::{CapturedBff, StoreBackend};
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The most any answer may take while a dependency is down (the store's SDK gives up
/// after 4 s; the provider's timeout is 8 s and is checked separately).
const BOUNDED: Duration = Duration::from_secs(10);

/// Sends a signal to a process by id, through the shell's own `kill` (no procps needed).
fn signal(pid: u32, signal: &str) {
    assert!(try_signal(pid, signal), "kill -{signal} {pid} failed");
}

/// Like [`signal`], for processes that may be gone already; says whether it was sent.
fn try_signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{signal} {pid} 2>/dev/null"))
        .status()
        .is_ok_and(|status| status.success())
}

/// A process frozen with `SIGSTOP`; resumed with `SIGCONT` when dropped, so a failing
/// test never leaves it frozen (a frozen provider could not even exit).
struct Frozen(u32);

impl Frozen {
    fn freeze(pid: u32) -> Self {
        signal(pid, "STOP");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        try_signal(self.0, "CONT");
    }
}

/// A dedicated DynamoDB Local (`infra/dynamodb-local.mjs`, in memory) on a fixed port, so
/// it can be killed and started again at the same endpoint. Stopped when dropped.
struct DynamoLocal {
    port: u16,
    launcher: Child,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
    diagnostics: Arc<Mutex<String>>,
}

impl DynamoLocal {
    /// Starts it on `port` and waits for its `READY` line (blocking: a few seconds).
    fn start(port: u16) -> Self {
        let mut launcher = Command::new("node")
            .arg(bff_tests::repo_root().join("infra/dynamodb-local.mjs"))
            .args(["--port", &port.to_string(), "--exit-on-stdin-close"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node infra/dynamodb-local.mjs");
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (launcher.stdin.take(), launcher.stdout.take(), launcher.stderr.take())
        else {
            panic!("launcher pipes");
        };
        // Kept, not forwarded: the launcher reports the deliberate kill on stderr.
        let diagnostics = Arc::new(Mutex::new(String::new()));
        let keep = diagnostics.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            if let Ok(mut all) = keep.lock() {
                all.push_str(&text);
            }
        });
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = launcher.wait();
                let said = diagnostics.lock().map(|d| d.clone()).unwrap_or_default();
                panic!("DynamoDB Local did not start on port {port}: {said}");
            }
            if line.starts_with("READY ") {
                break;
            }
        }
        Self {
            port,
            launcher,
            stdin: Some(stdin),
            _stdout: stdout,
            diagnostics,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Java process the launcher started (its only child).
    fn java_pid(&self) -> Option<u32> {
        let launcher = self.launcher.id();
        let children = std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children"))
            .ok()
            .or_else(|| {
                let out = Command::new("pgrep")
                    .args(["-P", &launcher.to_string()])
                    .output()
                    .ok()?;
                Some(String::from_utf8_lossy(&out.stdout).into_owned())
            })?;
        children.split_whitespace().next().and_then(|pid| pid.parse().ok())
    }

    /// Kills the database the hard way (`SIGKILL` to Java, as a crash would) and waits
    /// until its port refuses connections.
    fn crash(&mut self) {
        let Some(java) = self.java_pid() else {
            let said = self.diagnostics.lock().map(|d| d.clone()).unwrap_or_default();
            panic!("DynamoDB Local's java process is not running: {said}");
        };
        signal(java, "KILL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "DynamoDB Local still answers after SIGKILL");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The launcher notices Java's death and exits by itself.
        while self.launcher.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        let java = self.java_pid();
        // Closing stdin makes the launcher stop Java and exit.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.launcher.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.launcher.try_wait().ok().flatten().is_none() {
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
        if let Some(java) = java {
            // Usually gone already: the launcher stopped it.
            try_signal(java, "KILL");
        }
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    bff_tests::capture::free_listen_addr().port()
}

/// A dedicated provider (started off the async threads: it blocks for about a second).
async fn dedicated_provider() -> Provider {
    tokio::task::spawn_blocking(|| Provider::start(&[]))
        .await
        .expect("provider")
}

/// The `BFF_*` configuration of a `bff-local` at `origin` for a client at `provider`.
async fn bff_env(provider: &Provider, origin: &str, upstream: &Upstream) -> HashMap<&'static str, String> {
    let client = provider.register(origin, "client_secret_basic").await;
    HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id),
        ("BFF_CLIENT_SECRET", client.client_secret),
        ("BFF_PUBLIC_URL", origin.to_owned()),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_UPSTREAM_TIMEOUT_SECS", "2".to_owned()),
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
    ])
}

/// Starts `bff-local` (output captured) with a client at `provider`, on `store`.
async fn start_bff(provider: &Provider, store: StoreBackend, upstream: &Upstream) -> CapturedBff {
    let listen = bff_tests::capture::free_listen_addr();
    let env = bff_env(provider, &format!("http://{listen}"), upstream).await;
    bff_tests::capture::spawn(&env, store, listen, "info").await
}

/// The status, `error` code (JSON) and time taken of `call`.
async fn timed(call: impl std::future::Future<Output = reqwest::Response>) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let response = call.await;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(body);
    (status, code, started.elapsed())
}

/// A complete login as `user`, saying what `/auth/login` answered if it did not redirect.
async fn login(browser: &BffBrowser, user: &str, return_to: &str) -> reqwest::Response {
    let response = browser.get(&format!("/auth/login?returnTo={return_to}")).await;
    let status = response.status();
    if status != StatusCode::FOUND {
        panic!(
            "/auth/login answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let callback = browser.authenticate(&location(&response), user).await;
    browser.get(&callback).await
}

/// Waits until DynamoDB Local answers quickly: a JVM just started takes seconds over its
/// first requests, longer than the BFF's per-attempt timeout.
async fn warm_up(endpoint: &str, table: &str) {
    let client = bff_tests::dynamodb::client(endpoint);
    for _ in 0..40 {
        let started = Instant::now();
        let answered = client
            .get_item()
            .table_name(table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("warm-up".into()))
            .send()
            .await
            .is_ok();
        if answered && started.elapsed() < Duration::from_millis(300) {
            return;
        }
    }
    panic!("DynamoDB Local stays slow");
}

fn sets_session_cookie(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("bff-session=") && !c.starts_with("bff-session=;"))
}

/// The store dies in the middle of sessions and comes back: every endpoint that needs it
/// answers `503 store_unavailable` within seconds (JSON for `/auth/me`, `/api/*` and
/// `/auth/login`, a page for the callback) without panicking; a login whose session write
/// failed after the code exchange sets no cookie and leaves no session; another BFF on
/// its own store serves its users meanwhile; and once DynamoDB is back (restarted empty,
/// in memory) the same process serves new logins again without a restart of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_answers_503_quickly_creates_no_half_session_and_recovers() {
    let port = free_port();
    let (provider, dynamo) = tokio::join!(
        dedicated_provider(),
        tokio::task::spawn_blocking(move || DynamoLocal::start(port))
    );
    let mut dynamo = dynamo.expect("dynamodb local");
    let endpoint = dynamo.endpoint();
    let table = format!("bff-faults-{}", bff::domain::secret::random_token(6));
    let store = StoreBackend::Dynamo {
        endpoint: endpoint.clone(),
        table: table.clone(),
    };
    let upstream = Upstream::start().await;
    let bff = start_bff(&provider, store, &upstream).await;
    let browser = || BffBrowser::new(&bff.url, &provider.issuer);

    // Another BFF, on its own store, with its own user.
    let other = spawn_app(StoreKind::Memory).await;
    let bob = other.browser();
    bob.login("bob", "/").await;

    let alice = browser();
    warm_up(&endpoint, &table).await;
    assert_eq!(login(&alice, "alice", "/").await.status(), StatusCode::FOUND);
    assert_eq!(alice.get("/auth/me").await.status(), StatusCode::OK);
    assert_eq!(alice.api(Method::GET, "/api/x").await.status(), StatusCode::OK);
    // Two logins that will finish during the outage, walked through the provider now.
    let pending = browser();
    let pending_callback = pending.authenticate(&pending.start_login("/").await, "carol").await;
    let late = browser();
    let late_callback = late.authenticate(&late.start_login("/").await, "dave").await;

    // A login whose code exchange is in flight when the store dies: the transaction is
    // consumed, the provider (frozen meanwhile) answers after the crash, the session
    // write fails.
    let codes_redeemed = provider.grants("authorization_code").await;
    let frozen = Frozen::freeze(provider.pid());
    let late_call = {
        let http = late.http.clone();
        let url = late_callback.clone();
        tokio::spawn(async move { http.get(url).send().await.expect("callback") })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| dynamo.crash());
    drop(frozen);
    let started = Instant::now();
    let half = late_call.await.expect("join");
    assert_eq!(
        half.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the session write failed"
    );
    assert!(started.elapsed() < BOUNDED);
    assert!(half.headers().get("location").is_none(), "not sent on into the app");
    assert!(
        !sets_session_cookie(&half),
        "no session cookie for a session that was never stored"
    );
    assert!(half.text().await.expect("page").contains("store_unavailable"));
    assert_eq!(
        provider.grants("authorization_code").await,
        codes_redeemed + 1,
        "the code was redeemed: the failure came at the session write, after the exchange"
    );

    // The outage, seen by every endpoint, and by the other BFF's user at the same time.
    let newcomer = browser();
    let (me, api, login_now, bobs) = tokio::join!(
        timed(alice.get("/auth/me")),
        timed(alice.api(Method::GET, "/api/x")),
        timed(newcomer.get("/auth/login?returnTo=/")),
        timed(bob.get("/auth/me")),
    );
    for (what, (status, code, took)) in [("/auth/me", &me), ("/api/x", &api), ("/auth/login", &login_now)] {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {code}");
        assert_eq!(code, "store_unavailable", "{what}");
        assert!(*took < BOUNDED, "{what} took {took:?}");
    }
    assert_eq!(bobs.0, StatusCode::OK, "the other BFF's user is served");
    assert!(bobs.2 < Duration::from_secs(2), "and quickly: {:?}", bobs.2);
    let callback = pending.get(&pending_callback).await;
    assert_eq!(callback.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!sets_session_cookie(&callback), "no session cookie during the outage");
    assert!(
        callback
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .starts_with("text/html"),
        "the callback answers a page"
    );
    assert_eq!(upstream.requests().len(), 1, "nothing forwarded during the outage");

    // Back on the same endpoint (in memory: the data is gone, the table is recreated).
    dynamo = tokio::task::spawn_blocking(move || {
        drop(dynamo);
        DynamoLocal::start(port)
    })
    .await
    .expect("restart");
    bff::store::dynamodb::create_table(&bff_tests::dynamodb::client(&endpoint), &table)
        .await
        .expect("table");
    warm_up(&endpoint, &table).await;
    let back = browser();
    let done = login(&back, "alice", "/again").await;
    assert_eq!(done.status(), StatusCode::FOUND, "logins work again");
    assert_eq!(location(&done), "/again");
    assert_eq!(back.get("/auth/me").await.status(), StatusCode::OK);
    assert_eq!(back.api(Method::GET, "/api/y").await.status(), StatusCode::OK);
    for (who, browser) in [("pending", &pending), ("late", &late)] {
        assert!(browser.cookie("bff-session").is_none(), "{who}: no session cookie");
        assert_eq!(
            browser.get("/auth/me").await.status(),
            StatusCode::UNAUTHORIZED,
            "{who}"
        );
    }

    let output = bff.stop();
    assert!(!output.contains("panicked"), "bff-local panicked:\n{output}");
    drop(dynamo);
}

/// The provider freezes (`SIGSTOP`) while a callback exchanges its code: the callback
/// answers `504 provider_timeout` as a page after the BFF's 8 s provider timeout, creates
/// no session, and the BFF keeps serving its other users meanwhile; once the provider
/// thaws, a new login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_provider_during_callback_answers_504_and_a_later_login_works() {
    let provider = dedicated_provider().await;
    let upstream = Upstream::start().await;
    let bff = start_bff(&provider, StoreBackend::Memory, &upstream).await;
    let browser = || BffBrowser::new(&bff.url, &provider.issuer);
    let alice = browser();
    alice.login("alice", "/").await;
    let bob = browser();
    let callback = bob.authenticate(&bob.start_login("/").await, "bob").await;

    let frozen = Frozen::freeze(provider.pid());
    let bobs_call = {
        let http = bob.http.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = http.get(callback).send().await.expect("callback");
            (response, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, took) = timed(alice.get("/auth/me")).await;
    assert_eq!(status, StatusCode::OK, "other users are served meanwhile");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        !bobs_call.is_finished(),
        "the callback is still waiting for the provider"
    );

    let (response, took) = bobs_call.await.expect("join");
    drop(frozen);
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= Duration::from_millis(7500) && took < Duration::from_secs(11),
        "the 8 s provider timeout, took {took:?}"
    );
    assert!(!sets_session_cookie(&response));
    assert!(response.text().await.expect("page").contains("provider_timeout"));
    assert!(bob.cookie("bff-session").is_none());
    assert_eq!(bob.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);

    let again = browser();
    assert_eq!(
        again.login("bob", "/").await.status(),
        StatusCode::FOUND,
        "thawed: logins work"
    );
    assert_eq!(again.get("/auth/me").await.status(), StatusCode::OK);
    let output = bff.stop();
    assert!(!output.contains("panicked"), "bff-local panicked:\n{output}");
}

/// One user's calls waiting on a slow upstream (here twenty of them, each until the 2 s
/// upstream timeout) hold up nobody else: another user's `/auth/me` and API calls answer
/// at once meanwhile, and the slow calls end in `504 upstream_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_holds_up_no_other_user() {
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_UPSTREAM_TIMEOUT_SECS", "2".to_owned()));
    let app = spawn_app_with(options).await;
    let alice = app.browser();
    alice.login("alice", "/").await;
    let bob = app.browser();
    bob.login("bob", "/").await;

    let slow: Vec<_> = (0..20)
        .map(|_| {
            let http = alice.http.clone();
            let url = format!("{}/api/slow", app.url);
            tokio::spawn(async move {
                let started = Instant::now();
                let response = http.get(url).header("X-CSRF", "1").send().await.expect("slow");
                (response.status(), started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (me, api) = tokio::join!(timed(bob.get("/auth/me")), timed(bob.api(Method::GET, "/api/fast")));
    for (what, (status, code, took)) in [("/auth/me", me), ("/api/fast", api)] {
        assert_eq!(status, StatusCode::OK, "{what}: {code}");
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
    }
    assert!(slow.iter().all(|call| !call.is_finished()), "the slow calls still wait");
    for call in slow {
        let (status, took) = call.await.expect("join");
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}

/// An upstream nobody listens on fails one user's call with 502 at once, and the other
/// users' sessions and `/auth/me` are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_answers_502_while_other_users_are_served() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = format!("http://{}/v1/", closed.local_addr().expect("addr"));
    drop(closed);
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_UPSTREAM_URL", dead));
    let app = spawn_app_with(options).await;
    let alice = app.browser();
    alice.login("alice", "/").await;
    let bob = app.browser();
    bob.login("bob", "/").await;
    let (down, me) = tokio::join!(timed(alice.api(Method::GET, "/api/x")), timed(bob.get("/auth/me")));
    assert_eq!(down.0, StatusCode::BAD_GATEWAY);
    assert_eq!(down.1, "upstream_unavailable");
    assert!(down.2 < Duration::from_secs(4), "{:?}", down.2);
    assert_eq!(me.0, StatusCode::OK);
    assert!(me.2 < Duration::from_secs(1), "{:?}", me.2);
    assert_eq!(
        alice.get("/auth/me").await.status(),
        StatusCode::OK,
        "the session survives"
    );
}
