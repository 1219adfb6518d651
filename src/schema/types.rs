//! Output types. Every field of case data asks the access gate before it answers; sensitive
//! fields are nullable so that a refusal can resolve to `null` with an error at its path.

use super::loaders::{fetch, AssistanceOf, CaseKey, FollowUpsOf, MissionKey, Prefetched, ReferencesOf, StoreLoader, VictimsOf};
use super::scalars::{Date, DateTime};
use super::{gate, load_err, services};
use crate::access::Role;
use crate::domain::{
    Act, AssistanceKind, AssistanceStatus, FollowUpKind, Gender, Harm, MissionKind, MissionStatus, PersonnelCategory,
};
use crate::error::{gql_error, ErrorCode};
use crate::store::{
    AssistanceRecord, CaseCursor, CaseFilter, CaseRecord, FollowUpRecord, MissionRecord, NationalReferenceRecord,
    StatisticsDimension, StatisticsRow, VictimRecord,
};
use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject, ID};
use base64::Engine;

fn int(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A UN mission, or a UN entity under which cases are recorded.
pub struct Mission(pub MissionRecord);

/// Where a mission had its headquarters.
#[derive(SimpleObject)]
pub struct MissionLocation {
    /// Place name.
    pub name: Option<String>,
    /// Latitude (WGS 84).
    pub latitude: Option<f64>,
    /// Longitude (WGS 84).
    pub longitude: Option<f64>,
}

/// A mission's focal point for safety and security cases (res. 2589 §9).
#[derive(SimpleObject)]
pub struct FocalPoint {
    /// Name or function.
    pub name: String,
    /// Contact e-mail.
    pub email: Option<String>,
}

#[Object]
impl Mission {
    /// Code, e.g. `MINUSMA`.
    async fn code(&self, ctx: &Context<'_>) -> Result<String> {
        gate(ctx, "Mission", "code")?;
        Ok(self.0.code.to_string())
    }
    /// Full name.
    async fn name(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "Mission", "name")?;
        Ok(&self.0.name)
    }
    /// Kind of presence.
    async fn kind(&self, ctx: &Context<'_>) -> Result<MissionKind> {
        gate(ctx, "Mission", "kind")?;
        Ok(self.0.kind)
    }
    /// Active or closed. Cases of closed missions remain in the record (res. 2589 §4).
    async fn status(&self, ctx: &Context<'_>) -> Result<MissionStatus> {
        gate(ctx, "Mission", "status")?;
        Ok(self.0.status)
    }
    /// Start date, when known.
    async fn start_date(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        gate(ctx, "Mission", "startDate")?;
        Ok(self.0.start_date.map(Date))
    }
    /// End date, when closed and known.
    async fn end_date(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        gate(ctx, "Mission", "endDate")?;
        Ok(self.0.end_date.map(Date))
    }
    /// Territories where the mission operated (ISO 3166-1 alpha-3), main one first. This
    /// models territory, not sovereignty.
    async fn host_territories(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        gate(ctx, "Mission", "hostTerritories")?;
        Ok(self.0.host_territories.iter().map(|c| c.to_string()).collect())
    }
    /// Headquarters location.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<MissionLocation>> {
        gate(ctx, "Mission", "location")?;
        let m = &self.0;
        Ok((m.location_name.is_some() || m.latitude.is_some()).then(|| MissionLocation {
            name: m.location_name.clone(),
            latitude: m.latitude,
            longitude: m.longitude,
        }))
    }
    /// Focal point, when designated.
    async fn focal_point(&self, ctx: &Context<'_>) -> Result<Option<FocalPoint>> {
        gate(ctx, "Mission", "focalPoint")?;
        Ok(self.0.focal_point.as_ref().map(|f| FocalPoint { name: f.name.clone(), email: f.email.clone() }))
    }
}

/// One incident of violence against UN personnel.
pub struct Case(pub CaseRecord);

/// Where an incident happened, at three precisions.
#[derive(SimpleObject)]
pub struct CaseLocation {
    /// First-level administrative region.
    pub region: Option<String>,
    /// Town or village.
    pub locality: Option<String>,
    /// Exact position, when recorded.
    pub coordinates: Option<Coordinates>,
}

/// A position (WGS 84).
#[derive(SimpleObject)]
pub struct Coordinates {
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
}

fn prefetched<'a>(ctx: &'a Context<'_>) -> &'a Prefetched {
    super::request_data::<Prefetched>(ctx)
}

