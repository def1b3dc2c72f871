//! Lambda function serving `POST /auth/backchannel-logout`: the provider ends sessions.
//!
//! It validates logout tokens with the provider's public keys and never calls the token
//! endpoint, so it runs without the client secret.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::unit;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(unit::Backchannel).await
}
