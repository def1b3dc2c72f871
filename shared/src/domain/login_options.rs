//! What a front end may ask of a login besides `returnTo`: `prompt`, `login_hint`,
//! `max_age`, `acr_values`, `ui_locales` and `organization` (Auth0), each validated
//! (known values, length limits, no control characters) before it reaches the provider;
//! and the checks the ID token must then pass (OIDC Core 3.1.2.1 and 3.1.3.7: `auth_time`
//! within `max_age`, `acr` among the requested values).
//!
//! Any other parameter is refused: a front end cannot smuggle `redirect_uri`, `scope` or
//! `response_mode` into the authorization request. Pure rules, no I/O.

use serde::{Deserialize, Serialize};

/// Query parameters of `/auth/login` that are login options.
pub const LOGIN_OPTION_NAMES: &[&str] = &[
    "prompt",
    "login_hint",
    "max_age",
    "acr_values",
    "ui_locales",
    "organization",
];

/// `prompt` values a login may ask for (OIDC Core 3.1.2.1, Initiating User Registration).
pub const PROMPT_VALUES: &[&str] = &["none", "login", "consent", "select_account", "create"];

/// Provider errors that end a silent login (`prompt=none`) by returning the browser to
/// the application with the code, instead of to an error page (OIDC Core 3.1.2.6).
pub const SILENT_LOGIN_ERRORS: &[&str] = &["login_required", "consent_required", "interaction_required"];

/// Clock skew tolerated when comparing `auth_time` with `max_age`: small, as `max_age`
/// asks for a recent authentication.
pub const AUTH_TIME_SKEW_SECS: i64 = 60;

/// Largest `max_age` accepted (about 68 years: any larger is no limit at all).
const MAX_AGE_LIMIT: u64 = i32::MAX as u64;
const LOGIN_HINT_MAX_CHARS: usize = 256;
const ACR_VALUES_MAX_LEN: usize = 512;
const ACR_VALUES_MAX_COUNT: usize = 10;
const UI_LOCALES_MAX_LEN: usize = 128;
const ORGANIZATION_MAX_LEN: usize = 128;

/// A login option that is not acceptable; the text names the parameter, never repeats
/// its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLoginOption(pub String);

/// The validated login options, in the form they are sent to the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginOptions {
    /// `prompt`: space-separated known values; `none` alone.
    pub prompt: Option<String>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// `max_age` in seconds.
    pub max_age: Option<u64>,
    /// `acr_values`, in order.
    pub acr_values: Option<Vec<String>>,
    /// `ui_locales`: space-separated BCP 47 tags.
    pub ui_locales: Option<String>,
    /// `organization` (Auth0 Organizations): an id or a name.
    pub organization: Option<String>,
}

