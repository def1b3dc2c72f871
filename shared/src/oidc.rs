//! The OpenID Connect relying party: discovery, JWKS, the authorization URL, the code
//! exchange, ID-token validation and the refresh grant.
//!
//! Discovery and the JWKS are fetched lazily, once per process, and shared; a `kid` the
//! cached JWKS does not know triggers one refetch (at most one per second, so forged
//! `kid`s cannot flood the provider). The HTTP client never follows redirects: a token
//! endpoint that redirects is an SSRF vector, not a feature. This module never logs a
//! token, a code, a verifier or the client secret.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreTokenResponse,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, TokenResponse as _, TokenUrl,
};
use serde::Deserialize;
use url::Url;

use crate::app::Clock;
use crate::config::{Config, is_loopback_host};
use crate::secret::{AccessToken, ClientSecret, IdToken, PkceVerifier, RefreshToken};
use crate::store::{DocumentCache, StoreKey};

/// Connect timeout towards the provider.
pub const PROVIDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout towards the provider.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(8);
/// Minimum time between two JWKS fetches triggered by unknown `kid`s.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long discovery and the JWKS may be reused from a cache before they are fetched
/// again (a key the provider withdrew stops being accepted within this time).
pub const DOCUMENT_MAX_AGE_SECS: i64 = 3600;
/// Clock skew tolerated on `iat` in the future.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Signature algorithms accepted on ID tokens: asymmetric only. `none` and the HMAC
/// family are never accepted (an HS256 token "signed" with the client secret is forgeable
/// by anyone who learns the secret).
const ALLOWED_ALGS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// How old a logout token may be.
pub const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 300;
/// The `events` member that marks a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Claims about the token itself, not the user: not shown by `/auth/me`, where a front
/// end could mistake the ID token's `exp` for the session's expiry.
const PROTOCOL_CLAIMS: &[&str] = &[
    "nonce", "at_hash", "c_hash", "s_hash", "iss", "aud", "azp", "exp", "iat", "nbf", "jti", "sid",
];

type TokenClient = CoreClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What can go wrong talking to the provider or checking what it sent.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery could not be read or is inconsistent (wrong `issuer`, missing endpoint).
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The JWKS could not be read.
    #[error("JWKS unavailable: {0}")]
    Jwks(String),
    /// The provider did not answer in time.
    #[error("the provider timed out")]
    Timeout,
    /// The provider could not be reached.
    #[error("the provider is unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint answered with an OAuth error (`invalid_grant`, ...).
    #[error("the token endpoint refused: {error}")]
    Rejected {
        /// The OAuth error code.
        error: String,
    },
    /// The token endpoint answered something that is not a valid token response.
    #[error("the token endpoint answered nonsense: {0}")]
    BadResponse(String),
    /// The ID token failed validation (signature, alg, iss, aud, azp, exp, iat, nonce, sub).
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
}

impl OidcError {
    /// Whether the provider said the grant (code or refresh token) is no longer valid.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Rejected { error } if error == "invalid_grant")
    }
}

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
    /// Client authentication methods the token endpoint accepts.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the provider adds `iss` to authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// PKCE methods, when advertised.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
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

/// Tokens from one token-endpoint answer.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when one was issued (or rotated).
    pub refresh_token: Option<RefreshToken>,
    /// Access-token lifetime in seconds, when the provider said.
    pub expires_in: Option<i64>,
    /// The raw ID token, when one came back.
    pub id_token: Option<IdToken>,
}

/// Claims of a validated ID token.
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    /// The subject.
    pub sub: String,
    /// The provider session id, when present.
    pub sid: Option<String>,
    /// Every user claim, as shown by `/auth/me` (protocol-only claims removed).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// What a valid back-channel logout token says.
#[derive(Debug, Clone)]
pub struct LogoutClaims {
    /// Unique id of the token (for replay detection).
    pub jti: String,
    /// The subject whose sessions end, when given.
    pub sub: Option<String>,
    /// The provider session that ends, when given.
    pub sid: Option<String>,
    /// Issue time (epoch seconds).
    pub iat: i64,
}

/// Why no key verified a JWS.
enum KeyMatch {
    /// No key of the set fits the `kid` and `alg`: the set may be stale.
    NoKey,
    /// Several keys fit and the token names none.
    Ambiguous,
    /// The fitting key did not verify the signature.
    BadSignature,
}

