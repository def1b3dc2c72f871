//! The BFF under attack from the browser side, by resource exhaustion: oversized request
//! bodies (declared and chunked), oversized and too many request headers, and a cookie
//! flood around the session cookie. Each is refused (413, 431) or served normally, and
//! the server keeps serving the planted session afterwards.
//!
//! Every attack is its own test whose name starts with `attack_`, and every one of them
//! must pass, i.e. the attack must be blocked.
//!
//! References: RFC 9110/9112 (HTTP), the OWASP Session Management Cheat Sheet,
//! draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend).

use std::time::Duration;

use bff_tests::app::{StoreKind, spawn_app};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::attack_kit::{assert_harmless, plant_session, raw_exchange, raw_request};

// ------------------------------------------------------------------------------------
// Oversized input (resource exhaustion)
// ------------------------------------------------------------------------------------

/// A request body over the 6 MiB Lambda limit to an `/auth/*` endpoint is refused with
/// 413 and the JSON error (`request_too_large`) before the endpoint runs (the logout does
/// not happen), and the server keeps serving. (API calls stream their bodies instead, so
/// they have no such limit in `bff-local`; `streaming.rs` shows memory stays flat.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_oversized_request_body_is_refused_with_413() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let body = vec![b'a'; bff_local::MAX_BODY_BYTES + 1];
    let response = planted
        .browser
        .http
        .post(format!("{}/auth/logout", app.url))
        .header("X-CSRF", "1")
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body: serde_json::Value = response.json().await.expect("a JSON error");
            assert_eq!(body["error"], "request_too_large", "{body}");
        }
        // The server may answer and close before the client finished sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_harmless(&app, &planted, "oversized body").await;
}

/// The same with a chunked body that never declares its length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_oversized_chunked_request_body_is_refused_with_413() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let cookie = format!("bff-session={}", planted.id);
    let host = app.url.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /auth/logout HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-CSRF: 1\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let stream = tokio::net::TcpStream::connect(&host).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        writer.write_all(head.as_bytes()).await?;
        for _ in 0..(7 * 16) {
            writer.write_all(&framed).await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    let _ = sender.await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "{}",
        text.lines().next().unwrap_or("nothing")
    );
    assert!(text.contains(r#""error":"request_too_large""#), "a JSON error: {text}");
    assert_harmless(&app, &planted, "oversized chunked body").await;
}

/// Request headers far beyond any browser's (512 KiB, over hyper's 400 KiB read buffer):
/// hyper refuses them with 431 before any handler runs, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_oversized_request_headers_are_refused_and_the_server_keeps_serving() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let cookie = format!("bff-session={}", planted.id);
    let huge = "a".repeat(512 * 1024);
    let request = raw_request(
        &app.url,
        "GET",
        "/api/x",
        &[("Cookie", cookie.as_str()), ("X-CSRF", "1"), ("X-Padding", &huge)],
        b"",
    );
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 431, "hyper refuses the head: {}", response.text());
    assert_harmless(&app, &planted, "oversized headers").await;
}

/// Very many request headers (500, over hyper's limit of 100 fields): refused with 431,
/// nothing forwarded, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_too_many_request_headers_are_refused_and_the_server_keeps_serving() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let cookie = format!("bff-session={}", planted.id);
    let names: Vec<String> = (0..500).map(|i| format!("X-Flood-{i}")).collect();
    let mut headers: Vec<(&str, &str)> = vec![("Cookie", cookie.as_str()), ("X-CSRF", "1")];
    headers.extend(names.iter().map(|n| (n.as_str(), "1")));
    let request = raw_request(&app.url, "GET", "/api/x", &headers, b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 431, "hyper refuses the head: {}", response.text());
    assert_harmless(&app, &planted, "too many headers").await;
}

/// A cookie header of over 64 KiB of junk cookies around the real one (within hyper's
/// limits, so it reaches the BFF): answered normally, the session still resolves, and
/// nothing breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cookie_flood_around_the_session_cookie_is_harmless() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let junk: Vec<String> = (0..2000)
        .map(|i| format!("junk{i}=xxxxxxxxxxxxxxxxxxxxxxxxx"))
        .collect();
    let cookie = format!("{}; bff-session={}", junk.join("; "), planted.id);
    assert!(cookie.len() > 64 * 1024);
    let request = raw_request(&app.url, "GET", "/auth/me", &[("Cookie", cookie.as_str())], b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 200, "within hyper's limits the call is served");
    assert!(response.text().contains("\"sub\":\"alice\""), "the session resolves");
    assert_harmless(&app, &planted, "cookie flood").await;
}
