//! The one place where every error of every concern becomes the answer the browser
//! sees: status, `error` code and `error_description`.
//!
//! JSON endpoints answer `{"error": code, "error_description": text}`; browser
//! navigations (the callback) answer a short HTML page. Internal causes are logged here,
//! once, and never copied into a response body. The codes and statuses are the
//! documented contract: change none without changing the README.

use http::StatusCode;
use lambda_http::{Body, Response};

use super::access_log::ErrorCode;
use super::response;
use crate::domain::forwarding::InvalidApiPath;
use crate::domain::return_to::InvalidReturnTo;
use crate::oidc::OidcError;
use crate::service::SessionError;
use crate::service::backchannel::BackchannelError;
use crate::service::callback::CallbackError;
use crate::service::forward::ForwardError;
use crate::service::login::LoginError;
use crate::service::refresh::RefreshError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// The request itself is wrong, whatever endpoint it reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A parameter is missing, repeated or malformed (the description says which).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The endpoint does not serve this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No endpoint serves this path.
    #[error("no such endpoint")]
    NotFound,
    /// The proxy is called in a process without an upstream.
    #[error("no upstream configured")]
    UpstreamNotConfigured,
    /// A path under `/api` that no configured route serves.
    #[error("no API route")]
    NoRoute,
    /// The API route does not allow this method; holds the `Allow` header's value.
    #[error("method not allowed on this route")]
    RouteMethodNotAllowed(String),
    /// The request body is larger than a Lambda function URL accepts.
    #[error("request body too large")]
    BodyTooLarge,
}

/// The edge refused the request before any handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `X-CSRF: 1` is missing (or not exactly that, once).
    #[error("anti-forgery header missing")]
    CsrfHeaderMissing,
    /// `Origin` is neither the BFF's nor an allowed one (or is sent twice, or `null`).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// No `Origin`, but `Sec-Fetch-Site: cross-site`.
    #[error("cross-site request")]
    CrossSiteRequest,
    /// The request did not come through CloudFront.
    #[error("origin not verified")]
    OriginNotVerified,
}

/// A redirect target that cannot be put in a `Location` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unredirectable {
    /// The provider's authorization endpoint (from discovery).
    #[error("bad authorization endpoint")]
    AuthorizationEndpoint,
    /// The validated `returnTo`.
    #[error("unusable return address")]
    ReturnTo,
}

/// An error answer: status, machine-readable code and human-readable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `error` code.
    pub code: &'static str,
    /// The `error_description`, safe to show.
    pub description: String,
    /// The `Allow` header of a 405 that can name the allowed methods.
    pub allow: Option<String>,
}

impl ErrorAnswer {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            allow: None,
        }
    }

    /// The JSON answer.
    pub fn to_json(&self) -> Response<Body> {
        self.coded(response::json(
            self.status,
            &serde_json::json!({ "error": self.code, "error_description": self.description }),
        ))
    }

    /// The HTML page answer, for browser navigations.
    pub fn to_page(&self) -> Response<Body> {
        let title = match self.status {
            StatusCode::FORBIDDEN if self.code == "access_denied" => "Access denied",
            s if s.is_client_error() => "Login failed",
            _ => "Login is unavailable right now",
        };
        self.coded(response::html_page(self.status, title, &self.description, self.code))
    }

    /// Marks `answer` with this error's code for the access log.
    fn coded(&self, mut answer: Response<Body>) -> Response<Body> {
        answer.extensions_mut().insert(ErrorCode(self.code));
        if let Some(allow) = self.allow.as_deref().and_then(|a| http::HeaderValue::from_str(a).ok()) {
            answer.headers_mut().insert(http::header::ALLOW, allow);
        }
        answer
    }
}

const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const BAD_GATEWAY: StatusCode = StatusCode::BAD_GATEWAY;
const UNAVAILABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

impl From<RequestError> for ErrorAnswer {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(why) => Self::new(BAD_REQUEST, "invalid_request", why),
            RequestError::MethodNotAllowed => Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            ),
            RequestError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
            RequestError::UpstreamNotConfigured => {
                Self::new(BAD_GATEWAY, "upstream_not_configured", "no upstream API is configured")
            }
            RequestError::NoRoute => Self::new(StatusCode::NOT_FOUND, "no_route", "no API route serves this path"),
            RequestError::BodyTooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "the request body is larger than the BFF accepts",
            ),
            RequestError::RouteMethodNotAllowed(allow) => Self {
                allow: Some(allow),
                ..Self::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this API route does not allow the method",
                )
            },
        }
    }
}

