//! Client authentication for the provider's endpoints the BFF posts forms to besides the
//! token endpoint (RFC 9126 pushed authorization requests, RFC 7009 revocation): one
//! function, so each is authenticated exactly as the token endpoint is and a new method
//! is added in one place. This module never logs the secret.

use super::{ClientAuth, Oidc};

impl Oidc {
    /// A POST of `form` to `endpoint`, authenticated by `auth` (the method discovery chose
    /// for the token endpoint).
    pub(super) fn authenticated_post(
        &self,
        endpoint: &str,
        auth: ClientAuth,
        mut form: Vec<(String, String)>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.post(endpoint);
        match auth {
            // RFC 6749 2.3.1: id and secret are form-encoded before the Basic encoding.
            ClientAuth::Basic => {
                let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let secret = self.client_secret.as_ref().map(|s| encode(s.secret()));
                request = request.basic_auth(encode(&self.client_id), secret);
            }
            ClientAuth::Post => {
                form.push(("client_id".into(), self.client_id.clone()));
                if let Some(secret) = &self.client_secret {
                    form.push(("client_secret".into(), secret.secret().to_owned()));
                }
            }
        }
        request.form(&form)
    }
}
