//! No token leaves the BFF: a whole session against a real `bff-local` process (DynamoDB
//! store, `RUST_LOG=debug`, its output captured), with every response the browser saw
//! and every log line the process wrote searched for every secret the session involved.
//!
//! The secrets come from behind the BFF's back: every version of every token, read from
//! the DynamoDB table after each step (and opened with the test's sealing keys), the
//! bearer tokens the upstream received, the PKCE verifiers of every login, the
//! authorization code, and the client secret. The one place a secret may appear is the
//! one the protocol asks for: the current ID token as `id_token_hint` in the logout
//! response's `logout_url` (OpenID Connect RP-Initiated Logout 1.0 §2).
//!
//! References: draft-ietf-oauth-browser-based-apps §6.1 (BFF: "tokens are never exposed
//! to the browser"), RFC 9700 §4.13 (refresh-token protection), RFC 7636 (the verifier
//! never leaves the client), OWASP Logging Cheat Sheet (no tokens in logs).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bff::platform::seal::Sealer;
use bff_testkit::browser::BffBrowser;
use bff_testkit::provider::Provider;
use bff_tests::app::TEST_TOKEN_KEYS;
use bff_tests::capture::{CapturedBff, StoreBackend};
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

/// A provider of this module whose access tokens live 4 s, so a refresh happens in-test.
fn short_lived_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "4")]))
}

/// Every secret the session involved, by kind.
#[derive(Default)]
struct Secrets {
    found: Vec<(&'static str, String)>,
}

impl Secrets {
    fn add(&mut self, kind: &'static str, value: &str) {
        if !value.is_empty() && !self.found.iter().any(|(_, v)| v == value) {
            self.found.push((kind, value.to_owned()));
        }
    }

    fn of_kind(&self, kind: &str) -> Vec<&str> {
        self.found
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every string that must not appear: each secret, and for JWTs also their payload
    /// and signature parts (a log printing half a token leaks its claims or signature).
    fn needles(&self) -> Vec<(String, &str)> {
        let mut needles = Vec::new();
        for (kind, value) in &self.found {
            needles.push((kind.to_string(), value.as_str()));
            let parts: Vec<&str> = value.split('.').collect();
            if parts.len() == 3 {
                for (name, part) in [("payload", parts[1]), ("signature", parts[2])] {
                    if part.len() >= 16 {
                        needles.push((format!("{kind} ({name} part)"), part));
                    }
                }
            }
        }
        needles
    }
}

/// Reads every item of `table` behind the BFF's back and adds every token and PKCE
/// verifier it holds, opened with the test's sealing keys (values that do not open are
/// taken as they are, in case they were stored in the clear).
async fn harvest(client: &aws_sdk_dynamodb::Client, table: &str, sealer: &Sealer, secrets: &mut Secrets) {
    let items = client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    for item in items {
        let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(data))) = (item.get("pk"), item.get("data")) else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        for (field, kind) in [
            ("access_token", "access token"),
            ("refresh_token", "refresh token"),
            ("id_token", "ID token"),
            ("pkce_verifier", "PKCE verifier"),
            ("dpop_key", "DPoP key"),
        ] {
            if let Some(stored) = record.get(field).and_then(Value::as_str) {
                match sealer.open(stored, pk, field) {
                    Ok(plain) => {
                        secrets.add(kind, &plain);
                        if field == "dpop_key" {
                            // The private scalar, as a JWK's `d` would print it.
                            let der = bff_tests::b64::decode(&plain);
                            if let Some(d) = der.get(36..68) {
                                secrets.add("DPoP key (private scalar)", &bff_tests::b64::encode(d));
                            }
                        }
                    }
                    Err(_) => secrets.add(kind, stored),
                }
            }
        }
    }
}

/// The session's access-token expiry (epoch seconds), read from the table.
async fn access_expires_at(client: &aws_sdk_dynamodb::Client, table: &str) -> i64 {
    let items = client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|item| match item.get("data") {
            Some(AttributeValue::S(data)) => serde_json::from_str::<Value>(data).ok(),
            _ => None,
        })
        .filter_map(|record| record.get("access_expires_at").and_then(Value::as_i64))
        .max()
        .expect("a session with an access-token expiry")
}

/// Every response the browser got from the BFF, as text: status, every header
/// (`Set-Cookie` and `Location` included) and the body.
#[derive(Default)]
struct Transcript {
    entries: Vec<(String, String)>,
}

impl Transcript {
    /// Records `response` under `label`; returns its status, headers and body.
    async fn record(
        &mut self,
        label: &str,
        response: reqwest::Response,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        let mut text = format!("{status}\n");
        for (name, value) in &headers {
            text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
        }
        text.push('\n');
        text.push_str(&body);
        self.entries.push((label.to_owned(), text));
        (status, headers, body)
    }
}