impl KeyMatch {
    fn describe(&self) -> &'static str {
        match self {
            Self::NoKey => "no key matches",
            Self::Ambiguous => "several keys match and no kid",
            Self::BadSignature => "bad signature",
        }
    }
}

trait VerifyJws {
    fn verify(
        &self,
        kid: Option<&str>,
        alg: &CoreJwsSigningAlgorithm,
        input: &str,
        signature: &[u8],
    ) -> Result<(), KeyMatch>;
}

impl VerifyJws for CoreJsonWebKeySet {
    fn verify(
        &self,
        kid: Option<&str>,
        alg: &CoreJwsSigningAlgorithm,
        input: &str,
        signature: &[u8],
    ) -> Result<(), KeyMatch> {
        use openidconnect::JsonWebKey as _;
        use openidconnect::core::{CoreJsonWebKeyType, CoreJsonWebKeyUse};
        let family = match alg {
            CoreJwsSigningAlgorithm::EcdsaP256Sha256 | CoreJwsSigningAlgorithm::EcdsaP384Sha384 => {
                CoreJsonWebKeyType::EllipticCurve
            }
            CoreJwsSigningAlgorithm::EdDsa => CoreJsonWebKeyType::OctetKeyPair,
            _ => CoreJsonWebKeyType::RSA,
        };
        let candidates: Vec<_> = self
            .keys()
            .iter()
            .filter(|key| kid.is_none_or(|kid| key.key_id().map(|k| k.as_str()) == Some(kid)))
            .filter(|key| *key.key_type() == family)
            .filter(|key| key.key_use().is_none_or(|u| *u == CoreJsonWebKeyUse::Signature))
            .collect();
        match candidates.as_slice() {
            [] => Err(KeyMatch::NoKey),
            [key] => key
                .verify_signature(alg, input.as_bytes(), signature)
                .map_err(|_| KeyMatch::BadSignature),
            _ if kid.is_none() => Err(KeyMatch::Ambiguous),
            keys => {
                if keys
                    .iter()
                    .any(|key| key.verify_signature(alg, input.as_bytes(), signature).is_ok())
                {
                    Ok(())
                } else {
                    Err(KeyMatch::BadSignature)
                }
            }
        }
    }
}

struct JwksCache {
    keys: CoreJsonWebKeySet,
    fetched_at: Instant,
}

struct Discovered {
    metadata: ProviderMetadata,
    client: TokenClient,
}

/// The relying party: configuration, the HTTP client, and the discovery and JWKS caches.
pub struct Oidc {
    issuer: String,
    client_id: String,
    client_secret: Option<ClientSecret>,
    redirect_uri: String,
    http: reqwest::Client,
    discovered: tokio::sync::OnceCell<Arc<Discovered>>,
    jwks: Mutex<Option<Arc<JwksCache>>>,
    // Serialises JWKS fetches so a burst of unknown `kid`s costs one fetch.
    jwks_fetch: tokio::sync::Mutex<()>,
    // Discovery and JWKS shared by every instance, so a cold start skips the provider.
    documents: Option<(Arc<dyn DocumentCache>, Arc<Clock>)>,
}

