//! `spawn_app`: one BFF per test, with its own client at the provider, its own upstream
//! and its own store (a fresh DynamoDB Local table, or memory).

use std::collections::HashMap;
use std::sync::Arc;

use bff::App;

use crate::clock::TestClock;
use bff::platform::config::Config;
use bff::store::Store;
use bff::store::dynamodb::DynamoStore;
use bff::store::memory::MemoryStore;
use bff_testkit::BffBrowser;
use bff_testkit::provider::{Provider, RegisteredClient};

use crate::upstream::Upstream;

/// Token-sealing keys of the tests (two, to exercise rotation-aware opening).
pub const TEST_TOKEN_KEYS: &str =
    "t2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,t1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// A function wrapping the store the BFF gets (to count calls, say).
pub type StoreWrapper = fn(Arc<dyn Store>) -> Arc<dyn Store>;

/// Which store backs the BFF under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded in-memory store.
    Memory,
    /// DynamoDB Local, a fresh table.
    Dynamo,
}

/// Knobs for one test's BFF.
pub struct Options {
    /// The store.
    pub store: StoreKind,
    /// Extra or overriding `BFF_*` variables.
    pub env: Vec<(&'static str, String)>,
    /// Client authentication registered at the provider.
    pub auth_method: &'static str,
    /// A dedicated provider instead of the shared one.
    pub provider: Option<&'static Provider>,
    /// Register back-channel logout for this BFF at the provider.
    pub backchannel: bool,
    /// Wraps the store (e.g. to count calls) before the BFF gets it.
    pub wrap_store: Option<StoreWrapper>,
    /// A store of the test's own instead of the one `store` names (a dedicated DynamoDB
    /// Local the test stops, say).
    pub own_store: Option<Arc<dyn Store>>,
    /// The DynamoDB endpoint the BFF talks to (a fault proxy, say) instead of the shared
    /// DynamoDB Local; its table is still created on the shared one.
    pub dynamo_endpoint: Option<String>,
    /// More client metadata registered at the provider (signing algorithms, say).
    pub client_metadata: Option<serde_json::Value>,
    /// Register the client for `private_key_jwt` with this public JWKS (no secret).
    pub client_jwks: Option<serde_json::Value>,
    /// The AWS configuration a KMS client key (`BFF_CLIENT_KMS_KEY_ID`) is read with.
    pub aws: Option<aws_config::SdkConfig>,
}

impl Options {
    /// Defaults for `store`.
    pub fn new(store: StoreKind) -> Self {
        Self {
            store,
            env: Vec::new(),
            auth_method: "client_secret_basic",
            provider: None,
            backchannel: false,
            wrap_store: None,
            own_store: None,
            dynamo_endpoint: None,
            client_metadata: None,
            client_jwks: None,
            aws: None,
        }
    }
}

/// A running BFF and everything around it.
pub struct TestApp {
    /// The BFF's origin (`http://127.0.0.1:<port>`).
    pub url: String,
    /// The context the server runs with (to read the store).
    pub app: Arc<App>,
    /// The clock the server reads; tests move it forward to observe expiry.
    pub clock: Arc<TestClock>,
    /// The recording upstream.
    pub upstream: Upstream,
    /// The provider.
    pub provider: &'static Provider,
    /// This BFF's client at the provider.
    pub client: RegisteredClient,
    /// The store as the BFF sees it (tokens opened), for direct inspection.
    pub store: Arc<dyn Store>,
    /// The configuration it runs with, as environment variables.
    pub env: HashMap<&'static str, String>,
    /// The DynamoDB table, when the store is DynamoDB Local.
    pub table: Option<String>,
    /// The endpoint the BFF reaches that table through, when it is not the shared one.
    pub dynamo_endpoint: Option<String>,
}

/// Another BFF instance of a [`TestApp`]: the same configuration, client, table and clock,
/// its own server and store client, as a second Lambda instance would be.
pub struct Instance {
    /// Its origin (`http://127.0.0.1:<port>`); it answers for the first one's public URL.
    pub url: String,
    /// Its context.
    pub app: Arc<App>,
}

/// Starts a BFF with default options on `store`.
pub async fn spawn_app(store: StoreKind) -> TestApp {
    spawn_app_with(Options::new(store)).await
}

/// Starts a BFF with `options`.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let provider = options.provider.unwrap_or_else(bff_testkit::provider::shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind bff");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let backchannel_uri = options.backchannel.then(|| format!("{url}/auth/backchannel-logout"));
    let client = match options.client_jwks {
        Some(jwks) => provider.register_with_keys(&url, jwks).await,
        None => {
            provider
                .register_client(
                    &url,
                    options.auth_method,
                    backchannel_uri.as_deref(),
                    options.client_metadata.as_ref(),
                )
                .await
        }
    };
    let upstream = Upstream::start().await;

