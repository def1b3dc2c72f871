//! The store contract: one executable specification every store adapter must meet.
//!
//! Each check is an `async fn` over a [`Store`] that panics when the adapter breaks the
//! contract; [`run_all`] runs them all. The in-memory store runs them in its unit tests, and
//! the integration tests run them against DynamoDB Local, so both backends are held to the
//! same semantics.
//!
//! Every check writes under fresh random keys, so checks can share a table (or run
//! concurrently) without seeing each other's items. Times are real epoch seconds with
//! lifetimes well in the future, and expiry is exercised through the `now` argument: that
//! tests the adapter's own expiry check, not the backend's TTL sweeper. This module is
//! compiled only for tests and the `contract-tests` feature, never into a function.

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;

use super::{ClientTokenRecord, LoginTransaction, RefreshLease, SessionRecord, Store, StoreError, StoreKey};
use crate::domain::login_options::AuthRequirements;
use crate::domain::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken, hash, random_token};

/// How many callers race for the same transaction in the concurrency check.
const RACERS: usize = 10;

/// Lifetime of the records the checks write, in seconds.
const LIFETIME: i64 = 600;

/// Runs every check of the contract against `store`, one after the other.
pub async fn run_all(store: &dyn Store) {
    transaction_is_taken_exactly_once(store).await;
    replayed_take_is_none(store).await;
    expired_transaction_is_not_taken(store).await;
    putting_a_transaction_twice_conflicts(store).await;
    concurrent_takes_yield_exactly_one_transaction(store).await;
    session_round_trips(store).await;
    putting_a_session_twice_conflicts(store).await;
    session_update_with_the_expected_version_succeeds(store).await;
    session_update_with_a_stale_version_conflicts(store).await;
    update_of_a_deleted_session_conflicts(store).await;
    expired_session_reads_as_absent(store).await;
    delete_returns_the_session_once(store).await;
    delete_at_a_version_spares_a_session_updated_since(store).await;
    transaction_and_session_keys_are_isolated(store).await;
    sessions_are_found_by_sid_and_by_sub(store).await;
    an_identifier_is_used_only_once(store).await;
    a_client_token_reads_the_same_either_way(store).await;
    document_copies_are_separate_items(store).await;
}

