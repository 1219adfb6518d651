//! The sensitivity policy (`config/policy.toml`): the level of every field of the schema (and
//! the roles that must hold it, for writes and the audit log), the level of every argument, and
//! which relationships and roles may read each level. Loaded and checked against the schema at
//! start: a field, argument or mutation the policy does not classify, or an entry naming one the
//! schema does not have, stops the start with file and line (default deny).

use super::shape::SchemaShape;
use super::{Organisation, Principal, Role};
use crate::config::{load_toml_checked, ConfigErrors, Validate, Validation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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

    /// Parses the canonical spelling.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
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
    /// contributing country; for a case's fields: the state of any of its victims.
    OwnVictimState,
    /// The principal is the focal point of the case's mission.
    FocalPoint,
}

impl Relationship {
    /// Every relationship.
    pub const ALL: [Relationship; 7] = [
        Relationship::Any,
        Relationship::Un,
        Relationship::HostState,
        Relationship::ContributingState,
        Relationship::NationalityState,
        Relationship::OwnVictimState,
        Relationship::FocalPoint,
    ];
}

/// Who may read one level.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
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
#[serde(default, deny_unknown_fields)]
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

/// Kinds of organisation a principal acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrganisationKind {
    /// A Member State (ISO alpha-3).
    MemberState,
    /// The UN or one of its entities.
    Un,
    /// A regional organisation (AU, EU, ECOWAS, …).
    RegionalOrganisation,
}

impl OrganisationKind {
    /// The kind of `org`.
    pub fn of(org: &Organisation) -> Self {
        match org {
            Organisation::MemberState(_) => OrganisationKind::MemberState,
            Organisation::UnEntity(_) => OrganisationKind::Un,
            Organisation::RegionalOrganisation(_) => OrganisationKind::RegionalOrganisation,
        }
    }
}

/// Who may use one field: its level, and optionally roles and organisation kinds the
/// principal must also have (mutations, the audit log).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldRule {
    /// The level alone: `"CASE_PARTIES"`.
    Level(Level),
    /// A level and who must hold it: `{ level = "PUBLIC", roles = ["un-case-officer"] }`.
    Restricted(FieldAccess),
}

/// The table form of a field's rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldAccess {
    /// The level of the data.
    pub level: Level,
    /// The principal must hold one of these roles (empty: no role needed).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The principal must act for one of these kinds of organisation (empty: any).
    #[serde(default)]
    pub organisations: Vec<OrganisationKind>,
}

impl FieldRule {
    /// The level.
    pub fn level(&self) -> Level {
        match self {
            FieldRule::Level(l) => *l,
            FieldRule::Restricted(a) => a.level,
        }
    }

    fn access(&self) -> Option<&FieldAccess> {
        match self {
            FieldRule::Level(_) => None,
            FieldRule::Restricted(a) => Some(a),
        }
    }
}

impl<'de> Deserialize<'de> for FieldRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Level::parse(&s).map(FieldRule::Level).ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown level `{s}`, expected one of PUBLIC, CONCERNED, CASE_PARTIES, RESTRICTED, SEALED"
                ))
            }),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(FieldRule::Restricted)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "expected a level (\"CONCERNED\") or a table ({ level = \"PUBLIC\", roles = [\"…\"] })",
            )),
        }
    }
}

/// The policy file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Who may read each level: a table per level (PUBLIC, CONCERNED, CASE_PARTIES,
    /// RESTRICTED, SEALED).
    pub levels: BTreeMap<Level, LevelRule>,
    /// Enforcement settings.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// The rule of every field of the schema, keyed `Type.field`, mutations included: a level,
    /// or a table with the level and the roles that must hold it.
    pub fields: BTreeMap<String, FieldRule>,
    /// The level of every argument, keyed `Type.field.argument`, or
    /// `Type.field.argument.inputField` for each field of an input object: using one needs that
    /// level.
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
        for (key, rule) in &self.fields {
            for role in rule
                .access()
                .map(|a| a.roles.as_slice())
                .unwrap_or_default()
            {
                if Role::parse(role).is_none() {
                    v.error(&format!("fields.{key}"), format!("unknown role `{role}`"));
                }
            }
        }
        if self.enforcement.small_cell_threshold == 0 {
            v.error("enforcement.small_cell_threshold", "must be at least 1");
        }
        for key in self.fields.keys() {
            if key.split('.').count() != 2 || key.split('.').any(str::is_empty) {
                v.error(&format!("fields.{key}"), "not `Type.field`");
            }
        }
        for key in self.arguments.keys() {
            if key.split('.').count() < 3 || key.split('.').any(str::is_empty) {
                v.error(
                    &format!("arguments.{key}"),
                    "not `Type.field.argument[.inputField]`",
                );
            }
        }
        if let Some(l) = self.convicted_defendant_name {
            let name = self
                .fields
                .get("Defendant.name")
                .map_or(Level::Sealed, FieldRule::level);
            if l > name {
                v.error(
                    "convicted_defendant_name",
                    "must not be above the level of Defendant.name",
                );
            }
        }
    }
}

