//! Secrets sealed at rest with AES-256-GCM, and cached documents authenticated with
//! HMAC-SHA256.
//!
//! Every token, PKCE verifier and set of personal claims is encrypted before it reaches
//! the store. The associated data binds a value to its item (the store key) and to its
//! field (`access_token`, `refresh_token`, ...): a copy of the table reveals nothing
//! usable, an item copied under another key does not decrypt, and neither does a value
//! moved to another field of its own item.
//!
//! Each value is sealed under a key of its own, derived with HKDF-SHA256 from the
//! configured key and a random 128-bit salt (and with a random 96-bit nonce), so the
//! AES-GCM limit on random nonces (far fewer than 2^32 messages per key) is never
//! approached however many values one configured key seals.
//!
//! Keys come from configuration (`BFF_TOKEN_KEYS`: `id:base64key,...`, the first one
//! sealing, every one opening), so rotation is adding a new key in front and dropping the
//! old one once sessions sealed with it have expired. The same keys, through HKDF under a
//! label of their own, give the keys of [`Sealer::mac`], which authenticates the provider
//! documents cached in the store. This module never logs a key or a plaintext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// Prefix of a sealed value: format version 2 (per-value keys, field binding). Values of
/// version 1 no longer open: the sessions they belong to end.
const PREFIX: &str = "v2";
/// Prefix of an authentication tag made by [`Sealer::mac`].
const MAC_PREFIX: &str = "m1";
/// HKDF label of the per-value sealing keys; the value's salt follows it.
const SEAL_LABEL: &[u8] = b"bff/seal/v2/";
/// HKDF label of the document-authentication key: distinct from [`SEAL_LABEL`], so no
/// sealing key is ever a MAC key.
const MAC_LABEL: &[u8] = b"bff/document-mac/v1";
/// Random salt of each sealed value, in bytes.
const SALT_LEN: usize = 16;
/// AES-GCM nonce, in bytes.
const NONCE_LEN: usize = 12;

/// What can go wrong with keys, sealed values or authentication tags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// `BFF_TOKEN_KEYS` is malformed (never quoted: it is a secret).
    #[error("{0}")]
    BadKeys(&'static str),
    /// A sealed value is malformed, sealed with an unknown key, tampered with, or bound to
    /// another store key or field.
    #[error("sealed value does not open")]
    DoesNotOpen,
    /// An authentication tag is malformed, made with an unknown key, or does not match
    /// what it claims to authenticate.
    #[error("authentication tag does not verify")]
    NotAuthentic,
}

/// One configured key: its id, the HKDF state the per-value keys come from, and the
/// document-authentication key derived from it.
struct Key {
    id: String,
    hkdf: Hkdf<Sha256>,
    mac: Hmac<Sha256>,
}

impl Key {
    fn new(id: &str, material: &[u8]) -> Self {
        // The configured key is already uniformly random: HKDF-Extract without a salt.
        let hkdf = Hkdf::<Sha256>::new(None, material);
        let mut mac_key = [0u8; 32];
        hkdf.expand(MAC_LABEL, &mut mac_key)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self {
            id: id.to_owned(),
            hkdf,
            mac,
        }
    }

    /// The AES-256-GCM cipher of the value whose salt is `salt`.
    fn value_cipher(&self, salt: &[u8]) -> Aes256Gcm {
        let mut key = [0u8; 32];
        self.hkdf
            .expand_multi_info(&[SEAL_LABEL, salt], &mut key)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        Aes256Gcm::new(&key.into())
    }

    /// HMAC-SHA256 of `parts`, each framed with its length.
    fn mac_of(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&framed(parts.iter().map(|p| p.as_bytes())));
        mac
    }
}

