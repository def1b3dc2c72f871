//! A headless browser for the OAuth flow bound to one BFF: `bff_testkit`'s browser (one
//! cookie jar shared by the BFF and the provider, redirects never followed automatically,
//! the provider's real login and consent forms filled in) with relative URLs resolved
//! against the BFF and its cookies read from the jar.

use std::ops::Deref;

use reqwest::Response;
use url::Url;

use bff_testkit::browser::join;
pub use bff_testkit::browser::location;

/// One browser profile (everything of [`bff_testkit::Browser`], through `Deref`).
pub struct Browser {
    /// The BFF origin.
    pub bff: String,
    /// The provider's issuer.
    pub issuer: String,
    web: bff_testkit::Browser,
}

impl Deref for Browser {
    type Target = bff_testkit::Browser;

    fn deref(&self) -> &Self::Target {
        &self.web
    }
}

impl Browser {
    /// A browser with an empty jar.
    pub fn new(bff: &str, issuer: &str) -> Self {
        Self {
            bff: bff.to_owned(),
            issuer: issuer.to_owned(),
            web: bff_testkit::Browser::new(),
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
