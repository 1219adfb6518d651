//! Who may see and do what: the one place that says yes or no.
//!
//! Resolvers never check roles themselves: they ask this module, once before fetching (may
//! this field be read at all? which cases are visible?) and again after (rules that depend on
//! the record: a victim's own state, a source's marking, a convicted defendant). The rules are
//! in the sensitivity policy (`config/policy.toml`, [`policy`]).

pub mod audit;
pub mod disclosure;
mod policy;
mod principal;

pub use policy::{
    Enforcement, Level, LevelRule, OnDenied, Policy, PolicyError, PolicyFile, Relationship,
    Relationships, EMBEDDED_POLICY,
};
pub use principal::{Organisation, Principal, PrincipalError, Role};

use crate::error::ErrorCode;
use crate::store::{CaseRecord, CaseScope};
use std::sync::Arc;

/// An operation that changes the record.
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

/// The outcome of an access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Grant,
    /// Refused, with the code and a message that names no protected value.
    Deny {
        /// Error code.
        code: ErrorCode,
        /// Message for the client.
        message: String,
    },
}

impl Decision {
    /// `Ok(())` when granted, the refusal otherwise.
    pub fn into_result(self) -> Result<(), (ErrorCode, String)> {
        match self {
            Decision::Grant => Ok(()),
            Decision::Deny { code, message } => Err((code, message)),
        }
    }

    /// Whether granted.
    pub fn granted(&self) -> bool {
        matches!(self, Decision::Grant)
    }
}

/// What access decisions need to know about a case: computed from the case itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

impl CaseFacts {
    /// The facts of a stored case.
    pub fn of(case: &CaseRecord) -> Arc<Self> {
        Arc::new(Self {
            id: case.id.clone(),
            host_state: case.host_state.clone(),
            mission: case.mission_code.clone(),
            nationalities: case.victim_nationalities.clone(),
            contributing: case.contributing_countries.clone(),
        })
    }
}

