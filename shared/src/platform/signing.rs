//! Keys that sign the BFF's client assertions (`private_key_jwt`, RFC 7523).
//!
//! [`AssertionSigner`] is the port: a key that signs a JWS signing input and knows its
//! public half. [`PemKey`] is a private key held in memory (from `BFF_CLIENT_KEY`, or its
//! Secrets Manager reference); the KMS key, whose private half never leaves KMS, is
//! [`crate::platform::kms::KmsKey`]. RSA keys sign RS256 (the one algorithm every provider
//! that offers `private_key_jwt` accepts), EC P-256 keys ES256.
//!
//! A key's `kid` is the configured one, else its RFC 7638 thumbprint, so the printed JWKS
//! and the assertions always agree. This module never logs, and no error it returns
//! carries key material.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3 asks for 2048 at least).
pub const MIN_RSA_BITS: usize = 2048;

/// A JWS algorithm the BFF signs client assertions with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256, the signature as `r || s`.
    Es256,
}

impl JwsAlg {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

/// The public half of a signing key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// An RSA key: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// A P-256 key: its point's coordinates, 32 bytes each.
    P256 {
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicJwk({})", self.thumbprint())
    }
}

impl PublicJwk {
    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order,
    /// base64url.
    pub fn thumbprint(&self) -> String {
        let b64 = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let canonical = match self {
            Self::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n)),
            Self::P256 { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b64(x), b64(y)),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The JWK for registration at the provider: the public members, `kid`, `alg` and
    /// `use: sig`.
    pub fn to_json(&self, kid: &str, alg: JwsAlg) -> serde_json::Value {
        let b64 = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let mut jwk = match self {
            Self::Rsa { n, e } => serde_json::json!({"kty": "RSA", "n": b64(n), "e": b64(e)}),
            Self::P256 { x, y } => serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}),
        };
        jwk["kid"] = kid.into();
        jwk["alg"] = alg.name().into();
        jwk["use"] = "sig".into();
        jwk
    }

    /// The key of a DER `SubjectPublicKeyInfo` (what KMS `GetPublicKey` answers): RSA or
    /// P-256.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let bad = || KeyError("not a DER public key");
        let (spki, _) = der_item(der, 0x30).ok_or_else(bad)?;
        let (algorithm, rest) = der_item(spki, 0x30).ok_or_else(bad)?;
        let (bits, _) = der_item(rest, 0x03).ok_or_else(bad)?;
        let key = bits.strip_prefix(&[0]).ok_or_else(bad)?;
        let (oid, params) = der_item(algorithm, 0x06).ok_or_else(bad)?;
        if oid == RSA {
            let (sequence, _) = der_item(key, 0x30).ok_or_else(bad)?;
            let (n, rest) = der_item(sequence, 0x02).ok_or_else(bad)?;
            let (e, _) = der_item(rest, 0x02).ok_or_else(bad)?;
            let strip = |v: &[u8]| {
                v.iter()
                    .position(|b| *b != 0)
                    .map(|i| v[i..].to_vec())
                    .unwrap_or_default()
            };
            return Ok(Self::Rsa {
                n: strip(n),
                e: strip(e),
            });
        }
        if oid == EC && der_item(params, 0x06).is_some_and(|(curve, _)| curve == P256) {
            return p256_point(key).ok_or_else(bad);
        }
        Err(KeyError("an unsupported key type (RSA or EC P-256 are)"))
    }
}

/// `0x04 || x || y` as a P-256 JWK.
fn p256_point(point: &[u8]) -> Option<PublicJwk> {
    let coordinates = point.strip_prefix(&[0x04]).filter(|c| c.len() == 64)?;
    let (x, y) = coordinates.split_at(32);
    Some(PublicJwk::P256 {
        x: x.to_vec(),
        y: y.to_vec(),
    })
}

/// The content of the DER item at the start of `input` when its tag is `tag`, and what
/// follows it.
pub(crate) fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A key that cannot sign client assertions; says why, never what the key is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub &'static str);

/// Why a signature could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The local crypto library refused (it does not say why).
    #[error("the key could not sign")]
    Crypto,
    /// KMS answered an error (its code) or could not be reached.
    #[error("KMS Sign failed: {0}")]
    Kms(String),
}

/// A key that signs client assertions: the port the OIDC adapter signs through.
#[async_trait]
pub trait AssertionSigner: Send + Sync + fmt::Debug {
    /// The algorithm of its signatures.
    fn alg(&self) -> JwsAlg;
    /// The `kid` its assertions carry and its JWK states.
    fn kid(&self) -> &str;
    /// Its public half.
    fn public_jwk(&self) -> &PublicJwk;
    /// The JWS signature of `input` (the `header.payload` of a compact JWS).
    async fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError>;

    /// The public JWKS to register at the provider: this one key.
    fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": [self.public_jwk().to_json(self.kid(), self.alg())]})
    }
}

enum PemPair {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
}

/// A PEM private key held in memory: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or EC P-256) or
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub struct PemKey {
    pair: PemPair,
    public: PublicJwk,
    kid: String,
    rng: SystemRandom,
}

impl fmt::Debug for PemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The public half only.
        f.debug_struct("PemKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish()
    }
}

