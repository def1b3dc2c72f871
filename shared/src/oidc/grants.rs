//! The token endpoint's grants: the authorization request (pushed or in the URL), the
//! code exchange, the refresh grant and the client-credentials grant. Every token request
//! goes through [`Oidc::authenticated_post`], so it is authenticated as every other call
//! to the provider is.

use openidconnect::core::CoreTokenResponse;
use openidconnect::core::CoreTokenType as BasicTokenType;
use openidconnect::{OAuth2TokenResponse as _, TokenResponse as _};
use url::Url;

use super::{Oidc, OidcError, ProviderMetadata, transport_error};
use crate::domain::login_options::LoginOptions;
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken};
use crate::domain::session::TokenType;
use crate::platform::config::{Config, ParMode};
use crate::platform::dpop::DpopKey;

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
    /// How the access token is presented: `DPoP` only when the request carried a proof.
    pub token_type: TokenType,
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
                let request_uri = self.push(endpoint, params).await?;
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
    async fn push(&self, endpoint: &str, params: Vec<(String, String)>) -> Result<String, OidcError> {
        let response = self.authenticated_post(endpoint, params).await?;
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

    /// Exchanges an authorization code (with its PKCE verifier) for tokens, proving
    /// possession of `dpop` when given.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: PkceVerifier,
        dpop: Option<&DpopKey>,
    ) -> Result<TokenSet, OidcError> {
        self.token_request(
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.to_owned()),
                ("redirect_uri", self.redirect_uri.clone()),
                ("code_verifier", verifier.secret().to_owned()),
            ],
            dpop,
        )
        .await
    }

    /// Uses a refresh token for `target`'s access token (the login's own for the empty
    /// target), proving possession of `dpop` when given; the answer may rotate the
    /// refresh token.
    pub async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        target: &TokenTarget,
        dpop: Option<&DpopKey>,
    ) -> Result<TokenSet, OidcError> {
        let mut form = vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh_token.secret().to_owned()),
        ];
        // A route's own token: RFC 8707 `resource`, Auth0's `audience`, or other scopes.
        form.extend(target.grant_params().into_iter().map(|(k, v)| (k, v.to_owned())));
        self.token_request(form, dpop).await
    }

    /// The client-credentials grant (RFC 6749 §4.4) for the BFF's own token for `target`.
    pub async fn client_credentials(&self, target: &TokenTarget) -> Result<TokenSet, OidcError> {
        let mut form = vec![("grant_type", "client_credentials".into())];
        form.extend(target.grant_params().into_iter().map(|(k, v)| (k, v.to_owned())));
        // The BFF's own tokens stay Bearer: they are not a user's, and not per session.
        self.token_request(form, None).await
    }

    /// One request to the token endpoint, and its answer read.
    async fn token_request(
        &self,
        form: Vec<(&'static str, String)>,
        dpop: Option<&DpopKey>,
    ) -> Result<TokenSet, OidcError> {
        let endpoint = self.metadata().await?.token_endpoint.clone();
        let form = form.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let response = self.authenticated_post_with(&endpoint, form, dpop).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        token_answer(status, &body, dpop.is_some())
    }
}