pub(crate) fn loader<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<StoreLoader> {
    super::request_data::<DataLoader<StoreLoader>>(ctx)
}

#[Object]
impl Case {
    /// Opaque id.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        gate(ctx, "Case", "id")?;
        Ok(ID(self.0.id.clone()))
    }
    /// Human-readable reference, e.g. `MINUSMA-20210113`.
    async fn reference(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "Case", "reference")?;
        Ok(&self.0.reference)
    }
    /// The mission (or UN entity) the victims served with.
    async fn mission(&self, ctx: &Context<'_>) -> Result<Option<Mission>> {
        gate(ctx, "Case", "mission")?;
        let m = fetch(loader(ctx), &prefetched(ctx).missions, MissionKey(self.0.mission_code.clone())).await.map_err(load_err)?;
        Ok(m.map(Mission))
    }
    /// Host state where the incident took place (ISO alpha-3), when known.
    async fn host_state(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "Case", "hostState")?;
        Ok(self.0.host_state.as_deref())
    }
    /// Date of the incident.
    async fn incident_date(&self, ctx: &Context<'_>) -> Result<Date> {
        gate(ctx, "Case", "incidentDate")?;
        Ok(Date(self.0.incident_date))
    }
    /// Date the UN recorded it, when known.
    async fn reported_date(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        gate(ctx, "Case", "reportedDate")?;
        Ok(self.0.reported_date.map(Date))
    }
    /// Acts committed.
    async fn acts(&self, ctx: &Context<'_>) -> Result<Vec<Act>> {
        gate(ctx, "Case", "acts")?;
        Ok(self.0.acts.clone())
    }
    /// Where it happened.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<CaseLocation>> {
        gate(ctx, "Case", "location")?;
        let c = &self.0;
        let coordinates = match (c.latitude, c.longitude) {
            (Some(latitude), Some(longitude)) => Some(Coordinates { latitude, longitude }),
            _ => None,
        };
        Ok((c.region.is_some() || c.locality.is_some() || coordinates.is_some()).then(|| CaseLocation {
            region: c.region.clone(),
            locality: c.locality.clone(),
            coordinates,
        }))
    }
    /// Narrative summary.
    async fn summary(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "Case", "summary")?;
        Ok(self.0.summary.as_deref())
    }
    /// Alleged perpetrator groups.
    async fn perpetrator_groups(&self, ctx: &Context<'_>) -> Result<Option<Vec<String>>> {
        gate(ctx, "Case", "perpetratorGroups")?;
        Ok(Some(self.0.perpetrator_groups.clone()))
    }
    /// Number of victims recorded.
    async fn victim_count(&self, ctx: &Context<'_>) -> Result<i32> {
        gate(ctx, "Case", "victimCount")?;
        Ok(int(self.0.victim_count))
    }
    /// Victims.
    async fn victims(&self, ctx: &Context<'_>) -> Result<Vec<Victim>> {
        gate(ctx, "Case", "victims")?;
        let v = fetch(loader(ctx), &prefetched(ctx).victims, VictimsOf(self.0.id.clone())).await.map_err(load_err)?;
        Ok(v.unwrap_or_default().into_iter().map(Victim).collect())
    }
    /// Measures the UN took to follow up (res. 2589 §4(b)).
    async fn follow_up_actions(&self, ctx: &Context<'_>) -> Result<Vec<FollowUpAction>> {
        gate(ctx, "Case", "followUpActions")?;
        let v = fetch(loader(ctx), &prefetched(ctx).follow_ups, FollowUpsOf(self.0.id.clone())).await.map_err(load_err)?;
        Ok(v.unwrap_or_default().into_iter().map(FollowUpAction).collect())
    }
    /// National case-file references the UN recorded.
    async fn national_references(&self, ctx: &Context<'_>) -> Result<Vec<NationalReference>> {
        gate(ctx, "Case", "nationalReferences")?;
        let v = fetch(loader(ctx), &prefetched(ctx).references, ReferencesOf(self.0.id.clone())).await.map_err(load_err)?;
        Ok(v.unwrap_or_default().into_iter().map(NationalReference).collect())
    }
    /// National proceedings, one entry per host-state system that knows the case, joined live
    /// (or from the connector's cache; see `freshness`). A system that fails gives `null` in
    /// its place with an error at that path (`CONNECTOR_TIMEOUT`, `CONNECTOR_UNAVAILABLE`, …).
    async fn national_proceedings(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<Option<Result<super::proceedings::NationalProceedings>>>> {
        gate(ctx, "Case", "nationalProceedings")?;
        super::proceedings::for_case(ctx, &self.0).await
    }
    /// Capacity-building assistance linked to this case (res. 2589 §5).
    async fn capacity_building_assistance(&self, ctx: &Context<'_>) -> Result<Vec<CapacityBuildingAssistance>> {
        gate(ctx, "Case", "capacityBuildingAssistance")?;
        let v = fetch(loader(ctx), &prefetched(ctx).assistance, AssistanceOf(self.0.id.clone())).await.map_err(load_err)?;
        Ok(v.unwrap_or_default().into_iter().map(CapacityBuildingAssistance).collect())
    }
    /// Version for optimistic concurrency: pass it as `expectedVersion` when changing the case.
    async fn version(&self, ctx: &Context<'_>) -> Result<i32> {
        gate(ctx, "Case", "version")?;
        Ok(int(self.0.version))
    }
    /// Where the record came from: `DPPADPOSS-FATALITIES` (UN Peace and Security Data Hub) or `reported`.
    async fn source(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "Case", "source")?;
        Ok(&self.0.source)
    }
    /// When the record was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        gate(ctx, "Case", "createdAt")?;
        Ok(DateTime(self.0.created_at))
    }
    /// When the record last changed.
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        gate(ctx, "Case", "updatedAt")?;
        Ok(DateTime(self.0.updated_at))
    }
}

