//! How the BFF authenticates itself to the provider: `BFF_CLIENT_AUTH` and, for
//! `private_key_jwt`, the key (`BFF_CLIENT_KEY`, its reference `BFF_CLIENT_KEY_ARN`, or
//! `BFF_CLIENT_KMS_KEY_ID`), its `kid` (`BFF_CLIENT_KEY_ID`) and the assertions' audience
//! (`BFF_CLIENT_ASSERTION_AUD`).
//!
//! A PEM key is parsed here, at start-up, so an unusable key stops the process with one
//! line naming the variable; a KMS key is only named here and read by
//! [`crate::platform::kms::KmsKey::connect`] before the process serves. No error names
//! the key itself.

use std::sync::Arc;

use super::{ConfigError, invalid};
use crate::platform::signing::{AssertionSigner, PemKey};

/// The variable naming a KMS key.
pub const KMS_KEY_VARIABLE: &str = "BFF_CLIENT_KMS_KEY_ID";

/// A client authentication method at the provider's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: id and secret in HTTP Basic.
    SecretBasic,
    /// `client_secret_post`: id and secret in the form body.
    SecretPost,
    /// `private_key_jwt` (RFC 7523): a signed client assertion, no secret.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The method's registered name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SecretBasic => "client_secret_basic",
            Self::SecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The `aud` of client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The token endpoint's URL (Okta, Entra ID, Keycloak), whatever endpoint is called.
    TokenEndpoint,
    /// The issuer identifier (Auth0, Keycloak, FAPI 2.0).
    Issuer,
}

/// The private key of `private_key_jwt`.
#[derive(Debug, Clone)]
pub enum ClientKey {
    /// A key that signs now (a PEM key, or a KMS key once connected).
    Ready(Arc<dyn AssertionSigner>),
    /// A KMS key not read yet (by key id, ARN or alias).
    Kms {
        /// What `BFF_CLIENT_KMS_KEY_ID` says.
        key_id: String,
    },
}

/// The client authentication settings.
#[derive(Debug, Clone)]
pub struct ClientAuthConfig {
    /// `BFF_CLIENT_AUTH`; `None` takes the method from discovery.
    pub method: Option<ClientAuthMethod>,
    /// The key, with `private_key_jwt` only.
    pub key: Option<ClientKey>,
    /// `BFF_CLIENT_KEY_ID`: the `kid`, else the key's thumbprint.
    pub kid: Option<String>,
    /// The assertions' `aud`.
    pub audience: AssertionAudience,
}

impl ClientAuthConfig {
    /// Whether the client authenticates with a key (no secret is ever sent).
    pub fn is_private_key_jwt(&self) -> bool {
        self.method == Some(ClientAuthMethod::PrivateKeyJwt)
    }

    /// The signing key, once it is ready.
    pub fn signer(&self) -> Option<&Arc<dyn AssertionSigner>> {
        match &self.key {
            Some(ClientKey::Ready(signer)) => Some(signer),
            _ => None,
        }
    }
}

/// The key variables alone (what the JWKS command needs): the key, if any, and its `kid`.
pub fn parse_client_key(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<(Option<ClientKey>, Option<String>), ConfigError> {
    let kid = match get("BFF_CLIENT_KEY_ID") {
        Some(kid) if kid.len() > 256 || !kid.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') => {
            return Err(invalid(
                "BFF_CLIENT_KEY_ID",
                "must be 1 to 256 visible ASCII characters without quotes or backslashes",
            ));
        }
        kid => kid,
    };
    // A key given by reference is named by its reference: that is what the operator set.
    let pem_name = if get("BFF_CLIENT_KEY_ARN").is_some() {
        "BFF_CLIENT_KEY_ARN"
    } else {
        "BFF_CLIENT_KEY"
    };
    let key = match (get("BFF_CLIENT_KEY"), get(KMS_KEY_VARIABLE)) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                KMS_KEY_VARIABLE,
                format!("set only one of {pem_name} and {KMS_KEY_VARIABLE}"),
            ));
        }
        (Some(pem), None) => {
            let key = PemKey::from_pem(&pem, kid.clone()).map_err(|e| invalid(pem_name, e))?;
            Some(ClientKey::Ready(Arc::new(key)))
        }
        (None, Some(key_id)) => {
            if key_id.len() > 2048 || key_id.chars().any(char::is_whitespace) {
                return Err(invalid(
                    KMS_KEY_VARIABLE,
                    "must be a KMS key id, key ARN, alias name or alias ARN",
                ));
            }
            Some(ClientKey::Kms { key_id })
        }
        (None, None) => None,
    };
    Ok((key, kid))
}