/// A client token written under a version reads back with either consistency, and the
/// next write must name that version.
pub async fn a_client_token_reads_the_same_either_way(store: &dyn Store) {
    let now = now();
    let key = StoreKey::client_token(&random_token(16));
    for consistent in [false, true] {
        assert!(
            store.get_client_token(&key, consistent).await.expect("read").is_none(),
            "absent at first (consistent: {consistent})"
        );
    }
    let record = ClientTokenRecord {
        access_token: Some(AccessToken::new(random_token(16))),
        expires_at: now + LIFETIME,
        issued_at: now,
        lease: None,
        version: 1,
    };
    store
        .put_client_token(&key, &record, None, now + LIFETIME)
        .await
        .expect("first write");
    // DynamoDB's eventually consistent read may lag a write by about a second.
    let mut eventual = None;
    for _ in 0..30 {
        eventual = store.get_client_token(&key, false).await.expect("read");
        if eventual.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let strong = store.get_client_token(&key, true).await.expect("read");
    for (read, consistent) in [(eventual, false), (strong, true)] {
        let read = read.unwrap_or_else(|| panic!("written token present (consistent: {consistent})"));
        assert_eq!(read.version, 1);
        assert_eq!(read.access_token, record.access_token);
    }
    assert_conflict(
        store.put_client_token(&key, &record, Some(7), now + LIFETIME).await,
        "a client token write at a stale version",
    );
}

/// Each copy of a cached document is an item of its own: writing one copy leaves the
/// others absent, and an expired copy reads as absent.
pub async fn document_copies_are_separate_items(store: &dyn Store) {
    let now = now();
    let issuer = format!("https://{}.example", random_token(8));
    let first = StoreKey::document("jwks", &issuer, 0);
    let second = StoreKey::document("jwks", &issuer, 1);
    assert_ne!(first, second);
    store
        .put_document(&first, r#"{"keys":[]}"#, now + LIFETIME)
        .await
        .expect("write");
    assert_eq!(
        store.get_document(&first, now).await.expect("read").as_deref(),
        Some(r#"{"keys":[]}"#)
    );
    assert_eq!(store.get_document(&second, now).await.expect("read"), None);
    assert_eq!(
        store.get_document(&first, now + LIFETIME).await.expect("read"),
        None,
        "expired"
    );
}

/// A delete conditioned on the version read (ending a session after `invalid_grant`)
/// spares a session someone updated since, and deletes one that is still as read.
pub async fn delete_at_a_version_spares_a_session_updated_since(store: &dyn Store) {
    let now = now();
    let (key, _) = stored_session(store, now, 1).await;
    store
        .update_session(&key, &session(now, 2), 1)
        .await
        .expect("update succeeds");
    assert!(
        !store.delete_session_at(&key, 1).await.expect("delete call"),
        "stale version"
    );
    assert!(read(store, &key, now).await.is_some(), "the updated session is kept");
    assert!(
        store.delete_session_at(&key, 2).await.expect("delete call"),
        "current version"
    );
    assert!(read(store, &key, now).await.is_none(), "deleted");
    assert!(
        !store.delete_session_at(&key, 2).await.expect("delete call"),
        "already gone"
    );
}

/// Back-channel logout finds sessions through `sid` and through `sub`, and only those.
pub async fn sessions_are_found_by_sid_and_by_sub(store: &dyn Store) {
    let now = now();
    let first = session(now, 1);
    let mut second = session(now, 1);
    second.sub = first.sub.clone();
    second.sid = None;
    let other = session(now, 1);
    let (k1, k2, k3) = (session_key(), session_key(), session_key());
    for (key, record) in [(&k1, &first), (&k2, &second), (&k3, &other)] {
        store.put_session(key, record).await.expect("put_session");
    }
    let sid = first.sid.clone().expect("sid");
    let by_sid = store.sessions_with_sid(&sid).await.expect("sessions_with_sid");
    assert_eq!(by_sid, vec![k1.clone()], "exactly the session with that sid");
    let mut by_sub = store.sessions_of_sub(&first.sub).await.expect("sessions_of_sub");
    by_sub.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![k1, k2];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(by_sub, expected, "every session of that subject, and only those");
    assert!(store.sessions_with_sid("no-such-sid").await.expect("query").is_empty());
}

/// A replay guard says yes once per identifier.
pub async fn an_identifier_is_used_only_once(store: &dyn Store) {
    let key = StoreKey::replay(&hash(&random_token(16)));
    let until = now() + LIFETIME;
    assert!(
        store.first_use(&key, until).await.expect("first use"),
        "first use is accepted"
    );
    assert!(
        !store.first_use(&key, until).await.expect("second use"),
        "second use is a replay"
    );
    let other = StoreKey::replay(&hash(&random_token(16)));
    assert!(
        store.first_use(&other, until).await.expect("other"),
        "identifiers are independent"
    );
    store.forget_use(&key).await.expect("forget");
    assert!(
        store.first_use(&key, until).await.expect("use after forgetting"),
        "a forgotten use can be made again"
    );
}

/// Put then take returns the transaction as written.
pub async fn transaction_is_taken_exactly_once(store: &dyn Store) {
    let now = now();
    let (key, expected) = stored_transaction(store, now + LIFETIME).await;

    let taken = take(store, &key, now).await;

    assert_same_transaction(&taken.expect("a stored, unexpired transaction is returned"), &expected);
}

/// A second take of the same transaction (a replayed callback) finds nothing.
pub async fn replayed_take_is_none(store: &dyn Store) {
    let now = now();
    let (key, _) = stored_transaction(store, now + LIFETIME).await;
    let first = take(store, &key, now).await;
    assert!(first.is_some(), "the first take returns the transaction");

    let replay = take(store, &key, now).await;

    assert!(replay.is_none(), "a transaction is consumed by the first take");
    let never_written = take(store, &transaction_key(), now).await;
    assert!(never_written.is_none(), "an unknown transaction reads as absent");
}

/// A transaction read at or after its expiry is absent, even if the backend still holds it;
/// one second earlier it is still valid.
pub async fn expired_transaction_is_not_taken(store: &dyn Store) {
    let expires_at = now() + LIFETIME;

    let (expired_key, _) = stored_transaction(store, expires_at).await;
    let at_expiry = take(store, &expired_key, expires_at).await;
    assert!(at_expiry.is_none(), "a transaction is void at its expiry second");
    let later = take(store, &expired_key, expires_at - 1).await;
    assert!(later.is_none(), "taking an expired transaction consumed it");

    let (live_key, _) = stored_transaction(store, expires_at).await;
    let just_before = take(store, &live_key, expires_at - 1).await;
    assert!(just_before.is_some(), "a transaction is valid until its expiry second");
}

/// Writing a transaction under a key that already holds one is a conflict and keeps the
/// first one.
pub async fn putting_a_transaction_twice_conflicts(store: &dyn Store) {
    let now = now();
    let (key, expected) = stored_transaction(store, now + LIFETIME).await;

    let second = store.put_transaction(&key, &transaction(now + LIFETIME)).await;

    assert_conflict(second, "second put");
    let kept = take(store, &key, now).await;
    assert_same_transaction(&kept.expect("the first transaction is still there"), &expected);
}

/// Many concurrent takes of one transaction (parallel callback requests carrying the same
/// `state`): exactly one caller gets it.
pub async fn concurrent_takes_yield_exactly_one_transaction(store: &dyn Store) {
    let now = now();
    let (key, _) = stored_transaction(store, now + LIFETIME).await;

    let results = join_all((0..RACERS).map(|_| store.take_transaction(&key, now))).await;

    let mut winners = 0;
    for result in results {
        if result.expect("every concurrent take succeeds").is_some() {
            winners += 1;
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one of {RACERS} concurrent takes gets the transaction"
    );
}

/// A session reads back as written.
pub async fn session_round_trips(store: &dyn Store) {
    let now = now();
    let (key, session) = stored_session(store, now, 1).await;

    let round_trip = read(store, &key, now).await;

    assert_same_session(&round_trip.expect("the session is there"), &session);
    let unknown = read(store, &session_key(), now).await;
    assert!(unknown.is_none(), "an unknown session reads as absent");
}

/// Creating a session under a key that already holds one is a conflict and keeps the first.
pub async fn putting_a_session_twice_conflicts(store: &dyn Store) {
    let now = now();
    let (key, first) = stored_session(store, now, 1).await;

    let mut other = session(now, 1);
    other.sub = "someone-else".into();
    let second = store.put_session(&key, &other).await;

    assert_conflict_keeps(store, &key, now, second, "second put", &first).await;
}

/// An update naming the stored version replaces the session, new version included.
pub async fn session_update_with_the_expected_version_succeeds(store: &dyn Store) {
    let now = now();
    let (key, _) = stored_session(store, now, 1).await;

    let mut refreshed = session(now, 2);
    refreshed.access_token = AccessToken::new(random_token(16));
    refreshed.idle_expires_at = now + 2 * LIFETIME;
    refreshed.expires_at = now + 3 * LIFETIME;
    refreshed.refresh_lease = Some(RefreshLease {
        owner: random_token(12),
        until_ms: (now + 30) * 1_000,
    });
    assert_update_applies(
        store,
        &key,
        now,
        &refreshed,
        1,
        "update with the stored version succeeds",
    )
    .await;

    let mut again = session(now, 3);
    again.sid = None;
    assert_update_applies(
        store,
        &key,
        now,
        &again,
        2,
        "a second update with the new version succeeds",
    )
    .await;
}

/// Of two updates from the same read (concurrent refreshes), the second conflicts and the
/// first one's record stays.
pub async fn session_update_with_a_stale_version_conflicts(store: &dyn Store) {
    let now = now();
    let (key, _) = stored_session(store, now, 1).await;
    let winner = session(now, 2);
    assert_update_applies(store, &key, now, &winner, 1, "first update succeeds").await;

    let stale = store.update_session(&key, &session(now, 2), 1).await;

    assert_conflict_keeps(store, &key, now, stale, "an update with a stale version", &winner).await;
}

/// Updating a session that was deleted (logged out meanwhile) conflicts and does not bring
/// it back; so does updating one that never existed.
pub async fn update_of_a_deleted_session_conflicts(store: &dyn Store) {
    let now = now();
    let (key, _) = stored_session(store, now, 1).await;
    store.delete_session(&key).await.expect("delete succeeds");

    let update = store.update_session(&key, &session(now, 2), 1).await;

    assert_conflict(update, "an update of a deleted session");
    let after_update = read(store, &key, now).await;
    assert!(after_update.is_none(), "a failed update must not resurrect the session");

    let never = store.update_session(&session_key(), &session(now, 1), 0).await;
    assert_conflict(never, "an update of an unknown session");
}

/// A session read at or after its TTL (the earlier of absolute and idle expiry) is absent;
/// one second earlier it is there.
pub async fn expired_session_reads_as_absent(store: &dyn Store) {
    let (key, session) = stored_session(store, now(), 1).await;
    let ttl = session.ttl();
    assert!(ttl < session.expires_at, "the idle expiry comes first in this check");

    let before = read(store, &key, ttl - 1).await;
    let at = read(store, &key, ttl).await;
    let after = read(store, &key, ttl + LIFETIME).await;

    assert!(before.is_some(), "a session is valid until its TTL second");
    assert!(at.is_none(), "a session is void at its TTL second");
    assert!(after.is_none(), "a session is void after its TTL");
}

/// Deleting a session returns what it held; a second delete finds nothing.
pub async fn delete_returns_the_session_once(store: &dyn Store) {
    let now = now();
    let (key, session) = stored_session(store, now, 4).await;

    let deleted = store.delete_session(&key).await.expect("delete succeeds");
    let again = store.delete_session(&key).await.expect("second delete succeeds");

    assert_same_session(&deleted.expect("delete returns the record"), &session);
    assert!(again.is_none(), "a second delete finds nothing");
    let after_delete = read(store, &key, now).await;
    assert!(after_delete.is_none(), "a deleted session reads as absent");
}

/// Transactions and sessions never see each other: the same hash under both kinds names two
/// records, and a session operation given a transaction key (or the reverse) finds nothing
/// and leaves the other record alone.
pub async fn transaction_and_session_keys_are_isolated(store: &dyn Store) {
    let now = now();
    let shared_hash = hash(&random_token(32));
    let tx_key = StoreKey::transaction(&shared_hash);
    let session_key = StoreKey::session(&shared_hash);
    assert_ne!(tx_key, session_key, "the kinds have distinct keys");
    let tx = transaction(now + LIFETIME);
    let expected_tx = copy_transaction(&tx);
    let session = session(now, 1);
    store
        .put_transaction(&tx_key, &tx)
        .await
        .expect("put_transaction succeeds");
    store
        .put_session(&session_key, &session)
        .await
        .expect("put_session succeeds");

    let session_at_tx_key = read(store, &tx_key, now).await;
    assert!(session_at_tx_key.is_none(), "a transaction never reads as a session");
    let deleted_at_tx_key = store.delete_session(&tx_key).await.expect("delete succeeds");
    assert!(
        deleted_at_tx_key.is_none(),
        "a transaction is never deleted as a session"
    );
    let taken_at_session_key = take(store, &session_key, now).await;
    assert!(taken_at_session_key.is_none(), "a session never reads as a transaction");

    let taken = take(store, &tx_key, now).await;
    assert_same_transaction(&taken.expect("the transaction is intact"), &expected_tx);
    let session_at_session_key = read(store, &session_key, now).await;
    assert_same_session(&session_at_session_key.expect("the session is intact"), &session);
}

/// Puts a new transaction expiring at `expires_at` under a fresh key; returns the key and a
/// copy of the transaction to compare against.
async fn stored_transaction(store: &dyn Store, expires_at: i64) -> (StoreKey, LoginTransaction) {
    let key = transaction_key();
    let tx = transaction(expires_at);
    store
        .put_transaction(&key, &tx)
        .await
        .expect("put_transaction of a new key succeeds");
    (key, copy_transaction(&tx))
}

/// Puts a new session (see [`session`]) under a fresh key; returns the key and the session.
async fn stored_session(store: &dyn Store, now: i64, version: u64) -> (StoreKey, SessionRecord) {
    let key = session_key();
    let session = session(now, version);
    store.put_session(&key, &session).await.expect("put_session succeeds");
    (key, session)
}

/// Takes the transaction at `key` at time `now`; the call itself must succeed.
async fn take(store: &dyn Store, key: &StoreKey, now: i64) -> Option<LoginTransaction> {
    store
        .take_transaction(key, now)
        .await
        .expect("take_transaction succeeds")
}

/// Reads the session at `key` at time `now`; the call itself must succeed.
async fn read(store: &dyn Store, key: &StoreKey, now: i64) -> Option<SessionRecord> {
    store.get_session(key, now).await.expect("get_session succeeds")
}

/// Updates the session at `key` from version `expected` to `record` (`what` says why that
/// must succeed) and checks that it reads back as `record`.
async fn assert_update_applies(
    store: &dyn Store,
    key: &StoreKey,
    now: i64,
    record: &SessionRecord,
    expected: u64,
    what: &str,
) {
    store.update_session(key, record, expected).await.expect(what);
    let updated = read(store, key, now).await;
    assert_same_session(&updated.expect("the session is there"), record);
}

/// Asserts that `result`, of the write `what`, is a conflict.
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "{what} must conflict, got {result:?}"
    );
}

/// Asserts that `result`, of the write `what`, is a conflict and that the session at `key`
/// is still `kept`.
async fn assert_conflict_keeps(
    store: &dyn Store,
    key: &StoreKey,
    now: i64,
    result: Result<(), StoreError>,
    what: &str,
    kept: &SessionRecord,
) {
    assert_conflict(result, what);
    let stored = read(store, key, now).await;
    assert_same_session(&stored.expect("the earlier session is still there"), kept);
}

fn now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("epoch seconds fit in i64")
}

fn transaction_key() -> StoreKey {
    StoreKey::transaction(&hash(&random_token(32)))
}

fn session_key() -> StoreKey {
    StoreKey::session(&hash(&random_token(32)))
}

fn transaction(expires_at: i64) -> LoginTransaction {
    LoginTransaction {
        dpop_key: None,
        pkce_verifier: PkceVerifier::generate(),
        nonce: random_token(16),
        return_to: format!("/app/{}", random_token(6)),
        expires_at,
        replaces_session: Some(random_token(8)),
        requirements: AuthRequirements {
            max_age: Some(60),
            acr_values: Some(vec!["urn:example:loa:2".into()]),
        },
        silent: true,
    }
}

/// The verifier is deliberately not `Clone`; checks need a second copy to compare against.
fn copy_transaction(tx: &LoginTransaction) -> LoginTransaction {
    tx.copy()
}

/// A session logged in at `now`, idle expiry before absolute expiry, every optional field
/// set so that a round trip has something to lose.
fn session(now: i64, version: u64) -> SessionRecord {
    let sub = format!("user-{}", random_token(6));
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), serde_json::Value::String(sub.clone()));
    claims.insert("email".into(), serde_json::Value::String("user@example.test".into()));
    claims.insert("email_verified".into(), serde_json::Value::Bool(true));
    SessionRecord {
        access_token_type: Default::default(),
        dpop_key: None,
        sub,
        sid: Some(random_token(12)),
        claims,
        id_token: IdToken::new(format!("header.{}.signature", random_token(24))),
        access_token: AccessToken::new(random_token(24)),
        access_expires_at: Some(now + 300),
        access_issued_at: now,
        refresh_token: Some(RefreshToken::new(random_token(24))),
        created_at: now,
        expires_at: now + 2 * LIFETIME,
        idle_expires_at: now + LIFETIME,
        version,
        refresh_lease: None,
        refresh_started_at: Some(now - 60),
        user_agent: None,
        api_tokens: Vec::new(),
        userinfo: None,
    }
}

