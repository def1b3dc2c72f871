//! Ending the provider's side of a session: the RP-initiated logout URL and RFC 7009
//! revocation of the refresh token.
//!
//! The end-session URL always carries a fresh random `state` (RP-Initiated Logout 1.0
//! §2): some providers (Glewlwyd) send the browser back to `post_logout_redirect_uri`
//! only when the request has one. The BFF keeps no logout state, so the value is not
//! checked on return; it protects nothing and costs nothing.

use url::Url;

use super::Oidc;
use crate::domain::secret::{IdToken, RefreshToken, random_token};
use crate::platform::config::Config;

/// Random bytes of the end-session request's `state`.
const LOGOUT_STATE_BYTES: usize = 16;

impl Oidc {
    /// Where to send the browser after a local logout: the configured logout URL
    /// template, else the provider's end-session endpoint (OpenID Connect RP-Initiated
    /// Logout 1.0, with `id_token_hint` and a random `state`), else the BFF's own
    /// post-logout page.
    pub async fn logout_url(&self, config: &Config, id_token_hint: Option<&IdToken>) -> String {
        let post_logout = config.post_logout_url();
        let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        if let Some(template) = &config.logout_url {
            return template
                .replace("{client_id}", &encode(&self.client_id))
                .replace("{post_logout_redirect_uri}", &encode(&post_logout))
                .replace(
                    "{id_token_hint}",
                    &encode(id_token_hint.map(IdToken::secret).unwrap_or_default()),
                );
        }
        let endpoint = match self.metadata().await {
            Ok(metadata) => metadata.end_session_endpoint.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "no discovery for logout; using the local page");
                None
            }
        };
        let Some(mut url) = endpoint.and_then(|e| Url::parse(&e).ok()) else {
            return post_logout;
        };
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.client_id)
                .append_pair("post_logout_redirect_uri", &post_logout)
                .append_pair("state", &random_token(LOGOUT_STATE_BYTES));
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint.secret());
            }
        }
        url.into()
    }

    /// Revokes a refresh token at the provider's RFC 7009 endpoint, when it has one,
    /// authenticated as the token requests are. Best effort: a logout never fails because
    /// revocation did.
    pub async fn revoke(&self, refresh_token: &RefreshToken) {
        let Ok(metadata) = self.metadata().await else {
            return;
        };
        let Some(endpoint) = metadata.revocation_endpoint.clone() else {
            return;
        };
        let form = vec![
            ("token".to_owned(), refresh_token.secret().to_owned()),
            ("token_type_hint".to_owned(), "refresh_token".to_owned()),
        ];
        match self.authenticated_post(&endpoint, form).await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::warn!(status = %response.status(), "refresh-token revocation refused"),
            Err(e) => tracing::warn!(error = %e, "refresh-token revocation failed"),
        }
    }
}
