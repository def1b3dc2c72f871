//! The BFF under attack from the browser side, through the proxy: path traversal in
//! every spelling, an absolute-form request target, headers smuggled to the upstream
//! (credentials, forwarding and hop-by-hop headers) and request smuggling (CL.TE, an
//! obfuscated `Transfer-Encoding`). Requests are written byte for byte, since URL
//! libraries and HTTP clients would normalise or refuse what an attacker can send.
//!
//! Every attack is its own test whose name starts with `attack_`; the tables below
//! (one macro each) turn every row into such a test, and every one of them must pass,
//! i.e. the attack must be blocked.
//!
//! References: README "Proxy", CWE-22, RFC 9110 §7.6.1 (hop-by-hop headers), RFC 9112
//! §3.2.2 and §6.3 (request targets, message framing), RFC 6750 §2.1,
//! draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend).

use std::time::Duration;

use bff_tests::app::{StoreKind, TestApp, spawn_app};
use tokio::io::AsyncWriteExt as _;

use crate::attack_kit::{
    Planted, assert_harmless, plant_session, raw_exchange, raw_request, read_response, upstream_host,
};

// ------------------------------------------------------------------------------------
// Path traversal through the proxy (README "Proxy", CWE-22)
// ------------------------------------------------------------------------------------

/// What a traversal spelling must end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Climb {
    /// 400, nothing forwarded.
    Refused,
    /// 400 with nothing forwarded, or forwarded so that the upstream, decoding the path
    /// once and dropping `;` path parameters from each segment (as Tomcat, Jetty and
    /// Spring do), sees no `.`/`..` segment, no slash or backslash inside a segment, and
    /// stays below its base path.
    Contained,
}

/// Whether the path the upstream received, read as described in [`Climb::Contained`],
/// stays below `/v1/`.
fn stays_below_base(uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix("/v1/") else {
        return false;
    };
    rest.split('/').all(|segment| {
        let decoded = percent_decode(segment);
        let bare = decoded.split(';').next().unwrap_or_default();
        bare != "." && bare != ".." && !decoded.contains(['/', '\\'])
    })
}

/// `text` with `%XX` escapes decoded once (invalid escapes kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn traversal_is_blocked(name: &str, target: &str, expect: Climb) {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let cookie = format!("bff-session={}", planted.id);
    let request = raw_request(
        &app.url,
        "GET",
        target,
        &[("Cookie", cookie.as_str()), ("X-CSRF", "1")],
        b"",
    );
    let response = raw_exchange(&app.url, &request).await;
    let seen = app.upstream.requests();
    match (response.status, expect) {
        (400, _) => assert!(seen.is_empty(), "{name}: refused but forwarded: {:?}", seen[0].uri),
        (200, Climb::Contained) => {
            for request in &seen {
                assert!(
                    stays_below_base(&request.uri),
                    "{name}: {target} reached the upstream as {}",
                    request.uri
                );
            }
        }
        (status, _) => panic!(
            "{name}: {target} answered {status} and the upstream saw {:?}",
            seen.iter().map(|s| s.uri.as_str()).collect::<Vec<_>>()
        ),
    }
}

/// Declares the traversal table: every row becomes its own `#[tokio::test]`.
macro_rules! traversal_attacks {
    ($($(#[$meta:meta])* $name:ident: $target:literal => $expect:ident;)+) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                traversal_is_blocked(stringify!($name), $target, Climb::$expect).await;
            }
        )+
    };
}

