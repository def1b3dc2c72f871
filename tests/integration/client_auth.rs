//! `private_key_jwt` (RFC 7523) against `oidc-provider`: a PEM key and a key in KMS
//! (`moto`), login, refresh and client-credentials grants, a key the provider does not
//! know, and start-up refusals.
//!
//! oidc-provider checks what matters here for real: the assertion's signature against the
//! registered JWKS, `iss`, `aud`, `exp`, a never-seen `jti`, and that a request carries
//! one authentication mechanism only (a client secret next to the assertion is refused).

use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use bff::oidc::ClientAuthentication;
use bff::platform::signing::{AssertionSigner as _, JwsAlg, PemKey, PublicJwk};
use bff_testkit::provider::Provider;
use bff_tests::app::{Options, StoreKind, TestApp, spawn_app_with};
use bff_tests::upstream::Upstream;
use reqwest::{Method, StatusCode};

fn key_file(name: &str) -> String {
    let path = bff_tests::repo_root().join("shared/tests/data/client-keys").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A BFF on its own provider, registered for `private_key_jwt` with `jwks`, with a user
/// route (`/api`) and a client-credentials route (`/api/reports`), and `env` on top.
async fn spawn_keyed(
    jwks: serde_json::Value,
    env: Vec<(&'static str, String)>,
    aws: Option<aws_config::SdkConfig>,
) -> (TestApp, Upstream) {
    let provider: &'static Provider = Box::leak(Box::new(Provider::start(&[])));
    let reports = Upstream::start().await;
    let users = Upstream::start().await;
    let routes = serde_json::json!([
        {"path": "/api", "upstream": users.base, "token": "user"},
        {"path": "/api/reports", "upstream": reports.base, "token": "client", "resource": "https://reports.example"},
    ]);
    let mut options = Options::new(StoreKind::Memory);
    options.provider = Some(provider);
    options.client_jwks = Some(jwks);
    options.aws = aws;
    options.env.push(("BFF_APIS", routes.to_string()));
    options.env.push(("BFF_CLIENT_AUTH", "private_key_jwt".into()));
    // Set, and never sent: the provider refuses a request with two mechanisms.
    options.env.push(("BFF_CLIENT_SECRET", "never-sent-secret".into()));
    options.env.extend(env);
    let app = spawn_app_with(options).await;
    (app, reports)
}

/// Login, a user call, a refresh, a client-credentials call and logout (revocation), each
/// authenticated by a client assertion the provider accepted.
async fn every_grant_succeeds(app: &TestApp) {
    let browser = app.browser();
    let callback = browser.login("alice", "/").await;
    assert_eq!(callback.status(), StatusCode::FOUND, "the code exchange must succeed");
    assert_eq!(app.provider.grants("authorization_code").await, 1);
    assert_eq!(browser.api(Method::GET, "/api/me").await.status(), StatusCode::OK);

    // Close to expiry: the next call refreshes first.
    app.clock.advance(290);
    assert_eq!(browser.api(Method::GET, "/api/me").await.status(), StatusCode::OK);
    assert_eq!(app.provider.grants("refresh_token").await, 1, "one refresh grant");

    assert_eq!(
        browser.api(Method::GET, "/api/reports/1").await.status(),
        StatusCode::OK
    );
    assert_eq!(app.provider.grants("client_credentials").await, 1);

    assert_eq!(browser.logout().await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pem_key_authenticates_every_grant_and_the_secret_is_never_sent() {
    let pem = key_file("rsa.pem");
    let jwks = PemKey::from_pem(&pem, None).expect("key").jwks();
    let (app, reports) = spawn_keyed(jwks, vec![("BFF_CLIENT_KEY", pem)], None).await;
    every_grant_succeeds(&app).await;
    assert_eq!(reports.requests().len(), 1);
    assert_eq!(app.app.config.client_secret, None, "the secret is not even kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec_key_with_the_issuer_as_audience_and_a_configured_kid_is_accepted() {
    let pem = key_file("p256.pem");
    let jwks = PemKey::from_pem(&pem, Some("bff-2026".into())).expect("key").jwks();
    assert_eq!(jwks["keys"][0]["kid"], "bff-2026");
    let env = vec![
        ("BFF_CLIENT_KEY", pem),
        ("BFF_CLIENT_KEY_ID", "bff-2026".into()),
        ("BFF_CLIENT_ASSERTION_AUD", "issuer".into()),
    ];
    let (app, _) = spawn_keyed(jwks, env, None).await;
    assert_eq!(app.browser().login("alice", "/").await.status(), StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_does_not_know_is_refused_with_a_clear_error() {
    let registered = PemKey::from_pem(&key_file("rsa.pem"), None).expect("key").jwks();
    let (app, reports) = spawn_keyed(registered, vec![("BFF_CLIENT_KEY", key_file("other-rsa.pem"))], None).await;
    let browser = app.browser();
    let callback = browser.login("alice", "/").await;
    assert_eq!(callback.status(), StatusCode::BAD_GATEWAY);
    let page = callback.text().await.expect("page");
    assert!(page.contains("client authentication"), "{page}");
    assert!(browser.cookie("bff-session").is_none(), "no session");
    assert_eq!(app.provider.grants("authorization_code").await, 0);

    assert!(reports.requests().is_empty(), "nothing forwarded");
}

/// A key created in the local KMS (moto), `spec` RSA_2048 or ECC_NIST_P256: its id and
/// its public half.
async fn kms_key(aws: &aws_config::SdkConfig, spec: KeySpec) -> (String, PublicJwk) {
    let kms = aws_sdk_kms::Client::new(aws);
    let created = kms
        .create_key()
        .key_spec(spec)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .expect("create key");
    let key_id = created.key_metadata().expect("metadata").key_id().to_owned();
    let public = kms.get_public_key().key_id(&key_id).send().await.expect("public key");
    let jwk = PublicJwk::from_spki_der(public.public_key().expect("der").as_ref()).expect("jwk");
    (key_id, jwk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_key_signs_assertions_that_verify_with_its_public_key_and_the_provider_accepts() {
    let aws = bff_tests::kms::sdk_config().await;
    for (spec, jws_alg, algorithm) in [
        (
            KeySpec::Rsa2048,
            JwsAlg::Rs256,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        ),
        (KeySpec::EccNistP256, JwsAlg::Es256, SigningAlgorithmSpec::EcdsaSha256),
    ] {
        let alg = jws_alg.name();
        let (key_id, public) = kms_key(&aws, spec).await;
        let jwks = serde_json::json!({"keys": [public.to_json(&public.thumbprint(), jws_alg)]});
        let env = vec![("BFF_CLIENT_KMS_KEY_ID", key_id.clone())];
        let (app, _) = spawn_keyed(jwks, env, Some(aws.clone())).await;

        // An assertion as the BFF makes it, checked with the key's public half twice: by
        // KMS's own Verify, and by ring against GetPublicKey's key.
        let assertion = ClientAuthentication::new(&app.app.config)
            .assertion(&format!("{}/token", app.provider.issuer), 1_900_000_000)
            .await
            .expect("assertion");
        let (input, signature) = assertion.rsplit_once('.').expect("jws");
        let header: serde_json::Value =
            serde_json::from_slice(&bff_tests::b64::decode(input.split('.').next().expect("header"))).expect("header");
        assert_eq!(header["alg"], alg);
        assert_eq!(header["kid"], public.thumbprint());
        let signature = bff_tests::b64::decode(signature);
        assert!(
            verifies_with(&public, input.as_bytes(), &signature),
            "{alg}: ring verification"
        );
        let kms_signature = match alg {
            "ES256" => fixed_to_der(&signature),
            _ => signature.clone(),
        };
        let verified = aws_sdk_kms::Client::new(&aws)
            .verify()
            .key_id(&key_id)
            .message(Blob::new(input.as_bytes()))
            .message_type(MessageType::Raw)
            .signature(Blob::new(kms_signature))
            .signing_algorithm(algorithm)
            .send()
            .await
            .expect("verify");
        assert!(verified.signature_valid(), "{alg}: KMS Verify");

        // And the provider, knowing only the KMS public key, takes the BFF's assertions.
        every_grant_succeeds(&app).await;
    }
}

fn verifies_with(public: &PublicJwk, input: &[u8], signature: &[u8]) -> bool {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
    };
    match public {
        PublicJwk::Rsa { n, e } => RsaPublicKeyComponents { n, e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, input, signature)
            .is_ok(),
        PublicJwk::P256 { x, y } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, [&[4u8][..], x, y].concat())
            .verify(input, signature)
            .is_ok(),
    }
}

/// JWS's `r || s` as the DER `ECDSA-Sig-Value` KMS's Verify takes.
fn fixed_to_der(signature: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        let mut value = bytes[start..].to_vec();
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        let mut out = vec![0x02, u8::try_from(value.len()).expect("short")];
        out.extend(value);
        out
    };
    let (r, s) = signature.split_at(signature.len() / 2);
    let body = [integer(r), integer(s)].concat();
    let mut der = vec![0x30, u8::try_from(body.len()).expect("short")];
    der.extend(body);
    der
}

/// `bff-local` with `env` on `issuer`: its exit status and what it printed on stderr.
fn start_up(issuer: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(bff_tests::process::binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BFF_ISSUER", issuer)
        .env("BFF_CLIENT_ID", "client")
        .env("BFF_PUBLIC_URL", "http://127.0.0.1:9")
        .env("BFF_UPSTREAM_URL", "http://127.0.0.1:9")
        .env("BFF_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .expect("run bff-local");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn start_up_refuses_private_key_jwt_the_provider_does_not_offer_or_an_unusable_key() {
    let pem = key_file("rsa.pem");
    // A provider whose discovery offers the secret methods only.
    let secrets_only = Provider::start(&[("PROVIDER_CLIENT_AUTH_METHODS", "client_secret_basic,client_secret_post")]);
    let (status, stderr) = start_up(
        &secrets_only.issuer,
        &[("BFF_CLIENT_AUTH", "private_key_jwt"), ("BFF_CLIENT_KEY", &pem)],
    );
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("BFF_CLIENT_AUTH") && stderr.contains("private_key_jwt"),
        "{stderr}"
    );

    let truncated = "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    let public = key_file("rsa-public.pem");
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("BFF_CLIENT_AUTH", "private_key_jwt"), ("BFF_CLIENT_KEY", truncated)],
            "BFF_CLIENT_KEY",
        ),
        (
            &[
                ("BFF_CLIENT_AUTH", "private_key_jwt"),
                ("BFF_CLIENT_KEY", public.as_str()),
            ],
            "BFF_CLIENT_KEY",
        ),
        (&[("BFF_CLIENT_AUTH", "private_key_jwt")], "BFF_CLIENT_KEY"),
        (&[("BFF_CLIENT_AUTH", "client_secret_jwt")], "BFF_CLIENT_AUTH"),
    ];
    for (env, named) in cases {
        let (status, stderr) = start_up("http://127.0.0.1:9", env);
        assert_eq!(status, Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("MII"), "never the key: {stderr}");
    }
}

#[test]
fn the_jwks_command_prints_the_public_key_with_its_kid_and_never_the_private_key() {
    let pem = key_file("p256.pem");
    let output = Command::new(bff_tests::process::binary())
        .arg("jwks")
        .env_clear()
        .env("BFF_CLIENT_KEY", &pem)
        .output()
        .expect("run bff-local jwks");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let jwks: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let expected = PemKey::from_pem(&pem, None).expect("key").jwks();
    assert_eq!(jwks, expected);
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert!(key.get("d").is_none(), "no private member");
}

/// `BFF_PROFILE=fapi2` with a provider whose discovery has no pushed-request endpoint
/// (oidc-provider with PAR off): start-up stops with one line naming the profile and
/// what is missing.
#[test]
fn start_up_refuses_the_fapi2_profile_with_a_provider_lacking_par() {
    let pem = key_file("p256.pem");
    let env = [
        ("BFF_PROFILE", "fapi2"),
        ("BFF_CLIENT_AUTH", "private_key_jwt"),
        ("BFF_CLIENT_KEY", pem.as_str()),
    ];
    let without_par = Provider::start(&[("PROVIDER_PAR", "off")]);
    let (status, stderr) = start_up(&without_par.issuer, &env);
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("BFF_PROFILE") && stderr.contains("pushed_authorization_request_endpoint"),
        "{stderr}"
    );

    // An explicit setting that contradicts the profile names both variables.
    let (status, stderr) = start_up(&without_par.issuer, &[env[0], env[1], env[2], ("BFF_PAR", "off")]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("BFF_PROFILE") && stderr.contains("BFF_PAR"), "{stderr}");
}

/// A BFF with `BFF_PROFILE=fapi2` on a provider that meets the profile (PAR required,
/// DPoP, `private_key_jwt`, the `iss` response parameter, an ES256 key), its client
/// registered for ID tokens signed with `alg`.
async fn spawn_fapi2(alg: &str) -> TestApp {
    let provider: &'static Provider = Box::leak(Box::new(Provider::start(&[
        ("PROVIDER_PAR", "required"),
        ("PROVIDER_EC_KEY", "1"),
    ])));
    let pem = key_file("p256.pem");
    let jwks = PemKey::from_pem(&pem, None).expect("key").jwks();
    let mut options = Options::new(StoreKind::Memory);
    options.provider = Some(provider);
    options.auth_method = "private_key_jwt";
    options.client_metadata = Some(serde_json::json!({ "jwks": jwks, "id_token_signed_response_alg": alg }));
    options.env.push(("BFF_PROFILE", "fapi2".into()));
    options.env.push(("BFF_CLIENT_AUTH", "private_key_jwt".into()));
    options.env.push(("BFF_CLIENT_KEY", pem));
    let app = spawn_app_with(options).await;
    app.upstream.require_dpop();
    app
}

