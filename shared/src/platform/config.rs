//! Configuration from the environment, parsed and validated once at start-up.
//!
//! A missing or malformed variable is a [`ConfigError`] naming it, so a bad deployment
//! fails at cold start with one clear line instead of answering 500 later. This module
//! never logs a value: the client secret passes through it.

use std::time::Duration;

use url::Url;

use std::sync::Arc;

use crate::domain::return_to::validate_return_to;
use crate::domain::routes::Routes;
use crate::domain::secret::ClientSecret;
use crate::platform::seal::Sealer;

pub mod apis;
pub mod client_auth;

use apis::parse_routes;
use client_auth::{ClientAuthConfig, parse_client_auth};

/// Default scopes requested at login.
pub const DEFAULT_SCOPES: &str = "openid profile email offline_access";
/// Default idle session lifetime: one day without activity.
pub const DEFAULT_IDLE_SECS: i64 = 24 * 60 * 60;
/// Default absolute session lifetime: seven days from login.
pub const DEFAULT_MAX_SECS: i64 = 7 * 24 * 60 * 60;
/// Default upstream timeout.
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 20;

/// Authorize parameters the BFF sets itself; `BFF_AUTH_PARAMS` may not override them,
/// or a misconfiguration could switch off PKCE, state or nonce.
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
];

/// A configuration variable that is missing or malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable is set but its value is not acceptable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// Why the value was refused (never the value itself, which may be a secret).
        reason: String,
    },
}

