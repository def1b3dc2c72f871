//! The integration-test harness: real components on loopback, one isolated BFF per test.
//!
//! - `bff_testkit::provider`: one `oidc-provider` process per test binary; every test
//!   registers its own client (dynamic registration) with its own redirect URI.
//! - [`dynamodb`]: one DynamoDB Local per test binary; every test gets its own table.
//! - [`kms`]: one local KMS (`moto` in server mode) per test binary, for client
//!   assertions signed by a KMS key.
//! - [`clock`]: the clock tests move forward, injected into the BFF.
//! - [`app`]: `spawn_app` starts `bff-local`'s server in-process on port 0, in front of a
//!   recording upstream, with the store of the test's choice.
//! - `bff_testkit::browser`: a headless "browser" (cookie jar, no automatic redirects)
//!   that walks the provider's real login and consent pages.
//! - [`lambda`]: the proxy function's binary under a Runtime API emulator that reads its
//!   streamed answers part by part.
//! - `bff_testkit::fault_proxy`: a TCP proxy in front of DynamoDB Local that drops,
//!   delays or loses the answers of writes on cue.
//! - [`faulty_idp`]: a deliberately faulty OpenID provider (broken ID tokens, mix-ups,
//!   lying token endpoints) and a BFF pointed at it, for the attack suites.

pub mod app;
pub mod capture;
pub mod clock;
pub mod counting;
/// DynamoDB Local for the tests: the shared endpoint and a fresh table per test.
pub mod dynamodb;
pub mod faulty_idp;
pub mod kms;
pub mod lambda;
pub mod process;
pub mod upstream;

/// The repository root, for paths to the Node scripts in `infra/`.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// base64url without padding, for tests that take tokens apart.
pub mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// Decodes base64url (padding tolerated).
    pub fn decode(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).expect("base64url")
    }

    /// Encodes as base64url without padding.
    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }
}
