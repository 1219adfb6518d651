//! Input types and their validation. Every rejection carries a code from
//! [`ErrorCode`](crate::error::ErrorCode) and names the argument at fault.

use super::scalars::Date;
use crate::domain::{
    parse_text, Act, AssistanceKind, AssistanceStatus, CountryCode, FollowUpKind, Gender, Harm,
    MissionStatus, PersonnelCategory,
};
use crate::error::{gql_error, ErrorCode};
use crate::store::{CaseFilter, CaseOrder, CaseOrderField, OrderDirection};
use async_graphql::{InputObject, Result};
use chrono::NaiveDate;

pub(crate) fn country(arg: &str, raw: &str) -> Result<CountryCode> {
    CountryCode::parse(raw)
        .map_err(|e| gql_error(ErrorCode::InvalidCountryCode, format!("{arg}: {e}")))
}

pub(crate) fn countries(arg: &str, raw: &[String]) -> Result<Vec<String>> {
    raw.iter()
        .map(|c| country(arg, c).map(|c| c.to_string()))
        .collect()
}

/// A list argument bounded and deduplicated: more than `max` items is refused with
/// INPUT_TOO_LARGE (whatever their values), then repeated values are dropped, first kept. The
/// store's SQL binds one parameter per item, and SQLite resolves each parameter's name in a
/// list as long as the statement's: 30,000 copies of one country cost seconds of CPU, one
/// costs nothing.
pub(crate) fn bounded<T: Eq + std::hash::Hash + Clone>(
    arg: &str,
    raw: Option<Vec<T>>,
    max: usize,
) -> Result<Vec<T>> {
    let raw = raw.unwrap_or_default();
    if raw.len() > max {
        return Err(gql_error(
            ErrorCode::InputTooLarge,
            format!(
                "{arg} lists {} values; at most {max} are accepted",
                raw.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    Ok(raw.into_iter().filter(|v| seen.insert(v.clone())).collect())
}

pub(crate) fn text(arg: &'static str, raw: &str, max: usize) -> Result<String> {
    parse_text(arg, raw, max).map_err(|e| match e {
        crate::domain::ParseError::Empty(_) => gql_error(ErrorCode::EmptyValue, e.to_string()),
        _ => gql_error(ErrorCode::InvalidInput, e.to_string()),
    })
}

pub(crate) fn opt_text(
    arg: &'static str,
    raw: &Option<String>,
    max: usize,
) -> Result<Option<String>> {
    raw.as_deref().map(|s| text(arg, s, max)).transpose()
}

pub(crate) fn not_future(arg: &str, date: NaiveDate, today: NaiveDate) -> Result<NaiveDate> {
    if date > today {
        return Err(gql_error(
            ErrorCode::DateInFuture,
            format!("{arg} {date} lies in the future"),
        ));
    }
    Ok(date)
}

/// Narrows a case list. Lists match any of their values; set fields combine with AND.
#[derive(InputObject, Default, Clone)]
pub struct CaseFilterInput {
    /// Mission codes, e.g. `["MINUSMA"]`.
    pub missions: Option<Vec<String>>,
    /// Host states (ISO alpha-3).
    pub host_states: Option<Vec<String>>,
    /// Acts.
    pub acts: Option<Vec<Act>>,
    /// Categories of victims.
    pub victim_categories: Option<Vec<PersonnelCategory>>,
    /// Nationalities of victims (ISO alpha-3).
    pub victim_nationalities: Option<Vec<String>>,
    /// Troop- or police-contributing countries of victims (ISO alpha-3).
    pub contributing_countries: Option<Vec<String>>,
    /// Incidents on or after this date.
    pub from: Option<Date>,
    /// Incidents on or before this date.
    pub to: Option<Date>,
    /// Only cases of missions in this status (e.g. `CLOSED`).
    pub mission_status: Option<MissionStatus>,
}

impl CaseFilterInput {
    /// Validates and converts: every list bounded by `max_items` and deduplicated (country
    /// codes after normalisation); unknown missions are checked by the caller against the
    /// store.
    pub(crate) fn parse(self, max_items: usize) -> Result<CaseFilter> {
        let from = self.from.map(|d| d.0);
        let to = self.to.map(|d| d.0);
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(gql_error(
                    ErrorCode::InvalidDateRange,
                    format!("filter.from {f} is after filter.to {t}"),
                ));
            }
        }
        let missions = bounded("filter.missions", self.missions, max_items)?;
        for m in &missions {
            crate::domain::MissionCode::parse(m).map_err(|e| {
                gql_error(ErrorCode::UnknownMission, format!("filter.missions: {e}"))
            })?;
        }
        let codes = |arg: &str, raw: Option<Vec<String>>| -> Result<Vec<String>> {
            let parsed = countries(arg, &bounded(arg, raw, max_items)?)?;
            // `mli` and `MLI` are one country: deduplicated again once normalised.
            bounded(arg, Some(parsed), max_items)
        };
        Ok(CaseFilter {
            missions,
            host_states: codes("filter.hostStates", self.host_states)?,
            acts: bounded("filter.acts", self.acts, max_items)?,
            victim_categories: bounded(
                "filter.victimCategories",
                self.victim_categories,
                max_items,
            )?,
            victim_nationalities: codes("filter.victimNationalities", self.victim_nationalities)?,
            contributing_countries: codes(
                "filter.contributingCountries",
                self.contributing_countries,
            )?,
            from,
            to,
            mission_status: self.mission_status,
            visibility: crate::access::Visibility::Nothing,
        })
    }
}

/// Ordering of a case list.
#[derive(InputObject, Clone, Copy)]
pub struct CaseOrderInput {
    /// Field to order by.
    pub field: CaseOrderField,
    /// Direction.
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

impl From<CaseOrderInput> for CaseOrder {
    fn from(o: CaseOrderInput) -> Self {
        CaseOrder {
            field: o.field,
            direction: o.direction,
        }
    }
}

/// A position (WGS 84).
#[derive(InputObject, Clone, Copy)]
pub struct CoordinatesInput {
    /// Latitude, -90 to 90.
    pub latitude: f64,
    /// Longitude, -180 to 180.
    pub longitude: f64,
}

impl CoordinatesInput {
    pub(crate) fn parse(self) -> Result<(f64, f64)> {
        if !(-90.0..=90.0).contains(&self.latitude) || !(-180.0..=180.0).contains(&self.longitude) {
            return Err(gql_error(
                ErrorCode::InvalidInput,
                "coordinates: latitude must lie in -90..90 and longitude in -180..180",
            ));
        }
        Ok((self.latitude, self.longitude))
    }
}

/// A new case, as a UN case officer reports it.
#[derive(InputObject)]
pub struct ReportCaseInput {
    /// Mission code.
    pub mission: String,
    /// Host state (ISO alpha-3); defaults to the mission's main territory.
    pub host_state: Option<String>,
    /// Date of the incident (not in the future).
    pub incident_date: Date,
    /// Date the UN recorded it (not before the incident, not in the future).
    pub reported_date: Option<Date>,
    /// Acts (at least one).
    pub acts: Vec<Act>,
    /// Region.
    pub region: Option<String>,
    /// Locality.
    pub locality: Option<String>,
    /// Exact position.
    pub coordinates: Option<CoordinatesInput>,
    /// Narrative summary.
    pub summary: Option<String>,
    /// Alleged perpetrator groups.
    pub perpetrator_groups: Option<Vec<String>>,
}

/// Changes to a case; omitted fields stay as they are.
#[derive(InputObject, Default)]
pub struct UpdateCaseInput {
    /// Host state.
    pub host_state: Option<String>,
    /// Date of the incident.
    pub incident_date: Option<Date>,
    /// Date the UN recorded it.
    pub reported_date: Option<Date>,
    /// Acts (replaces the list; at least one).
    pub acts: Option<Vec<Act>>,
    /// Region.
    pub region: Option<String>,
    /// Locality.
    pub locality: Option<String>,
    /// Exact position.
    pub coordinates: Option<CoordinatesInput>,
    /// Narrative summary.
    pub summary: Option<String>,
    /// Alleged perpetrator groups (replaces the list).
    pub perpetrator_groups: Option<Vec<String>>,
}

/// A victim.
#[derive(InputObject)]
pub struct VictimInput {
    /// Personnel category.
    pub category: PersonnelCategory,
    /// Contributing country (ISO alpha-3); defaults to the nationality for uniformed personnel.
    pub contributing_country: Option<String>,
    /// Nationality (ISO alpha-3).
    pub nationality: Option<String>,
    /// Harm suffered.
    pub harm: Harm,
    /// Gender.
    pub gender: Option<Gender>,
    /// Name.
    pub name: Option<String>,
    /// Service number.
    pub service_number: Option<String>,
}

/// A UN follow-up action.
#[derive(InputObject)]
pub struct FollowUpActionInput {
    /// Kind of measure.
    pub kind: FollowUpKind,
    /// What was done.
    pub description: String,
    /// When it was done (not in the future).
    pub taken_on: Date,
}

/// A national case-file reference.
#[derive(InputObject)]
pub struct NationalReferenceInput {
    /// State whose authority holds the file (ISO alpha-3).
    pub state: String,
    /// Authority, e.g. "Pôle judiciaire spécialisé de lutte contre le terrorisme, Bamako".
    pub authority: String,
    /// The national reference.
    pub reference: String,
}

/// Capacity-building assistance.
#[derive(InputObject)]
pub struct AssistanceInput {
    /// Host state (ISO alpha-3).
    pub host_state: String,
    /// Kind.
    pub kind: AssistanceKind,
    /// UN provider.
    pub provider: String,
    /// Status.
    pub status: AssistanceStatus,
    /// Start of the period.
    pub period_start: Option<Date>,
    /// End of the period.
    pub period_end: Option<Date>,
    /// Description.
    pub description: Option<String>,
    /// Ids of related cases.
    pub case_ids: Option<Vec<async_graphql::ID>>,
}
