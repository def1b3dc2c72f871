//! The DynamoDB store against DynamoDB Local: the shared store contract, plus what only a
//! real table can show (items DynamoDB still returns after their TTL, undecodable items,
//! an unreachable endpoint).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use bff::domain::secret::{AccessToken, IdToken, PkceVerifier, hash, random_token};
use bff::store::dynamodb::DynamoStore;
use bff::store::{LoginTransaction, SessionRecord, SessionStore, StoreError, StoreKey, TransactionStore};
use bff_tests::dynamodb::{client, fresh_store};

fn now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("epoch seconds fit in i64")
}

/// Writes an item as-is, bypassing the store (and its conditions).
async fn put_raw(client: &Client, table: &str, item: HashMap<String, AttributeValue>) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("raw PutItem succeeds");
}

async fn get_raw(client: &Client, table: &str, key: &StoreKey) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.as_str().to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("raw GetItem succeeds")
        .item
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn expired_session(now: i64) -> SessionRecord {
    SessionRecord {
        access_token_type: Default::default(),
        dpop_key: None,
        sub: "user-1".into(),
        sid: None,
        claims: serde_json::Map::new(),
        id_token: IdToken::new("header.payload.signature"),
        access_token: AccessToken::new(random_token(24)),
        access_expires_at: None,
        access_issued_at: now - 3_600,
        refresh_token: None,
        created_at: now - 3_600,
        expires_at: now - 60,
        idle_expires_at: now - 60,
        version: 1,
        refresh_lease: None,
        refresh_started_at: None,
        user_agent: None,
        api_tokens: Vec::new(),
        userinfo: None,
    }
}

#[tokio::test]
async fn dynamodb_store_meets_the_store_contract() {
    let (store, _client, _table) = fresh_store().await;

    bff::store::contract::run_all(&store).await;
}

#[tokio::test]
async fn item_past_its_ttl_that_dynamodb_still_returns_reads_as_absent() {
    // Given items whose `ttl` has passed but which the table still holds: TTL deletion is
    // lazy in DynamoDB, and this table's TTL is switched off so DynamoDB Local keeps them.
    let (store, client, table) = fresh_store().await;
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(false)
                .build()
                .expect("valid TTL specification"),
        )
        .send()
        .await
        .expect("TTL can be switched off");
    let now = now();
    let session = expired_session(now);
    let session_key = StoreKey::session(&hash(&random_token(32)));
    put_raw(
        &client,
        &table,
        HashMap::from([
            ("pk".to_owned(), s(session_key.as_str())),
            ("kind".to_owned(), s("session")),
            ("ttl".to_owned(), n(session.ttl())),
            (
                "data".to_owned(),
                s(&serde_json::to_string(&session).expect("encodable")),
            ),
            ("version".to_owned(), n(1)),
            ("sub".to_owned(), s(&session.sub)),
        ]),
    )
    .await;
    let tx = LoginTransaction {
        dpop_key: None,
        pkce_verifier: PkceVerifier::generate(),
        nonce: random_token(16),
        return_to: "/".into(),
        expires_at: now - 60,
        replaces_session: None,
        requirements: Default::default(),
        silent: false,
    };
    let tx_key = StoreKey::transaction(&hash(&random_token(32)));
    put_raw(
        &client,
        &table,
        HashMap::from([
            ("pk".to_owned(), s(tx_key.as_str())),
            ("kind".to_owned(), s("tx")),
            ("ttl".to_owned(), n(tx.expires_at)),
            ("data".to_owned(), s(&serde_json::to_string(&tx).expect("encodable"))),
        ]),
    )
    .await;
    assert!(
        get_raw(&client, &table, &session_key).await.is_some(),
        "DynamoDB itself still returns the expired session"
    );

    // When the store reads them at the real current time
    let read = store.get_session(&session_key, now).await.expect("get succeeds");
    let taken = store.take_transaction(&tx_key, now).await.expect("take succeeds");

    // Then both read as absent, and the expired transaction is gone for good.
    assert!(read.is_none(), "an expired session must read as absent");
    assert!(taken.is_none(), "an expired transaction must not be taken");
    assert!(
        get_raw(&client, &table, &tx_key).await.is_none(),
        "taking an expired transaction deletes it"
    );
}

#[tokio::test]
async fn undecodable_session_item_is_corrupt_without_echoing_it() {
    let (store, client, table) = fresh_store().await;
    let now = now();
    let key = StoreKey::session(&hash(&random_token(32)));
    put_raw(
        &client,
        &table,
        HashMap::from([
            ("pk".to_owned(), s(key.as_str())),
            ("kind".to_owned(), s("session")),
            ("ttl".to_owned(), n(now + 600)),
            ("data".to_owned(), s(r#"{"sub": "user-1", "access_token": 1234567}"#)),
            ("version".to_owned(), n(1)),
        ]),
    )
    .await;

    let read = store.get_session(&key, now).await;

    match read {
        Err(StoreError::Corrupt(message)) => {
            assert!(!message.contains("user-1"), "message echoes the item: {message}");
            assert!(!message.contains("1234567"), "message echoes the item: {message}");
        }
        other => panic!("expected a corrupt item, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_dynamodb_is_unavailable() {
    // Port 1 on the loopback interface: nothing listens, the connection is refused at once.
    let config = client("http://127.0.0.1:1")
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    let store = DynamoStore::new(Client::from_conf(config), "bff-test-unreachable");

    let read = store.get_session(&StoreKey::session(&hash("any")), now()).await;

    assert!(
        matches!(read, Err(StoreError::Unavailable(_))),
        "expected the store to be unavailable, got {read:?}"
    );
}
