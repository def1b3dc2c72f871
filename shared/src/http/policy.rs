//! The request and response policy of every route, applied once by the router.
//!
//! The edge reads what it needs from a request once, into an [`EdgeRequest`]: the
//! `Origin`, `Sec-Fetch-Site`, the anti-forgery header, the cookies, whether it is a CORS
//! preflight and whether a page is wanted. A route's [`Policy`] then decides once:
//! answer a preflight, refuse, or continue to the handler; and on the way out it adds the
//! CORS and cache headers.
//!
//! Anti-forgery: state-changing and token-using endpoints (`/api/*`, `POST /auth/logout`)
//! require the header `X-CSRF: 1`. A custom header cannot be sent cross-origin without a
//! CORS preflight, and preflights succeed only for `BFF_ALLOWED_ORIGINS`, so a foreign
//! page cannot make the browser call them with the session cookie. Requests from a
//! foreign `Origin` (or, without `Origin`, marked `Sec-Fetch-Site: cross-site`) are
//! refused outright as a second layer.

use http::header::{CACHE_CONTROL, HeaderName, HeaderValue, REFERRER_POLICY, VARY};
use http::{HeaderMap, Method, StatusCode};
use lambda_http::{Body, Request, Response};

use super::cookies::CookieNames;
use super::error::{ErrorAnswer, Refusal};
use super::response::header_str;
use crate::domain::secret::SessionId;
use crate::platform::config::Config;

/// The anti-forgery header and its one accepted value.
pub const CSRF_HEADER: &str = "x-csrf";
/// Methods a preflight may ask for.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// Request headers a cross-origin front end may send.
const ALLOWED_HEADERS: &str = "x-csrf, content-type, accept, accept-language, content-language";
/// How long browsers may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The request's `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Absent,
    One(String),
    /// Sent several times (browsers send one; parsers may disagree) or not text.
    Unusable,
}

/// What the edge reads of a request, read once.
#[derive(Debug)]
pub struct EdgeRequest {
    origin: Origin,
    cross_site: bool,
    csrf_header: bool,
    preflight: bool,
    session_id: Option<SessionId>,
    /// The `state`s of this browser's pending logins.
    pub pending_states: Vec<String>,
    /// Whether the client prefers an HTML page (a browser navigation) to JSON.
    pub wants_html: bool,
}

impl EdgeRequest {
    /// Reads `req` with this deployment's cookie names.
    pub fn read(req: &Request, cookies: &CookieNames) -> Self {
        let headers = req.headers();
        let mut origins = headers.get_all(http::header::ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (None, _) => Origin::Absent,
            (Some(value), None) => value.to_str().map_or(Origin::Unusable, |o| Origin::One(o.to_owned())),
            (Some(_), Some(_)) => Origin::Unusable,
        };
        Self {
            origin,
            cross_site: header_str(headers, "sec-fetch-site") == Some("cross-site"),
            csrf_header: header_str(headers, CSRF_HEADER) == Some("1"),
            preflight: req.method() == Method::OPTIONS && headers.contains_key("access-control-request-method"),
            session_id: cookies.session_id(headers),
            pending_states: cookies.pending_states(headers),
            wants_html: header_str(headers, "accept").is_some_and(|a| a.contains("text/html")),
        }
    }

    /// The session id of the session cookie (sent exactly once), if any: a copy, for the
    /// one service call that consumes it.
    pub fn session_id(&self) -> Option<SessionId> {
        self.session_id.as_ref().map(|id| SessionId::new(id.secret()))
    }

    /// Refuses requests from an origin that is neither the BFF's nor an allowed one.
    fn check_origin(&self, config: &Config) -> Result<(), Refusal> {
        match &self.origin {
            Origin::One(origin) if config.is_known_origin(origin) => Ok(()),
            Origin::One(_) | Origin::Unusable => Err(Refusal::OriginNotAllowed),
            Origin::Absent if self.cross_site => Err(Refusal::CrossSiteRequest),
            Origin::Absent => Ok(()),
        }
    }

