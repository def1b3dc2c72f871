//! Lambda function serving `GET /auth/callback`: finishes the grant and creates the session.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_lambda(Needs::default(), |app, req| async move {
        bff::handlers::callback::handle(&app, req).await
    })
    .await
}
