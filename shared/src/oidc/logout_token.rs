//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.6).

use super::jwks::JwsError;
use super::{MAX_CLOCK_SKEW_SECS, Oidc, OidcError};

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
        let claims = match self.verified_jws(raw).await {
            Ok(claims) => serde_json::Value::Object(claims),
            Err(JwsError::Provider(e)) => return Err(e),
            Err(JwsError::Invalid(why)) => return Err(invalid(&why)),
        };
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
