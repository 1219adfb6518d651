//! Queries.

use super::guard::Guarded;
use super::inputs::{bounded, countries, CaseFilterInput, CaseOrderInput};
use super::types::{
    decode_cursor, encode_cursor, CapacityBuildingAssistance, Case, CaseConnection, CaseEdge,
    Mission, PageInfo, Statistics, Viewer,
};
use super::{services, store_err, viewpoint};
use crate::domain::{AssistanceKind, AssistanceStatus, MissionKind, MissionStatus};
use crate::error::{gql_error, ErrorCode};
use crate::store::{
    AssistanceFilter, CaseCursor, CaseFilter, CaseOrder, MissionFilter, StatisticsDimension,
};
use async_graphql::{Context, Object, Result, ID};

/// Default page size of `cases`.
const DEFAULT_PAGE: i32 = 20;

/// Entry points for reading.
#[derive(Default)]
pub struct QueryRoot;

/// Which statistics cells a principal not concerned with every case may not see: cell
/// suppression audited across every table it can request, with the public mission facts and
/// what it sees of the cases itself (`access::disclosure` documents the method).
async fn disclosure_control(
    ctx: &Context<'_>,
    filter: &CaseFilter,
    threshold: u32,
) -> Result<crate::access::disclosure::Protection> {
    use crate::access::disclosure::{protect, Cell, MissionFact, Tables, Visible};
    let store = &services(ctx).store;
    let visibility = viewpoint(ctx).visibility.clone();
    let scoped = CaseFilter {
        visibility: visibility.clone(),
        ..filter.clone()
    };
    let cells = |rows: Vec<crate::store::StatisticsRow>| rows.iter().map(Cell::from).collect();
    let every_mission = MissionFilter::default();
    let (cross, acts, missions, seen_cross, seen_acts) = futures::try_join!(
        store.case_cross_counts(filter),
        store.statistics(StatisticsDimension::Act, filter),
        store.list_missions(&every_mission),
        store.case_cross_counts(&scoped),
        store.statistics(StatisticsDimension::Act, &scoped),
    )
    .map_err(store_err)?;
    let tables = Tables::new(cross, cells(acts));
    let facts: Vec<MissionFact> = missions.iter().map(MissionFact::from).collect();
    let visible = Visible {
        cross: seen_cross,
        acts: cells(seen_acts),
        complete_hosts: visibility.complete_hosts(),
        complete_missions: visibility.complete_missions(),
    };
    Ok(protect(&tables, &facts, &visible, threshold))
}

/// Refuses mission codes the store does not hold (one query for the whole filter).
pub(crate) async fn check_missions(ctx: &Context<'_>, filter: &CaseFilter) -> Result<()> {
    if filter.missions.is_empty() {
        return Ok(());
    }
    let found = services(ctx)
        .store
        .missions_by_codes(&filter.missions)
        .await
        .map_err(store_err)?;
    let found: std::collections::HashSet<&str> = found.iter().map(|f| f.code.as_str()).collect();
    if let Some(missing) = filter.missions.iter().find(|m| !found.contains(m.as_str())) {
        return Err(gql_error(
            ErrorCode::UnknownMission,
            format!("filter.missions: no mission `{missing}`"),
        ));
    }
    Ok(())
}

/// Fetches, in one query each, the nested lists the page's selection asks for.
async fn prefetch_page(ctx: &Context<'_>, rows: &[crate::store::CaseRecord]) -> Result<()> {
    use super::loaders::{
        prefetch, AssistanceOf, FollowUpsOf, MissionKey, Prefetched, ReferencesOf, VictimsOf,
    };
    let look = ctx.look_ahead();
    let (nodes, edges) = (look.field("nodes"), look.field("edges").field("node"));
    let wants = |f: &str| nodes.field(f).exists() || edges.field(f).exists();
    let loader = super::types::loader(ctx);
    let pre = super::request_data::<Prefetched>(ctx);
    let ids = || rows.iter().map(|c| c.id.clone());
    let mut missions: Vec<MissionKey> = rows
        .iter()
        .map(|c| MissionKey(c.mission_code.clone()))
        .collect();
    missions.sort_by(|a, b| a.0.cmp(&b.0));
    missions.dedup();
    let (m, v, f, r, a) = futures::join!(
        async {
            if wants("mission") {
                prefetch(loader, &pre.missions, missions).await
            } else {
                Ok(())
            }
        },
        async {
            if wants("victims") {
                prefetch(loader, &pre.victims, ids().map(VictimsOf).collect()).await
            } else {
                Ok(())
            }
        },
        async {
            if wants("followUpActions") {
                prefetch(loader, &pre.follow_ups, ids().map(FollowUpsOf).collect()).await
            } else {
                Ok(())
            }
        },
        async {
            if wants("nationalReferences") || wants("nationalProceedings") {
                prefetch(loader, &pre.references, ids().map(ReferencesOf).collect()).await
            } else {
                Ok(())
            }
        },
        async {
            if wants("capacityBuildingAssistance") {
                prefetch(loader, &pre.assistance, ids().map(AssistanceOf).collect()).await
            } else {
                Ok(())
            }
        },
    );
    m.and(v).and(f).and(r).and(a).map_err(super::load_err)?;
    for proceedings in [
        nodes.field("nationalProceedings"),
        edges.field("nationalProceedings"),
    ] {
        if proceedings.exists() {
            super::proceedings::prefetch_page(ctx, rows, &proceedings).await?;
        }
    }
    Ok(())
}

