//! Host-state connectors: each host state's case-management system stays where it is, and
//! CaseGraph joins its prosecution status into the UN's case records at query time.
//!
//! One [`Connector`] trait, one module per kind (`rest`, `graphql`, `file`, `protocol`). Each
//! connector file under `connectors/` is loaded and validated like the gateway configuration
//! (every error with file, line and key), built into a connector, and wrapped in a
//! [`ConnectorRuntime`] that adds caching, batching, timeouts, retries, the circuit breaker and
//! health figures. SEALED content (per the policy's markings, passed in as a [`Sealing`]) is
//! dropped between mapping and the cache.

pub mod breaker;
pub mod config;
pub mod error;
pub mod file;
pub mod graphql;
pub mod mapping;
pub mod model;
pub mod protocol;
pub mod rest;
pub mod runtime;
pub mod runtime_config;
pub mod sealing;
pub mod stack;
pub mod upstream;

pub use config::{ConnectorFile, ConnectorKind, MatchBy};
pub use error::{ConnectorError, ConnectorErrorKind};
pub use runtime::{ConnectorRuntime, HealthSnapshot, HealthState, Lookup, Served};
pub use sealing::Sealing;

use crate::config::ConfigErrors;
use async_trait::async_trait;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What one upstream call brought back.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The raw response (for `casegraph connector test`); for kinds that make one call per key,
    /// an array of the responses.
    pub raw: Value,
    /// The records in it, each still in the national shape; the runtime finds each record's
    /// key with the mapping.
    pub records: Vec<Value>,
    /// Why keys absent from `records` cannot be said to be unknown to the system (a file of
    /// the drop folder that cannot be read might hold them); `None` when the answer is
    /// complete, so that an absent key is a key the system does not know.
    pub incomplete: Option<ConnectorError>,
}

/// One host-state system.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Fetches the records answering `keys` (the runtime has already cut the keys into chunks
    /// of `runtime.batch_size`): one upstream call when the system has a batch endpoint.
    /// Keys the system does not know are simply absent from the records.
    async fn fetch(&self, keys: &[String]) -> Result<Fetched, ConnectorError>;

    /// Like `fetch`, asking only for the parts of the records in `fields` (and always the key
    /// and the marking). Kinds whose systems answer whole records ignore `fields`; they say so
    /// with [`Connector::selects_fields`].
    async fn fetch_fields(
        &self,
        keys: &[String],
        fields: model::FieldMask,
    ) -> Result<Fetched, ConnectorError> {
        let _ = fields;
        self.fetch(keys).await
    }

    /// Whether `fetch_fields` asks the system for the selected fields only.
    fn selects_fields(&self) -> bool {
        false
    }

    /// Whether a failed `fetch` may be retried (it has no side effect upstream).
    fn idempotent(&self) -> bool {
        true
    }

    /// Checks that the system answers (its health endpoint, or a cheap call).
    async fn probe(&self) -> Result<(), ConnectorError>;
}

/// A loaded, validated and built connector.
pub struct ConnectorHandle {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: ConnectorKind,
    /// Host states it covers.
    pub host_states: Vec<String>,
    /// How cases are matched.
    pub match_by: MatchBy,
    /// The protected connector.
    pub runtime: ConnectorRuntime,
}

/// All connectors of a gateway.
#[derive(Clone, Default)]
pub struct Connectors {
    list: Arc<Vec<Arc<ConnectorHandle>>>,
}

impl Connectors {
    /// No connector.
    pub fn none() -> Self {
        Self::default()
    }

    /// From built handles.
    pub fn new(list: Vec<Arc<ConnectorHandle>>) -> Self {
        Self {
            list: Arc::new(list),
        }
    }

    /// Every connector.
    pub fn all(&self) -> &[Arc<ConnectorHandle>] {
        &self.list
    }

    /// A connector by id.
    pub fn get(&self, id: &str) -> Option<&Arc<ConnectorHandle>> {
        self.list.iter().find(|c| c.id == id)
    }

    /// Indices of the connectors covering a host state.
    pub fn for_host_state<'a>(
        &'a self,
        host_state: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Arc<ConnectorHandle>)> + 'a {
        self.list
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.host_states.iter().any(|h| h == host_state))
    }

    /// A connector by index.
    pub fn at(&self, index: usize) -> Option<&Arc<ConnectorHandle>> {
        self.list.get(index)
    }
}

/// Why connectors could not be loaded or built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorSetupError {
    /// The folder could not be read.
    #[error("cannot read the connectors folder {path}: {source}")]
    Folder {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// One or more files are invalid (every error of every file).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigErrors>),
    /// Two files claim the same id.
    #[error("connector id `{id}` is used by both {first} and {second}")]
    DuplicateId {
        /// Id.
        id: String,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// A connector could not be built (a secret file is unreadable, a certificate is invalid…).
    #[error("connector `{id}` ({file}): {message}")]
    Build {
        /// Id.
        id: String,
        /// File.
        file: String,
        /// What failed.
        message: String,
    },
}

/// A connector file with its id and path.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// Effective id.
    pub id: String,
    /// Path.
    pub path: PathBuf,
    /// Content.
    pub file: ConnectorFile,
}

