//! In-process host-state simulators, for the demo only: a Mali REST API with its own OAuth2
//! client-credentials token endpoint ([`mli`]) and a DR Congo GraphQL API ([`cod`]), both
//! answering from the fixture files under `connectors/fixtures/`.
//!
//! They exist so that `cargo run -- serve` shows national proceedings joined into real UN cases
//! with no other process running, through the same connector code (HTTP, OAuth2, batching,
//! mapping) that talks to a real national system. The gateway starts them when
//! `[simulators] enabled = true` ([`crate::config::SimulatorsConfig`]), before it loads the
//! connectors, and they stop when the [`crate::Gateway`] is dropped. Tests start them on port 0
//! with [`start`].
//!
//! The simulators accept only the demo credentials below, which are public: they protect
//! nothing and must never be reused for a real system.

pub mod cod;
pub mod mli;

use crate::config::SimulatorsConfig;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The OAuth2 client id the Mali simulator accepts (written in `connectors/mli-pole-judiciaire.toml`).
pub const MLI_DEMO_CLIENT_ID: &str = "casegraph-demo";
/// The OAuth2 client secret the Mali simulator accepts. Public, for the demo only.
pub const MLI_DEMO_CLIENT_SECRET: &str = "demo-secret-mli-not-for-production";
/// The API key the DR Congo simulator accepts in `X-API-Key`. Public, for the demo only.
pub const COD_DEMO_API_KEY: &str = "demo-key-cod-not-for-production";

/// Fixture copies built into the binary, served when the fixtures folder lacks the file (the
/// binary started outside the repository with the embedded demo configuration).
const MLI_EMBEDDED: &str = include_str!("../../connectors/fixtures/mli/dossiers.json");
const COD_EMBEDDED: &str = include_str!("../../connectors/fixtures/cod/dossiers.json");

/// Why the simulators could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The listen address could not be bound (in use, or not an address of this machine).
    #[error("the demo's {service} simulator cannot listen on {addr}: {cause} (change [simulators] {key} or stop what uses the port)")]
    Bind {
        /// Which simulator.
        service: &'static str,
        /// The configuration key naming the address.
        key: &'static str,
        /// The address.
        addr: String,
        /// Cause (kept out of `source()`: the message already says it).
        cause: std::io::Error,
    },
    /// A fixture file is unreadable or not the expected JSON.
    #[error("the demo's {service} simulator cannot use its fixtures {path}: {message}")]
    Fixtures {
        /// Which simulator.
        service: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Running simulators. Dropping this value stops them.
pub struct Simulators {
    mli_rest: SocketAddr,
    cod_graphql: SocketAddr,
    shutdown: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulators")
            .field("mli_rest", &self.mli_rest)
            .field("cod_graphql", &self.cod_graphql)
            .finish()
    }
}

impl Simulators {
    /// Where the Mali REST API (and its token endpoint) listens.
    pub fn mli_rest_addr(&self) -> SocketAddr {
        self.mli_rest
    }

    /// Where the DR Congo GraphQL API listens.
    pub fn cod_graphql_addr(&self) -> SocketAddr {
        self.cod_graphql
    }

    /// Stops both simulators and waits for them to finish.
    pub async fn stop(mut self) {
        for tx in self.shutdown.drain(..) {
            let _ = tx.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        for tx in self.shutdown.drain(..) {
            let _ = tx.send(());
        }
        // Open keep-alive connections would otherwise hold a graceful shutdown open.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds both simulators (so that a connector built right after can reach them), then serves
/// them on background tasks. A bind failure names the address and the configuration key.
pub async fn start(config: &SimulatorsConfig) -> Result<Simulators, SimulatorError> {
    let dir = Path::new(&config.fixtures_dir);
    let mli_records = read_fixture("Mali REST", &dir.join("mli/dossiers.json"), MLI_EMBEDDED)?;
    let cod_records = read_fixture(
        "DR Congo GraphQL",
        &dir.join("cod/dossiers.json"),
        COD_EMBEDDED,
    )?;
    let cod_records = cod::parse(cod_records).map_err(|message| SimulatorError::Fixtures {
        service: "DR Congo GraphQL",
        path: dir.join("cod/dossiers.json").display().to_string(),
        message,
    })?;

    let mli_listener = bind("Mali REST", "mli_rest_listen", &config.mli_rest_listen).await?;
    let cod_listener = bind(
        "DR Congo GraphQL",
        "cod_graphql_listen",
        &config.cod_graphql_listen,
    )
    .await?;
    let mli_addr = local_addr(
        &mli_listener,
        "Mali REST",
        "mli_rest_listen",
        &config.mli_rest_listen,
    )?;
    let cod_addr = local_addr(
        &cod_listener,
        "DR Congo GraphQL",
        "cod_graphql_listen",
        &config.cod_graphql_listen,
    )?;

    let mut shutdown = Vec::new();
    let mut tasks = Vec::new();
    for (listener, router, name) in [
        (
            mli_listener,
            mli::MliSimulator::new(mli_records).router(),
            "Mali REST",
        ),
        (cod_listener, cod::router(cod_records), "DR Congo GraphQL"),
    ] {
        let (tx, rx) = oneshot::channel::<()>();
        shutdown.push(tx);
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(simulator = name, %error, "Simulator stopped with an error");
            }
        }));
    }
    tracing::warn!(
        mli_rest = %mli_addr,
        cod_graphql = %cod_addr,
        "Demo host-state simulators started ([simulators] enabled = true): never enable them in production"
    );
    Ok(Simulators {
        mli_rest: mli_addr,
        cod_graphql: cod_addr,
        shutdown,
        tasks,
    })
}

async fn bind(
    service: &'static str,
    key: &'static str,
    addr: &str,
) -> Result<tokio::net::TcpListener, SimulatorError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|cause| SimulatorError::Bind {
            service,
            key,
            addr: addr.to_string(),
            cause,
        })
}

fn local_addr(
    l: &tokio::net::TcpListener,
    service: &'static str,
    key: &'static str,
    addr: &str,
) -> Result<SocketAddr, SimulatorError> {
    l.local_addr().map_err(|cause| SimulatorError::Bind {
        service,
        key,
        addr: addr.to_string(),
        cause,
    })
}

/// Reads a fixture file holding `{"dossiers": [...]}`, or the embedded copy when it is absent.
fn read_fixture(
    service: &'static str,
    path: &Path,
    embedded: &str,
) -> Result<Vec<Value>, SimulatorError> {
    let fail = |message: String| SimulatorError::Fixtures {
        service,
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(simulator = service, path = %path.display(), "No fixture file there: serving the copy built into the binary");
            embedded.to_string()
        }
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    match value.get("dossiers") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(fail("expected an object with a `dossiers` array".into())),
    }
}
