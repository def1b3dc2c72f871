//! The BFF under attack from the browser side: login CSRF and authorization-code
//! injection, session fixation, open redirects through `returnTo` and logout, forged
//! cross-site calls, CORS, cookie attributes, path traversal and header smuggling through
//! the proxy, and oversized requests.
//!
//! Every attack is its own test whose name starts with `attack_`; the tables below
//! (one macro each) turn every row into such a test, and every one of them must pass,
//! i.e. the attack must be blocked. Tests that need a logged-in user without caring how
//! the tokens were obtained plant a session straight into the store (no provider round
//! trip); tests about the login itself walk the provider's real pages.
//!
//! References: RFC 9700 (OAuth 2.0 Security Best Current Practice),
//! draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend), RFC 6265bis
//! (cookies), the OWASP Session Management Cheat Sheet, RFC 9110/9112 (HTTP).

use std::collections::HashMap;
use std::time::Duration;

use bff::secret::{AccessToken, IdToken, RefreshToken, SessionId, hash, random_token};
use bff::session::session_key;
use bff::store::SessionRecord;
use bff_testkit::browser::{BffBrowser, location, raw_get};
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::Url;

/// The front-end origin every test BFF allows (see `bff_tests::app`).
const ALLOWED_ORIGIN: &str = "http://localhost:5173";

// ------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------

/// A live session planted straight into the store, and a browser holding its cookie.
struct Planted {
    browser: BffBrowser,
    /// The session id (the cookie value).
    id: String,
    /// The access token the BFF will send upstream for this session.
    access_token: String,
}

