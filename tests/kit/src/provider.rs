//! The local OpenID provider, `infra/provider.mjs` (`oidc-provider` from npm), run as a
//! child process with `--test-hooks`: clients register themselves (dynamic
//! registration), and the hooks tell what the provider did (grants issued, requests
//! served by path, logout tokens sent, refresh tokens presented) and slow its token
//! endpoint on demand. The tests also call its token, revocation and
//! userinfo endpoints directly, and most of them share one provider per process
//! ([`shared`]), each registering its own client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// A running provider; it is stopped when this value is dropped.
pub struct Provider {
    /// The issuer (`http://127.0.0.1:<port>`, or the terminator's https address).
    pub issuer: String,
    /// Where it listens in plain HTTP (the issuer, unless behind a terminator): where the
    /// harness registers clients and reads the test hooks.
    pub listen: String,
    child: Child,
    // Held open: with `--exit-on-stdin-close` the provider also exits when its parent
    // dies without dropping this value.
    _stdin: ChildStdin,
}

/// A confidential client registered at the provider.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`; empty for a `private_key_jwt` client, which has none.
    pub client_secret: String,
}

/// What the token endpoint saw of one client's refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPresentations {
    /// For each refresh token presented, how many times the provider processed it (a
    /// rotated token presented twice shows as a 2).
    pub per_token: Vec<u64>,
    /// Held requests whose client hung up before they were let through (dropped
    /// unprocessed).
    pub abandoned: u64,
    /// Presentations that arrived while another of the same token was still pending.
    pub overlapping: u64,
    /// Every token processed more than once: whose it was and when.
    pub repeated: Vec<RepeatedToken>,
}

/// A refresh token the provider processed more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedToken {
    /// The user (account id) the token was issued to, when the provider knew it.
    pub account: Option<String>,
    /// When each presentation was processed, milliseconds since the Unix epoch.
    pub at: Vec<u64>,
}

impl RefreshPresentations {
    /// The most times any one refresh token was processed.
    pub fn most_of_one_token(&self) -> u64 {
        self.per_token.iter().copied().max().unwrap_or(0)
    }

    /// Refresh grants processed in all.
    pub fn total(&self) -> u64 {
        self.per_token.iter().sum()
    }
}

/// Requests the provider served, by path (interaction and resume ids folded to `:uid`).
pub type RequestCounts = BTreeMap<String, u64>;

