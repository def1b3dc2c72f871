//! One structured log line per request: request id, route, method, status, latency,
//! the trace ids (W3C `trace_id`, and in Lambda the X-Ray trace id) and the user's `sub`
//! only as a hash.
//!
//! With metrics on, the Lambda functions write a second line per invocation: its
//! CloudWatch Embedded Metric Format record (see [`crate::platform::metrics`]), apart
//! from this one because EMF wants its keys at the top level of the object.
//!
//! [`Started::new`] also attaches the request's [`TraceContext`] (the browser's trace
//! continued, or a new one) as a request extension, so the proxy sends the upstream the
//! trace this line names.
//!
//! Paths and query strings are never logged (a callback's query holds the authorization
//! code, an API path may hold personal data): the route name stands for them. Through the
//! JSON subscriber of the Lambda functions every line is one JSON object.

use std::io::Write as _;
use std::time::Instant;

use lambda_http::{Request, RequestExt as _, Response};

use super::response::header_str;
use crate::domain::secret::{hash, random_token};
use crate::domain::trace::{TRACEPARENT, TraceContext};
use crate::platform::metrics::Invocation;

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
    trace_id: String,
    xray_trace_id: String,
    route: &'static str,
    method: String,
    at: Instant,
}

impl Started {
    /// Notes the start of `req`, served by `route`, and attaches its trace context.
    pub fn new(req: &mut Request, route: &'static str) -> Self {
        let trace = TraceContext::continue_or_start(header_str(req.headers(), TRACEPARENT));
        let trace_id = trace.trace_id().to_owned();
        let xray_trace_id = xray_trace_id(req);
        req.extensions_mut().insert(trace);
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
            trace_id,
            xray_trace_id,
            route,
            method: req.method().to_string(),
            at: Instant::now(),
        }
    }

    /// Writes the line for `response`, once its status and headers are known (a streamed
    /// body may still be on its way), and the invocation's EMF line in the namespace given
    /// with it.
    pub fn finish<B>(self, response: &Response<B>, emf: Option<(&Invocation, &str)>) {
        if let Some((invocation, namespace)) = emf {
            let (status, bff_error) = answered(response);
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let line = invocation.emf(namespace, self.route, status, bff_error, now_ms);
            // One write of one whole line, under stdout's lock: lines never interleave.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
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
            trace_id = %self.trace_id,
            xray_trace_id = %self.xray_trace_id,
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

/// The trace context [`Started::new`] attached to `req` (a new trace if none was).
pub fn trace_of(req: &Request) -> TraceContext {
    req.extensions()
        .get::<TraceContext>()
        .cloned()
        .unwrap_or_else(TraceContext::start)
}

/// The status of `response`, and whether the BFF made it as an error answer (rather than
/// passing on an upstream's).
pub fn answered<B>(response: &Response<B>) -> (u16, bool) {
    (
        response.status().as_u16(),
        response.extensions().get::<ErrorCode>().is_some(),
    )
}

/// The X-Ray trace id of this invocation (Lambda's context, else `_X_AMZN_TRACE_ID`,
/// else the `X-Amzn-Trace-Id` header), empty when there is none or it is not plain.
fn xray_trace_id(req: &Request) -> String {
    req.lambda_context_ref()
        .and_then(|c| c.xray_trace_id.clone())
        .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok())
        .or_else(|| header_str(req.headers(), "x-amzn-trace-id").map(str::to_owned))
        .filter(|id| {
            id.len() <= 256
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b';' | b'-'))
        })
        .unwrap_or_default()
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
        let mut req = http::Request::builder()
            .uri("/auth/me")
            .header("x-request-id", "abc\"} injected")
            .body(Body::Empty)
            .expect("request");
        let started = Started::new(&mut req, "me");
        assert_ne!(started.request_id, "abc\"} injected");
        let mut req = http::Request::builder()
            .uri("/auth/me")
            .header("x-request-id", "req-42")
            .body(Body::Empty)
            .expect("r");
        assert_eq!(Started::new(&mut req, "me").request_id, "req-42");
    }

    #[test]
    fn the_line_names_the_trace_the_request_carries_on() {
        let mut req = http::Request::builder()
            .uri("/api/x")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .header("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
            .body(Body::Empty)
            .expect("request");
        let started = Started::new(&mut req, "api");
        assert_eq!(started.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let attached = req.extensions().get::<TraceContext>().expect("attached");
        assert_eq!(attached.trace_id(), started.trace_id);
        if std::env::var_os("_X_AMZN_TRACE_ID").is_none() {
            assert_eq!(
                started.xray_trace_id,
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
            );
        }
        let mut hostile = http::Request::builder()
            .uri("/api/x")
            .header("x-amzn-trace-id", "Root=1\"} injected")
            .body(Body::Empty)
            .expect("request");
        if std::env::var_os("_X_AMZN_TRACE_ID").is_none() {
            assert_eq!(Started::new(&mut hostile, "api").xray_trace_id, "");
        }
    }
}