/// The validated configuration shared by every function.
#[derive(Debug, Clone)]
pub struct Config {
    /// The OIDC issuer exactly as configured; discovery's `issuer` must equal it.
    pub issuer: String,
    /// Client id at the provider.
    pub client_id: String,
    /// Client secret at the provider: only the functions that call its token endpoint
    /// are given it (see [`Config::require_client_credentials`]). Always `None` with
    /// `private_key_jwt`, so no code path can send it.
    pub client_secret: Option<ClientSecret>,
    /// How the client authenticates at the provider (`BFF_CLIENT_AUTH` and its key).
    pub client_auth: ClientAuthConfig,
    /// The origin the browser sees, without trailing slash (`https://app.example.com`).
    pub public_origin: String,
    /// The routes under `/api` (`BFF_APIS`, or `BFF_UPSTREAM_URL` as the one-route
    /// shorthand); empty when this process does not serve the proxy.
    pub routes: Routes,
    /// Scopes requested at login.
    pub scopes: Vec<String>,
    /// Extra authorize parameters (`audience`, `resource`, ...), in order.
    pub auth_params: Vec<(String, String)>,
    /// Front-end origins allowed for CORS and absolute `returnTo`.
    pub allowed_origins: Vec<String>,
    /// DynamoDB table name.
    pub table: String,
    /// Idle session lifetime in seconds.
    pub session_idle_secs: i64,
    /// Absolute session lifetime in seconds.
    pub session_max_secs: i64,
    /// Timeout of one upstream API call, for routes without their own.
    pub upstream_timeout: Duration,
    /// Provider logout URL template for providers without `end_session_endpoint`
    /// (Auth0's `/v2/logout`, Cognito's `/logout`), with `{client_id}`,
    /// `{post_logout_redirect_uri}` and `{id_token_hint}` placeholders.
    pub logout_url: Option<String>,
    /// Where the browser lands after logout (an own-origin or allowed-origin URL).
    pub post_logout_redirect_url: String,
    /// The keys sealing tokens at rest, parsed once; without them a process seals with
    /// a key of its own.
    pub token_keys: Option<Arc<Sealer>>,
    /// Whether metrics are kept (`BFF_METRICS`, `on` by default): `bff-local`'s
    /// `/metrics` and the functions' EMF lines.
    pub metrics: bool,
    /// The CloudWatch namespace of the EMF metrics (`BFF_METRICS_NAMESPACE`, default `BFF`).
    pub metrics_namespace: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need no process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));

        let issuer = required("BFF_ISSUER")?;
        check_http_url("BFF_ISSUER", &issuer)?;

        let public_url = required("BFF_PUBLIC_URL")?;
        let public_origin = parse_origin("BFF_PUBLIC_URL", &public_url)?;

        let routes = parse_routes(get("BFF_APIS").as_deref(), get("BFF_UPSTREAM_URL").as_deref())?;

        let scopes: Vec<String> = get("BFF_SCOPES")
            .unwrap_or_else(|| DEFAULT_SCOPES.to_owned())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            return Err(invalid("BFF_SCOPES", "must include openid"));
        }

        let auth_params = match get("BFF_AUTH_PARAMS") {
            Some(raw) => parse_auth_params(&raw)?,
            None => Vec::new(),
        };

        let allowed_origins = match get("BFF_ALLOWED_ORIGINS") {
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_origin("BFF_ALLOWED_ORIGINS", s))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };

        let table = get("BFF_TABLE").unwrap_or_else(|| "bff".to_owned());
        if !(3..=255).contains(&table.len()) || !table.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return Err(invalid(
                "BFF_TABLE",
                "must be a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)",
            ));
        }

        let session_idle_secs = positive(&get, "BFF_SESSION_IDLE_SECS", DEFAULT_IDLE_SECS)?;
        let session_max_secs = positive(&get, "BFF_SESSION_MAX_SECS", DEFAULT_MAX_SECS)?;
        let upstream_timeout =
            Duration::from_secs(
                positive(&get, "BFF_UPSTREAM_TIMEOUT_SECS", DEFAULT_UPSTREAM_TIMEOUT_SECS as i64)? as u64,
            );

        let logout_url = match get("BFF_LOGOUT_URL") {
            Some(raw) => Some(parse_logout_template(&raw)?),
            None => None,
        };
        let post_logout_redirect_url = match get("BFF_POST_LOGOUT_REDIRECT_URL") {
            Some(raw) => validate_return_to(Some(&raw), &public_origin, &allowed_origins)
                .ok()
                .filter(|url| url.contains("://"))
                .ok_or_else(|| {
                    invalid(
                        "BFF_POST_LOGOUT_REDIRECT_URL",
                        "must be an absolute URL on this or an allowed origin",
                    )
                })?,
            None => format!("{public_origin}/"),
        };

        let token_keys = match get("BFF_TOKEN_KEYS") {
            Some(raw) => Some(Arc::new(
                Sealer::from_config(&raw).map_err(|e| invalid("BFF_TOKEN_KEYS", e))?,
            )),
            None => None,
        };

        let metrics = match get("BFF_METRICS").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(_) => return Err(invalid("BFF_METRICS", "must be `on` or `off`")),
        };
        let metrics_namespace = get("BFF_METRICS_NAMESPACE").unwrap_or_else(|| "BFF".to_owned());
        // CloudWatch's rules for a namespace; `AWS/` is reserved for AWS's own.
        if metrics_namespace.is_empty()
            || metrics_namespace.len() > 255
            || metrics_namespace.starts_with("AWS/")
            || !metrics_namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/#: ".contains(&b))
        {
            return Err(invalid(
                "BFF_METRICS_NAMESPACE",
                "must be 1 to 255 letters, digits or . - _ / # : and space, not starting with AWS/",
            ));
        }

        let client_auth = parse_client_auth(&get)?;
        let client_secret = get("BFF_CLIENT_SECRET")
            .filter(|_| !client_auth.is_private_key_jwt())
            .map(ClientSecret::new);

        Ok(Self {
            issuer,
            client_id: required("BFF_CLIENT_ID")?,
            client_secret,
            client_auth,
            public_origin,
            routes,
            scopes,
            auth_params,
            allowed_origins,
            table,
            session_idle_secs,
            session_max_secs,
            upstream_timeout,
            logout_url,
            post_logout_redirect_url,
            token_keys,
            metrics,
            metrics_namespace,
        })
    }

    /// The redirect URI registered at the provider.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_origin)
    }

    /// Where the provider sends the browser after logout, and the local fallback.
    pub fn post_logout_url(&self) -> String {
        self.post_logout_redirect_url.clone()
    }

    /// Plain-http loopback development: cookies lose `Secure` and the `__Host-` prefix.
    pub fn is_loopback_dev(&self) -> bool {
        self.public_origin.starts_with("http://")
    }

    /// The API routes, required by the processes that serve the proxy.
    pub fn require_routes(&self) -> Result<&Routes, ConfigError> {
        if self.routes.is_empty() {
            return Err(ConfigError::Missing("BFF_UPSTREAM_URL (or BFF_APIS)"));
        }
        Ok(&self.routes)
    }

    /// The client's credentials, required by the processes that call the provider's token
    /// endpoint (code exchange, refresh, revocation): the signing key with
    /// `private_key_jwt` (a KMS key must have been read), else the client secret.
    pub fn require_client_credentials(&self) -> Result<(), ConfigError> {
        if self.client_auth.is_private_key_jwt() {
            return match self.client_auth.signer() {
                Some(_) => Ok(()),
                None => Err(invalid(client_auth::KMS_KEY_VARIABLE, "the KMS key has not been read")),
            };
        }
        self.client_secret
            .as_ref()
            .map(|_| ())
            .ok_or(ConfigError::Missing("BFF_CLIENT_SECRET"))
    }

    /// The token-sealing keys, required where several processes share one table.
    pub fn require_token_keys(&self) -> Result<&Arc<Sealer>, ConfigError> {
        self.token_keys.as_ref().ok_or(ConfigError::Missing("BFF_TOKEN_KEYS"))
    }

    /// Whether `origin` is the BFF's own origin or an allowed front-end origin.
    pub fn is_known_origin(&self, origin: &str) -> bool {
        origin == self.public_origin || self.is_allowed_cors_origin(origin)
    }

    /// Whether `origin` is one of `BFF_ALLOWED_ORIGINS` (the ones that get CORS headers).
    pub fn is_allowed_cors_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

