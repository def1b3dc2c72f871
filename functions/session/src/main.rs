//! Lambda function serving `GET /auth/me` and `POST /auth/logout`.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_lambda(Needs::default(), |app, req| async move {
        bff::handlers::session::handle(&app, req).await
    })
    .await
}
