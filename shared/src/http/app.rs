//! The per-process context the edge borrows, built once per cold start (or once by
//! `bff-local`): the configuration, the cookie names, the store with tokens sealed, the
//! OIDC relying party with its discovery and JWKS caches, the upstream client and the
//! clock.

use std::collections::HashMap;
use std::sync::Arc;

use super::cookies::CookieNames;
use super::policy::EdgeRequest;
use crate::domain::clock::Clock;
use crate::domain::session::SessionRecord;
use crate::oidc::{Oidc, OidcError};
use crate::platform::clock::SystemClock;
use crate::platform::config::{Config, ConfigError};
use crate::platform::dpop::DpopKeyCache;
use crate::platform::metrics::Registry;
use crate::platform::seal::Sealer;
use crate::service::Deps;
use crate::service::client_token::ClientTokens;
use crate::service::current_session::current_session;
use crate::store::sealed::SealedStore;
use crate::store::{Store, StoreError, StoreKey};
use crate::upstream::{Upstream, UpstreamError};

/// Why the context could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Configuration is missing or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client towards the provider could not be built.
    #[error("identity provider client: {0}")]
    Oidc(#[from] OidcError),
    /// The HTTP client towards the upstream could not be built.
    #[error("upstream client: {0}")]
    Upstream(#[from] UpstreamError),
}

/// Everything a request needs, built once per process.
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// Cookie names and attributes for this deployment.
    pub cookies: CookieNames,
    /// Transactions and sessions, tokens sealed.
    pub store: Arc<dyn Store>,
    /// The OIDC relying party.
    pub oidc: Oidc,
    /// One upstream client per API route, by the route's path.
    pub upstreams: HashMap<String, Upstream>,
    /// The clock every expiry decision reads, the document cache's included.
    pub clock: Arc<dyn Clock>,
    /// The BFF's own client-credentials tokens remembered by this process.
    pub client_tokens: ClientTokens,
    /// The parsed DPoP keys of recent sessions, so a warm call does not parse its key.
    pub dpop_keys: DpopKeyCache,
    /// This process's counters (`bff-local`'s `/metrics`).
    pub metrics: Arc<Registry>,
    /// Whether each request also writes its CloudWatch EMF line to standard output (the
    /// Lambda functions do when `BFF_METRICS` is on).
    pub emf_lines: bool,
}

impl App {
    /// Builds the context on the wall clock; nothing is fetched from the network yet.
    /// Tokens written to `store` are sealed with `BFF_TOKEN_KEYS`, or with a key of this
    /// process's own.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<Self, StartupError> {
        Self::with_clock(config, store, Arc::new(SystemClock))
    }

    /// Builds the context on `clock` (tests move it to observe expiry).
    pub fn with_clock(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let sealer = match &config.token_keys {
            Some(keys) => keys.clone(),
            None => {
                tracing::warn!("BFF_TOKEN_KEYS is not set: tokens are sealed with a key of this process only");
                Arc::new(Sealer::ephemeral())
            }
        };
        crate::platform::logging::key_user_hash(&sealer);
        let store: Arc<dyn Store> = Arc::new(SealedStore::new(store, sealer));
        let oidc = Oidc::new(&config)?.with_document_cache(store.clone(), clock.clone());
        let upstreams = config
            .routes
            .iter()
            .map(|route| {
                let timeout = route.timeout.unwrap_or(config.upstream_timeout);
                Ok((route.path.clone(), Upstream::new(route.upstream.clone(), timeout)?))
            })
            .collect::<Result<_, UpstreamError>>()?;
        Ok(Self {
            cookies: CookieNames::new(config.is_loopback_dev()),
            config,
            store,
            oidc,
            upstreams,
            clock,
            client_tokens: ClientTokens::new(),
            dpop_keys: DpopKeyCache::default(),
            metrics: Arc::new(Registry::new()),
            emf_lines: false,
        })
    }

    /// What the services borrow for one request.
    pub fn deps(&self) -> Deps<'_> {
        Deps {
            config: &self.config,
            store: self.store.as_ref(),
            oidc: &self.oidc,
            clock: self.clock.as_ref(),
            client_tokens: &self.client_tokens,
            dpop_keys: &self.dpop_keys,
        }
    }

    /// The live session of the request's session cookie, if any (see
    /// [`current_session`]).
    pub async fn current_session(&self, edge: &EdgeRequest) -> Result<Option<(StoreKey, SessionRecord)>, StoreError> {
        current_session(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.config.session_idle_secs,
            edge.session_id(),
        )
        .await
    }
}
