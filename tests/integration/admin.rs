//! `bff-admin`, the operator's command, run as its own process against the BFF's table on
//! DynamoDB Local: it lists a user's sessions by login time and browser family under
//! handles that are neither ids nor keys, ends one by its handle or all of them, and the
//! browsers holding them are logged out at once; another user's sessions stay.

use std::process::{Command, Output};

use bff::domain::secret::{SessionId, hash};
use bff::store::session_key;
use bff_testkit::BffBrowser;
use bff_tests::app::{StoreKind, TestApp, spawn_app};
use reqwest::StatusCode;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// Runs `bff-admin args` on `app`'s table with DynamoDB Local's dummy credentials.
async fn admin(app: &TestApp, args: &[&str]) -> Output {
    let table = app.table.clone().expect("a DynamoDB app");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(bff_tests::process::built("bff-admin"))
            .args(&args)
            .env_clear()
            .env("BFF_TABLE", table)
            .env("BFF_METRICS_NAMESPACE", "BFF/admin-test")
            .env("AWS_ENDPOINT_URL_DYNAMODB", bff_tests::dynamodb::endpoint())
            .env("AWS_REGION", bff_tests::dynamodb::REGION)
            .env("AWS_ACCESS_KEY_ID", "dummykey")
            .env("AWS_SECRET_ACCESS_KEY", "dummysecret")
            .output()
            .expect("run bff-admin")
    })
    .await
    .expect("bff-admin")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The rows of `list`'s table: (handle, browser).
fn rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .skip(2)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words[1].to_owned(), words[words.len() - 1].to_owned())
        })
        .collect()
}

async fn me(browser: &BffBrowser) -> StatusCode {
    browser.get("/auth/me").await.status()
}

/// The EMF line `bff-admin` wrote on standard error.
fn emf(stderr: &str) -> serde_json::Value {
    let line = stderr
        .lines()
        .find(|l| l.contains("\"_aws\""))
        .unwrap_or_else(|| panic!("no EMF line in {stderr}"));
    serde_json::from_str(line).expect("EMF JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_a_user_s_sessions_without_ids_and_ends_one_or_all() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let (firefox, chrome, bob) = (app.browser_as(FIREFOX), app.browser_as(CHROME), app.browser());
    firefox.login("alice", "/").await;
    chrome.login("alice", "/").await;
    bob.login("bob", "/").await;

    let listed = admin(&app, &["list", "alice"]).await;
    let stdout = text(&listed.stdout);
    assert!(listed.status.success(), "{stdout}{}", text(&listed.stderr));
    assert!(stdout.starts_with("2 live session(s) of alice"), "{stdout}");
    let alice = rows(&stdout);
    let mut families: Vec<&str> = alice.iter().map(|(_, family)| family.as_str()).collect();
    families.sort_unstable();
    assert_eq!(families, ["Chrome", "Firefox"], "{stdout}");
    // Nothing that opens or finds a session: not the cookie, not the key it is stored
    // under, nor the full User-Agent.
    for browser in [&firefox, &chrome] {
        let cookie = browser.cookie("bff-session").expect("session cookie");
        let key = session_key(&SessionId::new(&cookie));
        for secret in [cookie.clone(), key.as_str().to_owned(), hash(&cookie)] {
            assert!(!stdout.contains(&secret), "{secret} in\n{stdout}");
        }
    }
    assert!(!stdout.contains("Gecko") && !stdout.contains("Windows"), "{stdout}");

    // A handle of another user's session ends nothing.
    let bob_handle = rows(&text(&admin(&app, &["list", "bob"]).await.stdout))[0].0.clone();
    let refused = admin(&app, &["end", "alice", &bob_handle]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert_eq!(me(&bob).await, StatusCode::OK);

    // One session, by its handle: that browser is logged out, the other stays.
    let firefox_handle = &alice.iter().find(|(_, family)| family == "Firefox").expect("Firefox").0;
    let ended = admin(&app, &["end", "alice", firefox_handle]).await;
    assert!(ended.status.success(), "{}", text(&ended.stderr));
    assert_eq!(me(&firefox).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&chrome).await, StatusCode::OK);
    let line = emf(&text(&ended.stderr));
    assert_eq!(line["SessionsEnded.admin"], 1.0, "{line}");
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "BFF/admin-test");
    let again = admin(&app, &["end", "alice", firefox_handle]).await;
    assert_eq!(again.status.code(), Some(1), "an ended session is not listed any more");

    // All of them.
    let all = admin(&app, &["end-all", "alice"]).await;
    assert!(all.status.success(), "{}", text(&all.stderr));
    assert_eq!(text(&all.stdout), "ended 1 live session(s) of alice\n");
    assert_eq!(emf(&text(&all.stderr))["SessionsEnded.admin"], 1.0);
    assert_eq!(me(&chrome).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&bob).await, StatusCode::OK, "another user's session stays");
    let none = admin(&app, &["list", "alice"]).await;
    assert_eq!(
        text(&none.stdout),
        "0 live session(s) of alice, oldest first (times UTC)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_command_refuses_a_malformed_call_before_reaching_the_table() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let usage = admin(&app, &["end", "alice"]).await;
    assert_eq!(usage.status.code(), Some(2));
    assert!(
        text(&usage.stderr).starts_with("usage: bff-admin"),
        "{}",
        text(&usage.stderr)
    );
}
