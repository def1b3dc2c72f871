//! What `bff-local` writes when its output is a file, not a terminal: plain text without
//! colour codes, and access lines of refused requests naming the error the client got;
//! with `BFF_LOG_FORMAT=json`, JSON lines each with its time and request, and a line for
//! each refresh and session end naming the user by a keyed hash only.

use std::collections::HashMap;
use std::time::Duration;

use bff_testkit::BffBrowser;
use bff_testkit::provider::Provider;
use bff_tests::app::TEST_TOKEN_KEYS;
use bff_tests::capture::{StoreBackend, free_listen_addr, spawn};
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_to_a_pipe_has_no_colour_codes_and_error_lines_name_the_error_code() {
    let listen = free_listen_addr();
    let env: HashMap<&'static str, String> = HashMap::from([
        // Nothing is fetched from the provider for the requests below.
        ("BFF_ISSUER", "http://127.0.0.1:1".to_owned()),
        ("BFF_CLIENT_ID", "client".to_owned()),
        ("BFF_CLIENT_SECRET", "secret".to_owned()),
        ("BFF_PUBLIC_URL", format!("http://{listen}")),
        ("BFF_UPSTREAM_URL", "http://127.0.0.1:1/".to_owned()),
    ]);
    let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
    let http = reqwest::Client::new();
    let refused = http.get(format!("{}/api/orders", bff.url)).send().await.expect("api");
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    let bad = http
        .get(format!("{}/auth/login?returnTo=//evil.example", bff.url))
        .send()
        .await
        .expect("login");
    assert_eq!(bad.status(), 400);

    let log = bff.stop();
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
    let access: Vec<&str> = log.lines().filter(|l| l.contains("request")).collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=403") && l.contains("error=\"csrf_header_missing\"")),
        "{log}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=400") && l.contains("error=\"invalid_return_to\"")),
        "{log}"
    );
}

/// `timestamp` as the JSON lines write it: RFC 3339 in UTC (`2026-01-02T03:04:05.123456Z`).
fn is_rfc3339_utc(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| b.get(range).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && value.ends_with('Z')
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1) && b.len() > 21))
}

/// The keyed hash the BFF logs `sub` under, recomputed from `BFF_TOKEN_KEYS`.
fn keyed_hash(keys: &str, sub: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let sealer = bff::platform::seal::Sealer::from_config(keys).expect("keys");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&sealer.log_key()).expect("key");
    mac.update(sub.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_time_and_request_and_name_refreshes_and_expiries_by_keyed_hash() {
    // Access tokens of 2 s are due for refresh after 1 s; sessions idle for 3 s end.
    let provider = tokio::task::spawn_blocking(|| Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "2")]))
        .await
        .expect("provider");
    let listen = free_listen_addr();
    let origin = format!("http://{listen}");
    let client = provider.register(&origin, "client_secret_basic").await;
    let upstream = Upstream::start().await;
    let env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id),
        ("BFF_CLIENT_SECRET", client.client_secret),
        ("BFF_PUBLIC_URL", origin),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
        ("BFF_SESSION_IDLE_SECS", "3".to_owned()),
        ("BFF_LOG_FORMAT", "json".to_owned()),
    ]);
    let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
    let browser = BffBrowser::new(&bff.url, &provider.issuer);
    browser.login("alice", "/").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(browser.api(Method::GET, "/api/orders").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(browser.get("/auth/me").await.status(), StatusCode::UNAUTHORIZED);
    let metrics = reqwest::get(format!("{}/metrics", bff.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("bff_sessions_ended_total{reason=\"idle\"} 1\n"),
        "the idle session is counted as ended:\n{metrics}"
    );

    let log = bff.stop();
    let mut lines = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}\n{log}"));
        let timestamp = parsed["timestamp"].as_str().unwrap_or_default();
        assert!(is_rfc3339_utc(timestamp), "timestamp {timestamp:?} in {line}");
        lines.push(parsed);
    }
    // Lines written while a request was handled name it; only the start-up lines do not.
    let in_requests: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            !l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("bff-local listening"))
        })
        .collect();
    assert!(in_requests.len() > 5, "{log}");
    for line in &in_requests {
        let id = line["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "no request_id: {line}\n{log}");
    }

    let expected = keyed_hash(TEST_TOKEN_KEYS, "alice");
    let unkeyed = bff::domain::secret::hash("alice");
    let with_reason =
        |reason: &str| -> Vec<&Value> { lines.iter().filter(|l| l["fields"]["reason"] == reason).collect() };
    for reason in ["refreshed", "idle_expiry"] {
        let found = with_reason(reason);
        assert_eq!(found.len(), 1, "one {reason} line expected:\n{log}");
        assert_eq!(found[0]["fields"]["sub_hash"], expected.as_str(), "{log}");
        assert!(!found[0].to_string().contains("alice"), "{log}");
    }
    let access = lines
        .iter()
        .filter(|l| l["target"] == "access" && l["fields"]["sub_hash"] != "");
    for line in access {
        assert_eq!(line["fields"]["sub_hash"], expected.as_str(), "{log}");
    }
    assert!(
        !log.contains(&unkeyed),
        "the unkeyed SHA-256 of sub is in the log:\n{log}"
    );
}

/// The warning that logins get no refresh token although the scopes ask for
/// `offline_access`: written once per process, at the first such login, naming the fix;
/// never with the default scopes against a provider that issues refresh tokens, nor at
/// discovery because a provider does not publish `prompt_values_supported` (oidc-provider
/// does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_without_a_refresh_token_is_warned_of_once_and_the_default_set_up_sees_no_warning() {
    const WARNING: &str = "the provider issued no refresh token although BFF_SCOPES asks for offline_access";
    const DISCOVERY_WARNING: &str = "asks for offline_access without prompt=consent";
    let provider = bff_testkit::provider::shared();
    let no_refresh = serde_json::json!({"grant_types": ["authorization_code"]});
    for (metadata, expected) in [(None, 0), (Some(&no_refresh), 1)] {
        let listen = free_listen_addr();
        let origin = format!("http://{listen}");
        let client = provider
            .register_client(&origin, "client_secret_basic", None, metadata)
            .await;
        let env: HashMap<&'static str, String> = HashMap::from([
            ("BFF_ISSUER", provider.issuer.clone()),
            ("BFF_CLIENT_ID", client.client_id),
            ("BFF_CLIENT_SECRET", client.client_secret),
            ("BFF_PUBLIC_URL", origin),
            ("BFF_UPSTREAM_URL", "http://127.0.0.1:1/".to_owned()),
        ]);
        let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
        for user in ["alice", "bob"] {
            let browser = BffBrowser::new(&bff.url, &provider.issuer);
            browser.login(user, "/").await;
            assert!(browser.cookie("bff-session").is_some(), "{user} logged in");
        }
        let log = bff.stop();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains(WARNING)).collect();
        assert_eq!(warnings.len(), expected, "{metadata:?}:\n{log}");
        assert!(!log.contains(DISCOVERY_WARNING), "{log}");
        for line in warnings {
            assert!(line.contains("WARN"), "{line}");
            assert!(line.contains("BFF_AUTH_PARAMS=prompt=consent"), "{line}");
        }
    }
}
