//! Lambda function serving `GET /auth/me` and `POST /auth/logout`.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::unit;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(unit::Session).await
}
