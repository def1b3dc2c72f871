//! DPoP (RFC 9449): a session's proof-of-possession key and the proofs it signs.
//!
//! Each session has its own ES256 key pair, made at login. Its private half is kept only
//! as a [`DpopKeySecret`] (PKCS#8, base64url), which the store seals like the tokens; it
//! never appears in a response or a log line. A proof is a JWS with `typ: dpop+jwt`,
//! `alg: ES256` and the public key as `jwk`; its claims are `htm`, `htu` (the URL
//! without query and fragment), `iat`, a fresh `jti`, the server's `nonce` when one is
//! known, and `ath` (base64url SHA-256 of the access token) towards a resource server.
//!
//! [`DpopNonces`] remembers the last nonce each server (by origin) handed out, in process
//! memory: a nonce only saves a round trip, so losing it on a cold start costs one retry.
//! [`DpopKeyCache`] keeps the parsed keys of recent sessions, so that a warm call signs
//! its proof without parsing the key again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

use crate::domain::secret::{AccessToken, DpopKeySecret, random_token};

/// The `DPoP` request header (and the scheme of `Authorization: DPoP <token>`).
pub const DPOP: &str = "DPoP";
/// The header a server hands out its nonce in.
pub const DPOP_NONCE: &str = "DPoP-Nonce";
/// The error code of a server that wants a proof with its nonce.
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";
/// The longest nonce remembered; a longer one is not a nonce but a mistake or an attack.
const MAX_NONCE_LEN: usize = 512;
/// The most parsed session keys one process keeps (about 1 KB each).
const KEY_CACHE_CAPACITY: usize = 1024;

/// Why a DPoP key could not be made or used; never says what the key is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// The stored key is not a usable P-256 private key.
    #[error("the session's DPoP key is not usable")]
    BadKey,
    /// The crypto library refused to make or use a key.
    #[error("the DPoP key could not sign")]
    Crypto,
}

/// A session's DPoP key pair, ready to sign.
pub struct DpopKey {
    pair: EcdsaKeyPair,
    jwk: serde_json::Value,
    rng: SystemRandom,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The public half only.
        write!(f, "DpopKey({})", self.thumbprint())
    }
}

impl DpopKey {
    /// A fresh key pair, as its secret form to keep (sealed) with the login.
    pub fn generate() -> Result<DpopKeySecret, DpopError> {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| DpopError::Crypto)?;
        Ok(DpopKeySecret::new(URL_SAFE_NO_PAD.encode(pkcs8.as_ref())))
    }

    /// The key pair `secret` holds.
    pub fn from_secret(secret: &DpopKeySecret) -> Result<Self, DpopError> {
        let rng = SystemRandom::new();
        let der = URL_SAFE_NO_PAD.decode(secret.secret()).map_err(|_| DpopError::BadKey)?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).map_err(|_| DpopError::BadKey)?;
        let point = pair.public_key().as_ref();
        let coordinates = point
            .strip_prefix(&[0x04])
            .filter(|c| c.len() == 64)
            .ok_or(DpopError::BadKey)?;
        let (x, y) = coordinates.split_at(32);
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        });
        Ok(Self { pair, jwk, rng })
    }

    /// The public key as a JWK (the `jwk` header of every proof).
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// The RFC 7638 thumbprint of the public key (`jkt`).
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            self.jwk["x"], self.jwk["y"]
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for a `method` request to `url` at `now` (Unix seconds): `htu` is `url`
    /// without query and fragment; `nonce` when the server gave one; `ath` when the
    /// request carries `access_token`.
    pub fn proof(
        &self,
        method: &str,
        url: &url::Url,
        now: u64,
        nonce: Option<&str>,
        access_token: Option<&AccessToken>,
    ) -> Result<String, DpopError> {
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = serde_json::json!({
            "htm": method,
            "htu": htu(url),
            "iat": now,
            "jti": random_token(16),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if let Some(token) = access_token {
            claims["ath"] = ath(token).into();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| DpopError::Crypto)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// `url` as a proof's `htu`: without query and fragment (RFC 9449 §4.2).
pub fn htu(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// The `ath` of `token`: base64url(SHA-256(token)).
pub fn ath(token: &AccessToken) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.secret().as_bytes()))
}

/// The last nonce each server handed out, by origin, in process memory.
#[derive(Debug, Default)]
pub struct DpopNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl DpopNonces {
    /// The nonce last received from `url`'s origin.
    pub fn get(&self, url: &url::Url) -> Option<String> {
        let origin = url.origin().ascii_serialization();
        self.by_origin.lock().ok()?.get(&origin).cloned()
    }

    /// Remembers the `DPoP-Nonce` of an answer from `url`, when it carries a usable one;
    /// whether it did.
    pub fn remember(&self, url: &url::Url, headers: &http::HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN)
        else {
            return false;
        };
        let origin = url.origin().ascii_serialization();
        if let Ok(mut map) = self.by_origin.lock() {
            // One entry per server the BFF talks to: the provider and the upstreams.
            map.insert(origin, nonce.to_owned());
        }
        true
    }
}

