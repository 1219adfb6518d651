//! Connector kinds `rest` and `graphql` against real HTTP upstreams on 127.0.0.1 (wiremock, and a
//! small axum server where timing matters): connector files are written to a temporary folder,
//! loaded and built as the gateway does, and each test checks both what the upstream received
//! and what the lookup made of the answer.

use casegraph::connectors::model::{CaseStage, Mapped};
use casegraph::connectors::{
    build, load_dir, ConnectorErrorKind, ConnectorHandle, ConnectorSetupError, Lookup,
};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// French stage labels, as a Malian or Congolese ministry of justice writes them.
const LABELS: [&str; 5] = [
    "enquête préliminaire",
    "information judiciaire",
    "renvoi devant la cour d'assises",
    "classement sans suite",
    "non-lieu",
];

/// The stage table of every test file. "classement sans suite" is the prosecutor closing the
/// file without prosecuting, for any reason; only "… – auteur inconnu" says no suspect was found.
const STAGES: &str = r#"
[mapping.stages]
"enquête préliminaire" = "UNDER_INVESTIGATION"
"information judiciaire" = "UNDER_INVESTIGATION"
"renvoi devant la cour d'assises" = "TRIAL_SCHEDULED"
"classement sans suite" = "DISMISSED"
"classement sans suite – auteur inconnu" = "CLOSED_NO_SUSPECT"
"non-lieu" = "DISMISSED"
"#;

/// The canonical stage each of [`LABELS`] maps to.
const CANONICAL: [CaseStage; 5] = [
    CaseStage::UnderInvestigation,
    CaseStage::UnderInvestigation,
    CaseStage::TrialScheduled,
    CaseStage::Dismissed,
    CaseStage::Dismissed,
];

/// The number at the end of a key ("MINUSMA-0042" → 42), which picks the record's stage.
fn number(key: &str) -> Option<usize> {
    key.rsplit(['-', '/']).next()?.parse().ok()
}

/// The national record of a key, or `None` for a key the national system does not know
/// (one without a number).
fn dossier(key: &str, key_field: &str) -> Option<Value> {
    let n = number(key)?;
    Some(
        json!({ key_field: key, "numero": format!("RP-{n}/2021"), "etape": LABELS[n % LABELS.len()] }),
    )
}

/// A keys → records answer: `{"dossiers": [...]}` for the keys found in each request.
struct Dossiers {
    keys_in: fn(&Request) -> Vec<String>,
}

impl Respond for Dossiers {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let records: Vec<Value> = (self.keys_in)(request)
            .iter()
            .filter_map(|k| dossier(k, "reference_onu"))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "dossiers": records }))
    }
}

/// The connector file's common part, for kind `kind` and a `[runtime]` without retries.
fn header(kind: &str, runtime: &str) -> String {
    format!(
        "name = \"Justice test\"\nkind = \"{kind}\"\nhost_states = [\"MLI\"]\nmatch_by = \"un_reference\"\n\n[runtime]\nretries = 0\n{runtime}\n"
    )
}

/// Writes `text` as a connector file into a fresh folder, loads and builds it.
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

