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
        .args(["--port", "0", "--exit-on-stdin-close"])
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
    /// Registers a confidential client for a BFF at `public_origin`.
    pub async fn register(&self, public_origin: &str, auth_method: &str) -> RegisteredClient {
        let body = serde_json::json!({
            "redirect_uris": [format!("{public_origin}/auth/callback")],
            "post_logout_redirect_uris": [format!("{public_origin}/")],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": auth_method,
        });
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
