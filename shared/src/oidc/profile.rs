//! `BFF_PROFILE=fapi2` against the provider's discovery: at start-up, a provider that
//! cannot meet the FAPI 2.0 Security Profile stops the process with one line naming
//! everything it lacks.

use super::jwks::alg_name;
use super::{FAPI2_ALGS, Oidc, OidcError, ProviderMetadata};
use crate::platform::config::Config;

/// What the provider's discovery lacks for the FAPI 2.0 profile, by metadata name;
/// empty when it meets it.
pub fn fapi2_gaps(metadata: &ProviderMetadata) -> Vec<&'static str> {
    let offers = |list: &Option<Vec<String>>, value: &str| list.iter().flatten().any(|v| v == value);
    let mut gaps = Vec::new();
    if metadata.pushed_authorization_request_endpoint.is_none() {
        gaps.push("pushed_authorization_request_endpoint");
    }
    if !offers(&metadata.token_endpoint_auth_methods_supported, "private_key_jwt") {
        gaps.push("private_key_jwt in token_endpoint_auth_methods_supported");
    }
    // The BFF signs its DPoP proofs with ES256.
    if !offers(&metadata.dpop_signing_alg_values_supported, "ES256") {
        gaps.push("ES256 in dpop_signing_alg_values_supported");
    }
    if !metadata.authorization_response_iss_parameter_supported {
        gaps.push("authorization_response_iss_parameter_supported=true");
    }
    if !FAPI2_ALGS
        .iter()
        .any(|alg| offers(&metadata.id_token_signing_alg_values_supported, &alg_name(alg)))
    {
        gaps.push("PS256, ES256 or EdDSA in id_token_signing_alg_values_supported");
    }
    gaps
}

impl Oidc {
    /// With `BFF_PROFILE=fapi2`, whether the provider's discovery meets the profile:
    /// checked at start-up, so a provider that cannot stops the process with one line.
    /// A provider that cannot be reached now is not refused here (each login still
    /// pushes its request, and the callback requires `iss`).
    pub async fn check_profile(&self, config: &Config) -> Result<(), OidcError> {
        if !config.is_fapi2() {
            return Ok(());
        }
        match self.metadata().await {
            Ok(metadata) => check_fapi2(metadata),
            Err(e) => {
                tracing::warn!(error = %e, "BFF_PROFILE=fapi2 not checked at start-up: no discovery yet");
                Ok(())
            }
        }
    }
}

/// The start-up answer for a discovery document under `BFF_PROFILE=fapi2`.
fn check_fapi2(metadata: &ProviderMetadata) -> Result<(), OidcError> {
    let gaps = fapi2_gaps(metadata);
    if gaps.is_empty() {
        return Ok(());
    }
    Err(OidcError::Discovery(format!(
        "BFF_PROFILE=fapi2, but the provider's discovery lacks {}",
        gaps.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(extra: serde_json::Value) -> ProviderMetadata {
        let mut doc = serde_json::json!({
            "issuer": "https://id", "authorization_endpoint": "https://id/auth",
            "token_endpoint": "https://id/token", "jwks_uri": "https://id/jwks",
            "pushed_authorization_request_endpoint": "https://id/par",
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
            "authorization_response_iss_parameter_supported": true,
            "id_token_signing_alg_values_supported": ["RS256", "PS256"],
        });
        for (k, v) in extra.as_object().expect("object") {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).expect("metadata")
    }

    #[test]
    fn a_provider_with_everything_meets_the_profile() {
        assert_eq!(fapi2_gaps(&metadata(serde_json::json!({}))), Vec::<&str>::new());
        check_fapi2(&metadata(serde_json::json!({}))).expect("meets");
    }

    #[test]
    fn each_missing_item_is_named() {
        let cases = [
            (
                serde_json::json!({"pushed_authorization_request_endpoint": null}),
                "pushed_authorization_request_endpoint",
            ),
            (
                serde_json::json!({"token_endpoint_auth_methods_supported": ["client_secret_basic"]}),
                "private_key_jwt in token_endpoint_auth_methods_supported",
            ),
            (
                serde_json::json!({"dpop_signing_alg_values_supported": ["RS256"]}),
                "ES256 in dpop_signing_alg_values_supported",
            ),
            (
                serde_json::json!({"dpop_signing_alg_values_supported": null}),
                "ES256 in dpop_signing_alg_values_supported",
            ),
            (
                serde_json::json!({"authorization_response_iss_parameter_supported": false}),
                "authorization_response_iss_parameter_supported=true",
            ),
            (
                serde_json::json!({"id_token_signing_alg_values_supported": ["RS256", "ES384"]}),
                "PS256, ES256 or EdDSA in id_token_signing_alg_values_supported",
            ),
        ];
        for (extra, missing) in cases {
            let doc = metadata(extra);
            assert_eq!(fapi2_gaps(&doc), vec![missing]);
            let line = check_fapi2(&doc).expect_err(missing).to_string();
            assert!(line.contains("BFF_PROFILE") && line.contains(missing), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn every_gap_is_named_at_once() {
        let doc = metadata(serde_json::json!({
            "pushed_authorization_request_endpoint": null,
            "authorization_response_iss_parameter_supported": false,
        }));
        assert_eq!(fapi2_gaps(&doc).len(), 2);
    }
}