impl PemKey {
    /// Parses `pem`; `kid` defaults to the key's thumbprint.
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| KeyError("holds no PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"))?;
        let pair = match &der {
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der())
                .map(PemPair::Rsa)
                .map_err(|_| KeyError("is not a usable RSA private key"))?,
            PrivateKeyDer::Pkcs8(der) => {
                let bytes = der.secret_pkcs8_der();
                match RsaKeyPair::from_pkcs8(bytes) {
                    Ok(pair) => PemPair::Rsa(pair),
                    Err(_) => EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, bytes, &rng)
                        .map(PemPair::P256)
                        .map_err(|_| KeyError("is not a usable RSA or EC P-256 private key"))?,
                }
            }
            PrivateKeyDer::Sec1(_) => {
                return Err(KeyError(
                    "is an EC key in SEC1 form (BEGIN EC PRIVATE KEY); convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`",
                ));
            }
            _ => return Err(KeyError("is not a supported private key")),
        };
        let public = match &pair {
            PemPair::Rsa(pair) => {
                if pair.public().modulus_len() * 8 < MIN_RSA_BITS {
                    return Err(KeyError("is an RSA key shorter than 2048 bits"));
                }
                let components = PublicKeyComponents::<Vec<u8>>::from(pair.public());
                PublicJwk::Rsa {
                    n: components.n,
                    e: components.e,
                }
            }
            PemPair::P256(pair) => p256_point(pair.public_key().as_ref()).ok_or(KeyError("is not a P-256 key"))?,
        };
        let kid = kid.unwrap_or_else(|| public.thumbprint());
        Ok(Self { pair, public, kid, rng })
    }
}

#[async_trait]
impl AssertionSigner for PemKey {
    fn alg(&self) -> JwsAlg {
        match self.pair {
            PemPair::Rsa(_) => JwsAlg::Rs256,
            PemPair::P256(_) => JwsAlg::Es256,
        }
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    async fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            PemPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, input, &mut signature)
                    .map_err(|_| SignError::Crypto)?;
                Ok(signature)
            }
            PemPair::P256(pair) => pair
                .sign(&self.rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Crypto),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test keys, made for these tests only (`openssl genpkey`).
    pub(crate) const RSA_PKCS8: &str = include_str!("../../tests/data/client-keys/rsa.pem");
    pub(crate) const RSA_PKCS1: &str = include_str!("../../tests/data/client-keys/rsa-pkcs1.pem");
    pub(crate) const P256_PKCS8: &str = include_str!("../../tests/data/client-keys/p256.pem");
    const P256_SEC1: &str = include_str!("../../tests/data/client-keys/p256-sec1.pem");
    const RSA_PUBLIC: &str = include_str!("../../tests/data/client-keys/rsa-public.pem");
    const P256_PUBLIC: &str = include_str!("../../tests/data/client-keys/p256-public.pem");
    const RSA_1024: &str = include_str!("../../tests/data/client-keys/rsa-1024.pem");

    fn verify(key: &PemKey, input: &[u8], sig: &[u8]) -> bool {
        match key.public_jwk() {
            PublicJwk::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok(),
            PublicJwk::P256 { x, y } => {
                let point = [&[4u8][..], x, y].concat();
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, sig)
                    .is_ok()
            }
        }
    }

    #[tokio::test]
    async fn rsa_and_p256_keys_sign_what_their_public_half_verifies() {
        for (pem, alg) in [
            (RSA_PKCS8, JwsAlg::Rs256),
            (RSA_PKCS1, JwsAlg::Rs256),
            (P256_PKCS8, JwsAlg::Es256),
        ] {
            let key = PemKey::from_pem(pem, None).expect("usable key");
            assert_eq!(key.alg(), alg);
            let sig = key.sign(b"header.payload").await.expect("signs");
            assert!(verify(&key, b"header.payload", &sig), "{alg:?}");
            assert!(!verify(&key, b"header.other", &sig), "{alg:?}");
            assert_eq!(key.kid(), key.public_jwk().thumbprint());
        }
        // The same RSA key in either form is the same key.
        let pkcs8 = PemKey::from_pem(RSA_PKCS8, None).expect("pkcs8");
        let pkcs1 = PemKey::from_pem(RSA_PKCS1, None).expect("pkcs1");
        assert_eq!(pkcs8.public_jwk(), pkcs1.public_jwk());
    }

    #[test]
    fn unusable_keys_are_refused_without_echoing_them() {
        for (pem, reason) in [
            ("", "holds no PEM private key"),
            ("not a key", "holds no PEM private key"),
            (RSA_PUBLIC, "holds no PEM private key"),
            (P256_SEC1, "SEC1"),
            // ring itself refuses RSA keys under 2048 bits.
            (RSA_1024, "is not a usable RSA"),
        ] {
            let err = PemKey::from_pem(pem, None).expect_err(reason);
            assert!(err.to_string().contains(reason), "{err}");
            assert!(!err.to_string().contains("MII"), "{err}");
        }
        let key = PemKey::from_pem(RSA_PKCS8, None).expect("key");
        assert!(!format!("{key:?}").contains("MII"));
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = URL_SAFE_NO_PAD
            .decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
            .expect("n");
        let e = URL_SAFE_NO_PAD.decode("AQAB").expect("e");
        assert_eq!(
            PublicJwk::Rsa { n, e }.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_spki_public_key_is_the_jwk_of_its_private_key() {
        for (private, public) in [(RSA_PKCS8, RSA_PUBLIC), (P256_PKCS8, P256_PUBLIC)] {
            let key = PemKey::from_pem(private, None).expect("key");
            let der = base64::engine::general_purpose::STANDARD
                .decode(public.lines().filter(|l| !l.starts_with("-----")).collect::<String>())
                .expect("der");
            assert_eq!(&PublicJwk::from_spki_der(&der).expect("spki"), key.public_jwk());
        }
        assert!(PublicJwk::from_spki_der(b"\x30\x03\x02\x01\x00").is_err());
    }
}
