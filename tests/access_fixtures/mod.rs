//! Fixtures shared by the access tests: a gateway with a few planted cases whose sensitive
//! values are unique strings (so that a leak is found by searching the raw response text), one
//! principal per relationship, and optional host-state systems served by the protocol reference
//! server.
#![allow(dead_code)]

use crate::common::{try_spawn, AppOptions, TestApp};
use casegraph::connectors::protocol::reference::ReferenceServer;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::time::Duration;

/// Planted values: each appears nowhere else, so finding one in a body is a leak.
pub const SEN_NAME: &str = "Aminata Plantedsen Diallo";
pub const SEN_SERVICE: &str = "SN-PLANT-SEN-44170";
pub const TCD_NAME: &str = "Mahamat Plantedtcd Abakar";
pub const TCD_SERVICE: &str = "SN-PLANT-TCD-88231";
pub const LATITUDE: f64 = 16.2717191;
pub const LONGITUDE: f64 = -0.0447213;
pub const LATITUDE_TEXT: &str = "16.2717191";
pub const LONGITUDE_TEXT: &str = "0.0447213";
pub const SUMMARY: &str = "PLANTED-SUMMARY convoy ambushed north of Ansongo";
pub const GROUP: &str = "PLANTED-GROUP Katiba Plantee";
pub const NATIONAL_REFERENCE: &str = "RP-PLANT-2023/771";
pub const CHARGE: &str = "PLANTED-CHARGE assassinat de casques bleus";
pub const SUSPECT: &str = "Ousmane Plantedsuspect Traore";
pub const CONVICT: &str = "Boubacar Plantedconvict Maiga";
pub const SEALED_CHARGE: &str = "PLANTED-SEALED-CHARGE atteinte a la surete";
pub const SEALED_DEFENDANT: &str = "Hamadou Plantedsealed Cisse";
pub const SEALED_REFERENCE: &str = "RP-PLANT-SEALED-9";
pub const INCIDENT_DATE: &str = "2023-03-14";

/// Every planted CASE_PARTIES-or-above value of the main case (not the sealed record).
pub fn planted() -> Vec<&'static str> {
    vec![
        SEN_NAME,
        SEN_SERVICE,
        TCD_NAME,
        TCD_SERVICE,
        LATITUDE_TEXT,
        LONGITUDE_TEXT,
        SUMMARY,
        GROUP,
        NATIONAL_REFERENCE,
        CHARGE,
        SUSPECT,
        CONVICT,
    ]
}

/// Asserts none of `values` occurs in `text`.
#[track_caller]
pub fn assert_absent(text: &str, values: &[&str], what: &str) {
    for v in values {
        assert!(
            !text.contains(v),
            "{what}: the response contains the planted value `{v}`: {text}"
        );
    }
}

/// A principal of the tests.
#[derive(Debug, Clone)]
pub struct Who {
    pub label: &'static str,
    pub org: &'static str,
    pub roles: &'static [&'static str],
    pub missions: &'static [&'static str],
}

pub const UN_ANALYST: Who = Who {
    label: "UN analyst",
    org: "UN",
    roles: &["un-analyst"],
    missions: &[],
};
pub const UN_OFFICER: Who = Who {
    label: "UN case officer",
    org: "UN",
    roles: &["un-case-officer"],
    missions: &[],
};
pub const HOST_MLI: Who = Who {
    label: "host state MLI",
    org: "MLI",
    roles: &["member-state-analyst"],
    missions: &[],
};
pub const CONTRIBUTOR_SEN: Who = Who {
    label: "contributing state SEN",
    org: "SEN",
    roles: &["member-state-analyst"],
    missions: &[],
};
pub const NATIONALITY_TCD: Who = Who {
    label: "nationality state TCD",
    org: "TCD",
    roles: &["member-state-analyst"],
    missions: &[],
};
pub const UNRELATED_FRA: Who = Who {
    label: "unrelated state FRA",
    org: "FRA",
    roles: &["member-state-analyst"],
    missions: &[],
};
pub const REGIONAL_AU: Who = Who {
    label: "regional organisation AU",
    org: "AU",
    roles: &["member-state-analyst"],
    missions: &[],
};
pub const FOCAL_POINT: Who = Who {
    label: "MINUSMA focal point",
    org: "UN",
    roles: &["focal-point"],
    missions: &["MINUSMA"],
};
pub const AUDITOR: Who = Who {
    label: "auditor",
    org: "UN/OIOS",
    roles: &["auditor"],
    missions: &[],
};

/// A token for `who`.
pub fn token(app: &TestApp, who: &Who) -> String {
    let roles: Vec<String> = who.roles.iter().map(|r| r.to_string()).collect();
    let missions: Vec<String> = who.missions.iter().map(|m| m.to_string()).collect();
    app.dev
        .mint(
            &app.audience,
            &format!("test-{}", who.label.replace(' ', "-")),
            who.org,
            &roles,
            &missions,
            Duration::from_secs(600),
        )
        .expect("mint")
}

