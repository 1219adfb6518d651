//! The canonical model of national proceedings (`docs/architecture.md`, "The canonical model"):
//! what every connector maps its national vocabulary onto.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

macro_rules! canonical_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 async_graphql::Enum, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the canonical spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

canonical_enum! {
    /// Where a national case stands (grounded in UN-CTS stages and ICC outcome categories).
    CaseStage {
        /// Reported to the authorities.
        Reported = "REPORTED",
        /// Referred to the national authority (prosecutor).
        ReferredToNationalAuthority = "REFERRED_TO_NATIONAL_AUTHORITY",
        /// Under investigation.
        UnderInvestigation = "UNDER_INVESTIGATION",
        /// A suspect is identified.
        SuspectIdentified = "SUSPECT_IDENTIFIED",
        /// Charges brought.
        Charged = "CHARGED",
        /// Trial scheduled.
        TrialScheduled = "TRIAL_SCHEDULED",
        /// Trial ongoing.
        TrialOngoing = "TRIAL_ONGOING",
        /// Judgment delivered.
        Judgment = "JUDGMENT",
        /// Appeal pending.
        AppealPending = "APPEAL_PENDING",
        /// Final.
        Final = "FINAL",
        /// Closed: no suspect identified.
        ClosedNoSuspect = "CLOSED_NO_SUSPECT",
        /// Dismissed.
        Dismissed = "DISMISSED",
        /// Charges withdrawn.
        ChargesWithdrawn = "CHARGES_WITHDRAWN",
        /// Suspended: suspect at large.
        SuspendedSuspectAtLarge = "SUSPENDED_SUSPECT_AT_LARGE",
        /// Extinguished (death of the accused, amnesty, limitation).
        Extinguished = "EXTINGUISHED",
        /// Transferred to another jurisdiction.
        Transferred = "TRANSFERRED",
        /// The source holds no information on the stage.
        NoInformation = "NO_INFORMATION",
    }
}

canonical_enum! {
    /// Where a defendant stands.
    DefendantStatus {
        /// At large.
        AtLarge = "AT_LARGE",
        /// A warrant is issued.
        WarrantIssued = "WARRANT_ISSUED",
        /// Arrested.
        Arrested = "ARRESTED",
        /// In custody.
        InCustody = "IN_CUSTODY",
        /// Provisionally released.
        ProvisionallyReleased = "PROVISIONALLY_RELEASED",
        /// Convicted.
        Convicted = "CONVICTED",
        /// Acquitted.
        Acquitted = "ACQUITTED",
        /// Serving a sentence.
        SentenceServing = "SENTENCE_SERVING",
        /// Sentence served.
        SentenceServed = "SENTENCE_SERVED",
        /// Deceased.
        Deceased = "DECEASED",
    }
}

canonical_enum! {
    /// Kind of court.
    CourtType {
        /// Ordinary civilian court.
        Civilian = "CIVILIAN",
        /// Military court.
        Military = "MILITARY",
        /// Special court or chamber (e.g. a specialised terrorism court).
        Special = "SPECIAL",
    }
}

/// A canonical value, or the national label that has no mapping (kept, never dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mapped<T> {
    /// Mapped onto the canonical vocabulary.
    Known(T),
    /// The national label that the connector's table does not map.
    Unmapped(String),
}

/// One dated stage of the national case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    /// Canonical stage.
    pub stage: Mapped<CaseStage>,
    /// The national label, as the source gives it.
    pub national_label: String,
    /// When it was reached.
    pub date: Option<NaiveDate>,
}

/// The court seized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Court {
    /// Name.
    pub name: Option<String>,
    /// Kind.
    pub court_type: Option<Mapped<CourtType>>,
}

/// A person prosecuted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defendant {
    /// Name, as the source gives it.
    pub name: Option<String>,
    /// Status.
    pub status: Option<Mapped<DefendantStatus>>,
    /// The national status label.
    pub national_status: Option<String>,
    /// Tried in absentia.
    pub in_absentia: Option<bool>,
    /// Verdict, as worded by the court.
    pub verdict: Option<String>,
    /// Sentence, as worded by the court.
    pub sentence: Option<String>,
    /// The source's own confidentiality marking of this defendant, as given. Never a SEALED
    /// marking: the connector layer removes a SEALED defendant before the cache (see
    /// [`Proceedings::sealed_parts`]). The schema layer raises the level of every field of this
    /// defendant to the marking's level.
    #[serde(default)]
    pub marking: Option<String>,
}

/// National proceedings on one UN case, as one connector reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proceedings {
    /// The key the record was matched by (UN reference or national reference).
    pub key: String,
    /// The national reference.
    pub national_reference: Option<String>,
    /// The authority in charge.
    pub authority: Option<String>,
    /// Current canonical stage.
    pub stage: Option<Mapped<CaseStage>>,
    /// Current national stage label.
    pub national_stage: Option<String>,
    /// Dated stage history, oldest first.
    pub stage_history: Vec<StageEntry>,
    /// Court.
    pub court: Option<Court>,
    /// Charges.
    pub charges: Vec<String>,
    /// Defendants.
    pub defendants: Vec<Defendant>,
    /// Next hearing.
    pub next_hearing: Option<NaiveDate>,
    /// When the source last changed the record.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// The source's own confidentiality marking of the whole record, as given. Never a SEALED
    /// marking: the connector layer replaces a SEALED record by [`Proceedings::withheld`]
    /// before the cache.
    pub marking: Option<String>,
    /// The source's own markings of single fields, keyed by protocol field name
    /// ([`FieldMask::NAMES`]: `national_reference`, `authority`, `stage`, `stage_history`,
    /// `court`, `charges`, `defendants`, `next_hearing`, `updated_at`), as given. Never a SEALED
    /// marking: the connector layer empties a SEALED field and removes its entry before the
    /// cache (see [`Proceedings::sealed_parts`]). A marking of `stage` covers `national_stage`
    /// too, `court` covers its name and type, `updated_at` covers `source_updated_at`, and
    /// `defendants` covers every defendant. The schema layer raises the level of that field
    /// (and of everything under it) to the marking's level.
    #[serde(default)]
    pub field_markings: BTreeMap<String, String>,
    /// The source marks the whole record SEALED: its content was dropped in the connector layer
    /// and only `key` remains. Set by the connector layer, never by a source.
    #[serde(default)]
    pub sealed: bool,
    /// The source marks some fields or defendants SEALED: they were dropped in the connector
    /// layer (the field emptied, the defendant removed). The rest of the record is served. Set
    /// by the connector layer, never by a source.
    #[serde(default)]
    pub sealed_parts: bool,
}

