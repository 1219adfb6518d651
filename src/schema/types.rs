//! Output types. None of them decides access: each is served [`Guarded`], and says what its
//! records are ([`Protected`]); the enforcement point (`guard.rs`) applies the plan to every
//! field. Fields that can be denied are nullable (checked at start), so that a refusal resolves
//! to `null` with an error at its path.

use super::guard::{Guarded, Protected};
use super::loaders::{
    fetch, AssistanceOf, CaseKey, FollowUpsOf, MissionKey, Prefetched, ReferencesOf, StoreLoader,
    VictimsOf,
};
use super::scalars::{Date, DateTime};
use super::{load_err, services};
use crate::access::{CaseFacts, Role, Subject};
use crate::domain::{
    Act, AssistanceKind, AssistanceStatus, FollowUpKind, Gender, Harm, MissionKind, MissionStatus,
    PersonnelCategory,
};
use crate::error::{gql_error, ErrorCode};
use crate::store::{
    AssistanceRecord, CaseCursor, CaseFilter, CaseRecord, FollowUpRecord, MissionRecord,
    NationalReferenceRecord, StatisticsDimension, StatisticsRow, VictimRecord,
};
use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject, ID};
use base64::Engine;
use std::sync::Arc;

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
    async fn code(&self) -> Result<String> {
        Ok(self.0.code.to_string())
    }
    /// Full name.
    async fn name(&self) -> Result<&str> {
        Ok(&self.0.name)
    }
    /// Kind of presence.
    async fn kind(&self) -> Result<MissionKind> {
        Ok(self.0.kind)
    }
    /// Active or closed. Cases of closed missions remain in the record (res. 2589 §4).
    async fn status(&self) -> Result<MissionStatus> {
        Ok(self.0.status)
    }
    /// Start date, when known.
    async fn start_date(&self) -> Result<Option<Date>> {
        Ok(self.0.start_date.map(Date))
    }
    /// End date, when closed and known.
    async fn end_date(&self) -> Result<Option<Date>> {
        Ok(self.0.end_date.map(Date))
    }
    /// Territories where the mission operated (ISO 3166-1 alpha-3), main one first. This
    /// models territory, not sovereignty.
    async fn host_territories(&self) -> Result<Vec<String>> {
        Ok(self
            .0
            .host_territories
            .iter()
            .map(|c| c.to_string())
            .collect())
    }
    /// Headquarters location.
    async fn location(&self) -> Result<Option<Guarded<MissionLocation>>> {
        let m = &self.0;
        Ok(
            (m.location_name.is_some() || m.latitude.is_some()).then(|| {
                MissionLocation {
                    name: m.location_name.clone(),
                    latitude: m.latitude,
                    longitude: m.longitude,
                }
                .into()
            }),
        )
    }
    /// Focal point, when designated.
    async fn focal_point(&self) -> Result<Option<Guarded<FocalPoint>>> {
        Ok(self.0.focal_point.as_ref().map(|f| {
            FocalPoint {
                name: f.name.clone(),
                email: f.email.clone(),
            }
            .into()
        }))
    }
}

/// One incident of violence against UN personnel.
pub struct Case {
    pub(crate) record: CaseRecord,
    pub(crate) facts: Arc<CaseFacts>,
}

impl From<CaseRecord> for Case {
    fn from(record: CaseRecord) -> Self {
        let facts = CaseFacts::of(&record);
        Self { record, facts }
    }
}

/// Where an incident happened, at three precisions.
pub struct CaseLocation {
    region: Option<String>,
    locality: Option<String>,
    coordinates: Option<(f64, f64)>,
    facts: Arc<CaseFacts>,
}

#[Object]
impl CaseLocation {
    /// First-level administrative region.
    async fn region(&self) -> Result<Option<&str>> {
        Ok(self.region.as_deref())
    }
    /// Town or village.
    async fn locality(&self) -> Result<Option<&str>> {
        Ok(self.locality.as_deref())
    }
    /// Exact position, when recorded (restricted).
    async fn coordinates(&self) -> Result<Option<Guarded<Coordinates>>> {
        Ok(self.coordinates.map(|(latitude, longitude)| {
            Coordinates {
                latitude,
                longitude,
                facts: Arc::clone(&self.facts),
            }
            .into()
        }))
    }
}

