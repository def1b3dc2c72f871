//! A headless browser for the provider's real login: one cookie jar for every origin, no
//! automatic redirects (each hop is a step a caller may check or tamper with), and the
//! login and consent forms of `oidc-provider`'s pages filled in.

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
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
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
            let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", user), ("password", "any")]
            } else if page.contains(r#"name="prompt" value="consent""#) {
                vec![("prompt", "consent")]
            } else {
                panic!("unknown provider page at {url}");
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
