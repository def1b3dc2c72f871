//! `POST /auth/logout?scope=all`: every session of the user ends (found through the
//! store's `sub` index on DynamoDB Local), other users' sessions stay, and the
//! anti-forgery rule still holds.

use bff_testkit::BffBrowser;
use bff_tests::app::{StoreKind, spawn_app};
use reqwest::StatusCode;

/// `POST /auth/logout` with `query`, with or without the anti-forgery header.
async fn logout(browser: &BffBrowser, base: &str, query: &str, csrf: bool) -> reqwest::Response {
    let mut request = browser.http.post(format!("{base}/auth/logout{query}"));
    if csrf {
        request = request.header("X-CSRF", "1");
    }
    request.send().await.expect("logout")
}

async fn me(browser: &BffBrowser) -> StatusCode {
    browser.get("/auth/me").await.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_scope_all_ends_every_session_of_the_user_and_no_other() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let (laptop, phone, tablet, bob) = (app.browser(), app.browser(), app.browser(), app.browser());
    for browser in [&laptop, &phone, &tablet] {
        browser.login("alice", "/").await;
    }
    bob.login("bob", "/").await;

    // Refused without the anti-forgery header, or with another scope: nothing ends.
    assert_eq!(
        logout(&laptop, &app.url, "?scope=all", false).await.status(),
        StatusCode::FORBIDDEN
    );
    let bad = logout(&laptop, &app.url, "?scope=everything", true).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    for browser in [&laptop, &phone, &tablet, &bob] {
        assert_eq!(me(browser).await, StatusCode::OK);
    }

    // A plain logout ends the browser's own session only.
    assert_eq!(logout(&tablet, &app.url, "", true).await.status(), StatusCode::OK);
    assert_eq!(me(&tablet).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&phone).await, StatusCode::OK);

    let response = logout(&laptop, &app.url, "?scope=all", true).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["logout_url"].is_string(), "{body}");
    assert_eq!(me(&laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&phone).await,
        StatusCode::UNAUTHORIZED,
        "alice's other session ended"
    );
    assert_eq!(me(&bob).await, StatusCode::OK, "another user's session stays");
    let metrics = reqwest::get(format!("{}/metrics", app.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("bff_sessions_ended_total{reason=\"logout\"} 3\n"),
        "{metrics}"
    );
}