impl Proceedings {
    /// A record whose content is withheld (SEALED at the source): only its key remains, and
    /// the fact that a sealed record exists (`sealed`).
    pub fn withheld(key: &str) -> Self {
        Self {
            key: key.to_string(),
            national_reference: None,
            authority: None,
            stage: None,
            national_stage: None,
            stage_history: Vec::new(),
            court: None,
            charges: Vec::new(),
            defendants: Vec::new(),
            next_hearing: None,
            source_updated_at: None,
            marking: None,
            field_markings: BTreeMap::new(),
            sealed: true,
            sealed_parts: false,
        }
    }

    /// Empties the field(s) of `bit` (one of the [`FieldMask`] constants) and forgets their
    /// marking.
    pub fn clear(&mut self, bit: u16) {
        match bit {
            FieldMask::NATIONAL_REFERENCE => self.national_reference = None,
            FieldMask::AUTHORITY => self.authority = None,
            FieldMask::STAGE => {
                self.stage = None;
                self.national_stage = None;
            }
            FieldMask::STAGE_HISTORY => self.stage_history.clear(),
            FieldMask::COURT => self.court = None,
            FieldMask::CHARGES => self.charges.clear(),
            FieldMask::DEFENDANTS => self.defendants.clear(),
            FieldMask::NEXT_HEARING => self.next_hearing = None,
            FieldMask::UPDATED_AT => self.source_updated_at = None,
            _ => {}
        }
        if let Some(name) = FieldMask::name_of(bit) {
            self.field_markings.remove(name);
        }
    }

    /// Keeps only the fields of `mask` (and their markings); the key, the record's marking and
    /// the sealed flags always stay.
    pub fn retain_fields(&mut self, mask: FieldMask) {
        for (_, bit) in FieldMask::NAMES {
            if !mask.has(bit) {
                self.clear(bit);
            }
        }
        self.field_markings
            .retain(|name, _| FieldMask::bit_of(name).is_some_and(|b| mask.has(b)));
    }
}

/// How fresh a served record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, Serialize)]
pub enum FreshnessState {
    /// Fetched from the source for this request.
    Live,
    /// Served from the cache within its time to live.
    Cached,
    /// Served from the cache past its time to live because the source failed.
    Stale,
}

/// Which parts of a national record a lookup asks for. The access gate decides them before
/// any call, so that a field a principal may not read is never requested from a system that
/// can answer field by field (the `protocol` kind); the key and the marking are always asked,
/// and the markings of the fields asked come with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FieldMask(pub u16);

impl FieldMask {
    /// The national reference.
    pub const NATIONAL_REFERENCE: u16 = 1;
    /// The authority.
    pub const AUTHORITY: u16 = 1 << 1;
    /// The current stage (canonical and national).
    pub const STAGE: u16 = 1 << 2;
    /// The stage history.
    pub const STAGE_HISTORY: u16 = 1 << 3;
    /// The court.
    pub const COURT: u16 = 1 << 4;
    /// The charges.
    pub const CHARGES: u16 = 1 << 5;
    /// The defendants.
    pub const DEFENDANTS: u16 = 1 << 6;
    /// The next hearing.
    pub const NEXT_HEARING: u16 = 1 << 7;
    /// When the source changed the record.
    pub const UPDATED_AT: u16 = 1 << 8;
    /// Everything.
    pub const ALL: FieldMask = FieldMask((1 << 9) - 1);

    /// Protocol field names and their bits.
    pub const NAMES: [(&'static str, u16); 9] = [
        ("national_reference", Self::NATIONAL_REFERENCE),
        ("authority", Self::AUTHORITY),
        ("stage", Self::STAGE),
        ("stage_history", Self::STAGE_HISTORY),
        ("court", Self::COURT),
        ("charges", Self::CHARGES),
        ("defendants", Self::DEFENDANTS),
        ("next_hearing", Self::NEXT_HEARING),
        ("updated_at", Self::UPDATED_AT),
    ];

    /// The bit of a protocol field name (`"court"` → [`FieldMask::COURT`]).
    pub fn bit_of(name: &str) -> Option<u16> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
    }

    /// The protocol field name of one bit.
    pub fn name_of(bit: u16) -> Option<&'static str> {
        Self::NAMES.iter().find(|(_, b)| *b == bit).map(|(n, _)| *n)
    }

    /// Whether the field(s) of `bit` are in the mask.
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// Whether every field of `other` is in `self`.
    pub fn covers(self, other: FieldMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// The protocol names of the fields in the mask.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, b)| self.0 & b != 0)
            .map(|(n, _)| *n)
            .collect()
    }
}
