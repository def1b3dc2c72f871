//! `returnTo` validation against open redirects.
//!
//! The input (lossily UTF-8 decoded, as a query value is after one percent-decoding) is
//! checked against a deployed origin and against a loopback development origin, each with
//! allowed front-end origins.
//!
//! Properties, for every accepted value:
//! - it is a valid header value (it becomes the callback's `Location`);
//! - no layer of percent-decoding of the input holds whitespace, a control character or a
//!   backslash, or starts with `//` or `/\` (encoded forms are refused at any depth);
//! - a relative value is the input itself, starts with exactly one `/`, and resolving it
//!   against the public origin with the `url` crate keeps that origin;
//! - an absolute value is an `http(s)://` URL whose origin is the public origin or an
//!   allowed one.

#![no_main]

use bff::domain::return_to::validate_return_to;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use url::Url;

const SITES: &[(&str, &[&str])] = &[
    (
        "https://app.example.com",
        &["https://front.example.com", "https://admin.example.com:8443"],
    ),
    ("http://localhost:8080", &["http://127.0.0.1:3000"]),
];

/// Every percent-decoding layer of `raw`, `raw` first, until decoding changes nothing.
/// Each layer that changes is shorter than the one before, so this ends.
fn layers(raw: &str) -> Vec<String> {
    let mut out = vec![raw.to_owned()];
    loop {
        let last = out.last().expect("one layer");
        let next = percent_encoding::percent_decode_str(last)
            .decode_utf8_lossy()
            .into_owned();
        if &next == last {
            return out;
        }
        out.push(next);
    }
}

fn check(raw: &str, origin: &str, allowed: &[String]) {
    let Ok(accepted) = validate_return_to(Some(raw), origin, allowed) else {
        return;
    };
    assert!(
        HeaderValue::from_str(&accepted).is_ok(),
        "accepted {raw:?} as {accepted:?}, not a valid Location value"
    );
    if raw.is_empty() {
        assert_eq!(accepted, "/");
        return;
    }
    for layer in layers(raw) {
        assert!(
            !layer.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\'),
            "accepted {raw:?}, which decodes to {layer:?}"
        );
        assert!(
            !layer.starts_with("//") && !layer.starts_with("/\\"),
            "accepted {raw:?}, which decodes to {layer:?}"
        );
    }

    let base = Url::parse(&format!("{origin}/")).expect("origin");
    if accepted.starts_with('/') {
        assert_eq!(accepted, raw, "a relative returnTo is kept as given");
        assert!(!accepted.starts_with("//"), "accepted protocol-relative {raw:?}");
        let resolved = base.join(&accepted).expect("an accepted path resolves");
        assert_eq!(
            resolved.origin(),
            base.origin(),
            "{raw:?} resolves to {resolved} off the public origin"
        );
    } else {
        assert!(
            accepted.starts_with("https://") || accepted.starts_with("http://"),
            "accepted {raw:?} as {accepted:?}, not an http(s) URL"
        );
        let url = Url::parse(&accepted).expect("an accepted absolute URL parses");
        let target = url.origin().ascii_serialization();
        assert!(
            target == origin || allowed.contains(&target),
            "accepted {raw:?}: {accepted} is on {target}, neither {origin} nor allowed"
        );
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "credentials in {accepted}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    for (origin, allowed) in SITES {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        check(&raw, origin, &allowed);
    }
});
