//! The relying party under attack: every broken ID token and token response of the
//! OpenID Foundation's RP certification tests, and more, served by a faulty provider
//! ([`bff_tests::faulty_idp`]) to a real BFF over HTTP.
//!
//! The cases are one table ([`attack_table`]): a provider scenario and what the login
//! must end in. Each row is also its own test, named after the requirement it checks.
//! A refused login must answer an error status (never 2xx/3xx), set no session cookie,
//! leave `/auth/me` at 401, create no session in the store and show no token to the
//! browser; the stage says whether the BFF had to refuse before redeeming the code.
//! Accepted logins must create exactly one session. Key rotation and the JWKS refetch
//! rate limit need several steps and have their own tests below the table.

use std::collections::HashSet;
use std::time::Duration;

use bff::domain::secret::IdToken;
use bff::oidc::{JWKS_REFETCH_INTERVAL, OidcError};
use bff_testkit::browser::{BffBrowser, location};
use bff_tests::faulty_idp::{
    AuthorizationIss, CLIENT_ID, Edit, FaultyApp, ISSUER_PLACEHOLDER, IdTokenSpec, KeyName, Kid, SUBJECT, Scenario,
    Signature, TokenAnswer, spawn_app_against, unix_now,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Where every login asks to return.
const RETURN_TO: &str = "/after-login";
/// An issuer, client or audience the BFF has nothing to do with.
const EVIL: &str = "https://evil.example";

/// How far the BFF may get before it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `/auth/login` itself refuses: the browser is never sent to the provider.
    Login,
    /// The callback refuses before the code reaches the token endpoint.
    BeforeCodeRedemption,
    /// The code was redeemed (with the right PKCE verifier); what came back is refused.
    AfterCodeRedemption,
}

/// What one login against a scenario must end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The login succeeds and creates exactly one session.
    Session,
    /// The login is refused with `status` at `stage`; nothing is created.
    Refused {
        /// Where the BFF refuses.
        stage: Stage,
        /// The status the browser gets.
        status: u16,
    },
}

/// A forged or broken ID token: the callback answers 502 `invalid_id_token`.
const INVALID_ID_TOKEN: Expect = Expect::Refused {
    stage: Stage::AfterCodeRedemption,
    status: 502,
};
/// The token endpoint failed or answered nonsense: 502.
const PROVIDER_FAILED: Expect = INVALID_ID_TOKEN;
/// The authorization response is refused before the code is used: 400.
const AUTHORIZATION_RESPONSE_REFUSED: Expect = Expect::Refused {
    stage: Stage::BeforeCodeRedemption,
    status: 400,
};
/// Discovery is unusable: `/auth/login` answers 502.
const DISCOVERY_REFUSED: Expect = Expect::Refused {
    stage: Stage::Login,
    status: 502,
};

/// One row of the table.
struct AttackCase {
    name: &'static str,
    scenario: Scenario,
    expect: Expect,
}

/// Declares the table once: [`attack_table`] lists every row (for counting), and every
/// row becomes a `#[tokio::test]` of its own name.
macro_rules! attack_table {
    ($($(#[$meta:meta])* $name:ident: $scenario:expr => $expect:expr;)+) => {
        /// Every case of the table, in order.
        fn attack_table() -> Vec<AttackCase> {
            vec![$(AttackCase { name: stringify!($name), scenario: $scenario, expect: $expect }),+]
        }

        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run(AttackCase { name: stringify!($name), scenario: $scenario, expect: $expect }).await;
            }
        )+
    };
}

fn token(spec: IdTokenSpec) -> Scenario {
    Scenario::id_token(spec)
}

fn valid() -> IdTokenSpec {
    IdTokenSpec::valid()
}

