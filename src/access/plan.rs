//! The access plan: an operation walked once against the policy for one class of principal.
//!
//! Each selected field becomes *grant* (whatever record it is read on), *deny* (on every
//! record), or *decide per record* (the relationship to the record, or the record's own
//! marking, decides); each argument the class may not use is listed, to be refused where the
//! operation uses it. Plans depend on the principal only through its [`PrincipalClass`] (roles,
//! kind of organisation, focal-point missions), so they are cached per (document, class).
//!
//! Models: grafbase's `authorize_query` (decisions before execution) and Apollo Router's
//! authorization plugin (the operation is checked against the policy before it is planned).

use super::policy::{FieldId, OrganisationKind, Policy, RoleSet};
use super::{Level, Principal, Relationship, Relationships, Role};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::Pos;
use std::collections::{HashMap, HashSet};

/// What an object type's records are to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// Not case data: only ANY, UN and roles apply (queries, missions, statistics, health).
    General,
    /// A case or data of a case: every case-level relationship applies.
    Case,
    /// A victim of a case: OWN_VICTIM_STATE is that victim's own states.
    Victim,
    /// Data about a host state that is not a case (capacity-building assistance).
    HostState,
}

/// How a type's records may change the level of their fields.
#[derive(Debug, Clone, Copy)]
pub struct TypeTraits {
    /// What its records are.
    pub kind: SubjectKind,
    /// Fields whose level a record may raise (a source's marking).
    pub raisable: &'static [&'static str],
    /// Fields whose level a record rule may lower (a convicted defendant's name).
    pub lowerable: &'static [&'static str],
}

impl TypeTraits {
    /// A type of general (non-case) data whose levels records never change.
    pub const GENERAL: TypeTraits = TypeTraits {
        kind: SubjectKind::General,
        raisable: &[],
        lowerable: &[],
    };
}

/// What the plan needs of a principal: decisions depend on nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrincipalClass {
    pub(crate) roles: RoleSet,
    pub(crate) org: OrganisationKind,
    pub(crate) focal_point: bool,
}

impl PrincipalClass {
    /// The class of `p`.
    pub fn of(p: &Principal) -> Self {
        Self {
            roles: RoleSet::of(p),
            org: OrganisationKind::of(&p.organisation),
            focal_point: p.has_role(Role::FocalPoint) && !p.missions.is_empty(),
        }
    }

    /// Relationships a principal of this class can have with a record of `kind`, besides ANY.
    fn possible(self, kind: SubjectKind) -> Relationships {
        let mut r = Relationships::default().with(Relationship::Any);
        if self.org == OrganisationKind::Un {
            r = r.with(Relationship::Un);
        }
        let state = self.org == OrganisationKind::MemberState;
        match kind {
            SubjectKind::General => {}
            SubjectKind::HostState => {
                if state {
                    r = r.with(Relationship::HostState);
                }
            }
            SubjectKind::Case | SubjectKind::Victim => {
                if state {
                    for rel in [
                        Relationship::HostState,
                        Relationship::ContributingState,
                        Relationship::NationalityState,
                        Relationship::OwnVictimState,
                    ] {
                        r = r.with(rel);
                    }
                }
                if self.focal_point {
                    r = r.with(Relationship::FocalPoint);
                }
            }
        }
        r
    }

    /// Relationships this class has with every record.
    fn everywhere(self) -> Relationships {
        self.possible(SubjectKind::General)
    }
}

/// A field's decision for one class of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldDecision {
    /// Readable on every record.
    Grant,
    /// Readable on no record.
    Deny,
    /// The record decides (relationship, marking, record rule).
    PerRecord,
}

/// Every field's decision for one class.
#[derive(Debug)]
pub struct ClassPlan {
    /// Indexed by [`FieldId`].
    pub(crate) fields: Vec<FieldDecision>,
    /// Whether a principal of this class may use an argument of each level.
    pub(crate) arguments: [bool; 5],
}

impl ClassPlan {
    pub(crate) fn compile(
        policy: &Policy,
        types: &HashMap<String, TypeTraits>,
        class: PrincipalClass,
    ) -> Self {
        let fields = policy
            .fields()
            .iter()
            .enumerate()
            .map(|(id, f)| {
                if !policy.holder_ok(id, class.roles, class.org) {
                    return FieldDecision::Deny;
                }
                let traits = types
                    .get(&f.type_name)
                    .copied()
                    .unwrap_or(TypeTraits::GENERAL);
                let raisable = traits.raisable.contains(&f.field.as_str());
                let lowerable = traits.lowerable.contains(&f.field.as_str());
                if !raisable && policy.grants_roles(class.roles, class.everywhere(), f.level) {
                    FieldDecision::Grant
                } else if !lowerable
                    && !policy.grants_roles(class.roles, class.possible(traits.kind), f.level)
                {
                    FieldDecision::Deny
                } else {
                    FieldDecision::PerRecord
                }
            })
            .collect();
        // An argument filters or orders cases. At CONCERNED it only touches the cases the
        // principal sees (results are restricted to them), so anyone who may see some case
        // may use it; above, it would reveal data beyond them, so the level must be granted
        // everywhere (by role, or by being the UN).
        let arguments = Level::ALL.map(|level| match level {
            Level::Public => true,
            Level::Concerned => {
                policy.grants_roles(class.roles, class.possible(SubjectKind::Case), level)
            }
            other => policy.grants_roles(class.roles, class.everywhere(), other),
        });
        Self { fields, arguments }
    }

