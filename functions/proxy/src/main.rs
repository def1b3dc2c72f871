//! Lambda function serving `/api/*`: forwards API calls with the user's access token.

use bff::runtime::{LambdaError, Needs, run_lambda};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_lambda(Needs { upstream: true }, |app, req| async move {
        bff::handlers::proxy::handle(&app, req).await
    })
    .await
}
