//! Origin verification: the proof that a request came through CloudFront.
//!
//! A Lambda function URL is a public endpoint. In AWS, CloudFront adds a secret header,
//! `x-origin-verify`, to every request it sends to a function (an origin custom header
//! that overwrites any viewer-sent header of that name), and each function configured with
//! `BFF_ORIGIN_VERIFY` refuses a request that does not carry exactly that value. A direct
//! call to a function URL therefore bypasses none of what CloudFront does (one origin,
//! security headers, logging).
//!
//! This module owns the check and the removal of the header: the header is removed from
//! every request before a handler sees it, so the proxy can never forward it upstream.
//! It never logs, and no answer or error carries the header's value.

use http::HeaderMap;
use http::header::HeaderName;
use lambda_http::{Body, Response};

use super::error::{ErrorAnswer, Refusal};
use crate::domain::secret::ct_eq;

/// The header CloudFront adds to prove a request came through it (lower case, as
/// function URL events carry header names).
pub const ORIGIN_VERIFY_HEADER: HeaderName = HeaderName::from_static("x-origin-verify");

/// The variable holding the expected value (usually resolved from `BFF_ORIGIN_VERIFY_ARN`).
pub const ORIGIN_VERIFY_VARIABLE: &str = "BFF_ORIGIN_VERIFY";

/// The value CloudFront proves itself with. Prints as `[redacted]`.
pub struct OriginVerify(String);

impl std::fmt::Debug for OriginVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginVerify([redacted])")
    }
}

impl OriginVerify {
    /// The expected value, trimmed; `None` when blank, i.e. verification is off.
    pub fn new(value: &str) -> Option<Self> {
        let value = value.trim();
        (!value.is_empty()).then(|| Self(value.to_owned()))
    }

    /// The expected value from [`ORIGIN_VERIFY_VARIABLE`] in `lookup`, when configured.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        lookup(ORIGIN_VERIFY_VARIABLE).and_then(|v| Self::new(&v))
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginCheck {
    /// No value is configured: every request passes (local runs, tests).
    Off,
    /// The request carries exactly the configured value.
    Verified,
    /// The request does not prove it came through CloudFront: answer 403, call no handler.
    Refused,
}

impl OriginCheck {
    /// Whether the request may reach its handler.
    pub fn passes(self) -> bool {
        self != Self::Refused
    }
}

/// Judges `headers` against `expected` and removes every `x-origin-verify` header.
///
/// Verified only when the header is present exactly once and equals `expected`
/// (compared in constant time, so response timing does not reveal how much of a guess
/// was right). The header is removed whatever the verdict, also when verification is off.
pub fn verify(headers: &mut HeaderMap, expected: Option<&OriginVerify>) -> OriginCheck {
    let verdict = match expected {
        None => OriginCheck::Off,
        Some(expected) => {
            let mut values = headers.get_all(&ORIGIN_VERIFY_HEADER).iter();
            match (values.next(), values.next()) {
                (Some(value), None) if ct_eq(value.to_str().unwrap_or_default(), &expected.0) => OriginCheck::Verified,
                _ => OriginCheck::Refused,
            }
        }
    };
    headers.remove(&ORIGIN_VERIFY_HEADER);
    verdict
}

/// The answer to a request refused by [`verify`]: 403 `origin_not_verified`.
pub fn origin_not_verified() -> Response<Body> {
    ErrorAnswer::from(Refusal::OriginNotVerified).to_json()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-csrf", HeaderValue::from_static("1"));
        for value in values {
            map.append(
                ORIGIN_VERIFY_HEADER,
                HeaderValue::from_bytes(value).expect("valid header value"),
            );
        }
        map
    }

    /// A case: its name, the configured value, the header values sent, the verdict.
    type Case<'a> = (&'a str, Option<&'a OriginVerify>, &'a [&'a [u8]], OriginCheck);

    #[test]
    fn only_exactly_the_configured_value_passes_and_the_header_never_survives() {
        let expected = OriginVerify::new("Zm9vYmFyYmF6cXV4").expect("non-blank");
        let cases: &[Case] = &[
            (
                "the configured value",
                Some(&expected),
                &[b"Zm9vYmFyYmF6cXV4"],
                OriginCheck::Verified,
            ),
            ("no header", Some(&expected), &[], OriginCheck::Refused),
            (
                "a wrong value",
                Some(&expected),
                &[b"Zm9vYmFyYmF6cXV5"],
                OriginCheck::Refused,
            ),
            ("a prefix", Some(&expected), &[b"Zm9vYmFy"], OriginCheck::Refused),
            (
                "a longer value",
                Some(&expected),
                &[b"Zm9vYmFyYmF6cXV4x"],
                OriginCheck::Refused,
            ),
            (
                "another case",
                Some(&expected),
                &[b"ZM9VYMFYYMF6CXV4"],
                OriginCheck::Refused,
            ),
            ("an empty value", Some(&expected), &[b""], OriginCheck::Refused),
            (
                "the value twice",
                Some(&expected),
                &[b"Zm9vYmFyYmF6cXV4", b"Zm9vYmFyYmF6cXV4"],
                OriginCheck::Refused,
            ),
            (
                "a guess next to the value",
                Some(&expected),
                &[b"guess", b"Zm9vYmFyYmF6cXV4"],
                OriginCheck::Refused,
            ),
            (
                "non-ASCII bytes",
                Some(&expected),
                &[b"Zm9v\xffYmFy"],
                OriginCheck::Refused,
            ),
            ("verification off, no header", None, &[], OriginCheck::Off),
            ("verification off, some header", None, &[b"anything"], OriginCheck::Off),
        ];
        for (case, expected, values, verdict) in cases {
            let mut map = headers(values);
            assert_eq!(verify(&mut map, *expected), *verdict, "{case}");
            assert!(!map.contains_key(&ORIGIN_VERIFY_HEADER), "{case}: header removed");
            assert_eq!(map.get("x-csrf").map(HeaderValue::as_bytes), Some(&b"1"[..]), "{case}");
        }
    }

    #[test]
    fn the_header_name_is_matched_case_insensitively() {
        let expected = OriginVerify::new("v").expect("non-blank");
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_bytes(b"X-Origin-Verify").expect("valid name"),
            HeaderValue::from_static("v"),
        );
        assert_eq!(verify(&mut map, Some(&expected)), OriginCheck::Verified);
    }

    #[test]
    fn a_blank_configuration_switches_verification_off() {
        for blank in ["", "  ", "\n"] {
            assert!(OriginVerify::new(blank).is_none(), "{blank:?}");
        }
        let lookup = |name: &str| (name == ORIGIN_VERIFY_VARIABLE).then(|| " s3cret\n".to_owned());
        let configured = OriginVerify::from_lookup(lookup).expect("configured");
        let mut map = headers(&[b"s3cret"]);
        assert_eq!(verify(&mut map, Some(&configured)), OriginCheck::Verified);
        assert!(OriginVerify::from_lookup(|_| None).is_none());
    }

    #[test]
    fn the_refusal_is_a_json_403_that_names_no_value() {
        let response = origin_not_verified();
        assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
        let Body::Text(text) = response.body() else {
            panic!("a text body");
        };
        let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(json["error"], "origin_not_verified");
        assert!(json["error_description"].is_string());
        assert_eq!(
            format!("{:?}", OriginVerify::new("s3cret")),
            "Some(OriginVerify([redacted]))"
        );
        assert!(OriginCheck::Verified.passes() && OriginCheck::Off.passes() && !OriginCheck::Refused.passes());
    }
}
