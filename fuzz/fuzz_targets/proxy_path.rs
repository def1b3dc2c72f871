//! Joining the path after `/api/` below the upstream's base URL.
//!
//! Input: the raw path after `/api/`, optionally followed by `?` and a query. It is
//! joined below several bases (a path base, a root base, a loopback base).
//!
//! Properties, for every accepted URL:
//! - it has the base's origin and its path starts with the base's path;
//! - it has as many segments below the base as the input has;
//! - no segment below the base percent-decodes to `.` or `..`, or holds a `/` or `\`;
//! - it serialises to text that parses back to the same URL (what goes on the wire is
//!   what was checked).

#![no_main]

use bff::domain::forwarding::upstream_url;
use libfuzzer_sys::fuzz_target;
use url::Url;

const BASES: &[&str] = &[
    "https://api.example.com/v1/",
    "https://api.example.com/",
    "http://127.0.0.1:9000/svc/a%20b/",
];

fn check(base: &Url, rest: &str, query: Option<&str>) {
    let Ok(url) = upstream_url(base, rest, query) else {
        return;
    };
    assert_eq!(url.origin(), base.origin(), "{rest:?} left the base origin: {url}");
    let below = url
        .path()
        .strip_prefix(base.path())
        .unwrap_or_else(|| panic!("{rest:?} left the base path: {url}"));
    let want = if rest.is_empty() { 0 } else { rest.split('/').count() };
    let segments: Vec<&str> = if below.is_empty() && want == 0 {
        Vec::new()
    } else {
        below.split('/').collect()
    };
    assert_eq!(
        segments.len(),
        want,
        "{rest:?} became {} segments: {url}",
        segments.len()
    );
    for segment in segments {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        assert!(
            decoded != "." && decoded != ".." && !decoded.contains(['/', '\\']),
            "{rest:?} gave segment {segment:?} in {url}"
        );
    }
    let reparsed = Url::parse(url.as_str()).expect("an accepted URL parses");
    assert_eq!(reparsed, url, "{url} does not parse back to itself");
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (rest, query) = match input.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (&*input, None),
    };
    for base in BASES {
        let base = Url::parse(base).expect("base");
        check(&base, rest, query);
    }
});
