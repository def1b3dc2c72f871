//! Upstream answers stream through a `bff-local` process: bytes reach the browser as the
//! upstream sends them, memory stays flat whatever the answer's size, an upstream that
//! breaks off breaks the browser's answer off, and lengths, ranges and validators behave
//! as against the upstream directly. The same for the proxy function's own binary under
//! a Lambda Runtime API emulator (`lambda_*` tests).
//!
//! Uploads stream the other way through `bff-local`: a large request body reaches the
//! upstream as the browser sends it, memory flat, and a broken upload never reaches the
//! upstream as a complete body.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bff_tests::capture::{self, CapturedBff, StoreBackend};
use bff_tests::lambda::{Part, ProxyFunction};
use bff_tests::upstream::{self, Upstream};
use futures_util::StreamExt as _;
use reqwest::StatusCode;

/// The largest peak resident set `bff-local` may reach while a 1 GiB answer passes.
const PEAK_RSS_LIMIT_KIB: u64 = 64 * 1024;

/// The configuration of a BFF at `url` whose one API route (no token) leads to `upstream`.
fn env_for(upstream: &Upstream, url: String) -> HashMap<&'static str, String> {
    let apis = serde_json::json!([{ "path": "/api", "upstream": upstream.base, "token": "none" }]);
    HashMap::from([
        // Never contacted: a route without a token needs no provider.
        ("BFF_ISSUER", "http://127.0.0.1:9".to_owned()),
        ("BFF_CLIENT_ID", "streaming".to_owned()),
        ("BFF_CLIENT_SECRET", "streaming-secret".to_owned()),
        ("BFF_PUBLIC_URL", url),
        ("BFF_APIS", apis.to_string()),
        // Up to the response head only: longer transfers and pauses must still pass.
        ("BFF_UPSTREAM_TIMEOUT_SECS", "1".to_owned()),
        ("BFF_TOKEN_KEYS", bff_tests::app::TEST_TOKEN_KEYS.to_owned()),
        // Never contacted either: such a route reads no session.
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9".to_owned()),
    ])
}

/// A `bff-local` process whose one API route (no token) leads to `upstream`.
async fn bff_for(upstream: &Upstream) -> CapturedBff {
    let listen = capture::free_listen_addr();
    let env = env_for(upstream, format!("http://{listen}"));
    capture::spawn(&env, StoreBackend::Memory, listen, "warn").await
}

fn api(bff: &CapturedBff, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(format!("{}/api/{path}", bff.url))
        .header("X-CSRF", "1")
}

