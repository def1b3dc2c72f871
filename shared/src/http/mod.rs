//! The HTTP edge: everything that knows of requests, responses, cookies and statuses.
//!
//! [`router`] routes by path and applies each route's [`policy`] (preflight, origin and
//! anti-forgery checks, CORS, cache and referrer headers) once; [`handlers`] read a
//! request, call a service and build the answer; [`error`] is the one place where an
//! error of any concern becomes a status, an `error` code and a description. The edge
//! holds no business rule and never logs a token or a cookie value.

pub mod access_log;
pub mod app;
pub mod body;
pub mod cookies;
pub mod error;
pub mod handlers;
pub mod origin_verify;
pub mod policy;
pub mod response;
pub mod router;