impl From<Refusal> for ErrorAnswer {
    fn from(e: Refusal) -> Self {
        let (code, description) = match e {
            Refusal::CsrfHeaderMissing => ("csrf_header_missing", "the X-CSRF: 1 header is required"),
            Refusal::OriginNotAllowed => ("origin_not_allowed", "requests from this origin are not allowed"),
            Refusal::CrossSiteRequest => ("cross_site_request", "cross-site requests are not allowed"),
            Refusal::OriginNotVerified => (
                "origin_not_verified",
                "requests must come through the application's own origin",
            ),
        };
        Self::new(StatusCode::FORBIDDEN, code, description)
    }
}

impl From<Unredirectable> for ErrorAnswer {
    fn from(e: Unredirectable) -> Self {
        match e {
            Unredirectable::AuthorizationEndpoint => {
                Self::new(BAD_GATEWAY, "provider_error", "bad authorization endpoint")
            }
            Unredirectable::ReturnTo => Self::new(BAD_REQUEST, "invalid_return_to", "the return address is not usable"),
        }
    }
}

impl From<SessionError> for ErrorAnswer {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::LoginRequired => Self::new(UNAUTHORIZED, "login_required", "no valid session; log in again"),
            SessionError::Expired => {
                Self::new(UNAUTHORIZED, "session_expired", "the session has expired; log in again")
            }
        }
    }
}

impl From<StoreError> for ErrorAnswer {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        Self::new(
            UNAVAILABLE,
            "store_unavailable",
            "session storage is unavailable; try again",
        )
    }
}

impl From<OidcError> for ErrorAnswer {
    fn from(e: OidcError) -> Self {
        // The log line and the description both name the cause; neither carries a token,
        // a code or a secret (the variants never hold one).
        tracing::warn!(error = %e, "identity provider error");
        match e {
            OidcError::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "provider_timeout",
                "the identity provider did not answer in time; check that it is up and reachable from the BFF",
            ),
            OidcError::Rejected { error } if error == "invalid_grant" => Self::new(
                BAD_REQUEST,
                "invalid_grant",
                "the identity provider refused the authorization code (invalid_grant): it expired or was \
                 already used, or the redirect URI or PKCE verifier did not match; log in again",
            ),
            OidcError::IdTokenAlgorithm { received, accepted } => Self::new(
                BAD_GATEWAY,
                "invalid_id_token_alg",
                format!(
                    "the identity provider signed the ID token with {received}, which the BFF does not \
                     accept (accepted: {accepted}); set this client's ID-token signature algorithm at \
                     the provider to RS256 (or another accepted one)"
                ),
            ),
            OidcError::InvalidIdToken(why) => Self::new(
                BAD_GATEWAY,
                "invalid_id_token",
                format!("the identity provider's ID token was refused: {why}"),
            ),
            OidcError::Discovery(why) => Self::new(
                BAD_GATEWAY,
                "provider_unavailable",
                format!("the identity provider's discovery document is not usable: {why}"),
            ),
            // The provider refused the BFF itself (a key it does not know, a secret it does
            // not take): an operator's problem, named as such in the log line above.
            OidcError::ClientAuth(_) => Self::new(
                BAD_GATEWAY,
                "client_authentication_failed",
                "the BFF could not authenticate itself to the identity provider (its log line names why)",
            ),
            OidcError::Rejected { error } if error == "invalid_client" => Self::new(
                BAD_GATEWAY,
                "client_authentication_failed",
                "the identity provider refused the BFF's client authentication; check BFF_CLIENT_ID, \
                 the secret or key, and the client's token endpoint authentication method at the provider",
            ),
            OidcError::Jwks(why) => Self::new(
                BAD_GATEWAY,
                "provider_unavailable",
                format!("the identity provider's signing keys (jwks_uri) could not be read: {why}"),
            ),
            OidcError::Unreachable(why) => Self::new(
                BAD_GATEWAY,
                "provider_unavailable",
                format!("the identity provider could not be reached: {why}"),
            ),
            OidcError::Rejected { error } => {
                let advice = match error.as_str() {
                    "unauthorized_client" => {
                        "; allow this client the authorization_code and refresh_token grants at the provider"
                    }
                    "invalid_scope" => "; check BFF_SCOPES against the scopes the provider allows this client",
                    _ => "",
                };
                Self::new(
                    BAD_GATEWAY,
                    "provider_error",
                    format!("the identity provider's token endpoint refused the request ({error}){advice}"),
                )
            }
            OidcError::UnexpectedTokenType(token_type) => Self::new(
                BAD_GATEWAY,
                "unexpected_token_type",
                format!(
                    "the identity provider issued a {token_type}-bound access token, which the BFF is not \
                     configured to use; set BFF_DPOP=on, or stop the provider binding this client's tokens"
                ),
            ),
            OidcError::Dpop(why) => Self::new(
                BAD_GATEWAY,
                "provider_error",
                format!("the BFF could not prove possession of the session's DPoP key: {why}"),
            ),
            OidcError::BadResponse(why) => Self::new(
                BAD_GATEWAY,
                "provider_error",
                format!("the identity provider's token endpoint answered something unusable: {why}"),
            ),
        }
    }
}