/// A person harmed in an incident.
pub struct Victim(pub VictimRecord);

#[Object]
impl Victim {
    /// Opaque id.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        gate(ctx, "Victim", "id")?;
        Ok(ID(self.0.id.clone()))
    }
    /// Personnel category.
    async fn category(&self, ctx: &Context<'_>) -> Result<PersonnelCategory> {
        gate(ctx, "Victim", "category")?;
        Ok(self.0.category)
    }
    /// Troop- or police-contributing country (uniformed personnel).
    async fn contributing_country(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "Victim", "contributingCountry")?;
        Ok(self.0.contributing_country.as_deref())
    }
    /// Nationality, when known.
    async fn nationality(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "Victim", "nationality")?;
        Ok(self.0.nationality.as_deref())
    }
    /// Harm suffered.
    async fn harm(&self, ctx: &Context<'_>) -> Result<Harm> {
        gate(ctx, "Victim", "harm")?;
        Ok(self.0.harm)
    }
    /// Gender, when recorded.
    async fn gender(&self, ctx: &Context<'_>) -> Result<Option<Gender>> {
        gate(ctx, "Victim", "gender")?;
        Ok(self.0.gender)
    }
    /// Name (sensitive).
    async fn name(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "Victim", "name")?;
        Ok(self.0.name.as_deref())
    }
    /// Service number (sensitive).
    async fn service_number(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "Victim", "serviceNumber")?;
        Ok(self.0.service_number.as_deref())
    }
}

/// A UN follow-up measure on a case.
pub struct FollowUpAction(pub FollowUpRecord);

#[Object]
impl FollowUpAction {
    /// Opaque id.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        gate(ctx, "FollowUpAction", "id")?;
        Ok(ID(self.0.id.clone()))
    }
    /// Kind of measure.
    async fn kind(&self, ctx: &Context<'_>) -> Result<FollowUpKind> {
        gate(ctx, "FollowUpAction", "kind")?;
        Ok(self.0.kind)
    }
    /// What was done.
    async fn description(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "FollowUpAction", "description")?;
        Ok(&self.0.description)
    }
    /// When it was done.
    async fn taken_on(&self, ctx: &Context<'_>) -> Result<Date> {
        gate(ctx, "FollowUpAction", "takenOn")?;
        Ok(Date(self.0.taken_on))
    }
    /// When it was recorded.
    async fn recorded_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        gate(ctx, "FollowUpAction", "recordedAt")?;
        Ok(DateTime(self.0.recorded_at))
    }
}

/// A reference to a national case file, recorded by the UN.
pub struct NationalReference(pub NationalReferenceRecord);

