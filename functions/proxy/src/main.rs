//! Lambda function serving `/api/*`: forwards API calls with the user's access token.
//!
//! Its function URL uses `InvokeMode: RESPONSE_STREAM`, so it runs the streaming entry:
//! upstream answers larger than a buffered Lambda response allows still reach the browser.

use bff::runtime::{LambdaError, Needs, run_lambda_streaming};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    let needs = Needs {
        upstream: true,
        ..Needs::default()
    };
    run_lambda_streaming(needs, |app, req| async move {
        bff::handlers::proxy::handle(&app, req).await
    })
    .await
}
