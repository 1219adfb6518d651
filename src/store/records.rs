//! Rows of the store as Rust values, and the filters and inputs its methods take.

use crate::domain::{
    Act, AssistanceKind, AssistanceStatus, CountryCode, FollowUpKind, Gender, Harm, MissionCode,
    MissionKind, MissionStatus, PersonnelCategory,
};
use chrono::{DateTime, NaiveDate, Utc};

/// A mission's focal point for safety and security cases (res. 2589 §9).
#[derive(Debug, Clone, PartialEq)]
pub struct FocalPoint {
    /// Name or function title.
    pub name: String,
    /// Contact e-mail.
    pub email: Option<String>,
}

/// A UN mission (or UN entity under which cases are recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct MissionRecord {
    /// Code, e.g. MINUSMA.
    pub code: MissionCode,
    /// Full name.
    pub name: String,
    /// Kind.
    pub kind: MissionKind,
    /// Active or closed.
    pub status: MissionStatus,
    /// Start date, if known.
    pub start_date: Option<NaiveDate>,
    /// End date, if closed and known.
    pub end_date: Option<NaiveDate>,
    /// Territories where it operated, main one first.
    pub host_territories: Vec<CountryCode>,
    /// Headquarters location name.
    pub location_name: Option<String>,
    /// Headquarters latitude.
    pub latitude: Option<f64>,
    /// Headquarters longitude.
    pub longitude: Option<f64>,
    /// Focal point.
    pub focal_point: Option<FocalPoint>,
}

/// One incident.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// Opaque id (UUID).
    pub id: String,
    /// Human reference, e.g. MINUSMA-20210113.
    pub reference: String,
    /// Mission code.
    pub mission_code: String,
    /// Host state (alpha-3), when known.
    pub host_state: Option<String>,
    /// Date of the incident.
    pub incident_date: NaiveDate,
    /// Date the UN recorded it, when known.
    pub reported_date: Option<NaiveDate>,
    /// Acts.
    pub acts: Vec<Act>,
    /// Region (first-level administrative area).
    pub region: Option<String>,
    /// Locality.
    pub locality: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Summary.
    pub summary: Option<String>,
    /// Alleged perpetrator groups.
    pub perpetrator_groups: Vec<String>,
    /// Number of victims recorded.
    pub victim_count: i64,
    /// Distinct nationalities of the victims (alpha-3), for access decisions.
    pub victim_nationalities: Vec<String>,
    /// Distinct contributing countries of the victims (alpha-3), for access decisions.
    pub contributing_countries: Vec<String>,
    /// Optimistic-concurrency version, 1 on creation.
    pub version: i64,
    /// Where the record came from ("DPPADPOSS-FATALITIES" or "reported").
    pub source: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A person harmed in an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct VictimRecord {
    /// Opaque id.
    pub id: String,
    /// Case id.
    pub case_id: String,
    /// Personnel category.
    pub category: PersonnelCategory,
    /// Troop- or police-contributing country.
    pub contributing_country: Option<String>,
    /// Nationality.
    pub nationality: Option<String>,
    /// Harm.
    pub harm: Harm,
    /// Gender.
    pub gender: Option<Gender>,
    /// Name.
    pub name: Option<String>,
    /// Service number.
    pub service_number: Option<String>,
}

/// A UN follow-up action (§4(b)).
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpRecord {
    /// Opaque id.
    pub id: String,
    /// Case id.
    pub case_id: String,
    /// Kind.
    pub kind: FollowUpKind,
    /// What was done.
    pub description: String,
    /// When it was done.
    pub taken_on: NaiveDate,
    /// Who recorded it (token subject).
    pub recorded_by: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// A national case-file reference recorded by the UN.
#[derive(Debug, Clone, PartialEq)]
pub struct NationalReferenceRecord {
    /// Opaque id.
    pub id: String,
    /// Case id.
    pub case_id: String,
    /// State whose authority holds the file.
    pub state: String,
    /// Authority (e.g. "Pôle judiciaire spécialisé, Bamako").
    pub authority: String,
    /// The national reference.
    pub reference: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// Capacity-building assistance (§5).
#[derive(Debug, Clone, PartialEq)]
pub struct AssistanceRecord {
    /// Opaque id.
    pub id: String,
    /// Host state helped.
    pub host_state: String,
    /// Kind.
    pub kind: AssistanceKind,
    /// UN provider (e.g. "MINUSMA Justice and Corrections Section", "UNODC").
    pub provider: String,
    /// Status.
    pub status: AssistanceStatus,
    /// Start of the period.
    pub period_start: Option<NaiveDate>,
    /// End of the period.
    pub period_end: Option<NaiveDate>,
    /// Description.
    pub description: Option<String>,
    /// Linked case ids.
    pub case_ids: Vec<String>,
    /// Version.
    pub version: i64,
    /// When recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Mission list filter.
#[derive(Debug, Clone, Default)]
pub struct MissionFilter {
    /// Only this status.
    pub status: Option<MissionStatus>,
    /// Only this kind.
    pub kind: Option<MissionKind>,
}

/// Case filter; every set field narrows the result (AND), lists match any of their values (OR).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseFilter {
    /// Mission codes.
    pub missions: Vec<String>,
    /// Host states.
    pub host_states: Vec<String>,
    /// Acts.
    pub acts: Vec<Act>,
    /// Victim personnel categories.
    pub victim_categories: Vec<PersonnelCategory>,
    /// Victim nationalities.
    pub victim_nationalities: Vec<String>,
    /// Contributing countries.
    pub contributing_countries: Vec<String>,
    /// Incident on or after.
    pub from: Option<NaiveDate>,
    /// Incident on or before.
    pub to: Option<NaiveDate>,
    /// Only cases of missions in this status.
    pub mission_status: Option<MissionStatus>,
    /// Only the cases the caller may see: set from the access policy, never by clients. The
    /// default sees nothing, so a filter nobody scoped leaks nothing; [`CaseFilter::all`] is
    /// for the UN-wide and internal uses that mean every case.
    pub visibility: crate::access::Visibility,
}

impl CaseFilter {
    /// No narrowing at all: every case.
    pub fn all() -> Self {
        Self {
            visibility: crate::access::Visibility::All,
            ..Self::default()
        }
    }
}

/// Field a case list is ordered by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize,
)]
pub enum CaseOrderField {
    /// Incident date.
    IncidentDate,
    /// Reference.
    Reference,
    /// Mission code.
    Mission,
    /// Number of victims.
    VictimCount,
}