attack_table! {
    /// The baseline: an honest provider logs the user in.
    valid_id_token_creates_a_session: Scenario::honest() => Expect::Session;

    // --- Signatures -------------------------------------------------------------------

    /// rp-id_token-sig-none: an unsigned token is never accepted.
    attack_rp_id_token_sig_none_is_rejected: token(valid().signed(Signature::None)) => INVALID_ID_TOKEN;
    /// rp-id_token-bad-sig-rs256: a signature that does not verify.
    attack_rp_id_token_bad_sig_rs256_is_rejected: token(valid().signed(Signature::Corrupted)) => INVALID_ID_TOKEN;
    /// A well-formed signature by a key the provider never published, under its `kid`.
    attack_id_token_signed_by_an_unpublished_key_is_rejected:
        token(valid().signed(Signature::AttackerKey)) => INVALID_ID_TOKEN;
    /// Claims changed after signing (`sub` becomes `admin`).
    attack_id_token_with_a_payload_changed_after_signing_is_rejected:
        token(valid().signed(Signature::PayloadSwapped)) => INVALID_ID_TOKEN;
    /// HS256 with the client secret as key: asymmetric algorithms only.
    attack_id_token_hs256_signed_with_the_client_secret_is_rejected:
        token(valid().signed(Signature::Hs256ClientSecret)) => INVALID_ID_TOKEN;
    /// Algorithm confusion: HS256 keyed with the provider's public RSA key.
    attack_id_token_hs256_signed_with_the_provider_public_key_is_rejected:
        token(valid().signed(Signature::Hs256PublicKey)) => INVALID_ID_TOKEN;

    // --- Keys -------------------------------------------------------------------------

    /// rp-id_token-kid-absent-single-jwks: no `kid`, one key in the JWKS: that key.
    rp_id_token_kid_absent_single_jwks_is_accepted: token(valid().kid(Kid::Absent)) => Expect::Session;
    /// rp-id_token-kid-absent-multiple-jwks: no `kid` and several keys: ambiguous.
    attack_rp_id_token_kid_absent_multiple_jwks_is_rejected:
        token(valid().kid(Kid::Absent)).publish_both_keys() => INVALID_ID_TOKEN;
    /// A `kid` the provider never published, even after the refetch it triggers.
    attack_id_token_with_an_unknown_kid_is_rejected:
        token(valid().kid(Kid::Named("no-such-key".into()))) => INVALID_ID_TOKEN;

    // --- Issuer -------------------------------------------------------------------------

    /// rp-id_token-iss-mismatch.
    attack_rp_id_token_iss_mismatch_is_rejected: token(valid().set("iss", EVIL)) => INVALID_ID_TOKEN;
    /// `iss` must equal the issuer exactly: a trailing slash is another issuer.
    attack_id_token_iss_with_a_trailing_slash_is_rejected:
        token(valid().set("iss", format!("{ISSUER_PLACEHOLDER}/"))) => INVALID_ID_TOKEN;
    /// No `iss` at all.
    attack_id_token_without_iss_is_rejected: token(valid().remove("iss")) => INVALID_ID_TOKEN;

    // --- Audience and authorized party ----------------------------------------------------

    /// rp-id_token-aud: issued to another client.
    attack_rp_id_token_aud_is_rejected: token(valid().set("aud", "another-client")) => INVALID_ID_TOKEN;
    /// No `aud` at all.
    attack_id_token_without_aud_is_rejected: token(valid().remove("aud")) => INVALID_ID_TOKEN;
    /// This client among several audiences and no `azp` (OIDC Core 3.1.3.7 steps 3-4).
    attack_id_token_with_an_untrusted_extra_aud_and_no_azp_is_rejected:
        token(valid().set("aud", json!([CLIENT_ID, EVIL]))) => INVALID_ID_TOKEN;
    /// Several audiences and `azp` naming the other one.
    attack_id_token_with_an_untrusted_extra_aud_and_a_foreign_azp_is_rejected:
        token(valid().set("aud", json!([CLIENT_ID, EVIL])).set("azp", EVIL)) => INVALID_ID_TOKEN;
    /// Several audiences, one of them untrusted: refused even when `azp` is this client.
    attack_id_token_with_an_untrusted_extra_aud_is_rejected_even_with_this_client_as_azp:
        token(valid().set("aud", json!([CLIENT_ID, EVIL])).set("azp", CLIENT_ID)) => INVALID_ID_TOKEN;
    /// One audience (this client) but `azp` names another client: the token was obtained
    /// by someone else (OIDC Core 3.1.3.7 step 5).
    attack_id_token_whose_azp_names_another_client_is_rejected:
        token(valid().set("azp", "another-client")) => INVALID_ID_TOKEN;

    // --- Times ------------------------------------------------------------------------

    /// No `exp`.
    attack_id_token_without_exp_is_rejected: token(valid().remove("exp")) => INVALID_ID_TOKEN;
    /// Expired a minute ago.
    attack_expired_id_token_is_rejected:
        token(valid().set("exp", unix_now() - 60).set("iat", unix_now() - 360)) => INVALID_ID_TOKEN;
    /// Expiring this very second: `exp` must be in the future.
    attack_id_token_expiring_at_this_second_is_rejected: token(valid().set("exp", unix_now())) => INVALID_ID_TOKEN;
    /// rp-id_token-iat: no `iat`.
    attack_rp_id_token_iat_missing_is_rejected: token(valid().remove("iat")) => INVALID_ID_TOKEN;
    /// Issued an hour from now: beyond any clock skew.
    attack_id_token_issued_far_in_the_future_is_rejected:
        token(valid().set("iat", unix_now() + 3600).set("exp", unix_now() + 7200)) => INVALID_ID_TOKEN;
    /// A minute of clock skew is tolerated.
    id_token_issued_a_minute_in_the_future_is_accepted:
        token(valid().set("iat", unix_now() + 60)) => Expect::Session;

    // --- Nonce and subject ------------------------------------------------------------

    /// rp-nonce-invalid: a token minted for another login.
    attack_rp_nonce_invalid_is_rejected: token(valid().set("nonce", "nonce-of-another-login")) => INVALID_ID_TOKEN;
    /// The nonce was sent, so it must come back.
    attack_id_token_without_nonce_is_rejected: token(valid().remove("nonce")) => INVALID_ID_TOKEN;
    /// No `sub`: no user.
    attack_id_token_without_sub_is_rejected: token(valid().remove("sub")) => INVALID_ID_TOKEN;
    /// An empty `sub` is no user either.
    attack_id_token_with_an_empty_sub_is_rejected: token(valid().set("sub", "")) => INVALID_ID_TOKEN;

    // --- Authorization response (RFC 9207) --------------------------------------------

    /// Mix-up: the response names another issuer; the code is never redeemed.
    attack_authorization_response_with_a_foreign_iss_is_rejected:
        Scenario::honest().authorization_iss(AuthorizationIss::Other(EVIL.into())) => AUTHORIZATION_RESPONSE_REFUSED;
    /// The provider advertises `iss` but the response lacks it.
    attack_authorization_response_without_advertised_iss_is_rejected:
        Scenario::honest().authorization_iss(AuthorizationIss::Absent) => AUTHORIZATION_RESPONSE_REFUSED;
    /// A provider that does not advertise `iss` may omit it.
    authorization_response_without_iss_is_accepted_when_not_advertised:
        Scenario::honest().advertise_iss_parameter(false).authorization_iss(AuthorizationIss::Absent)
            => Expect::Session;
    /// A foreign `iss` is refused even when the provider never advertised the parameter.
    attack_authorization_response_with_a_foreign_iss_is_rejected_when_not_advertised:
        Scenario::honest()
            .advertise_iss_parameter(false)
            .authorization_iss(AuthorizationIss::Other(EVIL.into())) => AUTHORIZATION_RESPONSE_REFUSED;

    // --- Token endpoint -----------------------------------------------------------------

    /// `invalid_grant`: the code is refused; the user must log in again (400).
    attack_token_endpoint_invalid_grant_is_refused:
        Scenario::honest().token_answer(TokenAnswer::OAuthError { status: 400, error: "invalid_grant" })
            => Expect::Refused { stage: Stage::AfterCodeRedemption, status: 400 };
    /// `invalid_client`: the provider refused the BFF itself.
    attack_token_endpoint_invalid_client_answers_502:
        Scenario::honest().token_answer(TokenAnswer::OAuthError { status: 401, error: "invalid_client" })
            => PROVIDER_FAILED;
    /// An HTML 500.
    attack_token_endpoint_server_error_answers_502:
        Scenario::honest().token_answer(TokenAnswer::ServerError) => PROVIDER_FAILED;
    /// A body that is not JSON.
    attack_token_endpoint_garbage_json_answers_502:
        Scenario::honest().token_answer(TokenAnswer::Garbage) => PROVIDER_FAILED;
    /// An OpenID login must return an ID token.
    attack_token_response_without_id_token_is_rejected:
        Scenario::honest().token_edit(Edit::Remove("id_token")) => PROVIDER_FAILED;
    /// `id_token` that is not a string.
    attack_token_response_with_a_numeric_id_token_is_rejected:
        Scenario::honest().token_edit(Edit::Set("id_token", json!(42))) => PROVIDER_FAILED;
    /// `id_token` that is not a JWS.
    attack_token_response_with_a_non_jws_id_token_is_rejected:
        Scenario::honest().token_edit(Edit::Set("id_token", json!("not-a-jwt"))) => PROVIDER_FAILED;
    /// No access token.
    attack_token_response_without_access_token_is_rejected:
        Scenario::honest().token_edit(Edit::Remove("access_token")) => PROVIDER_FAILED;
    /// No `token_type` (RFC 6749 §5.1 requires it).
    attack_token_response_without_token_type_is_rejected:
        Scenario::honest().token_edit(Edit::Remove("token_type")) => PROVIDER_FAILED;
    /// A token endpoint that never answers: 504 after the BFF's provider timeout (8 s).
    attack_token_endpoint_that_never_answers_times_out_with_504:
        Scenario::honest().token_answer(TokenAnswer::Hang)
            => Expect::Refused { stage: Stage::AfterCodeRedemption, status: 504 };
    /// A redirecting token endpoint is not followed (the code and verifier would go
    /// wherever it points).
    attack_token_endpoint_redirect_is_not_followed: Scenario::honest().token_answer(TokenAnswer::Redirect) => PROVIDER_FAILED;

    // --- Discovery --------------------------------------------------------------------

    /// Discovery whose `issuer` differs from the configured one.
    attack_discovery_with_a_foreign_issuer_is_refused: Scenario::honest().discovery_issuer(EVIL) => DISCOVERY_REFUSED;
    /// Even a trailing slash makes it another issuer.
    attack_discovery_issuer_with_a_trailing_slash_is_refused:
        Scenario::honest().discovery_issuer(&format!("{ISSUER_PLACEHOLDER}/")) => DISCOVERY_REFUSED;
    /// A provider that does not offer PKCE S256.
    attack_discovery_without_pkce_s256_is_refused: Scenario::honest().pkce_methods(&["plain"]) => DISCOVERY_REFUSED;
}

