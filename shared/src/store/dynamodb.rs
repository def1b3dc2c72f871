//! The DynamoDB adapter: both store traits on one table, for the deployed Lambda functions.
//!
//! Item layout (one item per key):
//! - `pk` (S): the [`StoreKey`], i.e. a kind prefix and a hash, never a browser-held secret;
//! - `kind` (S): `tx` or `session`, so an operation of one kind never touches the other;
//! - `ttl` (N): epoch seconds after which the item is void (the table's TTL attribute);
//! - `data` (S): the record as JSON;
//! - sessions also carry `version` (N) for optimistic concurrency, and `sub` (S) and, when
//!   the provider sent one, `sid` (S) for a secondary index used by back-channel logout.
//!
//! DynamoDB's TTL deletes expired items late (up to days), so every read compares `ttl` with
//! the caller's `now` itself. This module never logs, and no error it returns carries item
//! contents: SDK and JSON errors are reduced to an operation name and an error code.

use crate::platform::metrics::{self, Event};
use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ClientTokenRecord, ClientTokenStore, DocumentCache, LoginTransaction, ReplayGuard, SessionIndex, SessionRecord,
    SessionStore, StoreError, StoreKey, TransactionStore,
};

/// Partition key attribute.
const PK: &str = "pk";
/// Record kind attribute (`tx` or `session`).
const KIND: &str = "kind";
/// Expiry attribute, epoch seconds; the table's TTL attribute.
const TTL: &str = "ttl";
/// The record as JSON.
const DATA: &str = "data";
/// Session version, for conditional updates.
const VERSION: &str = "version";
/// Session subject, for the back-channel logout index.
const SUB: &str = "sub";
/// Provider session id, for the back-channel logout index.
const SID: &str = "sid";

/// Secondary index on `sid` (sparse: only sessions with a provider session id).
pub const SID_INDEX: &str = "sid-index";
/// Secondary index on `sub`.
pub const SUB_INDEX: &str = "sub-index";

const KIND_TRANSACTION: &str = "tx";
const KIND_USED: &str = "used";
const KIND_DOCUMENT: &str = "doc";
const KIND_SESSION: &str = "session";
const KIND_CLIENT_TOKEN: &str = "client";

/// The code DynamoDB answers when a condition expression is false.
const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailedException";

/// The longest one store call takes, its retries included: the unit of the functions'
/// time budgets (template.yaml, checked by `shared/tests/template_timeouts.rs`).
pub const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// How long [`create_table`] waits for the table to become `ACTIVE`.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const TABLE_POLL_INTERVAL: Duration = Duration::from_millis(250);

type Item = HashMap<String, AttributeValue>;

/// Login transactions and sessions in one DynamoDB table keyed by `pk`.
///
/// Cheap to clone: the SDK client is a handle. Build it once per cold start.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store on `table`, which must exist with a string partition key `pk`
    /// (see [`create_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table this store reads and writes.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes `item` if the condition that `condition` adds to the request holds; a false
    /// condition is a [`StoreError::Conflict`].
    async fn put_if(
        &self,
        item: Item,
        condition: impl FnOnce(PutItemFluentBuilder) -> PutItemFluentBuilder,
    ) -> Result<(), StoreError> {
        condition(self.client.put_item().table_name(&self.table).set_item(Some(item)))
            .send()
            .await
            .map_err(|err| sdk_error("PutItem", err))?;
        Ok(())
    }

    /// Writes `item` unless an item with its key exists.
    async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        self.put_if(item, |put| {
            put.condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        })
        .await
    }

    /// The item at `key` if it is of `kind` and unexpired at `now`; `consistent` asks for a
    /// strongly consistent read.
    async fn get_live(
        &self,
        key: &StoreKey,
        kind: &str,
        now: i64,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.as_str().to_owned()))
            .set_consistent_read(consistent.then_some(true))
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        if kind_of(&item)? != kind || ttl_of(&item)? <= now {
            return Ok(None);
        }
        Ok(Some(item))
    }

    /// Deletes the item at `key` if it is of `kind` and returns what it held; `None` when
    /// there was no such item (absent, or of the other kind and therefore left alone).
    async fn delete_of_kind(&self, key: &StoreKey, kind: &str) -> Result<Option<Item>, StoreError> {
        self.delete_if(key, kind, None).await
    }

    /// Deletes the item of `kind` at `key` (only at `version`, when given) and returns it;
    /// `None` when it is absent or the condition fails.
    async fn delete_if(&self, key: &StoreKey, kind: &str, version: Option<u64>) -> Result<Option<Item>, StoreError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.as_str().to_owned()))
            // The condition also makes a missing item fail the check; both read as "nothing".
            .condition_expression("#kind = :kind")
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_values(":kind", AttributeValue::S(kind.to_owned()))
            .return_values(ReturnValue::AllOld);
        if let Some(version) = version {
            delete = delete
                .condition_expression("#kind = :kind AND #version = :expected")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string()));
        }
        let result = delete.send().await;
        match result {
            Ok(output) => Ok(output.attributes),
            Err(err) => match sdk_error("DeleteItem", err) {
                StoreError::Conflict => Ok(None),
                other => Err(other),
            },
        }
    }
}

