//! The OAuth 2.0 Backend-for-Frontend: all logic shared by its Lambda functions.
//!
//! The browser never holds a token, only an opaque session cookie; this crate performs
//! the Authorization Code Grant with PKCE against an OpenID provider, keeps tokens in the
//! store, and forwards API calls with the user's access token.
//!
//! Module map:
//! - [`config`]: environment configuration, validated once at start-up.
//! - [`secret`]: secret newtypes (redacted `Debug`, constant-time equality), random ids.
//! - [`store`]: login transactions and sessions, in DynamoDB or in memory, tokens sealed.
//! - [`seal`]: AES-256-GCM sealing of tokens at rest, with key rotation.
//! - [`oidc`]: discovery, JWKS, authorization URL, code exchange, ID-token validation, refresh.
//! - [`session`]: session lifetimes and token-refresh decisions (pure rules).
//! - [`refresh`]: access-token refresh, single-flight across instances through the store.
//! - [`cookies`]: building and reading the session and transaction cookies.
//! - [`redirect`]: `returnTo` validation against open redirects.
//! - [`csrf`]: anti-forgery header, origin checks and CORS.
//! - [`proxy`]: path joining, header filtering and forwarding to the upstream API.
//! - [`errors`]: the error answered to the browser, mapped to HTTP in one place.
//! - [`web`]: request and response helpers.
//! - [`handlers`]: one module per endpoint group, each a plain `Request -> Response` function.
//! - [`app`]: the per-process context handlers borrow, and the path router.
//! - [`access_log`]: one structured line per request, the user only as a hash.
//! - [`runtime`]: start-up of a Lambda function.
//! - [`secrets`]: secret references (`*_ARN`) resolved from Secrets Manager at cold start.
//! - [`aws`]: the AWS SDK configuration, loaded once, with its own HTTPS client.
//! - [`edge`]: origin verification, the proof that a request came through CloudFront.

pub mod access_log;
pub mod app;
pub mod aws;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod edge;
pub mod errors;
pub mod handlers;
pub mod oidc;
pub mod proxy;
pub mod redirect;
pub mod refresh;
pub mod runtime;
pub mod seal;
pub mod secret;
pub mod secrets;
pub mod session;
pub mod store;
pub mod web;

pub use app::{App, route};
