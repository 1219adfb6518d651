//! The case store and the UN data importers, on SQLite and on PostgreSQL.
//!
//! Each test body is written once as an `async fn(Backend)` and run twice by `on_both_backends!`:
//! `<name>_on_sqlite` and `<name>_on_postgres`. The PostgreSQL run returns early (after the
//! harness's loud SKIPPED line) when no PostgreSQL is reachable, unless
//! `CASEGRAPH_REQUIRE_POSTGRES=1`, which turns that into a failure.

mod common;

use casegraph::domain::{
    Act, AssistanceKind, AssistanceStatus, CountryCode, Harm, MissionKind, MissionStatus,
    PersonnelCategory,
};
use casegraph::import::{self, ImportError, ImportOptions, BUNDLED_FATALITIES, BUNDLED_MISSIONS};
use casegraph::store::{
    AssistanceFilter, CaseCursor, CaseFilter, CaseOrder, CaseOrderField, CasePatch, CaseRecord,
    ImportCounts, MissionFilter, MissionRecord, NewAssistance, NewCase, NewNationalReference,
    NewVictim, OrderDirection, StatisticsDimension, Store, StoreError, VictimRecord,
};
use chrono::NaiveDate;
use common::Backend;
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Runs each named `async fn(Backend)` as two tests, one per backend.
macro_rules! on_both_backends {
    ($($body:ident => $sqlite:ident, $postgres:ident;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $sqlite() {
                $body(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $postgres() {
                $body(Backend::Postgres).await;
            }
        )+
    };
}

on_both_backends! {
    importing_the_bundled_files_gives_611_cases_1134_victims_and_52_missions
        => importing_the_bundled_files_gives_611_cases_1134_victims_and_52_missions_on_sqlite,
           importing_the_bundled_files_gives_611_cases_1134_victims_and_52_missions_on_postgres;
    re_running_both_imports_changes_and_duplicates_nothing
        => re_running_both_imports_changes_and_duplicates_nothing_on_sqlite,
           re_running_both_imports_changes_and_duplicates_nothing_on_postgres;
    a_fatalities_file_with_bad_rows_is_reported_line_by_line_and_writes_nothing
        => a_fatalities_file_with_bad_rows_is_reported_line_by_line_and_writes_nothing_on_sqlite,
           a_fatalities_file_with_bad_rows_is_reported_line_by_line_and_writes_nothing_on_postgres;
    a_mission_file_with_a_bad_row_writes_nothing_unless_told_to_skip_it
        => a_mission_file_with_a_bad_row_writes_nothing_unless_told_to_skip_it_on_sqlite,
           a_mission_file_with_a_bad_row_writes_nothing_unless_told_to_skip_it_on_postgres;
    importing_fatalities_before_missions_is_refused_with_a_hint_to_import_missions_first
        => importing_fatalities_before_missions_is_refused_with_a_hint_to_import_missions_first_on_sqlite,
           importing_fatalities_before_missions_is_refused_with_a_hint_to_import_missions_first_on_postgres;
    a_changed_row_updates_only_its_case_and_bumps_its_version
        => a_changed_row_updates_only_its_case_and_bumps_its_version_on_sqlite,
           a_changed_row_updates_only_its_case_and_bumps_its_version_on_postgres;
    a_new_case_gets_a_mission_date_reference_and_a_suffix_on_the_same_day
        => a_new_case_gets_a_mission_date_reference_and_a_suffix_on_the_same_day_on_sqlite,
           a_new_case_gets_a_mission_date_reference_and_a_suffix_on_the_same_day_on_postgres;
    updating_a_case_at_a_stale_version_is_a_conflict_and_changes_nothing
        => updating_a_case_at_a_stale_version_is_a_conflict_and_changes_nothing_on_sqlite,
           updating_a_case_at_a_stale_version_is_a_conflict_and_changes_nothing_on_postgres;
    adding_a_victim_at_a_stale_version_adds_no_victim
        => adding_a_victim_at_a_stale_version_adds_no_victim_on_sqlite,
           adding_a_victim_at_a_stale_version_adds_no_victim_on_postgres;
    assistance_naming_a_missing_case_is_refused_and_leaves_no_row
        => assistance_naming_a_missing_case_is_refused_and_leaves_no_row_on_sqlite,
           assistance_naming_a_missing_case_is_refused_and_leaves_no_row_on_postgres;
    linking_the_same_national_reference_twice_is_a_duplicate_and_keeps_one_row
        => linking_the_same_national_reference_twice_is_a_duplicate_and_keeps_one_row_on_sqlite,
           linking_the_same_national_reference_twice_is_a_duplicate_and_keeps_one_row_on_postgres;
    of_eight_concurrent_updates_at_the_same_version_exactly_one_wins
        => of_eight_concurrent_updates_at_the_same_version_exactly_one_wins_on_sqlite,
           of_eight_concurrent_updates_at_the_same_version_exactly_one_wins_on_postgres;
    every_case_filter_field_narrows_the_real_data_as_specified
        => every_case_filter_field_narrows_the_real_data_as_specified_on_sqlite,
           every_case_filter_field_narrows_the_real_data_as_specified_on_postgres;
    keyset_pagination_returns_every_case_exactly_once_in_every_order
        => keyset_pagination_returns_every_case_exactly_once_in_every_order_on_sqlite,
           keyset_pagination_returns_every_case_exactly_once_in_every_order_on_postgres;
    the_api_serves_the_bundled_data_imported_on_first_start
        => the_api_serves_the_bundled_data_imported_on_first_start_on_sqlite,
           the_api_serves_the_bundled_data_imported_on_first_start_on_postgres;
    the_import_command_imports_reimports_idempotently_and_fails_on_a_broken_file
        => the_import_command_imports_reimports_idempotently_and_fails_on_a_broken_file_on_sqlite,
           the_import_command_imports_reimports_idempotently_and_fails_on_a_broken_file_on_postgres;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A fresh, empty store; the temporary folder lives as long as it.
struct TestStore {
    store: Arc<dyn Store>,
    url: String,
    dir: tempfile::TempDir,
}

/// Opens a fresh store; `None` when the backend is PostgreSQL and none is reachable.
async fn open(backend: Backend) -> Option<TestStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}/x.db", dir.path().display()),
        Backend::Postgres => common::postgres_url().await?,
    };
    let store = casegraph::store::connect(&url, 4)
        .await
        .expect("the store opens and migrates");
    Some(TestStore { store, url, dir })
}