/// The sealing key and every key that may still open values.
pub struct Sealer {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|key| key.id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    /// Parses `id:base64key,...` (32-byte keys, standard base64); the first key seals.
    pub fn from_config(spec: &str) -> Result<Self, SealError> {
        let mut keys: Vec<Key> = Vec::new();
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
            if keys.iter().any(|existing| existing.id == id) {
                return Err(SealError::BadKeys("key ids must be unique"));
            }
            keys.push(Key::new(id, &bytes));
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

    /// Seals `plaintext` bound to `item` (the store key) and `field` (its place in the
    /// item): `v2.<key id>.<salt>.<nonce>.<ciphertext>`.
    pub fn seal(&self, plaintext: &str, item: &str, field: &str) -> String {
        let key = &self.keys[0];
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut salt);
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(item, field);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: &aad,
        };
        // Encryption with a valid key and a 96-bit nonce cannot fail.
        let ciphertext = key
            .value_cipher(&salt)
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        format!(
            "{PREFIX}.{}.{}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(salt),
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        )
    }

    /// Opens a value sealed by [`Sealer::seal`] for the same `item` and `field`.
    pub fn open(&self, sealed: &str, item: &str, field: &str) -> Result<String, SealError> {
        let mut parts = sealed.split('.');
        let (Some(PREFIX), Some(id), Some(salt), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SealError::DoesNotOpen);
        };
        let key = self.key(id).ok_or(SealError::DoesNotOpen)?;
        let salt = URL_SAFE_NO_PAD.decode(salt).map_err(|_| SealError::DoesNotOpen)?;
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let ciphertext = URL_SAFE_NO_PAD.decode(ciphertext).map_err(|_| SealError::DoesNotOpen)?;
        if salt.len() != SALT_LEN || nonce.len() != NONCE_LEN {
            return Err(SealError::DoesNotOpen);
        }
        let aad = associated_data(item, field);
        let payload = Payload {
            msg: &ciphertext,
            aad: &aad,
        };
        let plaintext = key
            .value_cipher(&salt)
            .decrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| SealError::DoesNotOpen)?;
        String::from_utf8(plaintext).map_err(|_| SealError::DoesNotOpen)
    }

    /// A tag authenticating `parts` with the current key: `m1.<key id>.<HMAC-SHA256>`.
    /// Each part is framed with its length, so no other list of parts has the same tag.
    pub fn mac(&self, parts: &[&str]) -> String {
        let key = &self.keys[0];
        let tag = key.mac_of(parts).finalize().into_bytes();
        format!("{MAC_PREFIX}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks (in constant time) that `tag` was made by [`Sealer::mac`] over `parts` with
    /// one of the configured keys.
    pub fn verify_mac(&self, tag: &str, parts: &[&str]) -> Result<(), SealError> {
        let mut fields = tag.split('.');
        let (Some(MAC_PREFIX), Some(id), Some(tag), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(SealError::NotAuthentic);
        };
        let key = self.key(id).ok_or(SealError::NotAuthentic)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| SealError::NotAuthentic)?;
        key.mac_of(parts)
            .verify_slice(&tag)
            .map_err(|_| SealError::NotAuthentic)
    }

    fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|key| key.id == id)
    }
}

/// The associated data of a sealed value: the format, its item and its field, each
/// framed with its length so that no two (item, field) pairs share it.
fn associated_data(item: &str, field: &str) -> Vec<u8> {
    framed([PREFIX.as_bytes(), item.as_bytes(), field.as_bytes()])
}