#[Object]
impl NationalReference {
    /// Opaque id.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        gate(ctx, "NationalReference", "id")?;
        Ok(ID(self.0.id.clone()))
    }
    /// State whose authority holds the file (ISO alpha-3).
    async fn state(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "NationalReference", "state")?;
        Ok(&self.0.state)
    }
    /// Authority holding the file.
    async fn authority(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "NationalReference", "authority")?;
        Ok(&self.0.authority)
    }
    /// The national reference.
    async fn reference(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "NationalReference", "reference")?;
        Ok(&self.0.reference)
    }
    /// When it was recorded.
    async fn recorded_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        gate(ctx, "NationalReference", "recordedAt")?;
        Ok(DateTime(self.0.recorded_at))
    }
}

/// Capacity-building assistance the UN offered a host state (res. 2589 §5).
pub struct CapacityBuildingAssistance(pub AssistanceRecord);

#[Object]
impl CapacityBuildingAssistance {
    /// Opaque id.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        gate(ctx, "CapacityBuildingAssistance", "id")?;
        Ok(ID(self.0.id.clone()))
    }
    /// Host state assisted (ISO alpha-3).
    async fn host_state(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "CapacityBuildingAssistance", "hostState")?;
        Ok(&self.0.host_state)
    }
    /// Kind of assistance.
    async fn kind(&self, ctx: &Context<'_>) -> Result<AssistanceKind> {
        gate(ctx, "CapacityBuildingAssistance", "kind")?;
        Ok(self.0.kind)
    }
    /// UN provider.
    async fn provider(&self, ctx: &Context<'_>) -> Result<&str> {
        gate(ctx, "CapacityBuildingAssistance", "provider")?;
        Ok(&self.0.provider)
    }
    /// Where the offer stands.
    async fn status(&self, ctx: &Context<'_>) -> Result<AssistanceStatus> {
        gate(ctx, "CapacityBuildingAssistance", "status")?;
        Ok(self.0.status)
    }
    /// Start of the period.
    async fn period_start(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        gate(ctx, "CapacityBuildingAssistance", "periodStart")?;
        Ok(self.0.period_start.map(Date))
    }
    /// End of the period.
    async fn period_end(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        gate(ctx, "CapacityBuildingAssistance", "periodEnd")?;
        Ok(self.0.period_end.map(Date))
    }
    /// Description.
    async fn description(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        gate(ctx, "CapacityBuildingAssistance", "description")?;
        Ok(self.0.description.as_deref())
    }
    /// Cases it relates to.
    async fn cases(&self, ctx: &Context<'_>) -> Result<Vec<Case>> {
        gate(ctx, "CapacityBuildingAssistance", "cases")?;
        let keys: Vec<CaseKey> = self.0.case_ids.iter().cloned().map(CaseKey).collect();
        let found = loader(ctx).load_many(keys.clone()).await.map_err(load_err)?;
        Ok(keys.iter().filter_map(|k| found.get(k).cloned()).map(Case).collect())
    }
    /// Version.
    async fn version(&self, ctx: &Context<'_>) -> Result<i32> {
        gate(ctx, "CapacityBuildingAssistance", "version")?;
        Ok(int(self.0.version))
    }
    /// When it was recorded.
    async fn recorded_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        gate(ctx, "CapacityBuildingAssistance", "recordedAt")?;
        Ok(DateTime(self.0.recorded_at))
    }
}

/// Bytes of check appended to a cursor.
const CURSOR_CHECK_LEN: usize = 8;

/// A check over a cursor's payload, so that a changed or made-up cursor is refused as
/// `INVALID_CURSOR` instead of silently starting a page somewhere else. It is not a secret:
/// a cursor only positions a page the caller may read anyway.
fn cursor_check(payload: &[u8]) -> [u8; CURSOR_CHECK_LEN] {
    use sha2::Digest;
    let digest = sha2::Sha256::new().chain_update(b"casegraph-cursor-v1\0").chain_update(payload).finalize();
    let mut check = [0u8; CURSOR_CHECK_LEN];
    check.copy_from_slice(&digest[..CURSOR_CHECK_LEN]);
    check
}

