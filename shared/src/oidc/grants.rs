//! The token endpoint's grants: the authorization request URL, the code exchange and
//! the refresh grant.

use openidconnect::core::CoreTokenResponse;
use openidconnect::core::CoreTokenType as BasicTokenType;
use openidconnect::{
    AuthorizationCode, OAuth2TokenResponse as _, PkceCodeVerifier, RequestTokenError, TokenResponse as _,
};
use url::Url;

use super::{Oidc, OidcError, transport_error};
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken};
use crate::domain::trace::TRACEPARENT;
use crate::platform::config::Config;
use crate::platform::trace_scope::current_traceparent;

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
        let discovered = self.discovered().await?;
        let response = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().to_owned()))
            .request_async(&Traced(&self.http))
            .await
            .map_err(token_error)?;
        token_set(&response)
    }

    /// Uses a refresh token for `target`'s access token (the login's own for the empty
    /// target); the answer may rotate the refresh token.
    pub async fn refresh(&self, refresh_token: &RefreshToken, target: &TokenTarget) -> Result<TokenSet, OidcError> {
        let discovered = self.discovered().await?;
        let token = openidconnect::RefreshToken::new(refresh_token.secret().to_owned());
        let mut request = discovered.client.exchange_refresh_token(&token);
        // A route's own token: RFC 8707 `resource`, Auth0's `audience`, or other scopes.
        for (name, value) in target.grant_params() {
            request = request.add_extra_param(name, value.to_owned());
        }
        let response = request.request_async(&Traced(&self.http)).await.map_err(token_error)?;
        token_set(&response)
    }
}

impl Oidc {
    /// The client-credentials grant (RFC 6749 §4.4) for the BFF's own token for `target`.
    pub async fn client_credentials(&self, target: &TokenTarget) -> Result<TokenSet, OidcError> {
        let discovered = self.discovered().await?;
        let mut request = discovered.client.exchange_client_credentials();
        for (name, value) in target.grant_params() {
            request = request.add_extra_param(name, value.to_owned());
        }
        let response = request.request_async(&Traced(&self.http)).await.map_err(token_error)?;
        token_set(&response)
    }
}

/// The shared client, sending token requests with the current request's `traceparent`
/// so the provider's logs join the same trace.
struct Traced<'a>(&'a reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Traced<'_> {
    type Error = <reqwest::Client as openidconnect::AsyncHttpClient<'c>>::Error;
    type Future = <reqwest::Client as openidconnect::AsyncHttpClient<'c>>::Future;

    fn call(&'c self, mut request: openidconnect::HttpRequest) -> Self::Future {
        if let Some(value) = current_traceparent().and_then(|t| http::HeaderValue::from_str(&t).ok()) {
            request.headers_mut().insert(TRACEPARENT, value);
        }
        self.0.call(request)
    }
}

type TokenRequestError = RequestTokenError<
    openidconnect::HttpClientError<reqwest::Error>,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
>;

fn token_error(e: TokenRequestError) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(response) => {
            // The provider's own words, for the log only (they are not ours to show).
            tracing::warn!(
                error = %response.error(),
                error_description = response.error_description().map(String::as_str).unwrap_or(""),
                "the token endpoint answered an OAuth error"
            );
            OidcError::Rejected {
                error: oauth_code(response.error().as_ref()),
            }
        }
        RequestTokenError::Request(openidconnect::HttpClientError::Reqwest(inner)) => transport_error(*inner),
        RequestTokenError::Request(other) => OidcError::Unreachable(other.to_string()),
        // The parse error's body may hold tokens: keep only the path of the failure.
        RequestTokenError::Parse(e, _body) => OidcError::BadResponse(format!("unparsable at {}", e.path())),
        RequestTokenError::Other(message) => OidcError::BadResponse(message),
    }
}

/// An OAuth error code reduced to the characters codes use (RFC 6749 §5.2), so it can be
/// shown and logged as it is.
fn oauth_code(error: &str) -> String {
    error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
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
