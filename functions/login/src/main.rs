//! Lambda function serving `GET /auth/login`: starts the Authorization Code Grant.
//!
//! It never calls the token endpoint, so it runs without the client secret.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::unit;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(unit::Login).await
}
