//! What the browser-side attack suites (`security_login`, `security_session`,
//! `security_redirect`, `security_forgery`, `security_proxy`, `security_oversized`)
//! share: a session planted straight into the store (no provider round trip) for tests
//! that need a logged-in user without caring how the tokens were obtained, the check
//! that a blocked attack left that session intact, readers of responses and cookies,
//! requests written and read byte for byte, a walk through the provider's pages to any
//! redirect URI, and a BFF in front of a hostile upstream.
//!
//! References: RFC 9700 (OAuth 2.0 Security Best Current Practice),
//! draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend), RFC 6265bis
//! (cookies), the OWASP Session Management Cheat Sheet, RFC 9110/9112 (HTTP).

use std::time::Duration;

use bff::domain::secret::{AccessToken, IdToken, RefreshToken, SessionId, random_token};
use bff::store::SessionRecord;
use bff::store::session_key;
use bff_testkit::browser::{BffBrowser, location};
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::Url;

/// The front-end origin every test BFF allows (see `bff_tests::app`).
pub(crate) const ALLOWED_ORIGIN: &str = "http://localhost:5173";

/// A live session planted straight into the store, and a browser holding its cookie.
pub(crate) struct Planted {
    pub(crate) browser: BffBrowser,
    /// The session id (the cookie value).
    pub(crate) id: String,
    /// The access token the BFF will send upstream for this session.
    pub(crate) access_token: String,
}

/// Plants a session for `alice` whose access token is valid for an hour: no refresh, no
/// provider call, no store write on use.
pub(crate) async fn plant_session(app: &TestApp) -> Planted {
    let now = app.app.clock.now();
    let id = SessionId::generate();
    let access_token = format!("planted-access-{}", random_token(16));
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), "alice".into());
    let record = SessionRecord {
        access_token_type: Default::default(),
        dpop_key: None,
        sub: "alice".into(),
        sid: None,
        claims,
        id_token: IdToken::new(format!("planted-id-{}", random_token(16))),
        access_token: AccessToken::new(access_token.clone()),
        access_expires_at: Some(now + 3600),
        access_issued_at: now,
        refresh_token: Some(RefreshToken::new(format!("planted-refresh-{}", random_token(16)))),
        created_at: now,
        expires_at: now + 3600,
        idle_expires_at: now + 3600,
        version: 1,
        refresh_lease: None,
        refresh_started_at: None,
        user_agent: None,
        api_tokens: Vec::new(),
        userinfo: None,
    };
    app.store
        .put_session(&session_key(&id), &record)
        .await
        .expect("plant session");
    let browser = app.browser();
    browser.set_cookie(app.app.cookies.session, id.secret());
    Planted {
        browser,
        id: id.secret().to_owned(),
        access_token,
    }
}

/// Whether the session with cookie value `id` still exists in the store.
pub(crate) async fn session_exists(app: &TestApp, id: &str) -> bool {
    app.store
        .get_session(&session_key(&SessionId::new(id)), app.app.clock.now())
        .await
        .expect("store")
        .is_some()
}

/// What a blocked attack on a planted session must leave behind: nothing reached the
/// upstream, and the session is intact (still in the store, `/auth/me` answers 200, and
/// a genuine API call is forwarded), so the refusal was neither an outage nor a logout.
/// `label` names the attack in failure messages.
pub(crate) async fn assert_harmless(app: &TestApp, planted: &Planted, label: &str) {
    assert!(app.upstream.requests().is_empty(), "{label}: nothing was forwarded");
    assert!(session_exists(app, &planted.id).await, "{label}: the session survives");
    let me = planted.browser.get("/auth/me").await;
    assert_eq!(me.status(), StatusCode::OK, "{label}: the session still resolves");
    let genuine = planted.browser.api(Method::GET, "/api/after").await;
    assert_eq!(genuine.status(), StatusCode::OK, "{label}: the session still works");
    assert_eq!(
        app.upstream.requests().len(),
        1,
        "{label}: only the genuine call was forwarded"
    );
}

/// A refused login step leaves `browser` logged out: `response` sets no session cookie
/// and `/auth/me` still answers 401.
pub(crate) async fn assert_still_logged_out(browser: &BffBrowser, response: &reqwest::Response, label: &str) {
    let cookies = set_cookies(response);
    assert!(
        !sets_cookie(&cookies, "bff-session"),
        "{label}: no session: {cookies:?}"
    );
    assert_eq!(
        browser.get("/auth/me").await.status(),
        StatusCode::UNAUTHORIZED,
        "{label}: still logged out"
    );
}