#[async_trait]
impl TransactionStore for DynamoStore {
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError> {
        let mut item = item(key, KIND_TRANSACTION, tx.expires_at);
        item.insert(DATA.to_owned(), AttributeValue::S(encode(tx, KIND_TRANSACTION)?));
        self.put_new(item).await
    }

    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError> {
        // DeleteItem with ALL_OLD is the atomic consume: of two concurrent callers only one
        // gets the old item back. An expired item is consumed too, and reads as absent.
        let Some(item) = self.delete_of_kind(key, KIND_TRANSACTION).await? else {
            return Ok(None);
        };
        if ttl_of(&item)? <= now {
            return Ok(None);
        }
        decode(&item, KIND_TRANSACTION).map(Some)
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError> {
        self.put_new(session_item(key, session)?).await
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        // The callback writes the session and redirects; the very next request must see it.
        match self.get_live(key, KIND_SESSION, now, true).await? {
            Some(item) => decode(&item, KIND_SESSION).map(Some),
            None => Ok(None),
        }
    }

    async fn update_session(&self, key: &StoreKey, session: &SessionRecord, expected: u64) -> Result<(), StoreError> {
        // A whole-item put under a version condition: the record is one JSON document, so
        // there is nothing to gain from attribute-level updates. `#kind = :kind` also fails
        // when the item is gone, which must be a conflict rather than a resurrection.
        self.put_if(session_item(key, session)?, |put| {
            put.condition_expression("#kind = :kind AND #version = :expected")
                .expression_attribute_names("#kind", KIND)
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":kind", AttributeValue::S(KIND_SESSION.to_owned()))
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        })
        .await
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        match self.delete_of_kind(key, KIND_SESSION).await? {
            Some(item) => decode(&item, KIND_SESSION).map(Some),
            None => Ok(None),
        }
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        Ok(self.delete_if(key, KIND_SESSION, Some(expected)).await?.is_some())
    }
}

impl DynamoStore {
    /// Every `pk` in `index` whose `attribute` equals `value`, across result pages.
    async fn query_index(&self, index: &str, attribute: &str, value: &str) -> Result<Vec<StoreKey>, StoreError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#a = :v")
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Query", err))?;
            for item in output.items.unwrap_or_default() {
                if let Some(AttributeValue::S(pk)) = item.get(PK) {
                    keys.push(StoreKey(pk.clone()));
                }
            }
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(keys),
            }
        }
    }
}

#[async_trait]
impl SessionIndex for DynamoStore {
    async fn sessions_with_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.query_index(SID_INDEX, SID, sid).await
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.query_index(SUB_INDEX, SUB, sub).await
    }
}

