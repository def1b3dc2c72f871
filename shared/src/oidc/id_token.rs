//! ID-token validation (OIDC Core 3.1.3.7) and the user claims it yields.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, Nonce};

use super::jwks::{accepted_algs, alg_name};
use super::{ALLOWED_ALGS, FAPI2_ALGS, MAX_CLOCK_SKEW_SECS, Oidc, OidcError};
use crate::domain::claims::id_token_claims;
use crate::domain::secret::IdToken;

/// Claims of a validated ID token.
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    /// The subject.
    pub sub: String,
    /// The provider session id, when present.
    pub sid: Option<String>,
    /// Every user claim, as shown by `/auth/me` (see [`crate::domain::claims`]).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Oidc {
    /// Validates an ID token completely: signature with a key from the JWKS (refetched
    /// once on an unknown `kid`), an asymmetric `alg`, `iss`, `aud`, `azp`, `exp`, `iat`
    /// and, when `expected_nonce` is given, `nonce`. `now` is epoch seconds.
    pub async fn verify_id_token(
        &self,
        raw: &IdToken,
        expected_nonce: Option<&str>,
        now: i64,
    ) -> Result<VerifiedClaims, OidcError> {
        // Checked first, so that the answer names the algorithm rather than a failed
        // signature: an HMAC-signed ID token is a provider setting to change.
        if let Some(received) = header_alg(raw.secret())
            && !self.id_token_algs().iter().any(|alg| alg_name(alg) == received)
        {
            return Err(OidcError::IdTokenAlgorithm {
                received,
                accepted: if self.fapi2 {
                    FAPI2_ALGS.iter().map(alg_name).collect::<Vec<_>>().join(", ")
                } else {
                    accepted_algs()
                },
            });
        }
        let token: CoreIdToken = raw.secret().parse().map_err(|e: serde_json::Error| {
            OidcError::InvalidIdToken(format!("not a well-formed JWS ({:?} error)", e.classify()))
        })?;
        let keys = self.jwks(false).await?;
        match self.check_claims(&token, &keys.keys, expected_nonce, now) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since we cached them.
                let keys = self.jwks(true).await?;
                self.check_claims(&token, &keys.keys, expected_nonce, now)
            }
            other => other,
        }
        .map_err(|e| OidcError::InvalidIdToken(describe(&e)))?;
        user_claims(raw)
    }

    /// The algorithms accepted on ID tokens: the FAPI 2.0 set with `BFF_PROFILE=fapi2`.
    fn id_token_algs(&self) -> &'static [openidconnect::core::CoreJwsSigningAlgorithm] {
        if self.fapi2 { FAPI2_ALGS } else { ALLOWED_ALGS }
    }

    fn check_claims(
        &self,
        token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
        expected_nonce: Option<&str>,
        now: i64,
    ) -> Result<(), openidconnect::ClaimsVerificationError> {
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| openidconnect::ClaimsVerificationError::Other(e.to_string()))?;
        let now_time = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        let verifier =
            CoreIdTokenVerifier::new_public_client(ClientId::new(self.client_id.clone()), issuer, keys.clone())
                .set_allowed_algs(self.id_token_algs().iter().cloned())
                .set_time_fn(move || now_time)
                .set_issue_time_verifier_fn(move |iat| {
                    if iat.timestamp() > now + MAX_CLOCK_SKEW_SECS {
                        Err("issued in the future".to_owned())
                    } else {
                        Ok(())
                    }
                });
        let claims = match expected_nonce {
            Some(nonce) => token.claims(&verifier, &Nonce::new(nonce.to_owned()))?,
            None => token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?,
        };
        // OIDC Core 3.1.3.7 steps 4-5: with several audiences this client must be the
        // authorized party, and an `azp` that is present must name this client.
        let azp = claims.authorized_party().map(|azp| azp.as_str());
        if (claims.audiences().len() > 1 || azp.is_some()) && azp != Some(self.client_id.as_str()) {
            return Err(openidconnect::ClaimsVerificationError::InvalidAudience(
                "azp is not this client".into(),
            ));
        }
        Ok(())
    }
}

/// The `alg` of a compact JWS's header, when it can be read.
fn header_alg(raw: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(raw.split('.').next()?).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

/// A failed check in words that name the claim and what was found (issuers, audiences,
/// times and key ids; never the token or the nonce's value).
fn describe(e: &openidconnect::ClaimsVerificationError) -> String {
    use openidconnect::ClaimsVerificationError as E;
    use openidconnect::SignatureVerificationError as S;
    match e {
        E::Expired(why) => format!("`exp`/`iat` out of range: {why}"),
        E::InvalidAudience(why) => format!("`aud`/`azp` does not name this client: {why}"),
        E::InvalidIssuer(why) => format!("`iss` is not the configured issuer: {why}"),
        E::InvalidNonce(_) => "`nonce` does not match the login's".to_owned(),
        E::InvalidSubject(why) => format!("`sub`: {why}"),
        E::SignatureVerification(S::NoMatchingKey) => {
            "no key of the provider's JWKS fits the token's `kid` and algorithm".to_owned()
        }
        E::SignatureVerification(S::CryptoError(_)) => {
            "the signature does not verify with the provider's key".to_owned()
        }
        E::SignatureVerification(other) => format!("signature: {other}"),
        other => other.to_string(),
    }
}

/// The payload of an ID token whose signature was verified, minus protocol-only claims.
fn user_claims(raw: &IdToken) -> Result<VerifiedClaims, OidcError> {
    let payload = raw
        .secret()
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::InvalidIdToken("not a JWS".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| OidcError::InvalidIdToken("payload is not base64url".into()))?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| OidcError::InvalidIdToken("payload is not a JSON object".into()))?;
    // Read before the protocol claims are removed.
    let sid = claims.get("sid").and_then(|v| v.as_str()).map(str::to_owned);
    let claims = id_token_claims(claims);
    let sub = match claims.get("sub") {
        Some(serde_json::Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(OidcError::InvalidIdToken("no sub".into())),
    };
    Ok(VerifiedClaims { sub, sid, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_claims_drop_protocol_claims_and_require_sub() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"alice","name":"Alice","nonce":"n","at_hash":"h","sid":"s1","exp":9,"iat":1,"iss":"i","aud":"a"}"#,
        );
        let claims = user_claims(&IdToken::new(format!("e30.{payload}.sig"))).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert!(claims.claims.contains_key("name") && claims.claims.contains_key("sub"));
        for protocol in ["nonce", "at_hash", "sid", "exp", "iat", "iss", "aud"] {
            assert!(!claims.claims.contains_key(protocol), "{protocol} shown");
        }
        let no_sub = URL_SAFE_NO_PAD.encode(br#"{"name":"x"}"#);
        assert!(user_claims(&IdToken::new(format!("e30.{no_sub}.sig"))).is_err());
    }
}