/// How to start the gateway.
#[derive(Default, Clone)]
pub struct Setup {
    /// Policy text to use instead of the bundled one (written to a temporary file).
    pub policy: Option<String>,
    /// Answer introspection.
    pub no_introspection: bool,
    /// Host-state systems: (connector id, host state, marking of its record, with defendants).
    pub systems: Vec<System>,
    /// Host-state systems that never answer (connector id, host state): their connectors fail
    /// with CONNECTOR_UNAVAILABLE and keep a last error.
    pub dead_systems: Vec<(&'static str, &'static str)>,
}

/// A host-state system served by the protocol reference server.
#[derive(Clone)]
pub struct System {
    pub id: &'static str,
    pub host_state: &'static str,
    /// Builds the records it holds, from the main case's UN reference.
    pub records: fn(&str) -> Vec<Value>,
}

thread_local! {
    /// `AppOptions::configure` is a plain `fn`: it reads what to change from here (it runs on
    /// the test's thread).
    static SETTINGS: RefCell<(String, String, bool)> = const { RefCell::new((String::new(), String::new(), false)) };
}

fn configure(c: &mut casegraph::config::Config) {
    SETTINGS.with(|s| {
        let s = s.borrow();
        c.simulators.enabled = false;
        c.connectors.dir = s.0.clone();
        c.access.policy_file = s.1.clone();
        if s.2 {
            c.server.introspection = false;
        }
    });
}

