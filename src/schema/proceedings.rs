//! National proceedings joined from host-state connectors, and the connectors' health.
//!
//! `Case.nationalProceedings` holds one entry per connector that knows the case. A connector
//! that fails yields `null` in its place with an error at that path (`CONNECTOR_TIMEOUT`, …),
//! and the rest of the answer is intact. A national label the connector cannot map resolves to
//! `null` with `CONNECTOR_UNMAPPED_VALUE` at its field; the label itself stays readable.

use super::guard::{Guarded, Protected};
use super::scalars::{Date, DateTime};
use super::services;
use crate::access::{CaseFacts, Level, Subject};
use crate::connectors::model::{
    CaseStage, CourtType, DefendantStatus, FieldMask, FreshnessState, Mapped,
};
use crate::connectors::{
    ConnectorHandle, ConnectorKind, Connectors, HealthState, Lookup, MatchBy, Served,
};
use crate::error::{gql_error, ErrorCode};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Object, Result, SimpleObject};
use std::collections::HashMap;
use std::sync::Arc;

/// Key: one key looked up in one connector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProceedingsKey {
    /// Index of the connector.
    pub connector: usize,
    /// UN reference or national reference.
    pub key: String,
    /// The parts of the record the principal may read and the query selects.
    pub fields: FieldMask,
}

/// Batches every connector lookup of a request: one call per connector (per chunk of its
/// batch size), all connectors in parallel. One per request: nothing crosses principals here;
/// the connector cache below holds source data only.
pub struct ConnectorLoader {
    pub(crate) connectors: Connectors,
}

impl Loader<ProceedingsKey> for ConnectorLoader {
    type Value = Lookup;
    type Error = Arc<str>;

    async fn load(
        &self,
        keys: &[ProceedingsKey],
    ) -> Result<HashMap<ProceedingsKey, Lookup>, Arc<str>> {
        let mut by_connector: HashMap<(usize, FieldMask), Vec<String>> = HashMap::new();
        for k in keys {
            by_connector
                .entry((k.connector, k.fields))
                .or_default()
                .push(k.key.clone());
        }
        let calls = by_connector
            .into_iter()
            .filter_map(|((idx, fields), keys)| {
                let handle = Arc::clone(self.connectors.at(idx)?);
                Some(async move {
                    let found = handle.runtime.lookup_fields(&keys, fields).await;
                    (idx, fields, found)
                })
            });
        let mut out = HashMap::with_capacity(keys.len());
        for (idx, fields, found) in futures::future::join_all(calls).await {
            for (key, lookup) in found {
                out.insert(
                    ProceedingsKey {
                        connector: idx,
                        key,
                        fields,
                    },
                    lookup,
                );
            }
        }
        Ok(out)
    }
}

/// Resolves `Case.nationalProceedings` for one case.
/// The connectors that may know `case`, each with the keys to look up.
async fn wanted_keys(
    ctx: &Context<'_>,
    case: &crate::store::CaseRecord,
) -> Result<Vec<(usize, Arc<ConnectorHandle>, Vec<String>)>> {
    let connectors = &services(ctx).connectors;
    let Some(host) = case.host_state.as_deref() else {
        return Ok(Vec::new());
    };
    let applicable: Vec<(usize, Arc<ConnectorHandle>)> = connectors
        .for_host_state(host)
        .map(|(i, c)| (i, Arc::clone(c)))
        .collect();
    let mut national_refs: Option<Vec<crate::store::NationalReferenceRecord>> = None;
    let mut wanted = Vec::new();
    for (idx, handle) in applicable {
        let keys = match handle.match_by {
            MatchBy::UnReference => vec![case.reference.clone()],
            MatchBy::NationalReference => {
                if national_refs.is_none() {
                    let prefetched = super::request_data::<super::loaders::Prefetched>(ctx);
                    let refs = super::loaders::fetch(
                        super::types::loader(ctx),
                        &prefetched.references,
                        super::loaders::ReferencesOf(case.id.clone()),
                    )
                    .await
                    .map_err(super::load_err)?
                    .unwrap_or_default();
                    national_refs = Some(refs);
                }
                national_refs
                    .iter()
                    .flatten()
                    .filter(|r| handle.host_states.iter().any(|h| h == &r.state))
                    .map(|r| r.reference.clone())
                    .collect()
            }
        };
        if !keys.is_empty() {
            wanted.push((idx, handle, keys));
        }
    }
    Ok(wanted)
}

