//! The policy mutation test: proof that every entry of `config/policy.toml` is live.
//!
//! Generated from the policy file, for every field rule (mutations and the audit log included)
//! and every argument classification:
//!
//! - raised to SEALED, the most privileged principal that reads it under the bundled policy is
//!   denied it (`FORBIDDEN_FIELD` at its path); a non-null field cannot be denied without
//!   breaking the response, so there the gateway must refuse to start, naming the entry and its
//!   line;
//! - lowered to PUBLIC (with the fields leading to it, and roles dropped), a principal related to
//!   nothing reads it: an unrelated state for general data, an unrelated state's auditor (who
//!   sees every case by role and is related to none) for case data.
//!
//! The store, the host-state systems and the schema are real; each variant builds the gateway's
//! access layer and schema over the same planted store and runs in process (the HTTP layer only
//! verifies tokens, and is tested elsewhere). An entry with no query here fails the test: a new
//! field needs its line below.

mod access_fixtures;
mod common;

use access_fixtures::*;
use casegraph::access::{Organisation, Policy, PolicyFile, Principal, Role};
use casegraph::schema::{CaseGraphSchema, SchemaOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const POLICY_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.toml");

/// How a test reaches an entry: a document, the fields leading to it (lowered with it), and the
/// arguments it uses (lowered with it).
struct Probe {
    query: String,
    chain: Vec<String>,
    arguments: Vec<String>,
}

/// The document reaching objects of `type_name`, with `%` where their selection goes, and the
/// fields on the way.
fn type_path(type_name: &str) -> Option<(&'static str, &'static [&'static str])> {
    const CASE: &str = "query($id: ID!) { case(id: $id) { % } }";
    Some(match type_name {
        "Query" => ("query($id: ID!) { % }", &[]),
        "Case" => (CASE, &["Query.case"]),
        "Victim" => (
            "query($id: ID!) { case(id: $id) { victims { % } } }",
            &["Query.case", "Case.victims"],
        ),
        "CaseLocation" => (
            "query($id: ID!) { case(id: $id) { location { % } } }",
            &["Query.case", "Case.location"],
        ),
        "Coordinates" => (
            "query($id: ID!) { case(id: $id) { location { coordinates { % } } } }",
            &["Query.case", "Case.location", "CaseLocation.coordinates"],
        ),
        "FollowUpAction" => (
            "query($id: ID!) { case(id: $id) { followUpActions { % } } }",
            &["Query.case", "Case.followUpActions"],
        ),
        "NationalReference" => (
            "query($id: ID!) { case(id: $id) { nationalReferences { % } } }",
            &["Query.case", "Case.nationalReferences"],
        ),
        "Submission" => (
            "query($id: ID!) { case(id: $id) { submissions { % } } }",
            &["Query.case", "Case.submissions"],
        ),
        "CapacityBuildingAssistance" => (
            "query($id: ID!) { case(id: $id) { capacityBuildingAssistance { % } } }",
            &["Query.case", "Case.capacityBuildingAssistance"],
        ),
        "NationalProceedings" => (
            "query($id: ID!) { case(id: $id) { nationalProceedings { % } } }",
            &["Query.case", "Case.nationalProceedings"],
        ),
        "Court" => (
            "query($id: ID!) { case(id: $id) { nationalProceedings { court { % } } } }",
            &[
                "Query.case",
                "Case.nationalProceedings",
                "NationalProceedings.court",
            ],
        ),
        "Defendant" => (
            "query($id: ID!) { case(id: $id) { nationalProceedings { defendants { % } } } }",
            &[
                "Query.case",
                "Case.nationalProceedings",
                "NationalProceedings.defendants",
            ],
        ),
        "StageEntry" => (
            "query($id: ID!) { case(id: $id) { nationalProceedings { stageHistory { % } } } }",
            &[
                "Query.case",
                "Case.nationalProceedings",
                "NationalProceedings.stageHistory",
            ],
        ),
        "Freshness" => (
            "query($id: ID!) { case(id: $id) { nationalProceedings { freshness { % } } } }",
            &[
                "Query.case",
                "Case.nationalProceedings",
                "NationalProceedings.freshness",
            ],
        ),
        "Mission" => ("{ mission(code: \"MINUSMA\") { % } }", &["Query.mission"]),
        "MissionLocation" => (
            "{ mission(code: \"MINUSMA\") { location { % } } }",
            &["Query.mission", "Mission.location"],
        ),
        "FocalPoint" => (
            "{ mission(code: \"MINUSMA\") { focalPoint { % } } }",
            &["Query.mission", "Mission.focalPoint"],
        ),
        "CaseConnection" => ("{ cases(first: 2) { % } }", &["Query.cases"]),
        "CaseEdge" => (
            "{ cases(first: 2) { edges { % } } }",
            &["Query.cases", "CaseConnection.edges"],
        ),
        "PageInfo" => (
            "{ cases(first: 2) { pageInfo { % } } }",
            &["Query.cases", "CaseConnection.pageInfo"],
        ),
        "Statistics" => ("{ statistics(by: MISSION) { % } }", &["Query.statistics"]),
        "StatisticsGroup" => (
            "{ statistics(by: MISSION) { groups { % } } }",
            &["Query.statistics", "Statistics.groups"],
        ),
        "Viewer" => ("{ viewer { % } }", &["Query.viewer"]),
        "ConnectorStatus" => ("{ connectors { % } }", &["Query.connectors"]),
        "ConnectorLastError" => (
            "{ connectors { lastError { % } } }",
            &["Query.connectors", "ConnectorStatus.lastError"],
        ),
        "ConnectorLatency" => (
            "{ connectors { latency { % } } }",
            &["Query.connectors", "ConnectorStatus.latency"],
        ),
        "AuditEntryConnection" => ("{ auditLog(first: 2) { % } }", &["Query.auditLog"]),
        "AuditEntryEdge" => (
            "{ auditLog(first: 2) { edges { % } } }",
            &["Query.auditLog", "AuditEntryConnection.edges"],
        ),
        "AuditEntry" => (
            "{ auditLog(first: 2) { edges { node { % } } } }",
            &[
                "Query.auditLog",
                "AuditEntryConnection.edges",
                "AuditEntryEdge.node",
            ],
        ),
        "_Service" => ("{ _service { % } }", &["Query._service"]),
        "AddVictimPayload" => (MUTATIONS[1].1, &["Mutation.addVictim"]),
        "RecordFollowUpActionPayload" => (MUTATIONS[2].1, &["Mutation.recordFollowUpAction"]),
        "LinkNationalReferencePayload" => (MUTATIONS[4].1, &["Mutation.linkNationalReference"]),
        _ => return None,
    })
}

/// Every mutation, written so that it succeeds for whoever may perform it: (field, document
/// with `%` where the payload's selection goes).
const MUTATIONS: &[(&str, &str)] = &[
    ("reportCase", "mutation { reportCase(input: { mission: \"MINUSMA\", hostState: \"MLI\", incidentDate: \"2021-01-05\", acts: [KILLING] }) { % } }"),
    ("addVictim", "mutation($id: ID!, $version: Int!) { addVictim(caseId: $id, expectedVersion: $version, input: { category: MILITARY, harm: INJURED, nationality: \"SEN\" }) { % } }"),
    ("recordFollowUpAction", "mutation($id: ID!, $version: Int!) { recordFollowUpAction(caseId: $id, expectedVersion: $version, input: { kind: NOTE_VERBALE, description: \"Note\", takenOn: \"2023-03-20\" }) { % } }"),
    ("recordAssistance", "mutation { recordAssistance(input: { hostState: \"MLI\", kind: TRAINING, provider: \"UNODC\", status: OFFERED }) { % } }"),
    ("linkNationalReference", "mutation($id: ID!, $ref: String!, $version: Int!) { linkNationalReference(caseId: $id, expectedVersion: $version, input: { state: \"MLI\", authority: \"Tribunal\", reference: $ref }) { % } }"),
    ("setMissionFocalPoint", "mutation { setMissionFocalPoint(mission: \"MINUSMA\", focalPoint: { name: \"Chief of Security\" }) { % } }"),
    ("submitCaseInformation", "mutation($id: ID!) { submitCaseInformation(caseId: $id, content: \"Information\") { % } }"),
    ("reviewSubmission", "mutation($submission: ID!) { reviewSubmission(id: $submission, accept: true, note: \"Checked\") { % } }"),
    ("updateCase", "mutation($id: ID!, $version: Int!) { updateCase(id: $id, expectedVersion: $version, input: { summary: \"Updated\" }) { % } }"),
];

/// Root fields of the query type, each with the arguments it needs.
fn query_root(field: &str) -> Option<&'static str> {
    Some(match field {
        "viewer" => "viewer { __typename }",
        "missions" => "missions { __typename }",
        "mission" => "mission(code: \"MINUSMA\") { __typename }",
        "cases" => "cases(first: 1) { __typename }",
        "case" => "case(id: $id) { __typename }",
        "_entities" => "_entities(representations: $reps) { __typename }",
        "capacityBuildingAssistance" => "capacityBuildingAssistance { __typename }",
        "connectors" => "connectors { __typename }",
        "auditLog" => "auditLog(first: 1) { __typename }",
        "statistics" => "statistics(by: MISSION) { __typename }",
        "_service" => "_service { __typename }",
        _ => return None,
    })
}

/// A document using one argument entry (`Type.field.argument[.inputField]`), and the other
/// argument entries it uses.
fn argument_probe(key: &str) -> Option<(String, Vec<&'static str>)> {
    let filter_value = |f: &str| -> Option<&'static str> {
        Some(match f {
            "missions" => "[\"MINUSMA\"]",
            "hostStates" => "[\"MLI\"]",
            "acts" => "[KILLING]",
            "victimCategories" => "[MILITARY]",
            "victimNationalities" => "[\"SEN\"]",
            "contributingCountries" => "[\"SEN\"]",
            "from" => "\"2020-01-01\"",
            "to" => "\"2025-01-01\"",
            "missionStatus" => "CLOSED",
            _ => return None,
        })
    };
    if let Some(f) = key.strip_prefix("Query.cases.filter.") {
        return Some((
            format!(
                "{{ cases(filter: {{ {f}: {} }}) {{ totalCount }} }}",
                filter_value(f)?
            ),
            vec![],
        ));
    }
    if let Some(f) = key.strip_prefix("Query.statistics.filter.") {
        return Some((
            format!(
                "{{ statistics(by: MISSION, filter: {{ {f}: {} }}) {{ totalCases }} }}",
                filter_value(f)?
            ),
            vec!["Query.statistics.by"],
        ));
    }
    if let Some(m) = key.strip_prefix("Mutation.") {
        let field = m.split('.').next()?;
        let (_, doc) = MUTATIONS.iter().find(|(f, _)| *f == field)?;
        return Some((doc.replace('%', "__typename"), vec![]));
    }
    let (doc, others): (&str, Vec<&'static str>) = match key {
        "Query.cases.orderBy.field" => (
            "{ cases(orderBy: { field: VICTIM_COUNT }) { totalCount } }",
            vec![],
        ),
        "Query.cases.orderBy.direction" => (
            "{ cases(orderBy: { field: INCIDENT_DATE, direction: ASC }) { totalCount } }",
            vec!["Query.cases.orderBy.field"],
        ),
        "Query.cases.first" => ("{ cases(first: 1) { totalCount } }", vec![]),
        "Query.cases.after" => ("{ cases(after: \"not-a-cursor\") { totalCount } }", vec![]),
        "Query.case.id" => ("query($id: ID!) { case(id: $id) { __typename } }", vec![]),
        "Query.case.reference" => (
            "{ case(reference: \"NONE-20000101\") { __typename } }",
            vec![],
        ),
        "Query._entities.representations" => (
            "query($reps: [_Any!]!) { _entities(representations: $reps) { __typename } }",
            vec![],
        ),
        "Query.statistics.by" => ("{ statistics(by: YEAR) { totalCases } }", vec![]),
        "Query.mission.code" => ("{ mission(code: \"MINUSMA\") { code } }", vec![]),
        "Query.missions.kind" => (
            "{ missions(kind: PEACEKEEPING_OPERATION) { code } }",
            vec![],
        ),
        "Query.missions.status" => ("{ missions(status: CLOSED) { code } }", vec![]),
        "Query.capacityBuildingAssistance.hostStates" => (
            "{ capacityBuildingAssistance(hostStates: [\"MLI\"]) { id } }",
            vec![],
        ),
        "Query.capacityBuildingAssistance.kinds" => (
            "{ capacityBuildingAssistance(kinds: [TRAINING]) { id } }",
            vec![],
        ),
        "Query.capacityBuildingAssistance.status" => (
            "{ capacityBuildingAssistance(status: OFFERED) { id } }",
            vec![],
        ),
        "Query.auditLog.filter" => (
            "{ auditLog(filter: { subject: \"nobody\" }) { __typename } }",
            vec![],
        ),
        "Query.auditLog.first" => ("{ auditLog(first: 1) { __typename } }", vec![]),
        "Query.auditLog.after" => (
            "{ auditLog(after: \"not-a-cursor\") { __typename } }",
            vec![],
        ),
        _ => return None,
    };
    Some((doc.to_string(), others))
}