impl From<InvalidReturnTo> for ErrorAnswer {
    fn from(e: InvalidReturnTo) -> Self {
        Self::new(BAD_REQUEST, "invalid_return_to", e.to_string())
    }
}

impl From<InvalidApiPath> for ErrorAnswer {
    fn from(_: InvalidApiPath) -> Self {
        Self::new(BAD_REQUEST, "invalid_path", "the API path is not allowed")
    }
}

impl From<UpstreamError> for ErrorAnswer {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Timeout => {
                tracing::warn!("upstream timeout");
                Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the API did not answer in time",
                )
            }
            UpstreamError::Unreachable(cause) => {
                tracing::warn!(error = %cause, "upstream unreachable");
                Self::new(BAD_GATEWAY, "upstream_unavailable", "the API could not be reached")
            }
            // Mid-body failures break the streamed answer off; these answers exist only
            // for completeness, as the head has already gone out by then.
            UpstreamError::IdleTimeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the API stopped sending in time",
            ),
            UpstreamError::BrokeOff(cause) => {
                tracing::warn!(error = %cause, "upstream broke off");
                Self::new(BAD_GATEWAY, "upstream_unavailable", "the API broke off its answer")
            }
            // The browser's own upload failed: its mistake (or its connection's), not the API's.
            UpstreamError::RequestBodyBrokeOff(cause) => {
                tracing::info!(error = %cause, "request body broke off; upstream call broken off");
                Self::new(BAD_REQUEST, "invalid_request", "the request body broke off")
            }
        }
    }
}

impl From<RefreshError> for ErrorAnswer {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::SessionEnded => SessionError::Expired.into(),
            RefreshError::InProgress => Self::new(
                UNAVAILABLE,
                "refresh_in_progress",
                "the session is being refreshed; try again",
            ),
            // A refresh is never the browser's fault: a provider 4xx other than
            // invalid_grant is a provider problem.
            RefreshError::Provider(e) => match Self::from(e) {
                answer if answer.status.is_client_error() => Self::new(
                    BAD_GATEWAY,
                    "provider_error",
                    "the identity provider refused the refresh",
                ),
                answer => answer,
            },
            // The provider refused the BFF itself, not this API's token.
            RefreshError::TargetRefused { error } if error == "invalid_client" => OidcError::Rejected { error }.into(),
            RefreshError::TargetRefused { error } => {
                // The provider's error code only, in the characters OAuth error codes use.
                let code: String = error
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
                    .take(64)
                    .collect();
                Self::new(
                    BAD_GATEWAY,
                    "api_token_refused",
                    format!("the identity provider would not issue this API's token ({code})"),
                )
            }
            RefreshError::Store(e) => e.into(),
        }
    }
}

impl From<LoginError> for ErrorAnswer {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Provider(e) => e.into(),
            LoginError::Store(e) => e.into(),
        }
    }
}

