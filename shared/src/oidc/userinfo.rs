//! The userinfo endpoint (OIDC Core §5.3): profile claims that providers put there
//! rather than in the ID token.
//!
//! A plain JSON answer and a signed one (`application/jwt`, verified like every JWS from
//! the provider: an accepted asymmetric algorithm and a key of its JWKS, then `iss` and
//! `aud`) are both accepted; an encrypted one is not. Its `sub` must equal the ID
//! token's (§5.3.2), or nothing of it is used. This module never logs the access token
//! it presents or the claims it reads.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Map, Value};

use super::jwks::JwsError;
use super::{Oidc, OidcError, transport_error};
use crate::domain::secret::AccessToken;
use crate::platform::dpop::{DPOP, DpopKey, unix_now};

/// Largest userinfo answer read: profile claims, not documents.
pub const USERINFO_MAX_BYTES: usize = 64 * 1024;

/// Why userinfo gave no claims to use.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// Userinfo names another user than the ID token (OIDC Core §5.3.2).
    #[error("userinfo names another subject than the ID token")]
    SubjectMismatch,
    /// The endpoint answered an error status, with the OAuth error when it gave one.
    #[error("the userinfo endpoint answered {status}{}", oauth_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` of `WWW-Authenticate` or of a JSON body.
        oauth_error: Option<String>,
    },
    /// The answer is not usable: the description says how.
    #[error("the userinfo answer is not usable: {0}")]
    Invalid(String),
    /// The provider could not be reached, timed out, or its discovery or keys failed.
    #[error(transparent)]
    Provider(#[from] OidcError),
}

impl Oidc {
    /// The provider's userinfo endpoint, when discovery names a usable one.
    pub async fn userinfo_endpoint(&self) -> Result<Option<String>, OidcError> {
        Ok(self.metadata().await?.userinfo_endpoint.clone())
    }

    /// Userinfo's claims for `access_token` at `endpoint`, checked to be about
    /// `expected_sub`. `now` is epoch seconds. A DPoP-bound token (`dpop` its key) is sent
    /// as `Authorization: DPoP` with a proof, else as Bearer.
    pub async fn userinfo(
        &self,
        endpoint: &str,
        access_token: &AccessToken,
        dpop: Option<&DpopKey>,
        expected_sub: &str,
        now: i64,
    ) -> Result<Map<String, Value>, UserinfoError> {
        let request = self
            .http
            .get(endpoint)
            .header(ACCEPT, "application/json, application/jwt");
        let request = match dpop {
            None => request.bearer_auth(access_token.secret()),
            Some(key) => {
                let url = url::Url::parse(endpoint).map_err(|e| UserinfoError::Invalid(e.to_string()))?;
                let nonce = self.dpop_nonces.get(&url);
                let proof = key
                    .proof("GET", &url, unix_now(), nonce.as_deref(), Some(access_token))
                    .map_err(|e| UserinfoError::Invalid(e.to_string()))?;
                request
                    .header(AUTHORIZATION, format!("{DPOP} {}", access_token.secret()))
                    .header(DPOP, proof)
            }
        };
        let response = request.send().await.map_err(transport_error)?;
        if let Ok(url) = url::Url::parse(endpoint) {
            self.dpop_nonces.remember(&url, response.headers());
        }
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(length) = response.content_length()
            && length > USERINFO_MAX_BYTES as u64
        {
            return Err(UserinfoError::Invalid(format!(
                "larger than {USERINFO_MAX_BYTES} bytes"
            )));
        }
        let body = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(UserinfoError::Refused {
                status: status.as_u16(),
                oauth_error: oauth_error(&headers, &body),
            });
        }
        if body.len() > USERINFO_MAX_BYTES {
            return Err(UserinfoError::Invalid(format!(
                "larger than {USERINFO_MAX_BYTES} bytes"
            )));
        }
        let media_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let claims = if media_type == "application/jwt" {
            self.signed_userinfo(&body, now).await?
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(claims)) => claims,
                _ => {
                    return Err(UserinfoError::Invalid(format!(
                        "not a JSON object (content type `{media_type}`)"
                    )));
                }
            }
        };
        match claims.get("sub") {
            Some(Value::String(sub)) if sub == expected_sub => Ok(claims),
            Some(Value::String(_)) => Err(UserinfoError::SubjectMismatch),
            _ => Err(UserinfoError::Invalid("no `sub` claim".into())),
        }
    }

    /// The claims of a signed userinfo answer (OIDC Core §5.3.2: `iss` is the issuer,
    /// `aud` includes this client).
    async fn signed_userinfo(&self, body: &[u8], now: i64) -> Result<Map<String, Value>, UserinfoError> {
        let raw = std::str::from_utf8(body)
            .map_err(|_| UserinfoError::Invalid("the signed answer is not text".into()))?
            .trim();
        let claims = self.verified_jws(raw).await.map_err(|e| match e {
            JwsError::Provider(e) => UserinfoError::Provider(e),
            JwsError::Invalid(why) => UserinfoError::Invalid(format!("signed answer refused: {why}")),
        })?;
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != Some(self.issuer.as_str()) {
            return Err(UserinfoError::Invalid(format!(
                "signed answer's `iss` is {}, expected `{}`",
                iss.map_or("absent".to_owned(), |i| format!("`{i}`")),
                self.issuer
            )));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.client_id,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(self.client_id.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(UserinfoError::Invalid(format!(
                "signed answer's `aud` does not include the client id `{}`",
                self.client_id
            )));
        }
        if claims
            .get("exp")
            .is_some_and(|exp| exp.as_i64().is_none_or(|exp| exp <= now))
        {
            return Err(UserinfoError::Invalid("signed answer has expired (`exp`)".into()));
        }
        Ok(claims)
    }
}

/// The OAuth error code of an error answer: `WWW-Authenticate: Bearer error="..."`
/// (RFC 6750 §3) or a JSON body's `error`, reduced to the characters error codes use.
pub(crate) fn oauth_error(headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
    let from_header = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("error=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned);
    let from_body = || {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
    };
    from_header
        .or_else(from_body)
        .map(|e| {
            e.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect::<String>()
        })
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oauth_error_is_read_from_the_challenge_or_the_body() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            "Bearer realm=\"x\", error=\"invalid_token\", error_description=\"gone\""
                .parse()
                .expect("header"),
        );
        assert_eq!(oauth_error(&headers, b"").as_deref(), Some("invalid_token"));
        let none = http::HeaderMap::new();
        assert_eq!(
            oauth_error(&none, br#"{"error":"server_error<script>"}"#).as_deref(),
            Some("server_errorscript")
        );
        assert_eq!(oauth_error(&none, b"<html>"), None);
    }
}
