//! Discovery: the provider's metadata, read once per process (or from the shared
//! document cache) and checked before use.

use std::sync::Arc;

use openidconnect::core::{CoreClient, CoreJsonWebKeySet};
use openidconnect::{AuthType, ClientId, IssuerUrl, RedirectUrl, TokenUrl};
use serde::Deserialize;
use url::Url;

use super::{Discovered, Oidc, OidcError, TokenClient};
use crate::platform::config::is_loopback_host;

/// The parts of the provider's discovery document the BFF uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    /// Must equal `BFF_ISSUER` exactly.
    pub issuer: String,
    /// Where the browser is sent to log in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// The provider's signing keys.
    pub jwks_uri: String,
    /// RP-Initiated Logout endpoint, when the provider has one.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 7009 revocation endpoint, when the provider has one.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Userinfo endpoint (OIDC Core §5.3), when the provider has one.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Client authentication methods the token endpoint accepts.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the provider adds `iss` to authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// PKCE methods, when advertised.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9126: where authorization requests are pushed, when the provider takes them.
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// RFC 9126: the provider accepts authorization requests only when pushed.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic (the default of RFC 6749 and OIDC).
    Basic,
    /// `client_secret_post`: credentials in the form body.
    Post,
}

impl ProviderMetadata {
    /// `client_secret_basic` unless the provider offers only `client_secret_post`.
    pub fn client_auth(&self) -> ClientAuth {
        match &self.token_endpoint_auth_methods_supported {
            Some(methods)
                if !methods.iter().any(|m| m == "client_secret_basic")
                    && methods.iter().any(|m| m == "client_secret_post") =>
            {
                ClientAuth::Post
            }
            _ => ClientAuth::Basic,
        }
    }
}

impl Oidc {
    /// The provider's metadata, discovered on first use and then cached. A failed
    /// discovery is not cached: the next request tries again.
    pub async fn metadata(&self) -> Result<&ProviderMetadata, OidcError> {
        Ok(&self.discovered().await?.metadata)
    }

    /// Whether the provider serves its discovery document now: a fresh fetch, never the
    /// cache (readiness must see an unreachable provider).
    pub async fn discovery_reachable(&self) -> Result<(), OidcError> {
        self.get(&discovery_url(&self.issuer)).await.map(|_| ())
    }

    pub(super) async fn discovered(&self) -> Result<&Arc<Discovered>, OidcError> {
        self.discovered
            .get_or_try_init(|| async {
                let metadata = self.discover().await?;
                let client = self.token_client(&metadata)?;
                Ok(Arc::new(Discovered { metadata, client }))
            })
            .await
    }

    async fn discover(&self) -> Result<ProviderMetadata, OidcError> {
        let url = discovery_url(&self.issuer);
        let body = self.document("discovery", &url, false).await.map_err(|e| match e {
            OidcError::Unreachable(cause) => OidcError::Discovery(cause),
            other => other,
        })?;
        let mut metadata: ProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Discovery(format!("not a discovery document: {e}")))?;
        if metadata.issuer != self.issuer {
            return Err(OidcError::Discovery(format!(
                "issuer `{}` does not equal the configured issuer `{}`",
                metadata.issuer, self.issuer
            )));
        }
        let loopback_issuer = Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.host().map(|h| is_loopback_host(&h)))
            .unwrap_or(false);
        for (name, endpoint) in [
            ("authorization_endpoint", &metadata.authorization_endpoint),
            ("token_endpoint", &metadata.token_endpoint),
            ("jwks_uri", &metadata.jwks_uri),
        ] {
            check_endpoint(name, endpoint, loopback_issuer)?;
        }
        // Optional endpoints that fail the same checks are never used: a `javascript:`
        // end-session URL never reaches the browser, and no secret or refresh token goes
        // to a plain-http revocation endpoint.
        for (name, endpoint) in [
            ("end_session_endpoint", &mut metadata.end_session_endpoint),
            ("revocation_endpoint", &mut metadata.revocation_endpoint),
            ("userinfo_endpoint", &mut metadata.userinfo_endpoint),
            (
                "pushed_authorization_request_endpoint",
                &mut metadata.pushed_authorization_request_endpoint,
            ),
        ] {
            if let Some(url) = endpoint.as_deref()
                && let Err(e) = check_endpoint(name, url, loopback_issuer)
            {
                tracing::warn!(error = %e, "discovery endpoint ignored");
                *endpoint = None;
            }
        }
        if let Some(methods) = &metadata.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(OidcError::Discovery("the provider does not support PKCE S256".into()));
        }
        Ok(metadata)
    }

    fn token_client(&self, metadata: &ProviderMetadata) -> Result<TokenClient, OidcError> {
        let issuer = IssuerUrl::new(self.issuer.clone()).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let token_url =
            TokenUrl::new(metadata.token_endpoint.clone()).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let redirect = RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let auth_type = match metadata.client_auth() {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Post => AuthType::RequestBody,
        };
        let client = CoreClient::new(
            ClientId::new(self.client_id.clone()),
            issuer,
            CoreJsonWebKeySet::new(Vec::new()),
        );
        // Without a secret (a process that was not given one) the provider refuses the
        // call as it would a wrong secret.
        let client = match &self.client_secret {
            Some(secret) => client.set_client_secret(openidconnect::ClientSecret::new(secret.secret().to_owned())),
            None => client,
        };
        Ok(client
            .set_token_uri(token_url)
            .set_redirect_uri(redirect)
            .set_auth_type(auth_type))
    }
}

