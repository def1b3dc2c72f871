//! Data at rest: what a copy of the DynamoDB table reveals, and what a writer without the
//! token keys can make the BFF believe.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use bff::domain::secret::SessionId;
use bff::platform::seal::Sealer;
use bff::store::dynamodb::DynamoStore;
use bff::store::sealed::SealedStore;
use bff::store::{DOCUMENT_COPIES, DocumentCache, StoreKey, session_key};
use bff_tests::app::{StoreKind, TestApp, spawn_app};
use bff_tests::upstream::Upstream;
use serde_json::Value;

/// The tests' first key id with other key material: what someone who can write the
/// table but does not hold `BFF_TOKEN_KEYS` can tag documents with.
const ATTACKER_KEYS: &str = "t2:ZXZpbGV2aWxldmlsZXZpbGV2aWxldmlsZXZpbGV2aWw=";

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

/// Every string attribute of every item of the app's table of `kind` (every kind when
/// `None`), read behind the BFF's back.
async fn table_strings(app: &TestApp, kind: Option<&str>) -> Vec<String> {
    let client = bff_tests::dynamodb::client(&bff_tests::dynamodb::endpoint());
    let items = client
        .scan()
        .table_name(app.table.as_deref().expect("table"))
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    items
        .into_iter()
        .filter(|item| kind.is_none_or(|kind| item.get("kind") == Some(&AttributeValue::S(kind.to_owned()))))
        .flat_map(|item| item.into_values())
        .filter_map(|value| match value {
            AttributeValue::S(text) => Some(text),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_copy_of_the_table_reveals_no_personal_claim() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("grace.hopper", "/").await;
    let me: Value = browser.get("/auth/me").await.json().await.expect("json");
    let sub = me["sub"].as_str().expect("sub").to_owned();
    let personal: Vec<(String, Value)> = me
        .as_object()
        .expect("claims")
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "sub" | "sid" | "session"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    for claim in ["name", "given_name", "family_name", "email", "picture"] {
        assert!(me.get(claim).is_some(), "the provider sent `{claim}`: {me}");
    }

    let strings = table_strings(&app, None).await;
    // The cached discovery document lists claim names; the session must not.
    let session = table_strings(&app, Some("session")).await;
    assert!(!session.is_empty(), "the session item");
    for (name, value) in &personal {
        let quoted = format!("\"{name}\"");
        assert!(
            !session.iter().any(|s| s.contains(&quoted)),
            "claim `{name}` is named in the clear"
        );
        // `preferred_username` equals `sub` here, which the indexes keep in the clear.
        if let Some(text) = value.as_str()
            && text != sub
        {
            assert!(
                !strings.iter().any(|s| s.contains(text)),
                "claim `{name}` is readable in the table"
            );
        }
    }
    assert!(
        session.iter().any(|s| s == &sub),
        "`sub` stays in the clear for the back-channel logout index"
    );
    assert_eq!(
        browser.get("/auth/me").await.json::<Value>().await.expect("json")["email"],
        me["email"],
        "the BFF still opens them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_tokens_swapped_between_fields_of_one_item_do_not_open() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let browser = app.browser();
    browser.login("alice", "/").await;
    assert_eq!(browser.get("/auth/me").await.status(), 200);
    let key = session_key(&SessionId::new(browser.cookie("bff-session").expect("cookie")));

    // Someone who can write the table swaps the sealed access and refresh tokens (say, to
    // have the refresh token sent to the API as a bearer token).
    let client = bff_tests::dynamodb::client(&bff_tests::dynamodb::endpoint());
    let table = app.table.clone().expect("table");
    let mut item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(key.as_str().to_owned()))
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    let Some(AttributeValue::S(data)) = item.get("data") else {
        panic!("session item without data");
    };
    let mut record: Value = serde_json::from_str(data).expect("json");
    let access = record["access_token"].take();
    let refresh = record["refresh_token"].take();
    assert!(access.is_string() && refresh.is_string(), "both tokens stored");
    record["access_token"] = refresh;
    record["refresh_token"] = access;
    item.insert("data".into(), AttributeValue::S(record.to_string()));
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put swapped");

    let me = browser.get("/auth/me").await;
    assert_eq!(me.status(), 401, "the swapped item does not open");
    let body: Value = me.json().await.expect("json error body");
    assert_eq!(body["error"], "login_required", "{body}");
    let api = browser.api(reqwest::Method::GET, "/api/data").await;
    assert_eq!(api.status(), 401);
    assert!(app.upstream.requests().is_empty(), "no token reached the API");
}

/// The provider's discovery document as it serves it.
async fn real_discovery(app: &TestApp) -> Value {
    let url = bff::oidc::discovery_url(&app.provider.issuer);
    reqwest::get(&url).await.expect("discovery").json().await.expect("json")
}

/// Writes `document` into every copy of the app's cached `kind` document, tagged with
/// [`ATTACKER_KEYS`], valid for an hour (whichever copy the BFF reads is forged).
async fn plant_document(app: &TestApp, kind: &str, document: &Value) {
    let client = bff_tests::dynamodb::client(&bff_tests::dynamodb::endpoint());
    let raw = Arc::new(DynamoStore::new(client, app.table.clone().expect("table")));
    let attacker = SealedStore::new(raw, Arc::new(Sealer::from_config(ATTACKER_KEYS).expect("keys")));
    for copy in 0..DOCUMENT_COPIES {
        let key = StoreKey::document(kind, &app.provider.issuer, copy);
        attacker
            .put_document(&key, &document.to_string(), app.app.clock.now() + 3600)
            .await
            .expect("plant");
    }
}

/// Every copy of the cached `kind` document as the table holds it.
async fn stored_documents(app: &TestApp, kind: &str) -> Vec<String> {
    let client = bff_tests::dynamodb::client(&bff_tests::dynamodb::endpoint());
    let mut documents = Vec::new();
    for copy in 0..DOCUMENT_COPIES {
        let key = StoreKey::document(kind, &app.provider.issuer, copy);
        let item: HashMap<String, AttributeValue> = client
            .get_item()
            .table_name(app.table.as_deref().expect("table"))
            .key("pk", AttributeValue::S(key.as_str().to_owned()))
            .send()
            .await
            .expect("get")
            .item
            .expect("document item");
        match item.get("data") {
            Some(AttributeValue::S(data)) => documents.push(data.clone()),
            _ => panic!("document item without data"),
        }
    }
    documents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_forged_discovery_document_in_the_table_is_not_used() {
    let app = spawn_app(StoreKind::Dynamo).await;
    // Where the forged document sends the code, the client secret and the key fetch.
    let forged_endpoint = Upstream::start().await;
    let mut forged = real_discovery(&app).await;
    for endpoint in ["token_endpoint", "jwks_uri", "revocation_endpoint", "userinfo_endpoint"] {
        forged[endpoint] = Value::String(format!("{}{endpoint}", forged_endpoint.base));
    }
    plant_document(&app, "discovery", &forged).await;

    let browser = app.browser();
    let callback = browser.login("alice", "/").await;
    assert!(
        forged_endpoint.requests().is_empty(),
        "the forged endpoints received nothing"
    );
    assert_eq!(callback.status(), 302, "the login completes with the real provider");
    let me: Value = browser.get("/auth/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
    for stored in stored_documents(&app, "discovery").await {
        assert!(
            !stored.contains(&forged_endpoint.base),
            "the BFF replaced every copy of the forged document with the provider's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_forged_jwks_in_the_table_is_not_used() {
    let app = spawn_app(StoreKind::Dynamo).await;
    let jwks_uri = real_discovery(&app).await["jwks_uri"]
        .as_str()
        .expect("jwks_uri")
        .to_owned();
    let real: Value = reqwest::get(&jwks_uri).await.expect("jwks").json().await.expect("json");
    // The provider's key ids with other key material: an ID token the provider signed
    // verifies only against the real keys.
    let mut forged = real.clone();
    for key in forged["keys"].as_array_mut().expect("keys") {
        let n = key["n"].as_str().expect("an RSA key").to_owned();
        let middle = n.len() / 2;
        let flipped = if &n[middle..=middle] == "A" { "B" } else { "A" };
        key["n"] = Value::String(format!("{}{flipped}{}", &n[..middle], &n[middle + 1..]));
    }
    assert_ne!(forged, real);
    plant_document(&app, "jwks", &forged).await;

    let browser = app.browser();
    let callback = browser.login("alice", "/").await;
    assert_eq!(
        callback.status(),
        302,
        "the ID token is verified with the provider's real keys"
    );
    let me: Value = browser.get("/auth/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
    let forged_n = forged["keys"][0]["n"].as_str().expect("n");
    for stored in stored_documents(&app, "jwks").await {
        assert!(
            !stored.contains(forged_n),
            "the BFF replaced every copy of the forged keys with the provider's"
        );
    }
}
