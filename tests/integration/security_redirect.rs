//! The BFF under attack from the browser side, through redirects: open redirects via
//! `returnTo` (one test per bypass form, with a control of legitimate targets) and via
//! logout (the configured post-logout URL, checked at start-up and never taken from the
//! logout request).
//!
//! Every attack is its own test whose name starts with `attack_`; the tables below
//! (one macro each) turn every row into such a test, and every one of them must pass,
//! i.e. the attack must be blocked.
//!
//! References: RFC 9700 (OAuth 2.0 Security Best Current Practice) §4.11,
//! draft-ietf-oauth-browser-based-apps §6.1 (Backend For Frontend), RFC 9110/9112 (HTTP).

use std::collections::HashMap;
use std::time::Duration;

use bff_testkit::browser::location;
use bff_tests::app::{Options, StoreKind, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::attack_kit::{ALLOWED_ORIGIN, raw_exchange, raw_request};

// ------------------------------------------------------------------------------------
// Open redirects through returnTo (RFC 9700 §4.11)
// ------------------------------------------------------------------------------------

/// How a `returnTo` attack is sent.
enum ReturnTo {
    /// A value, percent-encoded into the query by the test (the BFF decodes it back).
    Value(String),
    /// A query string sent byte for byte after `/auth/login?`.
    RawQuery(String),
}

fn value(text: &str) -> ReturnTo {
    ReturnTo::Value(text.to_owned())
}

fn raw_query(text: &str) -> ReturnTo {
    ReturnTo::RawQuery(text.to_owned())
}

/// Characters that may go unencoded into a request target's query as they are.
fn sendable_raw(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/:.@-_~!$'()*,;=".contains(&b))
}

/// `/auth/login` refuses `attack` with 400, sends the browser nowhere and starts no login.
/// `{origin}` in the attack stands for the BFF's own origin. A value made only of
/// characters a request target may carry as they are is also sent unencoded.
async fn return_to_is_refused(name: &str, attack: ReturnTo) {
    let app = spawn_app(StoreKind::Memory).await;
    let mut queries = Vec::new();
    match attack {
        ReturnTo::Value(text) => {
            let text = text.replace("{origin}", &app.url);
            let encoded = Url::parse_with_params("http://x/", [("returnTo", text.as_str())]).expect("url");
            queries.push(encoded.query().expect("query").to_owned());
            if sendable_raw(&text) {
                queries.push(format!("returnTo={text}"));
            }
        }
        ReturnTo::RawQuery(query) => queries.push(query.replace("{origin}", &app.url)),
    }
    for query in queries {
        for accept in ["application/json", "text/html"] {
            let request = raw_request(
                &app.url,
                "GET",
                &format!("/auth/login?{query}"),
                &[("Accept", accept)],
                b"",
            );
            let response = raw_exchange(&app.url, &request).await;
            assert_eq!(response.status, 400, "{name}: {query} ({accept}): {}", response.text());
            assert!(response.header("location").is_empty(), "{name}: {query} was followed");
            assert!(
                response.header("set-cookie").is_empty(),
                "{name}: {query} started a login"
            );
            if accept == "application/json" {
                let body: Value = serde_json::from_slice(&response.body).expect("json");
                let code = body["error"].as_str().unwrap_or_default();
                assert!(
                    code == "invalid_return_to" || code == "invalid_request",
                    "{name}: {query}: {body}"
                );
            }
        }
    }
}

/// Declares the open-redirect table: every row becomes its own `#[tokio::test]`.
macro_rules! open_redirect_attacks {
    ($($(#[$meta:meta])* $name:ident: $attack:expr;)+) => {
        /// How many rows the table has.
        const OPEN_REDIRECT_ROWS: usize = [$(stringify!($name)),+].len();
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                return_to_is_refused(stringify!($name), $attack).await;
            }
        )+
    };
}

open_redirect_attacks! {
    /// RFC 9700 §4.11: protocol-relative URL, read by browsers as another host.
    attack_open_redirect_via_return_to_protocol_relative: value("//evil.com");
    /// Three slashes: browsers still read a host.
    attack_open_redirect_via_return_to_triple_slash: value("///evil.com");
    /// Slash-backslash: browsers treat `\` as `/` in special schemes.
    attack_open_redirect_via_return_to_slash_backslash: value("/\\evil.com");
    /// Backslash-slash.
    attack_open_redirect_via_return_to_backslash_slash: value("\\/evil.com");
    /// Two backslashes.
    attack_open_redirect_via_return_to_double_backslash: value("\\\\evil.com");
    /// Slash, backslash, slash.
    attack_open_redirect_via_return_to_slash_backslash_slash: value("/\\/evil.com");
    /// Dot and backslash after the slash (`/.\evil`).
    attack_open_redirect_via_return_to_dot_backslash: value("/.\\evil.com");
    /// Scheme without slashes: URL parsers and browsers read `evil.com` as the host.
    attack_open_redirect_via_return_to_scheme_without_slashes: value("https:evil.com");
    /// Scheme with one slash.
    attack_open_redirect_via_return_to_scheme_with_one_slash: value("https:/evil.com");
    /// Scheme with a backslash pair.
    attack_open_redirect_via_return_to_scheme_with_backslashes: value("https:\\\\evil.com");
    /// A plain foreign http URL.
    attack_open_redirect_via_return_to_foreign_http_url: value("http://evil.com");
    /// A foreign https URL in upper case.
    attack_open_redirect_via_return_to_foreign_url_in_upper_case: value("HTTPS://EVIL.COM/");
    /// A bare host name.
    attack_open_redirect_via_return_to_bare_host: value("evil.com");
    /// Protocol-relative with the allowed origin as the "path" after `@`.
    attack_open_redirect_via_return_to_protocol_relative_with_userinfo: value("//evil.com@localhost:5173");
    /// The allowed origin as user information of a foreign host.
    attack_open_redirect_via_return_to_allowed_origin_as_userinfo: value("http://localhost:5173@evil.com/");
    /// The BFF's own origin as user information of a foreign host.
    attack_open_redirect_via_return_to_own_origin_as_userinfo: value("{origin}@evil.com/");
    /// Allowed host name as a subdomain of the attacker's domain.
    attack_open_redirect_via_return_to_allowed_host_as_subdomain: value("http://localhost.evil.com:5173/");
    /// Allowed origin with another port.
    attack_open_redirect_via_return_to_allowed_host_on_another_port: value("http://localhost:5174/");
    /// Allowed origin with another scheme.
    attack_open_redirect_via_return_to_allowed_host_with_another_scheme: value("https://localhost:5173/");
    /// `javascript:` in mixed case.
    attack_open_redirect_via_return_to_javascript_mixed_case: value("JaVaScRiPt:alert(document.cookie)");
    /// `javascript:` behind a leading space.
    attack_open_redirect_via_return_to_javascript_after_space: value(" javascript:alert(1)");
    /// `javascript:` split by a tab (browsers drop tabs in URLs).
    attack_open_redirect_via_return_to_javascript_split_by_tab: value("java\tscript:alert(1)");
    /// `data:` URL with a script.
    attack_open_redirect_via_return_to_data_url: value("data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==");
    /// `vbscript:`.
    attack_open_redirect_via_return_to_vbscript: value("vbscript:msgbox(1)");
    /// Percent-encoded protocol-relative URL.
    attack_open_redirect_via_return_to_percent_encoded_slashes: value("%2F%2Fevil.com");
    /// Double percent-encoded protocol-relative URL.
    attack_open_redirect_via_return_to_double_encoded_slashes: value("%252F%252Fevil.com");
    /// Triple percent-encoded protocol-relative URL.
    attack_open_redirect_via_return_to_triple_encoded_slashes: value("%25252F%25252Fevil.com");
    /// A slash followed by an encoded slash.
    attack_open_redirect_via_return_to_slash_and_encoded_slash: value("/%2F/evil.com");
    /// Encoded backslash after the slash.
    attack_open_redirect_via_return_to_encoded_backslash: value("/%5Cevil.com");
    /// Protocol-relative with an encoded backslash.
    attack_open_redirect_via_return_to_protocol_relative_encoded_backslash: value("//%5Cevil.com");
    /// Encoded tab between slashes (browsers strip tabs, leaving `//evil.com`).
    attack_open_redirect_via_return_to_encoded_tab: value("/%09/evil.com");
    /// A raw tab between slashes.
    attack_open_redirect_via_return_to_raw_tab: value("/\t/evil.com");
    /// A newline between slashes.
    attack_open_redirect_via_return_to_newline: value("/\n/evil.com");
    /// CR LF: an attempt to inject a header into the redirect.
    attack_open_redirect_via_return_to_crlf_header_injection: value("/x\r\nSet-Cookie: bff-session=attacker");
    /// A leading space before a protocol-relative URL.
    attack_open_redirect_via_return_to_leading_space: value(" //evil.com");
    /// An encoded NUL byte.
    attack_open_redirect_via_return_to_nul_byte: value("/%00//evil.com");
    /// Ideographic space (U+3000), whitespace outside ASCII.
    attack_open_redirect_via_return_to_unicode_ideographic_space: value("/\u{3000}/evil.com");
    /// No-break space (U+00A0).
    attack_open_redirect_via_return_to_unicode_no_break_space: value("/\u{a0}/evil.com");
    /// Line separator (U+2028).
    attack_open_redirect_via_return_to_unicode_line_separator: value("/\u{2028}/evil.com");
    /// Fullwidth solidus (U+FF0F), which some normalisers fold to `/`.
    attack_open_redirect_via_return_to_fullwidth_solidus: value("\u{ff0f}\u{ff0f}evil.com");
    /// IDN look-alike of the allowed host (Cyrillic `о`).
    attack_open_redirect_via_return_to_idn_look_alike: value("http://l\u{43e}calhost:5173/");
    /// The same look-alike spelled in punycode.
    attack_open_redirect_via_return_to_punycode_look_alike: value("http://xn--lcalhost-9fg:5173/");
    /// Longer than any legitimate return path.
    attack_open_redirect_via_return_to_overlong_value: ReturnTo::Value(format!("/{}", "a".repeat(8 * 1024)));
    /// Unencoded protocol-relative URL straight in the query.
    attack_open_redirect_via_return_to_raw_query_protocol_relative: raw_query("returnTo=//evil.com/%2F..");
    /// Query encoding of a tab inside an otherwise encoded protocol-relative URL.
    attack_open_redirect_via_return_to_raw_query_encoded_tab_in_slashes: raw_query("returnTo=/%09/evil.com");
    /// Parameter pollution: a harmless first `returnTo` and a hostile second one.
    attack_open_redirect_via_return_to_parameter_pollution: raw_query("returnTo=/ok&returnTo=//evil.com");
    /// Parameter pollution the other way round.
    attack_open_redirect_via_return_to_parameter_pollution_reversed: raw_query("returnTo=//evil.com&returnTo=/ok");
}

// The table must not silently lose rows.
const _: () = assert!(OPEN_REDIRECT_ROWS >= 40, "the open-redirect table lost rows");

/// The control for the table above: legitimate return targets are accepted, so the
/// refusals are not a validator that refuses everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_return_to_values_are_accepted() {
    let app = spawn_app(StoreKind::Memory).await;
    let browser = app.browser();
    for ok in [
        "/",
        "/orders?x=1",
        "/a/b#section",
        "/caf%C3%A9",
        "/search?q=a+b",
        "http://localhost:5173/app",
    ] {
        let url = Url::parse_with_params(&format!("{}/auth/login", app.url), [("returnTo", ok)]).expect("url");
        let response = browser.get(url.as_str()).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{ok}");
        assert!(location(&response).starts_with(&app.provider.issuer), "{ok}");
    }
    let own = format!("{}/own", app.url);
    let callback = browser.login("alice", &own).await;
    assert_eq!(location(&callback), own);
}

