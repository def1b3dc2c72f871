//! A headless browser for the OAuth flow: one cookie jar shared by the BFF and the
//! provider, redirects never followed automatically (each hop is a step a test may check
//! or tamper with), and the provider's real login and consent forms filled in.

use std::sync::Arc;

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Response, StatusCode};
use url::Url;

/// One browser profile.
pub struct Browser {
    /// The BFF origin.
    pub bff: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The cookie jar.
    pub jar: Arc<Jar>,
    /// The HTTP client using the jar.
    pub http: reqwest::Client,
}

impl Browser {
    /// A browser with an empty jar.
    pub fn new(bff: &str, issuer: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            bff: bff.to_owned(),
            issuer: issuer.to_owned(),
            jar,
            http,
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
        let url = Url::parse_with_params(&format!("{}/auth/login", self.bff), [("returnTo", return_to)]).expect("url");
        let response = self.get(url.as_str()).await;
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "login must redirect to the provider"
        );
        location(&response)
    }

    /// Walks the provider from `authorize_url` as `user`, through the login and consent
    /// pages when shown; returns the callback URL (not yet visited).
    pub async fn authenticate(&self, authorize_url: &str, user: &str) -> String {
        let mut url = authorize_url.to_owned();
        for _ in 0..12 {
            if url.starts_with(&format!("{}/auth/callback", self.bff)) {
                return url;
            }
            let response = self.get(&url).await;
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
            } else if page.contains(r#"name="prompt" value="consent""#) {
                vec![("prompt", "consent")]
            } else {
                panic!("unknown provider page at {url}");
            };
            let posted = self.http.post(&url).form(&form).send().await.expect("form post");
            assert!(posted.status().is_redirection(), "form post must redirect");
            url = Url::parse(&url)
                .expect("url")
                .join(&location(&posted))
                .expect("join")
                .into();
        }
        panic!("the provider never redirected back to the BFF");
    }

    /// Walks the provider from `authorize_url` to its first interaction page and cancels
    /// there; returns the callback URL carrying `error=access_denied`.
    pub async fn deny(&self, authorize_url: &str) -> String {
        let response = self.get(authorize_url).await;
        let interaction = Url::parse(authorize_url)
            .expect("url")
            .join(&location(&response))
            .expect("join");
        let abort = self
            .get(&format!("{}/abort", interaction.as_str().trim_end_matches('/')))
            .await;
        let mut url = interaction.join(&location(&abort)).expect("join").to_string();
        while !url.starts_with(&format!("{}/auth/callback", self.bff)) {
            let response = self.get(&url).await;
            assert!(response.status().is_redirection(), "abort must redirect back");
            url = Url::parse(&url)
                .expect("url")
                .join(&location(&response))
                .expect("join")
                .into();
        }
        url
    }

    /// A complete login as `user` returning to `return_to`; returns the callback response.
    pub async fn login(&self, user: &str, return_to: &str) -> Response {
        let authorize = self.start_login(return_to).await;
        let callback = self.authenticate(&authorize, user).await;
        self.get(&callback).await
    }

    /// The cookies the jar would send to the BFF, as one `Cookie` header value.
    pub fn cookies(&self) -> String {
        let url = Url::parse(&self.bff).expect("url");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
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

/// The `Location` header of a redirect.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location on a {} answer", response.status()))
        .to_owned()
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