/// Looks up every connector key of a page of cases in one batch, before the cases resolve,
/// so that each connector gets one call per chunk for the whole page.
pub(crate) async fn prefetch_page(
    ctx: &Context<'_>,
    rows: &[crate::store::CaseRecord],
    look: &async_graphql::Lookahead<'_>,
) -> Result<()> {
    if services(ctx).connectors.all().is_empty() {
        return Ok(());
    }
    let mut keys = Vec::new();
    for case in rows {
        let facts = CaseFacts::of(case);
        let fields = requested_fields(ctx, look, &facts)?;
        for (idx, _, case_keys) in wanted_keys(ctx, case).await? {
            keys.extend(case_keys.into_iter().map(|key| ProceedingsKey {
                connector: idx,
                key,
                fields,
            }));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let loader = super::request_data::<DataLoader<ConnectorLoader>>(ctx);
    let found = loader
        .load_many(keys)
        .await
        .map_err(|e| gql_error(ErrorCode::Internal, e.to_string()))?;
    super::request_data::<super::loaders::Prefetched>(ctx)
        .proceedings
        .put_all(found);
    Ok(())
}

/// Resolves `Case.nationalProceedings` for one case.
pub(crate) async fn for_case(
    ctx: &Context<'_>,
    case: &crate::store::CaseRecord,
    facts: &Arc<CaseFacts>,
) -> Result<Vec<Option<Result<Guarded<NationalProceedings>>>>> {
    let wanted = wanted_keys(ctx, case).await?;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let fields = requested_fields(ctx, &ctx.look_ahead(), facts)?;
    let prefetched = &super::request_data::<super::loaders::Prefetched>(ctx).proceedings;
    let all_keys: Vec<ProceedingsKey> = wanted
        .iter()
        .flat_map(|(idx, _, keys)| {
            keys.iter().map(|k| ProceedingsKey {
                connector: *idx,
                key: k.clone(),
                fields,
            })
        })
        .collect();
    let mut found: HashMap<ProceedingsKey, Lookup> = HashMap::new();
    let mut missing = Vec::new();
    for k in all_keys {
        match prefetched.get(&k) {
            Some(v) => {
                found.insert(k, v);
            }
            None => missing.push(k),
        }
    }
    if !missing.is_empty() {
        let loader = super::request_data::<DataLoader<ConnectorLoader>>(ctx);
        found.extend(
            loader
                .load_many(missing)
                .await
                .map_err(|e| gql_error(ErrorCode::Internal, e.to_string()))?,
        );
    }
    let mut out = Vec::new();
    for (idx, handle, keys) in wanted {
        let mut failure = None;
        let mut served = None;
        for key in keys {
            match found.get(&ProceedingsKey {
                connector: idx,
                key,
                fields,
            }) {
                Some(Lookup::Found(s)) => {
                    served = Some(Arc::clone(s));
                    break;
                }
                Some(Lookup::Failed(e)) => failure = Some(e.clone()),
                Some(Lookup::NotKnown) | None => {}
            }
        }
        match (served, failure) {
            (Some(s), _) => {
                let policy = services(ctx).access.policy();
                // SEALED content never reaches this layer: the connector layer withheld it
                // before its cache and kept only the fact that it exists (`sealed`,
                // `sealed_parts`). Other markings raise the level of what they cover.
                let floor = if s.proceedings.sealed {
                    Some(Level::Sealed)
                } else {
                    s.proceedings
                        .marking
                        .as_deref()
                        .map(|m| policy.marking_level(m))
                };
                let field_floors = s
                    .proceedings
                    .field_markings
                    .iter()
                    .map(|(field, m)| (field.clone(), policy.marking_level(m)))
                    .collect();
                out.push(Some(Ok(Guarded(NationalProceedings {
                    served: s,
                    handle: Arc::clone(&handle),
                    facts: Arc::clone(facts),
                    floor,
                    field_floors,
                }))))
            }
            (None, Some(e)) => {
                out.push(Some(Err(gql_error(e.kind.error_code(), e.message.clone()))))
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

/// The parts of national records to ask for: those the query selects AND the plan lets the
/// principal read on this case. The decision is taken before any call, so a denied field is
/// never requested from a system that answers field by field.
fn requested_fields(
    ctx: &Context<'_>,
    look: &async_graphql::Lookahead<'_>,
    facts: &CaseFacts,
) -> Result<FieldMask> {
    const BITS: [(&str, u16); 10] = [
        ("nationalReference", FieldMask::NATIONAL_REFERENCE),
        ("authority", FieldMask::AUTHORITY),
        ("stage", FieldMask::STAGE),
        ("nationalStage", FieldMask::STAGE),
        ("stageHistory", FieldMask::STAGE_HISTORY),
        ("court", FieldMask::COURT),
        ("charges", FieldMask::CHARGES),
        ("defendants", FieldMask::DEFENDANTS),
        ("nextHearing", FieldMask::NEXT_HEARING),
        ("sourceUpdatedAt", FieldMask::UPDATED_AT),
    ];
    let mut mask = 0u16;
    for (field, bit) in BITS {
        if look.field(field).exists()
            && super::guard::may_fetch(ctx, "NationalProceedings", field, Subject::Case(facts))
        {
            mask |= bit;
        }
    }
    Ok(FieldMask(mask))
}

fn unmapped<T: Copy>(connector: &str, field: &str, value: &Mapped<T>) -> Result<T> {
    match value {
        Mapped::Known(v) => Ok(*v),
        Mapped::Unmapped(label) => Err(gql_error(
            ErrorCode::ConnectorUnmappedValue,
            format!("connector {connector}: the national {field} `{label}` has no canonical mapping; add it to the connector's table"),
        )),
    }
}

/// National proceedings on a case, as one host-state system reports them.
pub struct NationalProceedings {
    served: Arc<Served>,
    handle: Arc<ConnectorHandle>,
    facts: Arc<CaseFacts>,
    /// The level the source's marking raises the record's content to.
    floor: Option<Level>,
    /// The levels the source's markings of single fields raise them to, by protocol name
    /// (`national_reference`, `court`, …).
    field_floors: std::collections::BTreeMap<String, Level>,
}

impl NationalProceedings {
    /// The floor of one part of the record: the record's marking and the part's own.
    fn floor_of(&self, protocol_field: &str) -> Option<Level> {
        let own = self.field_floors.get(protocol_field).copied();
        match (self.floor, own) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[Object]
impl NationalProceedings {
    /// Id of the connector (host-state system) that reported them.
    async fn source(&self) -> Result<&str> {
        Ok(&self.handle.id)
    }
    /// Name of that system.
    async fn source_name(&self) -> Result<&str> {
        Ok(&self.handle.name)
    }
    /// The national reference of the case file.
    async fn national_reference(&self) -> Result<Option<&str>> {
        Ok(self.served.proceedings.national_reference.as_deref())
    }
    /// The authority in charge.
    async fn authority(&self) -> Result<Option<&str>> {
        Ok(self.served.proceedings.authority.as_deref())
    }
    /// Current stage, canonical. Null with `CONNECTOR_UNMAPPED_VALUE` when the national label
    /// has no mapping (see `nationalStage`).
    async fn stage(&self) -> Result<Option<CaseStage>> {
        self.served
            .proceedings
            .stage
            .as_ref()
            .map(|s| unmapped(&self.handle.id, "stage", s))
            .transpose()
    }
    /// Current stage, as the national system words it.
    async fn national_stage(&self) -> Result<Option<&str>> {
        Ok(self.served.proceedings.national_stage.as_deref())
    }
    /// Dated stages, oldest first.
    async fn stage_history(&self) -> Result<Option<Vec<Guarded<StageEntry>>>> {
        Ok(Some(
            self.served
                .proceedings
                .stage_history
                .iter()
                .map(|e| {
                    Guarded(StageEntry {
                        entry: e.clone(),
                        connector: self.handle.id.clone(),
                        facts: Arc::clone(&self.facts),
                        floor: self.floor_of("stage_history"),
                    })
                })
                .collect(),
        ))
    }
    /// The court seized.
    async fn court(&self) -> Result<Option<Guarded<Court>>> {
        Ok(self.served.proceedings.court.clone().map(|c| {
            Guarded(Court {
                court: c,
                connector: self.handle.id.clone(),
                facts: Arc::clone(&self.facts),
                floor: self.floor_of("court"),
            })
        }))
    }
    /// Charges, as worded nationally.
    async fn charges(&self) -> Result<Option<Vec<String>>> {
        Ok(Some(self.served.proceedings.charges.clone()))
    }
    /// Defendants.
    async fn defendants(&self, ctx: &Context<'_>) -> Result<Option<Vec<Guarded<Defendant>>>> {
        let policy = services(ctx).access.policy();
        Ok(Some(
            self.served
                .proceedings
                .defendants
                .iter()
                .map(|d| {
                    // A defendant's own marking raises its fields above the record's.
                    let own = d.marking.as_deref().map(|m| policy.marking_level(m));
                    let floor = match (self.floor_of("defendants"), own) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    Guarded(Defendant {
                        defendant: d.clone(),
                        connector: self.handle.id.clone(),
                        facts: Arc::clone(&self.facts),
                        floor,
                    })
                })
                .collect(),
        ))
    }
    /// Next hearing.
    async fn next_hearing(&self) -> Result<Option<Date>> {
        Ok(self.served.proceedings.next_hearing.map(Date))
    }
    /// When the national system last changed the record.
    async fn source_updated_at(&self) -> Result<Option<DateTime>> {
        Ok(self.served.proceedings.source_updated_at.map(DateTime))
    }
    /// The source marks this record, or parts of it (a field, a defendant), SEALED: they
    /// exist, and nothing of them leaves the host-state system.
    async fn restricted_record_exists(&self) -> Result<bool> {
        Ok(self.served.proceedings.sealed || self.served.proceedings.sealed_parts)
    }
    /// How fresh this answer is.
    async fn freshness(&self) -> Result<Guarded<Freshness>> {
        Ok(Guarded(Freshness {
            state: self.served.freshness,
            age_seconds: i32::try_from(self.served.age.as_secs()).unwrap_or(i32::MAX),
            facts: Arc::clone(&self.facts),
        }))
    }
}

/// How fresh national proceedings are.
#[derive(SimpleObject)]
pub struct Freshness {
    /// LIVE (fetched for this request), CACHED (within the connector's time to live) or STALE
    /// (past it, served because the system failed).
    pub state: FreshnessState,
    /// Age of the data, in seconds.
    pub age_seconds: i32,
    #[graphql(skip)]
    pub(crate) facts: Arc<CaseFacts>,
}

/// One dated stage.
pub struct StageEntry {
    entry: crate::connectors::model::StageEntry,
    connector: String,
    facts: Arc<CaseFacts>,
    floor: Option<Level>,
}

#[Object]
impl StageEntry {
    /// Canonical stage (null with `CONNECTOR_UNMAPPED_VALUE` when unmapped).
    async fn stage(&self) -> Result<Option<CaseStage>> {
        unmapped(&self.connector, "stage", &self.entry.stage).map(Some)
    }
    /// The national label.
    async fn national_label(&self) -> Result<Option<&str>> {
        Ok(Some(&self.entry.national_label))
    }
    /// When it was reached.
    async fn date(&self) -> Result<Option<Date>> {
        Ok(self.entry.date.map(Date))
    }
}

/// The court seized.
pub struct Court {
    court: crate::connectors::model::Court,
    connector: String,
    facts: Arc<CaseFacts>,
    floor: Option<Level>,
}

#[Object]
impl Court {
    /// Name.
    async fn name(&self) -> Result<Option<&str>> {
        Ok(self.court.name.as_deref())
    }
    /// Kind of court (null with `CONNECTOR_UNMAPPED_VALUE` when unmapped).
    #[graphql(name = "type")]
    async fn court_type(&self) -> Result<Option<CourtType>> {
        self.court
            .court_type
            .as_ref()
            .map(|t| unmapped(&self.connector, "court type", t))
            .transpose()
    }
}

/// A person prosecuted.
pub struct Defendant {
    defendant: crate::connectors::model::Defendant,
    connector: String,
    facts: Arc<CaseFacts>,
    floor: Option<Level>,
}

#[Object]
impl Defendant {
    /// Name, as the national system gives it.
    async fn name(&self) -> Result<Option<&str>> {
        Ok(self.defendant.name.as_deref())
    }
    /// Canonical status (null with `CONNECTOR_UNMAPPED_VALUE` when unmapped).
    async fn status(&self) -> Result<Option<DefendantStatus>> {
        self.defendant
            .status
            .as_ref()
            .map(|s| unmapped(&self.connector, "defendant status", s))
            .transpose()
    }
    /// The national status label.
    async fn national_status(&self) -> Result<Option<&str>> {
        Ok(self.defendant.national_status.as_deref())
    }
    /// Tried in absentia.
    async fn in_absentia(&self) -> Result<Option<bool>> {
        Ok(self.defendant.in_absentia)
    }
    /// Verdict.
    async fn verdict(&self) -> Result<Option<&str>> {
        Ok(self.defendant.verdict.as_deref())
    }
    /// Sentence.
    async fn sentence(&self) -> Result<Option<&str>> {
        Ok(self.defendant.sentence.as_deref())
    }
}

/// A host-state connector and how it is doing.
pub struct ConnectorStatus(pub(crate) Arc<ConnectorHandle>);

/// The last error a connector met.
#[derive(SimpleObject)]
pub struct ConnectorLastError {
    /// Error code (CONNECTOR_TIMEOUT, …).
    pub code: String,
    /// Message. It can name internal hosts of the host-state system: for UN staff only
    /// (the policy's level for it).
    pub message: Option<String>,
    /// When.
    pub at: DateTime,
}

/// Latency of a connector's recent upstream calls, in milliseconds.
#[derive(SimpleObject)]
pub struct ConnectorLatency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

fn system_time(t: std::time::SystemTime) -> DateTime {
    DateTime(chrono::DateTime::<chrono::Utc>::from(t))
}

#[Object]
impl ConnectorStatus {
    /// Id.
    async fn id(&self) -> &str {
        &self.0.id
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Kind.
    async fn kind(&self) -> ConnectorKind {
        self.0.kind
    }
    /// Host states covered.
    async fn host_states(&self) -> &[String] {
        &self.0.host_states
    }
    /// How cases are matched.
    async fn match_by(&self) -> MatchBy {
        self.0.match_by
    }
    /// UP, DEGRADED or CIRCUIT_OPEN.
    async fn state(&self) -> HealthState {
        self.0.runtime.health().state
    }
    /// Upstream calls made since start.
    async fn calls(&self) -> i32 {
        i32::try_from(self.0.runtime.health().calls).unwrap_or(i32::MAX)
    }
    /// Upstream calls that failed.
    async fn failures(&self) -> i32 {
        i32::try_from(self.0.runtime.health().failures).unwrap_or(i32::MAX)
    }
    /// Lookups answered from the cache.
    async fn cache_hits(&self) -> i32 {
        i32::try_from(self.0.runtime.health().cache_hits).unwrap_or(i32::MAX)
    }
    /// Lookups answered with stale data.
    async fn stale_served(&self) -> i32 {
        i32::try_from(self.0.runtime.health().stale_served).unwrap_or(i32::MAX)
    }
    /// Last successful call.
    async fn last_success_at(&self) -> Option<DateTime> {
        self.0.runtime.health().last_success.map(system_time)
    }
    /// Last error.
    async fn last_error(&self) -> Option<Guarded<ConnectorLastError>> {
        self.0.runtime.health().last_error.map(|e| {
            Guarded(ConnectorLastError {
                code: e.code.to_string(),
                message: Some(e.message),
                at: system_time(e.at),
            })
        })
    }
    /// Latency percentiles of the recent calls.
    async fn latency(&self) -> Option<Guarded<ConnectorLatency>> {
        self.0.runtime.health().latency_ms.map(|(p50, p95, p99)| {
            Guarded(ConnectorLatency {
                p50_ms: p50,
                p95_ms: p95,
                p99_ms: p99,
            })
        })
    }
}

/// The fields of a national record that carry its content: the source's marking raises them.
/// `source`, `sourceName`, `freshness` and `restrictedRecordExists` describe the answer, not the
/// record, and keep their own level.
pub(crate) const MARKED_PROCEEDINGS_FIELDS: &[&str] = &[
    "nationalReference",
    "authority",
    "stage",
    "nationalStage",
    "stageHistory",
    "court",
    "charges",
    "defendants",
    "nextHearing",
    "sourceUpdatedAt",
];

fn raised(level: Level, floor: Option<Level>) -> Level {
    floor.map_or(level, |f| f.max(level))
}

impl Protected for NationalProceedings {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }

    fn level(&self, field: &str, level: Level, _policy: &crate::access::Policy) -> Level {
        let part = match field {
            "nationalReference" => "national_reference",
            "authority" => "authority",
            "stage" | "nationalStage" => "stage",
            "stageHistory" => "stage_history",
            "court" => "court",
            "charges" => "charges",
            "defendants" => "defendants",
            "nextHearing" => "next_hearing",
            "sourceUpdatedAt" => "updated_at",
            // `source`, `sourceName`, `freshness`, `restrictedRecordExists` describe the
            // answer, not the record: markings do not cover them.
            _ => return level,
        };
        raised(level, self.floor_of(part))
    }
}

impl Protected for StageEntry {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }

    fn level(&self, _field: &str, level: Level, _policy: &crate::access::Policy) -> Level {
        raised(level, self.floor)
    }
}

impl Protected for Court {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }

    fn level(&self, _field: &str, level: Level, _policy: &crate::access::Policy) -> Level {
        raised(level, self.floor)
    }

    fn present(&self, readable: &dyn Fn(&str) -> bool) -> bool {
        (self.court.name.is_some() && readable("name"))
            || (self.court.court_type.is_some() && readable("type"))
    }
}

impl Protected for Defendant {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }

    /// A convicted defendant's name is on the public record of the verdict: it takes the
    /// policy's `convicted_defendant_name` level; other defendants' names keep the field's.
    fn level(&self, field: &str, level: Level, policy: &crate::access::Policy) -> Level {
        let convicted = matches!(
            self.defendant.status,
            Some(Mapped::Known(
                DefendantStatus::Convicted
                    | DefendantStatus::SentenceServing
                    | DefendantStatus::SentenceServed
            ))
        );
        let level = match (field, convicted, policy.convicted_defendant_name()) {
            ("name", true, Some(l)) => l,
            _ => level,
        };
        raised(level, self.floor)
    }
}

impl Protected for Freshness {
    fn subject(&self) -> Subject<'_> {
        Subject::Case(&self.facts)
    }
}

impl Protected for ConnectorStatus {}
impl Protected for ConnectorLastError {}
impl Protected for ConnectorLatency {}