impl Oidc {
    /// A relying party for `config`; nothing is fetched until first needed.
    pub fn new(config: &Config) -> Result<Self, OidcError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(PROVIDER_CONNECT_TIMEOUT)
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("bff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        Ok(Self {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_uri: config.redirect_uri(),
            http,
            discovered: tokio::sync::OnceCell::new(),
            jwks: Mutex::new(None),
            jwks_fetch: tokio::sync::Mutex::new(()),
            documents: None,
        })
    }

    /// Shares discovery and the JWKS through `cache` (the store), for at most
    /// [`DOCUMENT_MAX_AGE_SECS`] as `clock` tells it.
    pub fn with_document_cache(mut self, cache: Arc<dyn DocumentCache>, clock: Arc<Clock>) -> Self {
        self.documents = Some((cache, clock));
        self
    }

    /// `url`'s body, from the shared document cache unless `fresh`, else from the provider
    /// (and then cached). The cache is best effort: its failures only cost a fetch.
    async fn document(&self, kind: &str, url: &str, fresh: bool) -> Result<Vec<u8>, OidcError> {
        let key = StoreKey::document(kind, &self.issuer);
        if !fresh && let Some((cache, clock)) = &self.documents {
            match cache.get_document(&key, clock.now()).await {
                Ok(Some(document)) => return Ok(document.into_bytes()),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, kind, "document cache unavailable"),
            }
        }
        let body = self.get(url).await?;
        if let (Some((cache, clock)), Ok(text)) = (&self.documents, std::str::from_utf8(&body))
            && let Err(e) = cache
                .put_document(&key, text, clock.now() + DOCUMENT_MAX_AGE_SECS)
                .await
        {
            tracing::warn!(error = %e, kind, "could not cache a provider document");
        }
        Ok(body)
    }

    /// The provider's metadata, discovered on first use and then cached. A failed
    /// discovery is not cached: the next request tries again.
    pub async fn metadata(&self) -> Result<&ProviderMetadata, OidcError> {
        Ok(&self.discovered().await?.metadata)
    }

    async fn discovered(&self) -> Result<&Arc<Discovered>, OidcError> {
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
        let metadata: ProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Discovery(format!("not a discovery document: {e}")))?;
        if metadata.issuer != self.issuer {
            return Err(OidcError::Discovery(format!(
                "issuer `{}` does not equal the configured issuer `{}`",
                metadata.issuer, self.issuer
            )));
        }
        for (name, endpoint) in [
            ("authorization_endpoint", &metadata.authorization_endpoint),
            ("token_endpoint", &metadata.token_endpoint),
            ("jwks_uri", &metadata.jwks_uri),
        ] {
            check_endpoint(name, endpoint)?;
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

    async fn get(&self, url: &str) -> Result<Vec<u8>, OidcError> {
        let response = self.http.get(url).send().await.map_err(transport_error)?;
        if !response.status().is_success() {
            return Err(OidcError::Unreachable(format!(
                "GET {url} answered {}",
                response.status()
            )));
        }
        Ok(response.bytes().await.map_err(transport_error)?.to_vec())
    }

    /// The authorization request URL for one login.
    pub async fn authorization_url(
        &self,
        config: &Config,
        state: &str,
        nonce: &str,
        verifier: &PkceVerifier,
    ) -> Result<String, OidcError> {
        let metadata = self.metadata().await?;
        let mut url = Url::parse(&metadata.authorization_endpoint).map_err(|e| OidcError::Discovery(e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &config.scopes.join(" "))
                .append_pair("state", state)
                .append_pair("nonce", nonce)
                .append_pair("code_challenge", &verifier.s256_challenge())
                .append_pair("code_challenge_method", "S256");
            for (key, value) in &config.auth_params {
                query.append_pair(key, value);
            }
        }
        Ok(url.into())
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(&self, code: &str, verifier: PkceVerifier) -> Result<TokenSet, OidcError> {
        let discovered = self.discovered().await?;
        let response = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&response))
    }

    /// Uses a refresh token; the answer may rotate it.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenSet, OidcError> {
        let discovered = self.discovered().await?;
        let token = openidconnect::RefreshToken::new(refresh_token.secret().to_owned());
        let response = discovered
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(token_set(&response))
    }

    /// Validates an ID token completely: signature with a key from the JWKS (refetched
    /// once on an unknown `kid`), an asymmetric `alg`, `iss`, `aud`, `azp`, `exp`, `iat`
    /// and, when `expected_nonce` is given, `nonce`. `now` is epoch seconds.
    pub async fn verify_id_token(
        &self,
        raw: &IdToken,
        expected_nonce: Option<&str>,
        now: i64,
    ) -> Result<VerifiedClaims, OidcError> {
        let token: CoreIdToken = raw
            .secret()
            .parse()
            .map_err(|e: serde_json::Error| OidcError::InvalidIdToken(format!("malformed: {e}")))?;
        let keys = self.jwks(false).await?;
        match self.check_claims(&token, &keys.keys, expected_nonce, now) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since we cached them.
                let keys = self.jwks(true).await?;
                self.check_claims(&token, &keys.keys, expected_nonce, now)
            }
            other => other,
        }
        .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        user_claims(raw)
    }

    fn check_claims(
        &self,
        token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
        expected_nonce: Option<&str>,
        now: i64,
    ) -> Result<(), openidconnect::ClaimsVerificationError> {
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| openidconnect::ClaimsVerificationError::Other(e.to_string()))?;
        let now_time = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        let verifier =
            CoreIdTokenVerifier::new_public_client(ClientId::new(self.client_id.clone()), issuer, keys.clone())
                .set_allowed_algs(ALLOWED_ALGS.iter().cloned())
                .set_time_fn(move || now_time)
                .set_issue_time_verifier_fn(move |iat| {
                    if iat.timestamp() > now + MAX_CLOCK_SKEW_SECS {
                        Err("issued in the future".to_owned())
                    } else {
                        Ok(())
                    }
                });
        let claims = match expected_nonce {
            Some(nonce) => token.claims(&verifier, &Nonce::new(nonce.to_owned()))?,
            None => token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?,
        };
        // OIDC Core 3.1.3.7 steps 4-5: with several audiences this client must be the
        // authorized party, and an `azp` that is present must name this client.
        let azp = claims.authorized_party().map(|azp| azp.as_str());
        if (claims.audiences().len() > 1 || azp.is_some()) && azp != Some(self.client_id.as_str()) {
            return Err(openidconnect::ClaimsVerificationError::InvalidAudience(
                "azp is not this client".into(),
            ));
        }
        Ok(())
    }

    /// The JWKS, from the cache unless `refetch` asks for a fresh copy. Fetches are
    /// serialised and at most one per [`JWKS_REFETCH_INTERVAL`]: a refetch asked for sooner
    /// waits out the rest of the interval (so a key rotation right after a fetch still
    /// works), and everyone who queued meanwhile shares that one fetch.
    async fn jwks(&self, refetch: bool) -> Result<Arc<JwksCache>, OidcError> {
        let cached = self.jwks.lock().map(|guard| guard.clone()).unwrap_or(None);
        let too_old = |c: &JwksCache| c.fetched_at.elapsed().as_secs() >= DOCUMENT_MAX_AGE_SECS as u64;
        if let Some(cache) = &cached
            && !refetch
            && !too_old(cache)
        {
            return Ok(cache.clone());
        }
        let _one_fetch_at_a_time = self.jwks_fetch.lock().await;
        // Another caller may have fetched while we waited.
        if let Ok(guard) = self.jwks.lock()
            && let Some(cache) = guard.as_ref()
            && cached.as_ref().is_none_or(|old| !Arc::ptr_eq(old, cache))
        {
            return Ok(cache.clone());
        }
        if let Some(cache) = &cached {
            let age = cache.fetched_at.elapsed();
            if age < JWKS_REFETCH_INTERVAL {
                tokio::time::sleep(JWKS_REFETCH_INTERVAL - age).await;
            }
        }
        let jwks_uri = self.metadata().await?.jwks_uri.clone();
        // A refetch (unknown `kid`, or an old copy) goes to the provider and refreshes the
        // shared copy for every other instance.
        let fresh = cached.is_some();
        let body = self
            .document("jwks", &jwks_uri, fresh)
            .await
            .map_err(|e| OidcError::Jwks(e.to_string()))?;
        let keys: CoreJsonWebKeySet =
            serde_json::from_slice(&body).map_err(|e| OidcError::Jwks(format!("not a JWK set: {e}")))?;
        let cache = Arc::new(JwksCache {
            keys,
            fetched_at: Instant::now(),
        });
        if let Ok(mut guard) = self.jwks.lock() {
            *guard = Some(cache.clone());
        }
        Ok(cache)
    }

    /// Validates a back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.6):
    /// signature with a key from the JWKS (refetched once on an unknown `kid`), an
    /// asymmetric `alg`, `iss`, `aud`, a recent `iat`, `exp` when present, the logout
    /// event, no `nonce`, a `jti`, and `sid` and/or `sub`. Replay is the caller's check.
    pub async fn verify_logout_token(&self, raw: &str, now: i64) -> Result<LogoutClaims, OidcError> {
        let invalid = |why: &str| OidcError::InvalidIdToken(format!("logout token: {why}"));
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JWS"));
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| invalid("not base64url"));
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| invalid("bad header"))?;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(header["alg"].clone()).map_err(|_| invalid("unknown alg"))?;
        if !ALLOWED_ALGS.contains(&alg) {
            return Err(invalid("disallowed alg"));
        }
        let kid = header["kid"].as_str().map(str::to_owned);
        let signing_input = &raw[..raw.rfind('.').unwrap_or(0)];
        let signature = decode(signature)?;

        let mut verified = self
            .jwks(false)
            .await?
            .keys
            .verify(kid.as_deref(), &alg, signing_input, &signature);
        if matches!(verified, Err(KeyMatch::NoKey)) {
            verified = self
                .jwks(true)
                .await?
                .keys
                .verify(kid.as_deref(), &alg, signing_input, &signature);
        }
        verified.map_err(|e| invalid(e.describe()))?;

        let claims: serde_json::Value =
            serde_json::from_slice(&decode(payload)?).map_err(|_| invalid("bad payload"))?;
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Err(invalid("wrong iss"));
        }
        let audience_ok = match &claims["aud"] {
            serde_json::Value::String(aud) => *aud == self.client_id,
            serde_json::Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(self.client_id.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(invalid("wrong aud"));
        }
        let iat = claims["iat"].as_i64().ok_or_else(|| invalid("no iat"))?;
        if iat > now + MAX_CLOCK_SKEW_SECS || iat < now - LOGOUT_TOKEN_MAX_AGE_SECS {
            return Err(invalid("iat out of range"));
        }
        if claims
            .get("exp")
            .is_some_and(|exp| exp.as_i64().is_none_or(|exp| exp <= now))
        {
            return Err(invalid("expired"));
        }
        if !claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object() {
            return Err(invalid("no back-channel logout event"));
        }
        if claims.get("nonce").is_some() {
            return Err(invalid("has a nonce"));
        }
        let jti = claims["jti"]
            .as_str()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| invalid("no jti"))?;
        let sub = claims["sub"].as_str().map(str::to_owned);
        let sid = claims["sid"].as_str().map(str::to_owned);
        if sub.is_none() && sid.is_none() {
            return Err(invalid("neither sid nor sub"));
        }
        Ok(LogoutClaims {
            jti: jti.to_owned(),
            sub,
            sid,
            iat,
        })
    }

    /// Where to send the browser after a local logout: the configured logout URL
    /// template, else the provider's end-session endpoint (OpenID Connect RP-Initiated
    /// Logout 1.0, with `id_token_hint`), else the BFF's own post-logout page.
    pub async fn logout_url(&self, config: &Config, id_token_hint: Option<&IdToken>) -> String {
        let post_logout = config.post_logout_url();
        let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        if let Some(template) = &config.logout_url {
            return template
                .replace("{client_id}", &encode(&self.client_id))
                .replace("{post_logout_redirect_uri}", &encode(&post_logout))
                .replace(
                    "{id_token_hint}",
                    &encode(id_token_hint.map(IdToken::secret).unwrap_or_default()),
                );
        }
        let endpoint = match self.metadata().await {
            Ok(metadata) => metadata.end_session_endpoint.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "no discovery for logout; using the local page");
                None
            }
        };
        let Some(mut url) = endpoint.and_then(|e| Url::parse(&e).ok()) else {
            return post_logout;
        };
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.client_id)
                .append_pair("post_logout_redirect_uri", &post_logout);
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint.secret());
            }
        }
        url.into()
    }

    /// Revokes a refresh token at the provider's RFC 7009 endpoint, when it has one.
    /// Best effort: a logout never fails because revocation did.
    pub async fn revoke(&self, refresh_token: &RefreshToken) {
        let Ok(metadata) = self.metadata().await else {
            return;
        };
        let (Some(endpoint), auth) = (metadata.revocation_endpoint.clone(), metadata.client_auth()) else {
            return;
        };
        let mut form = vec![("token", refresh_token.secret()), ("token_type_hint", "refresh_token")];
        let mut request = self.http.post(&endpoint);
        match auth {
            // RFC 6749 2.3.1: id and secret are form-encoded before the Basic encoding.
            ClientAuth::Basic => {
                let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let secret = self.client_secret.as_ref().map(|s| encode(s.secret()));
                request = request.basic_auth(encode(&self.client_id), secret);
            }
            ClientAuth::Post => {
                form.push(("client_id", &self.client_id));
                if let Some(secret) = &self.client_secret {
                    form.push(("client_secret", secret.secret()));
                }
            }
        }
        match request.form(&form).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::warn!(status = %response.status(), "refresh-token revocation refused"),
            Err(e) => tracing::warn!(error = %transport_error(e), "refresh-token revocation failed"),
        }
    }
}

