//! Configuration from the environment, parsed and validated once at start-up.
//!
//! A missing or malformed variable is a [`ConfigError`] naming it, so a bad deployment
//! fails at cold start with one clear line instead of answering 500 later. This module
//! never logs a value: the client secret passes through it.

use std::time::Duration;

use url::Url;

use std::sync::Arc;

use crate::domain::login_options::{LOGIN_OPTION_NAMES, LoginOptions};
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
/// Longest provider-session check interval accepted (`BFF_PROVIDER_SESSION_CHECK_SECS`):
/// a day; beyond it the session's own lifetimes or the token's expiry decide anyway.
pub const MAX_PROVIDER_SESSION_CHECK_SECS: i64 = 24 * 60 * 60;

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

/// Pushed authorization requests (RFC 9126), `BFF_PAR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParMode {
    /// `auto` (the default): pushed when discovery advertises the endpoint.
    Auto,
    /// `off`: never pushed.
    Off,
    /// `on`: always pushed; a provider without the endpoint is refused.
    On,
}

/// The security profile the BFF follows (`BFF_PROFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `default`: each option as set.
    Default,
    /// `fapi2`: the FAPI 2.0 Security Profile's client requirements (pushed requests,
    /// DPoP, `private_key_jwt`, RFC 9207 `iss`, PS256/ES256/EdDSA ID tokens).
    Fapi2,
}

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

/// When the BFF asks the provider's userinfo endpoint for the user's claims after login
/// (`BFF_USERINFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserinfoMode {
    /// When the ID token lacks the claims of a requested scope (`profile`, `email`, ...).
    Auto,
    /// After every login.
    Always,
    /// Never.
    Off,
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
    /// Extra authorize parameters (`audience`, `resource`, ...), in order; login options
    /// among them are in `login_defaults` instead.
    pub auth_params: Vec<(String, String)>,
    /// Login options (`prompt`, `acr_values`, ...) configured in `BFF_AUTH_PARAMS` for
    /// every login, validated as a front end's are; a front end's own win.
    pub login_defaults: LoginOptions,
    /// Pushed authorization requests (`BFF_PAR`).
    pub par: ParMode,
    /// DPoP-bound tokens (RFC 9449), `BFF_DPOP=on`: one key per session.
    pub dpop: bool,
    /// The security profile (`BFF_PROFILE`); `fapi2` has already set `par` and `dpop`.
    pub profile: Profile,
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
    /// When userinfo is fetched after login (`BFF_USERINFO`, `auto` by default).
    pub userinfo: UserinfoMode,
    /// Where a failed login sends the browser, with `error=<code>` added to the query,
    /// instead of the BFF's error page (`BFF_ERROR_URL`: a path on this origin or a URL
    /// on an allowed origin).
    pub error_url: Option<String>,
    /// Every how many seconds a session in use asks the provider, with the refresh grant,
    /// whether the user's grant still stands (`BFF_PROVIDER_SESSION_CHECK_SECS`); `None`
    /// when off (the default).
    pub provider_session_check_secs: Option<i64>,
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

        let mut auth_params = match get("BFF_AUTH_PARAMS") {
            Some(raw) => parse_auth_params(&raw)?,
            None => Vec::new(),
        };
        let login_options: Vec<(String, String)> = auth_params
            .iter()
            .filter(|(k, _)| LOGIN_OPTION_NAMES.contains(&k.as_str()))
            .cloned()
            .collect();
        let login_defaults = LoginOptions::from_query(&login_options).map_err(|e| invalid("BFF_AUTH_PARAMS", e))?;
        auth_params.retain(|(k, _)| !LOGIN_OPTION_NAMES.contains(&k.as_str()));

        let par = match get("BFF_PAR").as_deref() {
            None | Some("auto") => ParMode::Auto,
            Some("off") => ParMode::Off,
            Some("on") => ParMode::On,
            Some(_) => return Err(invalid("BFF_PAR", "must be `auto`, `off` or `on`")),
        };
        let dpop = match get("BFF_DPOP").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(_) => return Err(invalid("BFF_DPOP", "must be `off` or `on`")),
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

        let table = parse_table(&get)?;

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

        let (metrics, metrics_namespace) = parse_metrics(&get)?;

        let userinfo = match get("BFF_USERINFO").as_deref() {
            None | Some("auto") => UserinfoMode::Auto,
            Some("always") => UserinfoMode::Always,
            Some("off") => UserinfoMode::Off,
            Some(_) => return Err(invalid("BFF_USERINFO", "must be `auto`, `always` or `off`")),
        };

        let error_url = match get("BFF_ERROR_URL") {
            Some(raw) => Some(
                validate_return_to(Some(&raw), &public_origin, &allowed_origins)
                    .ok()
                    .filter(|url| !url.contains('#'))
                    .ok_or_else(|| {
                        invalid(
                            "BFF_ERROR_URL",
                            "must be a path on this origin (one leading /) or a URL on an allowed origin, \
                             without fragment",
                        )
                    })?,
            ),
            None => None,
        };

        let provider_session_check_secs = match get("BFF_PROVIDER_SESSION_CHECK_SECS") {
            None => None,
            Some(raw) => match raw.parse::<i64>() {
                Ok(0) => None,
                Ok(secs) if (1..=MAX_PROVIDER_SESSION_CHECK_SECS).contains(&secs) => Some(secs),
                _ => {
                    return Err(invalid(
                        "BFF_PROVIDER_SESSION_CHECK_SECS",
                        format!(
                            "must be 0 (off) or a whole number of seconds from 1 to {MAX_PROVIDER_SESSION_CHECK_SECS}"
                        ),
                    ));
                }
            },
        };

        let client_auth = parse_client_auth(&get)?;
        let profile = parse_profile(&get)?;
        let (par, dpop) = match profile {
            Profile::Default => (par, dpop),
            Profile::Fapi2 => fapi2_settings(&get, &client_auth)?,
        };
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
            login_defaults,
            par,
            dpop,
            profile,
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
            userinfo,
            error_url,
            provider_session_check_secs,
        })
    }

    /// Whether the FAPI 2.0 profile is on (`BFF_PROFILE=fapi2`).
    pub fn is_fapi2(&self) -> bool {
        self.profile == Profile::Fapi2
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

/// What `bff-admin` reads: the table, and the settings that interpret what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// DynamoDB table name (`BFF_TABLE`).
    pub table: String,
    /// Idle session lifetime in seconds (`BFF_SESSION_IDLE_SECS`), from which a
    /// session's last activity is told.
    pub session_idle_secs: i64,
    /// Whether the EMF line of what was ended is written (`BFF_METRICS`).
    pub metrics: bool,
    /// Its CloudWatch namespace (`BFF_METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

impl AdminConfig {
    /// Reads the variables through `lookup`, with the functions' defaults and checks.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (metrics, metrics_namespace) = parse_metrics(&get)?;
        Ok(Self {
            table: parse_table(&get)?,
            session_idle_secs: positive(&get, "BFF_SESSION_IDLE_SECS", DEFAULT_IDLE_SECS)?,
            metrics,
            metrics_namespace,
        })
    }
}