/// Plants a session for `alice` whose access token is valid for an hour: no refresh, no
/// provider call, no store write on use.
async fn plant_session(app: &TestApp) -> Planted {
    let now = app.app.clock.now();
    let id = SessionId::generate();
    let access_token = format!("planted-access-{}", random_token(16));
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), "alice".into());
    let record = SessionRecord {
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
async fn session_exists(app: &TestApp, id: &str) -> bool {
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
async fn assert_harmless(app: &TestApp, planted: &Planted, label: &str) {
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
async fn assert_still_logged_out(browser: &BffBrowser, response: &reqwest::Response, label: &str) {
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
fn upstream_host(app: &TestApp) -> String {
    let base = Url::parse(&app.upstream.base).expect("upstream url");
    format!("{}:{}", base.host_str().expect("host"), base.port().expect("port"))
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// Whether a `Set-Cookie` list sets (not clears) a cookie named `name`.
fn sets_cookie(cookies: &[String], name: &str) -> bool {
    cookies
        .iter()
        .any(|c| c.starts_with(&format!("{name}=")) && !c.starts_with(&format!("{name}=;")))
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap_or_default();
    body["error"].as_str().unwrap_or_default().to_owned()
}

/// A response read off a raw connection.
struct RawResponse {
    /// The status code; 0 when the server closed the connection without answering.
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    /// The body (chunked transfer coding removed).
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Builds an HTTP/1.1 request byte for byte. `Host` is the BFF's unless given, and
/// `Connection: close` is added unless a `Connection` header is given.
fn raw_request(origin: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
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
async fn raw_exchange(origin: &str, request: &[u8]) -> RawResponse {
    let host = origin.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let _ = stream.write_all(request).await;
    read_response(&mut stream).await
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or until close).
async fn read_response(stream: &mut tokio::net::TcpStream) -> RawResponse {
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
async fn walk_provider(browser: &BffBrowser, authorize_url: &str, user: &str, redirect_prefix: &str) -> String {
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
fn query_param(url: &str, name: &str) -> String {
    Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// `url` with query parameter `name` replaced by `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
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

// ------------------------------------------------------------------------------------
// Login CSRF and authorization-code injection (RFC 9700 §4.7 and §4.5)
// ------------------------------------------------------------------------------------

/// RFC 9700 §4.7 (CSRF on the redirect URI): an attacker finishes a login as himself at
/// the provider and makes the victim's browser open his callback URL. The victim's
/// browser never started that login, so nothing happens: no session (the victim is not
/// logged in as the attacker), and the victim's own pending login is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_login_csrf_attackers_callback_opened_in_the_victims_browser_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    let authorize = attacker.start_login("/").await;
    let forged_callback = attacker.authenticate(&authorize, "mallory").await;

    let victim = app.browser();
    let own_authorize = victim.start_login("/victim").await;
    let response = victim.get(&forged_callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert!(response.headers().get("location").is_none(), "not sent anywhere");
    assert!(
        !set_cookies(&response).iter().any(|c| c.starts_with("bff-tx=")),
        "the victim's pending logins are untouched"
    );
    assert_still_logged_out(&victim, &response, "the attacker's callback").await;

    // The victim's own login still completes, as the victim.
    let own_callback = victim.authenticate(&own_authorize, "alice").await;
    let done = victim.get(&own_callback).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), "/victim");
    let me: Value = victim.get("/auth/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
}

/// RFC 9700 §4.5 (authorization code injection): the attacker puts his own code into a
/// callback carrying the victim's genuine `state`, so the state check passes. PKCE stops
/// it: the code was issued for the attacker's challenge, the BFF redeems it with the
/// victim's verifier, the provider refuses, and no session is created for anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_authorization_code_injection_into_the_victims_state_is_refused_by_pkce() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    let attacker_authorize = attacker.start_login("/").await;
    let attacker_callback = attacker.authenticate(&attacker_authorize, "mallory").await;
    let attackers_code = query_param(&attacker_callback, "code");

    let victim = app.browser();
    let victim_authorize = victim.start_login("/").await;
    let victim_state = query_param(&victim_authorize, "state");
    let injected = with_param(&attacker_callback, "state", &victim_state);
    assert_eq!(query_param(&injected, "code"), attackers_code);

    let response = victim.get(&injected).await;
    assert!(
        response.status().is_client_error() || response.status().is_server_error(),
        "refused, got {}",
        response.status()
    );
    assert!(response.headers().get("location").is_none());
    assert!(victim.cookie("bff-session").is_none());
    assert_still_logged_out(&victim, &response, "the injected code").await;
}

/// RFC 9700 §4.7: a callback whose `state` is given twice (the victim's own and the
/// attacker's) is refused before anything is redeemed: two parsers must never read
/// different values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_login_csrf_callback_with_a_duplicated_state_parameter_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    let attacker_callback = attacker.authenticate(&attacker.start_login("/").await, "mallory").await;
    let victim = app.browser();
    let victim_state = query_param(&victim.start_login("/").await, "state");
    for polluted in [
        format!("{attacker_callback}&state={victim_state}"),
        format!(
            "{}/auth/callback?state={victim_state}&{}",
            app.url,
            attacker_callback.split_once('?').expect("query").1
        ),
    ] {
        let response = victim.get(&polluted).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{polluted}");
        assert_still_logged_out(&victim, &response, &polluted).await;
    }
}

/// RFC 9700 §4.1 (redirect URI manipulation): the redirect URI and the post-logout URL
/// come from configuration only. A request whose `Host` or forwarding headers name the
/// attacker's site cannot make the provider send the code (or the browser) there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_host_header_cannot_change_the_redirect_uri_or_the_logout_target() {
    let app = spawn_app(StoreKind::Memory).await;
    let spoofed = [
        ("Host", "evil.example.com"),
        ("X-Forwarded-Host", "evil.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "host=evil.example.com;proto=https"),
    ];
    let request = raw_request(&app.url, "GET", "/auth/login?returnTo=/", &spoofed, b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 302, "{}", response.text());
    let authorize = response.header("location")[0].to_owned();
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        format!("{}/auth/callback", app.url)
    );
    assert!(!authorize.contains("evil"), "{authorize}");

    let mut headers = spoofed.to_vec();
    headers.push(("X-CSRF", "1"));
    let request = raw_request(&app.url, "POST", "/auth/logout", &headers, b"");
    let response = raw_exchange(&app.url, &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(!response.text().contains("evil"), "{}", response.text());
}

/// RFC 9700 §4.7 and the BFF draft: the callback is a top-level GET navigation only; a
/// callback posted by a form (`response_mode=form_post` injection) or called with any
/// other method is refused and creates no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_callback_posted_by_a_form_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    let callback = browser.authenticate(&browser.start_login("/").await, "alice").await;
    let (path, query) = callback.split_once('?').expect("query");
    for method in [Method::POST, Method::PUT] {
        let response = browser
            .http
            .request(method.clone(), path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(query.to_owned())
            .send()
            .await
            .expect("callback");
        assert!(response.status().is_client_error(), "{method}: {}", response.status());
        assert_still_logged_out(&browser, &response, method.as_str()).await;
    }
    // The genuine GET still completes: the refused attempts did not spend the login.
    assert_eq!(browser.get(&callback).await.status(), StatusCode::FOUND);
}

/// OWASP Clickjacking Defense: the BFF's own pages (the callback's error pages) can be
/// framed by nobody, and load no script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_clickjacking_the_bffs_pages_cannot_be_framed() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    for page in [
        "/auth/callback?error=access_denied",
        "/auth/callback?code=x&state=y",
        "/auth/callback",
    ] {
        let response = browser.get(page).await;
        assert!(header(&response, "content-type").starts_with("text/html"), "{page}");
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{page}: {csp}");
    }
}

// ------------------------------------------------------------------------------------
// Session fixation and cookie injection (OWASP Session Management, RFC 6265bis)
// ------------------------------------------------------------------------------------

/// OWASP Session Management ("renew the session id after any privilege level change"):
/// the attacker plants his own *live* session id in the victim's browser. When the victim
/// logs in, the BFF issues a brand-new id and ends the planted session, so the attacker's
/// id never becomes the victim's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_fixation_with_the_attackers_live_session_id_is_defeated_at_login() {
    let app = spawn_app(StoreKind::Memory).await;
    let attacker = app.browser();
    attacker.login("mallory", "/").await;
    let fixed = attacker.cookie("bff-session").expect("attacker's session");

    let victim = app.browser();
    victim.set_cookie("bff-session", &fixed);
    victim.login("alice", "/").await;
    let issued = victim.cookie("bff-session").expect("victim's session");
    assert_ne!(issued, fixed, "login issues a new id");
    let me: Value = victim.get("/auth/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");

    // The fixed id is worthless now: ended in the store, never alice's.
    assert!(!session_exists(&app, &fixed).await, "the planted session was ended");
    let replay = attacker.get("/auth/me").await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

/// RFC 6265bis §8.6 (weak integrity: cookie tossing) and OWASP Session Management: a
/// session cookie sent twice, in one header or in two, is ignored whichever copy is
/// genuine, so an injected duplicate can never choose the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_cookie_sent_twice_is_ignored() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let other = plant_session(&app).await;
    let genuine = format!("bff-session={}", planted.id);
    let injected = format!("bff-session={}", other.id);
    let fake = format!("bff-session={}", random_token(32));

    let (status, _) = raw_get(&app.url, "/auth/me", &[("Cookie", &genuine)]).await;
    assert_eq!(status, 200, "control: the genuine cookie alone works");
    for cookies in [
        vec![format!("{genuine}; {injected}")],
        vec![format!("{injected}; {genuine}")],
        vec![format!("{genuine}; {fake}")],
        vec![format!("{genuine}; {genuine}")],
        vec![genuine.clone(), injected.clone()],
        vec![fake.clone(), genuine.clone()],
    ] {
        let headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("Cookie", c.as_str())).collect();
        let (status, body) = raw_get(&app.url, "/auth/me", &headers).await;
        assert_eq!(status, 401, "{cookies:?}: {body}");
        assert!(!body.contains("alice"), "{cookies:?}");
    }
}

/// OWASP Session Management ("session id content"): only ids the BFF issued are honoured.
/// Knowing the store's key for a session (the hash of its id), a near-miss of the id, or
/// an oversized or oddly encoded value gives nothing, and never an error other than 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_cookie_values_the_bff_did_not_issue_are_never_adopted() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let key = session_key(&SessionId::new(&planted.id));
    let key_hash = key.as_str().trim_start_matches("session#").to_owned();
    let mut flipped = planted.id.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for value in [
        key_hash.clone(),
        key.as_str().to_owned(),
        hash(&planted.id),
        flipped,
        format!("{}=", planted.id),
        format!("\"{}x\"", &planted.id[..42]),
        format!("{}%41", &planted.id[..41]),
        "A".repeat(4000),
        String::new(),
    ] {
        let cookie = format!("bff-session={value}");
        let (status, _) = raw_get(&app.url, "/auth/me", &[("Cookie", &cookie)]).await;
        assert_eq!(status, 401, "{value:?}");
        let (status, _) = raw_get(&app.url, "/api/x", &[("Cookie", cookie.as_str()), ("X-CSRF", "1")]).await;
        assert_eq!(status, 401, "{value:?}");
    }
    assert_harmless(&app, &planted, "cookie values the BFF did not issue").await;
}

// ------------------------------------------------------------------------------------
// Open redirects through returnTo (RFC 9700 §4.11)
// ------------------------------------------------------------------------------------

/// How a `returnTo` attack is sent.
enum ReturnTo {
    /// A value, percent-encoded into the query by the test (the BFF decodes it back).
    Value(String),
    /// A query string sent byte for byte after `/auth/login?`.
    RawQuery(String),
}

fn value(text: &str) -> ReturnTo {
    ReturnTo::Value(text.to_owned())
}

fn raw_query(text: &str) -> ReturnTo {
    ReturnTo::RawQuery(text.to_owned())
}

/// Characters that may go unencoded into a request target's query as they are.
fn sendable_raw(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/:.@-_~!$'()*,;=".contains(&b))
}

/// `/auth/login` refuses `attack` with 400, sends the browser nowhere and starts no login.
/// `{origin}` in the attack stands for the BFF's own origin. A value made only of
/// characters a request target may carry as they are is also sent unencoded.
async fn return_to_is_refused(name: &str, attack: ReturnTo) {
    let app = spawn_app(StoreKind::Memory).await;
    let mut queries = Vec::new();
    match attack {
        ReturnTo::Value(text) => {
            let text = text.replace("{origin}", &app.url);
            let encoded = Url::parse_with_params("http://x/", [("returnTo", text.as_str())]).expect("url");
            queries.push(encoded.query().expect("query").to_owned());
            if sendable_raw(&text) {
                queries.push(format!("returnTo={text}"));
            }
        }
        ReturnTo::RawQuery(query) => queries.push(query.replace("{origin}", &app.url)),
    }
    for query in queries {
        for accept in ["application/json", "text/html"] {
            let request = raw_request(
                &app.url,
                "GET",
                &format!("/auth/login?{query}"),
                &[("Accept", accept)],
                b"",
            );
            let response = raw_exchange(&app.url, &request).await;
            assert_eq!(response.status, 400, "{name}: {query} ({accept}): {}", response.text());
            assert!(response.header("location").is_empty(), "{name}: {query} was followed");
            assert!(
                response.header("set-cookie").is_empty(),
                "{name}: {query} started a login"
            );
            if accept == "application/json" {
                let body: Value = serde_json::from_slice(&response.body).expect("json");
                let code = body["error"].as_str().unwrap_or_default();
                assert!(
                    code == "invalid_return_to" || code == "invalid_request",
                    "{name}: {query}: {body}"
                );
            }
        }
    }
}

/// Declares the open-redirect table: every row becomes its own `#[tokio::test]`.
macro_rules! open_redirect_attacks {
    ($($(#[$meta:meta])* $name:ident: $attack:expr;)+) => {
        /// How many rows the table has.
        const OPEN_REDIRECT_ROWS: usize = [$(stringify!($name)),+].len();
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                return_to_is_refused(stringify!($name), $attack).await;
            }
        )+
    };
}

open_redirect_attacks! {
    /// RFC 9700 §4.11: protocol-relative URL, read by browsers as another host.
    attack_open_redirect_via_return_to_protocol_relative: value("//evil.com");
    /// Three slashes: browsers still read a host.
    attack_open_redirect_via_return_to_triple_slash: value("///evil.com");
    /// Slash-backslash: browsers treat `\` as `/` in special schemes.
    attack_open_redirect_via_return_to_slash_backslash: value("/\\evil.com");
    /// Backslash-slash.
    attack_open_redirect_via_return_to_backslash_slash: value("\\/evil.com");
    /// Two backslashes.
    attack_open_redirect_via_return_to_double_backslash: value("\\\\evil.com");
    /// Slash, backslash, slash.
    attack_open_redirect_via_return_to_slash_backslash_slash: value("/\\/evil.com");
    /// Dot and backslash after the slash (`/.\evil`).
    attack_open_redirect_via_return_to_dot_backslash: value("/.\\evil.com");
    /// Scheme without slashes: URL parsers and browsers read `evil.com` as the host.
    attack_open_redirect_via_return_to_scheme_without_slashes: value("https:evil.com");
    /// Scheme with one slash.
    attack_open_redirect_via_return_to_scheme_with_one_slash: value("https:/evil.com");
    /// Scheme with a backslash pair.
    attack_open_redirect_via_return_to_scheme_with_backslashes: value("https:\\\\evil.com");
    /// A plain foreign http URL.
    attack_open_redirect_via_return_to_foreign_http_url: value("http://evil.com");
    /// A foreign https URL in upper case.
    attack_open_redirect_via_return_to_foreign_url_in_upper_case: value("HTTPS://EVIL.COM/");
    /// A bare host name.
    attack_open_redirect_via_return_to_bare_host: value("evil.com");
    /// Protocol-relative with the allowed origin as the "path" after `@`.
    attack_open_redirect_via_return_to_protocol_relative_with_userinfo: value("//evil.com@localhost:5173");
    /// The allowed origin as user information of a foreign host.
    attack_open_redirect_via_return_to_allowed_origin_as_userinfo: value("http://localhost:5173@evil.com/");
    /// The BFF's own origin as user information of a foreign host.
    attack_open_redirect_via_return_to_own_origin_as_userinfo: value("{origin}@evil.com/");
    /// Allowed host name as a subdomain of the attacker's domain.
    attack_open_redirect_via_return_to_allowed_host_as_subdomain: value("http://localhost.evil.com:5173/");
    /// Allowed origin with another port.
    attack_open_redirect_via_return_to_allowed_host_on_another_port: value("http://localhost:5174/");
    /// Allowed origin with another scheme.
    attack_open_redirect_via_return_to_allowed_host_with_another_scheme: value("https://localhost:5173/");
    /// `javascript:` in mixed case.
    attack_open_redirect_via_return_to_javascript_mixed_case: value("JaVaScRiPt:alert(document.cookie)");
    /// `javascript:` behind a leading space.
    attack_open_redirect_via_return_to_javascript_after_space: value(" javascript:alert(1)");
    /// `javascript:` split by a tab (browsers drop tabs in URLs).
    attack_open_redirect_via_return_to_javascript_split_by_tab: value("java\tscript:alert(1)");
    /// `data:` URL with a script.
    attack_open_redirect_via_return_to_data_url: value("data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==");
    /// `vbscript:`.
    attack_open_redirect_via_return_to_vbscript: value("vbscript:msgbox(1)");
    /// Percent-encoded protocol-relative URL.
    attack_open_redirect_via_return_to_percent_encoded_slashes: value("%2F%2Fevil.com");
    /// Double percent-encoded protocol-relative URL.
    attack_open_redirect_via_return_to_double_encoded_slashes: value("%252F%252Fevil.com");
    /// Triple percent-encoded protocol-relative URL.
    attack_open_redirect_via_return_to_triple_encoded_slashes: value("%25252F%25252Fevil.com");
    /// A slash followed by an encoded slash.
    attack_open_redirect_via_return_to_slash_and_encoded_slash: value("/%2F/evil.com");
    /// Encoded backslash after the slash.
    attack_open_redirect_via_return_to_encoded_backslash: value("/%5Cevil.com");
    /// Protocol-relative with an encoded backslash.
    attack_open_redirect_via_return_to_protocol_relative_encoded_backslash: value("//%5Cevil.com");
    /// Encoded tab between slashes (browsers strip tabs, leaving `//evil.com`).
    attack_open_redirect_via_return_to_encoded_tab: value("/%09/evil.com");
    /// A raw tab between slashes.
    attack_open_redirect_via_return_to_raw_tab: value("/\t/evil.com");
    /// A newline between slashes.
    attack_open_redirect_via_return_to_newline: value("/\n/evil.com");
    /// CR LF: an attempt to inject a header into the redirect.
    attack_open_redirect_via_return_to_crlf_header_injection: value("/x\r\nSet-Cookie: bff-session=attacker");
    /// A leading space before a protocol-relative URL.
    attack_open_redirect_via_return_to_leading_space: value(" //evil.com");
    /// An encoded NUL byte.
    attack_open_redirect_via_return_to_nul_byte: value("/%00//evil.com");
    /// Ideographic space (U+3000), whitespace outside ASCII.
    attack_open_redirect_via_return_to_unicode_ideographic_space: value("/\u{3000}/evil.com");
    /// No-break space (U+00A0).
    attack_open_redirect_via_return_to_unicode_no_break_space: value("/\u{a0}/evil.com");
    /// Line separator (U+2028).
    attack_open_redirect_via_return_to_unicode_line_separator: value("/\u{2028}/evil.com");
    /// Fullwidth solidus (U+FF0F), which some normalisers fold to `/`.
    attack_open_redirect_via_return_to_fullwidth_solidus: value("\u{ff0f}\u{ff0f}evil.com");
    /// IDN look-alike of the allowed host (Cyrillic `о`).
    attack_open_redirect_via_return_to_idn_look_alike: value("http://l\u{43e}calhost:5173/");
    /// The same look-alike spelled in punycode.
    attack_open_redirect_via_return_to_punycode_look_alike: value("http://xn--lcalhost-9fg:5173/");
    /// Longer than any legitimate return path.
    attack_open_redirect_via_return_to_overlong_value: ReturnTo::Value(format!("/{}", "a".repeat(8 * 1024)));
    /// Unencoded protocol-relative URL straight in the query.
    attack_open_redirect_via_return_to_raw_query_protocol_relative: raw_query("returnTo=//evil.com/%2F..");
    /// Query encoding of a tab inside an otherwise encoded protocol-relative URL.
    attack_open_redirect_via_return_to_raw_query_encoded_tab_in_slashes: raw_query("returnTo=/%09/evil.com");
    /// Parameter pollution: a harmless first `returnTo` and a hostile second one.
    attack_open_redirect_via_return_to_parameter_pollution: raw_query("returnTo=/ok&returnTo=//evil.com");
    /// Parameter pollution the other way round.
    attack_open_redirect_via_return_to_parameter_pollution_reversed: raw_query("returnTo=//evil.com&returnTo=/ok");
}

// The table must not silently lose rows.
const _: () = assert!(OPEN_REDIRECT_ROWS >= 40, "the open-redirect table lost rows");

/// The control for the table above: legitimate return targets are accepted, so the
/// refusals are not a validator that refuses everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_return_to_values_are_accepted() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    for ok in [
        "/",
        "/orders?x=1",
        "/a/b#section",
        "/caf%C3%A9",
        "/search?q=a+b",
        "http://localhost:5173/app",
    ] {
        let url = Url::parse_with_params(&format!("{}/auth/login", app.url), [("returnTo", ok)]).expect("url");
        let response = browser.get(url.as_str()).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{ok}");
        assert!(location(&response).starts_with(&app.provider.issuer), "{ok}");
    }
    let own = format!("{}/own", app.url);
    let callback = browser.login("alice", &own).await;
    assert_eq!(location(&callback), own);
}

