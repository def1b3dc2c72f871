//! The token endpoint's grants: the authorization request URL, the code exchange, the
//! refresh grant and the client-credentials grant. Every token request goes through
//! [`Oidc::authenticated_post`], so it is authenticated as every other call to the
//! provider is.

use openidconnect::core::CoreTokenResponse;
use openidconnect::core::CoreTokenType as BasicTokenType;
use openidconnect::{OAuth2TokenResponse as _, TokenResponse as _};
use url::Url;

use super::{Oidc, OidcError, transport_error};
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken};
use crate::platform::config::Config;
/// Tokens from one token-endpoint answer.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when one was issued (or rotated).
    pub refresh_token: Option<RefreshToken>,
    /// Access-token lifetime in seconds, when the provider said.
    pub expires_in: Option<i64>,
    /// The raw ID token, when one came back.
    pub id_token: Option<IdToken>,
}

impl Oidc {
    /// The authorization request URL for one login.
    pub async fn authorization_url(
        &self,
        config: &Config,
        state: &str,
        nonce: &str,
        verifier: &PkceVerifier,
    ) -> Result<String, OidcError> {
        let metadata = self.metadata().await?;
        let mut url = Url::parse(&metadata.authorization_endpoint).map_err(|e| OidcError::Discovery(e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &config.scopes.join(" "))
                .append_pair("state", state)
                .append_pair("nonce", nonce)
                .append_pair("code_challenge", &verifier.s256_challenge())
                .append_pair("code_challenge_method", "S256");
            for (key, value) in &config.auth_params {
                query.append_pair(key, value);
            }
            // The grant must cover the resources that routes' tokens will be asked for.
            for resource in config.routes.user_resources() {
                let listed = config.auth_params.iter().any(|(k, v)| k == "resource" && v == resource);
                if !listed {
                    query.append_pair("resource", resource);
                }
            }
        }
        Ok(url.into())
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(&self, code: &str, verifier: PkceVerifier) -> Result<TokenSet, OidcError> {
        self.token_request(vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.to_owned()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", verifier.secret().to_owned()),
        ])
        .await
    }

    /// Uses a refresh token for `target`'s access token (the login's own for the empty
    /// target); the answer may rotate the refresh token.
    pub async fn refresh(&self, refresh_token: &RefreshToken, target: &TokenTarget) -> Result<TokenSet, OidcError> {
        let mut form = vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh_token.secret().to_owned()),
        ];
        // A route's own token: RFC 8707 `resource`, Auth0's `audience`, or other scopes.
        form.extend(target.grant_params().into_iter().map(|(k, v)| (k, v.to_owned())));
        self.token_request(form).await
    }

    /// The client-credentials grant (RFC 6749 §4.4) for the BFF's own token for `target`.
    pub async fn client_credentials(&self, target: &TokenTarget) -> Result<TokenSet, OidcError> {
        let mut form = vec![("grant_type", "client_credentials".into())];
        form.extend(target.grant_params().into_iter().map(|(k, v)| (k, v.to_owned())));
        self.token_request(form).await
    }

    /// One request to the token endpoint, and its answer read.
    async fn token_request(&self, form: Vec<(&'static str, String)>) -> Result<TokenSet, OidcError> {
        let endpoint = self.metadata().await?.token_endpoint.clone();
        let response = self.authenticated_post(&endpoint, form).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        token_answer(status, &body)
    }
}

/// The token endpoint's answer: tokens, the OAuth error it names (RFC 6749 §5.2), or
/// nonsense.
fn token_answer(status: http::StatusCode, body: &[u8]) -> Result<TokenSet, OidcError> {
    if !status.is_success() {
        #[derive(serde::Deserialize)]
        struct ErrorAnswer {
            error: String,
        }
        return match serde_json::from_slice::<ErrorAnswer>(body) {
            Ok(answer) => Err(OidcError::Rejected { error: answer.error }),
            Err(_) => Err(OidcError::BadResponse(format!("the token endpoint answered {status}"))),
        };
    }
    // The parse error's text may quote the body, which holds tokens: keep only its kind.
    let response: CoreTokenResponse = serde_json::from_slice(body)
        .map_err(|e| OidcError::BadResponse(format!("unparsable token response ({:?})", e.classify())))?;
    token_set(&response)
}

/// The tokens of a token response. An access token of a type the BFF does not know how
/// to present is never used (RFC 6749 §7.1); `Bearer` is accepted in any case.
fn token_set(response: &CoreTokenResponse) -> Result<TokenSet, OidcError> {
    check_token_type(response.token_type())?;
    Ok(TokenSet {
        access_token: AccessToken::new(response.access_token().secret()),
        refresh_token: response.refresh_token().map(|t| RefreshToken::new(t.secret())),
        expires_in: response
            .expires_in()
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        id_token: response.id_token().map(|t| IdToken::new(t.to_string())),
    })
}

fn check_token_type(token_type: &BasicTokenType) -> Result<(), OidcError> {
    // The type is case-insensitive (RFC 6749 §5.1); the parser knows only `bearer`.
    match token_type {
        BasicTokenType::Bearer => Ok(()),
        BasicTokenType::Extension(other) if other.eq_ignore_ascii_case("bearer") => Ok(()),
        other => Err(OidcError::BadResponse(format!(
            "token_type `{}` is not supported",
            other.as_ref()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_tokens_oauth_errors_or_nonsense() {
        let ok = br#"{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt"}"#;
        let tokens = token_answer(http::StatusCode::OK, ok).expect("tokens");
        assert_eq!(tokens.access_token.secret(), "at");
        assert_eq!(tokens.expires_in, Some(60));
        let refused = token_answer(http::StatusCode::UNAUTHORIZED, br#"{"error": "invalid_client"}"#);
        assert!(matches!(refused, Err(OidcError::Rejected { ref error }) if error == "invalid_client"));
        let down = token_answer(http::StatusCode::BAD_GATEWAY, b"<html>");
        assert!(matches!(down, Err(OidcError::BadResponse(_))));
        let leaky = token_answer(
            http::StatusCode::OK,
            br#"{"access_token": 7, "token_type": "secret-value"}"#,
        );
        assert!(matches!(leaky, Err(OidcError::BadResponse(ref m)) if !m.contains("secret-value")));
    }

    #[test]
    fn only_bearer_tokens_in_any_case_are_used() {
        for accepted in ["Bearer", "bearer", "BEARER"] {
            let parsed: BasicTokenType = serde_json::from_value(serde_json::json!(accepted)).expect("token type");
            assert!(check_token_type(&parsed).is_ok(), "{accepted}");
        }
        for refused in ["DPoP", "mac", "N_A", ""] {
            let parsed: BasicTokenType = serde_json::from_value(serde_json::json!(refused)).expect("token type");
            assert!(check_token_type(&parsed).is_err(), "{refused}");
        }
    }
}