/// What one login attempt produced, and what it cost at the provider and in the store.
struct Attempt {
    /// The answer that ended the login: the callback's, or `/auth/login`'s when it did
    /// not redirect to the provider.
    status: StatusCode,
    /// `Location`, when there is one.
    location: Option<String>,
    /// `Content-Type` of that answer.
    content_type: String,
    /// Every `Set-Cookie` of the login and callback answers.
    set_cookies: Vec<String>,
    /// Every header value and body the browser got, to look for leaked tokens.
    seen_by_browser: String,
    /// Whether the browser reached the callback.
    reached_callback: bool,
    /// Token requests, PKCE successes and new sessions during the attempt.
    token_requests: usize,
    pkce_verified: usize,
    new_sessions: isize,
}

impl Attempt {
    fn sets_session_cookie(&self) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with("bff-session=") && !c.starts_with("bff-session=;"))
    }
}

async fn record(
    response: reqwest::Response,
    seen: &mut String,
    set_cookies: &mut Vec<String>,
) -> (StatusCode, Option<String>, String) {
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    for (name, value) in response.headers() {
        let value = value.to_str().unwrap_or_default();
        seen.push_str(&format!("{name}: {value}\n"));
        if name == "set-cookie" {
            set_cookies.push(value.to_owned());
        }
    }
    seen.push_str(&response.text().await.expect("body"));
    (status, location, content_type)
}