/// A fresh store holding the bundled missions and fatalities.
async fn open_with_bundled_data(backend: Backend) -> Option<TestStore> {
    let t = open(backend).await?;
    import::import_bundled(t.store.as_ref(), ImportOptions::default())
        .await
        .expect("the bundled data imports");
    Some(t)
}

/// A fresh store holding the bundled missions only.
async fn open_with_missions(backend: Backend) -> Option<TestStore> {
    let t = open(backend).await?;
    import::import_missions(t.store.as_ref(), BUNDLED_MISSIONS, ImportOptions::default())
        .await
        .expect("the bundled missions import");
    Some(t)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a valid test date")
}

fn country(code: &str) -> CountryCode {
    CountryCode::parse(code).expect("a valid test country")
}

fn new_case(mission: &str, on: &str) -> NewCase {
    NewCase {
        mission_code: mission.into(),
        host_state: None,
        incident_date: date(on),
        reported_date: None,
        acts: vec![Act::Ambush, Act::Killing],
        region: Some("Kidal".into()),
        locality: None,
        latitude: None,
        longitude: None,
        summary: Some("Convoy ambushed.".into()),
        perpetrator_groups: vec![],
    }
}

fn new_victim() -> NewVictim {
    NewVictim {
        category: PersonnelCategory::Military,
        contributing_country: Some(country("TCD")),
        nationality: Some(country("TCD")),
        harm: Harm::Injured,
        gender: None,
        name: None,
        service_number: None,
    }
}

/// Every case, ordered by id.
async fn all_cases(store: &dyn Store) -> Vec<CaseRecord> {
    let order = CaseOrder {
        field: CaseOrderField::Reference,
        direction: OrderDirection::Asc,
    };
    let mut cases = store
        .list_cases(&CaseFilter::all(), order, None, 100_000)
        .await
        .expect("list cases");
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    cases
}

/// Every victim of `cases`, in store order.
async fn all_victims(store: &dyn Store, cases: &[CaseRecord]) -> Vec<VictimRecord> {
    let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    store.victims_by_case_ids(&ids).await.expect("victims")
}

async fn all_missions(store: &dyn Store) -> Vec<MissionRecord> {
    store
        .list_missions(&MissionFilter::default())
        .await
        .expect("missions")
}

async fn case_by_reference(store: &dyn Store, reference: &str) -> CaseRecord {
    store
        .case_by_reference(reference)
        .await
        .expect("read")
        .unwrap_or_else(|| panic!("case {reference} exists"))
}

async fn reread(store: &dyn Store, id: &str) -> CaseRecord {
    let mut found = store.cases_by_ids(&[id.to_string()]).await.expect("read");
    assert_eq!(found.len(), 1, "case {id} is in the store once");
    found.remove(0)
}

const FATALITIES_HEADER: &str =
    "id,incident_date,casualty_id,mission_acronym,type_of_casualty,gender,\
    casualty_nationality,casualty_personnel_type,type_of_incident,m49_code,isocode3,last_update";

const MISSIONS_HEADER: &str =
    "id,mission_acronym,mission_name,lead_department,mission_isactive,start_date,\
    end_date,mission_location,mission_longitude,mission_latitude,last_update";

/// A fatalities file with two good rows (lines 2 and 5), three bad ones (lines 3, 4, 6) and one
/// out of scope (line 7).
fn fatalities_with_bad_rows() -> String {
    [
        FATALITIES_HEADER,
        "1,2021-01-13,MINUSMA-2021-01-00004,MINUSMA,Fatality,M,Chad,Military,Malicious Act,148.0,TCD,2025-04-04",
        "2,2021-02-30,MINUSMA-2021-02-00001,MINUSMA,Fatality,M,Chad,Military,Malicious Act,148.0,TCD,2025-04-04",
        "3,2021-01-14,MINUSMA-2021-01-00007,MINUSMA,Fatality,Q,Chad,Wizard,Malicious Act,148.0,TCD,2025-04-04",
        "4,2019-05-01,MONUSCO-2019-05-00001,MONUSCO,Fatality,F,Ghana,Police,Malicious Act,288.0,GHA,2025-04-04",
        "5,2019-05-02,NOSUCH-2019-05-00001,NOSUCH,Fatality,F,Ghana,Police,Malicious Act,288.0,GHA,2025-04-04",
        "6,2019-05-03,MONUSCO-2019-05-00002,MONUSCO,Fatality,F,Ghana,Police,Illness,288.0,GHA,2025-04-04",
    ]
    .join("\n")
        + "\n"
}

