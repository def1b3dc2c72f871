//! What `bff-local` writes when its output is a file, not a terminal: plain text without
//! colour codes, and access lines of refused requests naming the error the client got.

use std::collections::HashMap;

use bff_tests::capture::{StoreBackend, free_listen_addr, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_to_a_pipe_has_no_colour_codes_and_error_lines_name_the_error_code() {
    let listen = free_listen_addr();
    let env: HashMap<&'static str, String> = HashMap::from([
        // Nothing is fetched from the provider for the requests below.
        ("BFF_ISSUER", "http://127.0.0.1:1".to_owned()),
        ("BFF_CLIENT_ID", "client".to_owned()),
        ("BFF_CLIENT_SECRET", "secret".to_owned()),
        ("BFF_PUBLIC_URL", format!("http://{listen}")),
        ("BFF_UPSTREAM_URL", "http://127.0.0.1:1/".to_owned()),
    ]);
    let bff = spawn(&env, StoreBackend::Memory, listen, "info").await;
    let http = reqwest::Client::new();
    let refused = http.get(format!("{}/api/orders", bff.url)).send().await.expect("api");
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    let bad = http
        .get(format!("{}/auth/login?returnTo=//evil.example", bff.url))
        .send()
        .await
        .expect("login");
    assert_eq!(bad.status(), 400);

    let log = bff.stop();
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
    let access: Vec<&str> = log.lines().filter(|l| l.contains("request")).collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=403") && l.contains("error=\"csrf_header_missing\"")),
        "{log}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=400") && l.contains("error=\"invalid_return_to\"")),
        "{log}"
    );
}