/// A running gateway with the planted cases.
pub struct Fixture {
    pub app: TestApp,
    /// The MINUSMA case in Mali: victims SEN (military, contributed by SEN) then TCD (civilian).
    pub case_id: String,
    pub case_ref: String,
    pub servers: Vec<ReferenceServer>,
    /// The connector files the gateway was started with.
    pub connectors_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Canonical records of a system whose record of the main case is marked `marking`, with an
/// unconvicted and a convicted defendant.
pub fn proceedings_record(key: &str, marking: &str) -> Value {
    json!({
        "key": key,
        "national_reference": NATIONAL_REFERENCE,
        "authority": "Pôle judiciaire spécialisé de Bamako",
        "stage": "CHARGED",
        "stage_history": [
            { "stage": "REPORTED", "date": "2023-03-15" },
            { "stage": "CHARGED", "date": "2023-09-01" }
        ],
        "court": { "name": "Cour d'assises de Bamako", "type": "SPECIAL" },
        "charges": [CHARGE],
        "defendants": [
            { "name": SUSPECT, "status": "IN_CUSTODY", "in_absentia": false, "verdict": null, "sentence": null },
            { "name": CONVICT, "status": "CONVICTED", "in_absentia": true, "verdict": "Coupable", "sentence": "20 ans" }
        ],
        "next_hearing": "2026-06-02",
        "updated_at": "2025-11-02T10:00:00Z",
        "marking": marking
    })
}

/// A sealed record (planted values that must never leave).
pub fn sealed_record(key: &str) -> Value {
    json!({
        "key": key,
        "national_reference": SEALED_REFERENCE,
        "authority": "Juge d'instruction (huis clos)",
        "stage": "CHARGED",
        "court": { "name": "Tribunal militaire", "type": "MILITARY" },
        "charges": [SEALED_CHARGE],
        "defendants": [{ "name": SEALED_DEFENDANT, "status": "CONVICTED", "in_absentia": false }],
        "marking": "SEALED"
    })
}

/// Runs `query` as `who`; returns status, raw body text and JSON.
pub async fn run(app: &TestApp, who: &Who, query: &str, variables: Value) -> (u16, String, Value) {
    raw(app, &token(app, who), query, variables).await
}

/// Runs `query` with a raw bearer token.
pub async fn raw(
    app: &TestApp,
    bearer: &str,
    query: &str,
    variables: Value,
) -> (u16, String, Value) {
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("accept", "application/json")
        .bearer_auth(bearer)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request sent");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, text, body)
}

/// Runs a mutation as the case officer and returns `data`, failing on any error.
pub async fn officer_write(app: &TestApp, query: &str, variables: Value) -> Value {
    let (status, text, body) = run(app, &UN_OFFICER, query, variables).await;
    assert_eq!(status, 200, "{text}");
    assert!(body.get("errors").is_none(), "the write failed: {text}");
    body["data"].clone()
}

/// Reports a case as the case officer; returns (id, reference).
pub async fn report_case(app: &TestApp, mission: &str, host: &str, date: &str) -> (String, String) {
    let data = officer_write(
        app,
        "mutation($i: ReportCaseInput!) { reportCase(input: $i) { id reference version } }",
        json!({ "i": { "mission": mission, "hostState": host, "incidentDate": date, "acts": ["KILLING"] } }),
    )
    .await;
    let case = &data["reportCase"];
    (
        case["id"].as_str().expect("id").to_string(),
        case["reference"].as_str().expect("reference").to_string(),
    )
}

/// Starts the gateway and plants the main case.
pub async fn start(setup: Setup) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).expect("connectors dir");
    let mut listeners = Vec::new();
    for system in &setup.systems {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let file = format!(
            "name = \"Test system {id}\"\nkind = \"protocol\"\nhost_states = [\"{h}\"]\nmatch_by = \"un_reference\"\n\n[protocol]\nbase_url = \"{url}\"\n",
            id = system.id,
            h = system.host_state
        );
        std::fs::write(connectors.join(format!("{}.toml", system.id)), file)
            .expect("write connector file");
        listeners.push(listener);
    }
    for (id, host) in &setup.dead_systems {
        // Port 1 on loopback: nothing listens, every call is refused at once.
        let file = format!(
            "name = \"Test system {id}\"\nkind = \"protocol\"\nhost_states = [\"{host}\"]\nmatch_by = \"un_reference\"\n\n[protocol]\nbase_url = \"http://127.0.0.1:1\"\n\n[runtime]\nretries = 0\n"
        );
        std::fs::write(connectors.join(format!("{id}.toml")), file).expect("write connector file");
    }
    let policy_path = match &setup.policy {
        Some(text) => {
            let p = dir.path().join("policy.toml");
            std::fs::write(&p, text).expect("write policy");
            p.display().to_string()
        }
        None => String::new(),
    };
    let connectors_setting = if setup.systems.is_empty() && setup.dead_systems.is_empty() {
        String::new()
    } else {
        connectors.display().to_string()
    };
    SETTINGS.with(|s| *s.borrow_mut() = (connectors_setting, policy_path, setup.no_introspection));
    let app = try_spawn(AppOptions {
        configure,
        ..AppOptions::default()
    })
    .await
    .expect("SQLite is always available");

    let (case_id, case_ref) = report_case(&app, "MINUSMA", "MLI", INCIDENT_DATE).await;
    let data = officer_write(
        &app,
        "query($id: ID!) { case(id: $id) { version } }",
        json!({ "id": case_id }),
    )
    .await;
    let version = data["case"]["version"].as_i64().expect("version");
    officer_write(
        &app,
        "mutation($id: ID!, $v: Int!, $i: UpdateCaseInput!) { updateCase(id: $id, expectedVersion: $v, input: $i) { version } }",
        json!({ "id": case_id, "v": version, "i": {
            "region": "Gao", "locality": "Ansongo",
            "coordinates": { "latitude": LATITUDE, "longitude": LONGITUDE },
            "summary": SUMMARY, "perpetratorGroups": [GROUP]
        } }),
    )
    .await;
    let add_victim = "mutation($c: ID!, $i: VictimInput!) { addVictim(caseId: $c, input: $i) { victim { id } } }";
    officer_write(
        &app,
        add_victim,
        json!({ "c": case_id, "i": { "category": "MILITARY", "contributingCountry": "SEN", "nationality": "SEN",
            "harm": "KILLED", "gender": "MALE", "name": SEN_NAME, "serviceNumber": SEN_SERVICE } }),
    )
    .await;
    officer_write(
        &app,
        add_victim,
        json!({ "c": case_id, "i": { "category": "INTERNATIONAL_CIVILIAN", "nationality": "TCD",
            "harm": "INJURED", "gender": "FEMALE", "name": TCD_NAME, "serviceNumber": TCD_SERVICE } }),
    )
    .await;
    officer_write(
        &app,
        "mutation($c: ID!, $i: NationalReferenceInput!) { linkNationalReference(caseId: $c, input: $i) { nationalReference { id } } }",
        json!({ "c": case_id, "i": { "state": "MLI", "authority": "Pôle judiciaire spécialisé", "reference": NATIONAL_REFERENCE } }),
    )
    .await;
    officer_write(
        &app,
        "mutation($c: ID!, $i: FollowUpActionInput!) { recordFollowUpAction(caseId: $c, input: $i) { followUpAction { id } } }",
        json!({ "c": case_id, "i": { "kind": "NOTE_VERBALE", "description": "Note verbale to the host state", "takenOn": "2023-03-20" } }),
    )
    .await;
    officer_write(
        &app,
        "mutation($i: AssistanceInput!) { recordAssistance(input: $i) { id } }",
        json!({ "i": { "hostState": "MLI", "kind": "INVESTIGATION_SUPPORT", "provider": "UNODC", "status": "OFFERED",
            "description": "Forensic support to the investigating judge", "caseIds": [case_id] } }),
    )
    .await;

    let mut servers = Vec::new();
    for (system, listener) in setup.systems.iter().zip(listeners) {
        let server = ReferenceServer::new((system.records)(&case_ref), None);
        let router = server.router();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("reference server serves")
        });
        servers.push(server);
    }
    Fixture {
        app,
        case_id,
        case_ref,
        servers,
        connectors_dir: connectors,
        _dir: dir,
    }
}
