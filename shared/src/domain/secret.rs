//! Secrets as types: random ids, tokens and the client secret.
//!
//! Every type here prints as `[redacted]` in `Debug`, so a secret cannot reach a log line
//! through `{:?}`, and compares in constant time. This module never logs anything.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// `n` bytes from a CSPRNG (rand's thread-local ChaCha, seeded and reseeded from the
/// operating system), base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `value`, base64url without padding: how browser-held secrets become keys.
pub fn hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// Constant-time equality of two strings (length is not hidden).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident $(, $derive:ident)*) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize $(, $derive)*)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself; call only where it is sent to its one legitimate peer.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                ct_eq(&self.0, &other.0)
            }
        }

        impl Eq for $name {}
    };
}

secret_type!(
    /// The opaque session id held by the browser's session cookie (256 random bits).
    SessionId
);
secret_type!(
    /// OAuth access token for the upstream API.
    AccessToken, Clone
);
secret_type!(
    /// OAuth refresh token.
    RefreshToken, Clone
);
secret_type!(
    /// The raw ID token (JWT), kept for `id_token_hint`.
    IdToken, Clone
);
secret_type!(
    /// PKCE code verifier (RFC 7636). Deliberately not `Clone`: it is used exactly once.
    PkceVerifier
);
secret_type!(
    /// The client secret registered at the provider.
    ClientSecret, Clone
);
secret_type!(
    /// A session's DPoP private key (RFC 9449): PKCS#8, base64url. Sealed at rest like
    /// the tokens; it never leaves the BFF.
    DpopKeySecret, Clone
);

impl SessionId {
    /// A fresh session id: 32 random bytes.
    pub fn generate() -> Self {
        Self(random_token(32))
    }

    /// The store key's hash part: the store never sees the id itself.
    pub fn hashed(&self) -> String {
        hash(&self.0)
    }
}

impl PkceVerifier {
    /// A fresh verifier: 32 random bytes give 43 characters, the RFC 7636 minimum length.
    pub fn generate() -> Self {
        Self(random_token(32))
    }

    /// The S256 challenge: base64url(SHA-256(verifier)).
    pub fn s256_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let token = AccessToken::new("eyJ.secret.value");
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.secret()));
    }

    #[test]
    fn random_tokens_have_the_requested_entropy_and_differ() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
    }

    #[test]
    fn pkce_s256_challenge_is_base64url_sha256_of_the_verifier() {
        // Expected value computed independently: base64url(sha256(verifier)) without padding.
        let verifier = PkceVerifier::new("dBjftJeZ4CVP-mJ92ZFD3fAmjPYQEQ8XzRmNOk3YtTk");
        assert_eq!(verifier.s256_challenge(), "1dC8Xx_vAC2LbHAHSHdVntN1Zlxj-PeVNQz_UKDiuVI");
        assert_eq!(PkceVerifier::generate().secret().len(), 43);
    }

    #[test]
    fn hashing_is_stable_and_hides_the_input() {
        assert_eq!(hash("abc"), hash("abc"));
        assert!(!hash("secret-session").contains("secret"));
    }

    #[test]
    fn constant_time_eq_compares_content() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
