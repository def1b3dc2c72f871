//! The OpenID provider for tests: `infra/provider.mjs` (`oidc-provider` from npm), started
//! once per test process and shared; each test registers its own confidential client.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// A running provider.
pub struct Provider {
    /// The issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    _child: Child,
    // Kept open: the provider exits when this pipe closes, i.e. when the test process ends.
    _stdin: ChildStdin,
}

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
}

static PROVIDER: OnceLock<Provider> = OnceLock::new();

/// The shared provider, started on first use.
pub fn provider() -> &'static Provider {
    PROVIDER.get_or_init(|| start(&[]))
}

/// Starts a dedicated provider with extra environment (e.g. a short token lifetime).
pub fn start(env: &[(&str, &str)]) -> Provider {
    let script = crate::repo_root().join("infra/provider.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .args(["--port", "0", "--exit-on-stdin-close", "--test-hooks"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start node infra/provider.mjs: is Node.js installed and `npm ci` run in infra/?");
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("provider output");
    let json = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("provider did not start (run `npm ci` in infra/): {line:?}"));
    let ready: serde_json::Value = serde_json::from_str(json).expect("READY json");
    let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
    Provider {
        issuer,
        _child: child,
        _stdin: stdin,
    }
}

impl Provider {
    /// The provider's operating-system process id, for fault tests that pause it
    /// (`SIGSTOP`) and resume it (`SIGCONT`).
    pub fn pid(&self) -> u32 {
        self._child.id()
    }

    /// Registers a confidential client for a BFF at `public_origin`.
    pub async fn register(&self, public_origin: &str, auth_method: &str) -> RegisteredClient {
        self.register_with(public_origin, auth_method, false).await
    }

    /// Registers a client, optionally with back-channel logout to the BFF (which makes the
    /// provider put `sid` into ID tokens).
    pub async fn register_with(&self, public_origin: &str, auth_method: &str, backchannel: bool) -> RegisteredClient {
        let mut body = serde_json::json!({
            "redirect_uris": [format!("{public_origin}/auth/callback")],
            "post_logout_redirect_uris": [format!("{public_origin}/")],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": auth_method,
        });
        if backchannel {
            body["backchannel_logout_uri"] = format!("{public_origin}/auth/backchannel-logout").into();
            body["backchannel_logout_session_required"] = true.into();
        }
        let response = reqwest::Client::new()
            .post(format!("{}/reg", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("registration request");
        assert_eq!(response.status(), 201, "client registration failed");
        let registered: serde_json::Value = response.json().await.expect("registration json");
        RegisteredClient {
            client_id: registered["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: registered["client_secret"].as_str().expect("client_secret").to_owned(),
        }
    }

    /// How many grants of each type (`authorization_code`, `refresh_token`) it issued.
    pub async fn grants(&self, grant_type: &str) -> u64 {
        let counts: serde_json::Value = reqwest::get(format!("{}/__test/grants", self.issuer))
            .await
            .expect("grants")
            .json()
            .await
            .expect("grants json");
        counts[grant_type].as_u64().unwrap_or(0)
    }

    /// Every back-channel logout token it sent, oldest first.
    pub async fn sent_logout_tokens(&self) -> Vec<String> {
        reqwest::get(format!("{}/__test/logout-tokens", self.issuer))
            .await
            .expect("logout tokens")
            .json()
            .await
            .expect("logout tokens json")
    }

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
