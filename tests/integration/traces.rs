//! W3C Trace Context through the proxy: the upstream (recording every request) gets the
//! browser's trace continued with the BFF's own span, or a new trace when the browser sent
//! none or an invalid one; the access-log line names the same trace id.

use std::collections::HashMap;

use bff_testkit::BffBrowser;
use bff_testkit::provider;
use bff_tests::app::{StoreKind, TEST_TOKEN_KEYS, spawn_app};
use bff_tests::capture::{StoreBackend, free_listen_addr, spawn};
use bff_tests::upstream::{Seen, Upstream};
use reqwest::StatusCode;

const BROWSER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_SPAN: &str = "00f067aa0ba902b7";

/// The trace id and span id of a valid version-00 `traceparent`, else `None`.
fn parse(traceparent: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match parts.as_slice() {
        ["00", trace, span, flags]
            if hex(trace, 32)
                && hex(span, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && span.bytes().any(|b| b != b'0') =>
        {
            Some((trace.to_string(), span.to_string()))
        }
        _ => None,
    }
}

/// An API call with `headers`, and what the upstream saw of it.
async fn call(browser: &BffBrowser, url: &str, upstream: &Upstream, headers: &[(&str, &str)]) -> Seen {
    let before = upstream.requests().len();
    let mut request = browser.http.get(format!("{url}/api/orders")).header("X-CSRF", "1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("api call");
    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.requests();
    assert_eq!(seen.len(), before + 1);
    seen[before].clone()
}

/// The one `traceparent` the upstream got, parsed.
fn traceparent_of(seen: &Seen) -> (String, String) {
    let [one] = seen.header("traceparent")[..] else {
        panic!("not exactly one traceparent: {:?}", seen.header("traceparent"));
    };
    parse(one).unwrap_or_else(|| panic!("invalid traceparent sent upstream: {one}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_the_browser_s_trace_with_the_bff_s_span_or_a_new_trace() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let sent = format!("00-{BROWSER_TRACE}-{BROWSER_SPAN}-01");

    // Continued: same trace id, the BFF's own span id; the browser's tracestate follows.
    let seen = call(
        &browser,
        &app.url,
        &app.upstream,
        &[("traceparent", &sent), ("tracestate", "shop=1")],
    )
    .await;
    let (trace, span) = traceparent_of(&seen);
    assert_eq!(trace, BROWSER_TRACE);
    assert_ne!(span, BROWSER_SPAN, "the BFF is a span of its own");
    assert_eq!(seen.header("tracestate"), ["shop=1"]);

    // Invalid (upper case, all-zero, garbage): replaced by a new valid trace, no tracestate.
    for invalid in [
        sent.to_uppercase(),
        format!("00-{}-{BROWSER_SPAN}-01", "0".repeat(32)),
        "not-a-trace".to_owned(),
    ] {
        let seen = call(
            &browser,
            &app.url,
            &app.upstream,
            &[("traceparent", &invalid), ("tracestate", "shop=1")],
        )
        .await;
        let (trace, _) = traceparent_of(&seen);
        assert_ne!(trace, BROWSER_TRACE, "{invalid}");
        assert!(!invalid.contains(&trace), "{invalid}");
        assert!(
            seen.header("tracestate").is_empty(),
            "{invalid}: tracestate of no trace"
        );
    }

    // None: a new valid trace, a different one each call.
    let first = traceparent_of(&call(&browser, &app.url, &app.upstream, &[]).await);
    let second = traceparent_of(&call(&browser, &app.url, &app.upstream, &[]).await);
    assert_ne!(first.0, second.0);

    // The proxy's other rules hold alongside: no browser credentials upstream.
    let seen = call(
        &browser,
        &app.url,
        &app.upstream,
        &[("traceparent", &sent), ("x-forwarded-for", "1.2.3.4")],
    )
    .await;
    for gone in ["cookie", "x-csrf", "x-forwarded-for", "origin"] {
        assert!(seen.header(gone).is_empty(), "{gone} reached the upstream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_line_names_the_trace_the_upstream_got() {
    let provider = provider::shared();
    let listen = free_listen_addr();
    let origin = format!("http://{listen}");
    let client = provider.register(&origin, "client_secret_basic").await;
    let upstream = Upstream::start().await;
    let env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id),
        ("BFF_CLIENT_SECRET", client.client_secret),
        ("BFF_PUBLIC_URL", origin.clone()),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
        ("BFF_LOG_FORMAT", "json".to_owned()),
    ]);
    let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
    let browser = BffBrowser::new(&bff.url, &provider.issuer);
    browser.login("alice", "/").await;
    let sent = format!("00-{BROWSER_TRACE}-{BROWSER_SPAN}-01");
    call(&browser, &bff.url, &upstream, &[("traceparent", &sent)]).await;
    let new_trace = traceparent_of(&call(&browser, &bff.url, &upstream, &[]).await).0;

    let log = bff.stop();
    let api_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "access" && line["fields"]["route"] == "api")
        .collect();
    let traces: Vec<&str> = api_lines
        .iter()
        .filter_map(|l| l["fields"]["trace_id"].as_str())
        .collect();
    assert_eq!(traces, [BROWSER_TRACE, new_trace.as_str()], "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_exchange_at_the_provider_continues_the_callback_s_trace() {
    let faulty = bff_tests::faulty_idp::spawn_app_against(bff_tests::faulty_idp::Scenario::honest()).await;
    let browser = faulty.browser();
    let login = browser.get("/auth/login?returnTo=/").await;
    assert_eq!(login.status(), StatusCode::FOUND);
    let authorize = bff_testkit::browser::location(&login);
    let back = browser.get(&authorize).await;
    let callback = bff_testkit::browser::location(&back);
    let sent = format!("00-{BROWSER_TRACE}-{BROWSER_SPAN}-01");
    let done = browser
        .http
        .get(&callback)
        .header("traceparent", &sent)
        .send()
        .await
        .expect("callback");
    assert_eq!(done.status(), StatusCode::FOUND, "{:?}", done.text().await);

    let seen = faulty.idp.token_traceparents();
    let [Some(traceparent)] = seen.as_slice() else {
        panic!("one token request with a traceparent expected: {seen:?}");
    };
    let (trace, span) = parse(traceparent).unwrap_or_else(|| panic!("invalid: {traceparent}"));
    assert_eq!(trace, BROWSER_TRACE);
    assert_ne!(span, BROWSER_SPAN);
}
