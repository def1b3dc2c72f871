//! Lambda function serving `POST /auth/backchannel-logout`: the provider ends sessions.
//!
//! It validates logout tokens with the provider's public keys and never calls the token
//! endpoint, so it runs without the client secret.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    let needs = Needs {
        client_secret: false,
        ..Needs::default()
    };
    run_lambda(needs, |app, req| async move {
        bff::handlers::backchannel::handle(&app, req).await
    })
    .await
}
