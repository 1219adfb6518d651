//! The principal: who is calling, from the verified token's claims.

use crate::domain::CountryCode;
use std::collections::BTreeSet;
use std::fmt;

/// Regional organisations with their own access level (res. 2589 §7).
const REGIONAL_ORGANISATIONS: &[&str] = &[
    "AU", "EU", "ECOWAS", "ECCAS", "SADC", "IGAD", "LAS", "OIF", "OSCE",
];

/// A role a token may carry (claim `roles`, kebab-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, async_graphql::Enum)]
pub enum Role {
    /// UN case officer: writes the record.
    UnCaseOfficer,
    /// UN analyst.
    UnAnalyst,
    /// Mission focal point (res. 2589 §9).
    FocalPoint,
    /// Member-State analyst.
    MemberStateAnalyst,
    /// Auditor.
    Auditor,
    /// Administrator.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: &'static [Role] = &[
        Role::UnCaseOfficer,
        Role::UnAnalyst,
        Role::FocalPoint,
        Role::MemberStateAnalyst,
        Role::Auditor,
        Role::Admin,
    ];

    /// The claim spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::UnCaseOfficer => "un-case-officer",
            Role::UnAnalyst => "un-analyst",
            Role::FocalPoint => "focal-point",
            Role::MemberStateAnalyst => "member-state-analyst",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses the claim spelling.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// The organisation a principal acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Organisation {
    /// A Member State, by ISO alpha-3 code.
    MemberState(CountryCode),
    /// The UN ("UN") or one of its entities ("UN/DPO").
    UnEntity(String),
    /// A regional organisation ("AU").
    RegionalOrganisation(String),
}

impl Organisation {
    /// Parses the `org` claim.
    pub fn parse(raw: &str) -> Result<Self, PrincipalError> {
        let s = raw.trim();
        if s == "UN" || (s.starts_with("UN/") && s.len() > 3 && s.len() <= 40) {
            return Ok(Organisation::UnEntity(s.to_string()));
        }
        if REGIONAL_ORGANISATIONS.contains(&s) {
            return Ok(Organisation::RegionalOrganisation(s.to_string()));
        }
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) {
            if let Ok(code) = CountryCode::parse(s) {
                return Ok(Organisation::MemberState(code));
            }
        }
        Err(PrincipalError::UnknownOrganisation)
    }

    /// Whether the principal acts for the UN.
    pub fn is_un(&self) -> bool {
        matches!(self, Organisation::UnEntity(_))
    }
}

impl fmt::Display for Organisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Organisation::MemberState(c) => write!(f, "{c}"),
            Organisation::UnEntity(s) | Organisation::RegionalOrganisation(s) => f.write_str(s),
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token subject.
    pub subject: String,
    /// Organisation.
    pub organisation: Organisation,
    /// Roles (unknown role names in the token are ignored: they grant nothing).
    pub roles: BTreeSet<Role>,
    /// Missions a focal point serves.
    pub missions: Vec<String>,
    /// Token issuer.
    pub issuer: String,
}

/// Why claims do not make a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// `org` is neither a Member State code, the UN nor a known regional organisation.
    #[error("the token's `org` claim is not an ISO alpha-3 Member State code, `UN`, `UN/<entity>` or a known regional organisation")]
    UnknownOrganisation,
}

impl Principal {
    /// Builds a principal from verified claims.
    pub fn from_claims(
        issuer: &str,
        subject: &str,
        org: &str,
        roles: &[String],
        missions: &[String],
    ) -> Result<Self, PrincipalError> {
        Ok(Principal {
            subject: subject.to_string(),
            organisation: Organisation::parse(org)?,
            roles: roles.iter().filter_map(|r| Role::parse(r)).collect(),
            missions: missions.to_vec(),
            issuer: issuer.to_string(),
        })
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisations_parse_by_kind() {
        assert!(matches!(
            Organisation::parse("MLI"),
            Ok(Organisation::MemberState(_))
        ));
        assert!(matches!(
            Organisation::parse("UN/DPO"),
            Ok(Organisation::UnEntity(_))
        ));
        assert!(matches!(
            Organisation::parse("AU"),
            Ok(Organisation::RegionalOrganisation(_))
        ));
        for bad in ["mli", "XXX", "UN/", "", "ACME"] {
            assert!(Organisation::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn unknown_roles_grant_nothing() {
        let p = Principal::from_claims(
            "i",
            "s",
            "FRA",
            &["member-state-analyst".into(), "superuser".into()],
            &[],
        )
        .expect("valid");
        assert_eq!(p.roles.len(), 1);
        assert!(p.has_role(Role::MemberStateAnalyst));
    }
}
