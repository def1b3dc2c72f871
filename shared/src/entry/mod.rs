//! The entry points: the composition root of a Lambda function, and of the operator's
//! commands (sessions, the client's public JWKS).
//!
//! Nothing imports this layer; it wires the platform, the store, the provider and the
//! edge together once per cold start and runs the runtime loop ([`lambda`]), or the
//! store and the admin service once per command ([`admin`]).

pub mod admin;
pub mod jwks;
pub mod lambda;
