//! One structured log line per request: request id, route, method, status, latency and
//! the user's `sub` only as a hash.
//!
//! Paths and query strings are never logged (a callback's query holds the authorization
//! code, an API path may hold personal data): the route name stands for them. Through the
//! JSON subscriber of the Lambda functions every line is one JSON object.

use std::time::Instant;

use lambda_http::{Request, RequestExt as _, Response};

use super::response::header_str;
use crate::domain::secret::{hash, random_token};

/// Response extension by which a handler names the user it served (as a hash).
#[derive(Debug, Clone)]
pub struct UserHash(pub String);

/// Marks `response` as served to the user `sub`; the access log shows only the hash.
pub fn for_user<B>(mut response: Response<B>, sub: &str) -> Response<B> {
    response.extensions_mut().insert(UserHash(hash(sub)));
    response
}

/// Response extension naming the `error` code a BFF-made error answer carries, so the
/// access line of a 4xx/5xx says what the client was told.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// What the access log keeps of a request while it is handled.
pub struct Started {
    request_id: String,
    route: &'static str,
    method: String,
    at: Instant,
}

impl Started {
    /// Notes the start of `req`, served by `route`.
    pub fn new(req: &Request, route: &'static str) -> Self {
        let request_id = req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .filter(|id| !id.is_empty())
            .or_else(|| {
                // A caller-supplied id is kept only if it is short and plain.
                header_str(req.headers(), "x-request-id")
                    .filter(|id| {
                        id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| random_token(12));
        Self {
            request_id,
            route,
            method: req.method().to_string(),
            at: Instant::now(),
        }
    }

    /// Writes the line for `response`, once its status and headers are known (a streamed
    /// body may still be on its way).
    pub fn finish<B>(self, response: &Response<B>) {
        let latency_ms = self.at.elapsed().as_secs_f64() * 1000.0;
        let user = response
            .extensions()
            .get::<UserHash>()
            .map(|u| u.0.as_str())
            .unwrap_or("");
        let error = response.extensions().get::<ErrorCode>().map_or("", |e| e.0);
        tracing::info!(
            target: "access",
            request_id = %self.request_id,
            route = self.route,
            method = %self.method,
            status = response.status().as_u16(),
            latency_ms = (latency_ms * 1000.0).round() / 1000.0,
            sub_hash = user,
            error,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use lambda_http::Body;

    use super::*;

    #[test]
    fn the_user_is_recorded_only_as_a_hash() {
        let response = for_user(Response::new(Body::Empty), "alice");
        let recorded = response.extensions().get::<UserHash>().expect("user");
        assert_ne!(recorded.0, "alice");
        assert_eq!(recorded.0, hash("alice"));
    }

    #[test]
    fn hostile_request_ids_are_replaced() {
        let req = http::Request::builder()
            .uri("/auth/me")
            .header("x-request-id", "abc\"} injected")
            .body(Body::Empty)
            .expect("request");
        let started = Started::new(&req, "me");
        assert_ne!(started.request_id, "abc\"} injected");
        let req = http::Request::builder()
            .uri("/auth/me")
            .header("x-request-id", "req-42")
            .body(Body::Empty)
            .expect("r");
        assert_eq!(Started::new(&req, "me").request_id, "req-42");
    }
}