fn stage_of(lookups: &HashMap<String, Lookup>, key: &str) -> Option<Mapped<CaseStage>> {
    match lookups.get(key) {
        Some(Lookup::Found(served)) => served.proceedings.stage.clone(),
        other => panic!("{key} should be found, got {other:?}"),
    }
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

#[tokio::test]
async fn a_post_batch_sends_120_keys_in_three_calls_of_at_most_50_with_the_body_template_filled() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/dossiers/recherche"))
        .respond_with(Dossiers {
            keys_in: |r| {
                let body: Value = r.body_json().expect("a JSON body");
                serde_json::from_value(body["references_onu"].clone())
                    .expect("references_onu is the list of keys")
            },
        })
        .expect(3)
        .mount(&server)
        .await;
    let text = format!(
        r#"{}
[rest]
base_url = "{}/v2"
[rest.batch]
method = "POST"
path = "/dossiers/recherche"
body = '{{"references_onu": "$keys", "inclure": ["accuses", "historique"]}}'

[mapping]
records = "/dossiers"
key = "/reference_onu"
national_reference = "/numero"
stage = "/etape"
{STAGES}"#,
        header("rest", "batch_size = 50"),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    let asked = keys("MINUSMA", 120);

    let found = handle.runtime.lookup(&asked).await;

    let received = server
        .received_requests()
        .await
        .expect("requests are recorded");
    assert_eq!(
        received.len(),
        3,
        "120 keys in batches of 50 are three calls"
    );
    let mut sizes = Vec::new();
    let mut sent = BTreeSet::new();
    for request in &received {
        let body: Value = request.body_json().expect("a JSON body");
        assert_eq!(
            body["inclure"],
            json!(["accuses", "historique"]),
            "the rest of the template is sent as written"
        );
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(2),
            "nothing is added to the template: {body}"
        );
        let chunk = body["references_onu"]
            .as_array()
            .expect("$keys became an array");
        sizes.push(chunk.len());
        sent.extend(
            chunk
                .iter()
                .map(|k| k.as_str().expect("keys are strings").to_string()),
        );
        assert_eq!(
            request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }
    sizes.sort_unstable();
    assert_eq!(sizes, vec![20, 50, 50]);
    assert_eq!(
        sent,
        asked.iter().cloned().collect::<BTreeSet<_>>(),
        "every key was asked once"
    );
    assert_eq!(found.len(), 120);
    for (i, key) in asked.iter().enumerate() {
        assert_eq!(
            stage_of(&found, key),
            Some(Mapped::Known(CANONICAL[i % 5])),
            "{key}"
        );
    }
    match &found["MINUSMA-0002"] {
        Lookup::Found(served) => {
            assert_eq!(
                served.proceedings.national_stage.as_deref(),
                Some("renvoi devant la cour d'assises")
            );
            assert_eq!(
                served.proceedings.national_reference.as_deref(),
                Some("RP-2/2021")
            );
        }
        other => panic!("MINUSMA-0002 should be found, got {other:?}"),
    }
}

#[tokio::test]
async fn a_get_batch_joins_the_keys_with_the_separator_into_one_query_parameter() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/dossiers"))
        .respond_with(Dossiers {
            keys_in: |r| {
                let refs = r
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "refs")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                refs.split(';').map(str::to_string).collect()
            },
        })
        .mount(&server)
        .await;
    let text = format!(
        r#"{}
[rest]
base_url = "{}"
[rest.batch]
method = "GET"
path = "/dossiers"
query = {{ refs = "$keys", format = "complet" }}
separator = ";"
[rest.headers]
Accept-Language = "fr"

[mapping]
records = "/dossiers"
key = "/reference_onu"
stage = "/etape"
{STAGES}"#,
        header("rest", ""),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    let asked = vec![
        "MINUSCA-0001".to_string(),
        "MINUSCA-0003".to_string(),
        "MINUSCA-INCONNU".to_string(),
    ];

    let found = handle.runtime.lookup(&asked).await;

    let received = server
        .received_requests()
        .await
        .expect("requests are recorded");
    assert_eq!(received.len(), 1, "one call for three keys");
    let query: HashMap<String, String> = received[0]
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        query.get("refs").map(String::as_str),
        Some("MINUSCA-0001;MINUSCA-0003;MINUSCA-INCONNU")
    );
    assert_eq!(query.get("format").map(String::as_str), Some("complet"));
    assert_eq!(
        received[0]
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok()),
        Some("fr")
    );
    assert_eq!(
        stage_of(&found, "MINUSCA-0001"),
        Some(Mapped::Known(CaseStage::UnderInvestigation))
    );
    assert_eq!(
        stage_of(&found, "MINUSCA-0003"),
        Some(Mapped::Known(CaseStage::Dismissed))
    );
    assert!(
        matches!(found["MINUSCA-INCONNU"], Lookup::NotKnown),
        "{:?}",
        found["MINUSCA-INCONNU"]
    );
}