/// Direction.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize,
)]
pub enum OrderDirection {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Ordering of a case list; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaseOrder {
    /// Field.
    pub field: CaseOrderField,
    /// Direction.
    pub direction: OrderDirection,
}

impl Default for CaseOrder {
    fn default() -> Self {
        Self {
            field: CaseOrderField::IncidentDate,
            direction: OrderDirection::Desc,
        }
    }
}

/// Position after which the next page starts: the last row's sort key and id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseCursor {
    /// The order the cursor was issued for.
    pub order: CaseOrder,
    /// Sort key of the last row (text or integer, as JSON).
    pub key: serde_json::Value,
    /// Id of the last row.
    pub id: String,
}

impl CaseCursor {
    /// The cursor pointing just after `case` in `order`.
    pub fn after(case: &CaseRecord, order: CaseOrder) -> Self {
        let key = match order.field {
            CaseOrderField::IncidentDate => serde_json::Value::from(case.incident_date.to_string()),
            CaseOrderField::Reference => serde_json::Value::from(case.reference.clone()),
            CaseOrderField::Mission => serde_json::Value::from(case.mission_code.clone()),
            CaseOrderField::VictimCount => serde_json::Value::from(case.victim_count),
        };
        Self {
            order,
            key,
            id: case.id.clone(),
        }
    }
}

/// Assistance list filter.
#[derive(Debug, Clone, Default)]
pub struct AssistanceFilter {
    /// Host states.
    pub host_states: Vec<String>,
    /// Kinds.
    pub kinds: Vec<AssistanceKind>,
    /// Status.
    pub status: Option<AssistanceStatus>,
}

/// Dimension statistics are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum StatisticsDimension {
    /// Mission code.
    Mission,
    /// Host state.
    HostState,
    /// Year of the incident.
    Year,
    /// Act (a case with two acts counts in both groups).
    Act,
}

/// One group of a statistics answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsRow {
    /// Group key (mission code, alpha-3, year or act); `None` where unknown.
    pub key: Option<String>,
    /// Cases in the group.
    pub case_count: i64,
    /// Victims in the group.
    pub victim_count: i64,
}

/// Cases and victims of one (mission, host state, incident year) group: the joint table the
/// one-way statistics tables are margins of (see `access::disclosure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossCount {
    /// Mission code.
    pub mission: String,
    /// Host state (alpha-3); `None` where unknown.
    pub host_state: Option<String>,
    /// Incident year, as the YEAR statistics key spells it (`"2013"`).
    pub year: String,
    /// Cases in the group.
    pub cases: i64,
    /// Victims of those cases.
    pub victims: i64,
}

/// A new case.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// Mission.
    pub mission_code: String,
    /// Host state; defaults to the mission's main territory.
    pub host_state: Option<String>,
    /// Incident date.
    pub incident_date: NaiveDate,
    /// Reported date.
    pub reported_date: Option<NaiveDate>,
    /// Acts (at least one).
    pub acts: Vec<Act>,
    /// Region.
    pub region: Option<String>,
    /// Locality.
    pub locality: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Summary.
    pub summary: Option<String>,
    /// Alleged perpetrator groups.
    pub perpetrator_groups: Vec<String>,
}

/// Changes to a case; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CasePatch {
    /// New host state.
    pub host_state: Option<String>,
    /// New incident date.
    pub incident_date: Option<NaiveDate>,
    /// New reported date.
    pub reported_date: Option<NaiveDate>,
    /// New acts.
    pub acts: Option<Vec<Act>>,
    /// New region.
    pub region: Option<String>,
    /// New locality.
    pub locality: Option<String>,
    /// New coordinates.
    pub coordinates: Option<(f64, f64)>,
    /// New summary.
    pub summary: Option<String>,
    /// New perpetrator groups.
    pub perpetrator_groups: Option<Vec<String>>,
}

