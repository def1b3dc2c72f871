//! Client authentication at the provider: the one place that decides how the BFF proves
//! who it is, for every endpoint that asks (token, revocation, pushed authorization
//! requests).
//!
//! [`ClientAuthentication::authenticate`] turns a request and its form into an
//! authenticated one: HTTP Basic (`client_secret_basic`), the secret in the form
//! (`client_secret_post`), or a fresh client assertion (`private_key_jwt`, RFC 7523:
//! `iss` = `sub` = the client id, `aud` the token endpoint or the issuer, a one-minute
//! `exp`, a random `jti`) and never the secret, which the configuration does not even
//! keep in that case. The method is `BFF_CLIENT_AUTH`, or from discovery
//! (`client_secret_basic`, else `client_secret_post`); `private_key_jwt` is used only when
//! discovery offers it. This module never logs a secret or an assertion.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Oidc, OidcError, ProviderMetadata, transport_error};
use crate::domain::secret::{ClientSecret, random_token};
use crate::domain::trace::TRACEPARENT;
use crate::platform::config::Config;
use crate::platform::config::client_auth::{AssertionAudience, ClientAuthMethod};
use crate::platform::dpop::{DPOP, DpopKey, USE_DPOP_NONCE, unix_now};
use crate::platform::signing::AssertionSigner;
use crate::platform::trace_scope::current_traceparent;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid: it is used at once, and only once.
pub const ASSERTION_LIFETIME_SECS: u64 = 60;

/// The client's credentials and how to present them.
pub struct ClientAuthentication {
    client_id: String,
    issuer: String,
    configured: Option<ClientAuthMethod>,
    secret: Option<ClientSecret>,
    signer: Option<Arc<dyn AssertionSigner>>,
    audience: AssertionAudience,
}