/// A position (WGS 84).
pub struct Coordinates {
    latitude: f64,
    longitude: f64,
    facts: Arc<CaseFacts>,
}

#[Object]
impl Coordinates {
    /// Latitude.
    async fn latitude(&self) -> Result<f64> {
        Ok(self.latitude)
    }
    /// Longitude.
    async fn longitude(&self) -> Result<f64> {
        Ok(self.longitude)
    }
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
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.record.id.clone()))
    }
    /// Human-readable reference, e.g. `MINUSMA-20210113`.
    async fn reference(&self) -> Result<&str> {
        Ok(&self.record.reference)
    }
    /// The mission (or UN entity) the victims served with.
    async fn mission(&self, ctx: &Context<'_>) -> Result<Option<Guarded<Mission>>> {
        let m = fetch(
            loader(ctx),
            &prefetched(ctx).missions,
            MissionKey(self.record.mission_code.clone()),
        )
        .await
        .map_err(load_err)?;
        Ok(m.map(|m| Mission(m).into()))
    }
    /// Host state where the incident took place (ISO alpha-3), when known.
    async fn host_state(&self) -> Result<Option<&str>> {
        Ok(self.record.host_state.as_deref())
    }
    /// Date of the incident.
    async fn incident_date(&self) -> Result<Date> {
        Ok(Date(self.record.incident_date))
    }
    /// Date the UN recorded it, when known.
    async fn reported_date(&self) -> Result<Option<Date>> {
        Ok(self.record.reported_date.map(Date))
    }
    /// Acts committed.
    async fn acts(&self) -> Result<Vec<Act>> {
        Ok(self.record.acts.clone())
    }
    /// Where it happened.
    async fn location(&self) -> Result<Option<Guarded<CaseLocation>>> {
        let c = &self.record;
        let coordinates = c.latitude.zip(c.longitude);
        Ok(
            (c.region.is_some() || c.locality.is_some() || coordinates.is_some()).then(|| {
                CaseLocation {
                    region: c.region.clone(),
                    locality: c.locality.clone(),
                    coordinates,
                    facts: Arc::clone(&self.facts),
                }
                .into()
            }),
        )
    }
    /// Narrative summary.
    async fn summary(&self) -> Result<Option<&str>> {
        Ok(self.record.summary.as_deref())
    }
    /// Alleged perpetrator groups.
    async fn perpetrator_groups(&self) -> Result<Option<Vec<String>>> {
        Ok(Some(self.record.perpetrator_groups.clone()))
    }
    /// Number of victims recorded.
    async fn victim_count(&self) -> Result<i32> {
        Ok(int(self.record.victim_count))
    }
    /// Victims.
    async fn victims(&self, ctx: &Context<'_>) -> Result<Option<Vec<Guarded<Victim>>>> {
        let v = fetch(
            loader(ctx),
            &prefetched(ctx).victims,
            VictimsOf(self.record.id.clone()),
        )
        .await
        .map_err(load_err)?;
        Ok(Some(
            v.unwrap_or_default()
                .into_iter()
                .map(|v| {
                    Victim {
                        record: v,
                        facts: Arc::clone(&self.facts),
                    }
                    .into()
                })
                .collect(),
        ))
    }
    /// Measures the UN took to follow up (res. 2589 §4(b)).
    async fn follow_up_actions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Vec<Guarded<FollowUpAction>>>> {
        let v = fetch(
            loader(ctx),
            &prefetched(ctx).follow_ups,
            FollowUpsOf(self.record.id.clone()),
        )
        .await
        .map_err(load_err)?;
        Ok(Some(
            v.unwrap_or_default()
                .into_iter()
                .map(|r| {
                    FollowUpAction {
                        record: r,
                        facts: Arc::clone(&self.facts),
                    }
                    .into()
                })
                .collect(),
        ))
    }
    /// National case-file references the UN recorded.
    async fn national_references(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Vec<Guarded<NationalReference>>>> {
        let v = fetch(
            loader(ctx),
            &prefetched(ctx).references,
            ReferencesOf(self.record.id.clone()),
        )
        .await
        .map_err(load_err)?;
        Ok(Some(
            v.unwrap_or_default()
                .into_iter()
                .map(|r| {
                    NationalReference {
                        record: r,
                        facts: Arc::clone(&self.facts),
                    }
                    .into()
                })
                .collect(),
        ))
    }
    /// National proceedings, one entry per host-state system that knows the case, joined live
    /// (or from the connector's cache; see `freshness`). A system that fails gives `null` in
    /// its place with an error at that path (`CONNECTOR_TIMEOUT`, `CONNECTOR_UNAVAILABLE`, …).
    async fn national_proceedings(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<Option<Result<Guarded<super::proceedings::NationalProceedings>>>>> {
        super::proceedings::for_case(ctx, &self.record, &self.facts).await
    }
    /// Information Member States submitted on this case (res. 2589 §6): accepted submissions,
    /// and your own organisation's; UN case officers see all, to review them.
    async fn submissions(&self, ctx: &Context<'_>) -> Result<Option<Vec<Guarded<Submission>>>> {
        let rows = loader(ctx)
            .load_one(super::loaders::SubmissionsOf(self.record.id.clone()))
            .await
            .map_err(load_err)?;
        let (principal, access) = (&super::viewpoint(ctx).principal, &services(ctx).access);
        Ok(Some(
            rows.unwrap_or_default()
                .into_iter()
                .filter(|r| {
                    access.may_see_submission(
                        principal,
                        &r.organisation,
                        r.status == crate::store::SubmissionStatus::Accepted,
                    )
                })
                .map(|r| {
                    Submission {
                        record: r,
                        facts: Arc::clone(&self.facts),
                    }
                    .into()
                })
                .collect(),
        ))
    }
    /// Capacity-building assistance linked to this case (res. 2589 §5).
    async fn capacity_building_assistance(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Vec<Guarded<CapacityBuildingAssistance>>>> {
        let v = fetch(
            loader(ctx),
            &prefetched(ctx).assistance,
            AssistanceOf(self.record.id.clone()),
        )
        .await
        .map_err(load_err)?;
        Ok(Some(
            v.unwrap_or_default()
                .into_iter()
                .map(|a| CapacityBuildingAssistance(a).into())
                .collect(),
        ))
    }
    /// Version for optimistic concurrency: pass it as `expectedVersion` when changing the case.
    async fn version(&self) -> Result<i32> {
        Ok(int(self.record.version))
    }
    /// Where the record came from: `DPPADPOSS-FATALITIES` (UN Peace and Security Data Hub) or `reported`.
    async fn source(&self) -> Result<&str> {
        Ok(&self.record.source)
    }
    /// When the record was created.
    async fn created_at(&self) -> Result<DateTime> {
        Ok(DateTime(self.record.created_at))
    }
    /// When the record last changed.
    async fn updated_at(&self) -> Result<DateTime> {
        Ok(DateTime(self.record.updated_at))
    }
}

/// A person harmed in an incident.
pub struct Victim {
    pub(crate) record: VictimRecord,
    pub(crate) facts: Arc<CaseFacts>,
}

#[Object]
impl Victim {
    /// Opaque id.
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.record.id.clone()))
    }
    /// Personnel category.
    async fn category(&self) -> Result<PersonnelCategory> {
        Ok(self.record.category)
    }
    /// Troop- or police-contributing country (uniformed personnel).
    async fn contributing_country(&self) -> Result<Option<&str>> {
        Ok(self.record.contributing_country.as_deref())
    }
    /// Nationality, when known.
    async fn nationality(&self) -> Result<Option<&str>> {
        Ok(self.record.nationality.as_deref())
    }
    /// Harm suffered.
    async fn harm(&self) -> Result<Harm> {
        Ok(self.record.harm)
    }
    /// Gender, when recorded.
    async fn gender(&self) -> Result<Option<Gender>> {
        Ok(self.record.gender)
    }
    /// Name (sensitive).
    async fn name(&self) -> Result<Option<&str>> {
        Ok(self.record.name.as_deref())
    }
    /// Service number (sensitive).
    async fn service_number(&self) -> Result<Option<&str>> {
        Ok(self.record.service_number.as_deref())
    }
}

