//! The public JWKS of the `private_key_jwt` key, for registration at the provider
//! (`bff-local jwks`).
//!
//! It reads only the key variables (`BFF_CLIENT_KEY`, its reference `BFF_CLIENT_KEY_ARN`,
//! or `BFF_CLIENT_KMS_KEY_ID`, and `BFF_CLIENT_KEY_ID`), with the same rules and errors as
//! start-up, and prints the public key as a JWKS with the `kid` the assertions carry. It
//! never prints or logs the private key.

use crate::platform::aws;
use crate::platform::config::client_auth::{ClientKey, parse_client_key};
use crate::platform::config::{ConfigError, client_auth};
use crate::platform::kms;
use crate::platform::secrets_manager::{self, SecretsManager};

/// The JWKS (`{"keys": [...]}`) of the key the environment configures.
pub async fn jwks_from_env() -> Result<serde_json::Value, String> {
    let env = |name: &str| std::env::var(name).ok();
    let needs_aws = ["BFF_CLIENT_KEY_ARN", client_auth::KMS_KEY_VARIABLE]
        .iter()
        .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()));
    let sdk = if needs_aws { Some(aws::sdk_config().await) } else { None };
    let resolved = match &sdk {
        Some(sdk) => secrets_manager::resolve(env, &SecretsManager::from_config(sdk))
            .await
            .map_err(|e| e.to_string())?,
        None => secrets_manager::ResolvedSecrets::default(),
    };
    let lookup = resolved.lookup(env);
    let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (mut key, kid) = parse_client_key(&get).map_err(|e| e.to_string())?;
    if let Some(sdk) = &sdk {
        kms::load_client_key(&mut key, kid, sdk)
            .await
            .map_err(|e| e.to_string())?;
    }
    match key {
        Some(ClientKey::Ready(signer)) => Ok(signer.jwks()),
        _ => Err(ConfigError::Missing("BFF_CLIENT_KEY (or BFF_CLIENT_KEY_ARN, or BFF_CLIENT_KMS_KEY_ID)").to_string()),
    }
}