/// `parts`, each preceded by its length (8 bytes, big-endian).
fn framed<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn sealer(spec: &str) -> Sealer {
        let spec = spec.replace("K1", &key(1)).replace("K2", &key(2));
        Sealer::from_config(&spec).expect("keys")
    }

    #[test]
    fn sealed_values_round_trip_and_hide_the_plaintext() {
        let sealer = sealer("k1:K1");
        let sealed = sealer.seal("eyJ-access-token", "session#abc", "access_token");
        assert!(!sealed.contains("access"));
        assert!(sealed.starts_with("v2.k1."));
        assert_eq!(
            sealer.open(&sealed, "session#abc", "access_token").expect("opens"),
            "eyJ-access-token"
        );
        assert_ne!(
            sealed,
            sealer.seal("eyJ-access-token", "session#abc", "access_token"),
            "fresh salt and nonce each time"
        );
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let sealer = sealer("k1:K1");
        let sealed = sealer.seal("token", "session#abc", "access_token");
        assert_eq!(
            sealer.open(&sealed, "session#other", "access_token"),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn a_value_moved_to_another_field_of_its_item_does_not_open() {
        let sealer = sealer("k1:K1");
        let sealed = sealer.seal("refresh", "session#abc", "refresh_token");
        assert_eq!(
            sealer.open(&sealed, "session#abc", "access_token"),
            Err(SealError::DoesNotOpen)
        );
        // Framing: moving bytes between the item and the field name changes nothing.
        let sealed = sealer.seal("x", "session#ab", "caccess_token");
        assert_eq!(
            sealer.open(&sealed, "session#abc", "access_token"),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn each_value_is_sealed_under_a_key_of_its_own() {
        // Same configured key, same plaintext, item, field: the salts differ, so do the
        // derived keys; a value whose salt is swapped for another's does not open.
        let sealer = sealer("k1:K1");
        let a = sealer.seal("token", "ctx", "f");
        let b = sealer.seal("token", "ctx", "f");
        let parts_a: Vec<&str> = a.split('.').collect();
        let parts_b: Vec<&str> = b.split('.').collect();
        assert_ne!(parts_a[2], parts_b[2], "fresh salt");
        let mixed = format!("v2.k1.{}.{}.{}", parts_b[2], parts_a[3], parts_a[4]);
        assert_eq!(sealer.open(&mixed, "ctx", "f"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn values_of_the_first_format_no_longer_open() {
        // `v1.<id>.<nonce>.<ciphertext>`: AES-GCM under the configured key itself.
        let material = [1u8; 32];
        let cipher = Aes256Gcm::new_from_slice(&material).expect("key");
        let nonce = [7u8; NONCE_LEN];
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"token",
                    aad: b"ctx",
                },
            )
            .expect("encrypts");
        let v1 = format!(
            "v1.k1.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        );
        assert_eq!(sealer("k1:K1").open(&v1, "ctx", "f"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn tampered_values_do_not_open() {
        let sealer = sealer("k1:K1");
        let sealed = sealer.seal("token", "ctx", "f");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert_eq!(sealer.open(&tampered, "ctx", "f"), Err(SealError::DoesNotOpen));
        assert_eq!(
            sealer.open("token", "ctx", "f"),
            Err(SealError::DoesNotOpen),
            "plaintext is not accepted"
        );
    }

    #[test]
    fn rotation_keeps_old_keys_for_opening_and_seals_with_the_new_one() {
        let old = sealer("k1:K1");
        let sealed_old = old.seal("token", "ctx", "f");
        let rotated = sealer("k2:K2,k1:K1");
        assert_eq!(rotated.open(&sealed_old, "ctx", "f").expect("old still opens"), "token");
        let sealed_new = rotated.seal("token", "ctx", "f");
        assert!(sealed_new.starts_with("v2.k2."));
        assert_eq!(
            old.open(&sealed_new, "ctx", "f"),
            Err(SealError::DoesNotOpen),
            "the old sealer lacks k2"
        );
        let dropped = sealer("k2:K2");
        assert_eq!(dropped.open(&sealed_old, "ctx", "f"), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn tags_verify_only_for_the_same_parts_and_keys() {
        let sealer = sealer("k1:K1");
        let tag = sealer.mac(&["doc#jwks#h", "1700000000", "{}"]);
        assert!(tag.starts_with("m1.k1."));
        assert_eq!(sealer.verify_mac(&tag, &["doc#jwks#h", "1700000000", "{}"]), Ok(()));
        for other in [
            ["doc#jwks#h", "1700000001", "{}"],
            ["doc#discovery#h", "1700000000", "{}"],
            ["doc#jwks#h", "1700000000", "{ }"],
            // Framing: bytes moved from one part to the next change the tag input.
            ["doc#jwks#h1", "700000000", "{}"],
        ] {
            assert_eq!(sealer.verify_mac(&tag, &other), Err(SealError::NotAuthentic));
        }
        let stranger = Sealer::from_config(&format!("k1:{}", key(9))).expect("keys");
        assert_eq!(
            stranger.verify_mac(&tag, &["doc#jwks#h", "1700000000", "{}"]),
            Err(SealError::NotAuthentic),
            "same key id, other key"
        );
        for malformed in ["", "m1.k1", "m1.k9.AAAA", "m1.k1.!!", "m2.k1.AAAA", &format!("{tag}.x")] {
            assert_eq!(sealer.verify_mac(malformed, &["x"]), Err(SealError::NotAuthentic));
        }
    }

    #[test]
    fn rotation_keeps_old_keys_for_verifying_tags() {
        let old = sealer("k1:K1");
        let tag = old.mac(&["a"]);
        let rotated = sealer("k2:K2,k1:K1");
        assert_eq!(rotated.verify_mac(&tag, &["a"]), Ok(()));
        assert!(rotated.mac(&["a"]).starts_with("m1.k2."));
    }

    #[test]
    fn the_mac_key_is_not_a_sealing_key() {
        // HMAC-SHA256 with the configured key itself, or with the key HKDF derives for
        // sealing, must not verify: the label keeps the two uses apart.
        let sealer = sealer("k1:K1");
        let parts = ["a"];
        let mut raw = <Hmac<Sha256> as Mac>::new_from_slice(&[1u8; 32]).expect("key");
        raw.update(&framed(parts.iter().map(|p| p.as_bytes())));
        let forged = format!("m1.k1.{}", URL_SAFE_NO_PAD.encode(raw.finalize().into_bytes()));
        assert_eq!(sealer.verify_mac(&forged, &parts), Err(SealError::NotAuthentic));
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