traversal_attacks! {
    /// Overlong UTF-8 for `.` (`%c0%ae`): invalid UTF-8, never read as a dot.
    attack_path_traversal_overlong_utf8_dots: "/api/%c0%ae%c0%ae/admin" => Refused;
    /// Overlong UTF-8 for `/` between dots.
    attack_path_traversal_overlong_utf8_slash: "/api/..%c0%afadmin" => Refused;
    /// Three-byte overlong UTF-8 for `.`.
    attack_path_traversal_three_byte_overlong_dots: "/api/%e0%80%ae%e0%80%ae/admin" => Refused;
    /// Encoded dots and an encoded backslash.
    attack_path_traversal_encoded_dots_and_backslash: "/api/%2e%2e%5cadmin" => Refused;
    /// Encoded dots and an encoded slash in one segment.
    attack_path_traversal_encoded_dots_and_slash: "/api/%2e%2e%2fadmin" => Refused;
    /// A mixed spelling: one literal dot, one encoded.
    attack_path_traversal_half_encoded_dots: "/api/%2e./admin" => Refused;
    /// A trailing `..` segment.
    attack_path_traversal_trailing_dot_dot: "/api/a/.." => Refused;
    /// A trailing encoded `.` segment.
    attack_path_traversal_trailing_encoded_dot: "/api/a/%2e" => Refused;
    /// Dots around a NUL byte.
    attack_path_traversal_dots_around_nul: "/api/.%00./admin" => Refused;
    /// `..` followed by an encoded tab.
    attack_path_traversal_dots_and_tab: "/api/..%09/admin" => Refused;
    /// Deep climbing with encoded slashes.
    attack_path_traversal_deep_encoded: "/api/a/b/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd" => Refused;
    /// Tomcat/Jetty path parameter: `..;/` is `../` to a Java upstream.
    attack_path_traversal_dot_dot_semicolon: "/api/..;/admin" => Refused;
    /// `..;` deeper in the path.
    attack_path_traversal_dot_dot_semicolon_nested: "/api/a/..;/..;/admin" => Refused;
    /// `..` with a named path parameter.
    attack_path_traversal_dot_dot_with_path_parameter: "/api/..;jsessionid=x/admin" => Refused;
    /// Encoded dots with a path parameter.
    attack_path_traversal_encoded_dots_semicolon: "/api/%2e%2e;/admin" => Refused;
    /// `..` with an encoded semicolon.
    attack_path_traversal_dot_dot_encoded_semicolon: "/api/..%3b/admin" => Refused;
    /// A lone `.` with a path parameter.
    attack_path_traversal_dot_semicolon: "/api/.;/admin" => Refused;
    /// Unicode fullwidth full stops (U+FF0E): never turned into ASCII dots.
    attack_path_traversal_unicode_fullwidth_full_stop: "/api/%EF%BC%8E%EF%BC%8E/admin" => Contained;
    /// Unicode fullwidth solidus (U+FF0F) after dots.
    attack_path_traversal_unicode_fullwidth_solidus: "/api/..%EF%BC%8Fadmin" => Contained;
    /// Double-encoded dots: forwarded still encoded, never decoded twice.
    attack_path_traversal_double_encoded_dots: "/api/%252e%252e/admin" => Contained;
    /// Double-encoded dots and slash.
    attack_path_traversal_double_encoded_dots_and_slash: "/api/%252e%252e%252fadmin" => Contained;
    /// IIS `%u` escapes.
    attack_path_traversal_iis_u_escapes: "/api/%u002e%u002e/admin" => Contained;
}

/// RFC 9112 §3.2.2 (absolute-form request target): a request line naming another host
/// cannot retarget the proxy; the call, if served, goes to the configured upstream only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_absolute_form_request_target_cannot_retarget_the_proxy() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let cookie = format!("bff-session={}", planted.id);
    let request = raw_request(
        &app.url,
        "GET",
        "http://evil.example.com/api/a?x=1",
        &[
            ("Cookie", cookie.as_str()),
            ("X-CSRF", "1"),
            ("Host", "evil.example.com"),
        ],
        b"",
    );
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 200, "routed by path: {}", response.text());
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/v1/a?x=1", "below the configured base");
    assert_eq!(
        seen[0].header("host"),
        [upstream_host(&app).as_str()],
        "to the configured host"
    );
}

// ------------------------------------------------------------------------------------
// Header smuggling through the proxy (README "Proxy", RFC 9110 §7.6.1)
// ------------------------------------------------------------------------------------

/// Sends one proxied call with the session, `X-CSRF: 1`, a control header and `extra`;
/// returns what the upstream saw (the call must succeed).
async fn proxied_with(app: &TestApp, planted: &Planted, extra: &[(&str, &str)]) -> bff_tests::upstream::Seen {
    let cookie = format!("bff-session={}", planted.id);
    let mut headers = vec![
        ("Cookie", cookie.as_str()),
        ("X-CSRF", "1"),
        ("X-Request-Id", "control-7f3a"),
    ];
    headers.extend_from_slice(extra);
    let request = raw_request(&app.url, "GET", "/api/headers", &headers, b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 1, "exactly one upstream call");
    let seen = seen.into_iter().next().expect("one");
    assert_eq!(
        seen.header("x-request-id"),
        ["control-7f3a"],
        "control: ordinary headers are forwarded"
    );
    assert_eq!(
        seen.header("authorization"),
        [format!("Bearer {}", planted.access_token).as_str()],
        "exactly the BFF's bearer token"
    );
    seen
}

/// The header `name` (sent with `value`, plus any `more`) never reaches the upstream.
async fn header_is_stripped(label: &str, name: &str, value: &str, more: &[(&str, &str)]) {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let mut extra = vec![(name, value)];
    extra.extend_from_slice(more);
    let seen = proxied_with(&app, &planted, &extra).await;
    let lower = name.to_ascii_lowercase();
    assert!(
        seen.header(&lower).is_empty(),
        "{label}: {name} reached the upstream: {:?}",
        seen.header(&lower)
    );
    for (other, _) in more {
        let other = other.to_ascii_lowercase();
        if other != "connection" {
            assert!(seen.header(&other).is_empty(), "{label}: {other} reached the upstream");
        }
    }
    assert!(seen.header("cookie").is_empty(), "{label}: no cookie upstream");
    assert!(seen.header("x-csrf").is_empty(), "{label}: no X-CSRF upstream");
}