/// Where a browser-visible response or a log line contains a needle.
fn leaks<'a>(haystacks: impl Iterator<Item = (String, &'a str)>, needles: &[(String, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for (place, text) in haystacks {
        for (kind, needle) in needles {
            if text.contains(needle) {
                found.push(format!("{kind} in {place}"));
            }
        }
    }
    found
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Runs the whole session against a `bff-local` writing logs in `log_format` (`text` or
/// `json`) at `RUST_LOG=debug`, then searches everything the browser saw and every log
/// line for every secret.
async fn no_token_leaves_the_bff(log_format: &str) {
    let provider = short_lived_provider();
    let upstream = Upstream::start().await;
    let listen = bff_tests::capture::free_listen_addr();
    let origin = format!("http://{listen}");
    let client = provider.register(&origin, "client_secret_basic").await;
    let (_, dynamo, table) = bff_tests::dynamodb::fresh_store().await;
    let endpoint = tokio::task::spawn_blocking(bff_tests::dynamodb::endpoint)
        .await
        .expect("endpoint");
    let env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id.clone()),
        ("BFF_CLIENT_SECRET", client.client_secret.clone()),
        ("BFF_PUBLIC_URL", origin.clone()),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_ALLOWED_ORIGINS", "http://localhost:5173".to_owned()),
        ("BFF_UPSTREAM_TIMEOUT_SECS", "1".to_owned()),
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
        ("BFF_LOG_FORMAT", log_format.to_owned()),
    ]);
    let bff: CapturedBff = bff_tests::capture::spawn(
        &env,
        StoreBackend::Dynamo {
            endpoint,
            table: table.clone(),
        },
        listen,
        "debug",
    )
    .await;
    let sealer = Sealer::from_config(TEST_TOKEN_KEYS).expect("test keys");
    let mut secrets = Secrets::default();
    let mut seen = Transcript::default();
    let browser = BffBrowser::new(&bff.url, &provider.issuer);

    // Login: the verifier is read from the table while the transaction is pending.
    let (status, headers, _) = seen
        .record("login", browser.get("/auth/login?returnTo=/app").await)
        .await;
    assert_eq!(status, StatusCode::FOUND);
    let authorize = headers["location"].to_str().expect("location").to_owned();
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    assert_eq!(
        secrets.of_kind("PKCE verifier").len(),
        1,
        "the pending login's verifier"
    );
    let callback = browser.authenticate(&authorize, "alice").await;
    let code = Url::parse(&callback)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let state = Url::parse(&callback)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    secrets.add("authorization code", &code);
    let (status, _, _) = seen.record("callback", browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::FOUND);
    harvest(&dynamo, &table, &sealer, &mut secrets).await;

    // The session in use.
    let (status, _, _) = seen.record("me", browser.get("/auth/me").await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = seen
        .record("api get", browser.api(Method::GET, "/api/orders?page=1").await)
        .await;
    assert_eq!(status, StatusCode::OK);
    let posted = browser
        .http
        .post(format!("{}/api/orders", bff.url))
        .header("X-CSRF", "1")
        .header("Content-Type", "application/json")
        .body(r#"{"item":"book"}"#)
        .send()
        .await
        .expect("post");
    let (status, _, _) = seen.record("api post", posted).await;
    assert_eq!(status, StatusCode::OK);

    // An upstream failure (the recording upstream's /slow outlasts the 1 s timeout).
    let (status, _, _) = seen
        .record("api timeout", browser.api(Method::GET, "/api/slow").await)
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);

    // A refresh: wait until the 4 s access token is within half its lifetime of expiry.
    let due_at = access_expires_at(&dynamo, &table).await - 2;
    let wait = (due_at as f64 - epoch_now()).max(0.0) + 0.3;
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    let before = upstream.requests().len();
    let (status, _, _) = seen
        .record("api after refresh", browser.api(Method::GET, "/api/refreshed").await)
        .await;
    assert_eq!(status, StatusCode::OK);
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    let refreshed = upstream.requests()[before].bearer().expect("bearer").to_owned();

    // The upstream refuses the new token: refreshed moments ago, it is not refreshed
    // again (a forced refresh waits 30 s), and the upstream's 401 reaches the browser.
    upstream.reject(&refreshed);
    let (status, _, _) = seen
        .record("api 401 passed on", browser.api(Method::GET, "/api/refused").await)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    assert!(
        secrets.of_kind("access token").len() >= 2,
        "the login's token and the refreshed one"
    );
    assert!(secrets.of_kind("refresh token").len() >= 2, "rotated refresh tokens");

    // Error paths.
    browser.set_cookie("bff-tx", &state);
    let (status, _, _) = seen.record("replayed callback", browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let other = BffBrowser::new(&bff.url, &provider.issuer);
    let (status, _, _) = seen
        .record("callback in another browser", other.get(&callback).await)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The spent code again, under a fresh login of this browser: the provider refuses it.
    let (_, headers, _) = seen.record("second login", browser.get("/auth/login").await).await;
    let second_state = Url::parse(headers["location"].to_str().expect("location"))
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    let mut reused = Url::parse(&callback).expect("url");
    let pairs: Vec<(String, String)> = reused
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                second_state.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    reused.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, _, _) = seen.record("reused code", browser.get(reused.as_str()).await).await;
    assert!(status.is_client_error() || status.is_server_error(), "{status}");
    for (label, path) in [
        ("bad returnTo", "/auth/login?returnTo=//evil.example.com"),
        ("traversal", "/api/%2e%2e/admin"),
        (
            "provider error",
            "/auth/callback?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E",
        ),
    ] {
        let response = if path.starts_with("/api") {
            browser.api(Method::GET, path).await
        } else {
            browser.get(path).await
        };
        let (status, _, _) = seen.record(label, response).await;
        assert!(status.is_client_error(), "{label}: {status}");
    }
    let no_csrf = browser
        .http
        .get(format!("{}/api/orders", bff.url))
        .send()
        .await
        .expect("call");
    seen.record("no X-CSRF", no_csrf).await;
    let foreign = browser
        .http
        .post(format!("{}/auth/logout", bff.url))
        .header("X-CSRF", "1")
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .expect("call");
    seen.record("foreign logout", foreign).await;
    let (status, _, _) = seen
        .record(
            "me from nowhere",
            BffBrowser::new(&bff.url, &provider.issuer).get("/auth/me").await,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Logout: the one allowed appearance of the (current) ID token.
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    let current_id_token = {
        let items = dynamo
            .scan()
            .table_name(&table)
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default();
        let session = items
            .iter()
            .find(|i| matches!(i.get("kind"), Some(AttributeValue::S(k)) if k == "session"))
            .expect("the session");
        let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(data))) = (session.get("pk"), session.get("data"))
        else {
            panic!("session item shape");
        };
        let record: Value = serde_json::from_str(data).expect("json");
        sealer
            .open(record["id_token"].as_str().expect("id_token"), pk, "id_token")
            .expect("opens")
    };
    let (status, _, body) = seen.record("logout", browser.logout().await).await;
    assert_eq!(status, StatusCode::OK);
    let logout_url: Value = serde_json::from_str(&body).expect("json");
    let logout_url = Url::parse(logout_url["logout_url"].as_str().expect("logout_url")).expect("url");
    let hint: Vec<String> = logout_url
        .query_pairs()
        .filter(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(hint.len(), 1, "one id_token_hint");
    assert_eq!(hint[0], current_id_token, "the current ID token as id_token_hint");
    let allowed = format!("id_token_hint={current_id_token}");
    let (_, logout_text) = seen.entries.last_mut().expect("logout entry");
    assert_eq!(logout_text.matches(&allowed).count(), 1, "exactly once, in logout_url");
    *logout_text = logout_text.replace(&allowed, "id_token_hint=<allowed>");
    let (status, _, _) = seen.record("me after logout", browser.get("/auth/me").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The upstream's view: every bearer token it got is one the table held.
    let access_tokens = secrets.of_kind("access token").join(" ");
    for request in upstream.requests() {
        let bearer = request.bearer().expect("one bearer token per call");
        assert!(
            access_tokens.contains(bearer),
            "the upstream got a token the table never held"
        );
    }
    let upstream_tokens: Vec<String> = upstream
        .requests()
        .iter()
        .filter_map(|s| s.bearer().map(str::to_owned))
        .collect();
    for token in &upstream_tokens {
        secrets.add("access token (as the upstream got it)", token);
    }
    secrets.add("client secret", &client.client_secret);
    assert!(secrets.of_kind("PKCE verifier").len() >= 2, "both logins' verifiers");
    assert!(
        secrets.of_kind("ID token").len() >= 2,
        "the login's ID token and a refreshed one"
    );

    let output = bff.stop();
    let lines: Vec<&str> = output.lines().collect();
    // The capture works and the level is really debug: the access log is there, one line
    // per request, and debug lines from the BFF's libraries are too.
    let access_lines = lines.iter().filter(|l| l.contains("latency_ms")).count();
    assert!(
        access_lines >= seen.entries.len(),
        "{access_lines} access-log lines for {} responses",
        seen.entries.len()
    );
    assert!(
        lines.iter().any(|l| l.contains("DEBUG")),
        "RUST_LOG=debug reached the process"
    );

    let needles = secrets.needles();
    let responses = seen
        .entries
        .iter()
        .map(|(label, text)| (format!("the {label} response"), text.as_str()));
    let log = lines
        .iter()
        .enumerate()
        .map(|(i, line)| (format!("log line {}: {line}", i + 1), *line));
    let found: Vec<String> = leaks(responses.chain(log), &needles);
    assert!(found.is_empty(), "secrets left the BFF:\n{}", found.join("\n"));
}

/// draft-ietf-oauth-browser-based-apps §6.1 and OWASP Logging: through a whole session
/// (login, `/auth/me`, API calls, a refresh, an upstream 401, an upstream timeout,
/// a replayed callback, a reused code, forged calls, logout), no access, refresh or ID
/// token, PKCE verifier, authorization code or client secret reaches the browser or a
/// log line of `bff-local`'s readable log at debug level; the ID token appears only as
/// `id_token_hint` in the logout URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_no_token_reaches_the_browser_or_the_logs() {
    no_token_leaves_the_bff("text").await;
}

/// The same through the JSON log format the Lambda functions write to CloudWatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_no_token_reaches_the_browser_or_the_json_logs() {
    no_token_leaves_the_bff("json").await;
}

