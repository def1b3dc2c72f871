//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.6).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};

use super::jwks::{KeyMatch, verify_jws};
use super::{ALLOWED_ALGS, MAX_CLOCK_SKEW_SECS, Oidc, OidcError};

/// How old a logout token may be.
pub const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 300;
/// The `events` member that marks a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a valid back-channel logout token says.
#[derive(Debug, Clone)]
pub struct LogoutClaims {
    /// Unique id of the token (for replay detection).
    pub jti: String,
    /// The subject whose sessions end, when given.
    pub sub: Option<String>,
    /// The provider session that ends, when given.
    pub sid: Option<String>,
    /// Issue time (epoch seconds).
    pub iat: i64,
}

impl Oidc {
    /// Validates a back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.6):
    /// signature with a key from the JWKS (refetched once on an unknown `kid`), an
    /// asymmetric `alg`, `iss`, `aud`, a recent `iat`, `exp` when present, the logout
    /// event, no `nonce`, a `jti`, and `sid` and/or `sub`. Replay is the caller's check.
    pub async fn verify_logout_token(&self, raw: &str, now: i64) -> Result<LogoutClaims, OidcError> {
        let invalid = |why: &str| OidcError::InvalidIdToken(format!("logout token: {why}"));
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JWS"));
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| invalid("not base64url"));
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| invalid("bad header"))?;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(header["alg"].clone()).map_err(|_| invalid("unknown alg"))?;
        if !ALLOWED_ALGS.contains(&alg) {
            return Err(invalid("disallowed alg"));
        }
        let kid = header["kid"].as_str().map(str::to_owned);
        let signing_input = &raw[..raw.rfind('.').unwrap_or(0)];
        let signature = decode(signature)?;

        let verify = |keys: &CoreJsonWebKeySet| verify_jws(keys, kid.as_deref(), &alg, signing_input, &signature);
        let mut verified = verify(&self.jwks(false).await?.keys);
        if matches!(verified, Err(KeyMatch::NoKey)) {
            verified = verify(&self.jwks(true).await?.keys);
        }
        verified.map_err(|e| invalid(e.describe()))?;

        let claims: serde_json::Value =
            serde_json::from_slice(&decode(payload)?).map_err(|_| invalid("bad payload"))?;
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Err(invalid("wrong iss"));
        }
        let audience_ok = match &claims["aud"] {
            serde_json::Value::String(aud) => *aud == self.client_id,
            serde_json::Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(self.client_id.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(invalid("wrong aud"));
        }
        let iat = claims["iat"].as_i64().ok_or_else(|| invalid("no iat"))?;
        if iat > now + MAX_CLOCK_SKEW_SECS || iat < now - LOGOUT_TOKEN_MAX_AGE_SECS {
            return Err(invalid("iat out of range"));
        }
        if claims
            .get("exp")
            .is_some_and(|exp| exp.as_i64().is_none_or(|exp| exp <= now))
        {
            return Err(invalid("expired"));
        }
        if !claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object() {
            return Err(invalid("no back-channel logout event"));
        }
        if claims.get("nonce").is_some() {
            return Err(invalid("has a nonce"));
        }
        let jti = claims["jti"]
            .as_str()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| invalid("no jti"))?;
        let sub = claims["sub"].as_str().map(str::to_owned);
        let sid = claims["sid"].as_str().map(str::to_owned);
        if sub.is_none() && sid.is_none() {
            return Err(invalid("neither sid nor sub"));
        }
        Ok(LogoutClaims {
            jti: jti.to_owned(),
            sub,
            sid,
            iat,
        })
    }
}
