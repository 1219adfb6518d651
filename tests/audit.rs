//! The audit log: reads of CASE_PARTIES fields and above, denials and writes are appended to a
//! hash-chained log that auditors query over GraphQL and `casegraph audit verify` checks.
//!
//! `Query.auditLog` flushes the gateway's audit writer before it reads, so what a test did
//! over HTTP is in the log when an auditor asks; store-level tests call `AuditSink::flush`.

mod common;

use casegraph::access::audit::{
    self, AuditDecision, AuditEvent, ChainBreak, Verification, GENESIS_HASH,
};
use casegraph::store::{AuditFilter, Store};
use common::{error_codes, postgres_url, try_spawn, AppOptions, Backend, TestApp};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_casegraph");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A gateway over an empty store holding only the UN mission list (fast; cases come from the
/// test itself).
async fn app(backend: Backend) -> Option<TestApp> {
    let app = try_spawn(AppOptions {
        backend,
        import_bundled: false,
        ..Default::default()
    })
    .await?;
    casegraph::import::import_missions(
        app.store.as_ref(),
        casegraph::import::BUNDLED_MISSIONS,
        Default::default(),
    )
    .await
    .expect("the bundled mission list imports");
    Some(app)
}

fn token(app: &TestApp, sub: &str, org: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    app.dev
        .mint(
            &app.audience,
            sub,
            org,
            &roles,
            &[],
            Duration::from_secs(600),
        )
        .expect("mint")
}

fn officer(app: &TestApp) -> String {
    token(app, "officer-1", "UN", &["un-case-officer"])
}

fn auditor(app: &TestApp) -> String {
    token(app, "auditor-1", "UN", &["auditor"])
}

fn mali_analyst(app: &TestApp) -> String {
    token(app, "mli-analyst", "MLI", &["member-state-analyst"])
}

/// Runs `query` with `token` and returns the answer, whatever its status.
async fn gql(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.gql(token, query, variables).await.1
}

/// Reports a MINUSMA case hosted by Mali with a victim, as the officer; returns its id.
async fn report_case_with_victim(app: &TestApp, summary: &str) -> String {
    let body = gql(
        app,
        &officer(app),
        "mutation Report($input: ReportCaseInput!) { reportCase(input: $input) { id } }",
        json!({ "input": {
            "mission": "MINUSMA", "hostState": "MLI", "incidentDate": "2021-01-13", "acts": ["IED"],
            "region": "Kidal", "coordinates": { "latitude": 18.44, "longitude": 1.41 }, "summary": summary
        } }),
    )
    .await;
    let id = body["data"]["reportCase"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("reportCase failed: {body}"))
        .to_string();
    let body = gql(
        app,
        &officer(app),
        "mutation Victim($id: ID!, $input: VictimInput!) { addVictim(caseId: $id, input: $input) { victim { id } } }",
        json!({ "id": id, "input": { "category": "MILITARY", "nationality": "SEN", "harm": "KILLED", "name": "A. Diallo" } }),
    )
    .await;
    assert!(body.get("errors").is_none(), "addVictim failed: {body}");
    id
}

const AUDIT_LOG: &str = "query Audit($filter: AuditLogFilter, $first: Int, $after: String) { \
    auditLog(filter: $filter, first: $first, after: $after) { \
      edges { cursor node { seq at subject organisation operation caseId fields decision prevHash hash } } \
      pageInfo { hasNextPage hasPreviousPage endCursor } } }";