/// Declares the stripped-header table: every row becomes its own `#[tokio::test]`.
macro_rules! stripped_header_attacks {
    ($($(#[$meta:meta])* $name:ident: $header:literal = $value:literal $([$(($h:literal, $v:literal)),*])?;)+) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                header_is_stripped(stringify!($name), $header, $value, &[$($(($h, $v)),*)?]).await;
            }
        )+
    };
}

stripped_header_attacks! {
    /// The browser's cookies (the session id) never reach the upstream.
    attack_header_smuggling_cookie_is_stripped: "Cookie" = "tracking=1";
    /// A spoofed client address.
    attack_header_smuggling_x_forwarded_for_is_stripped: "X-Forwarded-For" = "10.0.0.1";
    /// A spoofed original host (cache poisoning, password-reset links).
    attack_header_smuggling_x_forwarded_host_is_stripped: "X-Forwarded-Host" = "evil.example.com";
    /// A spoofed original scheme.
    attack_header_smuggling_x_forwarded_proto_is_stripped: "X-Forwarded-Proto" = "https";
    /// A spoofed original port.
    attack_header_smuggling_x_forwarded_port_is_stripped: "X-Forwarded-Port" = "443";
    /// A spoofed path prefix (link generation in many frameworks).
    attack_header_smuggling_x_forwarded_prefix_is_stripped: "X-Forwarded-Prefix" = "/admin";
    /// `X-Forwarded-Scheme` (honoured by Rack and nginx setups): README "X-Forwarded-*".
    attack_header_smuggling_x_forwarded_scheme_is_stripped: "X-Forwarded-Scheme" = "https";
    /// `X-Forwarded-Ssl` (honoured by Rack): README "X-Forwarded-*".
    attack_header_smuggling_x_forwarded_ssl_is_stripped: "X-Forwarded-Ssl" = "on";
    /// `X-Forwarded-Server`: README "X-Forwarded-*".
    attack_header_smuggling_x_forwarded_server_is_stripped: "X-Forwarded-Server" = "evil.example.com";
    /// RFC 7239 `Forwarded`.
    attack_header_smuggling_forwarded_is_stripped: "Forwarded" = "for=10.0.0.1;host=evil.example.com;proto=https";
    /// `X-Real-IP`.
    attack_header_smuggling_x_real_ip_is_stripped: "X-Real-IP" = "10.0.0.1";
    /// `Via`.
    attack_header_smuggling_via_is_stripped: "Via" = "1.1 evil";
    /// A forged load-balancer identity header (AWS ALB's OIDC headers).
    attack_header_smuggling_forged_alb_identity_is_stripped: "X-Amzn-Oidc-Identity" = "admin";
    /// A forged CloudFront viewer header.
    attack_header_smuggling_forged_cloudfront_header_is_stripped: "CloudFront-Viewer-Country" = "US";
    /// `X-Original-URL` (honoured by Symfony, Zend and IIS rewrites): a path override
    /// that would leave the upstream's base path.
    attack_header_smuggling_x_original_url_is_stripped: "X-Original-URL" = "/admin";
    /// `X-Rewrite-URL`, the same override under another name.
    attack_header_smuggling_x_rewrite_url_is_stripped: "X-Rewrite-URL" = "/admin";
    /// `X-Original-Host`.
    attack_header_smuggling_x_original_host_is_stripped: "X-Original-Host" = "evil.example.com";
    /// `True-Client-IP` (Akamai, Cloudflare): a spoofed client address.
    attack_header_smuggling_true_client_ip_is_stripped: "True-Client-IP" = "10.0.0.1";
    /// `X-Client-IP`: a spoofed client address.
    attack_header_smuggling_x_client_ip_is_stripped: "X-Client-IP" = "10.0.0.1";
    /// RFC 9110 §7.6.1 hop-by-hop: `Proxy-Authorization`.
    attack_header_smuggling_proxy_authorization_is_stripped: "Proxy-Authorization" = "Basic YWRtaW46YWRtaW4=";
    /// Hop-by-hop: `Proxy-Connection`.
    attack_header_smuggling_proxy_connection_is_stripped: "Proxy-Connection" = "keep-alive";
    /// Hop-by-hop: `Keep-Alive`.
    attack_header_smuggling_keep_alive_is_stripped: "Keep-Alive" = "timeout=600";
    /// Hop-by-hop: `TE`.
    attack_header_smuggling_te_is_stripped: "TE" = "trailers";
    /// Hop-by-hop: `Trailer`.
    attack_header_smuggling_trailer_is_stripped: "Trailer" = "X-Injected";
    /// h2c upgrade smuggling: `Upgrade: h2c` with its settings must not reach the upstream.
    attack_header_smuggling_h2c_upgrade_is_stripped: "Upgrade" = "h2c"
        [("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"), ("Connection", "Upgrade, HTTP2-Settings, close")];
    /// RFC 9110 §7.6.1: a header named in `Connection` is hop-by-hop and is dropped.
    attack_header_smuggling_header_named_in_connection_is_stripped: "X-Secret-Hop" = "1"
        [("Connection", "close, X-Secret-Hop")];
}

