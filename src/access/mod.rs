//! Who may do what: the one place that says yes or no.
//!
//! Resolvers never check roles themselves: they ask this module. Today it enforces
//! authentication for every read and the case-officer role for every write; the field-level
//! sensitivity policy (levels, relationships, markings) plugs in behind the same calls.

mod principal;

pub use principal::{Organisation, Principal, PrincipalError, Role};

use crate::error::ErrorCode;

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
}

/// The access gate.
#[derive(Debug, Clone, Default)]
pub struct Access {}

impl Access {
    /// A gate with the built-in rules.
    pub fn new() -> Self {
        Self {}
    }

    /// May `principal` perform `op`? UN case officers write the record.
    pub fn authorize_write(&self, principal: &Principal, op: WriteOperation) -> Decision {
        if principal.has_role(Role::UnCaseOfficer) {
            Decision::Grant
        } else {
            Decision::Deny {
                code: ErrorCode::Forbidden,
                message: format!("{op:?} requires the un-case-officer role"),
            }
        }
    }

    /// May `principal` read the field `type_name.field` (e.g. `Victim.name`)? Every resolver of
    /// case data asks before it answers. Every authenticated principal may read today; the
    /// sensitivity policy decides per field and relationship once it is configured.
    pub fn authorize_read(&self, principal: &Principal, type_name: &str, field: &str) -> Decision {
        let _ = (principal, type_name, field);
        Decision::Grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal {
            subject: "someone".into(),
            organisation: Organisation::parse("UN").expect("valid"),
            roles: roles.iter().copied().collect(),
            missions: vec![],
            issuer: "test".into(),
        }
    }

    #[test]
    fn only_case_officers_write() {
        let gate = Access::new();
        assert_eq!(gate.authorize_write(&principal(&[Role::UnCaseOfficer]), WriteOperation::ReportCase), Decision::Grant);
        for roles in [&[Role::UnAnalyst][..], &[Role::Admin], &[Role::MemberStateAnalyst, Role::Auditor], &[]] {
            assert!(matches!(
                gate.authorize_write(&principal(roles), WriteOperation::UpdateCase),
                Decision::Deny { code: ErrorCode::Forbidden, .. }
            ));
        }
    }
}