#[async_trait]
impl ReplayGuard for DynamoStore {
    async fn first_use(&self, key: &StoreKey, expires_at: i64) -> Result<bool, StoreError> {
        match self.put_new(item(key, KIND_USED, expires_at)).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn forget_use(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.delete_of_kind(key, KIND_USED).await.map(|_| ())
    }
}

#[async_trait]
impl DocumentCache for DynamoStore {
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError> {
        let Some(item) = self.get_live(key, KIND_DOCUMENT, now, false).await? else {
            return Ok(None);
        };
        match item.get(DATA) {
            Some(AttributeValue::S(document)) => Ok(Some(document.clone())),
            _ => Err(StoreError::Corrupt("document item without data".into())),
        }
    }

    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError> {
        let mut item = item(key, KIND_DOCUMENT, expires_at);
        item.insert(DATA.to_owned(), AttributeValue::S(document.to_owned()));
        // Never overwrite a session or transaction that happened to share the key.
        self.put_if(item, |put| {
            put.condition_expression("attribute_not_exists(#pk) OR #kind = :kind")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#kind", KIND)
                .expression_attribute_values(":kind", AttributeValue::S(KIND_DOCUMENT.to_owned()))
        })
        .await
    }
}

#[async_trait]
impl ClientTokenStore for DynamoStore {
    async fn get_client_token(
        &self,
        key: &StoreKey,
        consistent: bool,
    ) -> Result<Option<ClientTokenRecord>, StoreError> {
        // Expired items are returned too, so that their version chain continues.
        match self.get_live(key, KIND_CLIENT_TOKEN, i64::MIN, consistent).await? {
            Some(item) => decode(&item, KIND_CLIENT_TOKEN).map(Some),
            None => Ok(None),
        }
    }

    async fn put_client_token(
        &self,
        key: &StoreKey,
        record: &ClientTokenRecord,
        expected: Option<u64>,
        keep_until: i64,
    ) -> Result<(), StoreError> {
        let mut item = item(key, KIND_CLIENT_TOKEN, keep_until);
        item.extend([
            (DATA.to_owned(), AttributeValue::S(encode(record, KIND_CLIENT_TOKEN)?)),
            (VERSION.to_owned(), AttributeValue::N(record.version.to_string())),
        ]);
        match expected {
            None => self.put_new(item).await,
            Some(expected) => {
                self.put_if(item, |put| {
                    put.condition_expression("#kind = :kind AND #version = :expected")
                        .expression_attribute_names("#kind", KIND)
                        .expression_attribute_names("#version", VERSION)
                        .expression_attribute_values(":kind", AttributeValue::S(KIND_CLIENT_TOKEN.to_owned()))
                        .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
                })
                .await
            }
        }
    }
}

/// Creates the store's table for local use and tests: on-demand billing, `pk` as the
/// partition key, TTL on `ttl`. An existing table is accepted; returns once it is `ACTIVE`
/// and TTL is on. Deployed tables come from the infrastructure template, not from here.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let (key_attribute, key_schema) = string_hash_key(PK)?;
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(key_attribute)
        .key_schema(key_schema);
    for (index, attribute) in [(SID_INDEX, SID), (SUB_INDEX, SUB)] {
        let (definition, key) = string_hash_key(attribute)?;
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(index)
            .key_schema(key)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(|_| StoreError::Unavailable("invalid CreateTable index".into()))?;
        create = create.attribute_definitions(definition).global_secondary_indexes(gsi);
    }
    let created = create.send().await;
    if let Err(err) = created {
        // ResourceInUseException: the table exists (or is being created); wait for it below.
        let exists = err
            .as_service_error()
            .is_some_and(|service| service.is_resource_in_use_exception());
        if !exists {
            return Err(sdk_error("CreateTable", err));
        }
    }

    wait_until_active(client, table).await?;

    // UpdateTimeToLive refuses to enable TTL twice, so look first.
    let described = client.describe_time_to_live().table_name(table).send().await;
    let status = described
        .map_err(|err| sdk_error("DescribeTimeToLive", err))?
        .time_to_live_description
        .and_then(|description| description.time_to_live_status);
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        return Ok(());
    }
    let specification = TimeToLiveSpecification::builder()
        .attribute_name(TTL)
        .enabled(true)
        .build()
        .map_err(|_| StoreError::Unavailable("invalid TimeToLive specification".into()))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|err| sdk_error("UpdateTimeToLive", err))?;
    Ok(())
}

