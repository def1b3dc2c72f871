//! Lambda function serving `GET /auth/login`: starts the Authorization Code Grant.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_lambda(Needs::default(), |app, req| async move {
        bff::handlers::login::handle(&app, req).await
    })
    .await
}
