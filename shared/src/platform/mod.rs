//! Platform: the technology every layer above stands on.
//!
//! Configuration from the environment, sealing at rest, secret references resolved from
//! Secrets Manager, client-assertion keys (in memory or in KMS), the AWS SDK
//! configuration and the extra trust roots, log output and the wall clock. Nothing here knows of HTTP requests,
//! sessions or the provider; it imports only [`crate::domain`].

pub mod aws;
pub mod clock;
pub mod config;
pub mod dpop;
pub mod kms;
pub mod logging;
pub mod metrics;
pub mod seal;
pub mod secrets_manager;
pub mod signing;
pub mod trace_scope;
pub mod trust;