// ------------------------------------------------------------------------------------
// Open redirects through logout
// ------------------------------------------------------------------------------------

/// The configuration of a BFF on `public` with `post_logout` as post-logout URL.
fn config_with_post_logout(
    post_logout: &str,
) -> Result<bff::platform::config::Config, bff::platform::config::ConfigError> {
    let env: HashMap<&str, String> = HashMap::from([
        ("BFF_ISSUER", "https://id.example.com".to_owned()),
        ("BFF_CLIENT_ID", "client".to_owned()),
        ("BFF_CLIENT_SECRET", "secret".to_owned()),
        ("BFF_PUBLIC_URL", "https://app.example.com".to_owned()),
        ("BFF_ALLOWED_ORIGINS", "https://front.example.com".to_owned()),
        ("BFF_POST_LOGOUT_REDIRECT_URL", post_logout.to_owned()),
    ]);
    bff::platform::config::Config::from_lookup(|name| env.get(name).cloned())
}

/// RFC 9700 §4.11 applied to logout: a post-logout redirect to a foreign origin (in any
/// spelling) is a configuration error naming the variable, so the BFF never starts with
/// an open redirect in its logout URL.
#[test]
fn attack_open_redirect_via_foreign_post_logout_url_is_a_configuration_error() {
    for ok in [
        "https://app.example.com/",
        "https://app.example.com/signed-out",
        "https://front.example.com/bye",
    ] {
        let config = config_with_post_logout(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(config.post_logout_url(), ok);
    }
    for foreign in [
        "https://evil.example.com/",
        "http://evil.example.com/",
        "//evil.example.com/",
        "https:evil.example.com",
        "https://app.example.com.evil.example.com/",
        "https://app.example.com@evil.example.com/",
        "https://front.example.com:8443/",
        "http://app.example.com/",
        "javascript:alert(1)",
        "data:text/html,bye",
        "/\\evil.example.com",
    ] {
        let err = config_with_post_logout(foreign).expect_err(foreign);
        assert!(
            matches!(
                err,
                bff::platform::config::ConfigError::Invalid {
                    name: "BFF_POST_LOGOUT_REDIRECT_URL",
                    ..
                }
            ),
            "{foreign}: {err}"
        );
        assert!(err.to_string().contains("BFF_POST_LOGOUT_REDIRECT_URL"), "{foreign}");
        assert!(!err.to_string().contains("evil"), "the message does not echo the value");
    }
}

/// The same check on the real binary: `bff-local` with a foreign post-logout URL exits
/// at start-up with status 2 and one line naming the variable, and never listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_open_redirect_via_foreign_post_logout_url_stops_bff_local_at_start() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut env = app.env.clone();
    env.insert("BFF_POST_LOGOUT_REDIRECT_URL", "https://evil.example.com/".to_owned());
    let (status, output) =
        tokio::task::spawn_blocking(move || bff_tests::capture::run_to_exit(&env, Duration::from_secs(20)))
            .await
            .expect("join");
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("BFF_POST_LOGOUT_REDIRECT_URL"), "{output}");
    assert!(!output.contains("listening"), "{output}");
}

