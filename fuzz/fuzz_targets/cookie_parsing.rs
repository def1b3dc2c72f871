//! `Cookie` header parsing: the session id and the pending login states.
//!
//! The input is split on `\n` into one or several `Cookie` headers (HTTP/2 may split
//! them); a piece that is not a valid header value is skipped, as a server would never
//! hand it to the BFF. Both cookie-name sets (deployed and loopback) are read.
//!
//! Properties:
//! - nothing panics;
//! - a session id is 43 base64url characters and occurs verbatim in the input;
//! - pending states are at most `MAX_PENDING_LOGINS`, unique, each 43 base64url
//!   characters occurring verbatim in the input;
//! - the transaction cookie built from them (`tx_cookie`) reads back as the same list.

#![no_main]

use bff::http::cookies::{CookieNames, MAX_PENDING_LOGINS};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `Cookie` header map holding only the `name=value` pair of a `Set-Cookie` line.
fn echoed(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.append(
        COOKIE,
        HeaderValue::from_str(pair).expect("a built cookie is a valid header"),
    );
    headers
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for piece in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(piece) {
            headers.append(COOKIE, value);
        }
    }
    let input = String::from_utf8_lossy(data);

    for names in [CookieNames::new(false), CookieNames::new(true)] {
        if let Some(id) = names.session_id(&headers) {
            let id = id.secret();
            assert!(is_token(id), "session id is not 43 base64url characters: {id:?}");
            assert!(input.contains(id), "session id not taken from the input: {id:?}");
        }

        let states = names.pending_states(&headers);
        assert!(states.len() <= MAX_PENDING_LOGINS, "{} pending states", states.len());
        for (i, state) in states.iter().enumerate() {
            assert!(
                is_token(state),
                "pending state is not 43 base64url characters: {state:?}"
            );
            assert!(
                input.contains(state.as_str()),
                "state not taken from the input: {state:?}"
            );
            assert!(!states[..i].contains(state), "pending state listed twice: {state:?}");
        }

        let set = names.tx_cookie(&states);
        assert!(
            set.starts_with(&format!("{}=", names.tx)),
            "tx cookie has another name: {set}"
        );
        let read = names.pending_states(&echoed(&set));
        assert_eq!(read, states, "tx cookie does not round-trip");
    }
});