    let mut env: HashMap<&'static str, String> = HashMap::from([
        ("BFF_ISSUER", provider.issuer.clone()),
        ("BFF_CLIENT_ID", client.client_id.clone()),
        ("BFF_CLIENT_SECRET", client.client_secret.clone()),
        ("BFF_PUBLIC_URL", url.clone()),
        ("BFF_UPSTREAM_URL", upstream.base.clone()),
        ("BFF_ALLOWED_ORIGINS", "http://localhost:5173".to_owned()),
        ("BFF_UPSTREAM_TIMEOUT_SECS", "1".to_owned()),
        // Shared by every instance of one test (bff-local processes included).
        ("BFF_TOKEN_KEYS", TEST_TOKEN_KEYS.to_owned()),
    ]);
    env.extend(options.env);
    // Several APIs replace the one upstream (the two may not be set together).
    if env.contains_key("BFF_APIS") {
        env.remove("BFF_UPSTREAM_URL");
    }
    let mut config = Config::from_lookup(|name| env.get(name).cloned()).expect("test configuration");
    if let Some(aws) = &options.aws {
        bff::platform::kms::load_config_key(&mut config, aws)
            .await
            .expect("the KMS client key");
    }

    let (store, table): (Arc<dyn Store>, Option<String>) = match (options.own_store, options.store) {
        (Some(own), _) => (own, None),
        (None, StoreKind::Memory) => (Arc::new(MemoryStore::new()), None),
        (None, StoreKind::Dynamo) => {
            let (store, _, table) = crate::dynamodb::fresh_store().await;
            match &options.dynamo_endpoint {
                Some(endpoint) => (Arc::new(dynamo_at(endpoint, &table)), Some(table)),
                None => (Arc::new(store), Some(table)),
            }
        }
    };
    let store = match options.wrap_store {
        Some(wrap) => wrap(store),
        None => store,
    };
    let clock = Arc::new(TestClock::default());
    let app = Arc::new(App::with_clock(config, store, clock.clone()).expect("app"));
    // The app's view of the store: it opens the sealed tokens.
    let store = app.store.clone();
    let server_app = app.clone();
    tokio::spawn(async move { bff_local::serve(listener, server_app, None, std::future::pending()).await });
    TestApp {
        url,
        app,
        clock,
        upstream,
        provider,
        client,
        store,
        env,
        table,
        dynamo_endpoint: options.dynamo_endpoint,
    }
}

/// A store on `table` through `endpoint`.
fn dynamo_at(endpoint: &str, table: &str) -> DynamoStore {
    DynamoStore::new(crate::dynamodb::client(endpoint), table)
}

impl TestApp {
    /// A fresh browser (empty cookie jar) pointed at this BFF.
    pub fn browser(&self) -> BffBrowser {
        BffBrowser::new(&self.url, &self.provider.issuer)
    }

    /// A second instance on the same DynamoDB table (through the same endpoint) with the
    /// same configuration and clock. Panics for an in-memory store: nothing to share.
    pub async fn another_instance(&self) -> Instance {
        let table = self.table.as_deref().expect("another instance needs a DynamoDB table");
        let store: Arc<dyn Store> = match &self.dynamo_endpoint {
            Some(endpoint) => Arc::new(dynamo_at(endpoint, table)),
            None => Arc::new(dynamo_at(
                &tokio::task::spawn_blocking(crate::dynamodb::endpoint)
                    .await
                    .expect("endpoint"),
                table,
            )),
        };
        let config = Config::from_lookup(|name| self.env.get(name).cloned()).expect("test configuration");
        let app = Arc::new(App::with_clock(config, store, self.clock.clone()).expect("app"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind bff");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server_app = app.clone();
        tokio::spawn(async move { bff_local::serve(listener, server_app, None, std::future::pending()).await });
        Instance { url, app }
    }

    /// A fresh browser that sends `user_agent` as its `User-Agent`.
    pub fn browser_as(&self, user_agent: &str) -> BffBrowser {
        BffBrowser::with_user_agent(&self.url, &self.provider.issuer, Some(user_agent))
    }
}