/// A UN follow-up measure on a case.
pub struct FollowUpAction {
    pub(crate) record: FollowUpRecord,
    pub(crate) facts: Arc<CaseFacts>,
}

#[Object]
impl FollowUpAction {
    /// Opaque id.
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.record.id.clone()))
    }
    /// Kind of measure.
    async fn kind(&self) -> Result<FollowUpKind> {
        Ok(self.record.kind)
    }
    /// What was done.
    async fn description(&self) -> Result<&str> {
        Ok(&self.record.description)
    }
    /// When it was done.
    async fn taken_on(&self) -> Result<Date> {
        Ok(Date(self.record.taken_on))
    }
    /// When it was recorded.
    async fn recorded_at(&self) -> Result<DateTime> {
        Ok(DateTime(self.record.recorded_at))
    }
}

/// A reference to a national case file, recorded by the UN.
pub struct NationalReference {
    pub(crate) record: NationalReferenceRecord,
    pub(crate) facts: Arc<CaseFacts>,
}

#[Object]
impl NationalReference {
    /// Opaque id.
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.record.id.clone()))
    }
    /// State whose authority holds the file (ISO alpha-3).
    async fn state(&self) -> Result<&str> {
        Ok(&self.record.state)
    }
    /// Authority holding the file.
    async fn authority(&self) -> Result<&str> {
        Ok(&self.record.authority)
    }
    /// The national reference.
    async fn reference(&self) -> Result<&str> {
        Ok(&self.record.reference)
    }
    /// When it was recorded.
    async fn recorded_at(&self) -> Result<DateTime> {
        Ok(DateTime(self.record.recorded_at))
    }
}

