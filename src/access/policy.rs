//! The sensitivity policy (`config/policy.toml`): the level of every field of the schema, and
//! which relationships and roles may read each level. Loaded and validated at start; a field of
//! the schema that the policy does not classify stops the start (default deny).

use super::{Principal, Role};
use crate::config::{load_toml, ConfigErrors, Validate, Validation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The policy bundled in the binary (also at `config/policy.toml`).
pub const EMBEDDED_POLICY: &str = include_str!("../../config/policy.toml");

/// Sensitivity levels, aligned with UN ST/SGB/2007/6 and TLP; ordered from least to most
/// sensitive.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    JsonSchema,
    async_graphql::Enum,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Aggregates, mission list, published final verdicts.
    Public,
    /// Case date, mission, region, acts, victim category/nationality/harm, stage.
    Concerned,
    /// Victim name and service number, charges, court, national reference, perpetrator group.
    CaseParties,
    /// Unconvicted suspects' names, coordinates, medical details, next of kin.
    Restricted,
    /// Witnesses, sealed records: never leaves the host-state system.
    Sealed,
}

impl Level {
    /// Every level.
    pub const ALL: [Level; 5] = [
        Level::Public,
        Level::Concerned,
        Level::CaseParties,
        Level::Restricted,
        Level::Sealed,
    ];

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Public => "PUBLIC",
            Level::Concerned => "CONCERNED",
            Level::CaseParties => "CASE_PARTIES",
            Level::Restricted => "RESTRICTED",
            Level::Sealed => "SEALED",
        }
    }
}

/// How a principal relates to what it reads.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    JsonSchema,
    async_graphql::Enum,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Relationship {
    /// Any authenticated principal.
    Any,
    /// The principal acts for the UN.
    Un,
    /// The principal's state is the case's host state.
    HostState,
    /// The principal's state contributed troops or police among the victims.
    ContributingState,
    /// The principal's state is the nationality of a victim.
    NationalityState,
    /// For a victim's own fields: the principal's state is that victim's nationality or
    /// contributing country.
    OwnVictimState,
    /// The principal is the focal point of the case's mission.
    FocalPoint,
}

/// Who may read one level.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct LevelRule {
    /// Relationships that grant the level.
    pub relationships: Vec<Relationship>,
    /// Roles that grant the level whatever the relationship (e.g. "un-case-officer").
    pub roles: Vec<String>,
}

/// What happens to a denied field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDenied {
    /// The field resolves to null with one FORBIDDEN_FIELD error at its path.
    #[default]
    Null,
    /// The whole operation is refused.
    Reject,
}

/// Enforcement settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Enforcement {
    /// "null" (default) or "reject".
    pub on_denied_field: OnDenied,
    /// Statistics cells below this count are suppressed for principals who are not concerned.
    pub small_cell_threshold: u32,
}

impl Default for Enforcement {
    fn default() -> Self {
        Self {
            on_denied_field: OnDenied::Null,
            small_cell_threshold: 3,
        }
    }
}

/// The policy file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PolicyFile {
    /// Who may read each level: a table per level (PUBLIC, CONCERNED, CASE_PARTIES,
    /// RESTRICTED, SEALED).
    pub levels: BTreeMap<Level, LevelRule>,
    /// Enforcement settings.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// The level of every field of the schema, keyed `Type.field`.
    pub fields: BTreeMap<String, Level>,
    /// The level of sensitive arguments (filters, orderings, groupings), keyed
    /// `Type.field.argument[.inputField]`: using one needs that level.
    #[serde(default)]
    pub arguments: BTreeMap<String, Level>,
    /// The level a connector's own confidentiality marking raises its record to (markings
    /// can raise a level, never lower it), keyed by the marking as the source writes it.
    #[serde(default)]
    pub markings: BTreeMap<String, Level>,
    /// The level of a defendant's name once convicted (published verdicts); other defendants'
    /// names keep their field level.
    #[serde(default)]
    pub convicted_defendant_name: Option<Level>,
}