impl std::fmt::Debug for ClientAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthentication")
            .field("client_id", &self.client_id)
            .field("configured", &self.configured)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl ClientAuthentication {
    /// The credentials `config` holds.
    pub fn new(config: &Config) -> Self {
        Self {
            client_id: config.client_id.clone(),
            issuer: config.issuer.clone(),
            configured: config.client_auth.method,
            secret: config.client_secret.clone(),
            signer: config.client_auth.signer().cloned(),
            audience: config.client_auth.audience,
        }
    }

    /// The method used with a provider described by `metadata`: the configured one (for
    /// `private_key_jwt` only when discovery offers it), else `client_secret_basic` unless
    /// the provider offers only `client_secret_post`.
    pub fn method(&self, metadata: &ProviderMetadata) -> Result<ClientAuthMethod, OidcError> {
        let offered = |name: &str| {
            metadata
                .token_endpoint_auth_methods_supported
                .as_ref()
                .is_some_and(|methods| methods.iter().any(|m| m == name))
        };
        match self.configured {
            // Discovery's default is `client_secret_basic` alone (OpenID Connect
            // Discovery §3): a provider that says nothing does not offer it.
            Some(ClientAuthMethod::PrivateKeyJwt) if !offered("private_key_jwt") => Err(OidcError::ClientAuth(
                "BFF_CLIENT_AUTH=private_key_jwt, but the provider's discovery does not offer private_key_jwt in token_endpoint_auth_methods_supported".into(),
            )),
            Some(method) => Ok(method),
            None if !offered("client_secret_basic") && offered("client_secret_post") => {
                Ok(ClientAuthMethod::SecretPost)
            }
            None => Ok(ClientAuthMethod::SecretBasic),
        }
    }

    /// `request` to one of the provider's endpoints, authenticated, with `form` as its body.
    pub async fn authenticate(
        &self,
        metadata: &ProviderMetadata,
        request: reqwest::RequestBuilder,
        mut form: Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder, OidcError> {
        let request = match self.method(metadata)? {
            ClientAuthMethod::SecretBasic => {
                // RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding.
                let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let secret = self.secret.as_ref().map(|s| encode(s.secret()));
                // Without a secret the provider refuses the call as it would a wrong one.
                request.basic_auth(encode(&self.client_id), secret)
            }
            ClientAuthMethod::SecretPost => {
                self.name_client(&mut form);
                if let Some(secret) = &self.secret {
                    form.push(("client_secret".into(), secret.secret().to_owned()));
                }
                request
            }
            ClientAuthMethod::PrivateKeyJwt => {
                let audience = match self.audience {
                    AssertionAudience::TokenEndpoint => metadata.token_endpoint.as_str(),
                    AssertionAudience::Issuer => self.issuer.as_str(),
                };
                let assertion = self.assertion(audience, unix_now()).await?;
                self.name_client(&mut form);
                form.push(("client_assertion_type".into(), JWT_BEARER_ASSERTION.to_owned()));
                form.push(("client_assertion".into(), assertion));
                request
            }
        };
        Ok(request.form(&form))
    }

    /// Adds `client_id` unless the request already carries it (a pushed authorization
    /// request does): a parameter sent twice is refused (RFC 6749 §3.1).
    fn name_client(&self, form: &mut Vec<(String, String)>) {
        if !form.iter().any(|(name, _)| name == "client_id") {
            form.push(("client_id".into(), self.client_id.clone()));
        }
    }

    /// A fresh client assertion for `audience`, issued at `now` (Unix seconds).
    pub async fn assertion(&self, audience: &str, now: u64) -> Result<String, OidcError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| OidcError::ClientAuth("no signing key is configured".into()))?;
        let header = serde_json::json!({"alg": signer.alg().name(), "typ": "JWT", "kid": signer.kid()});
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "jti": random_token(16),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = signer
            .sign(input.as_bytes())
            .await
            .map_err(|e| OidcError::ClientAuth(e.to_string()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl Oidc {
    /// POSTs `form` to `endpoint` (token, revocation, PAR) as the authenticated client, with
    /// the current request's `traceparent` so the provider's logs join the same trace.
    pub async fn authenticated_post(
        &self,
        endpoint: &str,
        form: Vec<(String, String)>,
    ) -> Result<reqwest::Response, OidcError> {
        self.authenticated_post_with(endpoint, form, None).await
    }

    /// [`Self::authenticated_post`], with a DPoP proof of `dpop` (RFC 9449 §5) when given:
    /// `htu` the endpoint, the provider's last nonce when one is known. A `use_dpop_nonce`
    /// answer that hands out a nonce gets exactly one retry with it (fresh proof, fresh
    /// client assertion); any `DPoP-Nonce` the provider sends is remembered.
    pub async fn authenticated_post_with(
        &self,
        endpoint: &str,
        form: Vec<(String, String)>,
        dpop: Option<&DpopKey>,
    ) -> Result<reqwest::Response, OidcError> {
        let metadata = self.metadata().await?;
        let url = url::Url::parse(endpoint).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let mut retried = false;
        loop {
            let mut request = self.http.post(endpoint);
            if let Some(traceparent) = current_traceparent() {
                request = request.header(TRACEPARENT, traceparent);
            }
            if let Some(key) = dpop {
                let nonce = self.dpop_nonces.get(&url);
                let proof = key
                    .proof("POST", &url, unix_now(), nonce.as_deref(), None)
                    .map_err(|e| OidcError::Dpop(e.to_string()))?;
                request = request.header(DPOP, proof);
            }
            let request = self.client_auth.authenticate(metadata, request, form.clone()).await?;
            let response = request.send().await.map_err(transport_error)?;
            let new_nonce = self.dpop_nonces.remember(&url, response.headers());
            if dpop.is_none() || retried || !new_nonce || response.status() != reqwest::StatusCode::BAD_REQUEST {
                return Ok(response);
            }
            // Only a `use_dpop_nonce` refusal is retried: another 400 (`invalid_grant`)
            // stands, and a code is never presented twice for it.
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(transport_error)?;
            let error = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
            if error["error"] != USE_DPOP_NONCE {
                let mut answer = http::Response::new(body);
                *answer.status_mut() = status;
                *answer.headers_mut() = headers;
                return Ok(reqwest::Response::from(answer));
            }
            tracing::info!("the provider asked for a DPoP nonce; retrying once with it");
            retried = true;
        }
    }

    /// The start-up check of `BFF_CLIENT_AUTH` against discovery: an error when the
    /// provider does not offer the configured method. A discovery that cannot be read now
    /// passes (the provider may be down for a moment); the method is checked again on
    /// every use.
    pub async fn check_client_auth(&self) -> Result<(), OidcError> {
        // The secret methods need no check: the default follows discovery.
        if self.client_auth.configured != Some(ClientAuthMethod::PrivateKeyJwt) {
            return Ok(());
        }
        match self.metadata().await {
            Ok(metadata) => self.client_auth.method(metadata).map(|_| ()),
            Err(e) => {
                tracing::warn!(error = %e, "discovery unavailable at start-up; client authentication is checked on first use");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::signing::tests::{P256_PKCS8, RSA_PKCS8};

    fn config(vars: &[(&str, &str)]) -> Config {
        let base = [
            ("BFF_ISSUER", "https://id.example.com/"),
            ("BFF_CLIENT_ID", "bff-client"),
            ("BFF_CLIENT_SECRET", "s3cret"),
            ("BFF_PUBLIC_URL", "https://app.example.com"),
        ];
        let vars: std::collections::HashMap<String, String> = base
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned()).expect("valid")
    }

    fn metadata(methods: Option<&[&str]>) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://id.example.com/",
            "authorization_endpoint": "https://id.example.com/authorize",
            "token_endpoint": "https://id.example.com/oauth/token",
            "jwks_uri": "https://id.example.com/jwks",
            "token_endpoint_auth_methods_supported": methods,
        }))
        .expect("metadata")
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    }

    /// The body and headers `authenticate` produces.
    async fn sent(auth: &ClientAuthentication, metadata: &ProviderMetadata) -> (String, Option<String>) {
        let request = auth
            .authenticate(
                metadata,
                reqwest::Client::new().post("https://id.example.com/oauth/token"),
                vec![("grant_type".into(), "refresh_token".into())],
            )
            .await
            .expect("authenticated")
            .build()
            .expect("request");
        let body =
            String::from_utf8(request.body().and_then(|b| b.as_bytes()).unwrap_or_default().to_vec()).expect("utf-8");
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (body, authorization)
    }

    #[tokio::test]
    async fn secret_methods_follow_discovery_unless_configured() {
        let auth = ClientAuthentication::new(&config(&[]));
        let (body, authorization) = sent(&auth, &metadata(None)).await;
        assert!(authorization.is_some_and(|a| a.starts_with("Basic ")));
        assert!(!body.contains("s3cret"));
        let (body, authorization) = sent(&auth, &metadata(Some(&["client_secret_post", "private_key_jwt"]))).await;
        assert_eq!(authorization, None);
        assert!(
            body.contains("client_id=bff-client") && body.contains("client_secret=s3cret"),
            "{body}"
        );
        let post = ClientAuthentication::new(&config(&[("BFF_CLIENT_AUTH", "client_secret_post")]));
        let (body, _) = sent(&post, &metadata(Some(&["client_secret_basic", "client_secret_post"]))).await;
        assert!(body.contains("client_secret=s3cret"), "{body}");
    }

    #[tokio::test]
    async fn private_key_jwt_sends_a_fresh_signed_assertion_and_never_the_secret() {
        let offered = metadata(Some(&["client_secret_basic", "private_key_jwt"]));
        for (pem, alg) in [(RSA_PKCS8, "RS256"), (P256_PKCS8, "ES256")] {
            let auth = ClientAuthentication::new(&config(&[
                ("BFF_CLIENT_AUTH", "private_key_jwt"),
                ("BFF_CLIENT_KEY", pem),
            ]));
            let (first, authorization) = sent(&auth, &offered).await;
            let (second, _) = sent(&auth, &offered).await;
            assert_eq!(authorization, None);
            assert!(
                !first.contains("s3cret") && !first.contains("client_secret="),
                "{first}"
            );
            let params: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(first.as_bytes()).into_owned().collect();
            assert_eq!(params["client_assertion_type"], JWT_BEARER_ASSERTION);
            assert_eq!(params["client_id"], "bff-client");
            let parts: Vec<&str> = params["client_assertion"].split('.').collect();
            assert_eq!(parts.len(), 3);
            let header = decode(parts[0]);
            assert_eq!(header["alg"], alg);
            assert_eq!(header["kid"], auth.signer.as_ref().expect("signer").kid());
            let claims = decode(parts[1]);
            assert_eq!(claims["iss"], "bff-client");
            assert_eq!(claims["sub"], "bff-client");
            assert_eq!(claims["aud"], "https://id.example.com/oauth/token");
            let (iat, exp) = (
                claims["iat"].as_u64().expect("iat"),
                claims["exp"].as_u64().expect("exp"),
            );
            assert_eq!(exp - iat, ASSERTION_LIFETIME_SECS);
            // Every request gets its own assertion.
            let again: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(second.as_bytes()).into_owned().collect();
            let other = decode(again["client_assertion"].split('.').nth(1).expect("claims"));
            assert_ne!(claims["jti"], other["jti"]);
        }
    }

    #[tokio::test]
    async fn the_audience_may_be_the_issuer() {
        let auth = ClientAuthentication::new(&config(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_KEY", RSA_PKCS8),
            ("BFF_CLIENT_ASSERTION_AUD", "issuer"),
        ]));
        let assertion = auth
            .assertion("https://id.example.com/", 1_000)
            .await
            .expect("assertion");
        let claims = decode(assertion.split('.').nth(1).expect("claims"));
        assert_eq!(claims["aud"], "https://id.example.com/");
        assert_eq!(claims["exp"], 1_060);
        let (body, _) = sent(&auth, &metadata(Some(&["private_key_jwt"]))).await;
        let params: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let claims = decode(params["client_assertion"].split('.').nth(1).expect("claims"));
        assert_eq!(claims["aud"], "https://id.example.com/");
    }

    #[test]
    fn private_key_jwt_is_refused_when_discovery_does_not_offer_it() {
        let auth = ClientAuthentication::new(&config(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_KEY", RSA_PKCS8),
        ]));
        for methods in [None, Some(&["client_secret_basic", "client_secret_post"][..])] {
            let err = auth.method(&metadata(methods)).expect_err("not offered");
            assert!(err.to_string().contains("BFF_CLIENT_AUTH"), "{err}");
        }
        assert_eq!(
            auth.method(&metadata(Some(&["private_key_jwt"]))).expect("offered"),
            ClientAuthMethod::PrivateKeyJwt
        );
    }
}