/// A new victim.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVictim {
    /// Category.
    pub category: PersonnelCategory,
    /// Contributing country.
    pub contributing_country: Option<CountryCode>,
    /// Nationality.
    pub nationality: Option<CountryCode>,
    /// Harm.
    pub harm: Harm,
    /// Gender.
    pub gender: Option<Gender>,
    /// Name.
    pub name: Option<String>,
    /// Service number.
    pub service_number: Option<String>,
}

/// A new follow-up action.
#[derive(Debug, Clone)]
pub struct NewFollowUp {
    /// Kind.
    pub kind: FollowUpKind,
    /// Description.
    pub description: String,
    /// Date taken.
    pub taken_on: NaiveDate,
}

/// A new national reference.
#[derive(Debug, Clone)]
pub struct NewNationalReference {
    /// State.
    pub state: CountryCode,
    /// Authority.
    pub authority: String,
    /// Reference.
    pub reference: String,
}

/// New assistance.
#[derive(Debug, Clone)]
pub struct NewAssistance {
    /// Host state.
    pub host_state: CountryCode,
    /// Kind.
    pub kind: AssistanceKind,
    /// Provider.
    pub provider: String,
    /// Status.
    pub status: AssistanceStatus,
    /// Period start.
    pub period_start: Option<NaiveDate>,
    /// Period end.
    pub period_end: Option<NaiveDate>,
    /// Description.
    pub description: Option<String>,
    /// Linked cases.
    pub case_ids: Vec<String>,
}

/// A case produced by an importer, keyed by `import_key` so that re-imports are idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedCase {
    /// Stable key, e.g. `DPPADPOSS-FATALITIES:MINUSMA:2021-01-13`.
    pub import_key: String,
    /// Reference to assign on first import.
    pub reference: String,
    /// The case.
    pub mission_code: String,
    /// Host state.
    pub host_state: Option<String>,
    /// Incident date.
    pub incident_date: NaiveDate,
    /// Acts.
    pub acts: Vec<Act>,
    /// Summary.
    pub summary: Option<String>,
    /// Victims, each with its own stable key.
    pub victims: Vec<(String, NewVictim)>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    /// Records created.
    pub inserted: usize,
    /// Records changed.
    pub updated: usize,
    /// Records already identical.
    pub unchanged: usize,
}

/// One entry of the hash-chained audit log, as stored. `access::audit` computes `hash` (and
/// documents its canonical form); the store only keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedAuditEntry {
    /// Position in the chain: 1, 2, 3, … without gaps.
    pub seq: i64,
    /// When the request ran (stored as RFC 3339 with milliseconds, UTC).
    pub at: DateTime<Utc>,
    /// Token subject.
    pub subject: String,
    /// Organisation of the principal.
    pub organisation: String,
    /// GraphQL operation name, or the mutation.
    pub operation: String,
    /// Case concerned, if any.
    pub case_id: Option<String>,
    /// Field paths read or refused.
    pub fields: Vec<String>,
    /// `READ`, `DENIED` or `WRITE`.
    pub decision: String,
    /// Hash of the previous entry (64 zeros before the first).
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// Audit log filter; every set field narrows the result (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Token subject.
    pub subject: Option<String>,
    /// Organisation.
    pub organisation: Option<String>,
    /// Case id.
    pub case_id: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// At or before.
    pub to: Option<DateTime<Utc>>,
    /// `READ`, `DENIED` or `WRITE`.
    pub decision: Option<String>,
}

/// Where a Member State's submission stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize,
)]
pub enum SubmissionStatus {
    /// Awaiting review by a UN case officer.
    Pending,
    /// Accepted into the record.
    Accepted,
    /// Rejected.
    Rejected,
}

impl SubmissionStatus {
    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Accepted => "ACCEPTED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses the canonical spelling.
    pub fn parse(s: &str) -> Result<Self, crate::domain::ParseError> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "ACCEPTED" => Ok(Self::Accepted),
            "REJECTED" => Ok(Self::Rejected),
            _ => Err(crate::domain::ParseError::Enum {
                kind: "SubmissionStatus",
                value: s.chars().take(40).collect(),
            }),
        }
    }
}

/// Information a Member State submitted on a case (res. 2589 §6).
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionRecord {
    /// Opaque id.
    pub id: String,
    /// Case id.
    pub case_id: String,
    /// Submitting organisation (alpha-3).
    pub organisation: String,
    /// Token subject of the submitter.
    pub submitted_by: String,
    /// What was submitted.
    pub content: String,
    /// Status.
    pub status: SubmissionStatus,
    /// When submitted.
    pub submitted_at: DateTime<Utc>,
    /// Reviewer.
    pub reviewed_by: Option<String>,
    /// When reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// Reviewer's note.
    pub review_note: Option<String>,
}