impl From<CallbackError> for ErrorAnswer {
    fn from(e: CallbackError) -> Self {
        match e {
            CallbackError::AccessDenied { text } => Self::new(StatusCode::FORBIDDEN, "access_denied", text),
            CallbackError::ProviderReported { text } => Self::new(BAD_REQUEST, "provider_error", text),
            CallbackError::MissingCode => Self::new(BAD_REQUEST, "invalid_request", "the callback has no code"),
            CallbackError::MissingState => Self::new(BAD_REQUEST, "invalid_request", "the callback has no state"),
            CallbackError::UnknownState => Self::new(
                BAD_REQUEST,
                "invalid_state",
                "this login was not started in this browser, has expired, or was already used",
            ),
            CallbackError::WrongIssuer => Self::new(
                BAD_REQUEST,
                "invalid_issuer",
                "the authorization response does not come from the configured identity provider",
            ),
            CallbackError::NoIdToken => Self::new(BAD_GATEWAY, "invalid_id_token", "the provider returned no ID token"),
            CallbackError::UserinfoSubjectMismatch => Self::new(
                BAD_GATEWAY,
                "userinfo_subject_mismatch",
                "the identity provider's userinfo endpoint described another user than the ID token; \
                 check the provider's subject (sub) settings for this client",
            ),
            // RFC 9470's code for an authentication weaker or older than asked.
            CallbackError::Unmet(e) => {
                Self::new(StatusCode::FORBIDDEN, "insufficient_user_authentication", e.to_string())
            }
            CallbackError::Provider(e) => e.into(),
            CallbackError::Store(e) => e.into(),
        }
    }
}

impl From<BackchannelError> for ErrorAnswer {
    fn from(e: BackchannelError) -> Self {
        match e {
            BackchannelError::MissingToken => Self::new(BAD_REQUEST, "invalid_request", "no logout_token"),
            BackchannelError::InvalidToken(e) => {
                tracing::warn!(error = %e, "back-channel logout token refused");
                Self::new(BAD_REQUEST, "invalid_request", "the logout token is not valid")
            }
            BackchannelError::Replayed => {
                Self::new(BAD_REQUEST, "invalid_request", "the logout token was already used")
            }
            BackchannelError::Store(e) => e.into(),
        }
    }
}

impl From<ForwardError> for ErrorAnswer {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::Session(e) => e.into(),
            ForwardError::Refresh(e) => e.into(),
            ForwardError::Upstream(e) => e.into(),
            ForwardError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorAnswer::from(StoreError::Unavailable("x".into())).status, 503);
        assert_eq!(ErrorAnswer::from(OidcError::Timeout).status, 504);
        assert_eq!(ErrorAnswer::from(OidcError::Unreachable("x".into())).status, 502);
        assert_eq!(ErrorAnswer::from(OidcError::InvalidIdToken("x".into())).status, 502);
        assert_eq!(ErrorAnswer::from(UpstreamError::Timeout).status, 504);
        assert_eq!(ErrorAnswer::from(UpstreamError::Unreachable("x".into())).status, 502);
        assert_eq!(ErrorAnswer::from(InvalidApiPath).status, 400);
        assert_eq!(ErrorAnswer::from(InvalidReturnTo).status, 400);
    }

    #[test]
    fn a_refresh_refused_by_the_provider_is_never_the_browsers_fault() {
        let refused = RefreshError::Provider(OidcError::Rejected {
            error: "invalid_grant".into(),
        });
        let answer = ErrorAnswer::from(refused);
        assert_eq!(
            (answer.status, answer.code),
            (StatusCode::BAD_GATEWAY, "provider_error")
        );
        assert_eq!(ErrorAnswer::from(RefreshError::SessionEnded).code, "session_expired");
    }

    #[test]
    fn internal_causes_never_reach_the_body() {
        let response = ErrorAnswer::from(StoreError::Unavailable("arn:aws:dynamodb:secret-table".into())).to_json();
        let Body::Text(body) = response.body() else {
            panic!("text")
        };
        assert!(!body.contains("arn:aws") && body.contains("store_unavailable"));
    }

    #[test]
    fn error_answers_carry_their_code_for_the_access_log_and_nosniff() {
        for answer in [
            ErrorAnswer::from(Refusal::CsrfHeaderMissing).to_json(),
            ErrorAnswer::from(Refusal::CsrfHeaderMissing).to_page(),
        ] {
            let code = answer.extensions().get::<ErrorCode>().map(|c| c.0);
            assert_eq!(code, Some("csrf_header_missing"));
            assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
        }
    }
}
