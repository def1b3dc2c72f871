//! Integration tests: the BFF over HTTP against `oidc-provider` and DynamoDB Local.
//!
//! Every flow test runs twice, once on each store (`<test>::memory`, `<test>::dynamodb`).

mod admin;
mod apis;
mod at_rest;
mod attack_kit;
mod client_auth;
mod cold_start;
mod diagnostics;
mod dpop;
mod faults;
mod faults_refresh;
mod flow;
mod lifecycle;
mod login_options;
mod logout_all;
mod logs;
mod metrics;
mod ops;
mod private_ca;
mod provider_check;
mod security_forgery;
mod security_id_token;
mod security_leaks;
mod security_login;
mod security_oversized;
mod security_proxy;
mod security_redirect;
mod security_session;
mod store;
mod streaming;
mod traces;
mod userinfo;

/// Generates a `memory` and a `dynamodb` test for each async fn taking a `StoreKind`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(bff_tests::app::StoreKind::Memory).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dynamodb() {
                super::$name(bff_tests::app::StoreKind::Dynamo).await
            }
        }
    )*};
}
