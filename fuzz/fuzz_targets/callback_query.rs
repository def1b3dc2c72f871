//! The callback's query parsing, and the callback handler end to end.
//!
//! Input: a query string, optionally followed by `\n` and a `Cookie` header value.
//! Inputs that do not make a valid request URI (or header) are skipped: a server never
//! hands them to the BFF.
//!
//! Properties of `query_pairs` + `single_param`:
//! - nothing panics;
//! - `single_param` is `Err` exactly when the name occurs more than once, and otherwise
//!   answers that one occurrence's value;
//! - the decoded pairs, form-encoded again, parse back to the same pairs.
//!
//! Properties of `callback::handle` (in-memory store, provider at `https://127.0.0.1:1`,
//! where nothing listens, and one pending login for [`STARTED_STATE`], so a callback that
//! names it and carries it in its cookie reaches the unreachable provider):
//! - the answer is never 2xx or 3xx, and never sets a session cookie with a value;
//! - it is `no-store` and `Referrer-Policy: no-referrer`;
//! - its page shows the provider's text escaped: the page holds exactly the markup
//!   characters (`<`, `>`, quotes) of the page template, none from the query.

#![no_main]

use std::sync::{Arc, OnceLock};

use bff::App;
use bff::domain::secret::{PkceVerifier, hash};
use bff::http::response::{query_pairs, single_param};
use bff::platform::config::Config;
use bff::store::memory::MemoryStore;
use bff::store::{LoginTransaction, StoreKey};
use http::StatusCode;
use http::header::{CACHE_CONTROL, COOKIE, HeaderValue, REFERRER_POLICY, SET_COOKIE};
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

/// The `state` of the one login this fuzz process started (43 base64url characters).
const STARTED_STATE: &str = "c3RhdGVzdGF0ZXN0YXRlc3RhdGVzdGF0ZXN0YXRlc3R";

struct Harness {
    runtime: Runtime,
    app: App,
    /// The error page with plain text in it: its markup is all a page may hold.
    template: String,
}

impl Harness {
    fn page_markup(&self, markup: char) -> usize {
        self.template.matches(markup).count()
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let config = Config::from_lookup(|name| {
            let value = match name {
                "BFF_ISSUER" => "https://127.0.0.1:1",
                "BFF_CLIENT_ID" => "fuzz-client",
                "BFF_CLIENT_SECRET" => "fuzz-secret",
                "BFF_PUBLIC_URL" => "https://app.example.com",
                "BFF_ALLOWED_ORIGINS" => "https://front.example.com",
                _ => return None,
            };
            Some(value.to_owned())
        })
        .expect("fuzz configuration");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let app = App::new(config, Arc::new(MemoryStore::new())).expect("app");
        let template =
            match bff::http::response::html_page(StatusCode::BAD_REQUEST, "title", "message", "code").into_body() {
                Body::Text(text) => text,
                _ => panic!("html_page answers text"),
            };
        Harness { runtime, app, template }
    })
}

fn check_query_parsing(req: &Request) {
    let pairs = query_pairs(req);
    for name in ["state", "code", "iss", "error", "error_description"]
        .into_iter()
        .chain(pairs.iter().map(|(k, _)| k.as_str()))
    {
        let given: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        match single_param(&pairs, name) {
            Err(_) => assert!(given.len() > 1, "`{name}` refused as repeated, given {given:?}"),
            Ok(None) => assert!(given.is_empty(), "`{name}` missed in {pairs:?}"),
            Ok(Some(value)) => assert_eq!(given, [value], "`{name}` misread"),
        }
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let again: Vec<(String, String)> = url::form_urlencoded::parse(encoded.as_bytes()).into_owned().collect();
    assert_eq!(again, pairs, "query pairs do not round-trip");
}

fn check_callback(harness: &Harness, req: Request) {
    let app = &harness.app;
    let response = harness.runtime.block_on(async {
        // Re-arm the started login (through the App's store, which seals what it keeps):
        // an earlier input may have consumed it.
        let tx = LoginTransaction {
            pkce_verifier: PkceVerifier::generate(),
            nonce: "fuzz-nonce".to_owned(),
            return_to: "/".to_owned(),
            expires_at: app.clock.now() + 600,
            replaces_session: None,
            requirements: Default::default(),
            silent: false,
            dpop_key: None,
        };
        let key = StoreKey::transaction(&hash(STARTED_STATE));
        let _ = app.store.put_transaction(&key, &tx).await;
        bff::http::router::handle(app, bff::http::router::unit::Callback, req).await
    });

    let status = response.status();
    assert!(
        !status.is_success() && !status.is_redirection(),
        "callback answered {status} though no login can complete"
    );
    for set in response.headers().get_all(SET_COOKIE) {
        let set = set.to_str().expect("ASCII Set-Cookie");
        let pair = set.split(';').next().unwrap_or_default();
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.trim() == "bff-session" || name.trim() == "__Host-Http-bff-session" {
            assert!(value.trim().is_empty(), "callback set a session cookie: {set}");
        }
    }
    assert_eq!(
        response.headers().get(CACHE_CONTROL).map(HeaderValue::as_bytes),
        Some(&b"no-store"[..])
    );
    assert_eq!(
        response.headers().get(REFERRER_POLICY).map(HeaderValue::as_bytes),
        Some(&b"no-referrer"[..])
    );
    let Some(Body::Text(page)) = response.body().full() else {
        panic!("the callback answers an HTML page");
    };
    for markup in ['<', '>', '"', '\''] {
        assert_eq!(
            page.matches(markup).count(),
            harness.page_markup(markup),
            "unescaped {markup:?} in the callback page: {page}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (query, cookie) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let mut builder = http::Request::builder().uri(format!("https://app.example.com/auth/callback?{query}"));
    if let Some(cookie) = cookie {
        let Ok(cookie) = HeaderValue::from_bytes(cookie) else {
            return;
        };
        builder = builder.header(COOKIE, cookie);
    }
    let Ok(req): Result<Request, _> = builder.body(Body::Empty) else {
        return;
    };

    check_query_parsing(&req);
    check_callback(harness(), req);
});