/// Capacity-building assistance the UN offered a host state (res. 2589 §5).
pub struct CapacityBuildingAssistance(pub AssistanceRecord);

#[Object]
impl CapacityBuildingAssistance {
    /// Opaque id.
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.0.id.clone()))
    }
    /// Host state assisted (ISO alpha-3).
    async fn host_state(&self) -> Result<&str> {
        Ok(&self.0.host_state)
    }
    /// Kind of assistance.
    async fn kind(&self) -> Result<AssistanceKind> {
        Ok(self.0.kind)
    }
    /// UN provider.
    async fn provider(&self) -> Result<&str> {
        Ok(&self.0.provider)
    }
    /// Where the offer stands.
    async fn status(&self) -> Result<AssistanceStatus> {
        Ok(self.0.status)
    }
    /// Start of the period.
    async fn period_start(&self) -> Result<Option<Date>> {
        Ok(self.0.period_start.map(Date))
    }
    /// End of the period.
    async fn period_end(&self) -> Result<Option<Date>> {
        Ok(self.0.period_end.map(Date))
    }
    /// Description.
    async fn description(&self) -> Result<Option<&str>> {
        Ok(self.0.description.as_deref())
    }
    /// Cases it relates to.
    async fn cases(&self, ctx: &Context<'_>) -> Result<Option<Vec<Guarded<Case>>>> {
        let keys: Vec<CaseKey> = self.0.case_ids.iter().cloned().map(CaseKey).collect();
        let found = loader(ctx)
            .load_many(keys.clone())
            .await
            .map_err(load_err)?;
        let viewpoint = super::viewpoint(ctx);
        Ok(Some(
            keys.iter()
                .filter_map(|k| found.get(k).cloned())
                .map(Case::from)
                .filter(|c| viewpoint.sees(&c.facts))
                .map(Guarded)
                .collect(),
        ))
    }
    /// Version.
    async fn version(&self) -> Result<i32> {
        Ok(int(self.0.version))
    }
    /// When it was recorded.
    async fn recorded_at(&self) -> Result<DateTime> {
        Ok(DateTime(self.0.recorded_at))
    }
}

/// Bytes of MAC appended to a cursor.
const CURSOR_MAC_LEN: usize = 16;

/// A MAC over a cursor's payload, keyed by the server's cursor key and bound to the
/// principal: a changed, made-up, or other principal's cursor is refused as `INVALID_CURSOR`.
fn cursor_mac(ctx: &Context<'_>, payload: &[u8]) -> [u8; CURSOR_MAC_LEN] {
    use hmac::{Mac, SimpleHmac};
    let key = services(ctx).cursor_key;
    let who = super::principal(ctx)
        .map(|p| format!("{}\0{}\0{}", p.issuer, p.subject, p.organisation))
        .unwrap_or_default();
    let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&key)
        .expect("HMAC takes keys of any length");
    mac.update(b"casegraph-cursor-v2\0");
    mac.update(who.as_bytes());
    mac.update(b"\0");
    mac.update(payload);
    let tag = mac.finalize().into_bytes();
    let mut out = [0u8; CURSOR_MAC_LEN];
    out.copy_from_slice(&tag[..CURSOR_MAC_LEN]);
    out
}

