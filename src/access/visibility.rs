//! Which cases a principal may see, and how it relates to one case: both from one function,
//! [`condition`], which turns a relationship into a condition on a case.
//!
//! The store translates a [`Visibility`] into SQL (`store::sql`), the enforcement point
//! evaluates the same conditions in memory ([`Visibility::matches`], and
//! [`super::Viewpoint::relationships`]), so lists, counts, `case(id)`, `_entities`, statistics and
//! nested back-edges agree under any policy.

use super::{CaseFacts, Organisation, Principal, Relationship, Role};

/// A condition on a case, in terms the store can evaluate in SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CaseCondition {
    /// The case's host state is one of these.
    HostStateIn(Vec<String>),
    /// A victim's nationality is one of these.
    VictimNationalityIn(Vec<String>),
    /// A victim's contributing country is one of these.
    VictimContributorIn(Vec<String>),
    /// The case's mission is one of these.
    MissionIn(Vec<String>),
}

impl CaseCondition {
    /// Whether the case satisfies the condition.
    pub fn matches(&self, case: &CaseFacts) -> bool {
        match self {
            CaseCondition::HostStateIn(s) => {
                case.host_state.as_ref().is_some_and(|h| s.contains(h))
            }
            CaseCondition::VictimNationalityIn(s) => {
                case.nationalities.iter().any(|n| s.contains(n))
            }
            CaseCondition::VictimContributorIn(s) => {
                case.contributing.iter().any(|n| s.contains(n))
            }
            CaseCondition::MissionIn(s) => s.contains(&case.mission),
        }
    }
}

/// What a relationship means for one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Holds for every case (ANY; UN for a UN principal).
    Always,
    /// Holds for no case (the principal cannot have this relationship).
    Never,
    /// Holds for the cases satisfying any of these.
    Cases(Vec<CaseCondition>),
}

/// The one definition of the case-level relationships: what relationship `r` between
/// `principal` and a case requires of the case. `OWN_VICTIM_STATE` at case level is "the state
/// of any of its victims" (a victim's own fields narrow it to that victim, see
/// [`super::Viewpoint::relationships`]).
pub fn condition(principal: &Principal, r: Relationship) -> Condition {
    let state = match &principal.organisation {
        Organisation::MemberState(c) => Some(vec![c.to_string()]),
        _ => None,
    };
    match (r, state) {
        (Relationship::Any, _) => Condition::Always,
        (Relationship::Un, _) if principal.organisation.is_un() => Condition::Always,
        (Relationship::Un, _) => Condition::Never,
        (Relationship::HostState, Some(s)) => Condition::Cases(vec![CaseCondition::HostStateIn(s)]),
        (Relationship::ContributingState, Some(s)) => {
            Condition::Cases(vec![CaseCondition::VictimContributorIn(s)])
        }
        (Relationship::NationalityState, Some(s)) => {
            Condition::Cases(vec![CaseCondition::VictimNationalityIn(s)])
        }
        (Relationship::OwnVictimState, Some(s)) => Condition::Cases(vec![
            CaseCondition::VictimNationalityIn(s.clone()),
            CaseCondition::VictimContributorIn(s),
        ]),
        (Relationship::FocalPoint, _)
            if principal.has_role(Role::FocalPoint) && !principal.missions.is_empty() =>
        {
            Condition::Cases(vec![CaseCondition::MissionIn(principal.missions.clone())])
        }
        _ => Condition::Never,
    }
}

/// The cases a principal may see: compiled from `[levels.CONCERNED]` by
/// [`super::Access::viewpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Visibility {
    /// Every case.
    All,
    /// No case. The default, so that a filter nobody scoped sees nothing.
    #[default]
    Nothing,
    /// The cases satisfying any of these conditions.
    Any(Vec<CaseCondition>),
}

impl Visibility {
    /// The visibility granting what any of `conditions` grants.
    pub fn from_conditions(conditions: impl IntoIterator<Item = Condition>) -> Self {
        let mut any = Vec::new();
        for c in conditions {
            match c {
                Condition::Always => return Visibility::All,
                Condition::Never => {}
                Condition::Cases(cs) => {
                    for c in cs {
                        if !any.contains(&c) {
                            any.push(c);
                        }
                    }
                }
            }
        }
        if any.is_empty() {
            Visibility::Nothing
        } else {
            Visibility::Any(any)
        }
    }

    /// Whether the case is visible.
    pub fn matches(&self, case: &CaseFacts) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Nothing => false,
            Visibility::Any(cs) => cs.iter().any(|c| c.matches(case)),
        }
    }

    /// Every case is visible.
    pub fn is_all(&self) -> bool {
        matches!(self, Visibility::All)
    }

    /// No case is visible.
    pub fn is_nothing(&self) -> bool {
        matches!(self, Visibility::Nothing)
    }

    /// Host states all of whose cases are visible (statistics: cells of those host states
    /// are known to the principal in full).
    pub fn complete_hosts(&self) -> Vec<String> {
        self.conditions()
            .filter_map(|c| match c {
                CaseCondition::HostStateIn(s) => Some(s.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Missions all of whose cases are visible (a focal point's).
    pub fn complete_missions(&self) -> Vec<String> {
        self.conditions()
            .filter_map(|c| match c {
                CaseCondition::MissionIn(s) => Some(s.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn conditions(&self) -> impl Iterator<Item = &CaseCondition> {
        match self {
            Visibility::Any(cs) => cs.iter(),
            _ => [].iter(),
        }
    }
}
