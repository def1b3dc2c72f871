//! Tokens sealed at rest with AES-256-GCM.
//!
//! Every token and PKCE verifier is encrypted before it reaches the store, with the
//! item's store key as associated data: a copy of the table reveals nothing usable, and
//! an item copied under another key does not decrypt. Keys come from configuration
//! (`BFF_TOKEN_KEYS`: `id:base64key,...`, the first one sealing, every one opening), so
//! rotation is adding a new key in front and dropping the old one once sessions sealed
//! with it have expired. This module never logs a key or a plaintext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore as _;

/// Prefix of a sealed value: format version 1.
const PREFIX: &str = "v1";

/// What can go wrong with keys or sealed values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// `BFF_TOKEN_KEYS` is malformed (never quoted: it is a secret).
    #[error("{0}")]
    BadKeys(&'static str),
    /// A sealed value is malformed, sealed with an unknown key, tampered with, or bound to
    /// another store key.
    #[error("sealed value does not open")]
    DoesNotOpen,
}

/// The sealing key and every key that may still open values.
pub struct Sealer {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    /// Parses `id:base64key,...` (32-byte keys, standard base64); the first key seals.
    pub fn from_config(spec: &str) -> Result<Self, SealError> {
        let mut keys = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, material) = entry
                .split_once(':')
                .ok_or(SealError::BadKeys("each key must be `id:base64key`"))?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(SealError::BadKeys("key ids must be letters, digits, `-` or `_`"));
            }
            let bytes = STANDARD
                .decode(material.trim())
                .map_err(|_| SealError::BadKeys("a key is not base64"))?;
            if bytes.len() != 32 {
                return Err(SealError::BadKeys("each key must be 32 bytes (AES-256)"));
            }
            if keys.iter().any(|(existing, _)| existing == id) {
                return Err(SealError::BadKeys("key ids must be unique"));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::BadKeys("bad key"))?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(SealError::BadKeys("no key given"));
        }
        Ok(Self { keys })
    }

    /// A sealer with one random key, for a single process that shares no store.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let spec = format!("ephemeral:{}", STANDARD.encode(key));
        Self::from_config(&spec).unwrap_or_else(|_| unreachable!("a freshly made spec is valid"))
    }

    /// Seals `plaintext` bound to `context` (the store key).
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a 96-bit nonce cannot fail.
        let ciphertext = cipher.encrypt(Nonce::from_slice(&nonce), payload).unwrap_or_default();
        format!(
            "{PREFIX}.{id}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        )
    }

    /// Opens a value sealed by [`Sealer::seal`] under the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let mut parts = sealed.split('.');
        let (Some(PREFIX), Some(id), Some(nonce), Some(ciphertext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::DoesNotOpen);
        };
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(key_id, _)| key_id == id)
            .ok_or(SealError::DoesNotOpen)?;
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let ciphertext = URL_SAFE_NO_PAD.decode(ciphertext).map_err(|_| SealError::DoesNotOpen)?;
        if nonce.len() != 12 {
            return Err(SealError::DoesNotOpen);
        }
        let payload = Payload {
            msg: &ciphertext,
            aad: context.as_bytes(),
        };
        let plaintext = cipher
            .decrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| SealError::DoesNotOpen)?;
        String::from_utf8(plaintext).map_err(|_| SealError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_values_round_trip_and_hide_the_plaintext() {
        let sealer = Sealer::from_config(&format!("k1:{}", key(1))).expect("keys");
        let sealed = sealer.seal("eyJ-access-token", "session#abc");
        assert!(!sealed.contains("access"));
        assert!(sealed.starts_with("v1.k1."));
        assert_eq!(sealer.open(&sealed, "session#abc").expect("opens"), "eyJ-access-token");
        assert_ne!(
            sealed,
            sealer.seal("eyJ-access-token", "session#abc"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let sealer = Sealer::from_config(&format!("k1:{}", key(1))).expect("keys");
        let sealed = sealer.seal("token", "session#abc");
        assert_eq!(sealer.open(&sealed, "session#other"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn tampered_values_do_not_open() {
        let sealer = Sealer::from_config(&format!("k1:{}", key(1))).expect("keys");
        let sealed = sealer.seal("token", "ctx");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert_eq!(sealer.open(&tampered, "ctx"), Err(SealError::DoesNotOpen));
        assert_eq!(
            sealer.open("token", "ctx"),
            Err(SealError::DoesNotOpen),
            "plaintext is not accepted"
        );
    }

    #[test]
    fn rotation_keeps_old_keys_for_opening_and_seals_with_the_new_one() {
        let old = Sealer::from_config(&format!("k1:{}", key(1))).expect("old");
        let sealed_old = old.seal("token", "ctx");
        let rotated = Sealer::from_config(&format!("k2:{},k1:{}", key(2), key(1))).expect("rotated");
        assert_eq!(rotated.open(&sealed_old, "ctx").expect("old still opens"), "token");
        let sealed_new = rotated.seal("token", "ctx");
        assert!(sealed_new.starts_with("v1.k2."));
        assert_eq!(
            old.open(&sealed_new, "ctx"),
            Err(SealError::DoesNotOpen),
            "the old sealer lacks k2"
        );
        let dropped = Sealer::from_config(&format!("k2:{}", key(2))).expect("dropped");
        assert_eq!(dropped.open(&sealed_old, "ctx"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn bad_key_specs_are_refused_without_echoing_them() {
        for bad in [
            "",
            "k1",
            "k1:notbase64!",
            &format!("k1:{}", STANDARD.encode([1u8; 16])),
            "bad id:AAAA",
        ] {
            let err = Sealer::from_config(bad).expect_err(bad);
            assert!(!err.to_string().contains("AAAA"));
        }
        let dup = format!("k1:{},k1:{}", key(1), key(2));
        assert!(Sealer::from_config(&dup).is_err());
    }

    #[test]
    fn debug_output_names_key_ids_only() {
        let sealer = Sealer::from_config(&format!("k1:{}", key(7))).expect("keys");
        let shown = format!("{sealer:?}");
        assert!(shown.contains("k1") && !shown.contains(&key(7)));
    }
}
