//! Who may see and do what: the one place that says yes or no.
//!
//! The rules are in the sensitivity policy (`config/policy.toml`, [`policy`]), checked against
//! the schema at start. For each operation, [`plan`] walks the document once against the
//! policy for the caller's class (grant, deny, or decide per record, for every field and
//! argument), and the schema's single enforcement point applies the plan, asking
//! [`Viewpoint`] for the decisions that depend on the record. Resolvers never decide access.
//! `docs/architecture.md` describes the whole path.

pub mod audit;
pub mod disclosure;
pub mod plan;
mod policy;
mod principal;
pub mod shape;
mod visibility;

pub use plan::{
    ClassPlan, FieldDecision, OperationPlan, PlannedField, PrincipalClass, SubjectKind, TypeTraits,
};
pub use policy::{
    CompiledField, Enforcement, FieldAccess, FieldId, FieldRule, Level, LevelRule, OnDenied,
    OrganisationKind, Policy, PolicyError, PolicyFile, Relationship, Relationships,
    EMBEDDED_POLICY,
};
pub use principal::{Organisation, Principal, PrincipalError, Role};
pub use shape::SchemaShape;
pub use visibility::{condition, CaseCondition, Condition, Visibility};

use crate::store::CaseRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An operation that changes the record (the label of its audit entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOperation {
    /// Report a new case.
    ReportCase,
    /// Change a case.
    UpdateCase,
    /// Add a victim to a case.
    AddVictim,
    /// Record a UN follow-up action.
    RecordFollowUpAction,
    /// Record capacity-building assistance.
    RecordAssistance,
    /// Link a national case-file reference.
    LinkNationalReference,
    /// Designate a mission's focal point.
    SetFocalPoint,
    /// A Member State submits information on a case it is concerned with (res. 2589 §6).
    SubmitCaseInformation,
    /// A UN case officer accepts or rejects a submission.
    ReviewSubmission,
}

/// What access decisions need to know about a case: computed from the case itself.
#[derive(Debug, Default)]
pub struct CaseFacts {
    /// Case id.
    pub id: String,
    /// Host state.
    pub host_state: Option<String>,
    /// Mission code.
    pub mission: String,
    /// Victims' nationalities.
    pub nationalities: Vec<String>,
    /// Victims' contributing countries.
    pub contributing: Vec<String>,
    /// The relationships of the one viewpoint (request) that last asked, by viewpoint id: case
    /// facts live within one request, and every field of a case asks the same question.
    pub(crate) rels: std::sync::OnceLock<(u64, Relationships)>,
}

impl Clone for CaseFacts {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            host_state: self.host_state.clone(),
            mission: self.mission.clone(),
            nationalities: self.nationalities.clone(),
            contributing: self.contributing.clone(),
            rels: std::sync::OnceLock::new(),
        }
    }
}

impl PartialEq for CaseFacts {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.id,
            &self.host_state,
            &self.mission,
            &self.nationalities,
            &self.contributing,
        ) == (
            &other.id,
            &other.host_state,
            &other.mission,
            &other.nationalities,
            &other.contributing,
        )
    }
}

impl Eq for CaseFacts {}

impl CaseFacts {
    /// The facts of a stored case.
    pub fn of(case: &CaseRecord) -> Arc<Self> {
        Arc::new(Self {
            id: case.id.clone(),
            host_state: case.host_state.clone(),
            mission: case.mission_code.clone(),
            nationalities: case.victim_nationalities.clone(),
            contributing: case.contributing_countries.clone(),
            rels: std::sync::OnceLock::new(),
        })
    }
}