/// The parsed DPoP keys of recent sessions, in process memory.
///
/// Parsing a key from its PKCS#8 form checks the pair, which recomputes the public point
/// from the private scalar: several times the cost of signing one proof. A key is kept
/// under the session's store key together with a SHA-256 fingerprint of the secret form
/// it was parsed from, and handed out only when both match: never for another session,
/// and not for this one once its stored key is another. Bounded: a full cache is emptied
/// before the next key goes in, so it never holds more than [`KEY_CACHE_CAPACITY`] keys;
/// a key dropped costs one parse on the session's next call.
#[derive(Debug, Default)]
pub struct DpopKeyCache {
    keys: Mutex<HashMap<String, CachedKey>>,
    parses: AtomicU64,
}

#[derive(Debug)]
struct CachedKey {
    fingerprint: [u8; 32],
    key: Arc<DpopKey>,
}

impl DpopKeyCache {
    /// The key pair `secret` holds, for the session stored under `session`: parsed once,
    /// then taken from the cache while the session keeps the same secret.
    pub fn key_for(&self, session: &str, secret: &DpopKeySecret) -> Result<Arc<DpopKey>, DpopError> {
        let fingerprint: [u8; 32] = Sha256::digest(secret.secret().as_bytes()).into();
        if let Some(cached) = self.lock().get(session)
            && cached.fingerprint == fingerprint
        {
            return Ok(cached.key.clone());
        }
        self.parses.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(DpopKey::from_secret(secret)?);
        let mut keys = self.lock();
        if keys.len() >= KEY_CACHE_CAPACITY && !keys.contains_key(session) {
            keys.clear();
        }
        keys.insert(
            session.to_owned(),
            CachedKey {
                fingerprint,
                key: key.clone(),
            },
        );
        Ok(key)
    }

    /// How many keys this cache has parsed.
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// The map; a panic elsewhere while it was held leaves whole entries only.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, CachedKey>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether an upstream's `WWW-Authenticate` asks for a proof with its nonce
/// (`DPoP error="use_dpop_nonce"`, RFC 9449 §9).
pub fn asks_for_nonce(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            let v = v.trim_start();
            v.get(..4).is_some_and(|s| s.eq_ignore_ascii_case(DPOP)) && v.contains(USE_DPOP_NONCE)
        })
}