/// Encodes a cursor (opaque to clients).
pub(crate) fn encode_cursor(ctx: &Context<'_>, cursor: &CaseCursor) -> String {
    let mut bytes = serde_json::to_vec(cursor).expect("a cursor serialises");
    let mac = cursor_mac(ctx, &bytes);
    bytes.extend_from_slice(&mac);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor issued to this principal for `order`.
pub(crate) fn decode_cursor(
    ctx: &Context<'_>,
    raw: &str,
    order: crate::store::CaseOrder,
) -> Result<CaseCursor> {
    let invalid = || {
        gql_error(
            ErrorCode::InvalidCursor,
            "`after` is not a cursor this server issued to you for this ordering",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| invalid())?;
    let (payload, mac) = bytes.split_at(
        bytes
            .len()
            .checked_sub(CURSOR_MAC_LEN)
            .ok_or_else(invalid)?,
    );
    let expected = cursor_mac(ctx, payload);
    // Constant-time comparison.
    if mac.len() != expected.len()
        || mac
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return Err(invalid());
    }
    let cursor: CaseCursor = serde_json::from_slice(payload).map_err(|_| invalid())?;
    let key_ok = match order.field {
        crate::store::CaseOrderField::VictimCount => cursor.key.is_i64(),
        crate::store::CaseOrderField::IncidentDate => cursor
            .key
            .as_str()
            .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
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
    pub edges: Vec<Guarded<CaseEdge>>,
    /// Pagination state.
    pub page_info: Guarded<PageInfo>,
    #[graphql(skip)]
    pub(crate) filter: CaseFilter,
}

#[ComplexObject]
impl CaseConnection {
    /// The cases of this page, without cursors.
    async fn nodes(&self) -> Vec<Guarded<Case>> {
        self.edges
            .iter()
            .map(|e| {
                Case {
                    record: e.0.node.0.record.clone(),
                    facts: Arc::clone(&e.0.node.0.facts),
                }
                .into()
            })
            .collect()
    }

    /// How many cases match the filter in all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let n = services(ctx)
            .store
            .count_cases(&self.filter)
            .await
            .map_err(super::store_err)?;
        Ok(int(n))
    }
}

/// A case and its cursor.
#[derive(SimpleObject)]
pub struct CaseEdge {
    /// Pass as `after` to get the cases following this one.
    pub cursor: String,
    /// The case.
    pub node: Guarded<Case>,
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
    groups: Vec<StatisticsGroup>,
    total_cases: Option<i32>,
    total_victims: Option<i32>,
    filter: CaseFilter,
    exact_totals: bool,
}

/// One group of a statistics answer.
#[derive(SimpleObject, Clone)]
pub struct StatisticsGroup {
    /// The group's key: a mission code, an alpha-3 code, a year or an act; null where unknown.
    pub key: Option<String>,
    /// Cases in the group; null when suppressed.
    pub case_count: Option<i32>,
    /// Victims in the group; null when suppressed.
    pub victim_count: Option<i32>,
    /// The counts are withheld: the group is too small to publish to this principal, or is
    /// withheld so that no withheld group can be worked out from the other tables.
    pub suppressed: bool,
}

impl Statistics {
    /// The statistics of `rows`; with a protection, the cells (and totals) it withholds are
    /// null and marked suppressed.
    pub(crate) fn new(
        by: StatisticsDimension,
        rows: Vec<StatisticsRow>,
        filter: CaseFilter,
        protection: Option<crate::access::disclosure::Protection>,
    ) -> Self {
        let dimension = crate::access::disclosure::Dimension::from(by);
        let groups = rows
            .iter()
            .map(|r| {
                let withheld = protection
                    .as_ref()
                    .is_some_and(|p| p.is_withheld(dimension, r.key.as_deref()));
                StatisticsGroup {
                    key: r.key.clone(),
                    case_count: (!withheld).then(|| int(r.case_count)),
                    victim_count: (!withheld).then(|| int(r.victim_count)),
                    suppressed: withheld,
                }
            })
            .collect();
        // A case with several acts is in several ACT groups: that table's totals are counted
        // apart, once per case.
        let exact = by != StatisticsDimension::Act;
        let (cases, victims): (i64, i64) = rows
            .iter()
            .fold((0, 0), |(c, v), r| (c + r.case_count, v + r.victim_count));
        let published = protection.as_ref().is_none_or(|p| p.total_published());
        Self {
            by,
            groups,
            total_cases: (published && exact).then(|| int(cases)),
            total_victims: (published && exact).then(|| int(victims)),
            filter,
            exact_totals: published && !exact,
        }
    }
}

#[Object]
impl Statistics {
    /// The dimension.
    async fn by(&self) -> StatisticsDimension {
        self.by
    }
    /// The groups, ordered by key.
    async fn groups(&self) -> Vec<Guarded<StatisticsGroup>> {
        self.groups.iter().cloned().map(Guarded).collect()
    }
    /// Cases matching the filter (a case with several acts counts once here); null when
    /// withheld from a principal who is not concerned.
    async fn total_cases(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        if !self.exact_totals {
            return Ok(self.total_cases);
        }
        Ok(Some(int(services(ctx)
            .store
            .count_cases(&self.filter)
            .await
            .map_err(super::store_err)?)))
    }
    /// Victims of the matching cases; null when withheld.
    async fn total_victims(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        if !self.exact_totals {
            return Ok(self.total_victims);
        }
        let years = services(ctx)
            .store
            .statistics(StatisticsDimension::Year, &self.filter)
            .await
            .map_err(super::store_err)?;
        Ok(Some(int(years.iter().map(|r| r.victim_count).sum())))
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

/// Information a Member State submitted on a case (res. 2589 §6).
pub struct Submission {
    pub(crate) record: crate::store::SubmissionRecord,
    pub(crate) facts: Arc<CaseFacts>,
}

#[Object]
impl Submission {
    /// Opaque id.
    async fn id(&self) -> Result<ID> {
        Ok(ID(self.record.id.clone()))
    }
    /// Submitting organisation (ISO alpha-3).
    async fn organisation(&self) -> Result<&str> {
        Ok(&self.record.organisation)
    }
    /// What was submitted.
    async fn content(&self) -> Result<&str> {
        Ok(&self.record.content)
    }
    /// PENDING review, ACCEPTED into the record, or REJECTED.
    async fn status(&self) -> Result<crate::store::SubmissionStatus> {
        Ok(self.record.status)
    }
    /// When it was submitted.
    async fn submitted_at(&self) -> Result<DateTime> {
        Ok(DateTime(self.record.submitted_at))
    }
    /// When it was reviewed.
    async fn reviewed_at(&self) -> Result<Option<DateTime>> {
        Ok(self.record.reviewed_at.map(DateTime))
    }
    /// The reviewer's note.
    async fn review_note(&self) -> Result<Option<&str>> {
        Ok(self.record.review_note.as_deref())
    }
}

impl Protected for Mission {}
impl Protected for MissionLocation {}
impl Protected for FocalPoint {}
impl Protected for CaseConnection {}
impl Protected for CaseEdge {}
impl Protected for PageInfo {}
impl Protected for Statistics {}
impl Protected for StatisticsGroup {}
impl Protected for Viewer {}
impl Protected for CapacityBuildingAssistance {
    fn subject(&self) -> Subject<'_> {
        Subject::HostState(&self.0.host_state)
    }
}

impl Protected for Case {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }
}

impl Protected for CaseLocation {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }

    /// A location is there only if one of its parts the principal may read is recorded: a
    /// location holding nothing but withheld coordinates is as absent as no location at all.
    fn present(&self, readable: &dyn Fn(&str) -> bool) -> bool {
        (self.region.is_some() && readable("region"))
            || (self.locality.is_some() && readable("locality"))
            || (self.coordinates.is_some() && readable("coordinates"))
    }
}

impl Protected for Coordinates {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }

    /// A position whose two parts are withheld is as absent as none.
    fn present(&self, readable: &dyn Fn(&str) -> bool) -> bool {
        readable("latitude") || readable("longitude")
    }
}

impl Protected for Victim {
    fn subject(&self) -> Subject<'_> {
        Subject::Victim(
            &self.facts,
            self.record.nationality.as_deref(),
            self.record.contributing_country.as_deref(),
        )
    }
}

impl Protected for FollowUpAction {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }
}

impl Protected for NationalReference {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }
}

impl Protected for Submission {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }
}