impl Provider {
    /// Starts `infra/provider.mjs` on a free loopback port with `env` (such as
    /// `PROVIDER_ACCESS_TOKEN_TTL`), and waits for its `READY` line. Blocks while the
    /// provider starts.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_env(env)
    }

    /// As [`Provider::start`], behind a terminator of `tls` (service `provider`): the
    /// issuer is the terminator's `https://localhost:<port>`, so every client of it speaks
    /// TLS and must trust the test CA.
    pub async fn start_behind(tls: &crate::tls::Tls, env: &[(&str, &str)]) -> Result<Self, String> {
        let terminator = tls.listen("provider").await?;
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("PROVIDER_ISSUER".into(), terminator.url.clone()));
        let provider = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Self::start_env(&env)
        })
        .await
        .map_err(|e| e.to_string())?;
        terminator.forward(provider.listen.trim_start_matches("http://").to_owned());
        Ok(provider)
    }

    fn start_env(env: &[(&str, &str)]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/provider.mjs");
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
        let listen = ready["listen"].as_str().unwrap_or(&issuer).to_owned();
        Self {
            issuer,
            listen,
            child,
            _stdin: stdin,
        }
    }

    /// The provider's process id (to read its memory, or to pause it with `SIGSTOP`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Registers a confidential client authenticating with `auth_method` at the token
    /// endpoint, whose redirect URI is `{public_origin}/auth/callback`.
    pub async fn register(&self, public_origin: &str, auth_method: &str) -> RegisteredClient {
        self.register_with(public_origin, auth_method, None).await
    }

    /// As [`Provider::register`]; with `backchannel_logout_uri`, the provider also puts
    /// `sid` into ID tokens and posts logout tokens there.
    pub async fn register_with(
        &self,
        public_origin: &str,
        auth_method: &str,
        backchannel_logout_uri: Option<&str>,
    ) -> RegisteredClient {
        self.register_client(public_origin, auth_method, backchannel_logout_uri, None)
            .await
    }

    /// Registers a client authenticating with `private_key_jwt` (RFC 7523) by the keys of
    /// `jwks` (a public JWKS), whose redirect URI is `{public_origin}/auth/callback`.
    pub async fn register_with_keys(&self, public_origin: &str, jwks: serde_json::Value) -> RegisteredClient {
        self.register_client(
            public_origin,
            "private_key_jwt",
            None,
            Some(&serde_json::json!({ "jwks": jwks })),
        )
        .await
    }

    /// As [`Provider::register_with`], with more client metadata (RFC 7591), such as
    /// `id_token_signed_response_alg` or `userinfo_signed_response_alg`.
    pub async fn register_client(
        &self,
        public_origin: &str,
        auth_method: &str,
        backchannel_logout_uri: Option<&str>,
        metadata: Option<&serde_json::Value>,
    ) -> RegisteredClient {
        let mut body = serde_json::json!({
            "redirect_uris": [format!("{public_origin}/auth/callback")],
            "post_logout_redirect_uris": [format!("{public_origin}/")],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types": ["code"],
            "token_endpoint_auth_method": auth_method,
        });
        if let Some(uri) = backchannel_logout_uri {
            body["backchannel_logout_uri"] = uri.into();
            body["backchannel_logout_session_required"] = true.into();
        }
        if let Some(serde_json::Value::Object(extra)) = metadata {
            for (name, value) in extra {
                body[name] = value.clone();
            }
        }
        let response = reqwest::Client::new()
            .post(format!("{}/reg", self.listen))
            .json(&body)
            .send()
            .await
            .expect("client registration");
        let status = response.status();
        let registered: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 201, "client registration refused: {registered}");
        RegisteredClient {
            client_id: registered["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: registered["client_secret"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// How many grants of `grant_type` (`authorization_code`, `refresh_token`) it issued.
    pub async fn grants(&self, grant_type: &str) -> u64 {
        self.hook("grants").await[grant_type].as_u64().unwrap_or(0)
    }

    /// Requests served so far, by path.
    pub async fn requests(&self) -> RequestCounts {
        self.hook("requests")
            .await
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(path, n)| (path.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every back-channel logout token it sent, oldest first.
    pub async fn sent_logout_tokens(&self) -> Vec<String> {
        serde_json::from_value(self.hook("logout-tokens").await).expect("logout tokens")
    }

    /// What the token endpoint saw of `client`'s refresh tokens.
    pub async fn refresh_presentations(&self, client: &RegisteredClient) -> RefreshPresentations {
        let seen = self
            .hook(&format!("refresh-presentations?client={}", client.client_id))
            .await;
        RefreshPresentations {
            per_token: serde_json::from_value(seen["presentations"].clone()).expect("presentations"),
            abandoned: seen["abandoned"].as_u64().unwrap_or(0),
            overlapping: seen["overlapping"].as_u64().unwrap_or(0),
            repeated: seen["repeated"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .map(|one| RepeatedToken {
                            account: one["account"].as_str().map(str::to_owned),
                            at: one["at"]
                                .as_array()
                                .map(|at| at.iter().filter_map(serde_json::Value::as_u64).collect())
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Holds each of `client`'s next `count` token requests for `ms` before the provider
    /// sees it, as a queue in front of it would; a request whose client hangs up
    /// meanwhile is dropped unprocessed.
    pub async fn slow_token_endpoint(&self, client: &RegisteredClient, ms: u64, count: u64) {
        self.hook(&format!("slow-token?client={}&ms={ms}&count={count}", client.client_id))
            .await;
    }

    /// The JSON the test hook `GET /__test/{name}` answers.
    async fn hook(&self, name: &str) -> serde_json::Value {
        reqwest::get(format!("{}/__test/{name}", self.listen))
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("test hook {name}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("test hook {name} json: {e}"))
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

static SHARED: OnceLock<Provider> = OnceLock::new();

/// The provider shared by this process, started on first use with the default
/// environment. It is never dropped: it exits with this process, when its stdin closes.
pub fn shared() -> &'static Provider {
    SHARED.get_or_init(|| Provider::start(&[]))
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