/// RFC 9700 §4.11: after login, the `logout_url` the BFF answers sends the browser to the
/// provider with exactly the configured post-logout URL, whatever the logout request
/// says (query parameters or a body naming another target are ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_open_redirect_via_logout_request_parameters_is_ignored() {
    let configured = format!("{ALLOWED_ORIGIN}/signed-out");
    let mut options = Options::new(StoreKind::Memory);
    options.env.push(("BFF_POST_LOGOUT_REDIRECT_URL", configured.clone()));
    let app = spawn_app_with(options).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let evil = "https://evil.example.com/";
    let response = browser
        .http
        .post(format!(
            "{}/auth/logout?post_logout_redirect_uri={evil}&returnTo={evil}&redirect_uri={evil}",
            app.url
        ))
        .header("X-CSRF", "1")
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"post_logout_redirect_uri":"{evil}","returnTo":"{evil}"}}"#
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let logout_url = body["logout_url"].as_str().expect("logout_url");
    assert!(!logout_url.contains("evil"), "{logout_url}");
    let url = Url::parse(logout_url).expect("url");
    assert_eq!(
        url.origin().ascii_serialization(),
        app.provider.issuer,
        "sent to the provider"
    );
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let targets: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k != "client_id" && k != "id_token_hint" && k != "state")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(targets, [configured.as_str()], "only the configured target: {params:?}");
    let state = params.iter().find(|(k, _)| k == "state").map(|(_, v)| v.as_str());
    assert!(
        state.is_some_and(|s| s.len() >= 22 && !s.contains("evil")),
        "the state is the BFF's own random value: {state:?}"
    );

    // Without a session (logout is idempotent) the answer names the same target.
    let again: Value = browser.logout().await.json().await.expect("json");
    let again = Url::parse(again["logout_url"].as_str().expect("logout_url")).expect("url");
    let post: Vec<String> = again
        .query_pairs()
        .filter(|(k, _)| k == "post_logout_redirect_uri")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(post, [configured]);
}
