//! The error the browser sees, and the one place where every internal error becomes an
//! HTTP answer.
//!
//! JSON endpoints answer `{"error": code, "error_description": text}`; browser
//! navigations (the callback) answer a short HTML page. Internal causes are logged here,
//! once, and never copied into a response body.

use http::StatusCode;
use lambda_http::{Body, Response};

use crate::oidc::OidcError;
use crate::proxy::ProxyError;
use crate::redirect::InvalidReturnTo;
use crate::store::StoreError;
use crate::web;

/// An error answer: status, machine-readable code and human-readable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `error` code.
    pub code: &'static str,
    /// The `error_description`, safe to show.
    pub description: String,
}

impl ApiError {
    /// An error with an explicit status, code and description.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(code: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, description)
    }

    /// 401: no valid session.
    pub fn login_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "no valid session; log in again",
        )
    }

    /// 401: the session ended (expired or revoked at the provider).
    pub fn session_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "session_expired",
            "the session has expired; log in again",
        )
    }

    /// 403: anti-forgery or origin check failed.
    pub fn forbidden(code: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, description)
    }

    /// 405 for an endpoint called with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        )
    }

    /// 404 for a path no handler serves.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// The JSON answer.
    pub fn to_json(&self) -> Response<Body> {
        web::json(
            self.status,
            &serde_json::json!({ "error": self.code, "error_description": self.description }),
        )
    }

    /// The HTML page answer, for browser navigations.
    pub fn to_page(&self) -> Response<Body> {
        let title = match self.status {
            StatusCode::FORBIDDEN if self.code == "access_denied" => "Access denied",
            s if s.is_client_error() => "Login failed",
            _ => "Login is unavailable right now",
        };
        web::html_page(self.status, title, &format!("{} ({})", self.description, self.code))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "session storage is unavailable; try again",
        )
    }
}

impl From<OidcError> for ApiError {
    fn from(e: OidcError) -> Self {
        tracing::warn!(error = %e, "identity provider error");
        match e {
            OidcError::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "provider_timeout",
                "the identity provider did not answer in time",
            ),
            OidcError::Rejected { error } if error == "invalid_grant" => Self::bad_request(
                "invalid_grant",
                "the identity provider refused the authorization code; log in again",
            ),
            OidcError::InvalidIdToken(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "invalid_id_token",
                "the identity provider sent an ID token that failed validation",
            ),
            OidcError::Discovery(_) | OidcError::Jwks(_) | OidcError::Unreachable(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                "the identity provider could not be reached or is misconfigured",
            ),
            OidcError::Rejected { .. } | OidcError::BadResponse(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "the identity provider answered with an error",
            ),
        }
    }
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::InvalidPath => Self::bad_request("invalid_path", "the API path is not allowed"),
            ProxyError::Timeout => {
                tracing::warn!("upstream timeout");
                Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the API did not answer in time",
                )
            }
            ProxyError::Unreachable(cause) => {
                tracing::warn!(error = %cause, "upstream unreachable");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "the API could not be reached",
                )
            }
        }
    }
}

impl From<InvalidReturnTo> for ApiError {
    fn from(e: InvalidReturnTo) -> Self {
        Self::bad_request("invalid_return_to", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ApiError::from(StoreError::Unavailable("x".into())).status, 503);
        assert_eq!(ApiError::from(OidcError::Timeout).status, 504);
        assert_eq!(ApiError::from(OidcError::Unreachable("x".into())).status, 502);
        assert_eq!(ApiError::from(OidcError::InvalidIdToken("x".into())).status, 502);
        assert_eq!(ApiError::from(ProxyError::Timeout).status, 504);
        assert_eq!(ApiError::from(ProxyError::Unreachable("x".into())).status, 502);
        assert_eq!(ApiError::from(ProxyError::InvalidPath).status, 400);
        assert_eq!(ApiError::from(InvalidReturnTo).status, 400);
    }

    #[test]
    fn internal_causes_never_reach_the_body() {
        let response = ApiError::from(StoreError::Unavailable("arn:aws:dynamodb:secret-table".into())).to_json();
        let Body::Text(body) = response.body() else {
            panic!("text")
        };
        assert!(!body.contains("arn:aws") && body.contains("store_unavailable"));
    }
}
