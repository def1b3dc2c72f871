//! A provider or API behind a private CA: trusted through `SSL_CERT_FILE`, the same opt-in
//! as the AWS endpoints, and refused without it. The API here is behind a TLS terminator
//! whose certificate a test CA signed; `bff-local` runs as its own process, so each case
//! starts with its own environment.

use std::time::Duration;

use bff_testkit::tls::Tls;
use bff_tests::app::{StoreKind, spawn_app};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_behind_a_private_ca_is_reached_only_once_ssl_cert_file_names_the_ca() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let table = app.table.clone().expect("dynamodb table");

    let dir = std::env::temp_dir().join(format!("bff-private-ca-{}", std::process::id()));
    let tls = Tls::create(&dir).expect("test CA");
    let plain = url::Url::parse(&app.upstream.base).expect("upstream URL");
    let target = format!("127.0.0.1:{}", plain.port().expect("port"));
    let https = tls.terminate("api", target).await.expect("terminator");
    let mut env = app.env.clone();
    env.insert("BFF_UPSTREAM_URL", format!("{https}{}", plain.path()));

    let call = |url: String| {
        let cookies = browser.cookies();
        async move {
            reqwest::Client::new()
                .get(format!("{url}/api/orders"))
                .header("Cookie", cookies)
                .header("X-CSRF", "1")
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .expect("answer")
        }
    };

    // Without the opt-in the CA is unknown: the handshake fails and no token leaves.
    let untrusting = bff_tests::process::spawn(&env, &table).await;
    let refused = call(untrusting.url.clone()).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(app.upstream.requests().is_empty(), "nothing reached the API");
    drop(untrusting);

    env.insert("SSL_CERT_FILE", tls.ca_file.display().to_string());
    let trusting = bff_tests::process::spawn(&env, &table).await;
    let answer = call(trusting.url.clone()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].bearer().is_some(), "the call carried the user's token");
    let _ = std::fs::remove_dir_all(&dir);
}