impl PolicyFile {
    /// Checks the policy against the schema: every field, argument and mutation classified,
    /// nothing named that the schema does not have.
    fn check_against(&self, shape: &SchemaShape, v: &mut Validation) {
        let schema_fields: std::collections::BTreeSet<String> = shape.field_keys().collect();
        for key in &schema_fields {
            if !self.fields.contains_key(key) {
                v.error(
                    "fields",
                    format!("`{key}` is not classified (default deny: every field of the schema needs a rule, e.g. \"{key}\" = \"CONCERNED\")"),
                );
            }
        }
        for key in self.fields.keys() {
            if !schema_fields.contains(key) {
                v.error(
                    &format!("fields.{key}"),
                    "the schema has no such field (a typo here would protect nothing)",
                );
            }
        }
        let leaves = shape.argument_leaves();
        for (leaf, arg) in &leaves {
            let covering: Vec<&String> = self
                .arguments
                .keys()
                .filter(|k| {
                    k.as_str() == leaf.as_str()
                        || (leaf.starts_with(k.as_str())
                            && leaf.as_bytes().get(k.len()) == Some(&b'.')
                            && k.len() >= arg.len())
                })
                .collect();
            match covering.len() {
                0 => v.error(
                    "arguments",
                    format!("the argument `{leaf}` is not classified (default deny: add \"{leaf}\" = \"LEVEL\", or classify the whole argument \"{arg}\")"),
                ),
                1 => {}
                _ => v.error(
                    &format!("arguments.{}", covering[1]),
                    format!("`{leaf}` is classified twice ({})", covering.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")),
                ),
            }
        }
        for key in self.arguments.keys() {
            let known = leaves.iter().any(|(leaf, arg)| {
                leaf == key
                    || (leaf.starts_with(key.as_str())
                        && leaf.as_bytes().get(key.len()) == Some(&b'.')
                        && key.len() >= arg.len())
            });
            if !known {
                v.error(
                    &format!("arguments.{key}"),
                    "the schema has no such argument (a typo here would protect nothing)",
                );
            }
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is invalid, or does not match the schema.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// A set of relationships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
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

    /// With `r` removed.
    pub fn without(self, r: Relationship) -> Self {
        Self(self.0 & !Self::bit(r))
    }

    /// Whether the sets share a relationship.
    pub fn intersects(self, other: Relationships) -> bool {
        self.0 & other.0 != 0
    }
}

impl FromIterator<Relationship> for Relationships {
    fn from_iter<I: IntoIterator<Item = Relationship>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), Self::with)
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    /// With `r` added.
    pub fn with(self, r: Role) -> Self {
        Self(self.0 | (1 << (r as u8)))
    }

    /// Whether the sets share a role.
    pub fn intersects(self, other: RoleSet) -> bool {
        self.0 & other.0 != 0
    }

    /// The roles of a principal.
    pub fn of(p: &Principal) -> Self {
        p.roles.iter().copied().fold(Self::default(), Self::with)
    }

    /// Whether empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every role of `self` is in `other`.
    pub fn is_subset(self, other: RoleSet) -> bool {
        self.0 & !other.0 == 0
    }
}

/// Who may read a level, compiled.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompiledLevel {
    pub(crate) relationships: Relationships,
    pub(crate) roles: RoleSet,
}

/// Identifies one field of the schema in the compiled policy.
pub type FieldId = usize;

/// One field's rule, compiled.
#[derive(Debug, Clone)]
pub struct CompiledField {
    /// `Type.field`.
    pub key: String,
    /// The parent type.
    pub type_name: String,
    /// The field.
    pub field: String,
    /// Level.
    pub level: Level,
    /// Roles the principal must hold one of (empty: none needed).
    pub(crate) roles: RoleSet,
    /// Organisation kinds the principal must be one of (empty: any).
    pub(crate) organisations: Vec<OrganisationKind>,
    /// The field's type may be null.
    pub nullable: bool,
    /// The named return type.
    pub returns: String,
    /// The arguments' classifications: (path from the argument name, level).
    pub arguments: Vec<(Vec<String>, Level)>,
}