// ------------------------------------------------------------------------------------
// Open redirects through logout
// ------------------------------------------------------------------------------------

/// The configuration of a BFF on `public` with `post_logout` as post-logout URL.
fn config_with_post_logout(post_logout: &str) -> Result<bff::config::Config, bff::config::ConfigError> {
    let env: HashMap<&str, String> = HashMap::from([
        ("BFF_ISSUER", "https://id.example.com".to_owned()),
        ("BFF_CLIENT_ID", "client".to_owned()),
        ("BFF_CLIENT_SECRET", "secret".to_owned()),
        ("BFF_PUBLIC_URL", "https://app.example.com".to_owned()),
        ("BFF_ALLOWED_ORIGINS", "https://front.example.com".to_owned()),
        ("BFF_POST_LOGOUT_REDIRECT_URL", post_logout.to_owned()),
    ]);
    bff::config::Config::from_lookup(|name| env.get(name).cloned())
}

/// RFC 9700 §4.11 applied to logout: a post-logout redirect to a foreign origin (in any
/// spelling) is a configuration error naming the variable, so the BFF never starts with
/// an open redirect in its logout URL.
#[test]
fn attack_open_redirect_via_foreign_post_logout_url_is_a_configuration_error() {
    for ok in [
        "https://app.example.com/",
        "https://app.example.com/signed-out",
        "https://front.example.com/bye",
    ] {
        let config = config_with_post_logout(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(config.post_logout_url(), ok);
    }
    for foreign in [
        "https://evil.example.com/",
        "http://evil.example.com/",
        "//evil.example.com/",
        "https:evil.example.com",
        "https://app.example.com.evil.example.com/",
        "https://app.example.com@evil.example.com/",
        "https://front.example.com:8443/",
        "http://app.example.com/",
        "javascript:alert(1)",
        "data:text/html,bye",
        "/\\evil.example.com",
    ] {
        let err = config_with_post_logout(foreign).expect_err(foreign);
        assert!(
            matches!(
                err,
                bff::config::ConfigError::Invalid {
                    name: "BFF_POST_LOGOUT_REDIRECT_URL",
                    ..
                }
            ),
            "{foreign}: {err}"
        );
        assert!(err.to_string().contains("BFF_POST_LOGOUT_REDIRECT_URL"), "{foreign}");
        assert!(!err.to_string().contains("evil"), "the message does not echo the value");
    }
}

/// The same check on the real binary: `bff-local` with a foreign post-logout URL exits
/// at start-up with status 2 and one line naming the variable, and never listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_open_redirect_via_foreign_post_logout_url_stops_bff_local_at_start() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut env = app.env.clone();
    env.insert("BFF_POST_LOGOUT_REDIRECT_URL", "https://evil.example.com/".to_owned());
    let (status, output) =
        tokio::task::spawn_blocking(move || bff_tests::capture::run_to_exit(&env, Duration::from_secs(20)))
            .await
            .expect("join");
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("BFF_POST_LOGOUT_REDIRECT_URL"), "{output}");
    assert!(!output.contains("listening"), "{output}");
}

