//! Discovery: the provider's metadata, read once per process (or from the shared
//! document cache) and checked before use.

use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use super::{Discovered, Oidc, OidcError};
use crate::domain::login_options::offline_access_may_be_ignored;
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
    /// RFC 9449: the algorithms the provider takes in DPoP proofs, when advertised.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// The algorithms the provider can sign ID tokens with.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// The `prompt` values the provider takes, when it publishes them.
    #[serde(default)]
    pub prompt_values_supported: Option<Vec<String>>,
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
                self.warn_of_ignored_offline_access(&metadata);
                Ok(Arc::new(Discovered { metadata }))
            })
            .await
    }

    /// Once per process, with the first discovery: logins that may get no offline refresh
    /// token (see [`offline_access_may_be_ignored`]) are worth a line, since the session
    /// then ends with the user's session at the provider, which nothing else shows.
    fn warn_of_ignored_offline_access(&self, metadata: &ProviderMetadata) {
        if offline_access_may_be_ignored(
            &self.scopes,
            self.login_prompt.as_deref(),
            metadata.prompt_values_supported.as_deref(),
        ) {
            tracing::warn!(
                "BFF_SCOPES asks for offline_access without prompt=consent: the provider may ignore it \
                 (OpenID Connect Core §11), and its refresh token may then end with the user's session at the \
                 provider; for one that outlives it, set BFF_AUTH_PARAMS=prompt=consent or send that login to \
                 /auth/login?prompt=consent (see docs/providers/)"
            );
        }
    }

    /// Once per process, at the first login whose code exchange gave no refresh token
    /// although the scopes ask for `offline_access`: its session ends with its access
    /// token, which the user sees only as an unexpected logout.
    pub fn warn_if_no_refresh_token(&self, issued: bool) {
        use std::sync::atomic::Ordering;
        if issued
            || !self.scopes.iter().any(|s| s == "offline_access")
            || self.warned_no_refresh_token.swap(true, Ordering::Relaxed)
        {
            return;
        }
        tracing::warn!(
            "the provider issued no refresh token although BFF_SCOPES asks for offline_access: sessions end when \
             their access token expires; allow the refresh_token grant for this client at the provider, and if it \
             needs prompt=consent for offline_access (OpenID Connect Core §11), set BFF_AUTH_PARAMS=prompt=consent \
             (see docs/providers/)"
        );
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
