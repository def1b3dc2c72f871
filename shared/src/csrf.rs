//! Anti-forgery and cross-origin rules.
//!
//! State-changing and token-using endpoints (`/api/*`, `POST /auth/logout`) require the
//! header `X-CSRF: 1`. A custom header cannot be sent cross-origin without a CORS
//! preflight, and preflights succeed only for `BFF_ALLOWED_ORIGINS`, so a foreign page
//! cannot make the browser call them with the session cookie. Requests from a foreign
//! `Origin` (or, without `Origin`, marked `Sec-Fetch-Site: cross-site`) are refused
//! outright as a second layer.

use http::header::{HeaderName, HeaderValue, VARY};
use http::{HeaderMap, Method, StatusCode};
use lambda_http::{Body, Request, Response};

use crate::config::Config;
use crate::errors::ApiError;
use crate::web::header_str;

/// The anti-forgery header and its one accepted value.
pub const CSRF_HEADER: &str = "x-csrf";
/// Methods a preflight may ask for.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// Request headers a cross-origin front end may send.
const ALLOWED_HEADERS: &str = "x-csrf, content-type, accept, accept-language, content-language";
/// How long browsers may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Refuses requests from an origin that is neither the BFF's nor an allowed one.
pub fn check_origin(headers: &HeaderMap, config: &Config) -> Result<(), ApiError> {
    // Browsers send one Origin; several can only be forged, and parsers may disagree on them.
    if headers.get_all(http::header::ORIGIN).iter().count() > 1 {
        return Err(ApiError::forbidden(
            "origin_not_allowed",
            "requests from this origin are not allowed",
        ));
    }
    match headers.get(http::header::ORIGIN) {
        Some(origin) => match origin.to_str() {
            Ok(origin) if config.is_known_origin(origin) => Ok(()),
            _ => Err(ApiError::forbidden(
                "origin_not_allowed",
                "requests from this origin are not allowed",
            )),
        },
        None if header_str(headers, "sec-fetch-site") == Some("cross-site") => Err(ApiError::forbidden(
            "cross_site_request",
            "cross-site requests are not allowed",
        )),
        None => Ok(()),
    }
}

/// Requires `X-CSRF: 1` (exactly, once) and a known origin.
pub fn check_anti_forgery(headers: &HeaderMap, config: &Config) -> Result<(), ApiError> {
    if header_str(headers, CSRF_HEADER) != Some("1") {
        return Err(ApiError::forbidden(
            "csrf_header_missing",
            "the X-CSRF: 1 header is required",
        ));
    }
    check_origin(headers, config)
}

/// Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), or `None`
/// when `req` is not one. Only allowed origins get a positive answer; the preflight is
/// never forwarded anywhere.
pub fn preflight(req: &Request, config: &Config) -> Option<Response<Body>> {
    if req.method() != Method::OPTIONS || !req.headers().contains_key("access-control-request-method") {
        return None;
    }
    let origin = header_str(req.headers(), "origin").filter(|o| config.is_allowed_cors_origin(o));
    let Some(origin) = origin else {
        return Some(ApiError::forbidden("origin_not_allowed", "requests from this origin are not allowed").to_json());
    };
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("Origin"));
    insert(headers, "access-control-allow-methods", ALLOWED_METHODS);
    insert(headers, "access-control-allow-headers", ALLOWED_HEADERS);
    insert(headers, "access-control-max-age", PREFLIGHT_MAX_AGE);
    cors_headers(headers, origin);
    Some(response)
}

/// Adds the CORS response headers when the request came from an allowed front-end origin.
pub fn add_cors(response: &mut Response<Body>, request_headers: &HeaderMap, config: &Config) {
    response.headers_mut().append(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = header_str(request_headers, "origin").filter(|o| config.is_allowed_cors_origin(o)) {
        cors_headers(response.headers_mut(), origin);
    }
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn anti_forgery_needs_exactly_x_csrf_1() {
        let c = config();
        assert!(check_anti_forgery(&headers(&[("x-csrf", "1")]), &c).is_ok());
        for bad in [
            &[][..],
            &[("x-csrf", "true")],
            &[("x-csrf", "1"), ("x-csrf", "1")],
            &[("x-csrf", " 1")],
        ] {
            assert_eq!(check_anti_forgery(&headers(bad), &c).expect_err("refused").status, 403);
        }
    }

    #[test]
    fn foreign_and_null_origins_are_refused() {
        let c = config();
        for ok in ["https://app.example.com", "https://front.example.com"] {
            let mut h = headers(&[("x-csrf", "1")]);
            h.insert("origin", HeaderValue::from_static(ok));
            assert!(check_anti_forgery(&h, &c).is_ok(), "{ok}");
        }
        for bad in ["https://evil.example.com", "null", "https://app.example.com.evil.com"] {
            let mut h = headers(&[("x-csrf", "1")]);
            h.insert("origin", HeaderValue::from_static(bad));
            assert_eq!(check_anti_forgery(&h, &c).expect_err(bad).status, 403);
        }
        let twice = headers(&[
            ("x-csrf", "1"),
            ("origin", "https://app.example.com"),
            ("origin", "https://evil.com"),
        ]);
        assert_eq!(check_anti_forgery(&twice, &c).expect_err("two origins").status, 403);
        let cross = headers(&[("x-csrf", "1"), ("sec-fetch-site", "cross-site")]);
        assert!(check_anti_forgery(&cross, &c).is_err());
        assert!(check_anti_forgery(&headers(&[("x-csrf", "1"), ("sec-fetch-site", "same-origin")]), &c).is_ok());
    }

    fn options(origin: &'static str) -> Request {
        http::Request::builder()
            .method("OPTIONS")
            .uri("https://app.example.com/api/x")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-csrf, content-type")
            .body(Body::Empty)
            .expect("request")
    }

    #[test]
    fn preflight_echoes_only_allowed_origins_with_credentials() {
        let c = config();
        let ok = preflight(&options("https://front.example.com"), &c).expect("preflight");
        assert_eq!(ok.status(), 204);
        assert_eq!(ok.headers()["access-control-allow-origin"], "https://front.example.com");
        assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
        assert!(
            ok.headers()["access-control-allow-headers"]
                .to_str()
                .expect("ascii")
                .contains("x-csrf")
        );
        let refused = preflight(&options("https://evil.example.com"), &c).expect("preflight");
        assert_eq!(refused.status(), 403);
        assert!(!refused.headers().contains_key("access-control-allow-origin"));
    }

    #[test]
    fn actual_responses_carry_cors_headers_only_for_allowed_origins() {
        let c = config();
        let mut response = Response::new(Body::Empty);
        add_cors(&mut response, &headers(&[("origin", "https://front.example.com")]), &c);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://front.example.com"
        );
        let mut response = Response::new(Body::Empty);
        add_cors(&mut response, &headers(&[("origin", "https://evil.example.com")]), &c);
        assert!(!response.headers().contains_key("access-control-allow-origin"));
    }
}