/// RFC 9700 §4.11: after login, the `logout_url` the BFF answers sends the browser to the
/// provider with exactly the configured post-logout URL, whatever the logout request
/// says (query parameters or a body naming another target are ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_open_redirect_via_logout_request_parameters_is_ignored() {
    let configured = format!("{ALLOWED_ORIGIN}/signed-out");
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_POST_LOGOUT_REDIRECT_URL", configured.clone()));
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let evil = "https://evil.example.com/";
    let response = browser
        .http
        .post(format!(
            "{}/auth/logout?post_logout_redirect_uri={evil}&returnTo={evil}&redirect_uri={evil}",
            app.url
        ))
        .header("X-CSRF", "1")
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"post_logout_redirect_uri":"{evil}","returnTo":"{evil}"}}"#
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let logout_url = body["logout_url"].as_str().expect("logout_url");
    assert!(!logout_url.contains("evil"), "{logout_url}");
    let url = Url::parse(logout_url).expect("url");
    assert_eq!(
        url.origin().ascii_serialization(),
        app.provider.issuer,
        "sent to the provider"
    );
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let targets: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k != "client_id" && k != "id_token_hint")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(targets, [configured.as_str()], "only the configured target: {params:?}");

    // Without a session (logout is idempotent) the answer names the same target.
    let again: Value = browser.logout().await.json().await.expect("json");
    let again = Url::parse(again["logout_url"].as_str().expect("logout_url")).expect("url");
    let post: Vec<String> = again
        .query_pairs()
        .filter(|(k, _)| k == "post_logout_redirect_uri")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(post, [configured]);
}

