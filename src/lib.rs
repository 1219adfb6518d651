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
pub mod simulator;
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
    /// The access policy is invalid or does not classify every field.
    #[error("loading the access policy failed: {0}")]
    Policy(#[from] access::PolicyError),
    /// The audit log could not be opened.
    #[error("opening the audit log failed: {0}")]
    Audit(String),
    /// A connector file is invalid or a connector could not be built.
    #[error("loading the host-state connectors failed:\n{0}")]
    Connectors(#[from] connectors::ConnectorSetupError),
    /// The configuration cannot run as given.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The demo host-state simulators could not start (the message names the address).
    #[error(transparent)]
    Simulators(#[from] simulator::SimulatorError),
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    router: Router,
    store: Arc<dyn Store>,
    authenticator: auth::Authenticator,
    connectors: connectors::Connectors,
    config: Config,
    /// The demo host-state simulators, when `[simulators] enabled`: they live as long as the
    /// gateway (a portal that keeps only [`Gateway::router`] stops them).
    simulators: Option<simulator::Simulators>,
    /// The audit writer's sink (disabled when `[access] audit = false`).
    audit: access::audit::AuditSink,
    /// Request and connection counters, shared by the router and the connection layer.
    metrics: Arc<http::Metrics>,
}

/// Builds a [`Gateway`] from configuration.
pub struct GatewayBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
}

impl Gateway {
    /// Starts building a gateway.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            store: None,
        }
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

    /// The demo host-state simulators, when `[simulators] enabled` started them.
    pub fn simulators(&self) -> Option<&simulator::Simulators> {
        self.simulators.as_ref()
    }

    /// Where requests hand their audit events; `flush` waits until they are stored.
    pub fn audit(&self) -> &access::audit::AuditSink {
        &self.audit
    }

    /// The token verifier (and the development issuer, when enabled).
    pub fn authenticator(&self) -> &auth::Authenticator {
        &self.authenticator
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most
    /// `server.shutdown_grace_secs`; then waits (as long again, at least 5 s) until the audit
    /// writer has stored every event handed to it. Connections are bounded by
    /// `server.max_connections` and `server.header_read_timeout_ms` (see [`http::server`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("Shutting down: no new connections, finishing in-flight requests");
            let _ = tx.send(());
        };
        // The simulators (if any) stay alive until serving ends, then stop with `self`.
        let limits = http::server::ConnectionLimits {
            max_connections: self.config.server.max_connections,
            header_read_timeout: Duration::from_millis(self.config.server.header_read_timeout_ms),
        };
        let server = http::server::serve(
            listener,
            self.router.clone(),
            limits,
            Arc::clone(&self.metrics),
            signal,
        );
        let drain_deadline = async move {
            if rx.await.is_ok() {
                tokio::time::sleep(grace).await;
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "Grace period over: dropping remaining requests"
                );
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            res = server => res,
            () = drain_deadline => Ok(()),
        };
        let audit_wait = grace.max(Duration::from_secs(5));
        if tokio::time::timeout(audit_wait, self.audit.flush())
            .await
            .is_err()
        {
            tracing::error!(
                wait_secs = audit_wait.as_secs(),
                "The audit writer did not catch up before shutdown: recent audit events are lost"
            );
        }
        served
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
        if let Some(problem) = serving_problem(&config) {
            return Err(GatewayError::Config(problem));
        }
        let store = match self.store {
            Some(s) => s,
            None => {
                store::connect_with(&config.store.url, store::ConnectOptions::of(&config.store))
                    .await?
            }
        };
        if config.store.import_bundled_data_when_empty
            && store.count_cases(&store::CaseFilter::all()).await? == 0
        {
            tracing::info!(
                backend = store.backend(),
                "The case store is empty: importing the bundled UN datasets"
            );
            let (missions, fatalities) =
                import::import_bundled(store.as_ref(), Default::default()).await?;
            tracing::info!(
                missions = missions.records,
                cases = fatalities.records,
                victims = fatalities.victims,
                "Imported the bundled UN datasets"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let authenticator = auth::Authenticator::new(&config.auth, http).await?;
        // The simulators must listen before the demo connectors are built against them.
        let simulators = if config.simulators.enabled {
            Some(simulator::start(&config.simulators).await?)
        } else {
            None
        };
        // The policy says which source markings are SEALED; the connectors drop that content
        // before their cache, so the policy is loaded first.
        let policy = load_policy(&config.access)?;
        let connectors = load_connectors(&config.connectors.dir, sealing_of(&policy)).await?;
        let access = schema::access_for(policy)?;
        let plans = access.plan_stats();
        let audit = if config.access.audit {
            access::audit::start(Arc::clone(&store)).await?
        } else {
            access::audit::AuditSink::disabled()
        };
        let schema = schema::build(
            Arc::clone(&store),
            connectors.clone(),
            schema::SchemaOptions {
                introspection: config.server.introspection,
                limits: config.limits.clone(),
                access,
                audit: audit.clone(),
                cursor_key: cursor_key(config.access.cursor_secret.as_ref()),
            },
        );
        let metrics = Arc::new(http::Metrics::default());
        let server = &config.server;
        let state = http::AppState {
            schema,
            auth: authenticator.clone(),
            store: Arc::clone(&store),
            metrics: Arc::clone(&metrics),
            plans,
            connectors: connectors.clone(),
            graphiql: server.graphiql,
            admission: Arc::new(http::admission::Admission::new(
                server.max_in_flight,
                server.max_queued,
                Duration::from_millis(server.queue_timeout_ms),
            )),
            rate: Arc::new(http::rate::RateLimiter::new(&config.rate_limits)),
            limits: http::RequestLimits {
                body_limit: server.body_limit_bytes,
                body_read_timeout: Duration::from_millis(server.body_read_timeout_ms),
                operation_timeout: Duration::from_millis(config.limits.operation_timeout_ms),
                retry_after: Duration::from_secs(server.retry_after_secs),
                max_in_flight: server.max_in_flight,
            },
        };
        let router = http::router(state);
        Ok(Gateway {
            router,
            store,
            authenticator,
            connectors,
            config,
            simulators,
            audit,
            metrics,
        })
    }
}

/// Loads the sensitivity policy (the file named in `[access]`, else the bundled one) and
/// checks it classifies every field, argument and mutation of the schema. (The gateway then
/// builds its access layer with `schema::access_for`, which also refuses a policy under which
/// a non-null field could be denied.)
pub fn load_policy(config: &config::AccessConfig) -> Result<access::Policy, access::PolicyError> {
    let fields = schema::shape();
    if config.policy_file.trim().is_empty() {
        return access::Policy::load(
            access::EMBEDDED_POLICY,
            "config/policy.toml (embedded)",
            &fields,
        );
    }
    let text = std::fs::read_to_string(&config.policy_file).map_err(|e| {
        access::PolicyError::Invalid(config::ConfigErrors::single(
            config::ConfigError::whole_file(&config.policy_file, format!("cannot read: {e}")),
        ))
    })?;
    access::Policy::load(&text, &config.policy_file, &fields)
}

/// Why the configuration cannot serve, beyond what loading it checks: a PostgreSQL store is
/// shared by replicas, which must share the key of their cursors (`access.cursor_secret`).
/// Commands that serve nothing (imports, audit verification) do not need it.
pub fn serving_problem(config: &config::Config) -> Option<String> {
    (store_is_shared(config) && config.access.cursor_secret.is_none()).then(|| {
        "access.cursor_secret is required with a PostgreSQL store: gateway replicas sharing a store must share the key of their cursors (32 bytes or more, e.g. \"${env.CASEGRAPH_CURSOR_SECRET}\")".to_string()
    })
}

fn store_is_shared(config: &config::Config) -> bool {
    let url = config.store.url.as_str();
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The connectors' rule for SEALED content, from the policy: a source marking is SEALED when the
/// policy's `[markings]` table gives it that level (ignoring case; an unknown marking counts as
/// RESTRICTED, so it is kept for the schema layer, which then restricts it).
pub fn sealing_of(policy: &access::Policy) -> connectors::Sealing {
    let policy = policy.clone();
    connectors::Sealing::new(move |marking| policy.marking_level(marking) == access::Level::Sealed)
}

/// The cursor MAC key: derived from the configured secret, or random for this process.
fn cursor_key(secret: Option<&secrecy::SecretString>) -> [u8; 32] {
    use secrecy::ExposeSecret;
    use sha2::Digest;
    match secret {
        Some(s) => sha2::Sha256::digest(s.expose_secret().as_bytes()).into(),
        None => {
            let mut key = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
            key
        }
    }
}

/// Loads the connectors of `dir`; an empty setting means none, a missing folder is skipped
/// with a warning, an invalid file stops the start.
async fn load_connectors(
    dir: &str,
    sealing: connectors::Sealing,
) -> Result<connectors::Connectors, GatewayError> {
    if dir.trim().is_empty() {
        return Ok(connectors::Connectors::none());
    }
    let path = std::path::Path::new(dir);
    if !path.is_dir() {
        tracing::warn!(dir, "No connectors folder: national proceedings are off");
        return Ok(connectors::Connectors::none());
    }
    Ok(connectors::load_and_build(path, sealing).await?)
}