/// The host (`127.0.0.1:port`) of the recording upstream.
pub(crate) fn upstream_host(app: &TestApp) -> String {
    let base = Url::parse(&app.upstream.base).expect("upstream url");
    format!("{}:{}", base.host_str().expect("host"), base.port().expect("port"))
}

pub(crate) fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

pub(crate) fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// Whether a `Set-Cookie` list sets (not clears) a cookie named `name`.
pub(crate) fn sets_cookie(cookies: &[String], name: &str) -> bool {
    cookies
        .iter()
        .any(|c| c.starts_with(&format!("{name}=")) && !c.starts_with(&format!("{name}=;")))
}

pub(crate) async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap_or_default();
    body["error"].as_str().unwrap_or_default().to_owned()
}

/// A response read off a raw connection.
pub(crate) struct RawResponse {
    /// The status code; 0 when the server closed the connection without answering.
    pub(crate) status: u16,
    /// Header lines, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    /// The body (chunked transfer coding removed).
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Builds an HTTP/1.1 request byte for byte. `Host` is the BFF's unless given, and
/// `Connection: close` is added unless a `Connection` header is given.
pub(crate) fn raw_request(origin: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let host = origin.trim_start_matches("http://");
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("connection")) {
        head.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` over a fresh connection and reads one response (URL libraries
/// normalise `..` and encodings, and HTTP clients refuse odd headers, which would hide
/// what a real attacker can send). Write errors are ignored: a server may answer and
/// close before it read everything.
pub(crate) async fn raw_exchange(origin: &str, request: &[u8]) -> RawResponse {
    let host = origin.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let _ = stream.write_all(request).await;
    read_response(&mut stream).await
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or until close).
pub(crate) async fn read_response(stream: &mut tokio::net::TcpStream) -> RawResponse {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(at);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => break None,
        }
    };
    let Some(head_end) = head_end else {
        return RawResponse {
            status: 0,
            headers: Vec::new(),
            body: buffer,
        };
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buffer[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    loop {
        let complete = match length {
            Some(length) => body.len() >= length,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    RawResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

/// Walks the provider's login and consent pages from `authorize_url` as `user` until it
/// redirects to a URL starting with `redirect_prefix`, and returns that URL (not visited).
/// Unlike [`BffBrowser::authenticate`] it stops at any redirect URI, including one on an
/// origin the test cannot reach.
pub(crate) async fn walk_provider(
    browser: &BffBrowser,
    authorize_url: &str,
    user: &str,
    redirect_prefix: &str,
) -> String {
    let mut url = authorize_url.to_owned();
    for _ in 0..12 {
        if url.starts_with(redirect_prefix) {
            return url;
        }
        let response = browser.get(&url).await;
        if response.status().is_redirection() {
            url = Url::parse(&url)
                .expect("url")
                .join(&location(&response))
                .expect("join")
                .into();
            continue;
        }
        assert_eq!(response.status(), StatusCode::OK, "unexpected provider answer at {url}");
        let page = response.text().await.expect("page");
        let form = if page.contains(r#"name="prompt" value="login""#) {
            vec![("prompt", "login"), ("login", user), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = browser.http.post(&url).form(&form).send().await.expect("form post");
        assert!(posted.status().is_redirection(), "form post must redirect");
        url = Url::parse(&url)
            .expect("url")
            .join(&location(&posted))
            .expect("join")
            .into();
    }
    panic!("the provider never redirected to {redirect_prefix}");
}

/// The value of query parameter `name` in `url`.
pub(crate) fn query_param(url: &str, name: &str) -> String {
    Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// `url` with query parameter `name` replaced by `value`.
pub(crate) fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

/// Starts an upstream that answers every call with `headers`, and a BFF in front of it.
pub(crate) async fn app_with_hostile_upstream(headers: &'static [(&'static str, &'static str)]) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/v1/", listener.local_addr().expect("addr"));
    let router = axum::Router::new().fallback(move || async move {
        let mut response = axum::response::Response::new(axum::body::Body::from("{}"));
        for (name, value) in headers {
            response.headers_mut().append(
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_static(value),
            );
        }
        response
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_UPSTREAM_URL", base));
    spawn_app_with(options).await
}