impl LoginOptions {
    /// The options read from `/auth/login`'s query, where only `returnTo` and the options
    /// may appear, each at most once. `returnTo` itself is validated elsewhere.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, InvalidLoginOption> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if name != "returnTo" && !LOGIN_OPTION_NAMES.contains(&name.as_str()) {
                return Err(InvalidLoginOption(format!("unknown parameter `{}`", shown_name(name))));
            }
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(InvalidLoginOption(format!("`{name}` is given more than once")));
            }
        }
        let mut options = Self::default();
        for (name, value) in pairs.iter().filter(|(name, _)| name != "returnTo") {
            options.set(name, value)?;
        }
        Ok(options)
    }

    /// Validates `value` and sets option `name` (one of [`LOGIN_OPTION_NAMES`]).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), InvalidLoginOption> {
        if value.is_empty() {
            return Err(invalid(name, "is empty"));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(name, "contains a control character"));
        }
        match name {
            "prompt" => self.prompt = Some(parse_prompt(value)?),
            "login_hint" => {
                if value.chars().count() > LOGIN_HINT_MAX_CHARS {
                    return Err(invalid(
                        name,
                        format!("is longer than {LOGIN_HINT_MAX_CHARS} characters"),
                    ));
                }
                self.login_hint = Some(value.to_owned());
            }
            "max_age" => {
                let seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s <= MAX_AGE_LIMIT && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| invalid(name, "must be a whole number of seconds"))?;
                self.max_age = Some(seconds);
            }
            "acr_values" => self.acr_values = Some(parse_acr_values(value)?),
            "ui_locales" => {
                let tag = |t: &str| {
                    !t.is_empty() && t.len() <= 35 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                };
                if value.len() > UI_LOCALES_MAX_LEN || !value.split(' ').all(tag) {
                    return Err(invalid(name, "must be space-separated language tags"));
                }
                self.ui_locales = Some(value.to_owned());
            }
            "organization" => {
                let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-.".contains(&b);
                if value.len() > ORGANIZATION_MAX_LEN || !value.bytes().all(allowed) {
                    return Err(invalid(
                        name,
                        format!("must be at most {ORGANIZATION_MAX_LEN} of a-z A-Z 0-9 _ - ."),
                    ));
                }
                self.organization = Some(value.to_owned());
            }
            _ => return Err(InvalidLoginOption(format!("unknown parameter `{}`", shown_name(name)))),
        }
        Ok(())
    }

    /// Whether this is a silent login (`prompt=none`).
    pub fn is_silent(&self) -> bool {
        self.prompt.as_deref() == Some("none")
    }

    /// The options as authorization request parameters.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        let mut push = |name, value: Option<String>| {
            if let Some(value) = value {
                params.push((name, value));
            }
        };
        push("prompt", self.prompt.clone());
        push("login_hint", self.login_hint.clone());
        push("max_age", self.max_age.map(|s| s.to_string()));
        push("acr_values", self.acr_values.as_ref().map(|v| v.join(" ")));
        push("ui_locales", self.ui_locales.clone());
        push("organization", self.organization.clone());
        params
    }

    /// Options set here win over `defaults` (those configured for every login).
    pub fn or(mut self, defaults: &Self) -> Self {
        self.prompt = self.prompt.or_else(|| defaults.prompt.clone());
        self.login_hint = self.login_hint.or_else(|| defaults.login_hint.clone());
        self.max_age = self.max_age.or(defaults.max_age);
        self.acr_values = self.acr_values.or_else(|| defaults.acr_values.clone());
        self.ui_locales = self.ui_locales.or_else(|| defaults.ui_locales.clone());
        self.organization = self.organization.or_else(|| defaults.organization.clone());
        self
    }

    /// What the ID token of this login must show.
    pub fn requirements(&self) -> AuthRequirements {
        AuthRequirements {
            max_age: self.max_age,
            acr_values: self.acr_values.clone(),
        }
    }
}

fn parse_prompt(value: &str) -> Result<String, InvalidLoginOption> {
    let values: Vec<&str> = value.split(' ').collect();
    if let Some(unknown) = values.iter().find(|v| !PROMPT_VALUES.contains(v)) {
        return Err(invalid(
            "prompt",
            if unknown.is_empty() {
                "has an empty value".to_owned()
            } else {
                format!("must be among {}", PROMPT_VALUES.join(", "))
            },
        ));
    }
    if values.len() > 1 && values.contains(&"none") {
        return Err(invalid("prompt", "`none` cannot be combined with other values"));
    }
    if values.iter().enumerate().any(|(i, v)| values[..i].contains(v)) {
        return Err(invalid("prompt", "repeats a value"));
    }
    Ok(value.to_owned())
}

fn parse_acr_values(value: &str) -> Result<Vec<String>, InvalidLoginOption> {
    // Visible ASCII without quote or backslash: URNs, URLs and short names like `phr`.
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    let values: Vec<&str> = value.split(' ').collect();
    if value.len() > ACR_VALUES_MAX_LEN || values.len() > ACR_VALUES_MAX_COUNT || !values.iter().all(|t| token(t)) {
        return Err(invalid(
            "acr_values",
            format!(
                "must be at most {ACR_VALUES_MAX_COUNT} space-separated values, {ACR_VALUES_MAX_LEN} characters in all"
            ),
        ));
    }
    Ok(values.into_iter().map(str::to_owned).collect())
}

