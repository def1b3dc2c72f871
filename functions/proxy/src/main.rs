//! Lambda function serving `/api/*`: forwards API calls with the user's access token.
//!
//! Its function URL uses `InvokeMode: RESPONSE_STREAM`, so its answers are streamed:
//! upstream answers larger than a buffered Lambda response allows still reach the browser.

use bff::entry::lambda::{LambdaError, run};
use bff::http::router::unit;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run(unit::Proxy).await
}
