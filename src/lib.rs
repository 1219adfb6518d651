//! CaseGraph: the GraphQL federation gateway behind the UN database of cases of killing of, and
//! violence against, UN peacekeepers (Security Council resolution 2589 (2021)).
//!
//! The binary, the integration tests and portals that embed CaseGraph all start it the same way:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (config, _) = casegraph::config::load_default_or(None)?;
//! let gateway = casegraph::Gateway::builder(config).build().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! gateway.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod auth;
pub mod config;
pub mod connectors;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod schema;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use config::Config;
use store::Store;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store could not be opened or migrated.
    #[error("opening the case store failed: {0}")]
    Store(#[from] store::StoreError),
    /// The first-start import of the bundled data failed.
    #[error("importing the bundled UN data failed: {0}")]
    Import(#[from] import::ImportError),
    /// Authentication could not be set up.
    #[error("setting up authentication failed: {0}")]
    Auth(#[from] auth::AuthSetupError),
    /// A connector file is invalid or a connector could not be built.
    #[error("loading the host-state connectors failed:\n{0}")]
    Connectors(#[from] connectors::ConnectorSetupError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    router: Router,
    store: Arc<dyn Store>,
    authenticator: auth::Authenticator,
    connectors: connectors::Connectors,
    config: Config,
}

/// Builds a [`Gateway`] from configuration.
pub struct GatewayBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
}

impl Gateway {
    /// Starts building a gateway.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder { config, store: None }
    }

    /// The axum router (GraphQL at `/graphql`, health, metrics, GraphiQL). Portals can nest it.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The case store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The host-state connectors.
    pub fn connectors(&self) -> &connectors::Connectors {
        &self.connectors
    }

    /// The token verifier (and the development issuer, when enabled).
    pub fn authenticator(&self) -> &auth::Authenticator {
        &self.authenticator
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most
    /// `server.shutdown_grace_secs`.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("Shutting down: no new connections, finishing in-flight requests");
            let _ = tx.send(());
        };
        let server = axum::serve(listener, self.router).with_graceful_shutdown(signal);
        let drain_deadline = async move {
            if rx.await.is_ok() {
                tokio::time::sleep(grace).await;
                tracing::warn!(grace_secs = grace.as_secs(), "Grace period over: dropping remaining requests");
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            res = server => res,
            () = drain_deadline => Ok(()),
        }
    }
}

impl GatewayBuilder {
    /// Uses an already opened store instead of the one named in the configuration.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Opens the store (running migrations), imports the bundled UN data into an empty store
    /// when configured to, sets up authentication and builds the router.
    pub async fn build(self) -> Result<Gateway, GatewayError> {
        let config = self.config;
        let store = match self.store {
            Some(s) => s,
            None => store::connect(&config.store.url, config.store.max_connections).await?,
        };
        if config.store.import_bundled_data_when_empty && store.count_cases(&Default::default()).await? == 0 {
            tracing::info!(backend = store.backend(), "The case store is empty: importing the bundled UN datasets");
            let (missions, fatalities) = import::import_bundled(store.as_ref(), Default::default()).await?;
            tracing::info!(
                missions = missions.records,
                cases = fatalities.records,
                victims = fatalities.victims,
                "Imported the bundled UN datasets"
            );
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let authenticator = auth::Authenticator::new(&config.auth, http).await?;
        let connectors = load_connectors(&config.connectors.dir).await?;
        let schema = schema::build(
            Arc::clone(&store),
            connectors.clone(),
            schema::SchemaOptions { introspection: config.server.introspection, limits: config.limits.clone() },
        );
        let state = http::AppState {
            schema,
            auth: authenticator.clone(),
            store: Arc::clone(&store),
            metrics: Arc::new(http::Metrics::default()),
            connectors: connectors.clone(),
            graphiql: config.server.graphiql,
        };
        let router = http::router(state, config.server.body_limit_bytes);
        Ok(Gateway { router, store, authenticator, connectors, config })
    }
}

/// Loads the connectors of `dir`; an empty setting means none, a missing folder is skipped
/// with a warning, an invalid file stops the start.
async fn load_connectors(dir: &str) -> Result<connectors::Connectors, GatewayError> {
    if dir.trim().is_empty() {
        return Ok(connectors::Connectors::none());
    }
    let path = std::path::Path::new(dir);
    if !path.is_dir() {
        tracing::warn!(dir, "No connectors folder: national proceedings are off");
        return Ok(connectors::Connectors::none());
    }
    Ok(connectors::load_and_build(path).await?)
}
