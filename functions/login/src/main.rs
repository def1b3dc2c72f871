//! Lambda function serving `GET /auth/login`: starts the Authorization Code Grant.
//!
//! It never calls the token endpoint, so it runs without the client secret.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    let needs = Needs {
        client_secret: false,
        ..Needs::default()
    };
    run_lambda(needs, |app, req| async move {
        bff::handlers::login::handle(&app, req).await
    })
    .await
}
