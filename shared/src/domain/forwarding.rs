//! Forwarding rules: where an API call may go and which headers cross the BFF.
//!
//! The path after the route's prefix is decoded segment by segment and must stay below
//! the upstream's base path: `.`/`..` segments, encoded slashes or backslashes, empty
//! segments and control characters are refused, not normalised. The browser's
//! credentials (`Cookie`, `Authorization`, `DPoP`, `X-CSRF`), hop-by-hop headers and
//! client-supplied forwarding headers never reach the upstream; the browser's
//! `traceparent` is replaced by the BFF's span (its `tracestate` follows only when the
//! trace was continued); the upstream's `Set-Cookie` and hop-by-hop headers never reach
//! the browser. Its `Content-Length` does (the body is streamed through unchanged), unless
//! the upstream framed the body with `Transfer-Encoding`, which overrides a length
//! (RFC 9112 6.3). Pure functions: this module sends nothing and
//! never logs a token.

use http::header::{HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::domain::secret::AccessToken;
use crate::domain::trace::{TRACEPARENT, TRACESTATE, TraceContext};

/// Characters re-encoded in a path segment: everything a URL parser would read as
/// structure, plus `%` (segments are re-encoded from their decoded form).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Headers that describe one connection, not the message (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the upstream must never see from the browser.
const STRIPPED_REQUEST: &[&str] = &[
    "host",
    "cookie",
    "authorization",
    // A proof the browser made is not the BFF's: the upstream gets the BFF's own or none.
    "dpop",
    "x-csrf",
    "content-length",
    "origin",
    // The front end's page URL (and its query) is the browser's business, not the API's.
    "referer",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "via",
];

/// Prefixes of forwarding and edge-added request headers (any `X-Forwarded-*`,
/// CloudFront, Lambda function URLs): the upstream trusts only what the BFF says.
const STRIPPED_REQUEST_PREFIXES: &[&str] = &["x-forwarded-", "x-amzn-", "x-amz-cf-", "cloudfront-"];

/// Response headers the browser must never see from the upstream.
const STRIPPED_RESPONSE: &[&str] = &["set-cookie"];

/// The API path would leave the upstream's base path, or is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid API path")]
pub struct InvalidApiPath;

/// The upstream URL for the raw (still percent-encoded) path `rest` after `/api/` and
/// the raw query, below `base` (whose path ends with `/`).
pub fn upstream_url(base: &Url, rest: &str, query: Option<&str>) -> Result<Url, InvalidApiPath> {
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let mut path = base.path().to_owned();
    for (i, raw) in segments.iter().enumerate() {
        let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| InvalidApiPath)?;
        let last = i + 1 == segments.len();
        if decoded.is_empty() && !last {
            return Err(InvalidApiPath);
        }
        // `..;x` is `..` to servers that read `;` as a path parameter (Tomcat, Spring).
        let name = decoded.split(';').next().unwrap_or_default();
        if name == "." || name == ".." || decoded.contains(['/', '\\']) || decoded.chars().any(char::is_control) {
            return Err(InvalidApiPath);
        }
        if i > 0 {
            path.push('/');
        }
        path.extend(utf8_percent_encode(&decoded, SEGMENT));
    }
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(query.filter(|q| !q.is_empty()));
    // Defence in depth: whatever the rules above missed, the result must stay below base.
    if !url.path().starts_with(base.path()) || url.origin() != base.origin() {
        return Err(InvalidApiPath);
    }
    Ok(url)
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

/// The end-to-end headers of `headers` that `stripped` does not name: hop-by-hop headers
/// and those its `Connection` header lists are dropped too.
fn end_to_end(headers: &HeaderMap, stripped: impl Fn(&str) -> bool) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || stripped(n) || listed.iter().any(|l| l == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The headers sent upstream: the browser's end-to-end headers minus its credentials and
/// forwarding headers, plus `Authorization: Bearer <token>` and the `traceparent` of the
/// BFF's span in `trace`.
pub fn upstream_request_headers(incoming: &HeaderMap, token: &AccessToken, trace: &TraceContext) -> HeaderMap {
    let mut out = anonymous_request_headers(incoming, trace);
    if let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", token.secret())) {
        bearer.set_sensitive(true);
        out.insert(http::header::AUTHORIZATION, bearer);
    }
    out
}

/// [`upstream_request_headers`] for a DPoP-bound token: `Authorization: DPoP <token>` and
/// the BFF's `DPoP` proof for this call (RFC 9449 §7.1).
pub fn dpop_request_headers(incoming: &HeaderMap, token: &AccessToken, proof: &str, trace: &TraceContext) -> HeaderMap {
    let mut out = anonymous_request_headers(incoming, trace);
    if let (Ok(mut authorization), Ok(proof)) = (
        HeaderValue::from_str(&format!("DPoP {}", token.secret())),
        HeaderValue::from_str(proof),
    ) {
        authorization.set_sensitive(true);
        out.insert(http::header::AUTHORIZATION, authorization);
        out.insert("dpop", proof);
    }
    out
}

/// The headers the upstream receives for the browser's `incoming` ones on a route that
/// carries no token: the same filter and trace headers, and no `Authorization` at all.
pub fn anonymous_request_headers(incoming: &HeaderMap, trace: &TraceContext) -> HeaderMap {
    let mut out = end_to_end(incoming, |n| {
        STRIPPED_REQUEST.contains(&n)
            || STRIPPED_REQUEST_PREFIXES.iter().any(|p| n.starts_with(p))
            || n == TRACEPARENT
            || (n == TRACESTATE && !trace.continued())
    });
    if let Ok(traceparent) = HeaderValue::from_str(&trace.traceparent()) {
        out.insert(TRACEPARENT, traceparent);
    }
    out
}

/// The upstream's response headers the browser may see. `Content-Length`,
/// `Content-Range`, `Accept-Ranges`, `ETag` and `Last-Modified` pass, so lengths, ranges
/// and revalidation work as against the upstream directly.
pub fn browser_response_headers(upstream: &HeaderMap) -> HeaderMap {
    let framed = upstream.contains_key(http::header::TRANSFER_ENCODING);
    end_to_end(upstream, |n| {
        STRIPPED_RESPONSE.contains(&n) || n.starts_with("access-control-") || (framed && n == "content-length")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.example.com/v1/").expect("url")
    }

    #[test]
    fn paths_are_joined_below_the_base() {
        let cases = [
            ("orders", None, "https://api.example.com/v1/orders"),
            (
                "orders/42",
                Some("x=1&y=2"),
                "https://api.example.com/v1/orders/42?x=1&y=2",
            ),
            ("", None, "https://api.example.com/v1/"),
            ("a/", None, "https://api.example.com/v1/a/"),
            ("caf%C3%A9/a%20b", None, "https://api.example.com/v1/caf%C3%A9/a%20b"),
            ("100%25", None, "https://api.example.com/v1/100%25"),
            ("a%3Fb", None, "https://api.example.com/v1/a%3Fb"),
        ];
        for (rest, query, want) in cases {
            assert_eq!(upstream_url(&base(), rest, query).expect(rest).as_str(), want, "{rest}");
        }
    }

    #[test]
    fn traversal_in_any_spelling_is_refused() {
        for rest in [
            "..",
            "../admin",
            "a/../../admin",
            "%2e%2e/admin",
            "%2E%2E/admin",
            ".%2e/admin",
            "a/%2e/b",
            "./a",
            "a%2F..%2F..%2Fadmin",
            "a%2fb",
            "a%5C..%5Cadmin",
            "..%5Cadmin",
            "/admin",
            "a//b",
            "a/%00",
            "%2e%2e%2f",
            "%252e%252e/../x",
            "%ff",
            "..;/admin",
            "a/..;x/b",
            "%2e%2e;/admin",
            ".;/a",
        ] {
            assert!(upstream_url(&base(), rest, None).is_err(), "{rest} must be refused");
        }
    }

    /// A header map holding `pairs` in order, repeated names appended.
    fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn browser_credentials_and_forwarding_headers_never_reach_the_upstream() {
        let incoming = header_map(&[
            ("cookie", "bff-session=abc"),
            ("authorization", "Bearer attacker"),
            ("dpop", "browser-proof"),
            ("x-csrf", "1"),
            ("host", "app.example.com"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil.com"),
            ("forwarded", "for=1.2.3.4"),
            ("x-amzn-trace-id", "t"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("x-request-id", "r1"),
        ]);
        let out = upstream_request_headers(&incoming, &AccessToken::new("at-123"), &TraceContext::start());
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(out["authorization"], "Bearer at-123");
        assert_eq!(out.get_all("authorization").iter().count(), 1);
        for gone in [
            "cookie",
            "dpop",
            "x-csrf",
            "host",
            "x-forwarded-for",
            "x-forwarded-host",
            "forwarded",
            "x-amzn-trace-id",
            "connection",
            "x-secret-hop",
            "transfer-encoding",
        ] {
            assert!(!names.contains(&gone), "{gone} leaked upstream");
        }
        for kept in ["content-type", "accept", "x-request-id"] {
            assert!(names.contains(&kept), "{kept} dropped");
        }
    }

    #[test]
    fn a_dpop_token_goes_with_the_bff_s_proof_and_never_the_browser_s() {
        let incoming = header_map(&[
            ("authorization", "Bearer attacker"),
            ("dpop", "browser-proof"),
            ("accept", "application/json"),
        ]);
        let out = dpop_request_headers(
            &incoming,
            &AccessToken::new("at-1"),
            "bff-proof",
            &TraceContext::start(),
        );
        assert_eq!(out["authorization"], "DPoP at-1");
        assert_eq!(out.get_all("authorization").iter().count(), 1);
        assert_eq!(out["dpop"], "bff-proof");
        assert_eq!(out.get_all("dpop").iter().count(), 1);
    }

    #[test]
    fn a_route_without_a_token_forwards_no_authorization_at_all() {
        let incoming = header_map(&[
            ("authorization", "Bearer attacker"),
            ("dpop", "browser-proof"),
            ("cookie", "bff-session=abc"),
            ("x-csrf", "1"),
            ("accept", "application/json"),
        ]);
        let out = anonymous_request_headers(&incoming, &TraceContext::start());
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "traceparent"]);
    }

    #[test]
    fn the_browser_s_trace_headers_are_replaced_by_the_bff_s_span() {
        let browser = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let incoming = header_map(&[("traceparent", browser), ("tracestate", "vendor=1")]);
        let token = AccessToken::new("at");
        let continued = TraceContext::continue_or_start(Some(browser));
        let out = upstream_request_headers(&incoming, &token, &continued);
        assert_eq!(out.get_all("traceparent").iter().count(), 1);
        assert_eq!(out["traceparent"], continued.traceparent().as_str());
        assert_eq!(out["tracestate"], "vendor=1");
        // A new trace carries no state of another.
        let out = upstream_request_headers(&incoming, &token, &TraceContext::start());
        assert_ne!(out["traceparent"], browser);
        assert!(!out.contains_key("tracestate"));
    }

    #[test]
    fn lengths_ranges_and_validators_reach_the_browser() {
        let upstream = header_map(&[
            ("content-length", "100"),
            ("content-range", "bytes 0-99/1000"),
            ("accept-ranges", "bytes"),
            ("etag", "\"v1\""),
            ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]);
        assert_eq!(browser_response_headers(&upstream), upstream);
    }

    #[test]
    fn a_length_the_transfer_encoding_overrides_is_dropped() {
        let upstream = header_map(&[("transfer-encoding", "chunked"), ("content-length", "100")]);
        assert!(browser_response_headers(&upstream).is_empty());
    }

    #[test]
    fn upstream_cookies_and_hop_headers_never_reach_the_browser() {
        let upstream = header_map(&[
            ("set-cookie", "tracking=1"),
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("access-control-allow-origin", "*"),
            ("content-type", "application/json"),
            ("etag", "\"1\""),
        ]);
        let out = browser_response_headers(&upstream);
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("content-type") && out.contains_key("etag"));
    }
}
