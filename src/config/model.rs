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
    /// Per-principal request rate limits (token buckets), by role.
    pub rate_limits: RateLimitsConfig,
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
    /// Most open client connections. A connection over the limit is closed as soon as it is
    /// accepted (and counted in `/metrics`), so the ones being served keep their resources.
    pub max_connections: usize,
    /// Milliseconds a client has to send a request's headers, and that an idle kept-alive
    /// connection stays open; then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body once its headers arrived;
    /// then the request gets 408 REQUEST_TIMEOUT.
    pub body_read_timeout_ms: u64,
    /// Most GraphQL requests executed at once (health probes and metrics are not counted).
    /// Beyond it, a request waits in a short queue, or is shed with 503 OVERLOADED.
    pub max_in_flight: usize,
    /// Most GraphQL requests waiting for a free slot; more are shed at once with 503.
    pub max_queued: usize,
    /// Milliseconds a queued request waits for a free slot before it is shed with 503.
    pub queue_timeout_ms: u64,
    /// Seconds sent in `Retry-After` with a 503 OVERLOADED.
    pub retry_after_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4000".into(),
            graphiql: false,
            introspection: false,
            body_limit_bytes: 256 * 1024,
            shutdown_grace_secs: 10,
            max_connections: 4_096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            max_in_flight: 64,
            max_queued: 128,
            queue_timeout_ms: 1_000,
            retry_after_secs: 1,
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
    /// Milliseconds allowed to open one connection to the store. At start, a store that
    /// cannot be reached in time stops the gateway with the cause.
    pub connect_timeout_ms: u64,
    /// Milliseconds a request waits for a pooled connection (opening one included) before it
    /// fails with STORE_UNAVAILABLE; `/health/ready` uses the same bound.
    pub acquire_timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/casegraph.db".into(),
            max_connections: 8,
            import_bundled_data_when_empty: true,
            connect_timeout_ms: 500,
            acquire_timeout_ms: 500,
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
    /// Fewest seconds between two fetches of the key set, whatever causes them (a token naming
    /// an unknown key id, or a failed fetch being retried).
    #[serde(default = "default_jwks_min_refetch")]
    pub jwks_min_refetch_secs: u64,
    /// Milliseconds one fetch of the key set may take. Fetches run in the background: requests
    /// are served with the last good keys meanwhile.
    #[serde(default = "default_jwks_fetch_timeout")]
    pub jwks_fetch_timeout_ms: u64,
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
fn default_jwks_fetch_timeout() -> u64 {
    5_000
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

/// Limits applied to every GraphQL operation. Figures about the operation (depth, fields,
/// aliases, root fields, cost) are counted over its *expanded* document, every fragment spread
/// replaced by the fragment, before anything is validated or executed; an operation over a
/// limit is refused with OPERATION_TOO_COMPLEX and the figure. Inputs over a limit are refused
/// with INPUT_TOO_LARGE. Limits can be raised or lowered, never turned off.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest accepted selection nesting (fields within fields, through fragments).
    pub max_depth: usize,
    /// Highest accepted estimated cost: each field counts 1; the fields under a field with a
    /// `first` argument count `first` times (at most `max_page_size`); those under any other
    /// list of objects count `assumed_list_size` times.
    pub max_complexity: usize,
    /// Most aliases accepted in one operation.
    pub max_aliases: usize,
    /// Most tokens (names, values, punctuation) in one document, counted before it is parsed:
    /// a document of a few hundred kilobytes is refused without the parser's work.
    pub max_tokens: usize,
    /// Most fields in one operation once its fragments are expanded.
    pub max_fields: usize,
    /// Most fields selected at the root of one operation (each is a query of its own).
    pub max_root_fields: usize,
    /// How many items the cost estimate assumes for a list that has no `first` argument
    /// (victims of a case, defendants of a proceeding…).
    pub assumed_list_size: usize,
    /// Largest page a list field returns (`first`).
    pub max_page_size: u32,
    /// Most items in one list value (an argument, or a list inside a variable). Filter lists
    /// are deduplicated after this check.
    pub max_list_items: usize,
    /// Longest string value accepted in an argument or a variable, in characters.
    pub max_string_chars: usize,
    /// Largest accepted `variables` object, in bytes of JSON.
    pub max_variables_bytes: usize,
    /// Milliseconds one GraphQL request may run; then its work is cancelled and it fails with
    /// OPERATION_TIMEOUT. Work is cancelled too when the client goes away.
    pub operation_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 50_000,
            max_aliases: 64,
            max_tokens: 10_000,
            max_fields: 1_000,
            max_root_fields: 64,
            assumed_list_size: 3,
            max_page_size: 500,
            max_list_items: 500,
            max_string_chars: 20_000,
            max_variables_bytes: 64 * 1024,
            operation_timeout_ms: 30_000,
        }
    }
}

/// Per-principal request limits. Each principal (token issuer and subject) has a token bucket:
/// it holds at most `burst` requests and refills at `requests_per_minute`; and it may have at
/// most `max_in_flight` requests running at once. A request over either gets 429 RATE_LIMITED
/// with `Retry-After`, before it takes a slot of the gateway's concurrency limit, so that one
/// principal's burst cannot fill the slots everyone shares. A principal with several roles gets
/// the most generous of their limits.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// The limit of principals whose roles are not listed in `roles`.
    pub default: RateLimit,
    /// Limits by role (`un-case-officer`, `un-analyst`, `focal-point`,
    /// `member-state-analyst`, `auditor`, `admin`), e.g.
    /// `[rate_limits.roles.un-analyst]`.
    pub roles: std::collections::BTreeMap<String, RateLimit>,
    /// Most principals whose buckets are remembered; the least recently seen are forgotten
    /// first (a forgotten principal starts again with a full bucket).
    pub max_principals: u64,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            default: RateLimit::default(),
            roles: std::collections::BTreeMap::new(),
            max_principals: 100_000,
        }
    }
}

/// One token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests a principal may send per minute, on average.
    pub requests_per_minute: u32,
    /// Requests a principal may send at once after a quiet spell (the bucket's size).
    pub burst: u32,
    /// Requests of one principal running (or queued) at the same time.
    pub max_in_flight: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            burst: 60,
            max_in_flight: 8,
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
