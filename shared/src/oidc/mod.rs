//! The OpenID Connect relying party: the provider adapter.
//!
//! [`Oidc`] holds the configuration, one HTTP client and the discovery and JWKS caches;
//! its parts live in the child modules: [`discovery`], [`jwks`], [`client_auth`] (how the
//! BFF authenticates at every endpoint that asks: token, revocation, pushed requests),
//! [`grants`] (authorization request, pushed or not, code, refresh and client-credentials
//! grants), [`id_token`], [`userinfo`], [`logout_token`] and
//! [`logout_url`] (RP-initiated logout and revocation).
//!
//! Discovery and the JWKS are fetched lazily, once per process, and shared; a `kid` the
//! cached JWKS does not know triggers one refetch (at most one per second, so forged
//! `kid`s cannot flood the provider). The HTTP client never follows redirects: a token
//! endpoint that redirects is an SSRF vector, not a feature. This module never logs a
//! token, a code, a verifier, the client secret or a client assertion, and knows nothing of HTTP requests
//! from the browser or of sessions.

pub mod client_auth;
pub mod discovery;
pub mod grants;
pub mod id_token;
pub mod jwks;
pub mod logout_token;
pub mod logout_url;
pub mod profile;
pub mod userinfo;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openidconnect::core::CoreJwsSigningAlgorithm;

pub use client_auth::ClientAuthentication;
pub use discovery::{ProviderMetadata, discovery_url};
pub use grants::{AuthorizationRequest, TokenSet};
pub use id_token::VerifiedClaims;
pub use logout_token::{BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_MAX_AGE_SECS, LogoutClaims};
pub use userinfo::UserinfoError;

use crate::domain::clock::Clock;
use crate::platform::config::Config;
use crate::store::{DOCUMENT_COPIES, DocumentCache, StoreKey};
use jwks::JwksCache;

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
pub(crate) const ALLOWED_ALGS: &[CoreJwsSigningAlgorithm] = &[
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

/// The ID-token algorithms of the FAPI 2.0 Security Profile (§5.4.1): `BFF_PROFILE=fapi2`
/// accepts these only.
pub(crate) const FAPI2_ALGS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EdDsa,
];

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
    /// The ID token failed validation (signature, iss, aud, azp, exp, iat, nonce, sub); the
    /// text names the check and what was found, never the token.
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    /// The ID token is signed with an algorithm the BFF never accepts (HMAC, `none`, ...).
    #[error("invalid ID token: signed with `{received}`, accepted: {accepted}")]
    IdTokenAlgorithm {
        /// The `alg` of the token's header.
        received: String,
        /// The accepted algorithms.
        accepted: String,
    },
    /// The client cannot authenticate: the configured method is not offered, or the key
    /// could not sign.
    #[error("client authentication: {0}")]
    ClientAuth(String),
    /// The token endpoint issued a token of a type the BFF was not set up to present
    /// (`DPoP` with `BFF_DPOP=off`; RFC 6749 §7.1).
    #[error("the token endpoint issued a `{0}` token, which the BFF is not configured to use")]
    UnexpectedTokenType(String),
    /// The session's DPoP key could not make a proof.
    #[error("DPoP: {0}")]
    Dpop(String),
}

impl OidcError {
    /// Whether the provider said the grant (code or refresh token) is no longer valid.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Rejected { error } if error == "invalid_grant")
    }
}

struct Discovered {
    metadata: ProviderMetadata,
}

/// The relying party: configuration, the HTTP client, and the discovery and JWKS caches.
pub struct Oidc {
    issuer: String,
    client_id: String,
    client_auth: ClientAuthentication,
    redirect_uri: String,
    http: reqwest::Client,
    discovered: tokio::sync::OnceCell<Arc<Discovered>>,
    jwks: Mutex<Option<Arc<JwksCache>>>,
    // Serialises JWKS fetches so a burst of unknown `kid`s costs one fetch.
    jwks_fetch: tokio::sync::Mutex<()>,
    // The provider's last DPoP nonce (RFC 9449 §8), by endpoint origin.
    dpop_nonces: crate::platform::dpop::DpopNonces,
    // Discovery and JWKS shared by every instance, so a cold start skips the provider.
    documents: Option<(Arc<dyn DocumentCache>, Arc<dyn Clock>)>,
    // How many copies of each document the cache holds (`DOCUMENT_COPIES`).
    document_copies: usize,
    // What logins ask for, for the start-up warning about `offline_access`.
    scopes: Vec<String>,
    login_prompt: Option<String>,
    // Whether a login without a refresh token was warned of (once per process).
    warned_no_refresh_token: std::sync::atomic::AtomicBool,
    // `BFF_PROFILE=fapi2`: ID tokens are held to `FAPI2_ALGS`.
    fapi2: bool,
}