/// What a record belongs to, for relationship-dependent decisions.
#[derive(Debug, Clone, Copy, Default)]
pub enum Subject<'a> {
    /// Not case data (queries, missions, statistics, connector health).
    #[default]
    General,
    /// A case, or data of a case (follow-up actions, references, proceedings).
    Case(&'a CaseFacts),
    /// A victim of a case: OWN_VICTIM_STATE is that victim's nationality or contributor.
    Victim(&'a CaseFacts, Option<&'a str>, Option<&'a str>),
    /// Data about a host state that is not a case (capacity-building assistance).
    HostState(&'a str),
}

impl Subject<'_> {
    /// The case the record belongs to, if any.
    pub fn case_id(&self) -> Option<&str> {
        match self {
            Subject::Case(f) | Subject::Victim(f, _, _) => Some(&f.id),
            _ => None,
        }
    }
}

/// Counters of the plan cache, rendered at `/metrics`.
#[derive(Debug, Default)]
pub struct PlanStats {
    /// Operations whose plan came from the cache.
    pub hits: AtomicU64,
    /// Operations planned.
    pub misses: AtomicU64,
    /// Time spent planning, in nanoseconds.
    pub planning_ns: AtomicU64,
}

/// Most operation plans kept (least recently used go first).
const PLAN_CACHE_CAPACITY: u64 = 2_000;

type PlanKey = (Arc<str>, PrincipalClass);

/// The policy compiled against the schema, with the plan caches.
#[derive(Clone)]
pub struct Access {
    policy: Arc<Policy>,
    types: Arc<HashMap<String, TypeTraits>>,
    classes: Arc<Mutex<HashMap<PrincipalClass, Arc<ClassPlan>>>>,
    operations: moka::sync::Cache<PlanKey, Arc<OperationPlan>>,
    stats: Arc<PlanStats>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

impl Access {
    /// The access layer applying `policy` to a schema whose object types are described by
    /// `types` (what their records are, which fields a record may raise or lower). Refuses a
    /// policy under which a non-null field of the schema could be denied ("deniable means
    /// nullable": a denied non-null field would break typed clients).
    pub fn new(policy: Policy, types: HashMap<String, TypeTraits>) -> Result<Self, PolicyError> {
        let problems = non_null_deniable(&policy, &types);
        if !problems.is_empty() {
            let errors = problems
                .into_iter()
                .map(|(key, message)| policy.error_at(&key, message))
                .collect();
            return Err(PolicyError::Invalid(crate::config::ConfigErrors {
                file: policy.label().to_string(),
                errors,
            }));
        }
        Ok(Self {
            policy: Arc::new(policy),
            types: Arc::new(types),
            classes: Arc::default(),
            operations: moka::sync::Cache::builder()
                .max_capacity(PLAN_CACHE_CAPACITY)
                .build(),
            stats: Arc::default(),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Plan cache counters.
    pub fn plan_stats(&self) -> Arc<PlanStats> {
        Arc::clone(&self.stats)
    }

    /// What `type_name`'s records are.
    pub fn type_traits(&self, type_name: &str) -> TypeTraits {
        self.types
            .get(type_name)
            .copied()
            .unwrap_or(TypeTraits::GENERAL)
    }

    /// The decisions for a class of principal (compiled once per class).
    pub fn class_plan(&self, class: PrincipalClass) -> Arc<ClassPlan> {
        let mut classes = self
            .classes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            classes
                .entry(class)
                .or_insert_with(|| Arc::new(ClassPlan::compile(&self.policy, &self.types, class))),
        )
    }

    /// The plan of a parsed document for a class, from the cache when this document was
    /// planned for this class before.
    pub fn operation_plan(
        &self,
        query: &str,
        doc: &async_graphql::parser::types::ExecutableDocument,
        class: PrincipalClass,
    ) -> Arc<OperationPlan> {
        let key: PlanKey = (Arc::from(query), class);
        if let Some(plan) = self.operations.get(&key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return plan;
        }
        let started = std::time::Instant::now();
        let plan = Arc::new(OperationPlan::compile(
            &self.policy,
            &self.class_plan(class),
            doc,
        ));
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        self.stats.planning_ns.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.operations.insert(key, Arc::clone(&plan));
        plan
    }

    /// The caller's point of view for one request: its class, what each relationship means
    /// for it, and the cases it may see.
    pub fn viewpoint(&self, principal: Principal) -> Viewpoint {
        let conditions = Relationship::ALL.map(|r| condition(&principal, r));
        let concerned = self.policy.level_rule(Level::Concerned);
        let visibility = if self.policy.grants_everywhere(&principal, Level::Concerned) {
            Visibility::All
        } else {
            Visibility::from_conditions(
                Relationship::ALL
                    .iter()
                    .filter(|r| concerned.relationships.has(**r))
                    .map(|r| conditions[*r as usize].clone()),
            )
        };
        let state = match &principal.organisation {
            Organisation::MemberState(c) => Some(c.to_string()),
            _ => None,
        };
        Viewpoint {
            class: PrincipalClass::of(&principal),
            principal,
            state,
            conditions,
            visibility,
            policy: Arc::clone(&self.policy),
            id: VIEWPOINTS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether `principal` sees a submission: UN case officers see all of them; others see
    /// accepted ones and their own organisation's (pending, accepted or rejected).
    pub fn may_see_submission(
        &self,
        principal: &Principal,
        organisation: &str,
        accepted: bool,
    ) -> bool {
        accepted
            || principal.has_role(Role::UnCaseOfficer)
            || principal.organisation.to_string() == organisation
    }
}

/// The caller as access decisions see it, for one request.
#[derive(Debug, Clone)]
pub struct Viewpoint {
    /// The principal.
    pub principal: Principal,
    /// Its class (what plans depend on).
    pub class: PrincipalClass,
    /// Its state, for a Member State.
    state: Option<String>,
    /// What each relationship requires of a case, indexed by [`Relationship`].
    conditions: [Condition; 7],
    /// The cases it may see.
    pub visibility: Visibility,
    policy: Arc<Policy>,
    /// Unique per viewpoint: keys the relationships cached on case facts.
    id: u64,
}

/// Source of viewpoint ids.
static VIEWPOINTS: AtomicU64 = AtomicU64::new(1);

impl Viewpoint {
    /// How the principal relates to `subject`, from the same conditions the store's
    /// visibility predicate is made of.
    pub fn relationships(&self, subject: Subject<'_>) -> Relationships {
        match subject {
            Subject::Case(c) => self.case_relationships(c),
            Subject::Victim(c, nationality, contributor) => {
                // A victim relates as its case does, but OWN_VICTIM_STATE is this victim's.
                let mut rels = self
                    .case_relationships(c)
                    .without(Relationship::OwnVictimState);
                let state = self.state.as_deref();
                if !matches!(
                    self.conditions[Relationship::OwnVictimState as usize],
                    Condition::Never
                ) && state.is_some()
                    && (nationality == state || contributor == state)
                {
                    rels = rels.with(Relationship::OwnVictimState);
                }
                rels
            }
            other => self.compute(other),
        }
    }

    /// A case's relationships, computed once per request and case.
    fn case_relationships(&self, case: &CaseFacts) -> Relationships {
        match case.rels.get() {
            Some((id, rels)) if *id == self.id => *rels,
            Some(_) => self.compute(Subject::Case(case)),
            None => {
                let rels = self.compute(Subject::Case(case));
                let _ = case.rels.set((self.id, rels));
                rels
            }
        }
    }

    fn compute(&self, subject: Subject<'_>) -> Relationships {
        let mut rels = Relationships::default();
        for r in Relationship::ALL {
            let holds = match (&self.conditions[r as usize], subject) {
                (Condition::Always, _) => true,
                (Condition::Never, _) => false,
                (Condition::Cases(_), Subject::General) => false,
                (Condition::Cases(_), Subject::HostState(h)) => {
                    r == Relationship::HostState && self.state.as_deref() == Some(h)
                }
                (Condition::Cases(_), Subject::Victim(_, nationality, contributor))
                    if r == Relationship::OwnVictimState =>
                {
                    let state = self.state.as_deref();
                    state.is_some() && (nationality == state || contributor == state)
                }
                (Condition::Cases(cs), Subject::Case(c) | Subject::Victim(c, _, _)) => {
                    cs.iter().any(|cond| cond.matches(c))
                }
            };
            if holds {
                rels = rels.with(r);
            }
        }
        rels
    }

    /// Whether the principal may read `level` on `subject`.
    pub fn may_read(&self, level: Level, subject: Subject<'_>) -> bool {
        self.policy
            .grants_roles(self.class.roles, self.relationships(subject), level)
    }

    /// Whether a case is visible (the in-memory form of the store's predicate).
    pub fn sees(&self, case: &CaseFacts) -> bool {
        self.visibility.matches(case)
    }

    /// The small-cell threshold of statistics for this principal: `None` when it sees every
    /// case.
    pub fn small_cell_threshold(&self) -> Option<u32> {
        (!self.visibility.is_all()).then(|| self.policy.enforcement().small_cell_threshold)
    }
}

/// Non-null fields of the schema that some principal could be denied, with why. A field is
/// deniable when it needs a role or kind of organisation, when a record may raise its level
/// (a source's marking), or when its level is not implied by what reaching its parent object
/// already guarantees: the levels of the fields on every path to it (a path through a case's
/// `nationalReferences` guarantees CASE_PARTIES on that case), and for case data the
/// visibility of the case itself (`[levels.CONCERNED]`, which the enforcement point checks on
/// every case object).
fn non_null_deniable(
    policy: &Policy,
    types: &HashMap<String, TypeTraits>,
) -> Vec<(String, String)> {
    let guaranteed = guarantees(policy, types);
    let mut out = Vec::new();
    for f in policy.fields() {
        if f.nullable {
            continue;
        }
        let traits = types
            .get(&f.type_name)
            .copied()
            .unwrap_or(TypeTraits::GENERAL);
        let parent = guaranteed.get(f.type_name.as_str()).copied().unwrap_or(0);
        let implied = Level::ALL
            .iter()
            .any(|g| parent & (1 << *g as u8) != 0 && implies(policy, *g, f.level))
            || (f.level != Level::Sealed
                && policy
                    .level_rule(f.level)
                    .relationships
                    .has(Relationship::Any));
        let restricted_argument = f
            .arguments
            .iter()
            .find(|(_, level)| {
                *level != Level::Public
                    && !(*level != Level::Sealed
                        && policy
                            .level_rule(*level)
                            .relationships
                            .has(Relationship::Any))
            })
            .map(|(path, _)| path.join("."));
        let why = if !f.roles.is_empty() || !f.organisations.is_empty() {
            Some("it requires a role or kind of organisation".to_string())
        } else if let Some(arg) = restricted_argument {
            Some(format!(
                "its argument `{arg}` is not usable by every principal, and using it refuses the field"
            ))
        } else if traits.raisable.contains(&f.field.as_str()) {
            Some("a source's marking can raise its level".to_string())
        } else if !implied {
            Some(format!(
                "its level {} is not granted to everyone who can reach a {} (whatever grants the fields leading to it, and for case data the case's visibility)",
                f.level.as_str(),
                f.type_name
            ))
        } else {
            None
        };
        if let Some(why) = why {
            out.push((
                f.key.clone(),
                format!(
                    "`{}` is non-null in the schema but can be denied: {why}. A denied non-null field would break the response; lower its level, or make the field nullable in the schema",
                    f.key
                ),
            ));
        }
    }
    out
}

/// Whether whoever is granted `a` on a record is granted `b` on it.
fn implies(policy: &Policy, a: Level, b: Level) -> bool {
    if a == Level::Sealed {
        // Nobody is granted SEALED: whatever lies behind it is reached by nobody.
        return true;
    }
    if b == Level::Sealed {
        return false;
    }
    let (ra, rb) = (policy.level_rule(a), policy.level_rule(b));
    a == b
        || rb.relationships.has(Relationship::Any)
        || (!ra.relationships.has(Relationship::Any)
            && ra.roles.is_subset(rb.roles)
            && Relationship::ALL
                .iter()
                .filter(|r| ra.relationships.has(**r))
                .all(|r| rb.relationships.has(*r)))
}

/// For every object type, the levels (bit set) every principal who reaches one of its objects
/// is granted on it, computed as a fixpoint over the fields leading to it.
fn guarantees<'p>(policy: &'p Policy, types: &HashMap<String, TypeTraits>) -> HashMap<&'p str, u8> {
    let kind = |t: &str| types.get(t).map_or(SubjectKind::General, |tr| tr.kind);
    // Levels whose grant does not depend on the record (roles, ANY, UN): they carry over to
    // any other record.
    let universal = Level::ALL.iter().fold(0u8, |acc, l| {
        let rels = policy.level_rule(*l).relationships;
        let record_bound = [
            Relationship::HostState,
            Relationship::ContributingState,
            Relationship::NationalityState,
            Relationship::OwnVictimState,
            Relationship::FocalPoint,
        ]
        .iter()
        .any(|r| rels.has(*r));
        if record_bound {
            acc
        } else {
            acc | (1 << *l as u8)
        }
    });
    // OWN_VICTIM_STATE is the only relationship that narrows from a case (any victim's
    // state) to one of its victims (that victim's state). A level granted on the case through
    // it still holds on every victim when the level also has NATIONALITY_STATE and
    // CONTRIBUTING_STATE (which keep their case-wide meaning on a victim).
    let narrows = |l: Level| {
        let rels = policy.level_rule(l).relationships;
        rels.has(Relationship::OwnVictimState)
            && !(rels.has(Relationship::NationalityState)
                && rels.has(Relationship::ContributingState))
    };
    let own_victim_bound = Level::ALL
        .iter()
        .filter(|l| narrows(**l))
        .fold(0u8, |acc, l| acc | (1 << *l as u8));
    let mut g: HashMap<&str, u8> = policy
        .fields()
        .iter()
        .map(|f| {
            let root = f.type_name == "Query" || f.type_name == "Mutation";
            (f.type_name.as_str(), if root { 0 } else { 0b1_1111 })
        })
        .collect();
    loop {
        let mut changed = false;
        for f in policy.fields() {
            let Some(&from) = g.get(f.type_name.as_str()) else {
                continue;
            };
            if !g.contains_key(f.returns.as_str()) {
                continue;
            }
            let (pk, tk) = (kind(&f.type_name), kind(&f.returns));
            if f.level == Level::Sealed {
                // Nobody passes a SEALED field: it guarantees everything, vacuously.
                continue;
            }
            let mut incoming = from | (1 << f.level as u8);
            // A field only some roles may use guarantees the levels every one of them grants.
            if !f.roles.is_empty() {
                for l in Level::ALL {
                    if l != Level::Sealed && f.roles.is_subset(policy.level_rule(l).roles) {
                        incoming |= 1 << l as u8;
                    }
                }
            }
            incoming &= match (pk, tk) {
                (SubjectKind::General, _) => 0b1_1111,
                (SubjectKind::Case, SubjectKind::Case) => 0b1_1111,
                (SubjectKind::Case, SubjectKind::Victim) => !own_victim_bound,
                _ => universal,
            };
            // Case data is only served when its case is visible.
            if tk == SubjectKind::Case || (tk == SubjectKind::Victim && !narrows(Level::Concerned))
            {
                incoming |= 1 << Level::Concerned as u8;
            }
            let entry = g.get_mut(f.returns.as_str()).expect("checked above");
            let next = *entry & incoming;
            if next != *entry {
                *entry = next;
                changed = true;
            }
        }
        if !changed {
            return g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(org: &str, roles: &[Role]) -> Principal {
        Principal {
            subject: "someone".into(),
            organisation: Organisation::parse(org).expect("valid"),
            roles: roles.iter().copied().collect(),
            missions: vec!["MINUSMA".into()],
            issuer: "test".into(),
        }
    }

    fn access() -> Access {
        crate::schema::access_for(
            Policy::load(
                EMBEDDED_POLICY,
                "config/policy.toml",
                &crate::schema::shape(),
            )
            .expect("the bundled policy is valid"),
        )
        .expect("the bundled policy fits the schema")
    }

    fn case() -> CaseFacts {
        CaseFacts {
            id: "c".into(),
            host_state: Some("MLI".into()),
            mission: "MINUSMA".into(),
            nationalities: vec!["SEN".into(), "TCD".into()],
            contributing: vec!["SEN".into()],
            ..CaseFacts::default()
        }
    }

    #[test]
    fn relationships_come_from_the_case() {
        let a = access();
        let c = case();
        let mli = a
            .viewpoint(principal("MLI", &[Role::MemberStateAnalyst]))
            .relationships(Subject::Case(&c));
        assert!(mli.has(Relationship::HostState) && !mli.has(Relationship::NationalityState));
        let tcd = a.viewpoint(principal("TCD", &[Role::MemberStateAnalyst]));
        let rels = tcd.relationships(Subject::Case(&c));
        assert!(
            rels.has(Relationship::NationalityState) && !rels.has(Relationship::ContributingState)
        );
        assert!(tcd
            .relationships(Subject::Victim(&c, Some("TCD"), None))
            .has(Relationship::OwnVictimState));
        assert!(!tcd
            .relationships(Subject::Victim(&c, Some("SEN"), Some("SEN")))
            .has(Relationship::OwnVictimState));
        let fp = a
            .viewpoint(principal("UN", &[Role::FocalPoint]))
            .relationships(Subject::Case(&c));
        assert!(fp.has(Relationship::FocalPoint) && fp.has(Relationship::Un));
    }

    #[test]
    fn the_visibility_predicate_and_the_relationships_agree() {
        let a = access();
        let c = case();
        for (org, roles, sees) in [
            ("MLI", &[Role::MemberStateAnalyst][..], true),
            ("SEN", &[Role::MemberStateAnalyst], true),
            ("FRA", &[Role::MemberStateAnalyst], false),
            ("AU", &[Role::MemberStateAnalyst], false),
            ("UN", &[Role::UnAnalyst], true),
        ] {
            let v = a.viewpoint(principal(org, roles));
            assert_eq!(v.sees(&c), sees, "{org}");
            assert_eq!(
                v.may_read(Level::Concerned, Subject::Case(&c)),
                sees,
                "{org}"
            );
        }
        assert!(a
            .viewpoint(principal("UN", &[Role::UnAnalyst]))
            .visibility
            .is_all());
        assert!(a
            .viewpoint(principal("AU", &[Role::MemberStateAnalyst]))
            .visibility
            .is_nothing());
    }

    #[test]
    fn relationships_cached_on_a_case_belong_to_the_viewpoint_that_computed_them() {
        let a = access();
        let c = case();
        let mli = a.viewpoint(principal("MLI", &[Role::MemberStateAnalyst]));
        let fra = a.viewpoint(principal("FRA", &[Role::MemberStateAnalyst]));
        assert!(mli
            .relationships(Subject::Case(&c))
            .has(Relationship::HostState));
        // The same facts, asked by another principal: nothing of MLI's answer carries over.
        assert!(!fra
            .relationships(Subject::Case(&c))
            .has(Relationship::HostState));
        assert!(!fra.may_read(Level::Concerned, Subject::Case(&c)));
        assert!(mli.may_read(Level::CaseParties, Subject::Case(&c)));
    }

    #[test]
    fn sealed_is_never_granted() {
        let a = access();
        let c = case();
        assert!(!a
            .viewpoint(principal(
                "UN",
                &[Role::UnCaseOfficer, Role::Admin, Role::Auditor]
            ))
            .may_read(Level::Sealed, Subject::Case(&c)));
    }
}