/// `{issuer}/.well-known/openid-configuration`, keeping the issuer's path.
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

fn check_endpoint(name: &str, endpoint: &str) -> Result<(), OidcError> {
    let url = Url::parse(endpoint).map_err(|e| OidcError::Discovery(format!("{name}: {e}")))?;
    let loopback = url.host().is_some_and(|h| is_loopback_host(&h));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(OidcError::Discovery(format!("{name} must be https"))),
    }
}

fn transport_error(e: reqwest::Error) -> OidcError {
    if e.is_timeout() {
        OidcError::Timeout
    } else {
        // Without the URL: reqwest's message may include the query string.
        OidcError::Unreachable(e.without_url().to_string())
    }
}

type TokenRequestError = RequestTokenError<
    openidconnect::HttpClientError<reqwest::Error>,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
>;

fn token_error(e: TokenRequestError) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(response) => OidcError::Rejected {
            error: response.error().to_string(),
        },
        RequestTokenError::Request(openidconnect::HttpClientError::Reqwest(inner)) => transport_error(*inner),
        RequestTokenError::Request(other) => OidcError::Unreachable(other.to_string()),
        // The parse error's body may hold tokens: keep only the path of the failure.
        RequestTokenError::Parse(e, _body) => OidcError::BadResponse(format!("unparsable at {}", e.path())),
        RequestTokenError::Other(message) => OidcError::BadResponse(message),
    }
}