/// The entries an auditor gets for `filter` (one page of up to 100).
async fn audit_log(app: &TestApp, filter: Value) -> Vec<Value> {
    let body = gql(
        app,
        &auditor(app),
        AUDIT_LOG,
        json!({ "filter": filter, "first": 100 }),
    )
    .await;
    assert!(body.get("errors").is_none(), "auditLog failed: {body}");
    body["data"]["auditLog"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

async fn reads_denials_and_writes_are_logged_with_who_what_and_which_case(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = report_case_with_victim(&app, "An IED struck a convoy.").await;

    let read = gql(
        &app,
        &officer(&app),
        "query ReadCase($id: ID!) { case(id: $id) { summary victims { name } } }",
        json!({ "id": case }),
    )
    .await;
    assert_eq!(
        read["data"]["case"]["victims"][0]["name"], "A. Diallo",
        "{read}"
    );
    let denied = gql(
        &app,
        &mali_analyst(&app),
        "query Where($id: ID!) { case(id: $id) { location { coordinates { latitude } } } }",
        json!({ "id": case }),
    )
    .await;
    assert_eq!(error_codes(&denied), vec!["FORBIDDEN_FIELD"], "{denied}");
    let forbidden = gql(
        &app,
        &mali_analyst(&app),
        "mutation Attempt($input: ReportCaseInput!) { reportCase(input: $input) { id } }",
        json!({ "input": { "mission": "MINUSMA", "incidentDate": "2021-01-14", "acts": ["IED"] } }),
    )
    .await;
    assert_eq!(error_codes(&forbidden), vec!["FORBIDDEN"], "{forbidden}");

    let of_case = audit_log(&app, json!({ "caseId": case })).await;
    let find = |decision: &str, subject: &str| {
        of_case
            .iter()
            .find(|e| e["decision"] == decision && e["subject"] == subject)
            .unwrap_or_else(|| panic!("no {decision} entry of {subject} in {of_case:#?}"))
            .clone()
    };
    let writes: Vec<(&str, &str)> = of_case
        .iter()
        .filter(|e| e["decision"] == "WRITE")
        .map(|e| {
            (
                e["operation"].as_str().expect("operation"),
                e["organisation"].as_str().expect("organisation"),
            )
        })
        .collect();
    assert_eq!(
        writes,
        vec![("AddVictim", "UN"), ("ReportCase", "UN")],
        "newest first"
    );
    let read = find("READ", "officer-1");
    assert_eq!(read["operation"], "ReadCase");
    assert_eq!(
        strings(&read["fields"]),
        vec!["case.summary", "case.victims.0.name"]
    );
    let denial = find("DENIED", "mli-analyst");
    assert_eq!(
        (
            denial["operation"].as_str(),
            denial["organisation"].as_str()
        ),
        (Some("Where"), Some("MLI"))
    );
    assert_eq!(
        strings(&denial["fields"]),
        vec!["case.location.coordinates"]
    );
    assert!(
        of_case.iter().all(|e| e["caseId"] == case.as_str()),
        "{of_case:#?}"
    );

    let attempts = audit_log(&app, json!({ "organisation": "MLI", "decision": "DENIED" })).await;
    let attempt = attempts
        .iter()
        .find(|e| e["operation"] == "Attempt")
        .unwrap_or_else(|| panic!("{attempts:#?}"));
    assert_eq!(
        (
            attempt["subject"].as_str(),
            attempt["caseId"].as_str(),
            strings(&attempt["fields"])
        ),
        (Some("mli-analyst"), None, vec!["reportCase"])
    );

    // The log the auditor sees is the chain the store keeps.
    assert!(matches!(
        audit::verify(app.store.as_ref()).await.expect("verify"),
        Verification::Intact { .. }
    ));
}

#[tokio::test]
async fn reads_denials_and_writes_are_logged_on_sqlite() {
    reads_denials_and_writes_are_logged_with_who_what_and_which_case(Backend::Sqlite).await;
}

#[tokio::test]
async fn reads_denials_and_writes_are_logged_on_postgres() {
    reads_denials_and_writes_are_logged_with_who_what_and_which_case(Backend::Postgres).await;
}

#[tokio::test]
async fn only_auditors_read_the_audit_log_and_refusals_are_logged() {
    let Some(app) = app(Backend::Sqlite).await else {
        return;
    };
    for (who, t) in [
        ("officer-1", officer(&app)),
        ("mli-analyst", mali_analyst(&app)),
        ("admin", token(&app, "admin", "UN", &["admin"])),
    ] {
        let body = gql(&app, &t, AUDIT_LOG, json!({})).await;
        assert_eq!(error_codes(&body), vec!["FORBIDDEN"], "{who}: {body}");
        assert!(body["data"]["auditLog"].is_null(), "{who} got data: {body}");
    }
    let refusals = audit_log(&app, json!({ "decision": "DENIED" })).await;
    let subjects: Vec<&str> = refusals
        .iter()
        .filter(|e| strings(&e["fields"]) == ["auditLog"])
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        vec!["admin", "mli-analyst", "officer-1"],
        "newest first: {refusals:#?}"
    );
    let mali = refusals
        .iter()
        .find(|e| e["subject"] == "mli-analyst")
        .expect("logged");
    assert_eq!(mali["organisation"], "MLI");
}

#[tokio::test]
async fn the_audit_log_has_no_mutation() {
    let Some(app) = app(Backend::Sqlite).await else {
        return;
    };
    let sdl = casegraph::schema::sdl();
    let mutation = sdl
        .split("type Mutation {")
        .nth(1)
        .and_then(|m| m.split('}').next())
        .expect("a Mutation type");
    assert!(!mutation.to_lowercase().contains("audit"), "{mutation}");
    let body = gql(
        &app,
        &auditor(&app),
        "mutation { deleteAuditEntry(seq: 1) }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_codes(&body),
        vec!["GRAPHQL_VALIDATION_FAILED"],
        "{body}"
    );
}

#[tokio::test]
async fn auditors_filter_by_subject_case_period_and_page_newest_first() {
    let Some(app) = app(Backend::Sqlite).await else {
        return;
    };
    let first_case = report_case_with_victim(&app, "First.").await;
    let read = "query Read($id: ID!) { case(id: $id) { summary } }";
    gql(&app, &officer(&app), read, json!({ "id": first_case })).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second_case = report_case_with_victim(&app, "Second.").await;
    gql(
        &app,
        &mali_analyst(&app),
        read,
        json!({ "id": second_case }),
    )
    .await;

    let by_subject = audit_log(&app, json!({ "subject": "mli-analyst" })).await;
    assert_eq!(by_subject.len(), 1, "{by_subject:#?}");
    assert_eq!(
        (
            by_subject[0]["decision"].as_str(),
            by_subject[0]["caseId"].as_str()
        ),
        (Some("READ"), Some(second_case.as_str()))
    );

    let by_case = audit_log(&app, json!({ "caseId": first_case })).await;
    assert!(
        !by_case.is_empty() && by_case.iter().all(|e| e["caseId"] == first_case.as_str()),
        "{by_case:#?}"
    );

    let t =
        |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let before = audit_log(&app, json!({ "to": t(middle) })).await;
    let after = audit_log(&app, json!({ "from": t(middle) })).await;
    assert!(
        before.iter().all(|e| e["caseId"] == first_case.as_str()) && !before.is_empty(),
        "{before:#?}"
    );
    assert!(
        after.iter().all(|e| e["caseId"] == second_case.as_str()) && !after.is_empty(),
        "{after:#?}"
    );
    let everything = audit_log(&app, json!({})).await;
    assert_eq!(before.len() + after.len(), everything.len());
    let later = audit_log(
        &app,
        json!({ "from": t(chrono::Utc::now() + chrono::Duration::hours(1)) }),
    )
    .await;
    assert!(later.is_empty(), "{later:#?}");
    let reversed = gql(
        &app,
        &auditor(&app),
        AUDIT_LOG,
        json!({ "filter": { "from": t(middle), "to": t(middle - chrono::Duration::seconds(1)) } }),
    )
    .await;
    assert_eq!(
        error_codes(&reversed),
        vec!["INVALID_DATE_RANGE"],
        "{reversed}"
    );

    // Pages: newest first, `after` continues with older entries.
    let seqs: Vec<i64> = everything
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).rev().collect();
    assert_eq!(seqs, expected, "seq has no gaps and the newest comes first");
    let page = gql(&app, &auditor(&app), AUDIT_LOG, json!({ "first": 2 })).await;
    let info = &page["data"]["auditLog"]["pageInfo"];
    assert_eq!(info["hasNextPage"], true, "{page}");
    let next = gql(
        &app,
        &auditor(&app),
        AUDIT_LOG,
        json!({ "first": 2, "after": info["endCursor"] }),
    )
    .await;
    let next_seqs: Vec<i64> = next["data"]["auditLog"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(next_seqs, seqs[2..4].to_vec(), "{next}");
    let bad = gql(
        &app,
        &auditor(&app),
        AUDIT_LOG,
        json!({ "after": "bm90LWEtY3Vyc29y" }),
    )
    .await;
    assert_eq!(error_codes(&bad), vec!["INVALID_CURSOR"], "{bad}");
}

/// Runs `casegraph audit verify` against the SQLite store of `app`.
fn verify_cli(app: &TestApp) -> (bool, String) {
    let config = app.dir.path().join("verify.toml");
    let url = format!("sqlite://{}", app.dir.path().join("cases.db").display());
    let key = app.dir.path().join("dev-key.pem");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{url}\"\n\n[auth.dev_issuer]\nenabled = true\nkey_file = \"{}\"\n",
            key.display()
        ),
    )
    .expect("write config");
    let out = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .current_dir(ROOT)
        .env_remove("CASEGRAPH_STORE_URL")
        .env_remove("RUST_LOG")
        .output()
        .expect("run casegraph");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{text}");
    (out.status.success(), text)
}