fn positive(
    get: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: i64,
) -> Result<i64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(name, "must be a positive whole number of seconds")),
        },
    }
}

/// Whether `host` is a loopback name or address, where plain http is acceptable.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An absolute http(s) URL; `http` only towards loopback hosts.
pub(crate) fn check_http_url(name: &'static str, raw: &str) -> Result<(), ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid(name, e))?;
    let host = url.host().ok_or_else(|| invalid(name, "has no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(name, "must not contain credentials"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&host) => Ok(()),
        "http" => Err(invalid(
            name,
            "http:// is allowed only for loopback hosts; use https://",
        )),
        _ => Err(invalid(name, "must be an http(s) URL")),
    }
}

/// An origin (`scheme://host[:port]`) in its ASCII serialisation, without trailing slash.
fn parse_origin(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    check_http_url(name, raw)?;
    let url = Url::parse(raw).map_err(|e| invalid(name, e))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(name, "must be an origin (scheme://host[:port]) without path"));
    }
    Ok(url.origin().ascii_serialization())
}

/// Placeholders a logout URL template may use.
pub const LOGOUT_PLACEHOLDERS: &[&str] = &["{client_id}", "{post_logout_redirect_uri}", "{id_token_hint}"];

fn parse_logout_template(raw: &str) -> Result<String, ConfigError> {
    let mut probe = raw.to_owned();
    for placeholder in LOGOUT_PLACEHOLDERS {
        probe = probe.replace(placeholder, "x");
    }
    if probe.contains(['{', '}']) {
        return Err(invalid(
            "BFF_LOGOUT_URL",
            "may use only {client_id}, {post_logout_redirect_uri} and {id_token_hint}",
        ));
    }
    check_http_url("BFF_LOGOUT_URL", &probe)?;
    Ok(raw.to_owned())
}