impl Validate for PolicyFile {
    fn validate(&self, v: &mut Validation) {
        for level in Level::ALL {
            if !self.levels.contains_key(&level) {
                v.error("levels", format!("no rule for level {}", level.as_str()));
            }
        }
        if let Some(sealed) = self.levels.get(&Level::Sealed) {
            if !sealed.relationships.is_empty() || !sealed.roles.is_empty() {
                v.error(
                    "levels.SEALED",
                    "SEALED content never leaves the host-state system: grant it to nobody",
                );
            }
        }
        for (level, rule) in &self.levels {
            for role in &rule.roles {
                if Role::parse(role).is_none() {
                    v.error(
                        &format!("levels.{}.roles", level.as_str()),
                        format!("unknown role `{role}`"),
                    );
                }
            }
        }
        if self.enforcement.small_cell_threshold == 0 {
            v.error("enforcement.small_cell_threshold", "must be at least 1");
        }
        for key in self.fields.keys().chain(self.arguments.keys()) {
            if key.split('.').count() < 2 || key.split('.').any(str::is_empty) {
                v.error("fields", format!("`{key}` is not `Type.field`"));
            }
        }
        if let Some(l) = self.convicted_defendant_name {
            if l > *self.fields.get("Defendant.name").unwrap_or(&Level::Sealed) {
                v.error(
                    "convicted_defendant_name",
                    "must not be above the level of Defendant.name",
                );
            }
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is invalid.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// Fields of the schema the policy does not classify.
    #[error("the access policy {file} does not classify {} field(s) of the schema (default deny: every field needs a level): {}", .missing.len(), .missing.join(", "))]
    Unclassified {
        /// The file.
        file: String,
        /// The fields.
        missing: Vec<String>,
    },
    /// Entries naming fields the schema does not have (typos would silently protect nothing).
    #[error("the access policy {file} names field(s) the schema does not have: {}", .unknown.join(", "))]
    Unknown {
        /// The file.
        file: String,
        /// The fields.
        unknown: Vec<String>,
    },
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    file: PolicyFile,
    markings: BTreeMap<String, Level>,
}

/// A set of relationships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relationships(u8);

impl Relationships {
    fn bit(r: Relationship) -> u8 {
        1 << (r as u8)
    }

    /// With `r` added.
    pub fn with(self, r: Relationship) -> Self {
        Self(self.0 | Self::bit(r))
    }

    /// Whether `r` is in the set.
    pub fn has(self, r: Relationship) -> bool {
        self.0 & Self::bit(r) != 0
    }
}

impl Policy {
    /// Parses and validates a policy file, and checks it classifies exactly the fields of
    /// the schema (`schema_fields`, `Type.field`).
    pub fn load(
        text: &str,
        label: &str,
        schema_fields: &BTreeSet<String>,
    ) -> Result<Self, PolicyError> {
        let file: PolicyFile = load_toml(text, label).map_err(PolicyError::Invalid)?;
        let missing: Vec<String> = schema_fields
            .iter()
            .filter(|f| !file.fields.contains_key(*f))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(PolicyError::Unclassified {
                file: label.to_string(),
                missing,
            });
        }
        let unknown: Vec<String> = file
            .fields
            .keys()
            .filter(|f| !schema_fields.contains(*f))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(PolicyError::Unknown {
                file: label.to_string(),
                unknown,
            });
        }
        let markings = file
            .markings
            .iter()
            .map(|(k, v)| (k.trim().to_lowercase(), *v))
            .collect();
        Ok(Self { file, markings })
    }

    /// The level of `Type.field`; unclassified fields are SEALED (never readable).
    pub fn field_level(&self, key: &str) -> Level {
        self.file.fields.get(key).copied().unwrap_or(Level::Sealed)
    }

    /// The level of an argument, if the policy classifies it.
    pub fn argument_level(&self, key: &str) -> Option<Level> {
        self.file.arguments.get(key).copied()
    }

    /// The level a source marking raises a record to; an unknown marking is treated as
    /// RESTRICTED (markings can only make things stricter).
    pub fn marking_level(&self, marking: &str) -> Level {
        self.markings
            .get(&marking.trim().to_lowercase())
            .copied()
            .unwrap_or(Level::Restricted)
    }

    /// The level of a convicted defendant's name.
    pub fn convicted_defendant_name(&self) -> Option<Level> {
        self.file.convicted_defendant_name
    }

    /// Enforcement settings.
    pub fn enforcement(&self) -> &Enforcement {
        &self.file.enforcement
    }

    /// Whether `principal`, related to the subject by `rels`, may read `level`.
    pub fn grants(&self, principal: &Principal, rels: Relationships, level: Level) -> bool {
        if level == Level::Sealed {
            return false;
        }
        let Some(rule) = self.file.levels.get(&level) else {
            return false;
        };
        rule.relationships
            .iter()
            .any(|r| *r == Relationship::Any || rels.has(*r))
            || rule
                .roles
                .iter()
                .any(|r| Role::parse(r).is_some_and(|r| principal.has_role(r)))
    }

    /// Whether `principal` may read `level` through its roles or its organisation alone,
    /// whatever case it looks at (UN staff, auditors).
    pub fn grants_everywhere(&self, principal: &Principal, level: Level) -> bool {
        let mut rels = Relationships::default().with(Relationship::Any);
        if principal.organisation.is_un() {
            rels = rels.with(Relationship::Un);
        }
        self.grants(principal, rels, level)
    }
}