/// RFC 9449 with `BFF_DPOP=on`: the session's DPoP private key (read from the table and
/// opened with the test's sealing keys, while the login is pending and once the session
/// exists) appears in no response and no log line of a login, API calls and logout at
/// `RUST_LOG=debug`, as PKCS#8 or as its private scalar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dpop_key_leaves_the_bff() {
    let provider: &'static Provider = Box::leak(Box::new(Provider::start(&[("PROVIDER_DPOP", "nonce")])));
    let upstream = Upstream::start().await;
    let listen = bff_tests::capture::free_listen_addr();
    let origin = format!("http://{listen}");
    let client = provider.register(&origin, "client_secret_basic").await;
    let (_, dynamo, table) = bff_tests::dynamodb::fresh_store().await;
    let endpoint = tokio::task::spawn_blocking(bff_tests::dynamodb::endpoint)
        .await
        .expect("endpoint");
    let env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id.clone()),
        ("BFF_CLIENT_SECRET", client.client_secret.clone()),
        ("BFF_PUBLIC_URL", origin.clone()),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
        ("BFF_DPOP", "on".to_owned()),
    ]);
    let bff: CapturedBff = bff_tests::capture::spawn(
        &env,
        StoreBackend::Dynamo {
            endpoint,
            table: table.clone(),
        },
        listen,
        "debug",
    )
    .await;
    upstream.demand_dpop_nonce("upstream-nonce");
    let sealer = Sealer::from_config(TEST_TOKEN_KEYS).expect("test keys");
    let mut secrets = Secrets::default();
    let mut seen = Transcript::default();
    let browser = BffBrowser::new(&bff.url, &provider.issuer);

    let (status, headers, _) = seen
        .record("login", browser.get("/auth/login?returnTo=/app").await)
        .await;
    assert_eq!(status, StatusCode::FOUND);
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    let pending = secrets.of_kind("DPoP key");
    assert_eq!(pending.len(), 1, "the pending login holds its key");
    let pending = pending[0].to_owned();
    let authorize = headers["location"].to_str().expect("location").to_owned();
    let callback = browser.authenticate(&authorize, "alice").await;
    let (status, _, _) = seen.record("callback", browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::FOUND);
    harvest(&dynamo, &table, &sealer, &mut secrets).await;
    assert_eq!(
        secrets.of_kind("DPoP key"),
        [pending.as_str()],
        "the session keeps the login's key"
    );
    let (status, _, _) = seen.record("me", browser.get("/auth/me").await).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/orders?page=1", "/api/orders/7"] {
        let (status, _, _) = seen.record(path, browser.api(Method::GET, path).await).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    assert!(upstream.dpop_verdicts().iter().any(|v| v.outcome.is_ok()));
    let (status, _, _) = seen.record("logout", browser.logout().await).await;
    assert_eq!(status, StatusCode::OK);

    let output = bff.stop();
    assert!(output.contains("DEBUG"), "RUST_LOG=debug reached the process");
    let needles: Vec<(String, &str)> = secrets
        .found
        .iter()
        .filter(|(kind, _)| kind.starts_with("DPoP key"))
        .map(|(kind, value)| (kind.to_string(), value.as_str()))
        .collect();
    assert_eq!(needles.len(), 2, "the key and its scalar");
    let responses = seen
        .entries
        .iter()
        .map(|(label, text)| (format!("the {label} response"), text.as_str()));
    let log = output
        .lines()
        .enumerate()
        .map(|(i, line)| (format!("log line {}: {line}", i + 1), line));
    let found: Vec<String> = leaks(responses.chain(log), &needles);
    assert!(found.is_empty(), "the DPoP key left the BFF:\n{}", found.join("\n"));
}