#[tokio::test]
async fn a_single_endpoint_is_called_once_per_key_with_the_key_encoded_and_404_means_not_known() {
    let server = MockServer::start().await;
    for (encoded, key) in [
        ("MINUSMA-0002", "MINUSMA-0002"),
        ("MINUSMA%20RP%2F0004", "MINUSMA RP/0004"),
    ] {
        let record = dossier(key, "reference_onu").expect("a known key");
        Mock::given(method("GET"))
            .and(path(format!("/dossiers/{encoded}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(record))
            .mount(&server)
            .await;
    }
    // Any other path gets wiremock's 404: the national system does not know the case.
    let text = format!(
        r#"{}
[rest]
base_url = "{}"
[rest.single]
path = "/dossiers/{{key}}"
query = {{ format = "complet" }}

[mapping]
key = "/reference_onu"
stage = "/etape"
{STAGES}"#,
        header("rest", ""),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    let asked = vec![
        "MINUSMA-0002".to_string(),
        "MINUSMA RP/0004".to_string(),
        "MINUSMA-INCONNU".to_string(),
    ];

    let found = handle.runtime.lookup(&asked).await;

    let received = server
        .received_requests()
        .await
        .expect("requests are recorded");
    let paths: BTreeSet<&str> = received.iter().map(|r| r.url.path()).collect();
    assert_eq!(received.len(), 3, "one call per key");
    assert_eq!(
        paths,
        BTreeSet::from([
            "/dossiers/MINUSMA-0002",
            "/dossiers/MINUSMA%20RP%2F0004",
            "/dossiers/MINUSMA-INCONNU"
        ])
    );
    assert!(
        received
            .iter()
            .all(|r| r.url.query() == Some("format=complet")),
        "the fixed query is sent with every call"
    );
    assert_eq!(
        stage_of(&found, "MINUSMA-0002"),
        Some(Mapped::Known(CaseStage::TrialScheduled))
    );
    assert_eq!(
        stage_of(&found, "MINUSMA RP/0004"),
        Some(Mapped::Known(CaseStage::Dismissed))
    );
    assert!(
        matches!(found["MINUSMA-INCONNU"], Lookup::NotKnown),
        "{:?}",
        found["MINUSMA-INCONNU"]
    );
}

#[tokio::test]
async fn single_case_calls_never_exceed_max_concurrency_even_across_batches() {
    #[derive(Clone, Default)]
    struct Gauge {
        now: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
        total: Arc<AtomicUsize>,
    }
    async fn slow_not_found(
        axum::extract::State(g): axum::extract::State<Gauge>,
    ) -> axum::http::StatusCode {
        let now = g.now.fetch_add(1, Ordering::SeqCst) + 1;
        g.max.fetch_max(now, Ordering::SeqCst);
        g.total.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        g.now.fetch_sub(1, Ordering::SeqCst);
        axum::http::StatusCode::NOT_FOUND
    }
    let gauge = Gauge::default();
    let app = axum::Router::new()
        .route("/dossiers/{key}", axum::routing::get(slow_not_found))
        .with_state(gauge.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let text = format!(
        r#"{}
[rest]
base_url = "http://{addr}"
[rest.single]
path = "/dossiers/{{key}}"

[mapping]
key = "/reference_onu"
"#,
        header(
            "rest",
            "batch_size = 4\nmax_concurrency = 2\ntimeout_ms = 10000"
        )
    );
    let (handle, _dir) = connector(&text).await;

    let found = handle.runtime.lookup(&keys("MINUSCA", 12)).await;

    assert_eq!(gauge.total.load(Ordering::SeqCst), 12, "one call per key");
    assert!(
        found.values().all(|l| matches!(l, Lookup::NotKnown)),
        "{found:?}"
    );
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(
        max <= 2,
        "{max} calls were in flight at once with max_concurrency = 2"
    );
}

/// The document a Congolese system answers, sent as written (multi-line, with a fragment).
const DOSSIERS_QUERY: &str = "query Dossiers($refs: [String!]!, $langue: String) {
  dossiers(referencesOnu: $refs, langue: $langue) { ...Etat }
}
fragment Etat on Dossier { referenceOnu numero etape }";

fn graphql_file(uri: &str) -> String {
    format!(
        r#"{}
[graphql]
endpoint = "{uri}/graphql"
query = """
{DOSSIERS_QUERY}"""
keys_variable = "refs"
[graphql.variables]
langue = "fr"

[mapping]
records = "/data/dossiers"
key = "/referenceOnu"
national_reference = "/numero"
stage = "/etape"
{STAGES}"#,
        header("graphql", "")
    )
}

#[tokio::test]
async fn graphql_sends_the_document_verbatim_with_the_keys_in_their_variable() {
    struct Answer;
    impl Respond for Answer {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let body: Value = request.body_json().expect("a JSON body");
            let refs: Vec<String> =
                serde_json::from_value(body["variables"]["refs"].clone()).unwrap_or_default();
            let records: Vec<Value> = refs
                .iter()
                .filter_map(|k| dossier(k, "referenceOnu"))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({ "data": { "dossiers": records } }))
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .respond_with(Answer)
        .mount(&server)
        .await;
    let (handle, _dir) = connector(&graphql_file(&server.uri())).await;
    let asked = vec![
        "MONUSCO-0002".to_string(),
        "MONUSCO-0004".to_string(),
        "MONUSCO-INCONNU".to_string(),
    ];

    let found = handle.runtime.lookup(&asked).await;

    let received = server
        .received_requests()
        .await
        .expect("requests are recorded");
    assert_eq!(received.len(), 1, "one call for three keys");
    let body: Value = received[0].body_json().expect("a JSON body");
    assert_eq!(
        body["query"],
        json!(DOSSIERS_QUERY),
        "the document is sent verbatim"
    );
    assert_eq!(body["variables"], json!({ "refs": asked, "langue": "fr" }));
    assert_eq!(
        stage_of(&found, "MONUSCO-0002"),
        Some(Mapped::Known(CaseStage::TrialScheduled))
    );
    assert_eq!(
        stage_of(&found, "MONUSCO-0004"),
        Some(Mapped::Known(CaseStage::Dismissed))
    );
    assert!(
        matches!(found["MONUSCO-INCONNU"], Lookup::NotKnown),
        "{:?}",
        found["MONUSCO-INCONNU"]
    );
}

#[tokio::test]
async fn graphql_errors_without_data_fail_the_lookup_with_the_first_message() {
    let server = MockServer::start().await;
    let answer = json!({
        "errors": [{ "message": "Accès refusé : jeton expiré" }, { "message": "second problème" }],
        "data": null
    });
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let (handle, _dir) = connector(&graphql_file(&server.uri())).await;

    let found = handle.runtime.lookup(&["MONUSCO-0001".to_string()]).await;

    match &found["MONUSCO-0001"] {
        Lookup::Failed(e) => {
            assert_eq!(e.kind, ConnectorErrorKind::BadResponse);
            assert!(
                e.message.contains("Accès refusé : jeton expiré"),
                "{}",
                e.message
            );
            assert!(
                !e.message.contains("second problème"),
                "only the first error is named: {}",
                e.message
            );
        }
        other => panic!("the lookup should fail, got {other:?}"),
    }
}

#[tokio::test]
async fn graphql_partial_data_with_errors_is_used() {
    let server = MockServer::start().await;
    let answer = json!({
        "errors": [{ "message": "champ accuses indisponible", "path": ["dossiers", 0, "accuses"] }],
        "data": { "dossiers": [dossier("MONUSCO-0001", "referenceOnu")] }
    });
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let (handle, _dir) = connector(&graphql_file(&server.uri())).await;

    let found = handle.runtime.lookup(&["MONUSCO-0001".to_string()]).await;

    assert_eq!(
        stage_of(&found, "MONUSCO-0001"),
        Some(Mapped::Known(CaseStage::UnderInvestigation))
    );
}

/// Loads a folder holding `text` as its only file; returns the rendered errors and each
/// error's (line, key).
fn load_errors(text: &str) -> (String, Vec<(usize, String)>, String) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("mauvais.toml");
    std::fs::write(&file, text).expect("write the connector file");
    match load_dir(dir.path()) {
        Ok(_) => panic!("the file should be refused"),
        Err(ConnectorSetupError::Invalid(files)) => {
            assert_eq!(files.len(), 1);
            assert_eq!(files[0].file, file.display().to_string());
            let located = files[0].iter().map(|e| (e.line, e.key.clone())).collect();
            (files[0].to_string(), located, file.display().to_string())
        }
        Err(other) => panic!("expected invalid-file errors, got {other}"),
    }
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("the needle is in the text")
        + 1
}

const REST_MAPPING: &str = "\n[mapping]\nrecords = \"/dossiers\"\nkey = \"/reference_onu\"\n";

#[test]
fn a_rest_file_with_neither_batch_nor_single_is_refused_at_its_rest_table() {
    let text = format!(
        "{}\n[rest]\nbase_url = \"https://api.justice.gouv.ml/v2\"\n{REST_MAPPING}",
        header("rest", "")
    );

    let (rendered, located, file) = load_errors(&text);

    let line = line_of(&text, "[rest]");
    assert_eq!(located, vec![(line, "rest".to_string())], "{rendered}");
    assert!(
        rendered.contains(&format!("{file}:{line}:1: rest: ")),
        "{rendered}"
    );
    assert!(
        rendered.contains("[rest.batch]") && rendered.contains("[rest.single]"),
        "{rendered}"
    );
}

#[test]
fn a_rest_post_body_without_the_keys_placeholder_is_refused_at_its_line() {
    let text = format!(
        "{}\n[rest]\nbase_url = \"https://api.justice.gouv.ml/v2\"\n[rest.batch]\nmethod = \"POST\"\npath = \"/dossiers/recherche\"\nbody = '{{\"references_onu\": [], \"inclure\": [\"accuses\"]}}'\n{REST_MAPPING}",
        header("rest", "")
    );

    let (rendered, located, file) = load_errors(&text);

    let line = line_of(&text, "body =");
    assert_eq!(
        located,
        vec![(line, "rest.batch.body".to_string())],
        "{rendered}"
    );
    assert!(rendered.contains(&format!("{file}:{line}:")), "{rendered}");
    assert!(
        rendered.contains("rest.batch.body: must contain \"$keys\""),
        "{rendered}"
    );
}

#[test]
fn a_graphql_mutation_is_refused_because_connectors_only_read() {
    let text = format!(
        "{}\n[graphql]\nendpoint = \"https://justice.gouv.cd/graphql\"\nquery = \"mutation Clore($refs: [String!]!) {{ clore(refs: $refs) {{ ok }} }}\"\nkeys_variable = \"refs\"\n\n[mapping]\nrecords = \"/data/clore\"\nkey = \"/ref\"\n",
        header("graphql", "")
    );

    let (rendered, located, file) = load_errors(&text);

    let line = line_of(&text, "query = ");
    assert_eq!(
        located,
        vec![(line, "graphql.query".to_string())],
        "{rendered}"
    );
    assert!(rendered.contains(&format!("{file}:{line}:")), "{rendered}");
    assert!(
        rendered.contains("graphql.query: is a mutation"),
        "{rendered}"
    );
}

#[test]
fn an_unknown_key_in_a_rest_table_is_reported_by_the_loader() {
    let text = format!(
        "{}\n[rest]\nbase_url = \"https://api.justice.gouv.ml/v2\"\n[rest.single]\npath = \"/dossiers/{{key}}\"\nmethode = \"GET\"\n{REST_MAPPING}",
        header("rest", "")
    );

    let (rendered, located, _) = load_errors(&text);

    assert_eq!(
        located,
        vec![(line_of(&text, "methode"), "rest.single.methode".to_string())],
        "{rendered}"
    );
}

// ---------- markings of single fields and of defendants ----------

/// A national record marking its court "sous scellés" (SEALED in the bundled policy), its
/// charges "confidentiel", one defendant "scellé" and another "confidentiel".
fn marked_dossier(key: &str) -> Value {
    json!({
        "reference_onu": key, "numero": "RP-7/2021", "etape": "information judiciaire",
        "diffusion": "restreinte",
        "juridiction": { "nom": "PLANTED-COURT Tribunal militaire", "diffusion": "sous scellés" },
        "chefs": ["assassinat"], "diffusion_chefs": "Confidentiel",
        "accuses": [
            { "nom": "PLANTED-WITNESS Temoin protege", "diffusion": "Scellé" },
            { "nom": "Accusé 2", "diffusion": "CONFIDENTIEL" },
            { "nom": "Accusé 3" }
        ]
    })
}

/// The `[mapping]` of both kinds below, with its markings.
const MARKED_MAPPING: &str = r#"
national_reference = "/numero"
stage = "/etape"
court_name = "/juridiction/nom"
charges = "/chefs"
marking = "/diffusion"
defendants = { list = "/accuses", name = "/nom", marking = "/diffusion" }

[mapping.field_markings]
court = "/juridiction/diffusion"
charges = "/diffusion_chefs"
"#;

/// What both kinds must make of [`marked_dossier`].
#[track_caller]
fn assert_marked(found: &HashMap<String, Lookup>, key: &str) {
    let Some(Lookup::Found(served)) = found.get(key) else {
        panic!("{key} should be found, got {found:?}")
    };
    let p = &served.proceedings;
    assert!(p.sealed_parts && !p.sealed, "{p:?}");
    assert_eq!(p.marking.as_deref(), Some("restreinte"));
    assert_eq!(p.court, None, "the sealed court is emptied");
    assert_eq!(p.charges, ["assassinat"]);
    assert_eq!(
        p.field_markings,
        [("charges".to_string(), "Confidentiel".to_string())].into(),
        "a kept marking is given as the source wrote it"
    );
    let defendants: Vec<(Option<&str>, Option<&str>)> = p
        .defendants
        .iter()
        .map(|d| (d.name.as_deref(), d.marking.as_deref()))
        .collect();
    assert_eq!(
        defendants,
        [
            (Some("Accusé 2"), Some("CONFIDENTIEL")),
            (Some("Accusé 3"), None)
        ],
        "the sealed defendant is removed"
    );
    assert!(!format!("{p:?}").contains("PLANTED"), "{p:?}");
}

#[tokio::test]
async fn a_rest_mapping_reads_markings_of_fields_and_defendants_and_drops_the_sealed_ones() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/dossiers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "dossiers": [marked_dossier("MINUSMA-0001")] })),
        )
        .mount(&server)
        .await;
    let text = format!(
        "{}\n[rest]\nbase_url = \"{}\"\n[rest.batch]\nmethod = \"GET\"\npath = \"/dossiers\"\nquery = {{ refs = \"$keys\" }}\n\n[mapping]\nrecords = \"/dossiers\"\nkey = \"/reference_onu\"\n{MARKED_MAPPING}{STAGES}",
        header("rest", ""),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    let found = handle.runtime.lookup(&["MINUSMA-0001".to_string()]).await;
    assert_marked(&found, "MINUSMA-0001");
}

