//! Lambda function serving `GET /auth/me` and `POST /auth/logout`.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::Function;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(Function::Session).await
}
