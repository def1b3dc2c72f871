//! Test harness.

/// DynamoDB Local for the tests: the shared endpoint and a fresh table per test.
pub mod dynamodb;
