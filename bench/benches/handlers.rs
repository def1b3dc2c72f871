//! Warm handler cost, in-process: each BFF handler called as a Lambda function calls it,
//! `bff::http::router::handle(&app, unit, request)`, on an `App` with the in-memory store, against
//! the real `oidc-provider` (`infra/provider.mjs`) and a fast upstream on loopback.
//!
//! Before the timings, the bench counts what each operation asks of the store (a counting
//! wrapper under the sealing layer, as in `tests/src/counting.rs`) and of the provider
//! (its `GET /__test/requests`), on fresh `App`s (a new Lambda instance: nothing cached)
//! and warm ones, and writes the counts to `target/bench/inprocess.json` for the report.
//!
//! Run: `cargo bench -p bff-bench --bench handlers` (`bash bench/run.sh` does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bff::App;
use bff::domain::login_options::LoginOptions;
use bff::domain::secret::PkceVerifier;
use bff::http::body::ResponseBody;
use bff::http::router::{self, unit};
use bff::oidc::AuthorizationRequest;
use bff::platform::config::Config;
use bff::store::memory::MemoryStore;
use bff::store::session_key;
use bff::store::{
    ClientTokenRecord, ClientTokenStore, DocumentCache, LoginTransaction, ReplayGuard, SessionIndex, SessionRecord,
    SessionStore, Store, StoreError, StoreKey, TransactionStore,
};
use bff_bench::delta;
use bff_testkit::Browser;
use bff_testkit::provider::{Provider, RegisteredClient, RequestCounts};
use criterion::{Criterion, SamplingMode};
use http_body_util::BodyExt as _;
use lambda_http::{Body, Request, Response};

/// The origin the BFF believes it serves; requests are handed to handlers directly.
const PUBLIC_URL: &str = "https://bff.example.com";

/// Store calls, counted under the sealing layer; reads and writes of shared provider
/// documents (discovery, JWKS) are counted apart as well.
#[derive(Default)]
struct Counts {
    reads: AtomicUsize,
    writes: AtomicUsize,
    document_reads: AtomicUsize,
    document_writes: AtomicUsize,
}

/// `(reads, writes, document reads, document writes)`.
type Snapshot = (usize, usize, usize, usize);

impl Counts {
    fn snapshot(&self) -> Snapshot {
        (
            self.reads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
            self.document_reads.load(Ordering::SeqCst),
            self.document_writes.load(Ordering::SeqCst),
        )
    }
}

struct CountingStore {
    inner: MemoryStore,
    counts: Arc<Counts>,
}