/// One complete login in `browser`: `/auth/login`, the provider, the callback.
async fn attempt_login(app: &FaultyApp, browser: &BffBrowser) -> Attempt {
    let (token_before, pkce_before) = (app.idp.token_requests(), app.idp.pkce_verified());
    let sessions_before = app.store.session_count();
    let mut seen = String::new();
    let mut set_cookies = Vec::new();

    let login = browser.get(&format!("/auth/login?returnTo={RETURN_TO}")).await;
    let redirected = login.status() == StatusCode::FOUND;
    let authorize = redirected.then(|| location(&login));
    let (mut status, mut location, mut content_type) = record(login, &mut seen, &mut set_cookies).await;
    if let Some(authorize) = authorize {
        let callback = browser.authenticate(&authorize, SUBJECT).await;
        (status, location, content_type) = record(browser.get(&callback).await, &mut seen, &mut set_cookies).await;
    }
    Attempt {
        status,
        location,
        content_type,
        set_cookies,
        seen_by_browser: seen,
        reached_callback: redirected,
        token_requests: app.idp.token_requests() - token_before,
        pkce_verified: app.idp.pkce_verified() - pkce_before,
        new_sessions: app.store.session_count() as isize - sessions_before as isize,
    }
}

/// The login succeeded: a redirect to `returnTo`, a session cookie, exactly one new
/// session, and `/auth/me` answering the user.
async fn assert_session(name: &str, app: &FaultyApp, browser: &BffBrowser, attempt: &Attempt) {
    assert_eq!(
        attempt.status,
        StatusCode::FOUND,
        "{name}: the login must succeed; the browser saw: {}",
        attempt.seen_by_browser
    );
    assert_eq!(attempt.location.as_deref(), Some(RETURN_TO), "{name}: back to returnTo");
    assert!(attempt.sets_session_cookie(), "{name}: session cookie set");
    assert_eq!(attempt.new_sessions, 1, "{name}: one new session in the store");
    assert_eq!(attempt.token_requests, 1, "{name}: the code was redeemed once");
    assert_eq!(attempt.pkce_verified, 1, "{name}: with the right PKCE verifier");
    let me = browser.get("/auth/me").await;
    assert_eq!(me.status(), StatusCode::OK, "{name}: /auth/me");
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["sub"], SUBJECT, "{name}: the user's claims");
    assert_no_token_seen(name, app, attempt);
}