fn rejected_lines(report: &import::ImportReport) -> Vec<u64> {
    report.rejected.iter().map(|r| r.line).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The real data
// ---------------------------------------------------------------------------------------------

async fn importing_the_bundled_files_gives_611_cases_1134_victims_and_52_missions(
    backend: Backend,
) {
    let Some(t) = open(backend).await else { return };
    let store = t.store.as_ref();
    let (missions, fatalities) = import::import_bundled(store, ImportOptions::default())
        .await
        .expect("imports");
    assert_eq!(
        missions.counts,
        ImportCounts {
            inserted: 104,
            updated: 0,
            unchanged: 0
        }
    );
    assert_eq!(
        fatalities.counts,
        ImportCounts {
            inserted: 611,
            updated: 0,
            unchanged: 0
        }
    );
    assert_eq!((fatalities.records, fatalities.victims), (611, 1134));

    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        611
    );
    let cases = all_cases(store).await;
    assert_eq!(cases.len(), 611);
    assert_eq!(
        cases.iter().map(|c| c.victim_count).sum::<i64>(),
        1134,
        "sum of victim counts"
    );
    let victims = all_victims(store, &cases).await;
    assert_eq!(victims.len(), 1134, "victim rows");
    let mut per_case: HashMap<&str, i64> = HashMap::new();
    for v in &victims {
        *per_case.entry(v.case_id.as_str()).or_default() += 1;
        assert_eq!(v.harm, Harm::Killed);
    }
    for c in &cases {
        assert_eq!(
            per_case.get(c.id.as_str()).copied().unwrap_or(0),
            c.victim_count,
            "{}",
            c.reference
        );
        assert_eq!(c.acts, vec![Act::Killing], "{}", c.reference);
        assert_eq!(c.version, 1, "{}", c.reference);
    }

    let by_mission = store
        .statistics(StatisticsDimension::Mission, &CaseFilter::all())
        .await
        .expect("stats");
    assert_eq!(by_mission.len(), 52, "distinct missions among cases");
    assert_eq!(by_mission.iter().map(|r| r.case_count).sum::<i64>(), 611);
    assert_eq!(by_mission.iter().map(|r| r.victim_count).sum::<i64>(), 1134);
    assert!(
        by_mission
            .iter()
            .any(|r| r.key.as_deref() == Some("UNSecretariat")),
        "{by_mission:?}"
    );
    let codes: HashSet<&str> = cases.iter().map(|c| c.mission_code.as_str()).collect();
    assert_eq!(codes.len(), 52);

    assert_eq!(all_missions(store).await.len(), 104);
    let found = store
        .missions_by_codes(&["UNSecretariat".into(), "MINUSMA".into()])
        .await
        .expect("missions");
    let un = found
        .iter()
        .find(|m| m.code.as_str() == "UNSecretariat")
        .expect("UNSecretariat is a mission");
    assert_eq!(un.kind, MissionKind::UnEntity);
    let minusma = found
        .iter()
        .find(|m| m.code.as_str() == "MINUSMA")
        .expect("MINUSMA");
    assert_eq!(
        minusma.status,
        MissionStatus::Closed,
        "MINUSMA closed although the file flags it active"
    );
    assert_eq!(minusma.end_date, Some(date("2023-12-31")));

    let minusma_since_2013 = CaseFilter {
        missions: vec!["MINUSMA".into()],
        from: Some(date("2013-01-01")),
        ..CaseFilter::all()
    };
    assert_eq!(
        store.count_cases(&minusma_since_2013).await.expect("count"),
        72
    );

    let kasai = CaseFilter {
        missions: vec!["UNSecretariat".into()],
        from: Some(date("2017-03-12")),
        to: Some(date("2017-03-12")),
        ..CaseFilter::all()
    };
    let order = CaseOrder::default();
    let kasai = store
        .list_cases(&kasai, order, None, 10)
        .await
        .expect("list");
    assert_eq!(kasai.len(), 1, "one UNSecretariat case on 2017-03-12");
    assert_eq!(
        kasai[0].host_state.as_deref(),
        Some("COD"),
        "host state from the MONUSCO casualty id"
    );
    assert_eq!(kasai[0].victim_count, 2);
}

// ---------------------------------------------------------------------------------------------
// 2. Idempotent re-import
// ---------------------------------------------------------------------------------------------

async fn re_running_both_imports_changes_and_duplicates_nothing(backend: Backend) {
    let Some(t) = open_with_bundled_data(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let cases_before = all_cases(store).await;
    let victims_before = all_victims(store, &cases_before).await;
    let missions_before = all_missions(store).await;
    assert_eq!(cases_before.len(), 611);

    let missions = import::import_missions(store, BUNDLED_MISSIONS, ImportOptions::default())
        .await
        .expect("again");
    assert_eq!(
        missions.counts,
        ImportCounts {
            inserted: 0,
            updated: 0,
            unchanged: 104
        }
    );
    let fatalities = import::import_fatalities(store, BUNDLED_FATALITIES, ImportOptions::default())
        .await
        .expect("again");
    assert_eq!(
        fatalities.counts,
        ImportCounts {
            inserted: 0,
            updated: 0,
            unchanged: 611
        }
    );

    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        611
    );
    let cases_after = all_cases(store).await;
    // Whole records: ids, references, versions, victim counts and timestamps are all untouched.
    assert_eq!(cases_after, cases_before);
    assert_eq!(all_victims(store, &cases_after).await, victims_before);
    assert_eq!(all_missions(store).await, missions_before);
}

// ---------------------------------------------------------------------------------------------
// 3. Bad rows and wrong order
// ---------------------------------------------------------------------------------------------

