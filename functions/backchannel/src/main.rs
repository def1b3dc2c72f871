//! Lambda function serving `POST /auth/backchannel-logout`: the provider ends sessions.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_lambda(Needs::default(), |app, req| async move {
        bff::handlers::backchannel::handle(&app, req).await
    })
    .await
}