#[Object(name = "Query")]
impl QueryRoot {
    /// The caller, as the gateway sees it (subject, organisation, roles).
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Guarded<Viewer>> {
        Ok(Guarded(Viewer(viewpoint(ctx).principal.clone())))
    }

    /// Missions (and UN entities under which cases are recorded), ordered by code.
    async fn missions(
        &self,
        ctx: &Context<'_>,
        status: Option<MissionStatus>,
        kind: Option<MissionKind>,
    ) -> Result<Vec<Guarded<Mission>>> {
        let missions = services(ctx)
            .store
            .list_missions(&MissionFilter { status, kind })
            .await
            .map_err(store_err)?;
        Ok(missions.into_iter().map(|m| Guarded(Mission(m))).collect())
    }

    /// One mission by code.
    async fn mission(&self, ctx: &Context<'_>, code: String) -> Result<Option<Guarded<Mission>>> {
        let found = services(ctx)
            .store
            .missions_by_codes(&[code])
            .await
            .map_err(store_err)?;
        Ok(found.into_iter().next().map(|m| Guarded(Mission(m))))
    }

    /// Cases, filtered and ordered (default: most recent incident first), one page at a time:
    /// pass the last `endCursor` as `after` to get the next page. Only the cases you may see.
    /// Null, with `FORBIDDEN_FIELD`, when a filter or ordering uses data you may not read.
    #[graphql(complexity = "first.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn cases(
        &self,
        ctx: &Context<'_>,
        filter: Option<CaseFilterInput>,
        order_by: Option<CaseOrderInput>,
        #[graphql(desc = "Page size (default 20, at most the configured maximum).")] first: Option<
            i32,
        >,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> Result<Option<Guarded<CaseConnection>>> {
        let svc = services(ctx);
        let first = first.unwrap_or(DEFAULT_PAGE);
        if first < 0 {
            return Err(gql_error(
                ErrorCode::InvalidInput,
                "first must not be negative",
            ));
        }
        let max = svc.limits.max_page_size;
        let first = u32::try_from(first).expect("checked non-negative");
        if first > max {
            return Err(gql_error(
                ErrorCode::PageTooLarge,
                format!("first must be at most {max}"),
            ));
        }
        let input = filter.unwrap_or_default();
        let mut filter = input.parse(svc.limits.max_list_items)?;
        check_missions(ctx, &filter).await?;
        filter.visibility = viewpoint(ctx).visibility.clone();
        let order: CaseOrder = order_by.map(Into::into).unwrap_or_default();
        let cursor = after
            .as_deref()
            .map(|a| decode_cursor(ctx, a, order))
            .transpose()?;
        let mut rows = svc
            .store
            .list_cases(&filter, order, cursor.as_ref(), first + 1)
            .await
            .map_err(store_err)?;
        let has_next_page = rows.len() > first as usize;
        rows.truncate(first as usize);
        prefetch_page(ctx, &rows).await?;
        let edges: Vec<Guarded<CaseEdge>> = rows
            .into_iter()
            .map(|c| {
                Guarded(CaseEdge {
                    cursor: encode_cursor(ctx, &CaseCursor::after(&c, order)),
                    node: Guarded(Case::from(c)),
                })
            })
            .collect();
        Ok(Some(Guarded(CaseConnection {
            page_info: Guarded(PageInfo {
                has_next_page,
                has_previous_page: cursor.is_some(),
                start_cursor: edges.first().map(|e| e.0.cursor.clone()),
                end_cursor: edges.last().map(|e| e.0.cursor.clone()),
            }),
            edges,
            filter,
        })))
    }