async fn a_fatalities_file_with_bad_rows_is_reported_line_by_line_and_writes_nothing(
    backend: Backend,
) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let csv = fatalities_with_bad_rows();
    let before = store.count_cases(&CaseFilter::all()).await.expect("count");
    assert_eq!(before, 0);

    let err = import::import_fatalities(store, csv.as_bytes(), ImportOptions::default())
        .await
        .expect_err("bad rows stop the import");
    let message = err.to_string();
    let ImportError::Rejected(report) = err else {
        panic!("expected rejected rows, got {message}")
    };
    assert_eq!(rejected_lines(&report), vec![3, 4, 6], "{message}");
    assert!(
        report.rejected[0].reason.contains("incident_date"),
        "{}",
        report.rejected[0].reason
    );
    assert!(
        report.rejected[1].reason.contains("Wizard"),
        "{}",
        report.rejected[1].reason
    );
    assert!(
        report.rejected[1].reason.contains("`Q`"),
        "{}",
        report.rejected[1].reason
    );
    assert!(
        report.rejected[2].reason.contains("NOSUCH"),
        "{}",
        report.rejected[2].reason
    );
    for line in ["line 3:", "line 4:", "line 6:", "nothing was written"] {
        assert!(
            message.contains(line),
            "the message lacks `{line}`: {message}"
        );
    }
    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        before,
        "nothing was written"
    );
    assert!(store
        .case_by_reference("MINUSMA-20210113")
        .await
        .expect("read")
        .is_none());

    let opts = ImportOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let report = import::import_fatalities(store, csv.as_bytes(), opts)
        .await
        .expect("the good rows import");
    assert_eq!(rejected_lines(&report), vec![3, 4, 6]);
    assert_eq!(
        report.counts,
        ImportCounts {
            inserted: 2,
            updated: 0,
            unchanged: 0
        }
    );
    assert_eq!(report.rows_out_of_scope, 1);
    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        2
    );
    let minusma = case_by_reference(store, "MINUSMA-20210113").await;
    assert_eq!(
        (minusma.victim_count, minusma.host_state.as_deref()),
        (1, Some("MLI"))
    );
    let monusco = case_by_reference(store, "MONUSCO-20190501").await;
    let victims = all_victims(store, &[monusco]).await;
    assert_eq!(victims.len(), 1);
    assert_eq!(victims[0].category, PersonnelCategory::Police);
    assert_eq!(victims[0].contributing_country.as_deref(), Some("GHA"));
}

async fn a_mission_file_with_a_bad_row_writes_nothing_unless_told_to_skip_it(backend: Backend) {
    let Some(t) = open(backend).await else { return };
    let store = t.store.as_ref();
    let csv = [
        MISSIONS_HEADER,
        "1,MINUSMA,Mali,DPO,Yes,2013-04-25,,Bamako,\"12,65\",\"-8,0\",2024-02-19",
        "2,NOPE,Nowhere,DPO,Perhaps,2013-13-01,,X,,,2024-02-19",
    ]
    .join("\n");

    let err = import::import_missions(store, csv.as_bytes(), ImportOptions::default())
        .await
        .expect_err("refused");
    let message = err.to_string();
    let ImportError::Rejected(report) = err else {
        panic!("expected rejected rows, got {message}")
    };
    assert_eq!(rejected_lines(&report), vec![3]);
    assert!(
        report.rejected[0].reason.contains("NOPE") && report.rejected[0].reason.contains("Perhaps")
    );
    assert!(message.contains("line 3:"), "{message}");
    assert!(all_missions(store).await.is_empty(), "nothing was written");

    let opts = ImportOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let report = import::import_missions(store, csv.as_bytes(), opts)
        .await
        .expect("the good rows import");
    assert_eq!(rejected_lines(&report), vec![3]);
    let missions = all_missions(store).await;
    assert_eq!(report.counts.inserted, missions.len());
    let minusma = missions
        .iter()
        .find(|m| m.code.as_str() == "MINUSMA")
        .expect("MINUSMA imported");
    assert_eq!(minusma.status, MissionStatus::Closed);
    assert!(missions.iter().all(|m| m.code.as_str() != "NOPE"));
}

async fn importing_fatalities_before_missions_is_refused_with_a_hint_to_import_missions_first(
    backend: Backend,
) {
    let Some(t) = open(backend).await else { return };
    let store = t.store.as_ref();
    let err = import::import_fatalities(store, BUNDLED_FATALITIES, ImportOptions::default())
        .await
        .expect_err("no mission is in the store");
    let message = err.to_string();
    assert!(
        message.contains("import missions` first"),
        "the message should say to import missions first: {message}"
    );
    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        0
    );

    // Skipping invalid rows does not sneak cases in without their missions either.
    let opts = ImportOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let err = import::import_fatalities(store, BUNDLED_FATALITIES, opts)
        .await
        .expect_err("no mission is in the store");
    assert!(err.to_string().contains("import missions` first"), "{err}");
    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A changed row
// ---------------------------------------------------------------------------------------------

