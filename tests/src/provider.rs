//! The OpenID provider for tests: `infra/provider.mjs` (`oidc-provider` from npm), started
//! once per test process and shared; each test registers its own confidential client.
//! Starting it, registering clients and reading its test hooks is `bff_testkit`'s; this
//! adds what only the tests ask of it: the token, revocation and userinfo endpoints.

use std::ops::Deref;
use std::sync::OnceLock;

pub use bff_testkit::provider::RegisteredClient;

/// A running provider (everything of [`bff_testkit::Provider`], through `Deref`).
pub struct Provider(bff_testkit::Provider);

impl Deref for Provider {
    type Target = bff_testkit::Provider;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

static PROVIDER: OnceLock<Provider> = OnceLock::new();

/// The shared provider, started on first use.
pub fn provider() -> &'static Provider {
    PROVIDER.get_or_init(|| start(&[]))
}

/// Starts a dedicated provider with extra environment (e.g. a short token lifetime).
pub fn start(env: &[(&str, &str)]) -> Provider {
    Provider(bff_testkit::Provider::start(env))
}

impl Provider {
    /// Posts to the token endpoint as `client`; returns the status and JSON body.
    pub async fn token_request(&self, client: &RegisteredClient, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Revokes `token` at the provider's RFC 7009 endpoint as `client`.
    pub async fn revoke(&self, client: &RegisteredClient, token: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .form(&[("token", token), ("token_type_hint", "refresh_token")])
            .send()
            .await
            .expect("revocation");
        assert!(
            response.status().is_success(),
            "revocation refused: {}",
            response.status()
        );
    }

    /// The `sub` the provider's userinfo endpoint associates with `access_token`, proving
    /// a token the upstream received is a real, live token of that user.
    pub async fn userinfo_sub(&self, access_token: &str) -> Option<String> {
        let response = reqwest::Client::new()
            .get(format!("{}/me", self.issuer))
            .bearer_auth(access_token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let info: serde_json::Value = response.json().await.ok()?;
        info["sub"].as_str().map(str::to_owned)
    }
}