    /// Requires `X-CSRF: 1` (exactly, once) and a known origin.
    fn check_anti_forgery(&self, config: &Config) -> Result<(), Refusal> {
        if !self.csrf_header {
            return Err(Refusal::CsrfHeaderMissing);
        }
        self.check_origin(config)
    }

    /// The request's origin when it is an allowed front-end origin (gets CORS headers).
    fn cors_origin(&self, config: &Config) -> Option<&str> {
        match &self.origin {
            Origin::One(origin) if config.is_allowed_cors_origin(origin) => Some(origin),
            _ => None,
        }
    }
}

/// What a route checks before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Nothing: navigations and server-to-server calls (login, callback, back-channel).
    Open,
    /// A known origin (reads of the session).
    KnownOrigin,
    /// `X-CSRF: 1` and a known origin (everything that changes state or uses a token).
    AntiForgery,
}

/// How a route answers errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// Always JSON.
    Json,
    /// Always an HTML page (a browser navigation).
    Page,
    /// A page for a browser asking for HTML, JSON otherwise.
    PageForBrowsers,
}

/// A route's request and response policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The methods served; `None` for any.
    pub methods: Option<&'static [Method]>,
    /// Whether CORS preflights are answered (and actual answers carry CORS headers).
    pub cors: bool,
    /// The check before the handler.
    pub guard: Guard,
    /// `Cache-Control: no-store` on every answer.
    pub no_store: bool,
    /// `Referrer-Policy: no-referrer` on every answer.
    pub no_referrer: bool,
    /// How errors are answered.
    pub errors: ErrorFormat,
}

/// What the policy decided before the handler.
pub enum Admission {
    /// Call the handler.
    Continue,
    /// Answer this, call no handler.
    Answer(Response<Body>),
}

impl Policy {
    /// Preflight, method and guard, in that order.
    pub fn admit(&self, method: &Method, edge: &EdgeRequest, config: &Config) -> Result<Admission, ErrorAnswer> {
        if self.cors && edge.preflight {
            return Ok(Admission::Answer(self.cache(preflight(edge, config))));
        }
        if self.methods.is_some_and(|allowed| !allowed.contains(method)) {
            return Err(super::error::RequestError::MethodNotAllowed.into());
        }
        match self.guard {
            Guard::Open => {}
            Guard::KnownOrigin => edge.check_origin(config)?,
            Guard::AntiForgery => edge.check_anti_forgery(config)?,
        }
        Ok(Admission::Continue)
    }

    /// The answer for `error`, in this route's format.
    pub fn error_answer(&self, error: &ErrorAnswer, edge: &EdgeRequest) -> Response<Body> {
        match self.errors {
            ErrorFormat::Json => error.to_json(),
            ErrorFormat::Page => error.to_page(),
            ErrorFormat::PageForBrowsers if edge.wants_html => error.to_page(),
            ErrorFormat::PageForBrowsers => error.to_json(),
        }
    }

    /// Adds this route's response headers: CORS for allowed origins, cache and referrer
    /// rules.
    pub fn finish<B>(&self, mut response: Response<B>, edge: &EdgeRequest, config: &Config) -> Response<B> {
        if self.cors {
            response.headers_mut().append(VARY, HeaderValue::from_static("Origin"));
            if let Some(origin) = edge.cors_origin(config) {
                cors_headers(response.headers_mut(), origin);
            }
        }
        if self.no_referrer {
            response
                .headers_mut()
                .insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        }
        self.cache(response)
    }