/// Encodes a cursor (opaque to clients).
pub(crate) fn encode_cursor(cursor: &CaseCursor) -> String {
    let mut bytes = serde_json::to_vec(cursor).expect("a cursor serialises");
    let check = cursor_check(&bytes);
    bytes.extend_from_slice(&check);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor issued for `order`.
pub(crate) fn decode_cursor(raw: &str, order: crate::store::CaseOrder) -> Result<CaseCursor> {
    let invalid = || gql_error(ErrorCode::InvalidCursor, "`after` is not a cursor this server issued for this ordering");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
    let (payload, check) = bytes.split_at(bytes.len().checked_sub(CURSOR_CHECK_LEN).ok_or_else(invalid)?);
    if check != cursor_check(payload) {
        return Err(invalid());
    }
    let cursor: CaseCursor = serde_json::from_slice(payload).map_err(|_| invalid())?;
    let key_ok = match order.field {
        crate::store::CaseOrderField::VictimCount => cursor.key.is_i64(),
        crate::store::CaseOrderField::IncidentDate => {
            cursor.key.as_str().is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
        }
        _ => cursor.key.is_string(),
    };
    if cursor.order != order || !key_ok || cursor.id.is_empty() || cursor.id.len() > 64 {
        return Err(invalid());
    }
    Ok(cursor)
}

/// A page of cases.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CaseConnection {
    /// The cases with their cursors.
    pub edges: Vec<CaseEdge>,
    /// Pagination state.
    pub page_info: PageInfo,
    #[graphql(skip)]
    pub(crate) filter: CaseFilter,
}

#[ComplexObject]
impl CaseConnection {
    /// The cases of this page, without cursors.
    async fn nodes(&self) -> Vec<Case> {
        self.edges.iter().map(|e| Case(e.node.0.clone())).collect()
    }

    /// How many cases match the filter in all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let n = services(ctx).store.count_cases(&self.filter).await.map_err(super::store_err)?;
        Ok(int(n))
    }
}

/// A case and its cursor.
#[derive(SimpleObject)]
pub struct CaseEdge {
    /// Pass as `after` to get the cases following this one.
    pub cursor: String,
    /// The case.
    pub node: Case,
}

/// Pagination state (forward pagination with `first` and `after`).
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More cases follow this page.
    pub has_next_page: bool,
    /// This page was requested with `after`.
    pub has_previous_page: bool,
    /// Cursor of the first case of the page.
    pub start_cursor: Option<String>,
    /// Cursor of the last case of the page: pass it as `after`.
    pub end_cursor: Option<String>,
}

/// Counts grouped by one dimension.
pub struct Statistics {
    pub(crate) by: StatisticsDimension,
    pub(crate) rows: Vec<StatisticsRow>,
    pub(crate) filter: CaseFilter,
}

/// One group of a statistics answer.
#[derive(SimpleObject)]
pub struct StatisticsGroup {
    /// The group's key: a mission code, an alpha-3 code, a year or an act; null where unknown.
    pub key: Option<String>,
    /// Cases in the group.
    pub case_count: i32,
    /// Victims in the group.
    pub victim_count: i32,
}

#[Object]
impl Statistics {
    /// The dimension.
    async fn by(&self) -> StatisticsDimension {
        self.by
    }
    /// The groups, ordered by key.
    async fn groups(&self) -> Vec<StatisticsGroup> {
        self.rows
            .iter()
            .map(|r| StatisticsGroup { key: r.key.clone(), case_count: int(r.case_count), victim_count: int(r.victim_count) })
            .collect()
    }
    /// Cases matching the filter (a case with several acts counts once here).
    async fn total_cases(&self, ctx: &Context<'_>) -> Result<i32> {
        if self.by != StatisticsDimension::Act {
            return Ok(int(self.rows.iter().map(|r| r.case_count).sum()));
        }
        Ok(int(services(ctx).store.count_cases(&self.filter).await.map_err(super::store_err)?))
    }
    /// Victims of the matching cases.
    async fn total_victims(&self, ctx: &Context<'_>) -> Result<i32> {
        if self.by != StatisticsDimension::Act {
            return Ok(int(self.rows.iter().map(|r| r.victim_count).sum()));
        }
        let years = services(ctx).store.statistics(StatisticsDimension::Year, &self.filter).await.map_err(super::store_err)?;
        Ok(int(years.iter().map(|r| r.victim_count).sum()))
    }
}

/// The caller, as the gateway sees it.
pub struct Viewer(pub crate::access::Principal);

#[Object]
impl Viewer {
    /// Token subject.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// Organisation: a Member State's alpha-3 code, `UN`/`UN/<entity>`, or a regional organisation.
    async fn organisation(&self) -> String {
        self.0.organisation.to_string()
    }
    /// Roles.
    async fn roles(&self) -> Vec<Role> {
        self.0.roles.iter().copied().collect()
    }
}