/// A query document declaring the variables its body uses (a declared variable that is not
/// used fails validation).
fn declare(doc: &str) -> String {
    let Some(body) = doc.strip_prefix("query($id: ID!) ") else {
        return doc.to_string();
    };
    let mut vars = Vec::new();
    if body.contains("$id") {
        vars.push("$id: ID!");
    }
    if body.contains("$reps") {
        vars.push("$reps: [_Any!]!");
    }
    if vars.is_empty() {
        body.to_string()
    } else {
        format!("query({}) {body}", vars.join(", "))
    }
}

/// The probe of a field rule.
fn field_probe(key: &str, returns_object: bool) -> Option<Probe> {
    let (type_name, field) = key.split_once('.')?;
    let selection = if returns_object {
        format!("{field} {{ __typename }}")
    } else {
        field.to_string()
    };
    if type_name == "Mutation" {
        let (_, doc) = MUTATIONS.iter().find(|(f, _)| *f == field)?;
        return Some(Probe {
            query: doc.replace('%', "__typename"),
            chain: vec![],
            arguments: vec![],
        });
    }
    let (template, chain) = type_path(type_name)?;
    let selection = if type_name == "Query" {
        query_root(field)?.to_string()
    } else {
        selection
    };
    let query = declare(&template.replacen('%', &selection, 1));
    Some(Probe {
        query,
        chain: chain.iter().map(|c| c.to_string()).collect(),
        arguments: vec![],
    })
}