/// The whole flow under the FAPI 2.0 profile: the request pushed, the code exchanged with
/// a client assertion and a DPoP proof, an ES256 ID token accepted, and the API called with
/// a DPoP-bound token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fapi2_profile_logs_in_and_calls_the_api() {
    let app = spawn_fapi2("ES256").await;
    let browser = app.browser();
    let callback = browser.login("alice", "/").await;
    assert_eq!(callback.status(), StatusCode::FOUND, "the login must succeed");
    let requests = app.provider.requests().await;
    assert_eq!(
        requests.get("/request").copied(),
        Some(1),
        "the request was pushed: {requests:?}"
    );
    assert_eq!(app.provider.grants("authorization_code").await, 1);

    assert_eq!(browser.api(Method::GET, "/api/me").await.status(), StatusCode::OK);
    let seen = app.upstream.requests();
    let authorization = seen.last().expect("call").header("authorization").join(", ");
    assert!(authorization.starts_with("DPoP "), "{authorization}");
    let verdict = app.upstream.dpop_verdicts().last().expect("verdict").outcome.clone();
    assert!(verdict.is_ok(), "the proof verifies: {verdict:?}");
}

/// Under the profile an ID token signed with RS256 (allowed otherwise) is refused, and no
/// session is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fapi2_profile_refuses_an_rs256_id_token() {
    let app = spawn_fapi2("RS256").await;
    let browser = app.browser();
    let callback = browser.login("alice", "/").await;
    assert_eq!(callback.status(), StatusCode::BAD_GATEWAY);
    let page = callback.text().await.expect("page");
    assert!(page.contains("RS256"), "the page names the algorithm: {page}");
    assert!(browser.cookie("bff-session").is_none(), "no session");
}