fn parse_auth_params(raw: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    for (key, _) in &params {
        if key.is_empty() {
            return Err(invalid("BFF_AUTH_PARAMS", "has an empty parameter name"));
        }
        if RESERVED_AUTH_PARAMS.contains(&key.as_str()) {
            return Err(invalid(
                "BFF_AUTH_PARAMS",
                format!("may not set `{key}`, the BFF sets it"),
            ));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let base: HashMap<String, String> = [
            ("BFF_ISSUER", "https://id.example.com/tenant"),
            ("BFF_CLIENT_ID", "client"),
            ("BFF_CLIENT_SECRET", "s3cret"),
            ("BFF_PUBLIC_URL", "https://app.example.com"),
        ]
        .iter()
        .chain(vars)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::from_lookup(|name| base.get(name).cloned())
    }

    #[test]
    fn minimal_configuration_gets_documented_defaults() {
        let config = load(&[]).expect("valid");
        assert_eq!(config.scopes, ["openid", "profile", "email", "offline_access"]);
        assert_eq!(config.table, "bff");
        assert_eq!(config.redirect_uri(), "https://app.example.com/auth/callback");
        assert_eq!(config.session_idle_secs, DEFAULT_IDLE_SECS);
        assert!(!config.is_loopback_dev());
    }

    #[test]
    fn metrics_are_on_by_default_and_their_settings_are_checked() {
        let config = load(&[]).expect("valid");
        assert!(config.metrics);
        assert_eq!(config.metrics_namespace, "BFF");
        assert!(!load(&[("BFF_METRICS", "off")]).expect("off").metrics);
        let custom = load(&[("BFF_METRICS_NAMESPACE", "BFF/prod-eu")]).expect("valid");
        assert_eq!(custom.metrics_namespace, "BFF/prod-eu");
        for (name, value) in [
            ("BFF_METRICS", "yes"),
            ("BFF_METRICS_NAMESPACE", "AWS/Lambda"),
            ("BFF_METRICS_NAMESPACE", "bff\nx"),
        ] {
            let err = load(&[(name, value)]).expect_err(value);
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for name in ["BFF_ISSUER", "BFF_CLIENT_ID", "BFF_PUBLIC_URL"] {
            let err = load(&[(name, "  ")]).expect_err(name);
            assert_eq!(err, ConfigError::Missing(name));
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn the_client_secret_is_required_only_where_asked_for() {
        let with = load(&[]).expect("valid");
        assert_eq!(with.client_secret.as_ref().map(|s| s.secret()), Some("s3cret"));
        assert_eq!(with.require_client_credentials(), Ok(()));
        let without = load(&[("BFF_CLIENT_SECRET", "  ")]).expect("a process may run without it");
        assert_eq!(without.client_secret, None);
        let err = without.require_client_credentials().expect_err("missing");
        assert_eq!(err, ConfigError::Missing("BFF_CLIENT_SECRET"));
        assert!(err.to_string().contains("BFF_CLIENT_SECRET"));
    }

    #[test]
    fn with_private_key_jwt_the_secret_is_dropped_and_the_key_is_the_credential() {
        let pem = crate::platform::signing::tests::RSA_PKCS8;
        let config = load(&[("BFF_CLIENT_AUTH", "private_key_jwt"), ("BFF_CLIENT_KEY", pem)]).expect("valid");
        // The secret of the base configuration is set, and never kept.
        assert_eq!(config.client_secret, None);
        assert_eq!(config.require_client_credentials(), Ok(()));
        let kms = load(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_KMS_KEY_ID", "alias/bff"),
        ])
        .expect("valid");
        let err = kms.require_client_credentials().expect_err("not read yet");
        assert!(err.to_string().contains("BFF_CLIENT_KMS_KEY_ID"), "{err}");
    }

    #[test]
    fn plain_http_issuer_is_refused_unless_loopback() {
        let err = load(&[("BFF_ISSUER", "http://id.example.com")]).expect_err("non-loopback http");
        assert!(matches!(err, ConfigError::Invalid { name: "BFF_ISSUER", .. }));
        for ok in ["http://localhost:9000", "http://127.0.0.1:9000", "http://[::1]:9000"] {
            load(&[("BFF_ISSUER", ok)]).expect(ok);
        }
    }

    #[test]
    fn loopback_public_url_switches_to_dev_cookies() {
        let config = load(&[("BFF_PUBLIC_URL", "http://localhost:8080/")]).expect("valid");
        assert!(config.is_loopback_dev());
        assert_eq!(config.public_origin, "http://localhost:8080");
    }

    #[test]
    fn public_url_and_allowed_origins_must_be_origins() {
        assert!(load(&[("BFF_PUBLIC_URL", "https://app.example.com/app")]).is_err());
        assert!(load(&[("BFF_ALLOWED_ORIGINS", "https://a.example.com/x")]).is_err());
        let config = load(&[(
            "BFF_ALLOWED_ORIGINS",
            "https://a.example.com, https://b.example.com:8443",
        )])
        .expect("ok");
        assert_eq!(
            config.allowed_origins,
            ["https://a.example.com", "https://b.example.com:8443"]
        );
        assert!(config.is_known_origin("https://app.example.com"));
        assert!(config.is_allowed_cors_origin("https://b.example.com:8443"));
        assert!(!config.is_known_origin("https://evil.example.com"));
    }

    #[test]
    fn auth_params_are_form_decoded_and_may_not_override_protocol_parameters() {
        let config = load(&[("BFF_AUTH_PARAMS", "audience=https%3A%2F%2Fapi.example.com&prompt=login")]).expect("ok");
        assert_eq!(
            config.auth_params,
            [
                ("audience".into(), "https://api.example.com".into()),
                ("prompt".into(), "login".into())
            ]
        );
        for bad in ["state=x", "code_challenge_method=plain", "nonce=1", "=x"] {
            assert!(load(&[("BFF_AUTH_PARAMS", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_must_include_openid_and_lifetimes_must_be_positive() {
        assert!(load(&[("BFF_SCOPES", "profile email")]).is_err());
        assert!(load(&[("BFF_SESSION_IDLE_SECS", "0")]).is_err());
        assert!(load(&[("BFF_SESSION_MAX_SECS", "soon")]).is_err());
        assert!(load(&[("BFF_TABLE", "a b")]).is_err());
    }

    #[test]
    fn upstream_base_path_always_ends_with_a_slash() {
        let config = load(&[("BFF_UPSTREAM_URL", "https://api.example.com/v1")]).expect("ok");
        let (route, _) = config.require_routes().expect("set").find("/api/x").expect("catch-all");
        assert_eq!(route.upstream.as_str(), "https://api.example.com/v1/");
        assert!(load(&[("BFF_UPSTREAM_URL", "https://api.example.com/v1?x=1")]).is_err());
        assert_eq!(
            load(&[]).expect("ok").require_routes().expect_err("unset"),
            ConfigError::Missing("BFF_UPSTREAM_URL (or BFF_APIS)")
        );
        let apis = r#"[{"path": "/api/a", "upstream": "https://a.example.com"}]"#;
        assert!(load(&[("BFF_APIS", apis)]).expect("ok").require_routes().is_ok());
        assert!(load(&[("BFF_APIS", apis), ("BFF_UPSTREAM_URL", "https://b.example.com")]).is_err());
    }

    #[test]
    fn logout_url_templates_accept_only_known_placeholders() {
        let auth0 = "https://tenant.auth0.com/v2/logout?client_id={client_id}&returnTo={post_logout_redirect_uri}";
        assert_eq!(
            load(&[("BFF_LOGOUT_URL", auth0)]).expect("ok").logout_url.as_deref(),
            Some(auth0)
        );
        assert!(load(&[("BFF_LOGOUT_URL", "https://x.example.com/logout?u={user}")]).is_err());
        assert!(load(&[("BFF_LOGOUT_URL", "http://x.example.com/logout")]).is_err());
    }

    #[test]
    fn post_logout_redirect_must_stay_on_known_origins() {
        assert_eq!(load(&[]).expect("ok").post_logout_url(), "https://app.example.com/");
        let set = load(&[("BFF_POST_LOGOUT_REDIRECT_URL", "https://app.example.com/bye")]).expect("ok");
        assert_eq!(set.post_logout_url(), "https://app.example.com/bye");
        for bad in ["https://evil.example.com/", "/bye", "//evil.example.com"] {
            assert!(load(&[("BFF_POST_LOGOUT_REDIRECT_URL", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_keys_are_validated_at_start_up_without_being_echoed() {
        let good = format!(
            "k1:{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [3u8; 32])
        );
        assert!(
            load(&[("BFF_TOKEN_KEYS", &good)])
                .expect("ok")
                .require_token_keys()
                .is_ok()
        );
        let err = load(&[("BFF_TOKEN_KEYS", "k1:c2hvcnQ=")]).expect_err("short key");
        assert!(err.to_string().contains("BFF_TOKEN_KEYS") && !err.to_string().contains("c2hvcnQ"));
        assert_eq!(
            load(&[]).expect("ok").require_token_keys().expect_err("unset"),
            ConfigError::Missing("BFF_TOKEN_KEYS")
        );
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let err = load(&[("BFF_ISSUER", "ftp://s3cret@x")]).expect_err("bad scheme");
        assert!(!err.to_string().contains("s3cret"));
    }
}
