//! The provider's signing keys: the JWKS cache and signature checks against it.

use std::sync::Arc;
use std::time::Instant;

use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};

use super::{DOCUMENT_MAX_AGE_SECS, JWKS_REFETCH_INTERVAL, Oidc, OidcError};

/// Why no key verified a JWS.
pub(crate) enum KeyMatch {
    /// No key of the set fits the `kid` and `alg`: the set may be stale.
    NoKey,
    /// Several keys fit and the token names none.
    Ambiguous,
    /// The fitting key did not verify the signature.
    BadSignature,
}

impl KeyMatch {
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::NoKey => "no key matches",
            Self::Ambiguous => "several keys match and no kid",
            Self::BadSignature => "bad signature",
        }
    }
}

/// Verifies a JWS signature with the key of `keys` that fits `kid` and `alg`.
pub(crate) fn verify_jws(
    keys: &CoreJsonWebKeySet,
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
    let candidates: Vec<_> = keys
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
        several => {
            if several
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

/// The JWKS as fetched, and when.
pub(crate) struct JwksCache {
    pub(crate) keys: CoreJsonWebKeySet,
    fetched_at: Instant,
}

impl Oidc {
    /// The JWKS, from the cache unless `refetch` asks for a fresh copy. Fetches are
    /// serialised and at most one per [`JWKS_REFETCH_INTERVAL`]: a refetch asked for sooner
    /// waits out the rest of the interval (so a key rotation right after a fetch still
    /// works), and everyone who queued meanwhile shares that one fetch.
    pub(crate) async fn jwks(&self, refetch: bool) -> Result<Arc<JwksCache>, OidcError> {
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
}
