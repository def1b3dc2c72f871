//! A headless browser for the provider's real login: one cookie jar for every origin, no
//! automatic redirects (each hop is a step a caller may check or tamper with), and the
//! login and consent forms of `oidc-provider`'s pages filled in.
//!
//! - [`Browser`]: the browser itself; every call names the BFF origin it goes to.
//! - [`BffBrowser`]: the same browser bound to one BFF and its provider, with relative
//!   URLs resolved against the BFF and its cookies read from the jar.
//! - [`raw_get`]: a GET sent byte for byte, for request targets a URL library would
//!   normalise.

use std::ops::Deref;
use std::sync::Arc;

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Response, StatusCode};
use url::Url;

/// Hops (redirects and form posts) a walk through the provider may take before it is
/// taken for a loop.
const MAX_HOPS: usize = 16;

/// One browser profile (its own provider session).
pub struct Browser {
    /// The cookie jar (provider and relying-party cookies alike).
    pub jar: Arc<Jar>,
    /// The HTTP client using the jar.
    pub http: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty jar.
    pub fn new() -> Self {
        Self::with_user_agent(None)
    }

    /// A browser with an empty jar that sends `user_agent` as its `User-Agent` (none
    /// when `None`).
    pub fn with_user_agent(user_agent: Option<&str>) -> Self {
        Self::build(user_agent, None)
    }

    /// A browser with an empty jar that also trusts the CA certificate (PEM) in
    /// `ca_file`: for a provider behind a terminator of [`crate::tls`].
    pub fn trusting(ca_file: &std::path::Path) -> Self {
        let pem = std::fs::read(ca_file).expect("the test CA's certificate");
        Self::build(
            None,
            Some(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate")),
        )
    }

    fn build(user_agent: Option<&str>, root: Option<reqwest::Certificate>) -> Self {
        let jar = Arc::new(Jar::default());
        let mut builder = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none());
        if let Some(user_agent) = user_agent {
            builder = builder.user_agent(user_agent);
        }
        if let Some(root) = root {
            builder = builder.add_root_certificate(root);
        }
        let http = builder.build().expect("HTTP client");
        Self { jar, http }
    }

