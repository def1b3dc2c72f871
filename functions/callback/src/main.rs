//! Lambda function serving `GET /auth/callback`: finishes the grant and creates the session.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::Function;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(Function::Callback).await
}
