//! A client-assertion key in AWS KMS: the private half never leaves KMS, every assertion
//! is signed by one `Sign` call.
//!
//! [`KmsKey::connect`] reads the key's public half once per cold start (`GetPublicKey`):
//! that proves the key exists, is an asymmetric signing key of a supported spec, and that
//! the role may use it, before the first login; it also gives the thumbprint `kid` and the
//! JWKS to register. RSA keys sign RS256 (`RSASSA_PKCS1_V1_5_SHA_256`), `ECC_NIST_P256`
//! keys ES256 (`ECDSA_SHA_256`, whose DER signature becomes JWS's `r || s`). KMS is sent
//! the signing input (header and claims, no secret). This module never logs; errors carry KMS's
//! error code, not its message.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyUsageType, MessageType, SigningAlgorithmSpec};

use super::config::client_auth::{ClientKey, KMS_KEY_VARIABLE};
use super::config::{Config, ConfigError, invalid};
use super::signing::{AssertionSigner, JwsAlg, PublicJwk, SignError, der_item};

/// Whole-call and per-attempt timeouts of one KMS call: a login waits for its assertion.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a KMS key cannot sign client assertions; never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsKeyError {
    /// KMS answered an error (its code), or could not be reached.
    #[error("GetPublicKey failed: {0}")]
    Unreadable(String),
    /// The key is not an asymmetric signing key.
    #[error("the key's usage is not SIGN_VERIFY")]
    NotForSigning,
    /// The key's spec is not one the BFF signs with.
    #[error("key spec {0} is not supported (RSA_2048, RSA_3072, RSA_4096 or ECC_NIST_P256 are)")]
    UnsupportedSpec(String),
    /// The public key KMS gave could not be read.
    #[error("the public key is unreadable: {0}")]
    BadPublicKey(&'static str),
}

/// A KMS client for the shared AWS configuration ([`crate::platform::aws::sdk_config`]:
/// the role's credentials in Lambda; `AWS_ENDPOINT_URL_KMS` for a local stand-in), with
/// short timeouts.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_kms::config::Builder::from(config)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(CALL_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// Reads the KMS key `key` names, if it names one, so that it signs from now on; errors
/// name `BFF_CLIENT_KMS_KEY_ID`.
pub async fn load_client_key(
    key: &mut Option<ClientKey>,
    kid: Option<String>,
    sdk: &aws_config::SdkConfig,
) -> Result<(), ConfigError> {
    if let Some(ClientKey::Kms { key_id }) = key {
        let loaded = KmsKey::connect(client(sdk), key_id, kid)
            .await
            .map_err(|e| invalid(KMS_KEY_VARIABLE, e))?;
        *key = Some(ClientKey::Ready(std::sync::Arc::new(loaded)));
    }
    Ok(())
}

/// [`load_client_key`] for `config`'s client key.
pub async fn load_config_key(config: &mut Config, sdk: &aws_config::SdkConfig) -> Result<(), ConfigError> {
    let kid = config.client_auth.kid.clone();
    load_client_key(&mut config.client_auth.key, kid, sdk).await
}

/// A KMS asymmetric key as an [`AssertionSigner`].
#[derive(Debug)]
pub struct KmsKey {
    client: Client,
    key_id: String,
    algorithm: SigningAlgorithmSpec,
    alg: JwsAlg,
    public: PublicJwk,
    kid: String,
}

