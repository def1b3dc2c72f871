//! Tokens at rest: what a copy of the DynamoDB table reveals.

use aws_sdk_dynamodb::types::AttributeValue;
use bff::domain::secret::SessionId;
use bff::store::session_key;
use bff_tests::app::{StoreKind, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_copy_of_the_table_reveals_no_usable_token() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    let key = session_key(&SessionId::new(browser.cookie("bff-session").expect("cookie")));
    let session = app
        .store
        .get_session(&key, app.app.clock.now())
        .await
        .expect("store")
        .expect("session");
    let refresh = session.refresh_token.clone().expect("refresh token");
    let secrets = [
        session.access_token.secret(),
        refresh.secret(),
        session.id_token.secret(),
    ];

    // Everything the table holds, read behind the BFF's back.
    let client = bff_tests::dynamodb::client(&bff_tests::dynamodb::endpoint());
    let table = app.table.clone().expect("table");
    let items = client
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert!(!items.is_empty());
    let dump = format!("{items:?}");
    for secret in secrets {
        assert!(!dump.contains(secret), "a token is readable in the table");
    }
    assert!(
        !dump.contains(&browser.cookie("bff-session").expect("cookie")),
        "nor the session id"
    );

    // An attacker who can write the table copies the victim's item under their own key.
    let raw = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(key.as_str().to_owned()))
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    let attacker_id = SessionId::generate();
    let mut stolen = raw.clone();
    stolen.insert(
        "pk".into(),
        AttributeValue::S(session_key(&attacker_id).as_str().to_owned()),
    );
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(stolen))
        .send()
        .await
        .expect("put copy");
    let attacker = app.browser();
    attacker.set_cookie("bff-session", attacker_id.secret());
    assert_eq!(
        attacker.get("/auth/me").await.status(),
        401,
        "the copied item does not decrypt"
    );
    assert_eq!(
        browser.get("/auth/me").await.status(),
        200,
        "the victim's own session still works"
    );
}