/// A validated policy, compiled against the schema.
#[derive(Debug, Clone)]
pub struct Policy {
    file: PolicyFile,
    label: String,
    text: std::sync::Arc<str>,
    markings: BTreeMap<String, Level>,
    levels: [CompiledLevel; 5],
    fields: Vec<CompiledField>,
    by_name: HashMap<String, HashMap<String, FieldId>>,
}

impl Policy {
    /// Parses and validates a policy file, and checks it classifies exactly the fields,
    /// mutations and arguments of the schema described by `shape`.
    pub fn load(text: &str, label: &str, shape: &SchemaShape) -> Result<Self, PolicyError> {
        let file: PolicyFile =
            load_toml_checked(text, label, &|f: &PolicyFile, v| f.check_against(shape, v))
                .map_err(PolicyError::Invalid)?;
        Ok(Self::compile(file, shape, label, text))
    }

    fn compile(file: PolicyFile, shape: &SchemaShape, label: &str, text: &str) -> Self {
        let markings = file
            .markings
            .iter()
            .map(|(k, v)| (k.trim().to_lowercase(), *v))
            .collect();
        let roles_of = |names: &[String]| {
            names
                .iter()
                .filter_map(|r| Role::parse(r))
                .fold(RoleSet::default(), RoleSet::with)
        };
        let mut levels = [CompiledLevel::default(); 5];
        for (level, rule) in &file.levels {
            levels[*level as usize] = CompiledLevel {
                relationships: rule.relationships.iter().copied().collect(),
                roles: roles_of(&rule.roles),
            };
        }
        let mut fields = Vec::new();
        let mut by_name: HashMap<String, HashMap<String, FieldId>> = HashMap::new();
        for (type_name, fs) in &shape.objects {
            for (field, fshape) in fs {
                let key = format!("{type_name}.{field}");
                let rule = file
                    .fields
                    .get(&key)
                    .cloned()
                    .unwrap_or(FieldRule::Level(Level::Sealed));
                let access = rule.access();
                let prefix = format!("{key}.");
                let arguments = file
                    .arguments
                    .iter()
                    .filter_map(|(k, l)| {
                        k.strip_prefix(&prefix)
                            .map(|rest| (rest.split('.').map(str::to_string).collect(), *l))
                    })
                    .collect();
                by_name
                    .entry(type_name.clone())
                    .or_default()
                    .insert(field.clone(), fields.len());
                fields.push(CompiledField {
                    key,
                    type_name: type_name.clone(),
                    field: field.clone(),
                    level: rule.level(),
                    roles: access.map_or(RoleSet::default(), |a| roles_of(&a.roles)),
                    organisations: access.map(|a| a.organisations.clone()).unwrap_or_default(),
                    nullable: fshape.ty.nullable,
                    returns: fshape.ty.named.clone(),
                    arguments,
                });
            }
        }
        Self {
            file,
            label: label.to_string(),
            text: text.into(),
            markings,
            levels,
            fields,
            by_name,
        }
    }

    /// An error about the entry `"key"` of the policy file, located at its line.
    pub(crate) fn error_at(&self, key: &str, message: String) -> crate::config::ConfigError {
        let quoted = format!("\"{key}\"");
        let found = self
            .text
            .lines()
            .enumerate()
            .find(|(_, l)| l.trim_start().starts_with(&quoted));
        match found {
            Some((i, line)) => crate::config::ConfigError {
                file: self.label.clone(),
                line: i + 1,
                column: line.len() - line.trim_start().len() + 1,
                key: format!("fields.{key}"),
                message,
                source_line: Some(line.to_string()),
                width: quoted.chars().count(),
            },
            None => crate::config::ConfigError {
                key: format!("fields.{key}"),
                ..crate::config::ConfigError::whole_file(&self.label, message)
            },
        }
    }

    /// The file name it was loaded from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file as loaded.
    pub fn file(&self) -> &PolicyFile {
        &self.file
    }

    /// Every compiled field.
    pub fn fields(&self) -> &[CompiledField] {
        &self.fields
    }

    /// The id of `Type.field`.
    pub fn field_id(&self, type_name: &str, field: &str) -> Option<FieldId> {
        self.by_name.get(type_name)?.get(field).copied()
    }

    /// The compiled rule of a field.
    pub fn field(&self, id: FieldId) -> &CompiledField {
        &self.fields[id]
    }

