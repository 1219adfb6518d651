//! Answers of the wrong shape, for every connector kind, against real upstreams (wiremock on
//! 127.0.0.1, a real drop folder): a wrong shape or a value of the wrong type is
//! `CONNECTOR_BAD_RESPONSE` at the key it concerns (or every key of the answer, when no key
//! can be read from it); "not known" is said only when the system said so in the declared
//! shape. The last test is the report's Mali answer through the gateway, over HTTP.

mod common;

use casegraph::connectors::{build, load_dir, ConnectorErrorKind, ConnectorHandle, Lookup};
use common::{error_codes, spawn_with};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STAGES: &str = r#"
[mapping.stages]
"information judiciaire" = "UNDER_INVESTIGATION"
"non-lieu" = "DISMISSED"

[mapping.defendant_statuses]
"en fuite" = "AT_LARGE"
"#;

/// The fields every test mapping reads, below its `records` and `key`.
const FIELDS: &str = "stage = \"/etape\"\nnext_hearing = \"/audience\"\n\
     defendants = { list = \"/accuses\", name = \"/nom\", status = \"/situation\" }\n";

/// The common part of a connector file: no retry, and no cache nor stale data, so that every
/// lookup asks the system and shows what it made of this answer.
fn header(kind: &str) -> String {
    format!(
        "name = \"Justice test\"\nkind = \"{kind}\"\nhost_states = [\"MLI\"]\nmatch_by = \"un_reference\"\n\n\
         [runtime]\nretries = 0\ncache_ttl_secs = 0\nmax_stale_secs = 0\n"
    )
}

async fn connector(text: &str) -> (ConnectorHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("justice-test.toml"), text).expect("write the connector file");
    let loaded =
        load_dir(dir.path()).unwrap_or_else(|e| panic!("the connector file is valid, but:\n{e}"));
    let policy = casegraph::load_policy(&Default::default()).expect("the bundled policy loads");
    let handle = build(&loaded[0], casegraph::sealing_of(&policy))
        .await
        .unwrap_or_else(|e| panic!("the connector builds, but: {e}"));
    (handle, dir)
}