impl Oidc {
    /// A relying party for `config`; nothing is fetched until first needed.
    pub fn new(config: &Config) -> Result<Self, OidcError> {
        let http = crate::platform::trust::with_extra_roots(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(PROVIDER_CONNECT_TIMEOUT)
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("bff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        Ok(Self {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_auth: ClientAuthentication::new(config),
            redirect_uri: config.redirect_uri(),
            http,
            discovered: tokio::sync::OnceCell::new(),
            jwks: Mutex::new(None),
            jwks_fetch: tokio::sync::Mutex::new(()),
            dpop_nonces: Default::default(),
            documents: None,
            document_copies: DOCUMENT_COPIES,
            scopes: config.scopes.clone(),
            login_prompt: config.login_defaults.prompt.clone(),
            warned_no_refresh_token: Default::default(),
            fapi2: config.is_fapi2(),
        })
    }

    /// Shares discovery and the JWKS through `cache` (the store), for at most
    /// [`DOCUMENT_MAX_AGE_SECS`] as `clock` tells it.
    pub fn with_document_cache(mut self, cache: Arc<dyn DocumentCache>, clock: Arc<dyn Clock>) -> Self {
        self.documents = Some((cache, clock));
        self
    }

    /// Keeps `copies` (at least 1) copies of each document in the cache instead of
    /// [`DOCUMENT_COPIES`]; every instance sharing a table must use the same number. The
    /// capacity simulation (`bff-bench hotkeys`) sets 1 to measure the single-item layout.
    pub fn set_document_copies(&mut self, copies: usize) {
        self.document_copies = copies.max(1);
    }

    /// `url`'s body, from the shared document cache unless `fresh`, else from the provider
    /// (and then cached). The cache is best effort: its failures only cost a fetch.
    ///
    /// The cache holds the document in several items (see [`StoreKey::document`]), so the
    /// reads of a burst of cold starts spread over as many partitions: a read takes one copy
    /// at random, a fetch writes them all with one expiry, so they lapse together and the
    /// provider is asked no more often than with one item. A copy that is missing (a write
    /// that failed) costs its readers one fetch each until one of them rewrites the copies.
    async fn document(&self, kind: &str, url: &str, fresh: bool) -> Result<Vec<u8>, OidcError> {
        if !fresh && let Some((cache, clock)) = &self.documents {
            let copy = rand::random_range(0..self.document_copies);
            match cache
                .get_document(&StoreKey::document(kind, &self.issuer, copy), clock.now())
                .await
            {
                Ok(Some(document)) => return Ok(document.into_bytes()),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, kind, "document cache unavailable"),
            }
        }
        let body = self.get(url).await?;
        if let (Some((cache, clock)), Ok(text)) = (&self.documents, std::str::from_utf8(&body)) {
            let expires_at = clock.now() + DOCUMENT_MAX_AGE_SECS;
            let writes = (0..self.document_copies).map(|copy| {
                let key = StoreKey::document(kind, &self.issuer, copy);
                async move { cache.put_document(&key, text, expires_at).await }
            });
            let failed = futures_util::future::join_all(writes)
                .await
                .into_iter()
                .filter_map(Result::err)
                .collect::<Vec<_>>();
            if let Some(e) = failed.first() {
                tracing::warn!(error = %e, kind, failed = failed.len(), "could not cache a provider document");
            }
        }
        Ok(body)
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
}

pub(crate) fn transport_error(e: reqwest::Error) -> OidcError {
    if e.is_timeout() {
        OidcError::Timeout
    } else {
        // Without the URL: reqwest's message may include the query string.
        OidcError::Unreachable(e.without_url().to_string())
    }
}