/// Reads the client authentication variables through `get`.
pub fn parse_client_auth(get: &impl Fn(&'static str) -> Option<String>) -> Result<ClientAuthConfig, ConfigError> {
    let method = match get("BFF_CLIENT_AUTH").as_deref() {
        None => None,
        Some("client_secret_basic") => Some(ClientAuthMethod::SecretBasic),
        Some("client_secret_post") => Some(ClientAuthMethod::SecretPost),
        Some("private_key_jwt") => Some(ClientAuthMethod::PrivateKeyJwt),
        Some(_) => {
            return Err(invalid(
                "BFF_CLIENT_AUTH",
                "must be client_secret_basic, client_secret_post or private_key_jwt",
            ));
        }
    };
    let audience = match get("BFF_CLIENT_ASSERTION_AUD").as_deref() {
        None | Some("token_endpoint") => AssertionAudience::TokenEndpoint,
        Some("issuer") => AssertionAudience::Issuer,
        Some(_) => return Err(invalid("BFF_CLIENT_ASSERTION_AUD", "must be token_endpoint or issuer")),
    };
    let (key, kid) = parse_client_key(get)?;
    let private_key_jwt = method == Some(ClientAuthMethod::PrivateKeyJwt);
    if private_key_jwt && key.is_none() {
        return Err(ConfigError::Missing(
            "BFF_CLIENT_KEY (or BFF_CLIENT_KEY_ARN, or BFF_CLIENT_KMS_KEY_ID, with BFF_CLIENT_AUTH=private_key_jwt)",
        ));
    }
    // A key nobody would use is a misconfiguration, not something to ignore.
    if !private_key_jwt && key.is_some() {
        return Err(invalid(
            "BFF_CLIENT_AUTH",
            "must be private_key_jwt when a client key (BFF_CLIENT_KEY, BFF_CLIENT_KEY_ARN or BFF_CLIENT_KMS_KEY_ID) is set",
        ));
    }
    Ok(ClientAuthConfig {
        method,
        key,
        kid,
        audience,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::platform::signing::tests::{P256_PKCS8, RSA_PKCS8};

    fn parse(vars: &[(&'static str, &str)]) -> Result<ClientAuthConfig, ConfigError> {
        let vars: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        parse_client_auth(&|name| vars.get(name).cloned())
    }

    #[test]
    fn without_settings_the_method_comes_from_discovery() {
        let config = parse(&[]).expect("valid");
        assert_eq!(config.method, None);
        assert!(config.key.is_none());
        assert_eq!(config.audience, AssertionAudience::TokenEndpoint);
    }

    #[test]
    fn private_key_jwt_takes_a_pem_key_with_its_thumbprint_or_the_configured_kid() {
        let config = parse(&[("BFF_CLIENT_AUTH", "private_key_jwt"), ("BFF_CLIENT_KEY", RSA_PKCS8)]).expect("valid");
        let signer = config.signer().expect("ready");
        assert_eq!(signer.kid(), signer.public_jwk().thumbprint());
        let config = parse(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_KEY", P256_PKCS8),
            ("BFF_CLIENT_KEY_ID", "bff-2026"),
            ("BFF_CLIENT_ASSERTION_AUD", "issuer"),
        ])
        .expect("valid");
        assert_eq!(config.signer().expect("ready").kid(), "bff-2026");
        assert_eq!(config.audience, AssertionAudience::Issuer);
        let kms = parse(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_KMS_KEY_ID", "alias/bff-client"),
        ])
        .expect("valid");
        assert!(matches!(kms.key, Some(ClientKey::Kms { ref key_id }) if key_id == "alias/bff-client"));
    }

    #[test]
    fn bad_settings_name_their_variable_and_never_the_key() {
        let cases: &[(&[(&'static str, &str)], &str)] = &[
            (&[("BFF_CLIENT_AUTH", "client_secret_jwt")], "BFF_CLIENT_AUTH"),
            (&[("BFF_CLIENT_AUTH", "private_key_jwt")], "BFF_CLIENT_KEY"),
            (&[("BFF_CLIENT_KEY", RSA_PKCS8)], "BFF_CLIENT_AUTH"),
            (
                &[
                    ("BFF_CLIENT_AUTH", "private_key_jwt"),
                    ("BFF_CLIENT_KEY", "MIIBOgIBAAJBAK"),
                ],
                "BFF_CLIENT_KEY is invalid",
            ),
            (
                &[
                    ("BFF_CLIENT_AUTH", "private_key_jwt"),
                    ("BFF_CLIENT_KEY", "MIIBOgIBAAJBAK"),
                    (
                        "BFF_CLIENT_KEY_ARN",
                        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k",
                    ),
                ],
                "BFF_CLIENT_KEY_ARN is invalid",
            ),
            (
                &[
                    ("BFF_CLIENT_AUTH", "private_key_jwt"),
                    ("BFF_CLIENT_KEY", RSA_PKCS8),
                    ("BFF_CLIENT_KMS_KEY_ID", "alias/x"),
                ],
                "BFF_CLIENT_KMS_KEY_ID",
            ),
            (
                &[("BFF_CLIENT_AUTH", "private_key_jwt"), ("BFF_CLIENT_KMS_KEY_ID", "a b")],
                "BFF_CLIENT_KMS_KEY_ID",
            ),
            (&[("BFF_CLIENT_KEY_ID", "a\"b")], "BFF_CLIENT_KEY_ID"),
            (&[("BFF_CLIENT_ASSERTION_AUD", "endpoint")], "BFF_CLIENT_ASSERTION_AUD"),
        ];
        for (vars, named) in cases {
            let err = parse(vars).expect_err(named).to_string();
            assert!(err.contains(named), "{err}");
            assert!(!err.contains("MII"), "{err}");
        }
    }
}