/// The principals of the test.
fn principal(org: &str, roles: &[Role]) -> Principal {
    Principal {
        subject: format!("mutation-test-{org}"),
        organisation: Organisation::parse(org).expect("a valid organisation"),
        roles: roles.iter().copied().collect(),
        missions: vec!["MINUSMA".into()],
        issuer: "test".into(),
    }
}

struct World {
    fx: Fixture,
    connectors: casegraph::connectors::Connectors,
    shape: casegraph::access::SchemaShape,
    text: String,
    file: PolicyFile,
    counter: AtomicUsize,
}

enum Built {
    Schema(Box<CaseGraphSchema>),
    Refused(String),
}

impl World {
    fn build(&self, text: &str) -> Built {
        let policy = match Policy::load(text, "policy.toml", &self.shape) {
            Ok(p) => p,
            Err(e) => return Built::Refused(e.to_string()),
        };
        let access = match casegraph::schema::access_for(policy) {
            Ok(a) => a,
            Err(e) => return Built::Refused(e.to_string()),
        };
        Built::Schema(Box::new(casegraph::schema::build(
            Arc::clone(&self.fx.app.store),
            self.connectors.clone(),
            SchemaOptions {
                access,
                audit: casegraph::access::audit::AuditSink::disabled(),
                cursor_key: [7; 32],
                introspection: true,
                limits: casegraph::config::LimitsConfig::default(),
            },
        )))
    }

