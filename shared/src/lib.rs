//! The OAuth 2.0 Backend-for-Frontend: all logic shared by its Lambda functions.
//!
//! The browser never holds a token, only an opaque session cookie; this crate performs
//! the Authorization Code Grant with PKCE against an OpenID provider, keeps tokens in the
//! store, and forwards API calls with the user's access token.
//!
//! Layers, each importing only the ones below it (`infra/check-layers.sh` checks it):
//! - [`entry`]: the Lambda entry, the composition root; nothing imports it.
//! - [`http`]: the edge: router, per-route request and response policy (CSRF, CORS,
//!   cache headers), handlers, cookies, the error → status mapping, the access log,
//!   origin verification, and the per-process [`http::app::App`].
//! - [`service`]: the use cases without HTTP: login, callback, current session,
//!   refresh (single-flight across instances, generic over its ports), forwarding,
//!   logout, back-channel logout.
//! - [`oidc`] (the provider: discovery, JWKS, grants, ID and logout tokens, logout URL),
//!   [`upstream`] (the API client) and [`store`] (the store ports and their DynamoDB,
//!   in-memory and sealing adapters): the adapters behind the services' ports.
//! - [`platform`]: configuration, sealing, Secrets Manager, the AWS SDK, logging, the
//!   wall clock.
//! - [`domain`]: records and pure rules that take `now`: session lifetimes, refresh
//!   timing, `returnTo`, path joining and header rules, secrets as types, the clock port.

pub mod domain;
pub mod entry;
pub mod http;
pub mod oidc;
pub mod platform;
pub mod service;
pub mod store;
pub mod upstream;

pub use http::app::App;
pub use http::router::route;