    /// The level of `Type.field`; unclassified fields are SEALED (never readable).
    pub fn field_level(&self, key: &str) -> Level {
        key.split_once('.')
            .and_then(|(t, f)| self.field_id(t, f))
            .map_or(Level::Sealed, |id| self.fields[id].level)
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

    pub(crate) fn level_rule(&self, level: Level) -> CompiledLevel {
        self.levels[level as usize]
    }

    /// Whether `principal`, related to the subject by `rels`, may read `level`.
    pub fn grants(&self, principal: &Principal, rels: Relationships, level: Level) -> bool {
        self.grants_roles(RoleSet::of(principal), rels, level)
    }

    pub(crate) fn grants_roles(&self, roles: RoleSet, rels: Relationships, level: Level) -> bool {
        if level == Level::Sealed {
            return false;
        }
        let rule = self.levels[level as usize];
        rule.relationships.has(Relationship::Any)
            || rule.relationships.intersects(rels)
            || rule.roles.intersects(roles)
    }

    /// Whether `principal` may read `level` through its roles or its organisation alone,
    /// whatever it looks at (UN staff, auditors).
    pub fn grants_everywhere(&self, principal: &Principal, level: Level) -> bool {
        let mut rels = Relationships::default().with(Relationship::Any);
        if principal.organisation.is_un() {
            rels = rels.with(Relationship::Un);
        }
        self.grants(principal, rels, level)
    }

    /// The field's own requirements in words (`the role un-case-officer`), for refusals.
    pub fn holder_rule(&self, id: FieldId) -> String {
        let f = &self.fields[id];
        let roles: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| RoleSet::default().with(**r).intersects(f.roles))
            .map(|r| r.as_str())
            .collect();
        let mut parts = Vec::new();
        if !roles.is_empty() {
            parts.push(format!("one of the roles {}", roles.join(", ")));
        }
        if !f.organisations.is_empty() {
            let kinds: Vec<String> = f.organisations.iter().map(|k| format!("{k:?}")).collect();
            parts.push(format!("a principal of a {}", kinds.join(" or ")));
        }
        parts.join(" and ")
    }

    /// Whether the field's own requirements (roles, organisation kinds) hold for `principal`.
    pub(crate) fn holder_ok(&self, id: FieldId, roles: RoleSet, org: OrganisationKind) -> bool {
        let f = &self.fields[id];
        (f.roles.is_empty() || f.roles.intersects(roles))
            && (f.organisations.is_empty() || f.organisations.contains(&org))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> SchemaShape {
        SchemaShape::from_sdl(
            "type Query { a(x: Int, f: F): Int b: Int }\ninput F { p: Int q: Int }\ntype Mutation { m: Int }",
        )
        .expect("sdl")
    }

    const LEVELS: &str = r#"
[levels.PUBLIC]
relationships = ["ANY"]
[levels.CONCERNED]
roles = ["un-analyst"]
[levels.CASE_PARTIES]
[levels.RESTRICTED]
[levels.SEALED]
"#;

    fn load(body: &str) -> Result<Policy, String> {
        Policy::load(&format!("{LEVELS}{body}"), "p.toml", &shape()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_complete_policy_loads_and_compiles_roles_on_fields() {
        let p = load(
            r#"
[fields]
"Query.a" = "PUBLIC"
"Query.b" = "CONCERNED"
"Mutation.m" = { level = "PUBLIC", roles = ["un-case-officer"] }
[arguments]
"Query.a.x" = "PUBLIC"
"Query.a.f" = "CONCERNED"
"#,
        )
        .expect("loads");
        let m = p.field_id("Mutation", "m").expect("m");
        assert!(!p.holder_ok(m, RoleSet::default(), OrganisationKind::Un));
        assert!(p.holder_ok(
            m,
            RoleSet::default().with(Role::UnCaseOfficer),
            OrganisationKind::Un
        ));
    }

    #[test]
    fn an_unclassified_field_argument_or_mutation_is_named_with_its_line() {
        let err = load(
            r#"
[fields]
"Query.a" = "PUBLIC"
[arguments]
"Query.a.f.p" = "PUBLIC"
"#,
        )
        .expect_err("incomplete");
        for missing in ["`Query.b`", "`Mutation.m`", "`Query.a.x`", "`Query.a.f.q`"] {
            assert!(err.contains(missing), "{missing} not named in: {err}");
        }
        assert!(err.contains("p.toml:"), "no file and line: {err}");
    }

    #[test]
    fn an_entry_the_schema_does_not_have_or_a_double_classification_is_refused() {
        let err = load(
            r#"
[fields]
"Query.a" = "PUBLIC"
"Query.b" = "PUBLIC"
"Query.typo" = "PUBLIC"
"Mutation.m" = "PUBLIC"
[arguments]
"Query.a.x" = "PUBLIC"
"Query.a.f" = "PUBLIC"
"Query.a.f.p" = "PUBLIC"
"Query.b.nope" = "PUBLIC"
"#,
        )
        .expect_err("typos");
        assert!(err.contains("Query.typo"), "{err}");
        assert!(err.contains("Query.b.nope"), "{err}");
        assert!(err.contains("classified twice"), "{err}");
    }
}