/// Loads and validates every `*.toml` in `dir` (sorted by name), collecting every error of
/// every file before failing.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedFile>, ConnectorSetupError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| ConnectorSetupError::Folder {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    let mut errors = Vec::new();
    let mut loaded: Vec<LoadedFile> = Vec::new();
    for path in paths {
        let label = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigErrors::single(
                    crate::config::ConfigError::whole_file(&label, format!("cannot read: {e}")),
                ));
                continue;
            }
        };
        match crate::config::load_toml::<ConnectorFile>(&text, &label) {
            Ok(file) => {
                let id = file.id.clone().unwrap_or_else(|| {
                    path.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                if !config::valid_id(&id) {
                    errors.push(ConfigErrors::single(crate::config::ConfigError::whole_file(
                        &label,
                        format!("the file name gives the id `{id}`: set `id` to 2 to 64 lowercase letters, digits or hyphens"),
                    )));
                    continue;
                }
                if let Some(first) = loaded.iter().find(|l| l.id == id) {
                    return Err(ConnectorSetupError::DuplicateId {
                        id,
                        first: first.path.display().to_string(),
                        second: label,
                    });
                }
                loaded.push(LoadedFile { id, path, file });
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConnectorSetupError::Invalid(errors));
    }
    Ok(loaded)
}

/// Builds one connector from its file; `sealing` says which source markings are SEALED.
pub async fn build(
    loaded: &LoadedFile,
    sealing: Sealing,
) -> Result<ConnectorHandle, ConnectorSetupError> {
    let f = &loaded.file;
    let fail = |message: String| ConnectorSetupError::Build {
        id: loaded.id.clone(),
        file: loaded.path.display().to_string(),
        message,
    };
    let base_dir = loaded.path.parent().unwrap_or_else(|| Path::new("."));
    let (inner, mapping): (Arc<dyn Connector>, mapping::Mapping) = match f.kind {
        ConnectorKind::Protocol => {
            let p = f
                .protocol
                .as_ref()
                .ok_or_else(|| fail("missing [protocol]".into()))?;
            let upstream = upstream::Upstream::new(&loaded.id, &f.auth, f.tls.as_ref(), &f.runtime)
                .await
                .map_err(|e| fail(e.to_string()))?;
            (
                Arc::new(protocol::ProtocolConnector::new(
                    p.clone(),
                    f.match_by,
                    upstream,
                )),
                protocol::canonical_mapping(),
            )
        }
        kind => {
            let mapping = mapping::Mapping::new(
                f.mapping
                    .clone()
                    .ok_or_else(|| fail("missing [mapping]".into()))?,
            );
            let inner: Arc<dyn Connector> = match kind {
                ConnectorKind::Rest => {
                    let r = f
                        .rest
                        .as_ref()
                        .ok_or_else(|| fail("missing [rest]".into()))?;
                    let upstream =
                        upstream::Upstream::new(&loaded.id, &f.auth, f.tls.as_ref(), &f.runtime)
                            .await
                            .map_err(|e| fail(e.to_string()))?;
                    Arc::new(
                        rest::RestConnector::new(r.clone(), mapping.clone(), upstream)
                            .with_max_concurrency(f.runtime.max_concurrency),
                    )
                }
                ConnectorKind::Graphql => {
                    let g = f
                        .graphql
                        .as_ref()
                        .ok_or_else(|| fail("missing [graphql]".into()))?;
                    let upstream =
                        upstream::Upstream::new(&loaded.id, &f.auth, f.tls.as_ref(), &f.runtime)
                            .await
                            .map_err(|e| fail(e.to_string()))?;
                    Arc::new(graphql::GraphqlConnector::new(
                        g.clone(),
                        mapping.clone(),
                        upstream,
                    ))
                }
                ConnectorKind::File => {
                    let c = f
                        .file
                        .as_ref()
                        .ok_or_else(|| fail("missing [file]".into()))?;
                    Arc::new(
                        file::FileConnector::new(&loaded.id, c.clone(), mapping.clone(), base_dir)
                            .map_err(fail)?,
                    )
                }
                ConnectorKind::Protocol => unreachable!("handled above"),
            };
            (inner, mapping)
        }
    };
    Ok(ConnectorHandle {
        id: loaded.id.clone(),
        name: f.name.clone(),
        kind: f.kind,
        host_states: f
            .host_states
            .iter()
            .map(|h| h.trim().to_ascii_uppercase())
            .collect(),
        match_by: f.match_by,
        runtime: ConnectorRuntime::new(&loaded.id, inner, mapping, f.runtime.clone(), sealing),
    })
}

/// Loads, validates and builds every enabled connector of a folder; `sealing` says which
/// source markings are SEALED.
pub async fn load_and_build(
    dir: &Path,
    sealing: Sealing,
) -> Result<Connectors, ConnectorSetupError> {
    let mut handles = Vec::new();
    for loaded in load_dir(dir)? {
        if !loaded.file.enabled {
            tracing::info!(connector = %loaded.id, "Connector disabled in its file: not loaded");
            continue;
        }
        let handle = build(&loaded, sealing.clone()).await?;
        tracing::info!(connector = %handle.id, kind = handle.kind.as_str(), host_states = ?handle.host_states, "Connector ready");
        handles.push(Arc::new(handle));
    }
    Ok(Connectors::new(handles))
}
