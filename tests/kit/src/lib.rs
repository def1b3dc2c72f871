//! What the integration tests and the benchmarks both need to log in for real:
//!
//! - [`provider`]: the local OpenID provider (`infra/provider.mjs`, a real
//!   `oidc-provider`) started with its test hooks, client registration, the hooks'
//!   counts of grants, requests and back-channel logout tokens, its token, revocation
//!   and userinfo endpoints, and one provider shared by a whole test process.
//! - [`browser`]: a headless browser (cookie jar, no automatic redirects) that walks the
//!   provider's login and consent pages and stops at the redirect back to the relying
//!   party, so the callback can be delivered to a server, a handler in-process or a
//!   Lambda function; the same browser bound to one BFF; and a GET sent byte for byte.
//! - [`fault_proxy`]: a TCP proxy in front of DynamoDB (Local) that drops, delays or
//!   loses the answers of writes on cue.
//! - [`tls`]: a test CA and TLS terminators in front of loopback services.
//!
//! Everything listens on loopback addresses only.

pub mod browser;
pub mod fault_proxy;
pub mod provider;
pub mod tls;

pub use browser::{BffBrowser, Browser};
pub use provider::{Provider, RegisteredClient};
