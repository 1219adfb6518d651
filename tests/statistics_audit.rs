//! Statistical disclosure control on the real data: the four statistics tables of the bundled UN
//! datasets, protected for a principal that sees no case and for one that sees a contributing
//! state's cases, then audited by linear programming: no withheld count can be worked out.
//! Also the store query behind it (`case_cross_counts`), on SQLite and PostgreSQL.

mod common;

use casegraph::access::disclosure::{
    audit, primary, protect, Cell, CellInterval, CellRef, Dimension, MissionFact, Protection,
    Reason, Tables, Visible,
};
use casegraph::access::{Organisation, Principal, Role, Visibility};
use casegraph::import::{self, ImportOptions};
use casegraph::store::{CaseFilter, MissionFilter, StatisticsDimension, Store};
use common::Backend;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The policy's default `small_cell_threshold`.
const THRESHOLD: u32 = 3;

/// A fresh store holding the bundled data; `None` when PostgreSQL is asked for and absent.
async fn bundled_store(backend: Backend) -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}/x.db", dir.path().display()),
        Backend::Postgres => common::postgres_url().await?,
    };
    let store = casegraph::store::connect(&url, 4)
        .await
        .expect("the store opens and migrates");
    import::import_bundled(store.as_ref(), ImportOptions::default())
        .await
        .expect("the bundled data imports");
    Some((store, dir))
}

/// What the bundled policy lets a Member State's analyst see (the gateway's one visibility
/// rule, compiled from `[levels.CONCERNED]`).
fn visibility_of(state: &str) -> Visibility {
    let policy = casegraph::access::Policy::load(
        casegraph::access::EMBEDDED_POLICY,
        "config/policy.toml",
        &casegraph::schema::shape(),
    )
    .expect("the bundled policy loads");
    let access = casegraph::schema::access_for(policy).expect("the bundled policy fits");
    access
        .viewpoint(Principal {
            subject: "analyst".into(),
            organisation: Organisation::parse(state).expect("a Member State"),
            roles: [Role::MemberStateAnalyst].into_iter().collect(),
            missions: vec![],
            issuer: "test".into(),
        })
        .visibility
}

fn scoped(state: &str) -> CaseFilter {
    CaseFilter {
        visibility: visibility_of(state),
        ..CaseFilter::all()
    }
}

fn dimensions() -> [(StatisticsDimension, Dimension); 3] {
    [
        (StatisticsDimension::Mission, Dimension::Mission),
        (StatisticsDimension::HostState, Dimension::HostState),
        (StatisticsDimension::Year, Dimension::Year),
    ]
}

