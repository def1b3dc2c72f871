//! The per-process context every handler borrows, and the path router.
//!
//! An [`App`] is built once per cold start (or once by `bff-local`) and shared: the
//! configuration, the store, the OIDC relying party with its discovery and JWKS caches,
//! and the upstream client.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use lambda_http::{Body, Request, Response};

use crate::access_log;
use crate::config::{Config, ConfigError};
use crate::cookies::CookieNames;
use crate::errors::ApiError;
use crate::handlers;
use crate::oidc::{Oidc, OidcError};
use crate::proxy::{ProxyError, Upstream};
use crate::seal::Sealer;
use crate::store::Store;
use crate::store::sealed::SealedStore;

/// Wall-clock seconds, with an offset tests can move forward to observe expiry.
#[derive(Debug, Default)]
pub struct Clock {
    offset: AtomicI64,
}

impl Clock {
    /// Epoch seconds now.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Epoch milliseconds now (lease deadlines need finer grain than seconds).
    pub fn now_ms(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        system + self.offset.load(Ordering::Relaxed) * 1000
    }

    /// Moves this clock forward by `secs` (tests only use it; production never does).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// Why the application context could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration is missing or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client towards the provider could not be built.
    #[error("identity provider client: {0}")]
    Oidc(#[from] OidcError),
    /// The HTTP client towards the upstream could not be built.
    #[error("upstream client: {0}")]
    Proxy(#[from] ProxyError),
}

/// Everything a handler needs, built once per process.
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// Cookie names and attributes for this deployment.
    pub cookies: CookieNames,
    /// Transactions and sessions.
    pub store: Arc<dyn Store>,
    /// The OIDC relying party.
    pub oidc: Oidc,
    /// The upstream API client, when `BFF_UPSTREAM_URL` is set.
    pub upstream: Option<Upstream>,
    /// The clock every expiry decision reads, the document cache's included.
    pub clock: Arc<Clock>,
}

impl App {
    /// Builds the context; nothing is fetched from the network yet. Tokens written to
    /// `store` are sealed with `BFF_TOKEN_KEYS`, or with a key of this process's own.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<Self, AppError> {
        let sealer = match &config.token_keys {
            Some(keys) => Sealer::from_config(keys.secret()).map_err(|e| ConfigError::Invalid {
                name: "BFF_TOKEN_KEYS",
                reason: e.to_string(),
            })?,
            None => {
                tracing::warn!("BFF_TOKEN_KEYS is not set: tokens are sealed with a key of this process only");
                Sealer::ephemeral()
            }
        };
        let store: Arc<dyn Store> = Arc::new(SealedStore::new(store, sealer));
        let clock = Arc::new(Clock::default());
        let oidc = Oidc::new(&config)?.with_document_cache(store.clone(), clock.clone());
        let upstream = match &config.upstream_url {
            Some(base) => Some(Upstream::new(base.clone(), config.upstream_timeout)?),
            None => None,
        };
        Ok(Self {
            cookies: CookieNames::new(config.is_loopback_dev()),
            config,
            store,
            oidc,
            upstream,
            clock,
        })
    }
}

/// Routes a request to its handler by path, as CloudFront does in AWS: the one entry
/// point of `bff-local` and of the integration tests. Writes the access-log line.
pub async fn route(app: &App, req: Request) -> Response<Body> {
    let route = access_log::route_name(req.uri().path());
    let started = access_log::Started::new(&req, route);
    let response = match route {
        "login" => handlers::login::handle(app, req).await,
        "callback" => handlers::callback::handle(app, req).await,
        "backchannel_logout" => handlers::backchannel::handle(app, req).await,
        "me" | "logout" => handlers::session::handle(app, req).await,
        "api" => handlers::proxy::handle(app, req).await,
        _ => ApiError::not_found().to_json(),
    };
    started.finish(&response);
    response
}