/// A field of `/proc/<pid>/status` in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in the status of {pid}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_answer_arrives_intact_while_bff_local_memory_stays_flat() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;
    let expected = tokio::spawn(upstream::big_body_sha256(SIZE));

    let started = Instant::now();
    let response = api(&bff, &format!("big/{SIZE}")).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-length").and_then(|v| v.to_str().ok()),
        Some(SIZE.to_string().as_str()),
        "the upstream's length passes through"
    );
    let mut received = 0u64;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("the body arrives whole");
        received += chunk.len() as u64;
        hash.update(&chunk);
    }
    let elapsed = started.elapsed();
    let peak = status_kib(bff.pid(), "VmHWM:");
    let expected = expected.await.expect("expected hash");

    assert_eq!(received, SIZE);
    assert_eq!(hash.finish().as_ref(), expected, "the bytes arrive unchanged");
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "bff-local's peak RSS was {peak} KiB for a 1 GiB answer (limit {PEAK_RSS_LIMIT_KIB} KiB)"
    );
    eprintln!("1 GiB through bff-local in {elapsed:?}, peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_reaches_the_browser_before_the_upstream_pause_ends() {
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;

    let started = Instant::now();
    let response = api(&bff, "pause").send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let mut first_at = None;
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.expect("the whole body arrives"));
        if received.len() >= upstream::PAUSE_FIRST.len() {
            first_at.get_or_insert_with(|| started.elapsed());
        }
    }

    assert_eq!(received, [upstream::PAUSE_FIRST, upstream::PAUSE_REST].concat());
    let first_at = first_at.unwrap_or_default();
    assert!(
        first_at < upstream::PAUSE - Duration::from_secs(1),
        "the first chunk came after {first_at:?}, not before the {:?} pause ended",
        upstream::PAUSE
    );
    // The pause is longer than the upstream timeout (1 s): it bounds the head, not the body.
    assert!(started.elapsed() >= upstream::PAUSE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_breaks_off_mid_body_breaks_the_browsers_answer_off() {
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;

    // With a length, the short body is detectable; chunked, the terminating chunk is missing.
    for (path, length) in [("broken", Some(upstream::BROKEN_LENGTH)), ("broken-chunked", None)] {
        let response = api(&bff, path).send().await.expect("the head arrives");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let announced = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        assert_eq!(announced, length, "{path}: the upstream's length passes through");
        let mut body = response.bytes_stream();
        let mut received = 0;
        let outcome = loop {
            match body.next().await {
                Some(Ok(chunk)) => received += chunk.len(),
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        assert!(
            outcome.is_err(),
            "{path}: the body ended cleanly after {received} bytes, as if complete"
        );
        assert!(received <= upstream::BROKEN_SENT, "{path}: {received} bytes");
    }
    // The process keeps serving.
    let after = api(&bff, "pause").send().await.expect("still serving");
    assert_eq!(after.status(), StatusCode::OK);
}

/// `POST /api/sink` through `bff`, with `body`.
fn upload(bff: &CapturedBff, body: reqwest::Body) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/api/sink", bff.url))
        .header("X-CSRF", "1")
        .body(body)
}

/// The hex form of `bytes`, as `/sink` answers its hash.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_upload_reaches_the_upstream_intact_while_bff_local_memory_stays_flat() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;
    let expected = hex(&upstream::big_body_sha256(SIZE).await);

    let started = Instant::now();
    let body = reqwest::Body::wrap_stream(upstream::big_chunks(SIZE).map(Ok::<_, std::io::Error>));
    let response = upload(&bff, body)
        .header("content-length", SIZE)
        .send()
        .await
        .expect("answer");
    // The upload takes longer than the upstream timeout (1 s): it bounds the answer's
    // head once the body is sent, not the upload.
    assert_eq!(response.status(), StatusCode::OK);
    let answer: serde_json::Value = response.json().await.expect("the upstream's JSON");
    let elapsed = started.elapsed();
    let peak = status_kib(bff.pid(), "VmHWM:");

    assert_eq!(answer["length"], SIZE, "{answer}");
    assert_eq!(answer["sha256"], expected.as_str(), "the bytes arrive unchanged");
    let sunk = upstream.sunk();
    assert_eq!(
        sunk[0].content_length.as_deref(),
        Some(SIZE.to_string().as_str()),
        "the browser's declared length passes through"
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "bff-local's peak RSS was {peak} KiB for a 1 GiB upload (limit {PEAK_RSS_LIMIT_KIB} KiB)"
    );
    eprintln!("1 GiB uploaded through bff-local in {elapsed:?}, peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_part_of_an_upload_reaches_the_upstream_before_the_browser_sends_the_rest() {
    // More than bff-local keeps whole, so the first part alone already streams on.
    const PART: usize = 2 * bff_local::KEPT_BODY_BYTES;
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;
    let resumed_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let resumed = resumed_at.clone();
    let parts = futures_util::stream::iter([0u8, 1]).then(move |i| {
        let resumed = resumed.clone();
        async move {
            if i == 1 {
                tokio::time::sleep(upstream::PAUSE).await;
                *resumed.lock().expect("lock") = Some(Instant::now());
            }
            Ok::<_, std::io::Error>(vec![i; PART])
        }
    });

    let response = upload(&bff, reqwest::Body::wrap_stream(parts))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK, "a pause longer than the 1 s timeout");
    let answer: serde_json::Value = response.json().await.expect("the upstream's JSON");
    assert_eq!(answer["length"], 2 * PART as u64, "{answer}");

    let first_byte_at = upstream.sunk()[0].first_byte_at.expect("bytes came");
    let resumed_at = resumed_at.lock().expect("lock").expect("the rest was sent");
    assert!(
        first_byte_at < resumed_at,
        "the upstream got its first byte {:?} after the browser resumed: the body was held",
        first_byte_at - resumed_at
    );
}

/// A raw upload of `sent` bytes that declares `framing` and then breaks the connection.
async fn broken_upload(bff: &CapturedBff, framing: &str, sent: usize) {
    use tokio::io::AsyncWriteExt as _;
    let host = bff.url.trim_start_matches("http://");
    let mut connection = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!("POST /api/sink HTTP/1.1\r\nHost: {host}\r\nX-CSRF: 1\r\n{framing}\r\n\r\n");
    let mut bytes = head.into_bytes();
    if framing.starts_with("Transfer-Encoding") {
        bytes.extend_from_slice(format!("{sent:x}\r\n").as_bytes());
        bytes.extend(std::iter::repeat_n(b'b', sent));
        bytes.extend_from_slice(b"\r\n");
    } else {
        bytes.extend(std::iter::repeat_n(b'b', sent));
    }
    connection.write_all(&bytes).await.expect("send");
    // Long enough for the call to the upstream to be under way, then the browser is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(connection);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_breaks_off_reaches_the_upstream_broken_off_never_complete() {
    const SENT: usize = 2 * bff_local::KEPT_BODY_BYTES;
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;

    let framings = [
        format!("Content-Length: {}", 2 * SENT),
        "Transfer-Encoding: chunked".to_owned(),
    ];
    for (i, framing) in framings.iter().enumerate() {
        broken_upload(&bff, framing, SENT).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while upstream.sunk().len() <= i && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sunk = upstream.sunk();
        let outcome = &sunk
            .get(i)
            .unwrap_or_else(|| panic!("{framing}: the upstream never finished"))
            .outcome;
        assert!(
            outcome.is_err(),
            "{framing}: the upstream got a complete body of {:?} bytes from a broken upload",
            outcome.as_ref().map(|(length, _)| length)
        );
    }
    // The process keeps serving.
    let after = api(&bff, "pause").send().await.expect("still serving");
    assert_eq!(after.status(), StatusCode::OK);
}

/// What a client sees of one answer: status, the length, range and validator headers, and
/// the body.
async fn seen(request: reqwest::RequestBuilder) -> (StatusCode, Vec<(&'static str, Option<String>)>, Vec<u8>) {
    let response = request.send().await.expect("answer");
    let status = response.status();
    let headers = [
        "content-length",
        "content-range",
        "accept-ranges",
        "etag",
        "last-modified",
    ]
    .into_iter()
    .map(|name| {
        let value = response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (name, value)
    })
    .collect();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_range_not_modified_and_no_content_answers_are_the_upstreams_own() {
    let upstream = Upstream::start().await;
    let bff = bff_for(&upstream).await;
    let client = reqwest::Client::new();
    let direct = format!("{}file", upstream.base);
    let proxied = format!("{}/api/file", bff.url);

    let get = reqwest::Method::GET;
    let cases = [
        ("GET", get.clone(), None, StatusCode::OK),
        ("HEAD", reqwest::Method::HEAD, None, StatusCode::OK),
        (
            "Range",
            get.clone(),
            Some(("range", "bytes=100-199")),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "If-None-Match",
            get,
            Some(("if-none-match", upstream::FILE_ETAG)),
            StatusCode::NOT_MODIFIED,
        ),
    ];
    for (name, method, header, status) in cases {
        let build = |url: &str| {
            let request = client.request(method.clone(), url).header("X-CSRF", "1");
            match header {
                Some((n, v)) => request.header(n, v),
                None => request,
            }
        };
        let through_bff = seen(build(&proxied)).await;
        let against_upstream = seen(build(&direct)).await;
        assert_eq!(through_bff.0, status, "{name}");
        assert_eq!(
            (through_bff.0, &through_bff.1),
            (against_upstream.0, &against_upstream.1),
            "{name}: the BFF answers as the upstream does"
        );
        assert!(
            through_bff.2 == against_upstream.2,
            "{name}: {} bytes through the BFF, {} from the upstream",
            through_bff.2.len(),
            against_upstream.2.len()
        );
    }

    let no_content = |base: &str| client.get(format!("{base}no-content")).header("X-CSRF", "1");
    let through_bff = seen(no_content(&format!("{}/api/", bff.url))).await;
    assert_eq!(through_bff.0, StatusCode::NO_CONTENT);
    assert_eq!(through_bff, seen(no_content(&upstream.base)).await, "204");

    let (_, headers, body) = seen(
        client
            .get(&proxied)
            .header("X-CSRF", "1")
            .header("range", "bytes=100-199"),
    )
    .await;
    assert_eq!(body.len(), 100);
    assert!(headers.contains(&(
        "content-range",
        Some(format!("bytes 100-199/{}", upstream::FILE_LENGTH))
    )));
    assert!(headers.contains(&("content-length", Some("100".to_owned()))));
    let (_, headers, body) = seen(client.head(&proxied).header("X-CSRF", "1")).await;
    assert!(body.is_empty());
    assert!(headers.contains(&("content-length", Some(upstream::FILE_LENGTH.to_string()))));
}

/// The proxy function's binary, configured for `upstream`, under the emulator.
async fn proxy_function_for(upstream: &Upstream) -> ProxyFunction {
    ProxyFunction::start(&env_for(upstream, "https://app.example.com".to_owned())).await
}

/// The next part of a streamed Lambda answer.
async fn next_part(parts: &mut tokio::sync::mpsc::Receiver<Part>) -> Part {
    tokio::time::timeout(Duration::from_secs(60), parts.recv())
        .await
        .expect("the function answers in time")
        .expect("the answer goes on")
}

/// Reads a Lambda answer's head: its status and headers.
async fn lambda_head(parts: &mut tokio::sync::mpsc::Receiver<Part>) -> serde_json::Value {
    match next_part(parts).await {
        Part::Head(head) => head,
        other => panic!("expected the prelude, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_a_1_gib_answer_streams_intact_while_the_functions_memory_stays_flat() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let upstream = Upstream::start().await;
    let function = proxy_function_for(&upstream).await;
    let expected = tokio::spawn(upstream::big_body_sha256(SIZE));

    let mut parts = function.invoke("GET", &format!("/api/big/{SIZE}"), &[("x-csrf", "1")]);
    let head = lambda_head(&mut parts).await;
    assert_eq!(head["statusCode"], 200, "{head}");
    assert_eq!(head["headers"]["content-length"], SIZE.to_string(), "{head}");
    let mut received = 0u64;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    loop {
        match next_part(&mut parts).await {
            Part::Data(chunk) => {
                received += chunk.len() as u64;
                hash.update(&chunk);
            }
            Part::End => break,
            other => panic!("after {received} bytes: {other:?}"),
        }
    }
    let peak = status_kib(function.pid(), "VmHWM:");
    let expected = expected.await.expect("expected hash");

    assert_eq!(received, SIZE);
    assert_eq!(hash.finish().as_ref(), expected, "the bytes arrive unchanged");
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "the proxy function's peak RSS was {peak} KiB for a 1 GiB answer (limit {PEAK_RSS_LIMIT_KIB} KiB)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_the_first_chunk_goes_out_before_the_upstream_pause_ends() {
    let upstream = Upstream::start().await;
    let function = proxy_function_for(&upstream).await;

    let started = Instant::now();
    let mut parts = function.invoke("GET", "/api/pause", &[("x-csrf", "1")]);
    assert_eq!(lambda_head(&mut parts).await["statusCode"], 200);
    let mut received = Vec::new();
    let mut first_at = None;
    loop {
        match next_part(&mut parts).await {
            Part::Data(chunk) => received.extend_from_slice(&chunk),
            Part::End => break,
            other => panic!("{other:?}"),
        }
        if received.len() >= upstream::PAUSE_FIRST.len() {
            first_at.get_or_insert_with(|| started.elapsed());
        }
    }

    assert_eq!(received, [upstream::PAUSE_FIRST, upstream::PAUSE_REST].concat());
    let first_at = first_at.unwrap_or_default();
    assert!(
        first_at < upstream::PAUSE - Duration::from_secs(1),
        "the first chunk came after {first_at:?}, not before the {:?} pause ended",
        upstream::PAUSE
    );
    assert!(started.elapsed() >= upstream::PAUSE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_an_upstream_break_is_reported_as_a_stream_error_not_as_body_bytes() {
    let upstream = Upstream::start().await;
    let function = proxy_function_for(&upstream).await;

    for path in ["broken", "broken-chunked"] {
        let mut parts = function.invoke("GET", &format!("/api/{path}"), &[("x-csrf", "1")]);
        assert_eq!(lambda_head(&mut parts).await["statusCode"], 200, "{path}");
        let mut body = Vec::new();
        let trailers = loop {
            match next_part(&mut parts).await {
                Part::Data(chunk) => body.extend_from_slice(&chunk),
                Part::Trailers(trailers) => break trailers,
                other => panic!("{path}: the answer ended without an error report: {other:?}"),
            }
        };
        assert_eq!(
            trailers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok()),
            Some("Runtime.StreamError"),
            "{path}: {trailers:?}"
        );
        assert!(body.len() <= upstream::BROKEN_SENT, "{path}: {} bytes", body.len());
        assert!(
            body.iter().all(|b| *b == b'x'),
            "{path}: only the upstream's bytes are in the body"
        );
        assert!(matches!(next_part(&mut parts).await, Part::End), "{path}");
    }
}