// ------------------------------------------------------------------------------------
// Cross-site request forgery on /api/* and POST /auth/logout (BFF draft §6.1.3.2)
// ------------------------------------------------------------------------------------

/// A forged call is refused with 403 and `code`; nothing reaches the upstream, the
/// session survives, and the same browser's genuine call still works afterwards.
/// `{origin}` in a header value stands for the BFF's own origin.
async fn forged_call_is_refused(name: &str, method: Method, path: &str, headers: &[(&str, &str)], code: &str) {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let mut request = planted.browser.http.request(method, format!("{}{path}", app.url));
    for (header, value) in headers {
        request = request.header(*header, value.replace("{origin}", &app.url));
    }
    if path == "/auth/logout" || headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("content-type")) {
        request = request.body("amount=1000&to=mallory");
    }
    let response = request.send().await.expect("call");
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
    assert!(
        !sets_cookie(&set_cookies(&response), "bff-session") && set_cookies(&response).is_empty(),
        "{name}: a refused call changes no cookie"
    );
    assert_eq!(error_code(response).await, code, "{name}");
    assert_harmless(&app, &planted, name).await;
}

/// Declares the forgery table: every row becomes its own `#[tokio::test]`.
macro_rules! forgery_attacks {
    ($($(#[$meta:meta])* $name:ident: $method:ident $path:literal [$(($h:expr, $v:expr)),* $(,)?] => $code:literal;)+) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                forged_call_is_refused(stringify!($name), Method::$method, $path, &[$(($h, $v)),*], $code).await;
            }
        )+
    };
}

