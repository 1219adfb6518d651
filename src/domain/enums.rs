//! Closed vocabularies of the canonical model (`docs/architecture.md`, "The canonical model").
//! Each value has one spelling, used in GraphQL, in the store and in configuration alike.

use super::ParseError;

macro_rules! domain_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 async_graphql::Enum, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling (SCREAMING_SNAKE_CASE).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the canonical spelling.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError::Enum { kind: stringify!($name), value: s.chars().take(40).collect() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

domain_enum! {
    /// What kind of UN presence a mission is.
    MissionKind {
        /// A peacekeeping operation led by DPO.
        PeacekeepingOperation = "PEACEKEEPING_OPERATION",
        /// A special political mission (e.g. UNAMA, UNSOM).
        SpecialPoliticalMission = "SPECIAL_POLITICAL_MISSION",
        /// A UN entity that is not a mission (e.g. the UN Secretariat).
        UnEntity = "UN_ENTITY",
        /// Anything else.
        Other = "OTHER",
    }
}

domain_enum! {
    /// Whether a mission still operates. Cases of closed missions stay queryable (res. 2589 §4).
    MissionStatus {
        /// Operating.
        Active = "ACTIVE",
        /// Closed; its cases remain in the record.
        Closed = "CLOSED",
    }
}

domain_enum! {
    /// An act of violence against UN personnel.
    Act {
        /// Killing.
        Killing = "KILLING",
        /// Assault or injury.
        AssaultInjury = "ASSAULT_INJURY",
        /// Detention.
        Detention = "DETENTION",
        /// Abduction.
        Abduction = "ABDUCTION",
        /// Attack on UN premises.
        AttackOnPremises = "ATTACK_ON_PREMISES",
        /// Improvised explosive device.
        Ied = "IED",
        /// Indirect fire (mortar, rocket).
        IndirectFire = "INDIRECT_FIRE",
        /// Ambush of a convoy or patrol.
        Ambush = "AMBUSH",
        /// Other malicious act.
        OtherMaliciousAct = "OTHER_MALICIOUS_ACT",
    }
}

domain_enum! {
    /// Category of UN personnel.
    PersonnelCategory {
        /// Contingent military personnel.
        Military = "MILITARY",
        /// Military observers and staff officers.
        MilitaryObserver = "MILITARY_OBSERVER",
        /// Individual police and formed police units.
        Police = "POLICE",
        /// International civilian staff.
        InternationalCivilian = "INTERNATIONAL_CIVILIAN",
        /// National (locally recruited) civilian staff.
        NationalCivilian = "NATIONAL_CIVILIAN",
        /// Others (UN Volunteers, contractors, consultants...).
        Other = "OTHER",
    }
}

impl PersonnelCategory {
    /// Uniformed personnel are contributed by a Member State (a TCC or PCC).
    pub fn is_uniformed(self) -> bool {
        matches!(self, Self::Military | Self::MilitaryObserver | Self::Police)
    }
}

domain_enum! {
    /// What happened to a victim.
    Harm {
        /// Killed.
        Killed = "KILLED",
        /// Injured.
        Injured = "INJURED",
        /// Detained.
        Detained = "DETAINED",
        /// Abducted.
        Abducted = "ABDUCTED",
    }
}

domain_enum! {
    /// Gender as recorded.
    Gender {
        /// Female.
        Female = "FEMALE",
        /// Male.
        Male = "MALE",
        /// Another gender.
        Other = "OTHER",
    }
}

domain_enum! {
    /// A UN follow-up measure on a case (res. 2589 §4(b)).
    FollowUpKind {
        /// A board of inquiry convened.
        BoardOfInquiry = "BOARD_OF_INQUIRY",
        /// The case referred to the host state's authorities.
        ReferralToHostState = "REFERRAL_TO_HOST_STATE",
        /// A note verbale sent.
        NoteVerbale = "NOTE_VERBALE",
        /// Support given to a national investigation.
        InvestigationSupport = "INVESTIGATION_SUPPORT",
        /// Advocacy with national authorities.
        Advocacy = "ADVOCACY",
        /// Reported to the Security Council.
        SecurityCouncilReporting = "SECURITY_COUNCIL_REPORTING",
        /// Support to victims and families.
        FamilySupport = "FAMILY_SUPPORT",
        /// Other measure.
        Other = "OTHER",
    }
}

domain_enum! {
    /// Kind of capacity-building assistance the UN offers a host state (res. 2589 §5).
    AssistanceKind {
        /// Forensics.
        Forensics = "FORENSICS",
        /// Evidence collection.
        EvidenceCollection = "EVIDENCE_COLLECTION",
        /// Investigation support.
        InvestigationSupport = "INVESTIGATION_SUPPORT",
        /// Prosecution support.
        ProsecutionSupport = "PROSECUTION_SUPPORT",
        /// Witness protection.
        WitnessProtection = "WITNESS_PROTECTION",
        /// Court security.
        CourtSecurity = "COURT_SECURITY",
        /// Detention security.
        DetentionSecurity = "DETENTION_SECURITY",
        /// Training.
        Training = "TRAINING",
        /// Logistics.
        Logistics = "LOGISTICS",
        /// Technical advice.
        TechnicalAdvice = "TECHNICAL_ADVICE",
    }
}

domain_enum! {
    /// Where an offer of assistance stands.
    AssistanceStatus {
        /// Offered by the UN.
        Offered = "OFFERED",
        /// Accepted by the host state.
        Accepted = "ACCEPTED",
        /// Delivered.
        Delivered = "DELIVERED",
        /// Declined by the host state.
        Declined = "DECLINED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_spelling() {
        for act in Act::ALL {
            assert_eq!(Act::parse(act.as_str()), Ok(*act));
        }
        for k in AssistanceKind::ALL {
            assert_eq!(AssistanceKind::parse(k.as_str()), Ok(*k));
        }
        assert!(Harm::parse("killed").is_err(), "spellings are exact");
    }
}
