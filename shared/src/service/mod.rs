//! Services: the use cases of the BFF, one module each, free of HTTP.
//!
//! Each service takes what it needs ([`Deps`], or narrower ports) and returns a typed
//! error of its own concern; the HTTP edge ([`crate::http`]) reads requests, calls a
//! service and turns its result into an answer. Services never build a response, read a
//! header or a cookie, and never log a token.

pub mod admin;
pub mod backchannel;
pub mod callback;
pub mod client_token;
pub mod current_session;
pub mod forward;
pub mod login;
pub mod logout;
pub mod provider_check;
pub mod refresh;
#[cfg(test)]
mod tokio_clock;

use crate::domain::clock::Clock;
use crate::oidc::Oidc;
use crate::platform::config::Config;
use crate::platform::dpop::DpopKeyCache;
use crate::service::client_token::ClientTokens;
use crate::store::Store;

/// What the services share: borrowed from the per-process context for one request.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    /// Validated configuration.
    pub config: &'a Config,
    /// Transactions and sessions (tokens sealed).
    pub store: &'a dyn Store,
    /// The OpenID provider.
    pub oidc: &'a Oidc,
    /// The clock every expiry decision reads.
    pub clock: &'a dyn Clock,
    /// This process's memory of the BFF's own client-credentials tokens.
    pub client_tokens: &'a ClientTokens,
    /// This process's parsed DPoP keys of recent sessions.
    pub dpop_keys: &'a DpopKeyCache,
}

/// The request has no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session cookie, an id the BFF never issued, or an expired session.
    #[error("no valid session")]
    LoginRequired,
    /// The session ended while in use (deleted, or revoked at the provider).
    #[error("the session has ended")]
    Expired,
}