    fn cache<B>(&self, mut response: Response<B>) -> Response<B> {
        if self.no_store {
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

/// The answer to a CORS preflight: only allowed origins get a positive one. A preflight
/// is never forwarded anywhere.
fn preflight(edge: &EdgeRequest, config: &Config) -> Response<Body> {
    let Some(origin) = edge.cors_origin(config) else {
        return ErrorAnswer::from(Refusal::OriginNotAllowed).to_json();
    };
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("Origin"));
    insert(headers, "access-control-allow-methods", ALLOWED_METHODS);
    insert(headers, "access-control-allow-headers", ALLOWED_HEADERS);
    insert(headers, "access-control-max-age", PREFLIGHT_MAX_AGE);
    cors_headers(headers, origin);
    response
}

fn cors_headers(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert("access-control-allow-origin", value);
        insert(headers, "access-control-allow-credentials", "true");
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &'static str) {
    headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|name| {
            Some(
                match name {
                    "BFF_ISSUER" => "https://id.example.com",
                    "BFF_CLIENT_ID" => "c",
                    "BFF_CLIENT_SECRET" => "s",
                    "BFF_PUBLIC_URL" => "https://app.example.com",
                    "BFF_ALLOWED_ORIGINS" => "https://front.example.com",
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .expect("config")
    }

    fn edge(method: &str, pairs: &[(&'static str, &'static str)]) -> EdgeRequest {
        let mut builder = http::Request::builder()
            .method(method)
            .uri("https://app.example.com/api/x");
        for (k, v) in pairs {
            builder = builder.header(*k, *v);
        }
        let req: Request = builder.body(Body::Empty).expect("request");
        EdgeRequest::read(&req, &CookieNames::new(false))
    }

    fn anti_forgery(pairs: &[(&'static str, &'static str)]) -> Result<(), Refusal> {
        edge("GET", pairs).check_anti_forgery(&config())
    }

    #[test]
    fn anti_forgery_needs_exactly_x_csrf_1() {
        assert!(anti_forgery(&[("x-csrf", "1")]).is_ok());
        for bad in [
            &[][..],
            &[("x-csrf", "true")],
            &[("x-csrf", "1"), ("x-csrf", "1")],
            &[("x-csrf", " 1")],
        ] {
            let refused = ErrorAnswer::from(anti_forgery(bad).expect_err("refused"));
            assert_eq!(refused.status, 403);
        }
    }

    #[test]
    fn foreign_and_null_origins_are_refused() {
        for ok in ["https://app.example.com", "https://front.example.com"] {
            assert!(anti_forgery(&[("x-csrf", "1"), ("origin", ok)]).is_ok(), "{ok}");
        }
        for bad in ["https://evil.example.com", "null", "https://app.example.com.evil.com"] {
            let refused = ErrorAnswer::from(anti_forgery(&[("x-csrf", "1"), ("origin", bad)]).expect_err(bad));
            assert_eq!(refused.status, 403);
        }
        let twice = [
            ("x-csrf", "1"),
            ("origin", "https://app.example.com"),
            ("origin", "https://evil.com"),
        ];
        let refused = ErrorAnswer::from(anti_forgery(&twice).expect_err("two origins"));
        assert_eq!(refused.status, 403);
        assert!(anti_forgery(&[("x-csrf", "1"), ("sec-fetch-site", "cross-site")]).is_err());
        assert!(anti_forgery(&[("x-csrf", "1"), ("sec-fetch-site", "same-origin")]).is_ok());
    }

    fn options(origin: &'static str) -> EdgeRequest {
        edge(
            "OPTIONS",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-csrf, content-type"),
            ],
        )
    }

    #[test]
    fn preflight_echoes_only_allowed_origins_with_credentials() {
        let c = config();
        let ok = preflight(&options("https://front.example.com"), &c);
        assert_eq!(ok.status(), 204);
        assert_eq!(ok.headers()["access-control-allow-origin"], "https://front.example.com");
        assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
        assert!(
            ok.headers()["access-control-allow-headers"]
                .to_str()
                .expect("ascii")
                .contains("x-csrf")
        );
        let refused = preflight(&options("https://evil.example.com"), &c);
        assert_eq!(refused.status(), 403);
        assert!(!refused.headers().contains_key("access-control-allow-origin"));
    }

    #[test]
    fn actual_responses_carry_cors_headers_only_for_allowed_origins() {
        let c = config();
        let policy = Policy {
            methods: None,
            cors: true,
            guard: Guard::AntiForgery,
            no_store: false,
            no_referrer: false,
            errors: ErrorFormat::Json,
        };
        let from = |origin| policy.finish(Response::new(Body::Empty), &edge("GET", &[("origin", origin)]), &c);
        let allowed = from("https://front.example.com");
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "https://front.example.com"
        );
        assert!(
            !from("https://evil.example.com")
                .headers()
                .contains_key("access-control-allow-origin")
        );
    }
}