fn invalid(name: &str, reason: impl std::fmt::Display) -> InvalidLoginOption {
    InvalidLoginOption(format!("`{name}` {reason}"))
}

/// A parameter name as it may appear in an error description: short and printable.
fn shown_name(name: &str) -> String {
    if name.len() <= 40 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        name.to_owned()
    } else {
        "(unprintable)".to_owned()
    }
}

/// What a login asked of the authentication, kept in its transaction and checked in the
/// ID token (OIDC Core 3.1.3.7 steps 11-13).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequirements {
    /// The `max_age` sent: `auth_time` must be present and recent enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// The `acr_values` sent: `acr` must be one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<Vec<String>>,
}

/// Why an ID token does not meet what the login asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnmetRequirement {
    /// `max_age` was asked and the token has no numeric `auth_time`.
    #[error("the ID token has no auth_time though max_age was requested")]
    NoAuthTime,
    /// The authentication is older than `max_age` allows.
    #[error("the authentication is older than max_age allows")]
    TooOld,
    /// `acr_values` were asked and `acr` is missing or none of them.
    #[error("the authentication context (acr) is not one of those requested")]
    Acr,
}

impl AuthRequirements {
    /// Checks the ID token's `claims` at `now` (epoch seconds), allowing
    /// [`AUTH_TIME_SKEW_SECS`] of clock skew.
    pub fn check(&self, claims: &serde_json::Map<String, serde_json::Value>, now: i64) -> Result<(), UnmetRequirement> {
        if let Some(max_age) = self.max_age {
            let auth_time = claims
                .get("auth_time")
                .and_then(serde_json::Value::as_i64)
                .ok_or(UnmetRequirement::NoAuthTime)?;
            let oldest = now
                .saturating_sub(i64::try_from(max_age).unwrap_or(i64::MAX))
                .saturating_sub(AUTH_TIME_SKEW_SECS);
            if auth_time < oldest {
                return Err(UnmetRequirement::TooOld);
            }
        }
        if let Some(wanted) = &self.acr_values {
            let acr = claims.get("acr").and_then(serde_json::Value::as_str);
            if !acr.is_some_and(|acr| wanted.iter().any(|w| w == acr)) {
                return Err(UnmetRequirement::Acr);
            }
        }
        Ok(())
    }
}