/// What a field belongs to, for relationship-dependent decisions.
#[derive(Debug, Clone, Copy, Default)]
pub enum Subject<'a> {
    /// Not case data (queries, missions, statistics).
    #[default]
    General,
    /// A case, or data of a case (follow-up actions, references, proceedings).
    Case(&'a CaseFacts),
    /// A victim of a case: adds OWN_VICTIM_STATE for the victim's own states.
    Victim(&'a CaseFacts, Option<&'a str>, Option<&'a str>),
    /// Data about a host state that is not a case (capacity-building assistance).
    HostState(&'a str),
}

/// The access gate.
#[derive(Debug, Clone)]
pub struct Access {
    policy: Arc<Policy>,
}

impl Access {
    /// A gate applying `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How `principal` relates to `subject`.
    pub fn relationships(&self, principal: &Principal, subject: Subject<'_>) -> Relationships {
        let mut rels = Relationships::default().with(Relationship::Any);
        if principal.organisation.is_un() {
            rels = rels.with(Relationship::Un);
        }
        let state = match &principal.organisation {
            Organisation::MemberState(c) => Some(c.as_str()),
            _ => None,
        };
        let case = match subject {
            Subject::General => None,
            Subject::Case(c) | Subject::Victim(c, _, _) => Some(c),
            Subject::HostState(h) => {
                if state == Some(h) {
                    rels = rels.with(Relationship::HostState);
                }
                None
            }
        };
        if let Some(case) = case {
            if let Some(state) = state {
                if case.host_state.as_deref() == Some(state) {
                    rels = rels.with(Relationship::HostState);
                }
                if case.contributing.iter().any(|c| c == state) {
                    rels = rels.with(Relationship::ContributingState);
                }
                if case.nationalities.iter().any(|c| c == state) {
                    rels = rels.with(Relationship::NationalityState);
                }
                // For a case's own fields, "the victim's own state" is the state of any victim;
                // for a victim's fields, only that victim's state (below).
                if matches!(subject, Subject::Case(_))
                    && (rels.has(Relationship::NationalityState)
                        || rels.has(Relationship::ContributingState))
                {
                    rels = rels.with(Relationship::OwnVictimState);
                }
            }
            if principal.has_role(Role::FocalPoint)
                && principal.missions.iter().any(|m| m == &case.mission)
            {
                rels = rels.with(Relationship::FocalPoint);
            }
        }
        if let (Subject::Victim(_, nationality, contributing), Some(state)) = (subject, state) {
            if nationality == Some(state) || contributing == Some(state) {
                rels = rels.with(Relationship::OwnVictimState);
            }
        }
        rels
    }

    /// May `principal` read `level` on `subject`?
    pub fn may_read_level(
        &self,
        principal: &Principal,
        level: Level,
        subject: Subject<'_>,
    ) -> bool {
        #[cfg(feature = "bench-no-enforcement")]
        {
            let _ = (principal, level, subject);
            return true;
        }
        #[cfg(not(feature = "bench-no-enforcement"))]
        self.policy
            .grants(principal, self.relationships(principal, subject), level)
    }

    /// May `principal` read `type_name.field` on `subject`, at least at `floor` (a source's
    /// marking or a record rule may raise the field's level, never lower it)?
    pub fn authorize_read(
        &self,
        principal: &Principal,
        type_name: &str,
        field: &str,
        subject: Subject<'_>,
        floor: Option<Level>,
    ) -> (Level, Decision) {
        let level = self.policy.field_level(&format!("{type_name}.{field}"));
        let level = floor.map_or(level, |f| f.max(level));
        if self.may_read_level(principal, level, subject) {
            (level, Decision::Grant)
        } else {
            (
                level,
                Decision::Deny {
                    code: ErrorCode::ForbiddenField,
                    message: format!(
                        "{type_name}.{field} is {} and not readable by this principal",
                        level.as_str()
                    ),
                },
            )
        }
    }

    /// The cases `principal` may see: `None` for every case (the policy grants CONCERNED
    /// through its roles or organisation: UN staff, auditors), else the cases related to its
    /// state or its missions (possibly none).
    pub fn case_scope(&self, principal: &Principal) -> Option<CaseScope> {
        #[cfg(feature = "bench-no-enforcement")]
        {
            let _ = principal;
            return None;
        }
        #[cfg(not(feature = "bench-no-enforcement"))]
        {
            if self.policy.grants_everywhere(principal, Level::Concerned) {
                return None;
            }
            let states = match &principal.organisation {
                Organisation::MemberState(c) => vec![c.to_string()],
                _ => Vec::new(),
            };
            let missions = if principal.has_role(Role::FocalPoint) {
                principal.missions.clone()
            } else {
                Vec::new()
            };
            Some(CaseScope { states, missions })
        }
    }

    /// Whether a case is visible to `principal` (the same rule as [`Access::case_scope`]).
    pub fn case_visible(&self, principal: &Principal, case: &CaseFacts) -> bool {
        self.case_scope(principal).is_none()
            || self.may_read_level(principal, Level::Concerned, Subject::Case(case))
    }

    /// May `principal` use the argument `key` (`Query.cases.filter.victimNationalities`)?
    /// Arguments classified CONCERNED are usable by anyone who sees cases (results are
    /// restricted to visible cases); higher levels need a grant that holds everywhere.
    pub fn authorize_argument(&self, principal: &Principal, key: &str) -> Decision {
        let Some(level) = self.policy.argument_level(key) else {
            return Decision::Grant;
        };
        let scope = self.case_scope(principal);
        let ok = match level {
            Level::Public => true,
            Level::Concerned => scope
                .as_ref()
                .is_none_or(|s| !s.states.is_empty() || !s.missions.is_empty()),
            other => self.policy.grants_everywhere(principal, other),
        };
        if ok {
            Decision::Grant
        } else {
            Decision::Deny {
                code: ErrorCode::ForbiddenField,
                message: format!(
                    "the argument {key} filters on {} data this principal cannot read",
                    level.as_str()
                ),
            }
        }
    }

    /// Whether statistics must suppress small cells for `principal` (not concerned with every
    /// case).
    pub fn suppress_small_cells(&self, principal: &Principal) -> Option<u32> {
        if self.case_scope(principal).is_none() {
            None
        } else {
            Some(self.policy.enforcement().small_cell_threshold)
        }
    }

    /// May `principal` read the audit log? Only auditors: the log names who read what, so it
    /// is neither case data nor open to the people it watches.
    pub fn authorize_audit_read(&self, principal: &Principal) -> Decision {
        if principal.has_role(Role::Auditor) {
            Decision::Grant
        } else {
            Decision::Deny {
                code: ErrorCode::Forbidden,
                message: "reading the audit log requires the auditor role".into(),
            }
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

    /// May `principal` perform `op`? UN case officers write the record; Member States submit
    /// information on cases they are concerned with, which the UN reviews.
    pub fn authorize_write(&self, principal: &Principal, op: WriteOperation) -> Decision {
        let ok = match op {
            WriteOperation::SubmitCaseInformation => {
                matches!(principal.organisation, Organisation::MemberState(_))
                    && principal.has_role(Role::MemberStateAnalyst)
            }
            _ => principal.has_role(Role::UnCaseOfficer),
        };
        if ok {
            Decision::Grant
        } else {
            let needed = match op {
                WriteOperation::SubmitCaseInformation => {
                    "a Member State principal with the member-state-analyst role"
                }
                _ => "the un-case-officer role",
            };
            Decision::Deny {
                code: ErrorCode::Forbidden,
                message: format!("{op:?} requires {needed}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn principal(org: &str, roles: &[Role]) -> Principal {
        Principal {
            subject: "someone".into(),
            organisation: Organisation::parse(org).expect("valid"),
            roles: roles.iter().copied().collect(),
            missions: vec!["MINUSMA".into()],
            issuer: "test".into(),
        }
    }

    fn gate() -> Access {
        let fields: BTreeSet<String> = crate::schema::schema_fields();
        Access::new(
            Policy::load(EMBEDDED_POLICY, "config/policy.toml", &fields)
                .expect("the bundled policy is valid"),
        )
    }

    fn case() -> CaseFacts {
        CaseFacts {
            id: "c".into(),
            host_state: Some("MLI".into()),
            mission: "MINUSMA".into(),
            nationalities: vec!["SEN".into(), "TCD".into()],
            contributing: vec!["SEN".into()],
        }
    }

    #[test]
    fn relationships_come_from_the_case() {
        let g = gate();
        let c = case();
        let mli = g.relationships(
            &principal("MLI", &[Role::MemberStateAnalyst]),
            Subject::Case(&c),
        );
        assert!(mli.has(Relationship::HostState) && !mli.has(Relationship::NationalityState));
        let tcd = g.relationships(
            &principal("TCD", &[Role::MemberStateAnalyst]),
            Subject::Case(&c),
        );
        assert!(
            tcd.has(Relationship::NationalityState) && !tcd.has(Relationship::ContributingState)
        );
        let own = g.relationships(
            &principal("TCD", &[]),
            Subject::Victim(&c, Some("TCD"), None),
        );
        assert!(own.has(Relationship::OwnVictimState));
        let other = g.relationships(
            &principal("TCD", &[]),
            Subject::Victim(&c, Some("SEN"), Some("SEN")),
        );
        assert!(!other.has(Relationship::OwnVictimState));
        let fp = g.relationships(&principal("UN", &[Role::FocalPoint]), Subject::Case(&c));
        assert!(fp.has(Relationship::FocalPoint) && fp.has(Relationship::Un));
    }

    #[test]
    fn only_case_officers_write_and_member_states_submit() {
        let g = gate();
        assert!(g
            .authorize_write(
                &principal("UN", &[Role::UnCaseOfficer]),
                WriteOperation::ReportCase
            )
            .granted());
        for roles in [
            &[Role::UnAnalyst][..],
            &[Role::Admin],
            &[Role::MemberStateAnalyst, Role::Auditor],
            &[],
        ] {
            assert!(!g
                .authorize_write(&principal("UN", roles), WriteOperation::UpdateCase)
                .granted());
        }
        assert!(g
            .authorize_write(
                &principal("MLI", &[Role::MemberStateAnalyst]),
                WriteOperation::SubmitCaseInformation
            )
            .granted());
        assert!(!g
            .authorize_write(
                &principal("UN", &[Role::UnAnalyst]),
                WriteOperation::SubmitCaseInformation
            )
            .granted());
    }

    #[test]
    fn member_states_see_their_cases_and_un_staff_see_all() {
        let g = gate();
        assert_eq!(g.case_scope(&principal("UN", &[Role::UnAnalyst])), None);
        let scope = g
            .case_scope(&principal("MLI", &[Role::MemberStateAnalyst]))
            .expect("scoped");
        assert_eq!(scope.states, vec!["MLI".to_string()]);
        let au = g
            .case_scope(&principal("AU", &[Role::MemberStateAnalyst]))
            .expect("scoped");
        assert!(
            au.states.is_empty() && au.missions.is_empty(),
            "a regional organisation sees no case"
        );
    }

    #[test]
    fn sealed_is_never_granted() {
        let g = gate();
        let c = case();
        assert!(!g.may_read_level(
            &principal("UN", &[Role::UnCaseOfficer, Role::Admin, Role::Auditor]),
            Level::Sealed,
            Subject::Case(&c)
        ));
    }
}