impl KmsKey {
    /// Reads `key_id`'s public half and checks that it can sign; `kid` defaults to the
    /// thumbprint.
    pub async fn connect(client: Client, key_id: &str, kid: Option<String>) -> Result<Self, KmsKeyError> {
        let output = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| KmsKeyError::Unreadable(error_code(&e)))?;
        if output.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(KmsKeyError::NotForSigning);
        }
        // `KeySpec`, or its older name `CustomerMasterKeySpec` (some KMS-speaking servers
        // answer only that one, so the deprecated field is read on purpose).
        #[allow(deprecated)]
        let spec = output
            .key_spec()
            .map(|s| s.as_str().to_owned())
            .or_else(|| output.customer_master_key_spec().map(|s| s.as_str().to_owned()));
        let (alg, algorithm) = match spec.as_deref() {
            Some("RSA_2048" | "RSA_3072" | "RSA_4096") => (JwsAlg::Rs256, SigningAlgorithmSpec::RsassaPkcs1V15Sha256),
            Some("ECC_NIST_P256") => (JwsAlg::Es256, SigningAlgorithmSpec::EcdsaSha256),
            other => return Err(KmsKeyError::UnsupportedSpec(other.unwrap_or("(none)").to_owned())),
        };
        let der = output.public_key().ok_or(KmsKeyError::BadPublicKey("KMS sent none"))?;
        let public = PublicJwk::from_spki_der(der.as_ref()).map_err(|e| KmsKeyError::BadPublicKey(e.0))?;
        let kid = kid.unwrap_or_else(|| public.thumbprint());
        Ok(Self {
            client,
            // The key's ARN when KMS gave it: an alias could be moved to another key later.
            key_id: output.key_id().unwrap_or(key_id).to_owned(),
            algorithm,
            alg,
            public,
            kid,
        })
    }
}

#[async_trait]
impl AssertionSigner for KmsKey {
    fn alg(&self) -> JwsAlg {
        self.alg
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    async fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        let output = self
            .client
            .sign()
            .key_id(&self.key_id)
            // The signing input itself (a few hundred bytes, within KMS's 4 KB for raw
            // messages): KMS hashes it, and every KMS-speaking server agrees on that form.
            .message(Blob::new(input.to_vec()))
            .message_type(MessageType::Raw)
            .signing_algorithm(self.algorithm.clone())
            .send()
            .await
            .map_err(|e| SignError::Kms(error_code(&e)))?;
        let signature = output
            .signature()
            .ok_or_else(|| SignError::Kms("no signature in the answer".into()))?;
        match self.alg {
            JwsAlg::Rs256 => Ok(signature.as_ref().to_vec()),
            JwsAlg::Es256 => ecdsa_der_to_fixed(signature.as_ref(), 32)
                .ok_or_else(|| SignError::Kms("an unreadable ECDSA signature".into())),
        }
    }
}

/// A DER `ECDSA-Sig-Value` (what KMS answers) as JWS's `r || s`, each `size` bytes.
pub fn ecdsa_der_to_fixed(der: &[u8], size: usize) -> Option<Vec<u8>> {
    let (sequence, _) = der_item(der, 0x30)?;
    let (r, rest) = der_item(sequence, 0x02)?;
    let (s, _) = der_item(rest, 0x02)?;
    let mut out = Vec::with_capacity(2 * size);
    for integer in [r, s] {
        let start = integer.iter().position(|b| *b != 0).unwrap_or(integer.len());
        let digits = &integer[start..];
        if digits.len() > size {
            return None;
        }
        out.extend(std::iter::repeat_n(0, size - digits.len()));
        out.extend_from_slice(digits);
    }
    Some(out)
}

/// An SDK error reduced to its code or kind: its message may quote the request.
fn error_code<E: aws_sdk_kms::error::ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(_) => err.code().unwrap_or("an unknown error").to_owned(),
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => "connection failed".into(),
        _ => "no usable answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_ecdsa_signatures_become_fixed_width_r_and_s() {
        // r with a leading zero (high bit set), s short (leading zeros dropped in DER).
        let mut der = vec![0x30, 0x00, 0x02, 33, 0x00];
        der.extend([0x80; 32]);
        der.extend([0x02, 31]);
        der.extend([0x01; 31]);
        der[1] = u8::try_from(der.len() - 2).expect("short");
        let fixed = ecdsa_der_to_fixed(&der, 32).expect("parses");
        assert_eq!(fixed.len(), 64);
        assert_eq!(&fixed[..32], &[0x80; 32]);
        assert_eq!(fixed[32], 0);
        assert_eq!(&fixed[33..], &[0x01; 31]);
        assert_eq!(ecdsa_der_to_fixed(&[0x30, 0x02, 0x02, 0x00], 32), None);
    }
}