forgery_attacks! {
    /// BFF draft §6.1.3.2: a cross-site form post (no custom header possible) to the API.
    attack_csrf_api_form_post_without_x_csrf: POST "/api/transfer"
        [("Content-Type", "application/x-www-form-urlencoded")] => "csrf_header_missing";
    /// A simple cross-site GET (an image or link) to the API.
    attack_csrf_api_get_without_x_csrf: GET "/api/orders" [] => "csrf_header_missing";
    /// A DELETE without the header.
    attack_csrf_api_delete_without_x_csrf: DELETE "/api/orders/1" [] => "csrf_header_missing";
    /// The header with another value.
    attack_csrf_api_wrong_x_csrf_value: POST "/api/transfer" [("X-CSRF", "0")] => "csrf_header_missing";
    /// The header with a truthy-looking value.
    attack_csrf_api_x_csrf_true: POST "/api/transfer" [("X-CSRF", "true")] => "csrf_header_missing";
    /// The header listed twice in one value.
    attack_csrf_api_x_csrf_list_value: POST "/api/transfer" [("X-CSRF", "1, 1")] => "csrf_header_missing";
    /// The header empty.
    attack_csrf_api_x_csrf_empty: POST "/api/transfer" [("X-CSRF", "")] => "csrf_header_missing";
    /// The header given twice: not "exactly once".
    attack_csrf_api_x_csrf_twice: POST "/api/transfer" [("X-CSRF", "1"), ("X-CSRF", "1")] => "csrf_header_missing";
    /// The anti-forgery value in the query instead of a header.
    attack_csrf_api_x_csrf_in_query: POST "/api/transfer?X-CSRF=1&x-csrf=1" [] => "csrf_header_missing";
    /// A foreign `Origin` with the header (a preflight the attacker's page cannot pass,
    /// refused outright as a second layer).
    attack_csrf_api_foreign_origin: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "https://evil.example.com")] => "origin_not_allowed";
    /// `Origin: null` (sandboxed iframes, data: URLs, some redirects).
    attack_csrf_api_null_origin: POST "/api/transfer" [("X-CSRF", "1"), ("Origin", "null")] => "origin_not_allowed";
    /// An origin that merely starts with an allowed one.
    attack_csrf_api_allowed_origin_prefix: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "http://localhost:5173.evil.com")] => "origin_not_allowed";
    /// The BFF's own origin with a trailing slash: not the same string, not an origin.
    attack_csrf_api_own_origin_with_path: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "{origin}/")] => "origin_not_allowed";
    /// The allowed origin on another scheme.
    attack_csrf_api_allowed_origin_other_scheme: POST "/api/transfer"
        [("X-CSRF", "1"), ("Origin", "https://localhost:5173")] => "origin_not_allowed";
    /// No `Origin`, but fetch metadata says cross-site.
    attack_csrf_api_sec_fetch_site_cross_site: POST "/api/transfer"
        [("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site")] => "cross_site_request";
    /// BFF draft §6.1.3.2: a cross-site form post to logout (forced logout).
    attack_csrf_logout_without_x_csrf: POST "/auth/logout"
        [("Content-Type", "application/x-www-form-urlencoded")] => "csrf_header_missing";
    /// Logout with a wrong header value.
    attack_csrf_logout_wrong_x_csrf_value: POST "/auth/logout" [("X-CSRF", "yes")] => "csrf_header_missing";
    /// Logout from a foreign origin.
    attack_csrf_logout_foreign_origin: POST "/auth/logout"
        [("X-CSRF", "1"), ("Origin", "https://evil.example.com")] => "origin_not_allowed";
    /// Logout from `Origin: null`.
    attack_csrf_logout_null_origin: POST "/auth/logout" [("X-CSRF", "1"), ("Origin", "null")] => "origin_not_allowed";
    /// Logout marked cross-site by fetch metadata.
    attack_csrf_logout_sec_fetch_site_cross_site: POST "/auth/logout"
        [("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site")] => "cross_site_request";
}

/// BFF draft §6.1.3.2 and OWASP CSRF: logout is a POST; a cross-site link or image
/// (`GET /auth/logout`) cannot end the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csrf_logout_by_get_navigation_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        let response = planted
            .browser
            .http
            .request(method.clone(), format!("{}/auth/logout", app.url))
            .header("X-CSRF", "1")
            .send()
            .await
            .expect("call");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(set_cookies(&response).is_empty(), "{method}: no cookie change");
    }
    assert_harmless(&app, &planted, "logout by another method").await;
}

// ------------------------------------------------------------------------------------
// CORS (BFF draft §6.1.3.2, Fetch standard CORS protocol)
// ------------------------------------------------------------------------------------

fn vary_has_origin(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"))
}

async fn preflight(http: &reqwest::Client, url: &str, origin: &str) -> reqwest::Response {
    http.request(Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "x-csrf, content-type")
        .send()
        .await
        .expect("preflight")
}