/// The wall clock in Unix seconds, for the `iat`/`exp` of proofs and client assertions:
/// servers judge them by their own.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    use super::*;

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    }

    #[test]
    fn a_proof_is_signed_by_the_key_it_names_and_carries_the_request() {
        let secret = DpopKey::generate().expect("key");
        let key = DpopKey::from_secret(&secret).expect("usable");
        let url = url::Url::parse("https://api.example.com/v1/orders?x=1#frag").expect("url");
        let token = AccessToken::new("at-123");
        let proof = key
            .proof("POST", &url, 1_000, Some("n-1"), Some(&token))
            .expect("proof");
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert!(header["jwk"].get("d").is_none(), "no private part in the header");
        let claims = decode(parts[1]);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://api.example.com/v1/orders");
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(
            claims["ath"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(b"at-123")),
            "ath = base64url(SHA-256(token))"
        );
        // The signature verifies with the public key of the header.
        let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.decode(v.as_str().expect("str")).expect("b64");
        let point = [&[4u8][..], &b64(&header["jwk"]["x"]), &b64(&header["jwk"]["y"])].concat();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("verifies");
        // Without nonce and token, neither claim; every proof has its own jti.
        let other = key.proof("GET", &url, 1_000, None, None).expect("proof");
        let other = decode(other.split('.').nth(1).expect("claims"));
        assert!(other.get("nonce").is_none() && other.get("ath").is_none());
        assert_ne!(other["jti"], claims["jti"]);
    }

    #[test]
    fn the_key_survives_its_secret_form_and_never_prints() {
        let secret = DpopKey::generate().expect("key");
        let a = DpopKey::from_secret(&secret).expect("usable");
        let b = DpopKey::from_secret(&secret).expect("usable");
        assert_eq!(a.public_jwk(), b.public_jwk());
        assert_eq!(a.thumbprint().len(), 43);
        assert!(!format!("{a:?}").contains(secret.secret()));
        assert!(!format!("{secret:?}").contains(secret.secret()));
        assert_ne!(DpopKey::generate().expect("key"), secret, "every session its own key");
        assert_eq!(
            DpopKey::from_secret(&DpopKeySecret::new("not-a-key")).err(),
            Some(DpopError::BadKey)
        );
    }

    #[test]
    fn a_cached_key_is_parsed_once_and_only_ever_serves_its_own_session() {
        let cache = DpopKeyCache::default();
        let (a, b) = (DpopKey::generate().expect("key"), DpopKey::generate().expect("key"));
        let thumbprint = |s: &DpopKeySecret| DpopKey::from_secret(s).expect("usable").thumbprint();
        let first = cache.key_for("session#a", &a).expect("usable");
        assert_eq!(first.thumbprint(), thumbprint(&a));
        assert_eq!(cache.parses(), 1);
        // The second call of the same session does not parse again.
        let second = cache.key_for("session#a", &a).expect("usable");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(cache.parses(), 1);
        // Another session gets its own key, never the cached one.
        assert_eq!(
            cache.key_for("session#b", &b).expect("usable").thumbprint(),
            thumbprint(&b)
        );
        // The same store key holding another secret (a new login under a reused key) gets
        // that secret's key.
        assert_eq!(
            cache.key_for("session#a", &b).expect("usable").thumbprint(),
            thumbprint(&b)
        );
        assert_eq!(cache.parses(), 3);
        assert_eq!(
            cache.key_for("session#c", &DpopKeySecret::new("not-a-key")).err(),
            Some(DpopError::BadKey)
        );
    }

    #[test]
    fn the_key_cache_is_bounded() {
        let cache = DpopKeyCache::default();
        let secret = DpopKey::generate().expect("key");
        for i in 0..=KEY_CACHE_CAPACITY {
            cache.key_for(&format!("session#{i}"), &secret).expect("usable");
        }
        assert!(cache.lock().len() <= KEY_CACHE_CAPACITY);
        assert!(cache.lock().contains_key(&format!("session#{KEY_CACHE_CAPACITY}")));
    }

    #[test]
    fn nonces_are_kept_per_origin_and_nonce_requests_recognised() {
        let nonces = DpopNonces::default();
        let a = url::Url::parse("https://id.example.com/token").expect("url");
        let b = url::Url::parse("https://api.example.com/v1/x").expect("url");
        let mut headers = http::HeaderMap::new();
        assert!(!nonces.remember(&a, &headers));
        headers.insert(DPOP_NONCE, "n-a".parse().expect("value"));
        assert!(nonces.remember(&a, &headers));
        assert_eq!(nonces.get(&a).as_deref(), Some("n-a"));
        assert_eq!(
            nonces
                .get(&url::Url::parse("https://id.example.com/par").expect("url"))
                .as_deref(),
            Some("n-a")
        );
        assert_eq!(nonces.get(&b), None);
        let mut challenge = http::HeaderMap::new();
        challenge.insert(
            http::header::WWW_AUTHENTICATE,
            r#"DPoP error="use_dpop_nonce", error_description="nonce""#
                .parse()
                .expect("value"),
        );
        assert!(asks_for_nonce(&challenge));
        challenge.insert(
            http::header::WWW_AUTHENTICATE,
            r#"Bearer error="invalid_token""#.parse().expect("value"),
        );
        assert!(!asks_for_nonce(&challenge));
    }
}