async fn a_changed_row_updates_only_its_case_and_bumps_its_version(backend: Backend) {
    let Some(t) = open_with_bundled_data(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let before = all_cases(store).await;
    let target = case_by_reference(store, "MINUSMA-20210113").await;
    assert_eq!(target.version, 1);

    let original = std::str::from_utf8(BUNDLED_FATALITIES).expect("UTF-8");
    let row = "4051,2021-01-13,MINUSMA-2021-01-00004,MINUSMA,Fatality,M,Côte dIvoire,Military,Malicious Act,,,2025-04-04";
    let changed_row =
        "4051,2021-01-13,MINUSMA-2021-01-00004,MINUSMA,Fatality,M,Senegal,Military,Malicious Act,686.0,SEN,2025-04-04";
    assert_eq!(
        original.matches(row).count(),
        1,
        "the row to change is in the bundled file once"
    );
    let changed = original.replace(row, changed_row);

    let report = import::import_fatalities(store, changed.as_bytes(), ImportOptions::default())
        .await
        .expect("imports");
    assert_eq!(
        report.counts,
        ImportCounts {
            inserted: 0,
            updated: 1,
            unchanged: 610
        }
    );

    let after = all_cases(store).await;
    assert_eq!(after.len(), 611);
    for (old, new) in before.iter().zip(&after) {
        if old.id == target.id {
            assert_eq!(
                new.version,
                old.version + 1,
                "the changed case's version is bumped"
            );
            assert_eq!(
                (&new.reference, new.victim_count),
                (&old.reference, old.victim_count)
            );
        } else {
            assert_eq!(new, old, "case {} is untouched", old.reference);
        }
    }
    let victims = all_victims(store, std::slice::from_ref(&target)).await;
    let mut nationalities: Vec<&str> = victims
        .iter()
        .filter_map(|v| v.nationality.as_deref())
        .collect();
    nationalities.sort_unstable();
    assert_eq!(nationalities, vec!["CIV", "CIV", "SEN"]);
    let total: i64 = after.iter().map(|c| c.victim_count).sum();
    assert_eq!(total, 1134, "no victim duplicated or lost");

    let again = import::import_fatalities(store, changed.as_bytes(), ImportOptions::default())
        .await
        .expect("imports");
    assert_eq!(
        again.counts,
        ImportCounts {
            inserted: 0,
            updated: 0,
            unchanged: 611
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Store writes
// ---------------------------------------------------------------------------------------------

async fn a_new_case_gets_a_mission_date_reference_and_a_suffix_on_the_same_day(backend: Backend) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let first = store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    assert_eq!(first.reference, "MINUSMA-20230605");
    assert_eq!(first.version, 1);
    assert_eq!(
        first.host_state.as_deref(),
        Some("MLI"),
        "defaults to the mission's main territory"
    );
    assert_eq!(first.acts, vec![Act::Killing, Act::Ambush]);
    assert_eq!(first.source, "reported");
    // Coordinates after a case without them: the same statement with a NULL, then a value.
    let with_coordinates = NewCase {
        latitude: Some(18.44),
        longitude: Some(1.41),
        ..new_case("MINUSMA", "2023-06-05")
    };
    let second = store
        .insert_case(with_coordinates, "officer")
        .await
        .expect("insert");
    assert_eq!(
        (second.latitude, second.longitude),
        (Some(18.44), Some(1.41))
    );
    assert_eq!(second.reference, "MINUSMA-20230605-2");
    let third = store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    assert_eq!(third.reference, "MINUSMA-20230605-3");
    assert_ne!(first.id, second.id);
    assert_eq!(case_by_reference(store, "MINUSMA-20230605-2").await, second);

    let err = store
        .insert_case(new_case("NOSUCH", "2023-06-05"), "officer")
        .await
        .expect_err("unknown mission");
    assert!(
        matches!(err, StoreError::UnknownMission(ref m) if m == "NOSUCH"),
        "{err:?}"
    );
    assert_eq!(
        store.count_cases(&CaseFilter::all()).await.expect("count"),
        3
    );
}

async fn updating_a_case_at_a_stale_version_is_a_conflict_and_changes_nothing(backend: Backend) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let case = store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    let patch = CasePatch {
        summary: Some("Convoy ambushed near Tessalit.".into()),
        acts: Some(vec![Act::Ied]),
        ..Default::default()
    };
    let updated = store
        .update_case(&case.id, 1, patch, "officer")
        .await
        .expect("update at the current version");
    assert_eq!(updated.version, 2);
    assert_eq!(
        updated.summary.as_deref(),
        Some("Convoy ambushed near Tessalit.")
    );
    assert_eq!(updated.acts, vec![Act::Ied]);
    assert_eq!(reread(store, &case.id).await, updated);

    let stale = CasePatch {
        summary: Some("stale".into()),
        acts: Some(vec![Act::Abduction]),
        ..Default::default()
    };
    let err = store
        .update_case(&case.id, 1, stale, "officer")
        .await
        .expect_err("stale version");
    assert!(
        matches!(err, StoreError::VersionConflict { ref id, expected: 1, current: 2 } if *id == case.id),
        "{err:?}"
    );
    assert_eq!(
        reread(store, &case.id).await,
        updated,
        "a conflicting update changes nothing"
    );

    let err = store
        .update_case(
            "00000000-0000-0000-0000-000000000000",
            1,
            CasePatch::default(),
            "officer",
        )
        .await
        .expect_err("unknown case");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn adding_a_victim_at_a_stale_version_adds_no_victim(backend: Backend) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let case = store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    let victim = store
        .add_victim(&case.id, Some(1), new_victim(), "officer")
        .await
        .expect("add at version 1");
    assert_eq!(victim.case_id, case.id);
    let after_first = reread(store, &case.id).await;
    assert_eq!((after_first.version, after_first.victim_count), (2, 1));

    let err = store
        .add_victim(&case.id, Some(1), new_victim(), "officer")
        .await
        .expect_err("stale version");
    assert!(
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        reread(store, &case.id).await,
        after_first,
        "the case is unchanged"
    );
    let victims = all_victims(store, std::slice::from_ref(&case)).await;
    assert_eq!(victims.len(), 1, "no victim added: {victims:?}");
    assert_eq!(victims[0].id, victim.id);

    let err = store
        .add_victim("no-such-case", None, new_victim(), "officer")
        .await
        .expect_err("unknown case");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn assistance_naming_a_missing_case_is_refused_and_leaves_no_row(backend: Backend) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let case = store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    let assistance = |case_ids: Vec<String>| NewAssistance {
        host_state: country("MLI"),
        kind: AssistanceKind::Forensics,
        provider: "MINUSMA Justice and Corrections Section".into(),
        status: AssistanceStatus::Offered,
        period_start: Some(date("2023-07-01")),
        period_end: None,
        description: None,
        case_ids,
    };

    let err = store
        .insert_assistance(
            assistance(vec![case.id.clone(), "no-such-case".into()]),
            "officer",
        )
        .await
        .expect_err("a missing case");
    assert!(
        matches!(err, StoreError::NotFound(ref what) if what.contains("no-such-case")),
        "{err:?}"
    );
    assert!(
        store
            .list_assistance(&AssistanceFilter::default())
            .await
            .expect("list")
            .is_empty(),
        "no assistance row"
    );
    assert!(store
        .assistance_by_case_ids(std::slice::from_ref(&case.id))
        .await
        .expect("links")
        .is_empty());

    let ok = store
        .insert_assistance(assistance(vec![case.id.clone()]), "officer")
        .await
        .expect("a valid record");
    assert_eq!(ok.case_ids, vec![case.id.clone()]);
    let listed = store
        .list_assistance(&AssistanceFilter::default())
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|a| &a.id).collect::<Vec<_>>(),
        vec![&ok.id]
    );
    let linked = store
        .assistance_by_case_ids(std::slice::from_ref(&case.id))
        .await
        .expect("links");
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].1.id, ok.id);
}

