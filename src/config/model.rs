//! Typed configuration of the gateway (`config/casegraph.toml`).
//!
//! Every struct denies unknown keys and documents each field: these doc comments become the JSON
//! Schema printed by `casegraph config-schema`, which is what operators see in their editor.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole gateway configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// The UN case store.
    pub store: StoreConfig,
    /// Authentication of callers (JWT bearer tokens).
    pub auth: AuthConfig,
    /// Limits applied to every GraphQL operation.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Host-state connectors.
    pub connectors: ConnectorsConfig,
    /// Who sees what: the sensitivity policy and the audit trail.
    pub access: AccessConfig,
    /// In-process host-state simulators for the demo (never in production).
    pub simulators: SimulatorsConfig,
}

/// In-process host-state simulators for the demo (never in production).
///
/// When enabled, the gateway starts, before it loads the connectors, a Mali REST API with its
/// own OAuth2 token endpoint and a DR Congo GraphQL API, both answering from the fixture files
/// under `fixtures_dir`, so that the demo connectors in `connectors/` have a national system
/// to talk to without any other process. They stop with the gateway.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct SimulatorsConfig {
    /// Start the simulators. Keep false in production.
    pub enabled: bool,
    /// Address and port of the simulated Mali REST API and its OAuth2 token endpoint, e.g.
    /// "127.0.0.1:4701" (port 0 picks a free port).
    pub mli_rest_listen: String,
    /// Address and port of the simulated DR Congo GraphQL API, e.g. "127.0.0.1:4702" (port 0
    /// picks a free port).
    pub cod_graphql_listen: String,
    /// Folder of the fixture data (`mli/dossiers.json`, `cod/dossiers.json`), relative to the
    /// working directory. A missing file falls back to the copy built into the binary.
    pub fixtures_dir: String,
}

impl Default for SimulatorsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mli_rest_listen: "127.0.0.1:4701".into(),
            cod_graphql_listen: "127.0.0.1:4702".into(),
            fixtures_dir: "connectors/fixtures".into(),
        }
    }
}

/// The sensitivity policy and the audit trail.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AccessConfig {
    /// The policy file (levels of every field, who may read each level). Empty: the policy
    /// bundled in the binary (a copy of `config/policy.toml`).
    pub policy_file: String,
    /// Secret keying the MAC of pagination cursors: 32 bytes or more, from `${env.X}`.
    /// Required with a PostgreSQL store (replicas sharing a store must accept each other's
    /// cursors). Unset with SQLite: a random key per process. Never logged nor serialized.
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub cursor_secret: Option<secrecy::SecretString>,
    /// Write the hash-chained audit log (reads of CASE_PARTIES fields and above, denials,
    /// writes). Only benchmarks turn it off.
    pub audit: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            policy_file: String::new(),
            cursor_secret: None,
            audit: true,
        }
    }
}

/// Where the host-state connector files are.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
#[derive(Default)]
pub struct ConnectorsConfig {
    /// Folder of connector files (`*.toml`), relative to the working directory. Empty: no
    /// connectors. A folder that does not exist is skipped with a warning.
    pub dir: String,
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on, e.g. "127.0.0.1:4000". `--listen` overrides it.
    pub listen: String,
    /// Serve the GraphiQL IDE at `/`.
    pub graphiql: bool,
    /// Answer introspection queries (`__schema`, `__type`). Turn off in production.
    pub introspection: bool,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Seconds given to in-flight requests to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4000".into(),
            graphiql: false,
            introspection: false,
            body_limit_bytes: 256 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

/// Where the UN case store lives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (embedded; the file and its folder are created on first start) or
    /// `postgres://user@host:port/db`. The environment variable `CASEGRAPH_STORE_URL` overrides it.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// On start, when the store holds no case, import the UN datasets bundled in the binary.
    pub import_bundled_data_when_empty: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/casegraph.db".into(),
            max_connections: 8,
            import_bundled_data_when_empty: true,
        }
    }
}

/// Authentication of callers. Every request needs `Authorization: Bearer <JWT>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AuthConfig {
    /// The audience (`aud`) every accepted token must name.
    pub audience: String,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Production identity provider: tokens signed by keys published at a JWKS URL.
    pub jwt: Option<JwtIssuerConfig>,
    /// Local development issuer, for the demo: `casegraph dev-token` mints its tokens.
    /// Never enable it in production.
    pub dev_issuer: DevIssuerConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            audience: "casegraph".into(),
            leeway_secs: 30,
            jwt: None,
            dev_issuer: DevIssuerConfig::default(),
        }
    }
}

/// An identity provider that publishes its signing keys as a JWKS document.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// The issuer (`iss`) every token from this provider carries, exactly.
    pub issuer: String,
    /// HTTPS URL of the provider's JSON Web Key Set.
    pub jwks_url: String,
    /// Accepted signature algorithms. Only RS256 and ES256 are supported.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Seconds a fetched key set is trusted before it is fetched again.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_refresh_secs: u64,
    /// Fewest seconds between two fetches caused by a token naming an unknown key id (rotation).
    #[serde(default = "default_jwks_min_refetch")]
    pub jwks_min_refetch_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_jwks_ttl() -> u64 {
    600
}
fn default_jwks_min_refetch() -> u64 {
    10
}

/// The local development issuer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DevIssuerConfig {
    /// Accept tokens minted by `casegraph dev-token`.
    pub enabled: bool,
    /// PEM file holding the issuer's ES256 private key; generated on first start if absent.
    pub key_file: String,
    /// Lifetime of minted tokens, in minutes.
    pub token_ttl_minutes: u64,
}

impl Default for DevIssuerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            key_file: "data/dev-issuer-key.pem".into(),
            token_ttl_minutes: 480,
        }
    }
}

/// Limits applied to every GraphQL operation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest accepted selection nesting.
    pub max_depth: usize,
    /// Highest accepted complexity (each field counts 1, lists count their page size).
    pub max_complexity: usize,
    /// Most aliases accepted in one operation.
    pub max_aliases: usize,
    /// Largest page a list field returns (`first`).
    pub max_page_size: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 50_000,
            max_aliases: 64,
            max_page_size: 500,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct LogConfig {
    /// "text" for people, "json" for log collectors.
    pub format: LogFormat,
    /// Default filter, in `tracing` syntax ("info", "casegraph=debug,info"). `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
