//! The local OpenID provider, `infra/provider.mjs`, started with `--test-hooks`: every
//! benchmark logs in through the same real `oidc-provider`, and reads how many requests
//! of each path the provider served (`GET /__test/requests`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running provider; it stops when this value is dropped (its stdin closes).
pub struct Provider {
    /// The issuer (`http://127.0.0.1:<port>`).
    pub issuer: String,
    child: Child,
    _stdin: ChildStdin,
}

/// A confidential client registered at the provider.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
}

/// Requests the provider served, by path (interaction and resume ids folded to `:uid`).
pub type RequestCounts = BTreeMap<String, u64>;

impl Provider {
    /// Starts `infra/provider.mjs` on a free loopback port with `env` (such as
    /// `PROVIDER_ACCESS_TOKEN_TTL`), and waits for its `READY` line.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let script = crate::repo_root().join("infra/provider.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .args(["--port", "0", "--exit-on-stdin-close", "--test-hooks"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start node infra/provider.mjs (is Node.js installed and `npm ci` run in infra/?)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("provider output");
        let ready: serde_json::Value = line
            .strip_prefix("READY ")
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| panic!("the provider did not start (run `npm ci` in infra/): {line:?}"));
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        Self {
            issuer,
            child,
            _stdin: stdin,
        }
    }

    /// The provider's process id (to read its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Registers a confidential client (`client_secret_basic`) whose redirect URI is
    /// `{public_origin}/auth/callback`; with `backchannel_logout_uri`, the provider also
    /// puts `sid` into ID tokens and posts logout tokens there.
    pub async fn register(&self, public_origin: &str, backchannel_logout_uri: Option<&str>) -> Client {
        let mut body = serde_json::json!({
            "redirect_uris": [format!("{public_origin}/auth/callback")],
            "post_logout_redirect_uris": [format!("{public_origin}/")],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        if let Some(uri) = backchannel_logout_uri {
            body["backchannel_logout_uri"] = uri.into();
            body["backchannel_logout_session_required"] = true.into();
        }
        let response = reqwest::Client::new()
            .post(format!("{}/reg", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("client registration");
        let status = response.status();
        let registered: serde_json::Value = response.json().await.expect("registration answer");
        assert_eq!(status, 201, "client registration refused: {registered}");
        Client {
            id: registered["client_id"].as_str().expect("client_id").to_owned(),
            secret: registered["client_secret"].as_str().expect("client_secret").to_owned(),
        }
    }

    /// Requests served so far, by path.
    pub async fn requests(&self) -> RequestCounts {
        let counts: serde_json::Value = reqwest::get(format!("{}/__test/requests", self.issuer))
            .await
            .expect("request counts")
            .json()
            .await
            .expect("request counts json");
        counts
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(path, n)| (path.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What was counted between two snapshots (paths with no new request left out).
pub fn delta(before: &RequestCounts, after: &RequestCounts) -> RequestCounts {
    after
        .iter()
        .filter_map(|(path, n)| {
            let grew = n.saturating_sub(before.get(path).copied().unwrap_or(0));
            (grew > 0).then(|| (path.clone(), grew))
        })
        .collect()
}
