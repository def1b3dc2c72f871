//! The token endpoint's grants: the authorization request (pushed or in the URL), the
//! code exchange and the refresh grant.

use openidconnect::core::CoreTokenResponse;
use openidconnect::core::CoreTokenType as BasicTokenType;
use openidconnect::{
    AuthorizationCode, OAuth2TokenResponse as _, PkceCodeVerifier, RequestTokenError, TokenResponse as _,
};
use url::Url;

use super::{ClientAuth, Oidc, OidcError, ProviderMetadata, transport_error};
use crate::domain::login_options::LoginOptions;
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken};
use crate::domain::trace::TRACEPARENT;
use crate::platform::config::{Config, ParMode};
use crate::platform::trace_scope::current_traceparent;

/// What one login's authorization request carries besides the configuration.
#[derive(Debug)]
pub struct AuthorizationRequest<'a> {
    /// The `state` the browser brings back.
    pub state: &'a str,
    /// The `nonce` the ID token must carry.
    pub nonce: &'a str,
    /// The PKCE verifier whose S256 challenge is sent.
    pub verifier: &'a PkceVerifier,
    /// The login options (the front end's, over the configured defaults).
    pub options: &'a LoginOptions,
}

/// Where to push the authorization request, or `None` to send it in the URL: `BFF_PAR`
/// and discovery decide. A provider that requires pushed requests gets them whatever
/// `BFF_PAR` says short of `off`; `on` with a provider that takes none, and `off` with
/// one that requires them, are refused with a line naming `BFF_PAR`.
pub fn par_endpoint(mode: ParMode, metadata: &ProviderMetadata) -> Result<Option<&str>, OidcError> {
    let endpoint = metadata.pushed_authorization_request_endpoint.as_deref();
    match (mode, endpoint) {
        (ParMode::Off, _) if metadata.require_pushed_authorization_requests => Err(OidcError::Discovery(
            "BFF_PAR=off, but the provider requires pushed authorization requests".into(),
        )),
        (ParMode::Off, _) => Ok(None),
        (_, Some(endpoint)) => Ok(Some(endpoint)),
        (ParMode::On, None) => Err(OidcError::Discovery(
            "BFF_PAR=on, but the provider's discovery has no usable pushed_authorization_request_endpoint".into(),
        )),
        (ParMode::Auto, None) if metadata.require_pushed_authorization_requests => Err(OidcError::Discovery(
            "the provider requires pushed authorization requests but has no usable pushed_authorization_request_endpoint"
                .into(),
        )),
        (ParMode::Auto, None) => Ok(None),
    }
}

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
    /// Where to send the browser for one login. With pushed authorization requests
    /// (RFC 9126, per `BFF_PAR` and discovery) the request is posted to the provider,
    /// authenticated as at the token endpoint, and the URL carries only `client_id` and
    /// the `request_uri` it answered: no `state`, `nonce`, PKCE challenge or scope in the
    /// browser's address bar, history or logs. Otherwise the URL carries the request.
    pub async fn authorization_url(
        &self,
        config: &Config,
        request: &AuthorizationRequest<'_>,
    ) -> Result<String, OidcError> {
        let metadata = self.metadata().await?;
        let mut url = Url::parse(&metadata.authorization_endpoint).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let params = self.authorization_params(config, request);
        match par_endpoint(config.par, metadata)? {
            Some(endpoint) => {
                let request_uri = self.push(endpoint, metadata.client_auth(), params).await?;
                url.query_pairs_mut()
                    .append_pair("client_id", &self.client_id)
                    .append_pair("request_uri", &request_uri);
            }
            None => {
                url.query_pairs_mut().extend_pairs(params);
            }
        }
        Ok(url.into())
    }

    /// With `BFF_PAR=on` (or `off`), whether the provider's discovery agrees: checked at
    /// start-up, so a provider without pushed requests stops the process with one line
    /// naming `BFF_PAR`. A provider that cannot be reached now is not refused here (each
    /// login checks again); only a discovery document that contradicts the setting is.
    pub async fn check_par_setting(&self, config: &Config) -> Result<(), OidcError> {
        if config.par == ParMode::Auto {
            return Ok(());
        }
        match self.metadata().await {
            Ok(metadata) => par_endpoint(config.par, metadata).map(|_| ()),
            Err(e) => {
                tracing::warn!(error = %e, "BFF_PAR not checked at start-up: no discovery yet");
                Ok(())
            }
        }
    }

    /// The parameters of one authorization request, in order.
    fn authorization_params(&self, config: &Config, request: &AuthorizationRequest<'_>) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = [
            ("response_type", "code".to_owned()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", config.scopes.join(" ")),
            ("state", request.state.to_owned()),
            ("nonce", request.nonce.to_owned()),
            ("code_challenge", request.verifier.s256_challenge()),
            ("code_challenge_method", "S256".to_owned()),
        ]
        .into_iter()
        .chain(request.options.params())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        params.extend(config.auth_params.iter().cloned());
        // The grant must cover the resources that routes' tokens will be asked for.
        for resource in config.routes.user_resources() {
            let listed = config.auth_params.iter().any(|(k, v)| k == "resource" && v == resource);
            if !listed {
                params.push(("resource".to_owned(), resource.to_owned()));
            }
        }
        params
    }

    /// Pushes an authorization request (RFC 9126 2.1); returns the `request_uri`.
    async fn push(&self, endpoint: &str, auth: ClientAuth, params: Vec<(String, String)>) -> Result<String, OidcError> {
        let response = self
            .authenticated_post(endpoint, auth, params)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(match body["error"].as_str() {
                Some(error) => OidcError::Rejected {
                    error: error.chars().take(64).collect(),
                },
                None => OidcError::BadResponse(format!("the pushed authorization request answered {status}")),
            });
        }
        match body["request_uri"].as_str() {
            Some(uri) if !uri.is_empty() && uri.len() <= 2048 && !uri.chars().any(char::is_control) => {
                Ok(uri.to_owned())
            }
            _ => Err(OidcError::BadResponse(
                "the pushed authorization request answered no usable request_uri".into(),
            )),
        }
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

    fn metadata(endpoint: Option<&str>, required: bool) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://id", "authorization_endpoint": "https://id/auth",
            "token_endpoint": "https://id/token", "jwks_uri": "https://id/jwks",
            "pushed_authorization_request_endpoint": endpoint,
            "require_pushed_authorization_requests": required,
        }))
        .expect("metadata")
    }

    #[test]
    fn par_follows_the_setting_and_discovery() {
        let par = Some("https://id/par");
        let ok = |mode, endpoint, required| {
            par_endpoint(mode, &metadata(endpoint, required))
                .map(|found| found.map(str::to_owned))
                .map_err(|e| e.to_string())
        };
        let par_owned = par.map(str::to_owned);
        assert_eq!(ok(ParMode::Auto, par, false), Ok(par_owned.clone()));
        assert_eq!(ok(ParMode::Auto, None, false), Ok(None));
        assert_eq!(ok(ParMode::On, par, false), Ok(par_owned.clone()));
        assert_eq!(ok(ParMode::Off, par, false), Ok(None));
        assert_eq!(ok(ParMode::Auto, par, true), Ok(par_owned));
        for (mode, endpoint, required) in [
            (ParMode::On, None, false),
            (ParMode::Off, par, true),
            (ParMode::Auto, None, true),
        ] {
            let e = ok(mode, endpoint, required).expect_err("refused");
            assert!(e.contains("pushed"), "{e}");
        }
        assert!(ok(ParMode::On, None, false).expect_err("on").contains("BFF_PAR=on"));
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