/// The token endpoint's answer: tokens, the OAuth error it names (RFC 6749 §5.2), or
/// nonsense. A `DPoP` token is taken only from a request that carried a proof (`dpop`).
fn token_answer(status: http::StatusCode, body: &[u8], dpop: bool) -> Result<TokenSet, OidcError> {
    if !status.is_success() {
        #[derive(serde::Deserialize)]
        struct ErrorAnswer {
            error: String,
            #[serde(default)]
            error_description: Option<String>,
        }
        return match serde_json::from_slice::<ErrorAnswer>(body) {
            Ok(answer) => {
                // The provider's own words, for the log only (they are not ours to show).
                tracing::warn!(
                    error = %oauth_code(&answer.error),
                    error_description = answer.error_description.as_deref().unwrap_or(""),
                    %status,
                    "the token endpoint answered an OAuth error"
                );
                Err(OidcError::Rejected {
                    error: oauth_code(&answer.error),
                })
            }
            Err(_) => Err(OidcError::BadResponse(format!("the token endpoint answered {status}"))),
        };
    }
    // The parse error's text may quote the body, which holds tokens: keep only its kind.
    let response: CoreTokenResponse = serde_json::from_slice(body)
        .map_err(|e| OidcError::BadResponse(format!("unparsable token response ({:?})", e.classify())))?;
    token_set(&response, dpop)
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
/// to present is never used (RFC 6749 §7.1); `Bearer` is accepted in any case, `DPoP`
/// only in answer to a request with a proof.
fn token_set(response: &CoreTokenResponse, dpop: bool) -> Result<TokenSet, OidcError> {
    let token_type = check_token_type(response.token_type(), dpop)?;
    Ok(TokenSet {
        token_type,
        access_token: AccessToken::new(response.access_token().secret()),
        refresh_token: response.refresh_token().map(|t| RefreshToken::new(t.secret())),
        expires_in: response
            .expires_in()
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        id_token: response.id_token().map(|t| IdToken::new(t.to_string())),
    })
}

fn check_token_type(token_type: &BasicTokenType, dpop: bool) -> Result<TokenType, OidcError> {
    // The type is case-insensitive (RFC 6749 §5.1); the parser knows only `bearer`.
    match token_type {
        BasicTokenType::Bearer => Ok(TokenType::Bearer),
        BasicTokenType::Extension(other) if other.eq_ignore_ascii_case("bearer") => Ok(TokenType::Bearer),
        BasicTokenType::Extension(other) if other.eq_ignore_ascii_case("dpop") && dpop => Ok(TokenType::DPoP),
        BasicTokenType::Extension(other) if other.eq_ignore_ascii_case("dpop") => {
            Err(OidcError::UnexpectedTokenType("DPoP".into()))
        }
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
    fn token_answers_are_tokens_oauth_errors_or_nonsense() {
        let ok = br#"{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt"}"#;
        let tokens = token_answer(http::StatusCode::OK, ok, false).expect("tokens");
        assert_eq!(tokens.access_token.secret(), "at");
        assert_eq!(tokens.expires_in, Some(60));
        let refused = token_answer(http::StatusCode::UNAUTHORIZED, br#"{"error": "invalid_client"}"#, false);
        assert!(matches!(refused, Err(OidcError::Rejected { ref error }) if error == "invalid_client"));
        let down = token_answer(http::StatusCode::BAD_GATEWAY, b"<html>", false);
        assert!(matches!(down, Err(OidcError::BadResponse(_))));
        let leaky = token_answer(
            http::StatusCode::OK,
            br#"{"access_token": 7, "token_type": "secret-value"}"#,
            false,
        );
        assert!(matches!(leaky, Err(OidcError::BadResponse(ref m)) if !m.contains("secret-value")));
    }

    #[test]
    fn bearer_tokens_in_any_case_and_dpop_tokens_only_after_a_proof_are_used() {
        let parse = |t: &str| -> BasicTokenType { serde_json::from_value(serde_json::json!(t)).expect("token type") };
        for accepted in ["Bearer", "bearer", "BEARER"] {
            for dpop in [false, true] {
                // A Bearer answer to a proof is used, and sent, as Bearer.
                assert_eq!(check_token_type(&parse(accepted), dpop).ok(), Some(TokenType::Bearer));
            }
        }
        for dpop in ["DPoP", "dpop"] {
            assert_eq!(check_token_type(&parse(dpop), true).ok(), Some(TokenType::DPoP));
            assert!(
                matches!(
                    check_token_type(&parse(dpop), false),
                    Err(OidcError::UnexpectedTokenType(_))
                ),
                "{dpop} without a proof"
            );
        }
        for refused in ["mac", "N_A", ""] {
            assert!(check_token_type(&parse(refused), true).is_err(), "{refused}");
        }
        // A whole answer: BFF_DPOP=off and a provider that binds anyway fails the login.
        let bound = br#"{"access_token": "at", "token_type": "DPoP", "expires_in": 60}"#;
        assert!(matches!(
            token_answer(http::StatusCode::OK, bound, false),
            Err(OidcError::UnexpectedTokenType(_))
        ));
        let tokens = token_answer(http::StatusCode::OK, bound, true).expect("tokens");
        assert_eq!(tokens.token_type, TokenType::DPoP);
    }
}
