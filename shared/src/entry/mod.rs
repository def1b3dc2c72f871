//! The entry points: the composition root of a Lambda function, and the operator's JWKS
//! command.
//!
//! Nothing imports this layer; it wires the platform, the store, the provider and the
//! edge together once per cold start and runs the runtime loop.

pub mod jwks;
pub mod lambda;