/// For CreateTable: the definition of `name` as a string attribute, and the key schema
/// element that makes it the partition (hash) key of the table or of an index.
fn string_hash_key(name: &str) -> Result<(AttributeDefinition, KeySchemaElement), StoreError> {
    let definition = AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|_| StoreError::Unavailable("invalid CreateTable attribute definition".into()))?;
    let key = KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|_| StoreError::Unavailable("invalid CreateTable key schema".into()))?;
    Ok((definition, key))
}

/// Polls DescribeTable until the table is `ACTIVE`. Not the SDK's waiter: that one sleeps
/// 20 s between polls, far longer than DynamoDB Local ever needs.
async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|err| sdk_error("DescribeTable", err))?;
        let status = described.table.and_then(|description| description.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table did not become ACTIVE within {} s",
                TABLE_ACTIVE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(TABLE_POLL_INTERVAL).await;
    }
}

/// An SDK client on the shared AWS configuration ([`crate::platform::aws::sdk_config`]: region,
/// credentials, `AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local), with [`timeouts`] and
/// [`retries`].
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(config)
        .timeout_config(timeouts())
        .retry_config(retries())
        .build();
    Client::from_conf(config)
}

/// Opens `client`'s connection to DynamoDB (TCP and TLS handshake) with a read of a key
/// that never exists in `table`, so that the first invocation starts on an open
/// connection; run during a cold start's init, concurrently with the secret reads. A
/// failure is only logged: the first real call reports it, with its retries.
pub async fn open_connection(client: &Client, table: &str) {
    let probe = client
        .get_item()
        .table_name(table)
        .key(PK, AttributeValue::S(StoreKey::probe().0))
        .projection_expression("#pk")
        .expression_attribute_names("#pk", PK)
        .send()
        .await;
    if let Err(e) = probe {
        tracing::debug!(error = %classify("GetItem", &e), "the store connection was not opened at start-up");
    }
}

/// Bounded time per call: an unreachable or stalled DynamoDB answers 503 within seconds,
/// well inside the functions' timeouts, instead of hanging the request.
pub fn timeouts() -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(800))
        .operation_attempt_timeout(Duration::from_millis(1500))
        .operation_timeout(STORE_CALL_TIMEOUT)
        .build()
}

/// Throttling and transient errors are retried with jittered exponential backoff, three
/// attempts in all, before the store reports itself unavailable.
pub fn retries() -> aws_sdk_dynamodb::config::retry::RetryConfig {
    aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500))
}

fn session_item(key: &StoreKey, session: &SessionRecord) -> Result<Item, StoreError> {
    let mut item = item(key, KIND_SESSION, session.ttl());
    item.extend([
        (DATA.to_owned(), AttributeValue::S(encode(session, KIND_SESSION)?)),
        (VERSION.to_owned(), AttributeValue::N(session.version.to_string())),
        (SUB.to_owned(), AttributeValue::S(session.sub.clone())),
    ]);
    if let Some(sid) = &session.sid {
        item.insert(SID.to_owned(), AttributeValue::S(sid.clone()));
    }
    Ok(item)
}

/// The attributes every item has: its key, its kind and its expiry.
fn item(key: &StoreKey, kind: &str, ttl: i64) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.as_str().to_owned())),
        (KIND.to_owned(), AttributeValue::S(kind.to_owned())),
        (TTL.to_owned(), number(ttl)),
    ])
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn encode<T: Serialize>(record: &T, kind: &str) -> Result<String, StoreError> {
    // serde_json's message could quote a value; report the category only.
    serde_json::to_string(record)
        .map_err(|err| StoreError::Corrupt(format!("{kind} record not encodable ({:?})", err.classify())))
}

fn decode<T: DeserializeOwned>(item: &Item, kind: &str) -> Result<T, StoreError> {
    let Some(AttributeValue::S(data)) = item.get(DATA) else {
        return Err(StoreError::Corrupt(format!("{kind} item without a string `{DATA}`")));
    };
    // serde_json's message can quote the offending value (a token, say): keep only where.
    serde_json::from_str(data).map_err(|err| {
        StoreError::Corrupt(format!(
            "{kind} item `{DATA}` undecodable ({:?} error at line {} column {})",
            err.classify(),
            err.line(),
            err.column()
        ))
    })
}