/// The DynamoDB table `lookup` names (`BFF_TABLE`), checked as the configuration checks
/// it; readable before the rest of the configuration, whose secrets may still be on the way.
pub fn table_name(lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    parse_table(&|name: &'static str| lookup(name).filter(|v| !v.trim().is_empty()))
}

fn parse_table(get: &impl Fn(&'static str) -> Option<String>) -> Result<String, ConfigError> {
    let table = get("BFF_TABLE").unwrap_or_else(|| "bff".to_owned());
    if !(3..=255).contains(&table.len()) || !table.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(invalid(
            "BFF_TABLE",
            "must be a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)",
        ));
    }
    Ok(table)
}

/// `BFF_METRICS` (on or off) and `BFF_METRICS_NAMESPACE`.
fn parse_metrics(get: &impl Fn(&'static str) -> Option<String>) -> Result<(bool, String), ConfigError> {
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
    Ok((metrics, metrics_namespace))
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

/// `BFF_PROFILE`: `default` (when unset) or `fapi2`.
fn parse_profile(get: &impl Fn(&'static str) -> Option<String>) -> Result<Profile, ConfigError> {
    match get("BFF_PROFILE").as_deref() {
        None | Some("default") => Ok(Profile::Default),
        Some("fapi2") => Ok(Profile::Fapi2),
        Some(_) => Err(invalid("BFF_PROFILE", "must be `default` or `fapi2`")),
    }
}

/// What `BFF_PROFILE=fapi2` makes of `BFF_PAR` and `BFF_DPOP` (both on), refusing an
/// explicit setting that contradicts the profile, and a client without `private_key_jwt`
/// (a client secret alone is not enough), with a line naming both variables.
fn fapi2_settings(
    get: &impl Fn(&'static str) -> Option<String>,
    client_auth: &ClientAuthConfig,
) -> Result<(ParMode, bool), ConfigError> {
    let contradiction = |name: &str, value: &str| invalid("BFF_PROFILE", format!("fapi2 contradicts {name}={value}"));
    if get("BFF_PAR").as_deref() == Some("off") {
        return Err(contradiction("BFF_PAR", "off"));
    }
    if get("BFF_DPOP").as_deref() == Some("off") {
        return Err(contradiction("BFF_DPOP", "off"));
    }
    if let Some(method) = get("BFF_CLIENT_AUTH").filter(|_| !client_auth.is_private_key_jwt()) {
        return Err(contradiction("BFF_CLIENT_AUTH", &method));
    }
    if !client_auth.is_private_key_jwt() {
        return Err(invalid(
            "BFF_PROFILE",
            "fapi2 requires BFF_CLIENT_AUTH=private_key_jwt with a client key (a client secret alone is refused)",
        ));
    }
    Ok((ParMode::On, true))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_admin_reads_only_the_table_and_the_settings_that_interpret_it() {
        let admin = |vars: &[(&str, &str)]| {
            let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            AdminConfig::from_lookup(|name| vars.get(name).cloned())
        };
        assert_eq!(
            admin(&[]).expect("defaults"),
            AdminConfig {
                table: "bff".into(),
                session_idle_secs: DEFAULT_IDLE_SECS,
                metrics: true,
                metrics_namespace: "BFF".into(),
            }
        );
        let set = admin(&[
            ("BFF_TABLE", "prod-Table-1"),
            ("BFF_SESSION_IDLE_SECS", "3600"),
            ("BFF_METRICS_NAMESPACE", "BFF/prod"),
        ])
        .expect("valid");
        assert_eq!((set.table.as_str(), set.session_idle_secs), ("prod-Table-1", 3600));
        assert_eq!(set.metrics_namespace, "BFF/prod");
        assert!(!admin(&[("BFF_METRICS", "off")]).expect("off").metrics);
        for bad in [
            ("BFF_TABLE", "a b"),
            ("BFF_SESSION_IDLE_SECS", "0"),
            ("BFF_METRICS_NAMESPACE", "AWS/x"),
        ] {
            assert!(admin(&[bad]).is_err(), "{bad:?}");
        }
    }

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
    fn userinfo_is_auto_by_default_and_a_bad_value_is_named() {
        assert_eq!(load(&[]).expect("valid").userinfo, UserinfoMode::Auto);
        for (value, mode) in [
            ("auto", UserinfoMode::Auto),
            ("always", UserinfoMode::Always),
            ("off", UserinfoMode::Off),
        ] {
            assert_eq!(load(&[("BFF_USERINFO", value)]).expect(value).userinfo, mode);
        }
        for bad in ["on", "yes", "ALWAYS"] {
            let err = load(&[("BFF_USERINFO", bad)]).expect_err(bad);
            assert!(err.to_string().starts_with("BFF_USERINFO is invalid"), "{err}");
        }
    }

    #[test]
    fn the_error_url_stays_on_known_origins() {
        assert_eq!(load(&[]).expect("valid").error_url, None);
        for ok in ["/login-failed", "/app?x=1", "https://app.example.com/oops"] {
            assert_eq!(load(&[("BFF_ERROR_URL", ok)]).expect(ok).error_url.as_deref(), Some(ok));
        }
        for bad in [
            "//evil.example.com/",
            "https://evil.example.com/",
            "javascript:alert(1)",
            "login-failed",
            "/oops#x",
        ] {
            let err = load(&[("BFF_ERROR_URL", bad)]).expect_err(bad);
            assert!(err.to_string().starts_with("BFF_ERROR_URL is invalid"), "{err}");
            assert!(!err.to_string().contains("evil"), "the value is not echoed");
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
    fn fapi2_profile_turns_on_par_and_dpop_and_requires_a_client_key() {
        let pem = crate::platform::signing::tests::RSA_PKCS8;
        let key = [("BFF_CLIENT_AUTH", "private_key_jwt"), ("BFF_CLIENT_KEY", pem)];
        let default = load(&key).expect("default");
        assert_eq!(
            (default.profile, default.par, default.dpop),
            (Profile::Default, ParMode::Auto, false)
        );
        let fapi2 = load(&[key[0], key[1], ("BFF_PROFILE", "fapi2")]).expect("fapi2");
        assert_eq!(
            (fapi2.profile, fapi2.par, fapi2.dpop),
            (Profile::Fapi2, ParMode::On, true)
        );
        assert!(fapi2.is_fapi2());
        assert_eq!(fapi2.client_secret, None);
        // Settings that agree with the profile are fine.
        load(&[
            key[0],
            key[1],
            ("BFF_PROFILE", "fapi2"),
            ("BFF_PAR", "on"),
            ("BFF_DPOP", "on"),
        ])
        .expect("agrees");

        let refused = |vars: &[(&str, &str)], other: &str| {
            let line = load(vars).expect_err(other).to_string();
            assert!(line.contains("BFF_PROFILE") && line.contains(other), "{line}");
            assert!(!line.contains('\n'), "{line}");
        };
        refused(
            &[key[0], key[1], ("BFF_PROFILE", "fapi2"), ("BFF_PAR", "off")],
            "BFF_PAR",
        );
        refused(
            &[key[0], key[1], ("BFF_PROFILE", "fapi2"), ("BFF_DPOP", "off")],
            "BFF_DPOP",
        );
        refused(
            &[("BFF_PROFILE", "fapi2"), ("BFF_CLIENT_AUTH", "client_secret_basic")],
            "BFF_CLIENT_AUTH",
        );
        // The base configuration has a client secret and no key: a secret alone is refused.
        refused(&[("BFF_PROFILE", "fapi2")], "BFF_CLIENT_AUTH");
        let bad = load(&[("BFF_PROFILE", "fapi3")]).expect_err("unknown profile");
        assert!(matches!(
            bad,
            ConfigError::Invalid {
                name: "BFF_PROFILE",
                ..
            }
        ));
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
            [("audience".into(), "https://api.example.com".into())]
        );
        assert_eq!(config.login_defaults.prompt.as_deref(), Some("login"));
        for bad in [
            "state=x",
            "code_challenge_method=plain",
            "nonce=1",
            "=x",
            "prompt=admin",
            "max_age=soon",
            "prompt=login&prompt=none",
        ] {
            assert!(load(&[("BFF_AUTH_PARAMS", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn par_is_auto_by_default_and_its_bad_values_stop_start_up() {
        assert_eq!(load(&[]).expect("default").par, ParMode::Auto);
        assert_eq!(load(&[("BFF_PAR", "off")]).expect("off").par, ParMode::Off);
        assert_eq!(load(&[("BFF_PAR", "on")]).expect("on").par, ParMode::On);
        for bad in ["yes", "true", "ON", "required"] {
            let e = load(&[("BFF_PAR", bad)]).expect_err(bad);
            assert!(e.to_string().starts_with("BFF_PAR is invalid"), "{e}");
        }
        assert!(!load(&[]).expect("default").dpop);
        assert!(load(&[("BFF_DPOP", "on")]).expect("on").dpop);
        assert!(!load(&[("BFF_DPOP", "off")]).expect("off").dpop);
        for bad in ["On", "true", "1", "yes"] {
            let e = load(&[("BFF_DPOP", bad)]).expect_err(bad);
            assert!(e.to_string().starts_with("BFF_DPOP is invalid"), "{e}");
        }
    }

    #[test]
    fn the_provider_session_check_is_off_by_default_and_its_bad_values_stop_start_up() {
        assert_eq!(load(&[]).expect("default").provider_session_check_secs, None);
        let check = |raw| load(&[("BFF_PROVIDER_SESSION_CHECK_SECS", raw)]).map(|c| c.provider_session_check_secs);
        assert_eq!(check("0"), Ok(None), "0 is off");
        assert_eq!(check("1"), Ok(Some(1)));
        assert_eq!(check("300"), Ok(Some(300)));
        assert_eq!(check("86400"), Ok(Some(86400)));
        for bad in ["-1", "86401", "5m", "1.5", "on"] {
            let e = check(bad).expect_err(bad);
            assert!(
                e.to_string().starts_with("BFF_PROVIDER_SESSION_CHECK_SECS is invalid"),
                "{e}"
            );
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