#[tokio::test]
async fn a_graphql_mapping_reads_markings_of_fields_and_defendants_and_drops_the_sealed_ones() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "data": { "dossiers": [marked_dossier("MONUSCO-0001")] } })),
        )
        .mount(&server)
        .await;
    let text = format!(
        "{}\n[graphql]\nendpoint = \"{}/graphql\"\nquery = \"query D($refs: [String!]!) {{ dossiers(refs: $refs) {{ reference_onu }} }}\"\nkeys_variable = \"refs\"\n\n[mapping]\nrecords = \"/data/dossiers\"\nkey = \"/reference_onu\"\n{MARKED_MAPPING}{STAGES}",
        header("graphql", ""),
        server.uri()
    );
    let (handle, _dir) = connector(&text).await;
    let found = handle.runtime.lookup(&["MONUSCO-0001".to_string()]).await;
    assert_marked(&found, "MONUSCO-0001");
}

#[test]
fn a_field_marking_for_a_field_casegraph_does_not_have_is_refused_at_its_line() {
    let text = format!(
        "{}\n[rest]\nbase_url = \"https://api.justice.gouv.ml\"\n[rest.single]\npath = \"/dossiers/{{key}}\"\n\n[mapping]\nkey = \"/reference_onu\"\n\n[mapping.field_markings]\nvictimes = \"/diffusion_victimes\"\n",
        header("rest", "")
    );
    let (rendered, located, _) = load_errors(&text);
    assert_eq!(
        located,
        vec![(
            line_of(&text, "victimes ="),
            "mapping.field_markings.victimes".to_string()
        )],
        "{rendered}"
    );
}