    /// Whether the class may use an argument classified at `level`.
    pub fn may_use(&self, level: Level) -> bool {
        self.arguments[level as usize]
    }

    /// The decision on a field.
    pub fn decision(&self, id: FieldId) -> FieldDecision {
        self.fields.get(id).copied().unwrap_or(FieldDecision::Deny)
    }
}

/// One selected field of an operation.
#[derive(Debug, Clone)]
pub struct PlannedField {
    /// The field.
    pub id: FieldId,
    /// Its decision for the class.
    pub decision: FieldDecision,
    /// Arguments (paths from the argument's name) the class may not use: the field is refused
    /// when the operation sets one of them.
    pub denied_arguments: Vec<Vec<String>>,
}

/// A document walked against the policy for one class.
#[derive(Debug, Default)]
pub struct OperationPlan {
    /// Selected fields by their position in the document (a field in a fragment has one
    /// position wherever the fragment is spread, and one parent type).
    pub fields: HashMap<Pos, PlannedField>,
    /// Per operation name (`None`: anonymous), the denied fields (`Type.field at line:col`),
    /// for `on_denied_field = "reject"`.
    pub denied: Vec<(Option<String>, String)>,
    /// The document selects introspection (`__schema`, `__type`) or the federation SDL
    /// (`_service`), at any depth.
    pub introspects: bool,
}

impl OperationPlan {
    /// Walks every operation of `doc` once (fragments once per parent type).
    pub fn compile(policy: &Policy, class: &ClassPlan, doc: &ExecutableDocument) -> Self {
        let mut walk = Walk {
            policy,
            class,
            doc,
            plan: OperationPlan::default(),
            seen: HashSet::new(),
            operation: None,
        };
        let ops: Vec<(
            Option<String>,
            &async_graphql::parser::types::OperationDefinition,
        )> = match &doc.operations {
            DocumentOperations::Single(op) => vec![(None, &op.node)],
            DocumentOperations::Multiple(ops) => ops
                .iter()
                .map(|(n, op)| (Some(n.to_string()), &op.node))
                .collect(),
        };
        for (name, op) in ops {
            let root = match op.ty {
                OperationType::Query => "Query",
                OperationType::Mutation => "Mutation",
                OperationType::Subscription => "Subscription",
            };
            walk.operation = name;
            walk.seen.clear();
            walk.set(root, &op.selection_set.node, 0);
        }
        walk.plan
    }
}

/// Deepest nesting the walk follows; deeper documents are refused by the depth limit anyway.
/// A field deeper than this has no plan entry: the enforcement point then takes the class's
/// decision for it and refuses it if it sets any classified argument.
const MAX_WALK_DEPTH: usize = 256;

struct Walk<'a> {
    policy: &'a Policy,
    class: &'a ClassPlan,
    doc: &'a ExecutableDocument,
    plan: OperationPlan,
    /// (fragment, parent type) pairs already walked for the current operation.
    seen: HashSet<(String, String)>,
    operation: Option<String>,
}

impl Walk<'_> {
    fn set(&mut self, parent: &str, set: &SelectionSet, depth: usize) {
        if depth > MAX_WALK_DEPTH {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    if name == "__schema" || name == "__type" || name == "_service" {
                        self.plan.introspects = true;
                    }
                    if name.starts_with("__") {
                        continue;
                    }
                    let Some(id) = self.policy.field_id(parent, name) else {
                        continue;
                    };
                    let field = self.policy.field(id);
                    let decision = self.class.decision(id);
                    let denied_arguments = field
                        .arguments
                        .iter()
                        .filter(|(_, level)| !self.class.arguments[*level as usize])
                        .map(|(path, _)| path.clone())
                        .collect();
                    if decision == FieldDecision::Deny {
                        self.plan.denied.push((
                            self.operation.clone(),
                            format!("{} at {}:{}", field.key, item.pos.line, item.pos.column),
                        ));
                    }
                    self.plan.fields.insert(
                        item.pos,
                        PlannedField {
                            id,
                            decision,
                            denied_arguments,
                        },
                    );
                    let child = field.returns.clone();
                    self.set(&child, &f.node.selection_set.node, depth + 1);
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent.to_string(), |c| c.node.on.node.to_string());
                    self.set(&on, &fragment.node.selection_set.node, depth + 1);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node)
                    else {
                        continue;
                    };
                    let on = fragment.node.type_condition.node.on.node.to_string();
                    // A fragment on a union member or interface walks with its own type.
                    if self.seen.insert((name, on.clone())) {
                        self.set(&on, &fragment.node.selection_set.node, depth + 1);
                    }
                }
            }
        }
    }
}