/// `return_to` with `name=value` added to its query, before any fragment; `value` must
/// need no encoding (the silent-login error codes).
pub fn with_query_param(return_to: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match return_to.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (return_to, None),
    };
    let separator = match base.split_once('?') {
        None => "?",
        Some((_, "")) => "",
        Some((_, query)) if query.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{separator}{name}={value}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Whether logins with `scopes` and the configured `prompt` risk getting no offline
/// refresh token: OIDC Core §11 lets a provider ignore `offline_access` unless `prompt`
/// contains `consent` (LemonLDAP::NG and `oidc-provider` do). True when the scopes ask for
/// `offline_access`, the configured `prompt` lacks `consent`, and the provider's
/// `prompt_values_supported` lists `consent`. A provider that publishes nothing is not
/// suspected on that alone: few publish it, and a warning every default set-up sees is
/// noise; a login that then gets no refresh token at all is warned of instead.
pub fn offline_access_may_be_ignored(
    scopes: &[String],
    prompt: Option<&str>,
    prompt_values_supported: Option<&[String]>,
) -> bool {
    scopes.iter().any(|s| s == "offline_access")
        && !prompt.is_some_and(|p| p.split(' ').any(|v| v == "consent"))
        && prompt_values_supported.is_some_and(|values| values.iter().any(|v| v == "consent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<LoginOptions, InvalidLoginOption> {
        LoginOptions::from_query(&query(pairs))
    }

    #[test]
    fn known_options_are_accepted_and_sent_as_given() {
        let options = parse(&[
            ("returnTo", "/x"),
            ("prompt", "login consent"),
            ("login_hint", "alice@example.com"),
            ("max_age", "300"),
            ("acr_values", "urn:mace:incommon:iap:silver phr"),
            ("ui_locales", "de-CH en"),
            ("organization", "org_W2nWx8SGaUe3kGlb"),
        ])
        .expect("valid");
        assert_eq!(
            options.params(),
            [
                ("prompt", "login consent".to_owned()),
                ("login_hint", "alice@example.com".to_owned()),
                ("max_age", "300".to_owned()),
                ("acr_values", "urn:mace:incommon:iap:silver phr".to_owned()),
                ("ui_locales", "de-CH en".to_owned()),
                ("organization", "org_W2nWx8SGaUe3kGlb".to_owned()),
            ]
        );
        for prompt in PROMPT_VALUES {
            assert!(parse(&[("prompt", prompt)]).is_ok(), "{prompt}");
        }
        assert!(parse(&[("prompt", "none")]).expect("none").is_silent());
        assert_eq!(parse(&[("returnTo", "/")]).expect("none"), LoginOptions::default());
    }

    #[test]
    fn unknown_repeated_and_malformed_options_are_refused() {
        let refused: &[&[(&str, &str)]] = &[
            &[("redirect_uri", "https://evil.example/cb")],
            &[("scope", "openid admin")],
            &[("response_mode", "form_post")],
            &[("request_uri", "urn:x")],
            &[("Prompt", "login")],
            &[("prompt", "login"), ("prompt", "none")],
            &[("returnTo", "/a"), ("returnTo", "/b")],
            &[("prompt", "")],
            &[("prompt", "none login")],
            &[("prompt", "login login")],
            &[("prompt", "login  consent")],
            &[("prompt", "admin")],
            &[("prompt", "NONE")],
            &[("max_age", "-1")],
            &[("max_age", "+5")],
            &[("max_age", "1e3")],
            &[("max_age", "99999999999")],
            &[("max_age", " 5")],
            &[("login_hint", "alice\u{0}")],
            &[("login_hint", "alice\r\nX-Injected: 1")],
            &[("login_hint", "a\u{7f}")],
            &[("acr_values", "gold\tsilver")],
            &[("acr_values", "gold \"silver\"")],
            &[("acr_values", "a b c d e f g h i j k")],
            &[("ui_locales", "en_US")],
            &[("ui_locales", "en,de")],
            &[("organization", "org 1")],
            &[("organization", "org/../admin")],
        ];
        for pairs in refused {
            assert!(parse(pairs).is_err(), "{pairs:?} accepted");
        }
        let long = "x".repeat(LOGIN_HINT_MAX_CHARS + 1);
        assert!(parse(&[("login_hint", &long)]).is_err());
        assert!(parse(&[("login_hint", &long[1..])]).is_ok());
        assert!(parse(&[("organization", &"o".repeat(ORGANIZATION_MAX_LEN + 1))]).is_err());
        assert!(parse(&[("acr_values", &"a".repeat(ACR_VALUES_MAX_LEN + 1))]).is_err());
        assert!(parse(&[("ui_locales", &"en ".repeat(50))]).is_err());
    }

    #[test]
    fn refusals_name_the_parameter_not_its_value() {
        let e = parse(&[("login_hint", "secret\u{1}")]).expect_err("control");
        assert!(e.0.contains("login_hint") && !e.0.contains("secret"), "{e}");
        let e = parse(&[("<script>", "x")]).expect_err("unknown");
        assert!(!e.0.contains('<'), "{e}");
        let e = parse(&[("audience", "x")]).expect_err("unknown");
        assert!(e.0.contains("audience"), "{e}");
    }

    #[test]
    fn request_options_win_over_configured_defaults() {
        let defaults = parse(&[("organization", "org_default"), ("ui_locales", "fr")]).expect("defaults");
        let merged = parse(&[("organization", "org_other")]).expect("request").or(&defaults);
        assert_eq!(merged.organization.as_deref(), Some("org_other"));
        assert_eq!(merged.ui_locales.as_deref(), Some("fr"));
    }

    fn claims(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().expect("object").clone()
    }

    #[test]
    fn max_age_needs_a_recent_auth_time() {
        let now = 1_000_000;
        let asked = AuthRequirements {
            max_age: Some(300),
            acr_values: None,
        };
        let fresh = claims(serde_json::json!({"auth_time": now - 300 - AUTH_TIME_SKEW_SECS}));
        assert_eq!(asked.check(&fresh, now), Ok(()));
        let old = claims(serde_json::json!({"auth_time": now - 301 - AUTH_TIME_SKEW_SECS}));
        assert_eq!(asked.check(&old, now), Err(UnmetRequirement::TooOld));
        assert_eq!(
            asked.check(&claims(serde_json::json!({})), now),
            Err(UnmetRequirement::NoAuthTime)
        );
        let text = claims(serde_json::json!({"auth_time": "999999"}));
        assert_eq!(asked.check(&text, now), Err(UnmetRequirement::NoAuthTime));
        let zero = AuthRequirements {
            max_age: Some(0),
            acr_values: None,
        };
        assert_eq!(
            zero.check(&claims(serde_json::json!({"auth_time": now - 5})), now),
            Ok(())
        );
        // Nothing asked, nothing checked.
        assert_eq!(AuthRequirements::default().check(&old, now), Ok(()));
    }

    #[test]
    fn acr_must_be_one_of_those_asked() {
        let asked = AuthRequirements {
            max_age: None,
            acr_values: Some(vec!["urn:loa:2".into(), "urn:loa:3".into()]),
        };
        assert_eq!(asked.check(&claims(serde_json::json!({"acr": "urn:loa:3"})), 0), Ok(()));
        for refused in [
            serde_json::json!({"acr": "urn:loa:1"}),
            serde_json::json!({}),
            serde_json::json!({"acr": ["urn:loa:2"]}),
            serde_json::json!({"acr": "URN:LOA:2"}),
        ] {
            assert_eq!(
                asked.check(&claims(refused.clone()), 0),
                Err(UnmetRequirement::Acr),
                "{refused}"
            );
        }
    }

    #[test]
    fn error_codes_are_added_to_the_return_query() {
        for (return_to, expected) in [
            ("/", "/?error=login_required"),
            ("/x", "/x?error=login_required"),
            ("/x?a=1", "/x?a=1&error=login_required"),
            ("/x?", "/x?error=login_required"),
            ("/x?a=1&", "/x?a=1&error=login_required"),
            ("/x#top", "/x?error=login_required#top"),
            ("/x?a=1#t?b", "/x?a=1&error=login_required#t?b"),
            (
                "http://localhost:5173/app?tab=2",
                "http://localhost:5173/app?tab=2&error=login_required",
            ),
        ] {
            assert_eq!(
                with_query_param(return_to, "error", "login_required"),
                expected,
                "{return_to}"
            );
        }
    }

    #[test]
    fn offline_access_without_prompt_consent_may_be_ignored() {
        let scopes = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let with = scopes("openid profile offline_access");
        let consent = vec!["none".to_owned(), "login".to_owned(), "consent".to_owned()];
        let no_consent = vec!["none".to_owned(), "login".to_owned()];
        assert!(!offline_access_may_be_ignored(&with, None, None), "provider silent");
        assert!(offline_access_may_be_ignored(&with, None, Some(&consent)));
        assert!(offline_access_may_be_ignored(&with, Some("login"), Some(&consent)));
        assert!(!offline_access_may_be_ignored(
            &with,
            Some("login consent"),
            Some(&consent)
        ));
        assert!(!offline_access_may_be_ignored(&with, Some("consent"), None));
        assert!(
            !offline_access_may_be_ignored(&with, None, Some(&no_consent)),
            "consent cannot be asked for"
        );
        assert!(!offline_access_may_be_ignored(&scopes("openid profile"), None, None));
    }
}