/// The login was refused at `stage` with `status`, and left nothing behind.
async fn assert_refused(
    name: &str,
    app: &FaultyApp,
    browser: &BffBrowser,
    attempt: &Attempt,
    stage: Stage,
    status: u16,
) {
    assert!(
        attempt.status.is_client_error() || attempt.status.is_server_error(),
        "{name}: an error status, never 2xx/3xx (got {}); the browser saw: {}",
        attempt.status,
        attempt.seen_by_browser
    );
    assert_eq!(
        attempt.status.as_u16(),
        status,
        "{name}: status; the browser saw: {}",
        attempt.seen_by_browser
    );
    assert!(!attempt.sets_session_cookie(), "{name}: no session cookie set");
    assert_eq!(
        browser.cookie("bff-session"),
        None,
        "{name}: no session cookie in the jar"
    );
    assert_eq!(attempt.new_sessions, 0, "{name}: no session in the store");
    let me = browser.get("/auth/me").await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "{name}: /auth/me stays 401");
    match stage {
        Stage::Login => {
            assert!(!attempt.reached_callback, "{name}: refused at /auth/login");
            assert_eq!(
                app.idp.authorization_requests(),
                0,
                "{name}: never sent to the provider"
            );
        }
        Stage::BeforeCodeRedemption => {
            assert!(attempt.reached_callback, "{name}: refused at the callback");
            assert_eq!(attempt.token_requests, 0, "{name}: the code is never redeemed");
        }
        Stage::AfterCodeRedemption => {
            assert!(attempt.reached_callback, "{name}: refused at the callback");
            assert_eq!(attempt.token_requests, 1, "{name}: the code was redeemed once");
            assert_eq!(attempt.pkce_verified, 1, "{name}: with the right PKCE verifier");
        }
    }
    if attempt.reached_callback {
        assert!(
            attempt.content_type.starts_with("text/html"),
            "{name}: the callback answers a page, got {}",
            attempt.content_type
        );
    }
    assert_eq!(app.idp.redirect_target_hits(), 0, "{name}: no redirect followed");
    assert_no_token_seen(name, app, attempt);
}