fn assert_same_transaction(actual: &LoginTransaction, expected: &LoginTransaction) {
    assert!(actual.pkce_verifier == expected.pkce_verifier, "PKCE verifier differs");
    assert_eq!(actual.nonce, expected.nonce, "nonce differs");
    assert_eq!(actual.return_to, expected.return_to, "return_to differs");
    assert_eq!(actual.expires_at, expected.expires_at, "expires_at differs");
    assert_eq!(
        actual.replaces_session, expected.replaces_session,
        "replaces_session differs"
    );
    assert_eq!(actual.requirements, expected.requirements, "requirements differ");
    assert_eq!(actual.silent, expected.silent, "silent differs");
}

fn assert_same_session(actual: &SessionRecord, expected: &SessionRecord) {
    assert_eq!(actual.sub, expected.sub, "sub differs");
    assert_eq!(actual.sid, expected.sid, "sid differs");
    assert_eq!(actual.claims, expected.claims, "claims differ");
    // Secrets have no printable form; compare them without asking assert_eq! to print them.
    assert!(actual.id_token == expected.id_token, "id_token differs");
    assert!(actual.access_token == expected.access_token, "access_token differs");
    assert!(actual.refresh_token == expected.refresh_token, "refresh_token differs");
    assert_eq!(
        actual.access_expires_at, expected.access_expires_at,
        "access_expires_at differs"
    );
    assert_eq!(
        actual.access_issued_at, expected.access_issued_at,
        "access_issued_at differs"
    );
    assert_eq!(actual.created_at, expected.created_at, "created_at differs");
    assert_eq!(actual.expires_at, expected.expires_at, "expires_at differs");
    assert_eq!(
        actual.idle_expires_at, expected.idle_expires_at,
        "idle_expires_at differs"
    );
    assert_eq!(actual.version, expected.version, "version differs");
    assert_eq!(actual.refresh_lease, expected.refresh_lease, "refresh_lease differs");
    assert_eq!(
        actual.refresh_started_at, expected.refresh_started_at,
        "refresh_started_at differs"
    );
}