/// A wiremock upstream answering `body` to every POST of `route`.
async fn answering(route: &str, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn keys() -> Vec<String> {
    ["K-1", "K-2", "K-3"].map(String::from).to_vec()
}

/// The lookup of `key` is a bad response whose message names `says`.
fn bad(found: &HashMap<String, Lookup>, key: &str, says: &str) {
    match found.get(key) {
        Some(Lookup::Failed(e)) => {
            assert_eq!(e.kind, ConnectorErrorKind::BadResponse, "{key}: {e}");
            assert!(e.message.contains(says), "{key}: {e}");
        }
        other => panic!("{key} should be a bad response naming `{says}`, got {other:?}"),
    }
}

fn is_found(lookups: &HashMap<String, Lookup>, key: &str) {
    assert!(
        matches!(lookups.get(key), Some(Lookup::Found(_))),
        "{key}: {:?}",
        lookups.get(key)
    );
}

fn not_known(lookups: &HashMap<String, Lookup>, key: &str) {
    assert!(
        matches!(lookups.get(key), Some(Lookup::NotKnown)),
        "{key}: {:?}",
        lookups.get(key)
    );
}

/// Records of the right shape, each key well typed: K-1 and K-2 known, K-3 not.
fn good_records(key_field: &str) -> Vec<Value> {
    vec![
        json!({ key_field: "K-1", "etape": "information judiciaire", "audience": "2025-06-02",
                "accuses": [{ "nom": "X", "situation": "en fuite" }] }),
        json!({ key_field: "K-2", "etape": "non-lieu" }),
    ]
}

/// K-1 with its stage, its hearing or its defendants of the wrong type; K-2 fine.
fn wrong_values(key_field: &str) -> Vec<(Vec<Value>, &'static str)> {
    let k2 = json!({ key_field: "K-2", "etape": "non-lieu" });
    vec![
        (
            vec![
                json!({ key_field: "K-1", "etape": { "code": 3 } }),
                k2.clone(),
            ],
            "stage at `/etape` should be text, found an object",
        ),
        (
            vec![json!({ key_field: "K-1", "accuses": "aucun" }), k2.clone()],
            "defendants at `/accuses` should be an array",
        ),
        (
            vec![
                json!({ key_field: "K-1", "accuses": [{ "nom": ["X"] }] }),
                k2.clone(),
            ],
            "defendants[0].name",
        ),
        (
            vec![json!({ key_field: "K-1", "audience": "bientôt" }), k2],
            "next_hearing at `/audience` should be a date",
        ),
    ]
}

// ---------- rest ----------

async fn rest(body: Value) -> (HashMap<String, Lookup>, MockServer) {
    let server = answering("/dossiers", body).await;
    let text = format!(
        "{}\n[rest]\nbase_url = \"{}\"\n[rest.batch]\nmethod = \"POST\"\npath = \"/dossiers\"\nbody = '{{\"refs\": \"$keys\"}}'\n\n\
         [mapping]\nrecords = \"/dossiers\"\nkey = \"/reference_onu\"\n{FIELDS}{STAGES}",
        header("rest"),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    (handle.runtime.lookup(&keys()).await, server)
}

#[tokio::test]
async fn rest_the_reported_answer_is_a_bad_response_for_every_key_never_no_national_file() {
    let (found, _) =
        rest(json!({ "nombre": "beaucoup", "dossiers": { "reference_onu": 5 } })).await;
    for key in keys() {
        bad(&found, &key, "an object at `/dossiers`");
    }
}

#[tokio::test]
async fn rest_a_record_whose_key_is_not_text_fails_the_whole_answer() {
    let (found, _) = rest(json!({ "dossiers": [{ "reference_onu": 5 }] })).await;
    for key in keys() {
        bad(&found, &key, "key at `/reference_onu` should be text");
    }
}

#[tokio::test]
async fn rest_values_of_the_wrong_type_fail_their_record_alone() {
    for (records, says) in wrong_values("reference_onu") {
        let (found, _) = rest(json!({ "dossiers": records })).await;
        bad(&found, "K-1", says);
        found_and_unknown(&found);
    }
}

fn found_and_unknown(lookups: &HashMap<String, Lookup>) {
    is_found(lookups, "K-2");
    not_known(lookups, "K-3");
}

#[tokio::test]
async fn rest_an_empty_list_in_the_declared_shape_is_not_known() {
    let (found, _) = rest(json!({ "dossiers": good_records("reference_onu") })).await;
    found_and_unknown(&found);
    is_found(&found, "K-1");
    let (found, _) = rest(json!({ "dossiers": [] })).await;
    for key in keys() {
        not_known(&found, &key);
    }
}

// ---------- graphql ----------

async fn graphql(body: Value) -> HashMap<String, Lookup> {
    let server = answering("/graphql", body).await;
    let text = format!(
        "{}\n[graphql]\nendpoint = \"{}/graphql\"\nquery = \"query D($refs: [String!]!) {{ dossiers(refs: $refs) {{ referenceOnu etape }} }}\"\nkeys_variable = \"refs\"\n\n\
         [mapping]\nrecords = \"/data/dossiers\"\nkey = \"/referenceOnu\"\n{FIELDS}{STAGES}",
        header("graphql"),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    handle.runtime.lookup(&keys()).await
}

#[tokio::test]
async fn graphql_answers_of_the_wrong_shape_or_types_are_bad_responses() {
    let found = graphql(json!({ "data": { "dossiers": { "referenceOnu": 5 } } })).await;
    for key in keys() {
        bad(&found, &key, "an object at `/data/dossiers`");
    }
    for (records, says) in wrong_values("referenceOnu") {
        let found = graphql(json!({ "data": { "dossiers": records } })).await;
        bad(&found, "K-1", says);
        found_and_unknown(&found);
    }
}

// ---------- protocol ----------

async fn protocol(body: Value) -> HashMap<String, Lookup> {
    let server = answering("/lookup", body).await;
    let text = format!(
        "{}\n[protocol]\nbase_url = \"{}\"\n",
        header("protocol"),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    handle.runtime.lookup(&keys()).await
}

#[tokio::test]
async fn protocol_answers_of_the_wrong_shape_or_types_are_bad_responses() {
    let found = protocol(json!({ "records": { "key": "K-1" } })).await;
    for key in keys() {
        bad(&found, &key, "records");
    }
    let k2 = json!({ "key": "K-2", "stage": "DISMISSED" });
    for (record, says) in [
        (
            json!({ "key": "K-1", "stage": { "code": 3 } }),
            "stage at `/stage` should be text",
        ),
        (
            json!({ "key": "K-1", "defendants": "none" }),
            "defendants at `/defendants` should be an array",
        ),
        (
            json!({ "key": "K-1", "next_hearing": "soon" }),
            "next_hearing at `/next_hearing` should be a date",
        ),
        (
            json!({ "key": "K-1", "charges": [{ "count": 2 }] }),
            "charges[0]",
        ),
    ] {
        let found = protocol(json!({ "records": [record, k2.clone()] })).await;
        bad(&found, "K-1", says);
        found_and_unknown(&found);
    }
}

// ---------- file ----------

#[tokio::test]
async fn file_records_of_the_wrong_types_fail_alone_and_an_unreadable_file_leaves_no_key_not_known()
{
    let drop_folder = tempfile::tempdir().expect("drop folder");
    let k1_wrong = json!([{ "reference_onu": "K-1", "etape": { "code": 3 } },
                          { "reference_onu": "K-2", "etape": "non-lieu" }]);
    std::fs::write(drop_folder.path().join("a.json"), k1_wrong.to_string()).expect("write");
    let text = format!(
        "{}\n[file]\nfolder = \"{}\"\nformat = \"json\"\npoll_secs = 1\n\n\
         [mapping]\nkey = \"/reference_onu\"\n{FIELDS}{STAGES}",
        header("file"),
        drop_folder.path().display()
    );
    let (handle, _dir) = connector(&text).await;
    let found = handle.runtime.lookup(&keys()).await;
    bad(&found, "K-1", "stage at `/etape` should be text");
    found_and_unknown(&found);

    // A file of the wrong shape arrives: it might hold K-3, which is no longer "not known".
    let wrong_shape = json!({ "dossiers": { "reference_onu": "K-3" } });
    std::fs::write(drop_folder.path().join("b.json"), wrong_shape.to_string()).expect("write");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = handle.runtime.lookup(&keys()).await;
        if matches!(found.get("K-3"), Some(Lookup::Failed(_))) {
            bad(&found, "K-3", "cannot be read");
            is_found(&found, "K-2");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the folder's new file was never read: {:?}",
            found.get("K-3")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------- through the gateway ----------

/// A MINUSMA case in Mali in the bundled UN data.
const MLI_CASE: &str = "MINUSMA-20230609";

#[tokio::test]
async fn the_reported_mali_answer_is_connector_bad_response_at_the_path_over_http() {
    let upstream = answering(
        "/dossiers",
        json!({ "nombre": "beaucoup", "dossiers": { "reference_onu": 5 } }),
    )
    .await;
    let connectors = tempfile::tempdir().expect("connectors");
    let text = format!(
        "{}\n[rest]\nbase_url = \"{}\"\n[rest.batch]\nmethod = \"POST\"\npath = \"/dossiers\"\nbody = '{{\"refs\": \"$keys\"}}'\n\n\
         [mapping]\nrecords = \"/dossiers\"\nkey = \"/reference_onu\"\n{FIELDS}{STAGES}",
        header("rest"),
        upstream.uri()
    );
    std::fs::write(connectors.path().join("mli.toml"), text).expect("write");
    let app = spawn_with(|c| c.connectors.dir = connectors.path().display().to_string()).await;
    let (status, body) = app
        .gql(
            &app.analyst(),
            "query($r: String!) { case(reference: $r) { reference nationalProceedings { stage } } }",
            json!({ "r": MLI_CASE }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["case"]["reference"], MLI_CASE, "{body}");
    assert_eq!(
        body["data"]["case"]["nationalProceedings"],
        json!([null]),
        "never `[]`, which would say there is no national file: {body}"
    );
    assert_eq!(error_codes(&body), ["CONNECTOR_BAD_RESPONSE"], "{body}");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["case", "nationalProceedings", 0]),
        "{body}"
    );
}