#[tokio::test]
async fn audit_verify_passes_then_names_a_modified_and_a_missing_entry() {
    let Some(app) = app(Backend::Sqlite).await else {
        return;
    };
    let case = report_case_with_victim(&app, "Verified.").await;
    for _ in 0..3 {
        gql(
            &app,
            &officer(&app),
            "query Read($id: ID!) { case(id: $id) { summary } }",
            json!({ "id": case }),
        )
        .await;
    }
    let entries = audit_log(&app, json!({})).await; // flushes the writer
    assert_eq!(entries.len(), 5, "{entries:#?}");
    let (ok, text) = verify_cli(&app);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "audit log intact: 5 entries, last hash {}",
            entries[0]["hash"].as_str().expect("hash")
        )),
        "{text}"
    );

    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        app.dir.path().join("cases.db").display()
    ))
    .await
    .expect("open the file");
    sqlx::query("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 2")
        .execute(&db)
        .await
        .expect("tamper");
    let (ok, text) = verify_cli(&app);
    assert!(
        !ok && text.contains("audit log BROKEN at entry seq 2: modified"),
        "{text}"
    );

    sqlx::query("UPDATE audit_log SET subject = 'officer-1' WHERE seq = 2")
        .execute(&db)
        .await
        .expect("restore");
    assert!(verify_cli(&app).0, "restoring the value restores the chain");
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&db)
        .await
        .expect("delete");
    let (ok, text) = verify_cli(&app);
    assert!(
        !ok && text.contains("audit log BROKEN at entry seq 4: missing entry before"),
        "{text}"
    );
}