async fn cross_counts_are_the_joint_table_behind_the_statistics(backend: Backend) {
    let Some((store, _dir)) = bundled_store(backend).await else {
        return;
    };
    for filter in [CaseFilter::all(), scoped("SEN")] {
        let cross = store
            .case_cross_counts(&filter)
            .await
            .expect("cross counts");
        let tables = Tables::new(cross.clone(), vec![]);
        for (by, dimension) in dimensions() {
            let mut expected: Vec<Cell> = store
                .statistics(by, &filter)
                .await
                .expect("statistics")
                .iter()
                .map(Cell::from)
                .collect();
            expected.sort_by(|a, b| a.key.cmp(&b.key));
            assert_eq!(
                tables.rows(dimension),
                expected,
                "{dimension} margins of the cross counts, scope {:?}",
                filter.visibility
            );
        }
        let cases: i64 = cross.iter().map(|c| c.cases).sum();
        let count = store.count_cases(&filter).await.expect("count");
        assert_eq!(
            cases, count,
            "every case once, scope {:?}",
            filter.visibility
        );
        assert!(
            cross.iter().all(|c| c.cases > 0 && c.year.len() == 4),
            "{cross:?}"
        );
    }
    let all = store
        .case_cross_counts(&CaseFilter::all())
        .await
        .expect("cross counts");
    let seen = store
        .case_cross_counts(&scoped("SEN"))
        .await
        .expect("cross counts");
    assert!(
        !seen.is_empty() && seen.len() < all.len(),
        "SEN sees some groups, not all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_counts_are_the_joint_table_behind_the_statistics_on_sqlite() {
    cross_counts_are_the_joint_table_behind_the_statistics(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_counts_are_the_joint_table_behind_the_statistics_on_postgres() {
    cross_counts_are_the_joint_table_behind_the_statistics(Backend::Postgres).await;
}

/// The global tables and public mission facts of the real data.
struct RealData {
    store: Arc<dyn Store>,
    tables: Tables,
    facts: Vec<MissionFact>,
    _dir: tempfile::TempDir,
}

async fn real_data() -> RealData {
    let (store, dir) = bundled_store(Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let cross = store
        .case_cross_counts(&CaseFilter::all())
        .await
        .expect("cross counts");
    let acts = store
        .statistics(StatisticsDimension::Act, &CaseFilter::all())
        .await
        .expect("act statistics");
    let facts = store
        .list_missions(&MissionFilter::default())
        .await
        .expect("missions")
        .iter()
        .map(MissionFact::from)
        .collect();
    RealData {
        store,
        tables: Tables::new(cross, acts.iter().map(Cell::from).collect()),
        facts,
        _dir: dir,
    }
}

/// What a Member State sees: the cases with its nationals or contingents among the victims, or
/// hosted by it — and every case it hosts.
async fn visible_to_state(store: &dyn Store, state: &str) -> Visible {
    let filter = scoped(state);
    Visible {
        cross: store
            .case_cross_counts(&filter)
            .await
            .expect("cross counts"),
        acts: store
            .statistics(StatisticsDimension::Act, &filter)
            .await
            .expect("act statistics")
            .iter()
            .map(Cell::from)
            .collect(),
        complete_hosts: filter.visibility.complete_hosts(),
        complete_missions: filter.visibility.complete_missions(),
    }
}

fn summary(p: &Protection) -> String {
    let per_table: Vec<String> = Dimension::ALL
        .iter()
        .map(|d| format!("{d} {}", p.withheld_in(*d)))
        .collect();
    format!(
        "{} cells withheld ({}; total {})",
        p.len(),
        per_table.join(", "),
        if p.total_published() {
            "published"
        } else {
            "withheld"
        }
    )
}

fn describe(intervals: &[CellInterval]) -> String {
    intervals
        .iter()
        .map(|i| format!("{}: cases {} victims {}", i.cell, i.cases, i.victims))
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Protects the real tables for `visible`, audits the result and asserts that every withheld
/// cell keeps a range wider than one value for cases and for victims.
fn assert_protected(data: &RealData, visible: &Visible, who: &str) -> Protection {
    let protection = protect(&data.tables, &data.facts, visible, THRESHOLD);
    let naive = primary(&data.tables, &data.facts, visible, THRESHOLD);
    assert!(
        naive.len() > 10,
        "{who}: the real data has small cells ({})",
        summary(&naive)
    );
    let intervals =
        audit(&data.tables, &data.facts, visible, &protection).expect("the audit solves");
    assert_eq!(
        intervals.len(),
        protection.len(),
        "{who}: every cell audited"
    );
    let disclosed: Vec<&CellInterval> = intervals.iter().filter(|i| i.is_disclosed()).collect();
    assert!(
        disclosed.is_empty(),
        "{who}: {} of {} withheld cells can be worked out:\n  {}",
        disclosed.len(),
        summary(&protection),
        describe(&intervals)
    );
    for (cell, _) in naive.withheld() {
        assert!(
            protection.withheld().any(|(c, _)| c == cell),
            "{who}: small cell {cell} withheld"
        );
    }
    eprintln!("{who}: {}", summary(&protection));
    protection
}

#[tokio::test]
async fn no_withheld_cell_can_be_worked_out_by_a_principal_that_sees_no_case() {
    let data = real_data().await;
    let p = assert_protected(&data, &Visible::nothing(), "a principal seeing nothing");
    assert!(
        p.withheld_in(Dimension::Mission) > 0 && p.withheld_in(Dimension::Year) > 0,
        "{}",
        summary(&p)
    );
}

#[tokio::test]
async fn no_withheld_cell_can_be_worked_out_by_a_contributing_state_that_sees_its_own_cases() {
    let data = real_data().await;
    let visible = visible_to_state(data.store.as_ref(), "SEN").await;
    let seen: i64 = visible.cross.iter().map(|c| c.cases).sum();
    assert!(seen > 5, "SEN sees some cases ({seen})");
    assert_protected(&data, &visible, "SEN");
}

#[tokio::test]
async fn suppressing_small_cells_table_by_table_leaks_on_the_real_data() {
    // The finding: HTI minus MINUSTAH over the other missions in Haiti, and more.
    let data = real_data().await;
    let nobody = Visible::nothing();
    let naive = primary(&data.tables, &data.facts, &nobody, THRESHOLD);
    let intervals = audit(&data.tables, &data.facts, &nobody, &naive).expect("the audit solves");
    let disclosed: BTreeMap<String, i64> = intervals
        .iter()
        .filter(|i| i.is_disclosed())
        .map(|i| (i.cell.to_string(), i.cases.min))
        .collect();
    assert!(
        disclosed.len() >= 7,
        "primary suppression alone lets {} cells be worked out: {disclosed:?}",
        disclosed.len()
    );
    for m in ["BINUH", "MICAH", "MIPONUH", "UNMIH"] {
        assert_eq!(
            disclosed.get(&format!("MISSION {m}")),
            Some(&1),
            "HTI minus MINUSTAH leaves one case to each of the four: {disclosed:?}"
        );
    }
}

/// What the running gateway publishes to `token`: its four tables over HTTP, as a protection
/// (the cells and totals it withheld), plus the table rows it returned.
async fn published(app: &common::TestApp, token: &str) -> (Protection, Vec<(Dimension, Value)>) {
    let mut protection = Protection::default();
    let mut tables = Vec::new();
    for (by, dimension) in [
        ("MISSION", Dimension::Mission),
        ("HOST_STATE", Dimension::HostState),
        ("YEAR", Dimension::Year),
        ("ACT", Dimension::Act),
    ] {
        let res = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(token)
            .json(&json!({
                "query": "query($by: StatisticsDimension!) { statistics(by: $by) { totalCases totalVictims groups { key caseCount victimCount suppressed } } }",
                "variables": { "by": by }
            }))
            .send()
            .await
            .expect("request");
        let body: Value = res.json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "{by}: {body}");
        let stats = body["data"]["statistics"].clone();
        for g in stats["groups"].as_array().expect("groups") {
            if g["suppressed"] == json!(true) {
                assert!(
                    g["caseCount"].is_null() && g["victimCount"].is_null(),
                    "{g}"
                );
                protection.withhold(
                    CellRef::group(dimension, g["key"].as_str()),
                    Reason::Complementary,
                );
            }
        }
        if dimension != Dimension::Act && stats["totalCases"].is_null() {
            protection.withhold(CellRef::Total, Reason::Complementary);
        }
        tables.push((dimension, stats));
    }
    (protection, tables)
}

#[tokio::test]
async fn the_gateway_publishes_no_recomputable_cell_to_an_unrelated_state_and_the_haiti_cells_stay_hidden(
) {
    let app = common::spawn_app().await;
    let data = real_data().await;
    // Iceland is related to no case: it sees the four tables and the public mission facts.
    let token = app.token("ISL", &["member-state-analyst"]);
    let (protection, tables) = published(&app, &token).await;
    let intervals = audit(&data.tables, &data.facts, &Visible::nothing(), &protection)
        .expect("the audit solves");
    let disclosed: Vec<&CellInterval> = intervals.iter().filter(|i| i.is_disclosed()).collect();
    assert!(
        disclosed.is_empty(),
        "what the gateway published pins {} withheld cell(s):\n  {}",
        disclosed.len(),
        describe(&intervals)
    );
    // The leak the issue found: HTI 16 by host state, MINUSTAH 12 by mission, and the four
    // other missions on Haitian territory would each be exactly 1.
    let missions = &tables[0].1["groups"];
    for code in ["BINUH", "MICAH", "MIPONUH", "UNMIH"] {
        let g = missions
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["key"] == json!(code))
            .unwrap_or_else(|| panic!("{code} is a group"));
        assert_eq!(g["suppressed"], json!(true), "{code}: {g}");
    }
    let minustah_or_hti_hidden = missions
        .as_array()
        .expect("groups")
        .iter()
        .any(|g| g["key"] == json!("MINUSTAH") && g["suppressed"] == json!(true))
        || tables[1].1["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["key"] == json!("HTI") && g["suppressed"] == json!(true));
    assert!(
        minustah_or_hti_hidden,
        "one of the cells that made the Haiti missions recomputable is withheld too"
    );
}