fn token_set(response: &CoreTokenResponse) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(response.access_token().secret()),
        refresh_token: response.refresh_token().map(|t| RefreshToken::new(t.secret())),
        expires_in: response
            .expires_in()
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        id_token: response.id_token().map(|t| IdToken::new(t.to_string())),
    }
}

/// The payload of an ID token whose signature was verified, minus protocol-only claims.
fn user_claims(raw: &IdToken) -> Result<VerifiedClaims, OidcError> {
    let payload = raw
        .secret()
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::InvalidIdToken("not a JWS".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| OidcError::InvalidIdToken("payload is not base64url".into()))?;
    let mut claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| OidcError::InvalidIdToken("payload is not a JSON object".into()))?;
    // Read before the protocol claims are removed.
    let sid = claims.get("sid").and_then(|v| v.as_str()).map(str::to_owned);
    for name in PROTOCOL_CLAIMS {
        claims.remove(*name);
    }
    let sub = match claims.get("sub") {
        Some(serde_json::Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(OidcError::InvalidIdToken("no sub".into())),
    };
    Ok(VerifiedClaims { sub, sid, claims })
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
            token_endpoint_auth_methods_supported: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            authorization_response_iss_parameter_supported: false,
            code_challenge_methods_supported: None,
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
        assert!(check_endpoint("token_endpoint", "https://id.example.com/token").is_ok());
        assert!(check_endpoint("token_endpoint", "http://127.0.0.1:9000/token").is_ok());
        assert!(check_endpoint("token_endpoint", "http://id.example.com/token").is_err());
        assert!(check_endpoint("token_endpoint", "file:///etc/passwd").is_err());
    }

    #[test]
    fn user_claims_drop_protocol_claims_and_require_sub() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"alice","name":"Alice","nonce":"n","at_hash":"h","sid":"s1","exp":9,"iat":1,"iss":"i","aud":"a"}"#,
        );
        let claims = user_claims(&IdToken::new(format!("e30.{payload}.sig"))).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert!(claims.claims.contains_key("name") && claims.claims.contains_key("sub"));
        for protocol in ["nonce", "at_hash", "sid", "exp", "iat", "iss", "aud"] {
            assert!(!claims.claims.contains_key(protocol), "{protocol} shown");
        }
        let no_sub = URL_SAFE_NO_PAD.encode(br#"{"name":"x"}"#);
        assert!(user_claims(&IdToken::new(format!("e30.{no_sub}.sig"))).is_err());
    }
}