/// A fresh store of `backend` (`None` when PostgreSQL is unreachable) and its URL.
async fn fresh_store(
    backend: Backend,
    dir: &tempfile::TempDir,
) -> Option<(Arc<dyn Store>, String)> {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("audit.db").display()),
        Backend::Postgres => postgres_url().await?,
    };
    Some((
        casegraph::store::connect(&url, 4)
            .await
            .expect("the store opens"),
        url,
    ))
}

fn event(
    subject: &str,
    organisation: &str,
    case: Option<&str>,
    decision: AuditDecision,
) -> AuditEvent {
    AuditEvent {
        at: chrono::Utc::now(),
        subject: subject.into(),
        organisation: organisation.into(),
        operation: "Op".into(),
        case_id: case.map(str::to_string),
        fields: vec!["case.victims.0.name".into()],
        decision,
    }
}

async fn the_store_keeps_filters_and_verifies_the_chain(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some((store, url)) = fresh_store(backend, &dir).await else {
        return;
    };
    let sink = audit::start(Arc::clone(&store))
        .await
        .expect("the writer starts");
    // Many small requests at once: the writer batches them; requests never wait.
    for i in 0..600 {
        let (org, case) = if i % 3 == 0 {
            ("MLI", Some("case-a"))
        } else {
            ("UN", Some("case-b"))
        };
        sink.record(vec![event(
            &format!("user-{}", i % 4),
            org,
            case,
            AuditDecision::Read,
        )]);
    }
    sink.record(vec![
        event("user-x", "SEN", None, AuditDecision::Denied),
        event("user-x", "SEN", None, AuditDecision::Denied),
    ]);
    sink.flush().await;

    let last = store
        .last_audit_entry()
        .await
        .expect("last")
        .expect("an entry");
    assert_eq!(last.seq, 602);
    let first = store.audit_chain(None, 1).await.expect("chain");
    assert_eq!(
        (first[0].seq, first[0].prev_hash.as_str()),
        (1, GENESIS_HASH)
    );
    let filter = AuditFilter {
        organisation: Some("MLI".into()),
        case_id: Some("case-a".into()),
        ..Default::default()
    };
    let mli = store
        .audit_entries(&filter, None, 1000)
        .await
        .expect("entries");
    assert_eq!(mli.len(), 200);
    assert!(mli.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let older = store
        .audit_entries(&filter, Some(mli[9].seq), 5)
        .await
        .expect("entries");
    assert_eq!(older, mli[10..15].to_vec());
    let denied = AuditFilter {
        decision: Some("DENIED".into()),
        subject: Some("user-x".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .audit_entries(&denied, None, 10)
            .await
            .expect("entries")
            .len(),
        2
    );
    assert_eq!(
        audit::verify(store.as_ref()).await.expect("verify"),
        Verification::Intact {
            entries: 602,
            last_hash: last.hash.clone()
        }
    );

    // Tampering, straight in the database.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE audit_log SET fields = '[]' WHERE seq = 77")
        .execute(&db)
        .await
        .expect("tamper");
    assert_eq!(
        audit::verify(store.as_ref()).await.expect("verify"),
        Verification::Broken {
            seq: 77,
            reason: ChainBreak::Modified
        }
    );
    sqlx::query("DELETE FROM audit_log WHERE seq <= 77")
        .execute(&db)
        .await
        .expect("delete");
    assert_eq!(
        audit::verify(store.as_ref()).await.expect("verify"),
        Verification::Broken {
            seq: 78,
            reason: ChainBreak::MissingEntryBefore
        }
    );
    sqlx::query("UPDATE audit_log SET seq = seq - 77")
        .execute(&db)
        .await
        .expect("renumber");
    assert_eq!(
        audit::verify(store.as_ref()).await.expect("verify"),
        Verification::Broken {
            seq: 1,
            reason: ChainBreak::PrevHashMismatch
        }
    );
    db.close().await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_filters_and_verifies_the_chain() {
    the_store_keeps_filters_and_verifies_the_chain(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_filters_and_verifies_the_chain() {
    the_store_keeps_filters_and_verifies_the_chain(Backend::Postgres).await;
}