    /// `GET {origin}/auth/login?returnTo=...` at a BFF, as a page navigation; returns the
    /// provider URL it redirects to.
    pub async fn start_login(&self, origin: &str, return_to: &str) -> String {
        let url =
            Url::parse_with_params(&format!("{origin}/auth/login"), [("returnTo", return_to)]).expect("login URL");
        let response = self
            .http
            .get(url.as_str())
            .header("accept", "text/html")
            .send()
            .await
            .expect("GET /auth/login");
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "login must redirect to the provider"
        );
        join(url.as_str(), &location(&response))
    }

    /// Walks the provider from `authorize_url` as `user` (login and consent pages when
    /// shown) until it redirects to a URL starting with `callback_prefix`; returns that
    /// URL, not visited.
    pub async fn authenticate(&self, authorize_url: &str, callback_prefix: &str, user: &str) -> String {
        let mut url = authorize_url.to_owned();
        for _ in 0..MAX_HOPS {
            if url.starts_with(callback_prefix) {
                return url;
            }
            let response = self.http.get(&url).send().await.expect("GET at the provider");
            if response.status().is_redirection() {
                url = join(&url, &location(&response));
                continue;
            }
            assert_eq!(response.status(), StatusCode::OK, "unexpected provider answer at {url}");
            let page = response.text().await.expect("provider page");
            // Signing in as another account ends the provider's current session first: a
            // form a real browser submits by script.
            if let Some(xsrf) = page
                .contains("/session/end/confirm")
                .then(|| hidden_value(&page, "xsrf"))
                .flatten()
            {
                let action = join(&url, "/session/end/confirm");
                let posted = self
                    .http
                    .post(&action)
                    .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
                    .send()
                    .await
                    .expect("session end post");
                assert!(
                    posted.status().is_redirection(),
                    "ending the provider session must redirect"
                );
                url = join(&action, &location(&posted));
                continue;
            }
            let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", user), ("password", "any")]
            } else if page.contains(r#"name="prompt" value="consent""#) {
                vec![("prompt", "consent")]
            } else {
                let body = page.find("<body").map_or(page.as_str(), |at| &page[at..]);
                let text: String = body.chars().take(600).collect();
                panic!("unknown provider page at {url}: {text}");
            };
            let posted = self.http.post(&url).form(&form).send().await.expect("form post");
            assert!(posted.status().is_redirection(), "a provider form post must redirect");
            url = join(&url, &location(&posted));
        }
        panic!("the provider never redirected back to {callback_prefix}");
    }

    /// A complete login as `user` at the BFF at `origin`: its `/auth/login`, the provider,
    /// then its `/auth/callback`, whose response is returned.
    pub async fn login_at(&self, origin: &str, user: &str, return_to: &str) -> Response {
        let authorize = self.start_login(origin, return_to).await;
        let callback = self
            .authenticate(&authorize, &format!("{origin}/auth/callback"), user)
            .await;
        self.http.get(&callback).send().await.expect("GET /auth/callback")
    }

    /// The `Cookie` header this browser sends to `origin`. The jar keys cookies by host,
    /// not port, so the provider's cookies on the same loopback address are in it too.
    pub fn cookies(&self, origin: &str) -> String {
        let url = Url::parse(origin).expect("origin");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Ends this browser's session at the provider at `issuer` (its logout page,
    /// confirmed), which makes the provider send back-channel logout tokens to the
    /// clients of that session.
    pub async fn logout_at_provider(&self, issuer: &str) {
        let page = self
            .http
            .get(format!("{issuer}/session/end"))
            .send()
            .await
            .expect("GET /session/end")
            .text()
            .await
            .expect("logout page");
        let xsrf = page
            .split(r#"name="xsrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("xsrf field on the provider's logout page")
            .to_owned();
        let confirmed = self
            .http
            .post(format!("{issuer}/session/end/confirm"))
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .expect("POST /session/end/confirm");
        assert!(
            confirmed.status().is_redirection() || confirmed.status().is_success(),
            "provider logout: {}",
            confirmed.status()
        );
    }
}

/// The value of the hidden form field `name` in `page`.
fn hidden_value(page: &str, name: &str) -> Option<String> {
    page.split(&format!(r#"name="{name}" value=""#))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

/// The `Location` header of a redirect.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location on a {} answer", response.status()))
        .to_owned()
}

/// `reference` resolved against `base`.
pub fn join(base: &str, reference: &str) -> String {
    Url::parse(base)
        .and_then(|b| b.join(reference))
        .map(String::from)
        .unwrap_or_else(|_| reference.to_owned())
}

/// One browser profile bound to one BFF (everything of [`Browser`], through `Deref`).
pub struct BffBrowser {
    /// The BFF origin.
    pub bff: String,
    /// The provider's issuer.
    pub issuer: String,
    web: Browser,
}

impl Deref for BffBrowser {
    type Target = Browser;

    fn deref(&self) -> &Self::Target {
        &self.web
    }
}

impl BffBrowser {
    /// A browser with an empty jar.
    pub fn new(bff: &str, issuer: &str) -> Self {
        Self::with_user_agent(bff, issuer, None)
    }

    /// A browser with an empty jar, sending `user_agent` as its `User-Agent`.
    pub fn with_user_agent(bff: &str, issuer: &str, user_agent: Option<&str>) -> Self {
        Self {
            bff: bff.to_owned(),
            issuer: issuer.to_owned(),
            web: Browser::with_user_agent(user_agent),
        }
    }

    /// GET a URL, relative ones against the BFF.
    pub async fn get(&self, url: &str) -> Response {
        self.http.get(self.absolute(url)).send().await.expect("GET")
    }

    /// An API call through the BFF with the anti-forgery header.
    pub async fn api(&self, method: reqwest::Method, path: &str) -> Response {
        self.http
            .request(method, self.absolute(path))
            .header("X-CSRF", "1")
            .send()
            .await
            .expect("API call")
    }

    /// `POST /auth/logout` with the anti-forgery header.
    pub async fn logout(&self) -> Response {
        self.http
            .post(self.absolute("/auth/logout"))
            .header("X-CSRF", "1")
            .send()
            .await
            .expect("logout")
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.bff)
        } else {
            url.to_owned()
        }
    }

    /// `GET /auth/login?returnTo=...`; returns the provider URL it redirects to.
    pub async fn start_login(&self, return_to: &str) -> String {
        self.web.start_login(&self.bff, return_to).await
    }

    /// Walks the provider from `authorize_url` as `user`, through the login and consent
    /// pages when shown; returns the URL of this BFF's callback (not yet visited).
    pub async fn authenticate(&self, authorize_url: &str, user: &str) -> String {
        self.web
            .authenticate(authorize_url, &self.callback_prefix(), user)
            .await
    }

    /// Walks the provider from `authorize_url` to its first interaction page and cancels
    /// there; returns the callback URL carrying `error=access_denied`.
    pub async fn deny(&self, authorize_url: &str) -> String {
        let response = self.get(authorize_url).await;
        let interaction = join(authorize_url, &location(&response));
        let abort = self.get(&format!("{}/abort", interaction.trim_end_matches('/'))).await;
        let mut url = join(&interaction, &location(&abort));
        while !url.starts_with(&self.callback_prefix()) {
            let response = self.get(&url).await;
            assert!(response.status().is_redirection(), "abort must redirect back");
            url = join(&url, &location(&response));
        }
        url
    }

    fn callback_prefix(&self) -> String {
        format!("{}/auth/callback", self.bff)
    }

    /// A complete login as `user` returning to `return_to`; returns the callback response.
    pub async fn login(&self, user: &str, return_to: &str) -> Response {
        self.web.login_at(&self.bff, user, return_to).await
    }

    /// The cookies the jar would send to the BFF, as one `Cookie` header value.
    pub fn cookies(&self) -> String {
        self.web.cookies(&self.bff)
    }

    /// The value of BFF cookie `name` in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
            .filter(|v| !v.is_empty())
    }

    /// Puts a cookie into the jar as if a server had set it.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url = Url::parse(&self.bff).expect("url");
        self.jar.add_cookie_str(&format!("{name}={value}; Path=/"), &url);
    }
}

/// Sends `GET <target>` byte for byte over a fresh connection (URL libraries normalise
/// `..` and `%2e%2e` before sending, which would hide what a real attacker can send).
/// Returns the status code and the body.
pub async fn raw_get(origin: &str, target: &str, extra_headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = origin.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
