//! One connector file (`connectors/<id>.toml`), as host-state IT writes it.

use super::file::FileConfig;
use super::graphql::GraphqlConfig;
use super::mapping::MappingConfig;
use super::protocol::ProtocolConfig;
use super::rest::RestConfig;
use super::runtime_config::RuntimeConfig;
use super::upstream::{UpstreamAuthConfig, UpstreamTlsConfig};
use crate::config::{Validate, Validation};
use crate::domain::CountryCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of system a connector talks to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, async_graphql::Enum,
)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// An existing JSON API, described by request templates and a mapping (`[rest]`).
    Rest,
    /// A national GraphQL API: a query document and a mapping (`[graphql]`).
    Graphql,
    /// A folder of CSV or JSON files that the state drops in (`[file]`).
    File,
    /// A system implementing the CaseGraph connector protocol (`[protocol]`).
    Protocol,
}

impl ConnectorKind {
    /// The spelling in connector files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Graphql => "graphql",
            Self::File => "file",
            Self::Protocol => "protocol",
        }
    }
}

/// How a UN case is matched to a national file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, async_graphql::Enum,
)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// The national system stores the UN case reference (e.g. `MINUSMA-20210113`).
    UnReference,
    /// The UN recorded the national reference on the case (mutation `linkNationalReference`).
    NationalReference,
}

/// A connector file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ConnectorFile {
    /// Identifier used in responses, logs and `casegraph connector test ID` (lowercase letters,
    /// digits and hyphens). Defaults to the file name without `.toml`.
    #[serde(default)]
    pub id: Option<String>,
    /// Name shown to users, e.g. "Pôle judiciaire spécialisé (Mali)".
    pub name: String,
    /// The kind of system: "rest", "graphql", "file" or "protocol". Fill in the table of the
    /// same name.
    pub kind: ConnectorKind,
    /// Host states whose cases this system knows (ISO 3166-1 alpha-3, e.g. ["MLI"]).
    pub host_states: Vec<String>,
    /// How a UN case is found in the national system: "un_reference" or "national_reference".
    pub match_by: MatchBy,
    /// Set to false to keep the file but not use it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Timeouts, retries, batching, caching.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// How CaseGraph authenticates to the system.
    #[serde(default)]
    pub auth: UpstreamAuthConfig,
    /// Mutual TLS and private certificate authorities.
    #[serde(default)]
    pub tls: Option<UpstreamTlsConfig>,
    /// Where each field is in the system's records, and the national vocabulary tables
    /// (not used by kind "protocol", whose records are already canonical).
    #[serde(default)]
    pub mapping: Option<MappingConfig>,
    /// Settings of kind "rest".
    #[serde(default)]
    pub rest: Option<RestConfig>,
    /// Settings of kind "graphql".
    #[serde(default)]
    pub graphql: Option<GraphqlConfig>,
    /// Settings of kind "file".
    #[serde(default)]
    pub file: Option<FileConfig>,
    /// Settings of kind "protocol".
    #[serde(default)]
    pub protocol: Option<ProtocolConfig>,
}

fn yes() -> bool {
    true
}

/// Checks an identifier: lowercase letters, digits, hyphens; 2 to 64 characters.
pub fn valid_id(id: &str) -> bool {
    (2..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

impl Validate for ConnectorFile {
    fn validate(&self, v: &mut Validation) {
        if let Some(id) = &self.id {
            if !valid_id(id) {
                v.error(
                    "id",
                    "use 2 to 64 lowercase letters, digits or hyphens, starting with a letter",
                );
            }
        }
        if self.name.trim().is_empty() {
            v.error("name", "must not be empty");
        }
        if self.host_states.is_empty() {
            v.error(
                "host_states",
                "name at least one host state (ISO alpha-3, e.g. [\"MLI\"])",
            );
        }
        for h in &self.host_states {
            if let Err(e) = CountryCode::parse(h) {
                v.error("host_states", e.to_string());
            }
        }
        self.runtime.validate_into(v);
        self.auth.validate_into(v);
        if let Some(tls) = &self.tls {
            tls.validate_into(v);
        }
        let sections = [
            (ConnectorKind::Rest, self.rest.is_some()),
            (ConnectorKind::Graphql, self.graphql.is_some()),
            (ConnectorKind::File, self.file.is_some()),
            (ConnectorKind::Protocol, self.protocol.is_some()),
        ];
        for (kind, present) in sections {
            if kind == self.kind && !present {
                v.error(
                    kind.as_str(),
                    format!("kind = \"{0}\" needs a [{0}] table", kind.as_str()),
                );
            }
            if kind != self.kind && present {
                v.error(
                    kind.as_str(),
                    format!(
                        "a [{}] table does not apply to kind = \"{}\"",
                        kind.as_str(),
                        self.kind.as_str()
                    ),
                );
            }
        }
        match (self.kind, &self.mapping) {
            (ConnectorKind::Protocol, Some(_)) => {
                v.error(
                    "mapping",
                    "kind = \"protocol\" records are canonical: remove [mapping]",
                );
            }
            (ConnectorKind::Protocol, None) => {}
            (_, None) => v.error(
                "mapping",
                format!("kind = \"{}\" needs a [mapping] table", self.kind.as_str()),
            ),
            (_, Some(m)) => m.validate_into(v),
        }
        if let Some(r) = &self.rest {
            r.validate_into(v);
        }
        if let Some(g) = &self.graphql {
            g.validate_into(v);
        }
        if let Some(f) = &self.file {
            f.validate_into(v);
        }
        if let Some(p) = &self.protocol {
            p.validate_into(v);
        }
        if self.kind == ConnectorKind::File
            && !matches!(self.auth.kind, super::upstream::UpstreamAuthKind::None)
        {
            v.error(
                "auth.kind",
                "kind = \"file\" reads local files: remove [auth]",
            );
        }
    }
}