/// The allowed front-end origin gets exactly its own origin back with credentials, on
/// preflights and actual answers of every CORS-enabled endpoint; answers vary on
/// `Origin`; and the preflight never reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_allowed_origin_exactly_with_credentials_and_vary_origin() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let http = &planted.browser.http;
    for path in ["/api/orders/1", "/auth/me", "/auth/logout"] {
        let response = preflight(http, &format!("{}{path}", app.url), ALLOWED_ORIGIN).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            ALLOWED_ORIGIN,
            "{path}"
        );
        assert_eq!(header(&response, "access-control-allow-credentials"), "true", "{path}");
        let allowed_headers = header(&response, "access-control-allow-headers").to_ascii_lowercase();
        assert!(
            allowed_headers.contains("x-csrf") && allowed_headers.contains("content-type"),
            "{path}"
        );
        assert!(!allowed_headers.contains('*'), "{path}: no wildcard");
        assert!(
            header(&response, "access-control-allow-methods").contains("DELETE"),
            "{path}"
        );
    }
    assert!(
        app.upstream.requests().is_empty(),
        "a preflight never reaches the upstream"
    );

    let me = http
        .get(format!("{}/auth/me", app.url))
        .header("Origin", ALLOWED_ORIGIN)
        .send()
        .await
        .expect("me");
    let api = http
        .get(format!("{}/api/orders", app.url))
        .header("Origin", ALLOWED_ORIGIN)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("api");
    for response in [&me, &api] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response, "access-control-allow-origin"), ALLOWED_ORIGIN);
        assert_eq!(header(response, "access-control-allow-credentials"), "true");
        assert!(vary_has_origin(response), "Vary: Origin");
    }
    // A same-origin answer varies on Origin too, so no cache hands it to a CORS caller.
    let same_origin = planted.browser.api(Method::GET, "/api/orders").await;
    assert!(same_origin.headers().get("access-control-allow-origin").is_none());
    assert!(vary_has_origin(&same_origin), "Vary: Origin on same-origin answers");
}

/// A disallowed origin gets no CORS headers anywhere: its preflights fail, its actual
/// calls are refused without `Access-Control-Allow-*`, nothing reaches the upstream.
async fn origin_gets_no_cors(name: &str, origin: &str) {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let http = &planted.browser.http;
    for path in ["/api/orders/1", "/auth/me", "/auth/logout"] {
        let response = preflight(http, &format!("{}{path}", app.url), origin).await;
        assert!(!response.status().is_success(), "{name}: {path} preflight succeeded");
        for cors in ["access-control-allow-origin", "access-control-allow-credentials"] {
            assert!(response.headers().get(cors).is_none(), "{name}: {path} answered {cors}");
        }
    }
    let me = http
        .get(format!("{}/auth/me", app.url))
        .header("Origin", origin)
        .send()
        .await
        .expect("me");
    let api = http
        .get(format!("{}/api/orders", app.url))
        .header("Origin", origin)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("api");
    let logout = http
        .post(format!("{}/auth/logout", app.url))
        .header("Origin", origin)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("logout");
    for response in [&me, &api, &logout] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {}", response.url());
        assert!(
            response.headers().get("access-control-allow-origin").is_none(),
            "{name}"
        );
        assert!(
            response.headers().get("access-control-allow-credentials").is_none(),
            "{name}"
        );
        assert!(vary_has_origin(response), "{name}: Vary: Origin");
    }
    assert_harmless(&app, &planted, name).await;
}

/// Declares the disallowed-origin table: every row becomes its own `#[tokio::test]`.
macro_rules! cors_attacks {
    ($($(#[$meta:meta])* $name:ident: $origin:literal;)+) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                origin_gets_no_cors(stringify!($name), $origin).await;
            }
        )+
    };
}

cors_attacks! {
    /// A plainly foreign origin.
    attack_cors_foreign_origin_gets_no_cors_headers: "https://evil.example.com";
    /// `null` (sandboxed frames, `file:` and `data:` documents).
    attack_cors_null_origin_gets_no_cors_headers: "null";
    /// An origin that starts with the allowed one.
    attack_cors_allowed_origin_as_prefix_gets_no_cors_headers: "http://localhost:5173.evil.com";
    /// The allowed host on another port.
    attack_cors_allowed_host_other_port_gets_no_cors_headers: "http://localhost:5174";
    /// The allowed host on another scheme.
    attack_cors_allowed_host_other_scheme_gets_no_cors_headers: "https://localhost:5173";
    /// A subdomain of the allowed host.
    attack_cors_subdomain_of_allowed_host_gets_no_cors_headers: "http://evil.localhost:5173";
    /// The allowed origin with a trailing slash (not an origin serialisation).
    attack_cors_allowed_origin_with_slash_gets_no_cors_headers: "http://localhost:5173/";
    /// A list smuggling the allowed origin next to a foreign one.
    attack_cors_origin_list_gets_no_cors_headers: "https://evil.example.com, http://localhost:5173";
    /// A wildcard.
    attack_cors_wildcard_origin_gets_no_cors_headers: "*";
}

/// Starts an upstream that answers every call with `headers`, and a BFF in front of it.
async fn app_with_hostile_upstream(headers: &'static [(&'static str, &'static str)]) -> TestApp {
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

/// The BFF alone decides CORS: an upstream answering `Access-Control-Allow-Origin: *`
/// (or naming a foreign origin) with credentials cannot open the API to other origins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cors_upstream_cannot_open_the_api_to_foreign_origins() {
    let app = app_with_hostile_upstream(&[
        ("access-control-allow-origin", "https://evil.example.com"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-origin", "*"),
        ("access-control-expose-headers", "*"),
    ])
    .await;
    let planted = plant_session(&app).await;
    let same_origin = planted.browser.api(Method::GET, "/api/x").await;
    assert_eq!(same_origin.status(), StatusCode::OK);
    assert!(same_origin.headers().get("access-control-allow-origin").is_none());
    assert!(same_origin.headers().get("access-control-allow-credentials").is_none());
    assert!(same_origin.headers().get("access-control-expose-headers").is_none());
    let allowed = planted
        .browser
        .http
        .get(format!("{}/api/x", app.url))
        .header("Origin", ALLOWED_ORIGIN)
        .header("X-CSRF", "1")
        .send()
        .await
        .expect("call");
    let values: Vec<&str> = allowed
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(values, [ALLOWED_ORIGIN], "exactly the BFF's own answer");
}

/// OWASP Session Management (session fixation): an upstream (or anyone who controls its
/// answers) cannot set or overwrite the BFF's cookies through a proxied response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_fixation_via_upstream_set_cookie_is_stripped() {
    let app = app_with_hostile_upstream(&[
        (
            "set-cookie",
            "bff-session=attacker-chosen-session-id-0000000000000000; Path=/",
        ),
        ("set-cookie", "__Host-Http-bff-session=x; Path=/; Secure"),
        ("set-cookie", "bff-tx=attacker; Path=/"),
    ])
    .await;
    let planted = plant_session(&app).await;
    let response = planted.browser.api(Method::GET, "/api/x").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
    assert_eq!(
        planted.browser.cookie("bff-session").as_deref(),
        Some(planted.id.as_str())
    );
    assert!(planted.browser.cookie("bff-tx").is_none());
}