async fn linking_the_same_national_reference_twice_is_a_duplicate_and_keeps_one_row(
    backend: Backend,
) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let case = store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    let link = || NewNationalReference {
        state: country("MLI"),
        authority: "Pôle judiciaire spécialisé, Bamako".into(),
        reference: "RP 2023/114".into(),
    };
    store
        .link_national_reference(&case.id, None, link(), "officer")
        .await
        .expect("first link");
    let err = store
        .link_national_reference(&case.id, None, link(), "officer")
        .await
        .expect_err("same link again");
    assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");

    let refs = store
        .national_references_by_case_ids(std::slice::from_ref(&case.id))
        .await
        .expect("references");
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(
        (refs[0].state.as_str(), refs[0].reference.as_str()),
        ("MLI", "RP 2023/114")
    );
    assert_eq!(
        reread(store, &case.id).await.version,
        2,
        "only the successful link bumped the version"
    );
}

async fn of_eight_concurrent_updates_at_the_same_version_exactly_one_wins(backend: Backend) {
    let Some(t) = open_with_missions(backend).await else {
        return;
    };
    let case = t
        .store
        .insert_case(new_case("MINUSMA", "2023-06-05"), "officer")
        .await
        .expect("insert");
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&t.store);
            let id = case.id.clone();
            tokio::spawn(async move {
                let patch = CasePatch {
                    summary: Some(format!("writer {i}")),
                    ..Default::default()
                };
                store
                    .update_case(&id, case.version, patch, &format!("writer-{i}"))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for w in writers {
        match w.await.expect("the writer task ran") {
            Ok(record) => winners.push(record),
            Err(StoreError::VersionConflict {
                expected: 1,
                current: 2,
                ..
            }) => conflicts += 1,
            Err(other) => panic!("a writer failed with neither success nor conflict: {other:?}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 7));
    let now = reread(t.store.as_ref(), &case.id).await;
    assert_eq!(now.version, case.version + 1);
    assert_eq!(
        now.summary, winners[0].summary,
        "the winner's write is the one stored"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Filters and pagination on the real data
// ---------------------------------------------------------------------------------------------

/// The ids of the cases matching `filter`, read through `list_cases`; checks `count_cases` agrees.
async fn matching_ids(store: &dyn Store, filter: &CaseFilter) -> BTreeSet<String> {
    let page = store
        .list_cases(filter, CaseOrder::default(), None, 10_000)
        .await
        .expect("list");
    let ids: BTreeSet<String> = page.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), page.len(), "no case listed twice for {filter:?}");
    assert_eq!(
        store.count_cases(filter).await.expect("count"),
        ids.len() as i64,
        "count_cases for {filter:?}"
    );
    ids
}

async fn every_case_filter_field_narrows_the_real_data_as_specified(backend: Backend) {
    let Some(t) = open_with_bundled_data(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let cases = all_cases(store).await;
    let mut victims: HashMap<String, Vec<VictimRecord>> = HashMap::new();
    for v in all_victims(store, &cases).await {
        victims.entry(v.case_id.clone()).or_default().push(v);
    }
    let status: HashMap<String, MissionStatus> = all_missions(store)
        .await
        .into_iter()
        .map(|m| (m.code.to_string(), m.status))
        .collect();
    let no_victims = Vec::new();
    let expected = |pred: &dyn Fn(&CaseRecord, &[VictimRecord]) -> bool| -> BTreeSet<String> {
        cases
            .iter()
            .filter(|c| pred(c, victims.get(&c.id).unwrap_or(&no_victims)))
            .map(|c| c.id.clone())
            .collect()
    };
    let id_of = |reference: &str| {
        cases
            .iter()
            .find(|c| c.reference == reference)
            .expect("reference")
            .id
            .clone()
    };
    let civ_case = id_of("MINUSMA-20210113");
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let f = CaseFilter {
        missions: strs(&["MINUSMA", "MINUSCA"]),
        ..CaseFilter::all()
    };
    let want = expected(&|c, _| c.mission_code == "MINUSMA" || c.mission_code == "MINUSCA");
    assert!(want.len() > 72 && want.len() < 611);
    assert_eq!(matching_ids(store, &f).await, want, "missions");

    let f = CaseFilter {
        host_states: strs(&["MLI"]),
        ..CaseFilter::all()
    };
    let want = expected(&|c, _| c.host_state.as_deref() == Some("MLI"));
    assert!(want.contains(&civ_case) && want.len() < 611);
    assert_eq!(matching_ids(store, &f).await, want, "host_states [MLI]");

    let f = CaseFilter {
        acts: vec![Act::Killing],
        ..CaseFilter::all()
    };
    assert_eq!(
        matching_ids(store, &f).await.len(),
        611,
        "every imported case is a killing"
    );
    let f = CaseFilter {
        acts: vec![Act::Abduction],
        ..CaseFilter::all()
    };
    assert!(
        matching_ids(store, &f).await.is_empty(),
        "no imported case is an abduction"
    );

    let f = CaseFilter {
        victim_categories: vec![PersonnelCategory::NationalCivilian],
        ..CaseFilter::all()
    };
    let want = expected(&|_, vs| {
        vs.iter()
            .any(|v| v.category == PersonnelCategory::NationalCivilian)
    });
    assert!(!want.is_empty() && want.len() < 611);
    assert_eq!(
        matching_ids(store, &f).await,
        want,
        "victim_categories [NATIONAL_CIVILIAN]"
    );

    let f = CaseFilter {
        victim_nationalities: strs(&["CIV"]),
        ..CaseFilter::all()
    };
    let want = expected(&|_, vs| vs.iter().any(|v| v.nationality.as_deref() == Some("CIV")));
    assert!(want.contains(&civ_case) && want.len() < 611);
    assert_eq!(
        matching_ids(store, &f).await,
        want,
        "victim_nationalities [CIV]"
    );

    let f = CaseFilter {
        contributing_countries: strs(&["CIV", "RWA"]),
        ..CaseFilter::all()
    };
    let want = expected(&|_, vs| {
        vs.iter()
            .any(|v| matches!(v.contributing_country.as_deref(), Some("CIV") | Some("RWA")))
    });
    let only_civ = expected(&|_, vs| {
        vs.iter()
            .any(|v| v.contributing_country.as_deref() == Some("CIV"))
    });
    assert!(want.contains(&civ_case) && want.len() > only_civ.len() && want.len() < 611);
    assert_eq!(
        matching_ids(store, &f).await,
        want,
        "contributing_countries [CIV, RWA]"
    );

    let (from, to) = (date("2013-01-01"), date("2013-12-31"));
    let f = CaseFilter {
        from: Some(from),
        to: Some(to),
        ..CaseFilter::all()
    };
    let want = expected(&|c, _| c.incident_date >= from && c.incident_date <= to);
    assert!(!want.is_empty() && want.len() < 611);
    assert_eq!(matching_ids(store, &f).await, want, "date range 2013");
    let f = CaseFilter {
        from: Some(date("2021-01-13")),
        to: Some(date("2021-01-13")),
        ..CaseFilter::all()
    };
    assert!(
        matching_ids(store, &f).await.contains(&civ_case),
        "both bounds are inclusive"
    );

    let f = CaseFilter {
        mission_status: Some(MissionStatus::Closed),
        ..CaseFilter::all()
    };
    let closed = matching_ids(store, &f).await;
    assert_eq!(
        closed,
        expected(&|c, _| status.get(&c.mission_code) == Some(&MissionStatus::Closed))
    );
    assert!(closed.contains(&civ_case), "MINUSMA closed in 2023");
    assert!(cases
        .iter()
        .filter(|c| c.mission_code == "UNIFIL")
        .all(|c| !closed.contains(&c.id)));
    assert!(
        cases.iter().any(|c| c.mission_code == "UNIFIL"),
        "UNIFIL has cases to exclude"
    );
    let f = CaseFilter {
        mission_status: Some(MissionStatus::Active),
        ..CaseFilter::all()
    };
    let active = matching_ids(store, &f).await;
    assert!(!active.is_empty() && active.is_disjoint(&closed));
    assert_eq!(active.len() + closed.len(), 611);

    // Fields combine with AND.
    let f = CaseFilter {
        host_states: strs(&["MLI"]),
        victim_nationalities: strs(&["CIV"]),
        from: Some(date("2021-01-01")),
        ..CaseFilter::all()
    };
    let want = expected(&|c, vs| {
        c.host_state.as_deref() == Some("MLI")
            && c.incident_date >= date("2021-01-01")
            && vs.iter().any(|v| v.nationality.as_deref() == Some("CIV"))
    });
    assert!(want.contains(&civ_case));
    assert_eq!(matching_ids(store, &f).await, want, "combined filter");
    let stats = store
        .statistics(StatisticsDimension::Year, &f)
        .await
        .expect("stats");
    assert_eq!(
        stats.iter().map(|r| r.case_count).sum::<i64>(),
        want.len() as i64,
        "statistics honour the filter"
    );
}

/// Walks `list_cases` in pages of `page_size`; fails rather than loop forever.
async fn walk(
    store: &dyn Store,
    filter: &CaseFilter,
    order: CaseOrder,
    page_size: u32,
) -> Vec<CaseRecord> {
    let mut seen: Vec<CaseRecord> = Vec::new();
    let mut after: Option<CaseCursor> = None;
    for _ in 0..1000 {
        let page = store
            .list_cases(filter, order, after.as_ref(), page_size)
            .await
            .expect("page");
        assert!(page.len() <= page_size as usize);
        let Some(last) = page.last() else { return seen };
        after = Some(CaseCursor::after(last, order));
        let full = page.len() == page_size as usize;
        seen.extend(page);
        if !full {
            return seen;
        }
    }
    panic!("pagination in {order:?} does not end");
}

async fn keyset_pagination_returns_every_case_exactly_once_in_every_order(backend: Backend) {
    let Some(t) = open_with_bundled_data(backend).await else {
        return;
    };
    let store = t.store.as_ref();
    let all: BTreeSet<String> = all_cases(store).await.into_iter().map(|c| c.id).collect();
    assert_eq!(all.len(), 611);
    let fields = [
        CaseOrderField::IncidentDate,
        CaseOrderField::Reference,
        CaseOrderField::Mission,
        CaseOrderField::VictimCount,
    ];
    for field in fields {
        let mut walks = Vec::new();
        for direction in [OrderDirection::Asc, OrderDirection::Desc] {
            let order = CaseOrder { field, direction };
            let seen = walk(store, &CaseFilter::all(), order, 50).await;
            let ids: Vec<String> = seen.iter().map(|c| c.id.clone()).collect();
            let unique: BTreeSet<String> = ids.iter().cloned().collect();
            assert_eq!(ids.len(), 611, "{order:?}: {} cases listed", ids.len());
            assert_eq!(unique, all, "{order:?}: every case exactly once");
            // The sort key is monotonic (collation-independent checks only).
            let asc = direction == OrderDirection::Asc;
            for pair in seen.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                match field {
                    CaseOrderField::IncidentDate => {
                        assert!(if asc {
                            a.incident_date <= b.incident_date
                        } else {
                            a.incident_date >= b.incident_date
                        })
                    }
                    CaseOrderField::VictimCount => {
                        assert!(if asc {
                            a.victim_count <= b.victim_count
                        } else {
                            a.victim_count >= b.victim_count
                        })
                    }
                    CaseOrderField::Reference | CaseOrderField::Mission => {}
                }
            }
            if field == CaseOrderField::Mission {
                let mut runs: Vec<&str> = seen.iter().map(|c| c.mission_code.as_str()).collect();
                runs.dedup();
                assert_eq!(
                    runs.len(),
                    52,
                    "{order:?}: each mission's cases are contiguous"
                );
            }
            walks.push(ids);
        }
        let mut desc = walks.pop().expect("desc");
        desc.reverse();
        assert_eq!(
            walks[0], desc,
            "{field:?}: descending is ascending reversed (ties broken by id)"
        );
    }

    // With a filter and an odd page size as well.
    let minusma = CaseFilter {
        missions: vec!["MINUSMA".into()],
        ..CaseFilter::all()
    };
    let order = CaseOrder {
        field: CaseOrderField::VictimCount,
        direction: OrderDirection::Desc,
    };
    let seen = walk(store, &minusma, order, 7).await;
    let ids: BTreeSet<&str> = seen.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), seen.len());
    assert_eq!(
        seen.len() as i64,
        store.count_cases(&minusma).await.expect("count")
    );
    assert!(seen.iter().all(|c| c.mission_code == "MINUSMA"));
}

// ---------------------------------------------------------------------------------------------
// The API over the imported data
// ---------------------------------------------------------------------------------------------

async fn the_api_serves_the_bundled_data_imported_on_first_start(backend: Backend) {
    let Some(app) = common::try_spawn(common::AppOptions {
        backend,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let data = app
        .data(
            r#"query {
                statistics(by: MISSION) { totalCases totalVictims groups { key caseCount victimCount } }
                minusma: cases(filter: {missions: ["MINUSMA"], from: "2013-01-01"}) { totalCount }
                all: cases(first: 1) { totalCount }
                mission(code: "MINUSMA") { status endDate }
                un: mission(code: "UNSecretariat") { kind }
            }"#,
            json!({}),
        )
        .await;
    assert_eq!(data["statistics"]["totalCases"], 611, "{data}");
    assert_eq!(data["statistics"]["totalVictims"], 1134, "{data}");
    let groups = data["statistics"]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 52);
    assert!(groups.iter().any(|g| g["key"] == "UNSecretariat"));
    assert_eq!(data["minusma"]["totalCount"], 72);
    assert_eq!(data["all"]["totalCount"], 611);
    assert_eq!(
        data["mission"],
        json!({ "status": "CLOSED", "endDate": "2023-12-31" })
    );
    assert_eq!(data["un"]["kind"], "UN_ENTITY");
}

// ---------------------------------------------------------------------------------------------
// 7. The command line
// ---------------------------------------------------------------------------------------------

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn casegraph(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_casegraph"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CASEGRAPH_STORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the casegraph binary runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn the_import_command_imports_reimports_idempotently_and_fails_on_a_broken_file(
    backend: Backend,
) {
    let Some(t) = open(backend).await else { return };
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/casegraph.toml"
    ))
    .expect("config/casegraph.toml");
    let key = t.dir.path().join("dev-key.pem");
    let url_line = "url = \"sqlite://data/casegraph.db\"";
    let key_line = "key_file = \"data/dev-issuer-key.pem\"";
    assert!(
        example.contains(url_line) && example.contains(key_line),
        "the example config changed: update this test"
    );
    let config = example
        .replace(url_line, &format!("url = {:?}", t.url))
        .replace(
            key_line,
            &format!("key_file = {:?}", key.display().to_string()),
        );
    let config_path = t.dir.path().join("casegraph.toml");
    std::fs::write(&config_path, config).expect("write config");
    let cfg = config_path.to_str().expect("UTF-8 path");

    let run = casegraph(&[
        "import",
        "missions",
        "data/un/DPPADPOSS-PKO.csv",
        "--config",
        cfg,
    ])
    .await;
    assert!(
        run.ok,
        "import missions failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("104 missions") && run.stdout.contains("inserted 104"),
        "{}",
        run.stdout
    );

    let run = casegraph(&[
        "import",
        "fatalities",
        "data/un/DPPADPOSS-FATALITIES.csv",
        "--config",
        cfg,
    ])
    .await;
    assert!(
        run.ok,
        "import fatalities failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout
            .contains("611 cases (1134 victims); inserted 611, updated 0, unchanged 0"),
        "{}",
        run.stdout
    );

    let run = casegraph(&[
        "import",
        "fatalities",
        "data/un/DPPADPOSS-FATALITIES.csv",
        "--config",
        cfg,
    ])
    .await;
    assert!(run.ok, "re-import failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("inserted 0, updated 0, unchanged 611"),
        "{}",
        run.stdout
    );

    let broken = t.dir.path().join("broken.csv");
    std::fs::write(&broken, fatalities_with_bad_rows()).expect("write broken CSV");
    let run = casegraph(&[
        "import",
        "fatalities",
        broken.to_str().expect("UTF-8 path"),
        "--config",
        cfg,
    ])
    .await;
    assert!(
        !run.ok,
        "a broken file must fail the command:\n{}",
        run.stdout
    );
    for line in ["line 3:", "line 4:", "line 6:"] {
        assert!(
            run.stderr.contains(line),
            "stderr lacks `{line}`:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stdout.contains("inserted"),
        "no summary for a refused import: {}",
        run.stdout
    );

    // The command wrote to the configured store, and the refused file wrote nothing.
    assert_eq!(
        t.store
            .count_cases(&CaseFilter::all())
            .await
            .expect("count"),
        611
    );
    let victims: i64 = all_cases(t.store.as_ref())
        .await
        .iter()
        .map(|c| c.victim_count)
        .sum();
    assert_eq!(victims, 1134);
}
