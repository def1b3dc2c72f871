//! Domain rules: the data the BFF keeps and the decisions it makes about it.
//!
//! Everything here is pure: rules take `now` (or a [`clock::Clock`]) as an argument and
//! never perform I/O, so each is a table-driven unit test. This layer imports nothing
//! else of the crate; every other layer may import it.

pub mod claims;
pub mod clock;
pub mod forwarding;
pub mod login_options;
pub mod return_to;
pub mod routes;
pub mod secret;
pub mod session;
pub mod trace;