fn ttl_of(item: &Item) -> Result<i64, StoreError> {
    match item.get(TTL) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("item `{TTL}` is not an integer"))),
        _ => Err(StoreError::Corrupt(format!("item without a number `{TTL}`"))),
    }
}

fn kind_of(item: &Item) -> Result<&str, StoreError> {
    match item.get(KIND) {
        Some(AttributeValue::S(kind)) => Ok(kind),
        _ => Err(StoreError::Corrupt(format!("item without a string `{KIND}`"))),
    }
}

/// Reduces an SDK error to a [`StoreError`]: a failed condition is a conflict, anything else
/// is the store being unavailable, described by operation and error code only (service
/// messages are not kept: they are free text and could echo request values).
fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata,
{
    let error = classify(operation, &err);
    if !matches!(error, StoreError::Conflict) {
        metrics::record(Event::StoreError);
    }
    error
}

fn classify<E, R>(operation: &str, err: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some(CONDITIONAL_CHECK_FAILED) => StoreError::Conflict,
            Some(code) => StoreError::Unavailable(format!("DynamoDB {operation}: {code}")),
            None => StoreError::Unavailable(format!("DynamoDB {operation}: unknown service error")),
        },
        SdkError::TimeoutError(_) => StoreError::Unavailable(format!("DynamoDB {operation}: timed out")),
        SdkError::DispatchFailure(failure) => {
            let why = if failure.is_timeout() {
                "connection timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "request not sent"
            };
            StoreError::Unavailable(format!("DynamoDB {operation}: {why}"))
        }
        SdkError::ResponseError(_) => StoreError::Unavailable(format!("DynamoDB {operation}: unreadable response")),
        SdkError::ConstructionFailure(_) => StoreError::Unavailable(format!("DynamoDB {operation}: request not built")),
        // SdkError is non-exhaustive.
        _ => StoreError::Unavailable(format!("DynamoDB {operation}: failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_from_the_ttl_number() {
        let item = HashMap::from([(TTL.to_owned(), number(1_700_000_000))]);
        assert_eq!(ttl_of(&item).ok(), Some(1_700_000_000));
        let missing = HashMap::new();
        assert!(matches!(ttl_of(&missing), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn undecodable_data_is_corrupt_and_the_error_never_quotes_it() {
        let item = HashMap::from([(
            DATA.to_owned(),
            AttributeValue::S(r#"{"sub": 42, "access_token": "eyJ.secret.value"}"#.to_owned()),
        )]);
        let err = decode::<SessionRecord>(&item, KIND_SESSION).err();
        let Some(StoreError::Corrupt(message)) = err else {
            panic!("expected a corrupt item error, got {err:?}");
        };
        assert!(!message.contains("secret"), "{message}");
        assert!(!message.contains("42"), "{message}");
    }

    #[test]
    fn session_items_carry_the_index_attributes() {
        let session: SessionRecord = serde_json::from_value(serde_json::json!({
            "sub": "user-1", "sid": "sid-1", "claims": {}, "id_token": "id",
            "access_token": "at", "access_expires_at": null, "access_issued_at": 1,
            "refresh_token": null, "created_at": 1, "expires_at": 300,
            "idle_expires_at": 200, "version": 7
        }))
        .expect("valid session JSON");
        let item = session_item(&StoreKey::session("h"), &session).expect("encodable");
        assert_eq!(item.get(PK), Some(&AttributeValue::S("session#h".into())));
        assert_eq!(item.get(TTL), Some(&number(200)));
        assert_eq!(item.get(VERSION), Some(&AttributeValue::N("7".into())));
        assert_eq!(item.get(SUB), Some(&AttributeValue::S("user-1".into())));
        assert_eq!(item.get(SID), Some(&AttributeValue::S("sid-1".into())));
    }
}