fn assert_no_token_seen(name: &str, app: &FaultyApp, attempt: &Attempt) {
    for token in app.idp.issued_tokens() {
        assert!(
            !attempt.seen_by_browser.contains(&token),
            "{name}: a token reached the browser"
        );
    }
}

/// Runs one row of the table in its own BFF and provider.
async fn run(case: AttackCase) {
    let app = spawn_app_against(case.scenario).await;
    let browser = app.browser();
    let attempt = attempt_login(&app, &browser).await;
    match case.expect {
        Expect::Session => assert_session(case.name, &app, &browser, &attempt).await,
        Expect::Refused { stage, status } => assert_refused(case.name, &app, &browser, &attempt, stage, status).await,
    }
}

#[test]
fn attack_table_lists_every_case_once() {
    let table = attack_table();
    let names: HashSet<&str> = table.iter().map(|case| case.name).collect();
    assert_eq!(names.len(), table.len(), "duplicate case names");
    let attacks = table
        .iter()
        .filter(|case| matches!(case.expect, Expect::Refused { .. }))
        .count();
    assert!(attacks >= 40, "the table lost attack cases: {attacks}");
}

/// Waits out the BFF's JWKS refetch interval.
async fn past_the_refetch_interval() {
    tokio::time::sleep(JWKS_REFETCH_INTERVAL + Duration::from_millis(200)).await;
}

/// rp-key-rotation-op-sign-key: the provider signs with a new key under a new `kid`
/// after the BFF cached its JWKS; the unknown `kid` triggers a refetch and the login
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_key_rotation_op_sign_key_succeeds() {
    let name = "rp_key_rotation_op_sign_key_succeeds";
    let app = spawn_app_against(Scenario::honest()).await;
    let before = app.browser();
    let attempt = attempt_login(&app, &before).await;
    assert_session(name, &app, &before, &attempt).await;
    assert_eq!(app.idp.jwks_fetches(), 1, "JWKS cached at the first login");

    // Rotated right after the BFF cached the JWKS: the refetch waits out the rest of the
    // rate-limit interval instead of failing the login.
    app.idp.rotate_signing_key();
    let after = app.browser();
    let attempt = attempt_login(&app, &after).await;
    assert_session(name, &app, &after, &attempt).await;
    assert_eq!(app.idp.jwks_fetches(), 2, "exactly one refetch for the new kid");
    assert_eq!(app.store.session_count(), 2, "both users logged in");
}

