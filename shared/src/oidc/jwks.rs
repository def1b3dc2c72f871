//! The provider's signing keys: the JWKS cache and signature checks against it.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};

use super::{ALLOWED_ALGS, DOCUMENT_MAX_AGE_SECS, JWKS_REFETCH_INTERVAL, Oidc, OidcError};

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
            Self::NoKey => "no key of the provider's JWKS fits its kid and algorithm",
            Self::Ambiguous => "several keys of the provider's JWKS fit and it names no kid",
            Self::BadSignature => "the signature does not verify with the provider's key",
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

/// The accepted signature algorithms, as a provider's documentation names them.
pub(crate) fn accepted_algs() -> String {
    ALLOWED_ALGS.iter().map(alg_name).collect::<Vec<_>>().join(", ")
}

/// An algorithm's JOSE name (`RS256`).
pub(crate) fn alg_name(alg: &CoreJwsSigningAlgorithm) -> String {
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{alg:?}"))
}

/// Why a JWS from the provider was refused, in words that name the cause (never the
/// token itself).
fn refusal(alg: &str) -> String {
    format!(
        "signed with `{alg}`, which the BFF does not accept (accepted: {})",
        accepted_algs()
    )
}

impl Oidc {
    /// The payload of `raw`, a compact JWS the provider signed (logout tokens, signed
    /// userinfo): an accepted asymmetric `alg` and a valid signature by a key of its JWKS,
    /// refetched once when no key fits. `Err` holds a description naming the cause;
    /// the claims are the caller's to check.
    pub(crate) async fn verified_jws(&self, raw: &str) -> Result<serde_json::Map<String, serde_json::Value>, JwsError> {
        let invalid = |why: String| JwsError::Invalid(why);
        let parts: Vec<&str> = raw.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err(invalid(if parts.len() == 5 {
                "encrypted (JWE), which the BFF does not decrypt".into()
            } else {
                "not a compact JWS".into()
            }));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| invalid(format!("the {what} is not base64url")))
        };
        let header: serde_json::Value =
            serde_json::from_slice(&decode(header, "header")?).map_err(|_| invalid("the header is not JSON".into()))?;
        let alg_text = header["alg"].as_str().unwrap_or("(none)").to_owned();
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(header["alg"].clone()).map_err(|_| invalid(refusal(&alg_text)))?;
        if !ALLOWED_ALGS.contains(&alg) {
            return Err(invalid(refusal(&alg_text)));
        }
        let kid = header["kid"].as_str().map(str::to_owned);
        let signing_input = &raw[..raw.rfind('.').unwrap_or(0)];
        let signature = decode(signature, "signature")?;

        let verify = |keys: &CoreJsonWebKeySet| verify_jws(keys, kid.as_deref(), &alg, signing_input, &signature);
        let mut verified = verify(&self.jwks(false).await.map_err(JwsError::Provider)?.keys);
        if matches!(verified, Err(KeyMatch::NoKey)) {
            verified = verify(&self.jwks(true).await.map_err(JwsError::Provider)?.keys);
        }
        verified.map_err(|e| {
            invalid(format!(
                "{} ({alg_text}, kid {})",
                e.describe(),
                kid.as_deref().map_or("absent".to_owned(), |k| format!("`{k}`"))
            ))
        })?;
        serde_json::from_slice(&decode(payload, "payload")?)
            .map_err(|_| invalid("the payload is not a JSON object".into()))
    }
}

/// Why [`Oidc::verified_jws`] refused a JWS.
#[derive(Debug)]
pub(crate) enum JwsError {
    /// The keys could not be read.
    Provider(OidcError),
    /// The JWS itself is wrong: the description says how.
    Invalid(String),
}

/// The JWKS as fetched, and when.
pub(crate) struct JwksCache {
    pub(crate) keys: CoreJsonWebKeySet,
    fetched_at: Instant,
}

impl Oidc {
    /// Makes the provider's keys ready, as the first ID-token check of an instance does:
    /// from this process's cache, else the shared document cache, else the provider.
    pub async fn keys_ready(&self) -> Result<(), OidcError> {
        self.jwks(false).await.map(|_| ())
    }

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