    /// Variables every document may use, fresh for writes that need them.
    async fn variables(&self) -> Value {
        let id = self.fx.case_id.clone();
        let version = self
            .fx
            .app
            .store
            .cases_by_ids(std::slice::from_ref(&id))
            .await
            .expect("the case")[0]
            .version;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let submission = self
            .fx
            .app
            .store
            .insert_submission(&id, "SEN", "sen-analyst", "Pending information")
            .await
            .expect("a pending submission")
            .id;
        json!({
            "id": id,
            "version": version,
            "ref": format!("RP-MUT-{n}"),
            "submission": submission,
            "reps": [{ "__typename": "Case", "id": self.fx.case_id }],
        })
    }

    async fn run(&self, schema: &CaseGraphSchema, who: &Principal, query: &str) -> Value {
        let vars = self.variables().await;
        // Only the variables the document declares.
        let declared: serde_json::Map<String, Value> = vars
            .as_object()
            .expect("object")
            .iter()
            .filter(|(k, _)| query.contains(&format!("${k}:")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(Value::Object(declared)));
        let response = casegraph::schema::execute(schema, request, who.clone()).await;
        serde_json::to_value(&response).expect("a response serialises")
    }
}

/// Denials (FORBIDDEN_FIELD or FORBIDDEN) at a path ending with `field`.
fn denials_at(body: &Value, field: &str) -> usize {
    body["errors"].as_array().map_or(0, |es| {
        es.iter()
            .filter(|e| {
                let code = e["extensions"]["code"].as_str().unwrap_or("");
                (code == "FORBIDDEN_FIELD" || code == "FORBIDDEN")
                    && e["path"]
                        .as_array()
                        .and_then(|p| p.iter().rev().find(|s| s.is_string()))
                        == Some(&json!(field))
            })
            .count()
    })
}

/// Whether some object of the answer carries the key `field` (the field was reached).
fn has_key(data: &Value, field: &str) -> bool {
    match data {
        Value::Object(m) => m.contains_key(field) || m.values().any(|v| has_key(v, field)),
        Value::Array(items) => items.iter().any(|v| has_key(v, field)),
        _ => false,
    }
}

/// `text` with `key` (a field rule or an argument) set to `rule`.
fn with_rule(text: &str, key: &str, rule: &str) -> String {
    let prefix = format!("\"{key}\" =");
    let mut found = false;
    let out: String = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                found = true;
                format!("\"{key}\" = {rule}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(found, "{key} is an entry of the policy");
    out
}

async fn world() -> World {
    let fx = start(Setup {
        systems: vec![System {
            id: "mli-open",
            host_state: "MLI",
            records: |key| vec![proceedings_record(key, "PUBLIC")],
        }],
        dead_systems: vec![("mli-down", "MLI")],
        ..Setup::default()
    })
    .await;
    // A submission accepted into the record, and a focal point.
    let (_, text, body) = run(
        &fx.app,
        &CONTRIBUTOR_SEN,
        "mutation($id: ID!) { submitCaseInformation(caseId: $id, content: \"Witness account\") { id } }",
        json!({ "id": fx.case_id }),
    )
    .await;
    let submission = body["data"]["submitCaseInformation"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("submitted: {text}"))
        .to_string();
    officer_write(
        &fx.app,
        "mutation($s: ID!) { reviewSubmission(id: $s, accept: true) { id } }",
        json!({ "s": submission }),
    )
    .await;
    officer_write(
        &fx.app,
        "mutation { setMissionFocalPoint(mission: \"MINUSMA\", focalPoint: { name: \"Chief of Security\", email: \"security@minusma.example\" }) { code } }",
        json!({}),
    )
    .await;
    let text = std::fs::read_to_string(POLICY_PATH).expect("read the policy");
    let file: PolicyFile =
        casegraph::config::load_toml(&text, "policy.toml").expect("the policy parses");
    let shape = casegraph::schema::shape();
    let policy = Policy::load(&text, "policy.toml", &shape).expect("the policy loads");
    let connectors =
        casegraph::connectors::load_and_build(&fx.connectors_dir, casegraph::sealing_of(&policy))
            .await
            .expect("the test systems' connectors build");
    let w = World {
        fx,
        connectors,
        shape,
        text,
        file,
        counter: AtomicUsize::new(0),
    };
    // One lookup through each system: the dead one keeps a last error, both have latencies.
    let Built::Schema(schema) = w.build(&w.text) else {
        panic!("the bundled policy builds")
    };
    let officer = principal("UN", &[Role::UnCaseOfficer]);
    w.run(
        &schema,
        &officer,
        "query($id: ID!) { case(id: $id) { nationalProceedings { source } } }",
    )
    .await;
    w
}

fn most_privileged() -> Vec<Principal> {
    vec![principal("UN", Role::ALL), principal("SEN", Role::ALL)]
}

/// Case data is read by a principal related to no case who still sees them all (by role);
/// general data by a plain unrelated state.
fn unrelated_for(type_name: &str) -> Principal {
    let general = [
        "Query",
        "Mutation",
        "Mission",
        "MissionLocation",
        "FocalPoint",
        "CaseConnection",
        "CaseEdge",
        "PageInfo",
        "Statistics",
        "StatisticsGroup",
        "Viewer",
        "ConnectorStatus",
        "ConnectorLastError",
        "ConnectorLatency",
        "AuditEntryConnection",
        "AuditEntryEdge",
        "AuditEntry",
        "_Service",
    ];
    if general.contains(&type_name) {
        principal("FRA", &[Role::MemberStateAnalyst])
    } else {
        principal("FRA", &[Role::Auditor])
    }
}

#[tokio::test]
async fn every_field_rule_and_argument_of_the_policy_is_live() {
    let w = world().await;
    let mut failures: Vec<String> = Vec::new();
    let mut checked = BTreeMap::<&str, usize>::new();
    let returns_object = |key: &str| -> bool {
        let (t, f) = key.split_once('.').expect("Type.field");
        w.shape.field(t, f).is_some_and(|s| {
            w.shape.objects.contains_key(&s.ty.named) || w.shape.unions.contains_key(&s.ty.named)
        })
    };
    let nullable = |key: &str| -> bool {
        let (t, f) = key.split_once('.').expect("Type.field");
        w.shape.field(t, f).is_some_and(|s| s.ty.nullable)
    };

    let mut probes: Vec<(String, String, Probe)> = Vec::new();
    for key in w.file.fields.keys() {
        let Some(probe) = field_probe(key, returns_object(key)) else {
            failures.push(format!("{key}: no probe in this test; add one"));
            continue;
        };
        let (type_name, field) = key.split_once('.').expect("Type.field");
        probes.push((key.clone(), format!("{type_name}|{field}"), probe));
    }
    for key in w.file.arguments.keys() {
        let Some((query, others)) = argument_probe(key) else {
            failures.push(format!("argument {key}: no probe in this test; add one"));
            continue;
        };
        let mut parts = key.splitn(3, '.');
        let (t, f) = (parts.next().expect("type"), parts.next().expect("field"));
        probes.push((
            key.clone(),
            format!("{t}|{f}"),
            Probe {
                query,
                chain: vec![format!("{t}.{f}")],
                arguments: others.iter().map(|s| s.to_string()).collect(),
            },
        ));
    }

    for (key, target, probe) in &probes {
        let (type_name, field) = target.split_once('|').expect("target");
        let is_argument = w.file.arguments.contains_key(key);
        let field_key = format!("{type_name}.{field}");

        // Control: who reads it under the bundled policy.
        let Built::Schema(bundled) = w.build(&w.text) else {
            panic!("the bundled policy builds")
        };
        let mut reader = None;
        for p in most_privileged() {
            let body = w.run(&bundled, &p, &probe.query).await;
            if denials_at(&body, field) == 0 && body.get("data").is_some_and(|d| !d.is_null()) {
                reader = Some(p);
                break;
            }
        }
        let Some(reader) = reader else {
            failures.push(format!(
                "{key}: no test principal reads it under the bundled policy"
            ));
            continue;
        };

        // Raised to SEALED.
        let raised = with_rule(&w.text, key, "\"SEALED\"");
        match w.build(&raised) {
            Built::Refused(e) => {
                let named = e.contains(&format!("`{field_key}`"));
                let located = e.contains("policy.toml:");
                if !(named && located && !nullable(&field_key)) {
                    failures.push(format!(
                        "{key} raised to SEALED: the start was refused without naming the non-null field with its line: {e}"
                    ));
                }
            }
            Built::Schema(schema) => {
                let body = w.run(&schema, &reader, &probe.query).await;
                if denials_at(&body, field) == 0 {
                    failures.push(format!(
                        "{key} raised to SEALED: {} still reads it: {body}",
                        reader.organisation
                    ));
                }
            }
        }

        // Lowered to PUBLIC, with what leads to it.
        let mut lowered = w.text.clone();
        for entry in std::iter::once(key.as_str())
            .chain(probe.chain.iter().map(String::as_str))
            .chain(probe.arguments.iter().map(String::as_str))
        {
            lowered = with_rule(&lowered, entry, "\"PUBLIC\"");
        }
        if is_argument {
            // The field the argument belongs to, too.
            lowered = with_rule(&lowered, &field_key, "\"PUBLIC\"");
        }
        if key == "Defendant.name" {
            // The convicted-name level may not exceed the name's own.
            lowered = lowered.replace(
                "convicted_defendant_name = \"CASE_PARTIES\"",
                "convicted_defendant_name = \"PUBLIC\"",
            );
        }
        // Lowering a field lowers what it guarantees to the non-null fields below it: those
        // must come down too (the start-up check names them), or the start is refused.
        for _ in 0..8 {
            let Built::Refused(e) = w.build(&lowered) else {
                break;
            };
            let named: Vec<String> = e
                .lines()
                .filter_map(|l| l.split(": fields.").nth(1))
                .filter_map(|rest| rest.split(':').next())
                .map(str::to_string)
                .collect();
            if named.is_empty() {
                break;
            }
            for n in named {
                lowered = with_rule(&lowered, &n, "\"PUBLIC\"");
            }
        }
        let who = unrelated_for(type_name);
        match w.build(&lowered) {
            Built::Refused(e) => failures.push(format!("{key} lowered to PUBLIC: refused: {e}")),
            Built::Schema(schema) => {
                let body = w.run(&schema, &who, &probe.query).await;
                let reached = has_key(&body["data"], field);
                if denials_at(&body, field) > 0 || !reached {
                    failures.push(format!(
                        "{key} lowered to PUBLIC: {} does not read it: {body}",
                        who.organisation
                    ));
                }
            }
        }
        *checked
            .entry(if is_argument { "arguments" } else { "fields" })
            .or_default() += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} entries are not live as the policy says:\n{}",
        failures.len(),
        probes.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked["fields"],
        w.file.fields.len(),
        "every field rule was probed"
    );
    assert_eq!(
        checked["arguments"],
        w.file.arguments.len(),
        "every argument was probed"
    );
}