/// `{issuer}/.well-known/openid-configuration`, keeping the issuer's path.
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// An endpoint from discovery must be `https` (plain `http` only on loopback, and only
/// for a loopback issuer), with no credentials and no fragment.
fn check_endpoint(name: &str, endpoint: &str, loopback_issuer: bool) -> Result<(), OidcError> {
    let url = Url::parse(endpoint).map_err(|e| OidcError::Discovery(format!("{name}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(OidcError::Discovery(format!(
            "{name} must have no credentials or fragment"
        )));
    }
    let loopback = url.host().is_some_and(|h| is_loopback_host(&h));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback && loopback_issuer => Ok(()),
        _ => Err(OidcError::Discovery(format!("{name} must be https"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_keeps_the_issuer_path() {
        assert_eq!(
            discovery_url("https://host/tenant"),
            "https://host/tenant/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://host/"),
            "https://host/.well-known/openid-configuration"
        );
    }

    fn metadata(methods: Option<&[&str]>) -> ProviderMetadata {
        ProviderMetadata {
            issuer: "https://id".into(),
            authorization_endpoint: "https://id/auth".into(),
            token_endpoint: "https://id/token".into(),
            jwks_uri: "https://id/jwks".into(),
            end_session_endpoint: None,
            revocation_endpoint: None,
            userinfo_endpoint: None,
            token_endpoint_auth_methods_supported: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            authorization_response_iss_parameter_supported: false,
            code_challenge_methods_supported: None,
            pushed_authorization_request_endpoint: None,
            require_pushed_authorization_requests: false,
        }
    }

    #[test]
    fn client_auth_is_basic_unless_only_post_is_offered() {
        assert_eq!(metadata(None).client_auth(), ClientAuth::Basic);
        assert_eq!(
            metadata(Some(&["client_secret_basic", "client_secret_post"])).client_auth(),
            ClientAuth::Basic
        );
        assert_eq!(
            metadata(Some(&["client_secret_post", "private_key_jwt"])).client_auth(),
            ClientAuth::Post
        );
    }

    #[test]
    fn endpoints_must_be_https_except_on_loopback() {
        assert!(check_endpoint("token_endpoint", "https://id.example.com/token", false).is_ok());
        assert!(check_endpoint("token_endpoint", "http://127.0.0.1:9000/token", true).is_ok());
        assert!(check_endpoint("token_endpoint", "http://id.example.com/token", true).is_err());
        assert!(check_endpoint("token_endpoint", "file:///etc/passwd", true).is_err());
    }

    #[test]
    fn endpoints_with_credentials_fragments_or_other_schemes_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "https://user:pass@id.example.com/logout",
            "https://id.example.com/logout#x",
            "http://127.0.0.1:9000/revoke",
        ] {
            assert!(check_endpoint("end_session_endpoint", bad, false).is_err(), "{bad}");
        }
    }
}