impl CountingStore {
    fn read(&self) {
        self.counts.reads.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl TransactionStore for CountingStore {
    async fn put_transaction(&self, key: &StoreKey, tx: &LoginTransaction) -> Result<(), StoreError> {
        self.write();
        self.inner.put_transaction(key, tx).await
    }

    async fn take_transaction(&self, key: &StoreKey, now: i64) -> Result<Option<LoginTransaction>, StoreError> {
        self.write();
        self.inner.take_transaction(key, now).await
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn put_session(&self, key: &StoreKey, session: &SessionRecord) -> Result<(), StoreError> {
        self.write();
        self.inner.put_session(key, session).await
    }

    async fn get_session(&self, key: &StoreKey, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        self.read();
        self.inner.get_session(key, now).await
    }

    async fn update_session(&self, key: &StoreKey, session: &SessionRecord, expected: u64) -> Result<(), StoreError> {
        self.write();
        self.inner.update_session(key, session, expected).await
    }

    async fn delete_session(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        self.write();
        self.inner.delete_session(key).await
    }

    async fn delete_session_at(&self, key: &StoreKey, expected: u64) -> Result<bool, StoreError> {
        self.write();
        self.inner.delete_session_at(key, expected).await
    }
}

#[async_trait]
impl SessionIndex for CountingStore {
    async fn sessions_with_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.read();
        self.inner.sessions_with_sid(sid).await
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.read();
        self.inner.sessions_of_sub(sub).await
    }
}

#[async_trait]
impl ReplayGuard for CountingStore {
    async fn first_use(&self, key: &StoreKey, expires_at: i64) -> Result<bool, StoreError> {
        self.write();
        self.inner.first_use(key, expires_at).await
    }

    async fn forget_use(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.write();
        self.inner.forget_use(key).await
    }
}

#[async_trait]
impl DocumentCache for CountingStore {
    async fn get_document(&self, key: &StoreKey, now: i64) -> Result<Option<String>, StoreError> {
        self.read();
        self.counts.document_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_document(key, now).await
    }

    async fn put_document(&self, key: &StoreKey, document: &str, expires_at: i64) -> Result<(), StoreError> {
        self.write();
        self.counts.document_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.put_document(key, document, expires_at).await
    }
}

#[async_trait]
impl ClientTokenStore for CountingStore {
    async fn get_client_token(
        &self,
        key: &StoreKey,
        consistent: bool,
    ) -> Result<Option<ClientTokenRecord>, StoreError> {
        self.read();
        self.inner.get_client_token(key, consistent).await
    }

    async fn put_client_token(
        &self,
        key: &StoreKey,
        record: &ClientTokenRecord,
        expected: Option<u64>,
        keep_until: i64,
    ) -> Result<(), StoreError> {
        self.write();
        self.inner.put_client_token(key, record, expected, keep_until).await
    }
}

/// The provider, the upstream and a registered client, shared by every `App`.
struct World {
    provider: Provider,
    client: RegisteredClient,
    upstream: String,
}

impl World {
    fn config(&self) -> Config {
        let values: BTreeMap<&str, String> = [
            ("BFF_ISSUER", self.provider.issuer.clone()),
            ("BFF_CLIENT_ID", self.client.client_id.clone()),
            ("BFF_CLIENT_SECRET", self.client.client_secret.clone()),
            ("BFF_PUBLIC_URL", PUBLIC_URL.to_owned()),
            // Several APIs: the catch-all uses the login's token, `/api/billing` its own
            // (RFC 8707 resource), `/api/reports` the BFF's client-credentials token.
            ("BFF_APIS", self.routes()),
            ("BFF_TOKEN_KEYS", bff_bench::BENCH_TOKEN_KEYS.to_owned()),
        ]
        .into_iter()
        .collect();
        Config::from_lookup(|name| values.get(name).cloned()).expect("bench configuration")
    }

    /// `BFF_APIS`: three routes to the one echo upstream.
    fn routes(&self) -> String {
        serde_json::json!([
            {"path": "/api/billing", "upstream": self.upstream, "resource": "https://billing.example"},
            {"path": "/api/reports", "upstream": self.upstream, "token": "client", "resource": "https://reports.example"},
            {"path": "/api", "upstream": self.upstream},
        ])
        .to_string()
    }

    /// A new `App` (empty discovery and JWKS caches) on `store`.
    fn app(&self, store: Arc<dyn Store>) -> App {
        App::new(self.config(), store).expect("app")
    }
}

fn request(method: &str, path_and_query: &str, headers: &[(&str, &str)], body: Body) -> Request {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("{PUBLIC_URL}{path_and_query}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).expect("request")
}

/// `name=value` of the response's `Set-Cookie` for `name`.
fn set_cookie(response: &Response<ResponseBody>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
        .map(str::to_owned)
}

fn location(response: &Response<ResponseBody>) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned()
}

/// Walks the provider as `user` from `started`, the login handler's redirect: the
/// callback request it leads to (with this browser's transaction cookie), not yet handled.
async fn callback_request(app: &App, started: &Response<ResponseBody>, user: &str) -> Request {
    let tx = set_cookie(started, app.cookies.tx).expect("transaction cookie");
    let callback = Browser::new()
        .authenticate(&location(started), &format!("{PUBLIC_URL}/auth/callback"), user)
        .await;
    let path = callback.strip_prefix(PUBLIC_URL).expect("callback on the BFF");
    request("GET", path, &[("cookie", &tx)], Body::Empty)
}

/// Starts a login at the login handler and walks the provider: the callback request,
/// not yet handled.
async fn pending_callback(app: &App, user: &str) -> Request {
    let started = router::handle(
        app,
        unit::Login,
        request("GET", "/auth/login?returnTo=%2Forders", &[], Body::Empty),
    )
    .await;
    assert_eq!(started.status(), 302, "login redirects to the provider");
    callback_request(app, &started, user).await
}

/// A fresh authorization code of `user` for the BFF's client, and its PKCE verifier: the
/// provider walked from the BFF's own authorization URL, without the login handler.
async fn fresh_code(app: &App, nonce: &str, user: &str) -> (String, PkceVerifier) {
    let verifier = PkceVerifier::generate();
    let options = LoginOptions::default();
    let request = AuthorizationRequest {
        state: "bench-state",
        nonce,
        verifier: &verifier,
        options: &options,
    };
    let url = app
        .oidc
        .authorization_url(&app.config, &request)
        .await
        .expect("authorization URL");
    let callback = Browser::new()
        .authenticate(&url, &format!("{PUBLIC_URL}/auth/callback"), user)
        .await;
    let code = url::Url::parse(&callback)
        .expect("callback URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    (code, verifier)
}

/// A complete login; returns the session cookie (`name=value`).
async fn login(app: &App, user: &str) -> String {
    let callback = pending_callback(app, user).await;
    let done = router::handle(app, unit::Callback, callback).await;
    assert_eq!(done.status(), 302, "callback redirects back");
    set_cookie(&done, app.cookies.session).expect("session cookie")
}

fn api(cookie: &str) -> Request {
    api_at("/api/orders?status=open", cookie)
}

fn api_at(path_and_query: &str, cookie: &str) -> Request {
    request(
        "GET",
        path_and_query,
        &[("cookie", cookie), ("x-csrf", "1")],
        Body::Empty,
    )
}

fn me(cookie: &str) -> Request {
    request("GET", "/auth/me", &[("cookie", cookie)], Body::Empty)
}

/// Makes the session's access token due for refresh (an hour-long token with 30 s left),
/// as a write through the store (the version moves on, as any update does).
async fn make_refresh_due(app: &App, cookie: &str) {
    let headers = {
        let mut map = http::HeaderMap::new();
        map.insert("cookie", cookie.parse().expect("cookie header"));
        map
    };
    let id = app.cookies.session_id(&headers).expect("session id");
    let key = session_key(&id);
    let now = app.clock.now();
    let mut session = app
        .store
        .get_session(&key, now)
        .await
        .expect("store")
        .expect("live session");
    let version = session.version;
    session.access_issued_at = now - 3570;
    session.access_expires_at = Some(now + 30);
    session.version = version + 1;
    app.store.update_session(&key, &session, version).await.expect("update");
}

/// One operation's counted calls.
fn op(name: &str, store: (Snapshot, Snapshot), provider: RequestCounts, per: usize) -> serde_json::Value {
    let ((r0, w0, dr0, dw0), (r1, w1, dr1, dw1)) = store;
    let per = per.max(1) as f64;
    serde_json::json!({
        "name": name,
        "reads": (r1 - r0) as f64 / per,
        "writes": (w1 - w0) as f64 / per,
        "document_reads": (dr1 - dr0) as f64 / per,
        "document_writes": (dw1 - dw0) as f64 / per,
        "provider": provider
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v as f64 / per)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// Counts what each operation asks of the store and the provider; writes
/// `target/bench/inprocess.json`.
async fn count_calls(world: &World) {
    let counts = Arc::new(Counts::default());
    let store: Arc<dyn Store> = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        counts: counts.clone(),
    });
    let mut operations = Vec::new();
    macro_rules! measure {
        ($name:expr, $per:expr, $body:expr) => {{
            let store_before = counts.snapshot();
            let provider_before = world.provider.requests().await;
            let value = $body;
            let provider_after = world.provider.requests().await;
            operations.push(op(
                $name,
                (store_before, counts.snapshot()),
                delta(&provider_before, &provider_after),
                $per,
            ));
            value
        }};
    }

    // A new instance: nothing cached.
    let cold = world.app(store.clone());
    let started = measure!(
        "`/auth/login`, new instance",
        1,
        router::handle(
            &cold,
            unit::Login,
            request("GET", "/auth/login?returnTo=%2F", &[], Body::Empty)
        )
        .await
    );
    let callback = callback_request(&cold, &started, "counter").await;
    let done = measure!(
        "`/auth/callback`, first in the instance (JWKS not cached yet)",
        1,
        router::handle(&cold, unit::Callback, callback).await
    );
    let cookie = set_cookie(&done, cold.cookies.session).expect("session cookie");

    // A warm instance.
    let warm = world.app(store.clone());
    let _ = login(&warm, "warmup").await;
    let started = measure!(
        "`/auth/login`, warm instance",
        1,
        router::handle(
            &warm,
            unit::Login,
            request("GET", "/auth/login?returnTo=%2F", &[], Body::Empty)
        )
        .await
    );
    let callback = callback_request(&warm, &started, "counter2").await;
    measure!(
        "`/auth/callback`, warm instance",
        1,
        router::handle(&warm, unit::Callback, callback).await
    );
    measure!("`/auth/me`, warm instance", 100, {
        for _ in 0..100 {
            assert_eq!(router::handle(&warm, unit::Session, me(&cookie)).await.status(), 200);
        }
    });
    measure!("`/api/*`, valid token, warm instance (per call, 100 calls)", 100, {
        for _ in 0..100 {
            assert_eq!(router::handle(&warm, unit::Proxy, api(&cookie)).await.status(), 200);
        }
    });
    measure!(
        "`/api/billing/*` (the route's own token), first call: refresh grant for it, warm instance",
        1,
        assert_eq!(
            router::handle(&warm, unit::Proxy, api_at("/api/billing/1", &cookie))
                .await
                .status(),
            200
        )
    );
    measure!(
        "`/api/billing/*` (the route's own token), warm instance (per call, 100 calls)",
        100,
        for _ in 0..100 {
            assert_eq!(
                router::handle(&warm, unit::Proxy, api_at("/api/billing/1", &cookie))
                    .await
                    .status(),
                200
            );
        }
    );
    measure!(
        "`/api/reports/*` (client-credentials token), first call in the deployment",
        1,
        assert_eq!(
            router::handle(&warm, unit::Proxy, api_at("/api/reports/1", &cookie))
                .await
                .status(),
            200
        )
    );
    measure!(
        "`/api/reports/*` (client-credentials token), warm instance (per call, 100 calls)",
        100,
        for _ in 0..100 {
            assert_eq!(
                router::handle(&warm, unit::Proxy, api_at("/api/reports/1", &cookie))
                    .await
                    .status(),
                200
            );
        }
    );
    let fresh = world.app(store.clone());
    measure!(
        "`/api/*`, valid token, new instance",
        1,
        assert_eq!(router::handle(&fresh, unit::Proxy, api(&cookie)).await.status(), 200)
    );
    make_refresh_due(&warm, &cookie).await;
    measure!(
        "`/api/*`, refresh due, warm instance",
        1,
        assert_eq!(router::handle(&warm, unit::Proxy, api(&cookie)).await.status(), 200)
    );
    assert!(
        operations
            .last()
            .is_some_and(|op| op["provider"].get("/token").is_some()),
        "a token due for refresh is refreshed at the provider"
    );
    make_refresh_due(&warm, &cookie).await;
    let fresh = world.app(store.clone());
    measure!(
        "`/api/*`, refresh due, new instance",
        1,
        assert_eq!(router::handle(&fresh, unit::Proxy, api(&cookie)).await.status(), 200)
    );
    measure!(
        "`/auth/logout` (revokes the refresh token), warm instance",
        1,
        router::handle(
            &warm,
            unit::Session,
            request(
                "POST",
                "/auth/logout",
                &[("cookie", &cookie), ("x-csrf", "1")],
                Body::Empty
            )
        )
        .await
    );

    let dir = bff_bench::results_dir();
    let _ = std::fs::create_dir_all(&dir);
    let json = serde_json::json!({ "operations": operations });
    std::fs::write(
        dir.join("inprocess.json"),
        serde_json::to_vec_pretty(&json).unwrap_or_default(),
    )
    .expect("write inprocess.json");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let provider = Provider::start(&[("PROVIDER_ACCESS_TOKEN_TTL", "3600")]);
    let upstream = bff_bench::upstream::spawn_background();
    let client = runtime.block_on(provider.register(PUBLIC_URL, "client_secret_basic"));
    let world = World {
        provider,
        client,
        upstream,
    };
    runtime.block_on(count_calls(&world));

    let mut criterion = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let app = world.app(Arc::new(MemoryStore::new()));
    let cookie = runtime.block_on(login(&app, "bench"));

    let mut group = criterion.benchmark_group("handlers");
    group.bench_function("login_redirect", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let req = request("GET", "/auth/login?returnTo=%2Forders", &[], Body::Empty);
                    let start = Instant::now();
                    let response = router::handle(&app, unit::Login, req).await;
                    total += start.elapsed();
                    assert_eq!(response.status(), 302);
                }
                total
            })
        })
    });
    group.bench_function("me", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let req = me(&cookie);
                    let start = Instant::now();
                    let response = router::handle(&app, unit::Session, req).await;
                    total += start.elapsed();
                    assert_eq!(response.status(), 200);
                }
                total
            })
        })
    });
    group.bench_function("proxy_valid_token", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let req = api(&cookie);
                    let start = Instant::now();
                    let response = router::handle(&app, unit::Proxy, req).await;
                    // The upstream's body streams: the call is over once it is read.
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes());
                    total += start.elapsed();
                    assert_eq!(parts.status, 200, "{body:?}");
                }
                total
            })
        })
    });

    // The ID token of one fresh code exchange, validated again and again (cached JWKS).
    let (id_token, nonce) = runtime.block_on(async {
        let nonce = bff::domain::secret::random_token(32);
        let (code, verifier) = fresh_code(&app, &nonce, "idtoken").await;
        let tokens = app
            .oidc
            .exchange_code(&code, verifier, None)
            .await
            .expect("code exchange");
        (tokens.id_token.expect("ID token"), nonce)
    });
    group.bench_function("id_token_validation", |b| {
        b.iter(|| {
            runtime.block_on(async {
                app.oidc
                    .verify_id_token(&id_token, Some(&nonce), app.clock.now())
                    .await
                    .expect("valid ID token")
            })
        })
    });

    // Slow operations: a handful of samples, each iteration with fresh provider state
    // prepared untimed.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(1));
    group.bench_function("callback", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let req = pending_callback(&app, &format!("user{i}")).await;
                    let start = Instant::now();
                    let response = router::handle(&app, unit::Callback, req).await;
                    total += start.elapsed();
                    assert_eq!(response.status(), 302);
                }
                total
            })
        })
    });
    group.bench_function("callback_token_exchange", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let (code, verifier) = fresh_code(&app, "bench-nonce", &format!("x{i}")).await;
                    let start = Instant::now();
                    let tokens = app.oidc.exchange_code(&code, verifier, None).await;
                    total += start.elapsed();
                    assert!(tokens.is_ok());
                }
                total
            })
        })
    });
    // A session of its own, logged in after the callback benches: their hundreds of
    // logins push older grants out of the provider's in-memory store (an LRU), and a
    // refresh of an evicted grant is rightly refused as invalid_grant.
    let refreshing = runtime.block_on(login(&app, "refresher"));
    group.bench_function("proxy_refresh", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    make_refresh_due(&app, &refreshing).await;
                    let req = api(&refreshing);
                    let start = Instant::now();
                    let response = router::handle(&app, unit::Proxy, req).await;
                    // The upstream's body streams: the call is over once it is read.
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes());
                    total += start.elapsed();
                    assert_eq!(parts.status, 200, "{body:?}");
                }
                total
            })
        })
    });
    group.finish();
    criterion.final_summary();
}