    /// One case, by `id` or by `reference` (give exactly one).
    async fn case(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        reference: Option<String>,
    ) -> Result<Option<Guarded<Case>>> {
        let svc = services(ctx);
        let found = match (id, reference) {
            (Some(id), None) => svc
                .store
                .cases_by_ids(&[id.0])
                .await
                .map_err(store_err)?
                .into_iter()
                .next(),
            (None, Some(r)) => svc
                .store
                .case_by_reference(r.trim())
                .await
                .map_err(store_err)?,
            _ => {
                return Err(gql_error(
                    ErrorCode::InvalidInput,
                    "give exactly one of `id` and `reference`",
                ))
            }
        };
        // A case the principal may not see answers exactly like a case that does not exist.
        Ok(found
            .map(Case::from)
            .filter(|c| viewpoint(ctx).sees(&c.facts))
            .map(Guarded))
    }

    /// Federation: resolves `Case` entities by id for an Apollo supergraph. A case the
    /// principal may not see resolves to null, exactly like one that does not exist.
    #[graphql(entity)]
    async fn find_case_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Guarded<Case>>> {
        let svc = services(ctx);
        let found = svc
            .store
            .cases_by_ids(&[id.0])
            .await
            .map_err(store_err)?
            .into_iter()
            .next();
        Ok(found
            .map(Case::from)
            .filter(|c| viewpoint(ctx).sees(&c.facts))
            .map(Guarded))
    }

    /// Capacity-building assistance offered by the UN to host states (res. 2589 §5).
    async fn capacity_building_assistance(
        &self,
        ctx: &Context<'_>,
        host_states: Option<Vec<String>>,
        kinds: Option<Vec<AssistanceKind>>,
        status: Option<AssistanceStatus>,
    ) -> Result<Vec<Guarded<CapacityBuildingAssistance>>> {
        let max = services(ctx).limits.max_list_items;
        let host_states = countries("hostStates", &bounded("hostStates", host_states, max)?)?;
        let filter = AssistanceFilter {
            host_states: bounded("hostStates", Some(host_states), max)?,
            kinds: bounded("kinds", kinds, max)?,
            status,
        };
        let rows = services(ctx)
            .store
            .list_assistance(&filter)
            .await
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .map(|a| Guarded(CapacityBuildingAssistance(a)))
            .collect())
    }

    /// Host-state connectors and how they are doing (state, last success, last error, latency).
    async fn connectors(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<Guarded<super::proceedings::ConnectorStatus>>> {
        Ok(services(ctx)
            .connectors
            .all()
            .iter()
            .cloned()
            .map(|c| Guarded(super::proceedings::ConnectorStatus(c)))
            .collect())
    }

    /// The hash-chained audit log, newest first (descending `seq`); pass the last `endCursor`
    /// as `after` for older entries. Auditors only.
    #[graphql(
        complexity = "first.unwrap_or(super::audit::DEFAULT_AUDIT_PAGE).max(1) as usize * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<super::audit::AuditLogFilter>,
        #[graphql(desc = "Page size (default 50, at most the configured maximum).")] first: Option<
            i32,
        >,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> Result<Option<Guarded<super::audit::AuditEntryConnection>>> {
        super::audit::audit_log(ctx, filter, first, after)
            .await
            .map(|c| Some(Guarded(c)))
    }

    /// Counts of cases and victims grouped by mission, host state, year or act, over every
    /// case; small cells are withheld from principals not concerned with every case. Null,
    /// with `FORBIDDEN_FIELD`, when a filter uses data you may not read everywhere.
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        by: StatisticsDimension,
        filter: Option<CaseFilterInput>,
    ) -> Result<Option<Guarded<Statistics>>> {
        let input = filter.unwrap_or_default();
        let mut filter = input.parse(services(ctx).limits.max_list_items)?;
        check_missions(ctx, &filter).await?;
        // Aggregates count every case; what a principal not concerned with every case may
        // see of them is decided by suppression, not by scoping.
        filter.visibility = crate::access::Visibility::All;
        let svc = services(ctx);
        let rows = svc.store.statistics(by, &filter).await.map_err(store_err)?;
        let protection = match viewpoint(ctx).small_cell_threshold() {
            None => None,
            Some(threshold) => Some(disclosure_control(ctx, &filter, threshold).await?),
        };
        Ok(Some(Guarded(Statistics::new(by, rows, filter, protection))))
    }
}

impl super::guard::Protected for QueryRoot {}