/// After a rotation the BFF's JWKS no longer holds the retired key: a token still signed
/// with it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_id_token_signed_with_a_retired_key_is_rejected_after_rotation() {
    let name = "attack_id_token_signed_with_a_retired_key_is_rejected_after_rotation";
    let app = spawn_app_against(Scenario::honest()).await;
    let first = app.browser();
    let attempt = attempt_login(&app, &first).await;
    assert_session(name, &app, &first, &attempt).await;
    app.idp.rotate_signing_key();
    past_the_refetch_interval().await;
    let second = app.browser();
    let attempt = attempt_login(&app, &second).await;
    assert_session(name, &app, &second, &attempt).await;

    app.idp
        .set_scenario(Scenario::id_token(IdTokenSpec::valid().key(KeyName::First)));
    let third = app.browser();
    let attempt = attempt_login(&app, &third).await;
    assert_refused(name, &app, &third, &attempt, Stage::AfterCodeRedemption, 502).await;
}

/// Verifies every token at once; returns how many were refused as invalid ID tokens.
async fn verify_concurrently(app: &FaultyApp, tokens: &[String], nonce: &'static str) -> usize {
    let tasks: Vec<_> = tokens
        .iter()
        .map(|token| {
            let bff = app.app.clone();
            let token = IdToken::new(token.clone());
            tokio::spawn(async move { bff.oidc.verify_id_token(&token, Some(nonce), unix_now()).await })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        if matches!(task.await.expect("task"), Err(OidcError::InvalidIdToken(_))) {
            refused += 1;
        }
    }
    refused
}

/// Forged `kid`s cannot flood the provider: a burst of tokens with unknown `kid`s costs
/// at most one JWKS fetch per refetch interval. A burst right after a fetch waits out the
/// rest of the interval and then shares one refetch (which is what lets a key rotation
/// right after a fetch succeed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_burst_of_unknown_kids_causes_at_most_one_jwks_refetch_per_second() {
    const BURST: usize = 20;
    const NONCE: &str = "n-0S6_WzA2Mj";
    let app = spawn_app_against(Scenario::honest()).await;
    let idp = &app.idp;
    // Minted up front: RSA signing in a debug build is slow enough to blur the timing.
    let good = idp.mint_id_token(&IdTokenSpec::valid(), Some(NONCE));
    let bursts: Vec<Vec<String>> = (0..3)
        .map(|burst| {
            (0..BURST)
                .map(|i| {
                    let spec = IdTokenSpec::valid().kid(Kid::Named(format!("forged-{burst}-{i}")));
                    idp.mint_id_token(&spec, Some(NONCE))
                })
                .collect()
        })
        .collect();

    let verified = app
        .app
        .oidc
        .verify_id_token(&IdToken::new(good), Some(NONCE), unix_now())
        .await;
    assert!(verified.is_ok(), "the honest token verifies");
    assert_eq!(idp.jwks_fetches(), 1, "first use fetches the JWKS");
    let first_fetch = std::time::Instant::now();
    // Scheduling slack when comparing waits with the interval.
    let slack = Duration::from_millis(150);

    // Right after that fetch: the whole burst waits out the interval and shares one refetch.
    assert_eq!(verify_concurrently(&app, &bursts[0], NONCE).await, BURST);
    assert_eq!(idp.jwks_fetches(), 2, "one refetch for a whole burst");
    assert!(
        first_fetch.elapsed() + slack >= JWKS_REFETCH_INTERVAL,
        "not sooner than the interval"
    );
    let second_fetch = std::time::Instant::now();

    // At once again: one more refetch, again not sooner than the interval.
    assert_eq!(verify_concurrently(&app, &bursts[1], NONCE).await, BURST);
    assert_eq!(idp.jwks_fetches(), 3, "one refetch for the next burst");
    assert!(
        second_fetch.elapsed() + slack >= JWKS_REFETCH_INTERVAL,
        "at most one fetch per interval"
    );

    // Long after the last fetch: the refetch happens without waiting (one token, so the
    // timing measures the wait and not a burst of verifications on a busy machine).
    past_the_refetch_interval().await;
    let third = std::time::Instant::now();
    assert_eq!(verify_concurrently(&app, &bursts[2][..1], NONCE).await, 1);
    assert_eq!(idp.jwks_fetches(), 4);
    assert!(third.elapsed() < JWKS_REFETCH_INTERVAL, "no needless wait");
}
