//! Lambda function serving `GET /auth/callback`: finishes the grant and creates the session.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::unit;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(unit::Callback).await
}