/// The anti-forgery header is the BFF's business only: it never reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_header_smuggling_x_csrf_is_stripped() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let seen = proxied_with(&app, &planted, &[]).await;
    assert!(seen.header("x-csrf").is_empty());
}

/// The browser's `Host` never reaches the upstream: it sees its own host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_header_smuggling_host_is_replaced_by_the_upstreams_own() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let seen = proxied_with(&app, &planted, &[("Host", "evil.example.com")]).await;
    assert_eq!(seen.header("host"), [upstream_host(&app).as_str()]);
}

/// RFC 6750 §2.1: the browser's own `Authorization` headers (a bearer token of its
/// choosing, basic credentials) never reach the upstream; it gets exactly one
/// `Authorization`, the BFF's bearer token for this session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_header_smuggling_browser_authorization_is_replaced_by_the_bffs_token() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    // `proxied_with` asserts exactly one Authorization header carrying the session's token.
    let seen = proxied_with(
        &app,
        &planted,
        &[
            ("Authorization", "Bearer attacker"),
            ("Authorization", "Basic YWRtaW46YWRtaW4="),
        ],
    )
    .await;
    assert!(!seen.header("authorization").iter().any(|v| v.contains("attacker")));
}

/// RFC 9112 §6.3 (request smuggling, CL.TE): a body framed both by `Content-Length` and
/// `Transfer-Encoding: chunked` with a second request hidden after the chunked body. The
/// upstream gets at most the first call, framed by the BFF itself; the hidden request
/// never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_request_smuggling_cl_te_hidden_request_never_reaches_the_upstream() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let host = app.url.trim_start_matches("http://").to_owned();
    let cookie = format!("bff-session={}", planted.id);
    let hidden = format!("GET /api/admin HTTP/1.1\r\nHost: {host}\r\nX-CSRF: 1\r\n\r\n");
    let body = format!("5\r\nhello\r\n0\r\n\r\n{hidden}");
    let request = raw_request(
        &app.url,
        "POST",
        "/api/smuggle",
        &[
            ("Cookie", cookie.as_str()),
            ("X-CSRF", "1"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "4"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
        ],
        body.as_bytes(),
    );
    let host_addr = host.clone();
    let mut stream = tokio::net::TcpStream::connect(&host_addr).await.expect("connect");
    stream.write_all(&request).await.expect("write");
    let first = read_response(&mut stream).await;
    assert_eq!(first.status, 200, "the chunked body wins over Content-Length");
    // The framing conflict makes hyper close the connection after the first answer:
    // the hidden request is never read as a second one.
    let second = tokio::time::timeout(Duration::from_secs(2), read_response(&mut stream)).await;
    assert!(
        second.is_err() || second.is_ok_and(|r| r.status == 0),
        "the hidden request was answered"
    );
    let seen = app.upstream.requests();
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["/v1/smuggle"], "the hidden request never reaches the upstream");
    assert_eq!(
        seen[0].body, b"hello",
        "the BFF forwards the decoded body, framed by itself"
    );
    assert!(
        seen[0].header("transfer-encoding").is_empty(),
        "the browser's framing stays behind"
    );
}

/// RFC 9112 §6.3 (TE.CL with an obfuscated coding): a `Transfer-Encoding` the server does
/// not understand is refused, and nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_request_smuggling_obfuscated_transfer_encoding_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let cookie = format!("bff-session={}", planted.id);
    for coding in ["xchunked", "chunked, identity", "identity"] {
        let request = raw_request(
            &app.url,
            "POST",
            "/api/smuggle",
            &[
                ("Cookie", cookie.as_str()),
                ("X-CSRF", "1"),
                ("Transfer-Encoding", coding),
                ("Content-Length", "30"),
            ],
            b"0\r\n\r\nGET /api/admin HTTP/1.1\r\n\r\n",
        );
        let response = raw_exchange(&app.url, &request).await;
        assert_eq!(response.status, 400, "{coding}");
    }
    assert_harmless(&app, &planted, "obfuscated Transfer-Encoding").await;
}
