//! `bff-admin`: lists a user's sessions and ends one or all of them, on the deployment's
//! DynamoDB table with the operator's own AWS credentials (README, "Operating it").

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    bff::entry::admin::main().await
}