// ------------------------------------------------------------------------------------
// Cookies in deployed mode (RFC 6265bis `__Host-` prefix, BFF draft §6.1.3.2)
// ------------------------------------------------------------------------------------

/// The deployed origin the cookie tests configure (served over loopback by the harness).
const DEPLOYED_ORIGIN: &str = "https://app.example.com";

/// The attributes of a `Set-Cookie` value, lower-cased, without the name/value pair.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// RFC 6265bis §4.1.3.2 and the BFF draft §6.1.3.2: deployed on https, the login
/// transaction cookie is `__Host-Http-bff-tx` with `Secure; HttpOnly; SameSite=Lax;
/// Path=/` and no `Domain`, so no subdomain can set or read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_login_transaction_cookie_is_host_prefixed_secure_httponly_lax() {
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_PUBLIC_URL", DEPLOYED_ORIGIN.to_owned()));
    let app = spawn_app_with(options).await;
    let response = app.browser().get("/auth/login?returnTo=/x").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        query_param(&location(&response), "redirect_uri"),
        format!("{DEPLOYED_ORIGIN}/auth/callback")
    );
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let tx = &cookies[0];
    assert!(tx.starts_with("__Host-Http-bff-tx="), "{tx}");
    let attrs = attributes(tx);
    for want in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {tx}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "no Domain: {tx}");
}

/// RFC 6265bis §4.1.3.2 (cookie tossing from a sibling subdomain or a plain-http
/// man-in-the-middle): deployed, the session cookie is `__Host-Http-bff-session` with
/// `Secure; HttpOnly; SameSite=Strict; Path=/`, and the BFF reads only that name: a
/// cookie without the prefix, which anyone on a subdomain could set, is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cookie_tossing_with_an_unprefixed_session_cookie_is_ignored_when_deployed() {
    // A client whose redirect URI is the deployed origin; the browser's redirect there is
    // caught and replayed against the BFF's loopback address.
    let base = spawn_app(StoreKind::Memory).await;
    let client = base.provider.register(DEPLOYED_ORIGIN, "client_secret_basic").await;
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_PUBLIC_URL", DEPLOYED_ORIGIN.to_owned()));
    options.env.push(("BFF_CLIENT_ID", client.client_id.clone()));
    options.env.push(("BFF_CLIENT_SECRET", client.client_secret.clone()));
    let app = spawn_app_with(options).await;
    let browser = app.browser();

    let login = browser.get("/auth/login?returnTo=/home").await;
    let tx = set_cookies(&login)[0].split(';').next().expect("pair").to_owned();
    let authorize = location(&login);
    let callback = walk_provider(
        &browser,
        &authorize,
        "alice",
        &format!("{DEPLOYED_ORIGIN}/auth/callback"),
    )
    .await;
    let local_callback = callback.replacen(DEPLOYED_ORIGIN, &app.url, 1);
    let done = browser
        .http
        .get(&local_callback)
        .header("Cookie", &tx)
        .send()
        .await
        .expect("callback");
    assert_eq!(done.status(), StatusCode::FOUND);
    let session = set_cookies(&done)
        .into_iter()
        .find(|c| c.starts_with("__Host-Http-bff-session="))
        .expect("session cookie");
    let attrs = attributes(&session);
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {session}");
    }
    for absent in ["domain", "max-age", "expires"] {
        assert!(!attrs.iter().any(|a| a.starts_with(absent)), "{absent}: {session}");
    }
    let id = session
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .expect("pair")
        .1
        .to_owned();

    let me = |cookie: String| {
        let http = reqwest::Client::new();
        let url = format!("{}/auth/me", app.url);
        async move {
            http.get(url)
                .header("Cookie", cookie)
                .send()
                .await
                .expect("me")
                .status()
        }
    };
    assert_eq!(me(format!("__Host-Http-bff-session={id}")).await, StatusCode::OK);
    for tossed in [
        format!("bff-session={id}"),
        format!("__Host-bff-session={id}"),
        format!("__host-http-bff-session={id}"),
        format!("__Secure-Http-bff-session={id}"),
        format!("Http-bff-session={id}"),
    ] {
        assert_eq!(me(tossed.clone()).await, StatusCode::UNAUTHORIZED, "{tossed}");
    }
}

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

// ------------------------------------------------------------------------------------
// Oversized input (resource exhaustion)
// ------------------------------------------------------------------------------------

/// A request body over the 6 MiB Lambda limit is refused with 413 before anything is
/// forwarded, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_oversized_request_body_is_refused_with_413() {
    let app = spawn_app(StoreKind::Memory).await;
    let planted = plant_session(&app).await;
    let body = vec![b'a'; bff_local::MAX_BODY_BYTES + 1];
    let response = planted
        .browser
        .http
        .post(format!("{}/api/x", app.url))
        .header("X-CSRF", "1")
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE),
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
        "POST /api/x HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-CSRF: 1\r\n\
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
