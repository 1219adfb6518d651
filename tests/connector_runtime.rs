//! The connector runtime as analysts and operators meet it: national proceedings joined into UN
//! cases through the real gateway, against real HTTP upstreams on 127.0.0.1 port 0 (the protocol
//! reference server, wiremock for the failure modes). What an analyst sees is checked over HTTP;
//! how many calls reach a host-state system is checked on the upstream itself, or directly on a
//! `ConnectorRuntime` built from a connector file.

mod common;

use casegraph::connectors::model::{CaseStage, FieldMask, FreshnessState, Mapped, Proceedings};
use casegraph::connectors::protocol::reference::ReferenceServer;
use casegraph::connectors::{self, ConnectorErrorKind, ConnectorHandle, HealthState, Lookup};
use common::{try_spawn, AppOptions, TestApp};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_casegraph");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A MINUSMA case in Mali in the bundled UN data (2 victims).
const MLI_CASE: &str = "MINUSMA-20230609";
/// A MINUSCA case in the Central African Republic in the bundled UN data.
const CAF_CASE: &str = "MINUSCA-20250211";

// ---------- upstreams ----------

/// Serves `router` on 127.0.0.1 port 0 for the rest of the test.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    serve_on(listener, router)
}

fn serve_on(listener: tokio::net::TcpListener, router: axum::Router) -> SocketAddr {
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("upstream serves")
    });
    addr
}

/// Starts a protocol reference server answering from `records`; returns it and its base URL.
async fn reference_server(records: Vec<Value>, token: Option<&str>) -> (ReferenceServer, String) {
    let server = ReferenceServer::new(records, token.map(str::to_string));
    let addr = serve(server.router()).await;
    (server, format!("http://{addr}"))
}

/// A canonical protocol record for the UN case `key`, at `stage`.
fn record(key: &str, stage: &str) -> Value {
    json!({
        "key": key,
        "national_reference": format!("RP-{key}"),
        "authority": "Pôle judiciaire spécialisé",
        "stage": stage,
        "stage_history": [
            { "stage": "REPORTED", "date": "2023-06-10" },
            { "stage": stage, "date": "2024-02-01" }
        ],
        "court": { "name": "Tribunal de grande instance", "type": "SPECIAL" },
        "charges": ["Assassinat"],
        "defendants": [],
        "next_hearing": "2025-06-02",
        "updated_at": "2024-11-02T10:00:00Z",
        "marking": "PUBLIC"
    })
}

/// The body a protocol system answers a lookup with.
fn lookup_body(records: Vec<Value>) -> Value {
    json!({ "records": records })
}

/// A wiremock upstream whose `POST /lookup` answers `template` every time.
async fn wiremock_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/lookup"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// A wiremock upstream whose `POST /lookup` answers `first` `times` times, then `then`.
async fn wiremock_sequence(
    first: ResponseTemplate,
    times: u64,
    then: ResponseTemplate,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/lookup"))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/lookup"))
        .respond_with(then)
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

async fn requests_to(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .len()
}

/// A base URL nothing listens on: a port that was just free.
fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

// ---------- connector files and gateways ----------

/// A `kind = "protocol"` connector file for `host_state`, with `runtime` lines under
/// `[runtime]` and an optional `[auth]` table.
fn protocol_file(host_state: &str, base_url: &str, runtime: &str, auth: &str) -> String {
    format!(
        "name = \"Test system ({host_state})\"\nkind = \"protocol\"\nhost_states = [\"{host_state}\"]\n\
         match_by = \"un_reference\"\n\n[runtime]\n{runtime}\n\n{auth}\n\n[protocol]\nbase_url = \"{base_url}\"\n"
    )
}

/// A temporary connectors folder holding `files` (id → content).
fn connectors_dir(files: &[(impl AsRef<str>, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (id, text) in files {
        let file = dir.path().join(format!("{}.toml", id.as_ref()));
        std::fs::write(file, text).expect("write connector file");
    }
    dir
}

thread_local! {
    /// The connectors folder of the gateway being started on this thread: `AppOptions::configure`
    /// is a plain `fn`, so it cannot capture the temporary folder of its test. `try_spawn` calls it
    /// on the thread that runs the test's future.
    static CONNECTORS_DIR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The real gateway over the bundled UN data, with the connectors of `dir`.
async fn gateway(dir: &Path) -> TestApp {
    CONNECTORS_DIR.with(|d| *d.borrow_mut() = dir.display().to_string());
    try_spawn(AppOptions {
        configure: |c| {
            c.connectors.dir = CONNECTORS_DIR.with(|d| d.borrow().clone());
            // The demo simulators listen on fixed ports; these tests bring their own upstreams.
            c.simulators.enabled = false;
        },
        ..AppOptions::default()
    })
    .await
    .expect("SQLite is always available")
}

/// Builds the connector `id` of `dir` as the gateway would.
async fn built(dir: &Path, id: &str) -> ConnectorHandle {
    let files = connectors::load_dir(dir).expect("the connector files load");
    let loaded = files
        .iter()
        .find(|f| f.id == id)
        .expect("the connector is in the folder");
    connectors::build(loaded, policy_sealing())
        .await
        .expect("the connector builds")
}

/// The SEALED rule of the bundled policy, as the gateway builds its connectors with.
fn policy_sealing() -> connectors::Sealing {
    let policy = casegraph::load_policy(&Default::default()).expect("the bundled policy loads");
    casegraph::sealing_of(&policy)
}

// ---------- queries and assertions ----------

/// A failing Mali case next to a healthy Central African one.
const TWO_CASES: &str = r#"
query ($mali: String!, $car: String!) {
  case(reference: $mali) {
    reference hostState victimCount
    nationalProceedings { source stage nationalReference freshness { state ageSeconds } }
  }
  other: case(reference: $car) {
    reference hostState
    nationalProceedings { source stage freshness { state } }
  }
}"#;

const ONE_CASE: &str = r#"
query ($ref: String!) {
  case(reference: $ref) {
    reference hostState
    nationalProceedings { source stage nationalReference freshness { state ageSeconds } }
  }
}"#;

const HEALTH: &str = r#"
{ connectors { id state calls failures cacheHits staleServed lastSuccessAt
               lastError { code message } latency { p50Ms p99Ms } } }"#;

async fn two_cases(app: &TestApp) -> (u16, Value) {
    app.gql(
        &app.analyst(),
        TWO_CASES,
        json!({ "mali": MLI_CASE, "car": CAF_CASE }),
    )
    .await
}

async fn one_case(app: &TestApp, reference: &str) -> (u16, Value) {
    app.gql(&app.analyst(), ONE_CASE, json!({ "ref": reference }))
        .await
}

/// The health of connector `id` as `connectors` reports it.
async fn health_of(app: &TestApp, id: &str) -> Value {
    let data = app.data(HEALTH, json!({})).await;
    data["connectors"]
        .as_array()
        .expect("a list of connectors")
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no connector {id} in {data}"))
}

/// The Mali case is answered in full but for its national proceedings, which are `[null]`
/// with exactly one error of `code` at that entry; the Central African case is intact.
fn assert_partial_failure(status: u16, body: &Value, code: &str) {
    assert_eq!(
        status, 200,
        "a failing connector never fails the request: {body}"
    );
    let case = &body["data"]["case"];
    assert_eq!(case["reference"], MLI_CASE, "{body}");
    assert_eq!(case["hostState"], "MLI", "{body}");
    assert_eq!(case["victimCount"], 2, "{body}");
    assert_eq!(case["nationalProceedings"], json!([null]), "{body}");
    let errors = body["errors"].as_array().expect("an error list");
    assert_eq!(errors.len(), 1, "exactly one error: {body}");
    let error = &errors[0];
    assert_eq!(error["extensions"]["code"], code, "{body}");
    let path = error["path"].as_array().expect("the error has a path");
    assert!(
        path.ends_with(&[json!("nationalProceedings"), json!(0)]),
        "the error is at the failing entry: {body}"
    );
    assert_eq!(path[0], "case", "{body}");
    let other = &body["data"]["other"];
    assert_eq!(other["reference"], CAF_CASE, "{body}");
    let intact = &other["nationalProceedings"];
    assert_eq!(intact.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        intact[0]["source"], "caf-healthy",
        "the other system still answers: {body}"
    );
    assert_eq!(intact[0]["stage"], "UNDER_INVESTIGATION", "{body}");
    assert!(
        ["LIVE", "CACHED"].contains(&intact[0]["freshness"]["state"].as_str().unwrap_or_default()),
        "{body}"
    );
}

/// Starts a gateway with `mli-failing` (Mali) on `failing_url` and `caf-healthy` (Central
/// African Republic) on a reference server, asks for one case of each, and checks the answer.
async fn assert_failure_gives(failing_url: &str, runtime: &str, auth: &str, code: &str) -> TestApp {
    let (_healthy, healthy_url) =
        reference_server(vec![record(CAF_CASE, "UNDER_INVESTIGATION")], None).await;
    let dir = connectors_dir(&[
        (
            "mli-failing",
            protocol_file("MLI", failing_url, runtime, auth),
        ),
        ("caf-healthy", protocol_file("CAF", &healthy_url, "", "")),
    ]);
    let app = gateway(dir.path()).await;
    let (status, body) = two_cases(&app).await;
    assert_partial_failure(status, &body, code);
    app
}

// ---------- 1. batching ----------

/// Cases of a page by host state, in page order.
async fn page_by_host_state(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let data = app
        .data(
            r#"{ cases(first: 100, filter: {hostStates: ["MLI", "CAF", "COD"]}) { nodes { reference hostState } } }"#,
            json!({}),
        )
        .await;
    let mut by_state: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in data["cases"]["nodes"].as_array().expect("nodes") {
        by_state
            .entry(node["hostState"].as_str().expect("host state").to_string())
            .or_default()
            .push(node["reference"].as_str().expect("reference").to_string());
    }
    by_state
}

const PAGE_WITH_PROCEEDINGS: &str = r#"
{ cases(first: 100, filter: {hostStates: ["MLI", "CAF", "COD"]}) {
    nodes { reference hostState nationalProceedings { source stage } } } }"#;

#[tokio::test]
async fn a_page_of_100_cases_across_three_host_states_makes_one_call_per_connector_or_one_per_batch(
) {
    // Bind the three upstreams first: the connector files need their addresses, and the
    // records need the page's references, which only the gateway knows.
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        );
    }
    let states = ["CAF", "COD", "MLI"];
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().expect("addr")))
        .collect();
    let files = |batch: usize| -> Vec<(String, String)> {
        states
            .iter()
            .zip(&urls)
            .map(|(s, url)| {
                (
                    s.to_ascii_lowercase(),
                    protocol_file(s, url, &format!("batch_size = {batch}"), ""),
                )
            })
            .collect()
    };
    let dir = connectors_dir(&files(100));
    let app = gateway(dir.path()).await;

    let page = page_by_host_state(&app).await;
    assert_eq!(
        page.values().map(Vec::len).sum::<usize>(),
        100,
        "the bundled data has 100 such cases: {page:?}"
    );
    for s in states {
        assert!(
            page[s].len() > 10,
            "{s} needs more than one batch of 10 for this test: {page:?}"
        );
    }
    let mut servers = Vec::new();
    for (listener, s) in listeners.into_iter().zip(states) {
        let records = page[s].iter().map(|r| record(r, "CHARGED")).collect();
        let server = ReferenceServer::new(records, None);
        serve_on(listener, server.router());
        servers.push(server);
    }

    let data = app.data(PAGE_WITH_PROCEEDINGS, json!({})).await;
    for node in data["cases"]["nodes"].as_array().expect("nodes") {
        let source = node["hostState"]
            .as_str()
            .expect("host state")
            .to_ascii_lowercase();
        assert_eq!(
            node["nationalProceedings"],
            json!([{ "source": source, "stage": "CHARGED" }]),
            "every case is joined from its host state's system: {node}"
        );
    }
    for (server, s) in servers.iter().zip(states) {
        let received = server.received();
        assert_eq!(
            received.len(),
            1,
            "{s}: one call for the whole page: {received:?}"
        );
        let asked: BTreeSet<&String> = received[0].keys.iter().collect();
        let expected: BTreeSet<&String> = page[s].iter().collect();
        assert_eq!(
            asked, expected,
            "{s}: every case of the page in that one call"
        );
        assert_eq!(
            received[0].keys.len(),
            page[s].len(),
            "{s}: no key asked twice"
        );
    }
    drop(app);

    // The same page with batches of 10: ceil(n / 10) calls per system, none over 10 keys.
    let dir = connectors_dir(&files(10));
    let app = gateway(dir.path()).await;
    let before: Vec<usize> = servers.iter().map(|s| s.received().len()).collect();
    app.data(PAGE_WITH_PROCEEDINGS, json!({})).await;
    for ((server, s), before) in servers.iter().zip(states).zip(before) {
        let calls = &server.received()[before..];
        let n = page[s].len();
        assert_eq!(
            calls.len(),
            n.div_ceil(10),
            "{s}: {n} cases in batches of 10: {calls:?}"
        );
        assert!(
            calls.iter().all(|c| c.keys.len() <= 10),
            "{s}: a batch over 10 keys: {calls:?}"
        );
        let asked: BTreeSet<&String> = calls.iter().flat_map(|c| &c.keys).collect();
        assert_eq!(
            asked,
            page[s].iter().collect(),
            "{s}: every case asked once"
        );
        assert_eq!(
            calls.iter().map(|c| c.keys.len()).sum::<usize>(),
            n,
            "{s}: no key asked twice"
        );
    }
}

// ---------- 2. and 3. cache ----------

#[tokio::test]
async fn a_second_identical_request_is_served_from_the_cache_without_calling_the_system() {
    let (server, url) = reference_server(vec![record(MLI_CASE, "CHARGED")], None).await;
    let dir = connectors_dir(&[("mli-cached", protocol_file("MLI", &url, "", ""))]);
    let app = gateway(dir.path()).await;

    let (status, first) = one_case(&app, MLI_CASE).await;
    assert_eq!(status, 200, "{first}");
    assert!(first.get("errors").is_none(), "{first}");
    let proceedings = &first["data"]["case"]["nationalProceedings"][0];
    assert_eq!(proceedings["source"], "mli-cached", "{first}");
    assert_eq!(proceedings["stage"], "CHARGED", "{first}");
    assert_eq!(
        proceedings["nationalReference"],
        format!("RP-{MLI_CASE}"),
        "{first}"
    );
    assert_eq!(proceedings["freshness"]["state"], "LIVE", "{first}");
    assert_eq!(server.received().len(), 1);

    let (status, second) = one_case(&app, MLI_CASE).await;
    assert_eq!(status, 200, "{second}");
    assert!(second.get("errors").is_none(), "{second}");
    assert_eq!(
        second["data"]["case"]["nationalProceedings"][0]["freshness"]["state"], "CACHED",
        "{second}"
    );
    assert_eq!(
        second["data"]["case"]["nationalProceedings"][0]["stage"], "CHARGED",
        "{second}"
    );
    assert_eq!(
        server.received().len(),
        1,
        "a cache hit makes no upstream call"
    );
    let health = health_of(&app, "mli-cached").await;
    assert_eq!(health["calls"], 1, "{health}");
    assert_eq!(health["cacheHits"], 1, "{health}");
}

#[tokio::test]
async fn an_expired_record_is_served_stale_without_error_when_the_system_then_fails() {
    let upstream = wiremock_sequence(
        ResponseTemplate::new(200)
            .set_body_json(lookup_body(vec![record(MLI_CASE, "TRIAL_ONGOING")])),
        1,
        ResponseTemplate::new(503),
    )
    .await;
    let dir = connectors_dir(&[(
        "mli-stale",
        protocol_file(
            "MLI",
            &upstream.uri(),
            "cache_ttl_secs = 1\nretries = 0",
            "",
        ),
    )]);
    let app = gateway(dir.path()).await;

    let (_, first) = one_case(&app, MLI_CASE).await;
    assert!(first.get("errors").is_none(), "{first}");
    assert_eq!(
        first["data"]["case"]["nationalProceedings"][0]["freshness"]["state"], "LIVE",
        "{first}"
    );

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, second) = one_case(&app, MLI_CASE).await;
    assert_eq!(status, 200, "{second}");
    assert!(
        second.get("errors").is_none(),
        "stale data is served without an error: {second}"
    );
    let proceedings = &second["data"]["case"]["nationalProceedings"][0];
    assert_eq!(proceedings["stage"], "TRIAL_ONGOING", "{second}");
    assert_eq!(proceedings["freshness"]["state"], "STALE", "{second}");
    assert!(
        proceedings["freshness"]["ageSeconds"]
            .as_i64()
            .expect("an age")
            >= 1,
        "{second}"
    );
    assert_eq!(
        requests_to(&upstream).await,
        2,
        "the expired record was asked for again"
    );
    let health = health_of(&app, "mli-stale").await;
    assert_eq!(health["staleServed"], 1, "{health}");
    assert_eq!(health["state"], "DEGRADED", "{health}");
}

// ---------- 4. each failure, typed, at its path ----------

#[tokio::test]
async fn a_system_slower_than_its_timeout_gives_connector_timeout_and_the_rest_of_the_answer() {
    let upstream = wiremock_answering(
        ResponseTemplate::new(200)
            .set_body_json(lookup_body(vec![record(MLI_CASE, "CHARGED")]))
            .set_delay(Duration::from_millis(3_000)),
    )
    .await;
    assert_failure_gives(
        &upstream.uri(),
        "timeout_ms = 300\nretries = 0",
        "",
        "CONNECTOR_TIMEOUT",
    )
    .await;
}

#[tokio::test]
async fn a_5xx_gives_connector_unavailable_and_the_rest_of_the_answer() {
    let upstream = wiremock_answering(ResponseTemplate::new(500)).await;
    assert_failure_gives(&upstream.uri(), "retries = 0", "", "CONNECTOR_UNAVAILABLE").await;
}

#[tokio::test]
async fn a_refused_connection_gives_connector_unavailable_and_the_rest_of_the_answer() {
    assert_failure_gives(&refused_url(), "retries = 0", "", "CONNECTOR_UNAVAILABLE").await;
}

#[tokio::test]
async fn an_answer_that_is_not_json_gives_connector_bad_response_and_the_rest_of_the_answer() {
    let upstream = wiremock_answering(
        ResponseTemplate::new(200)
            .set_body_raw("<html><body>Maintenance</body></html>", "text/html"),
    )
    .await;
    assert_failure_gives(&upstream.uri(), "retries = 0", "", "CONNECTOR_BAD_RESPONSE").await;
}

#[tokio::test]
async fn an_answer_over_max_response_bytes_gives_connector_bad_response_and_the_rest_of_the_answer()
{
    let mut oversized = lookup_body(vec![record(MLI_CASE, "CHARGED")]);
    oversized["padding"] = json!("x".repeat(4_096));
    let upstream = wiremock_answering(ResponseTemplate::new(200).set_body_json(oversized)).await;
    assert_failure_gives(
        &upstream.uri(),
        "max_response_bytes = 1024\nretries = 0",
        "",
        "CONNECTOR_BAD_RESPONSE",
    )
    .await;
}

#[tokio::test]
async fn a_rejected_bearer_token_gives_connector_auth_failed_and_the_rest_of_the_answer() {
    let (server, url) =
        reference_server(vec![record(MLI_CASE, "CHARGED")], Some("the-current-token")).await;
    let auth = "[auth]\nkind = \"bearer\"\ntoken = \"an-expired-token\"";
    assert_failure_gives(&url, "retries = 0", auth, "CONNECTOR_AUTH_FAILED").await;
    assert!(
        server.received().is_empty(),
        "the reference server refused the lookup"
    );
}

#[tokio::test]
async fn a_slow_system_that_answers_within_its_timeout_is_served_live() {
    let upstream = wiremock_answering(
        ResponseTemplate::new(200)
            .set_body_json(lookup_body(vec![record(MLI_CASE, "JUDGMENT")]))
            .set_delay(Duration::from_millis(400)),
    )
    .await;
    let (_healthy, healthy_url) =
        reference_server(vec![record(CAF_CASE, "UNDER_INVESTIGATION")], None).await;
    let dir = connectors_dir(&[
        (
            "mli-slow",
            protocol_file("MLI", &upstream.uri(), "timeout_ms = 3000\nretries = 0", ""),
        ),
        ("caf-healthy", protocol_file("CAF", &healthy_url, "", "")),
    ]);
    let app = gateway(dir.path()).await;
    let (status, body) = two_cases(&app).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let proceedings = &body["data"]["case"]["nationalProceedings"][0];
    assert_eq!(proceedings["source"], "mli-slow", "{body}");
    assert_eq!(proceedings["stage"], "JUDGMENT", "{body}");
    assert_eq!(proceedings["freshness"]["state"], "LIVE", "{body}");
    assert_eq!(
        body["data"]["other"]["nationalProceedings"][0]["stage"], "UNDER_INVESTIGATION",
        "{body}"
    );
}

// ---------- 5. retries ----------

fn mli_record_found(found: &std::collections::HashMap<String, Lookup>) -> Result<(), String> {
    match found.get(MLI_CASE) {
        Some(Lookup::Found(served)) => {
            if served.proceedings.stage == Some(Mapped::Known(CaseStage::Charged))
                && served.freshness == FreshnessState::Live
            {
                Ok(())
            } else {
                Err(format!("unexpected record: {served:?}"))
            }
        }
        other => Err(format!("not found: {other:?}")),
    }
}

#[tokio::test]
async fn a_503_then_200_succeeds_with_one_retry_after_two_upstream_requests() {
    let upstream = wiremock_sequence(
        ResponseTemplate::new(503),
        1,
        ResponseTemplate::new(200).set_body_json(lookup_body(vec![record(MLI_CASE, "CHARGED")])),
    )
    .await;
    let dir = connectors_dir(&[(
        "mli-retry",
        protocol_file(
            "MLI",
            &upstream.uri(),
            "retries = 1\nretry_backoff_ms = 10",
            "",
        ),
    )]);
    let handle = built(dir.path(), "mli-retry").await;

    let found = handle.runtime.lookup(&[MLI_CASE.to_string()]).await;
    mli_record_found(&found).expect("the retry succeeds");
    assert_eq!(
        requests_to(&upstream).await,
        2,
        "the failed request and its retry"
    );
    let health = handle.runtime.health();
    assert_eq!(
        health.calls, 2,
        "both attempts are upstream calls: {health:?}"
    );
    assert_eq!(
        health.failures, 0,
        "a call that succeeded on retry is no failure: {health:?}"
    );
    assert_eq!(health.state, HealthState::Up, "{health:?}");
}

#[tokio::test]
async fn a_503_then_200_fails_as_unavailable_without_retries() {
    let upstream = wiremock_sequence(
        ResponseTemplate::new(503),
        1,
        ResponseTemplate::new(200).set_body_json(lookup_body(vec![record(MLI_CASE, "CHARGED")])),
    )
    .await;
    let dir = connectors_dir(&[(
        "mli-no-retry",
        protocol_file(
            "MLI",
            &upstream.uri(),
            "retries = 0\nretry_backoff_ms = 10",
            "",
        ),
    )]);
    let handle = built(dir.path(), "mli-no-retry").await;

    let found = handle.runtime.lookup(&[MLI_CASE.to_string()]).await;
    match found.get(MLI_CASE) {
        Some(Lookup::Failed(e)) => assert_eq!(e.kind, ConnectorErrorKind::Unavailable, "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(requests_to(&upstream).await, 1, "no retry");
    let health = handle.runtime.health();
    assert_eq!((health.calls, health.failures), (1, 1), "{health:?}");
}

#[tokio::test]
async fn a_bad_response_is_not_retried() {
    let upstream =
        wiremock_answering(ResponseTemplate::new(200).set_body_raw("not json", "text/plain")).await;
    let dir = connectors_dir(&[(
        "mli-garbage",
        protocol_file(
            "MLI",
            &upstream.uri(),
            "retries = 3\nretry_backoff_ms = 10",
            "",
        ),
    )]);
    let handle = built(dir.path(), "mli-garbage").await;
    let found = handle.runtime.lookup(&[MLI_CASE.to_string()]).await;
    match found.get(MLI_CASE) {
        Some(Lookup::Failed(e)) => assert_eq!(e.kind, ConnectorErrorKind::BadResponse, "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(
        requests_to(&upstream).await,
        1,
        "retrying cannot fix a malformed answer"
    );
}

// ---------- 6. and 7. circuit breaker and health ----------

#[tokio::test]
async fn after_three_failures_the_circuit_opens_calls_nothing_then_one_probe_closes_it() {
    let upstream = wiremock_sequence(
        ResponseTemplate::new(500),
        3,
        ResponseTemplate::new(200).set_body_json(lookup_body(vec![record(MLI_CASE, "CHARGED")])),
    )
    .await;
    let runtime = "retries = 0\ncircuit_failure_threshold = 3\ncircuit_open_secs = 1";
    let (_healthy, healthy_url) =
        reference_server(vec![record(CAF_CASE, "UNDER_INVESTIGATION")], None).await;
    let dir = connectors_dir(&[
        (
            "mli-failing",
            protocol_file("MLI", &upstream.uri(), runtime, ""),
        ),
        ("caf-healthy", protocol_file("CAF", &healthy_url, "", "")),
    ]);
    let app = gateway(dir.path()).await;

    for attempt in 1..=3 {
        let (status, body) = two_cases(&app).await;
        assert_partial_failure(status, &body, "CONNECTOR_UNAVAILABLE");
        assert_eq!(requests_to(&upstream).await, attempt);
    }
    let health = health_of(&app, "mli-failing").await;
    assert_eq!(health["state"], "CIRCUIT_OPEN", "{health}");
    assert_eq!(health_of(&app, "caf-healthy").await["state"], "UP");

    let (status, body) = two_cases(&app).await;
    assert_partial_failure(status, &body, "CONNECTOR_CIRCUIT_OPEN");
    assert_eq!(
        requests_to(&upstream).await,
        3,
        "an open circuit sends nothing upstream"
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = one_case(&app, MLI_CASE).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "the probe succeeds: {body}");
    let proceedings = &body["data"]["case"]["nationalProceedings"][0];
    assert_eq!(proceedings["stage"], "CHARGED", "{body}");
    assert_eq!(proceedings["freshness"]["state"], "LIVE", "{body}");
    assert_eq!(requests_to(&upstream).await, 4, "one probe call");
    let health = health_of(&app, "mli-failing").await;
    assert_eq!(health["state"], "UP", "{health}");
    assert_eq!(health["calls"], 4, "{health}");
    assert_eq!(health["failures"], 3, "{health}");
    assert_eq!(
        health["lastError"]["code"], "CONNECTOR_UNAVAILABLE",
        "{health}"
    );
    assert!(health["lastSuccessAt"].is_string(), "{health}");
}

#[tokio::test]
async fn connector_health_and_metrics_report_calls_failures_last_error_and_latency() {
    let upstream = wiremock_answering(ResponseTemplate::new(500)).await;
    let app =
        assert_failure_gives(&upstream.uri(), "retries = 0", "", "CONNECTOR_UNAVAILABLE").await;

    let healthy = health_of(&app, "caf-healthy").await;
    assert_eq!(healthy["state"], "UP", "{healthy}");
    assert_eq!(healthy["calls"], 1, "{healthy}");
    assert_eq!(healthy["failures"], 0, "{healthy}");
    assert!(healthy["lastSuccessAt"].is_string(), "{healthy}");
    assert!(healthy["lastError"].is_null(), "{healthy}");
    let p50 = healthy["latency"]["p50Ms"]
        .as_f64()
        .expect("a median latency");
    let p99 = healthy["latency"]["p99Ms"].as_f64().expect("a p99 latency");
    assert!(p50 > 0.0 && p99 >= p50, "{healthy}");

    let failing = health_of(&app, "mli-failing").await;
    assert_eq!(failing["state"], "DEGRADED", "{failing}");
    assert_eq!(failing["calls"], 1, "{failing}");
    assert_eq!(failing["failures"], 1, "{failing}");
    assert!(failing["lastSuccessAt"].is_null(), "{failing}");
    assert_eq!(
        failing["lastError"]["code"], "CONNECTOR_UNAVAILABLE",
        "{failing}"
    );
    let message = failing["lastError"]["message"].as_str().expect("a message");
    assert!(
        message.contains("mli-failing") && message.contains("500"),
        "{message}"
    );

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("casegraph_connector_calls_total{connector=\"caf-healthy\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("casegraph_connector_calls_total{connector=\"mli-failing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("casegraph_connector_failures_total{connector=\"mli-failing\"} 1"),
        "{metrics}"
    );
}

// ---------- 8. secrets never logged ----------

const SECRET: &str = "S3cret-Bearer-Token-7f4c9e2a";

/// A gateway configuration in `dir` with its store, dev key and connectors folder there.
fn gateway_config(dir: &Path, connectors: &Path) -> PathBuf {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 1\n\n[store]\nurl = \"sqlite://{store}\"\n\n\
         [auth.dev_issuer]\nenabled = true\nkey_file = \"{key}\"\n\n[connectors]\ndir = \"{connectors}\"\n\n[simulators]\nenabled = false\n",
        store = dir.join("cases.db").display(),
        key = dir.join("dev-key.pem").display(),
        connectors = connectors.display(),
    );
    let path = dir.join("casegraph.toml");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// `casegraph args…` from the repository root, without the variables CaseGraph reads from the
/// developer's shell, plus `env`.
fn casegraph_std(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .current_dir(ROOT)
        .env_remove("CASEGRAPH_STORE_URL")
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// [`casegraph_std`], run without blocking the upstreams this test serves.
fn casegraph(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(casegraph_std(args, env));
    command.kill_on_drop(true);
    command
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A child process that is stopped when the test ends, even when it fails.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_from_the_environment_never_appears_in_logs_or_check_config() {
    let (accepting, accepting_url) =
        reference_server(vec![record(CAF_CASE, "CHARGED")], Some(SECRET)).await;
    let (refusing, refusing_url) =
        reference_server(vec![record(MLI_CASE, "CHARGED")], Some("a-rotated-token")).await;
    let auth = "[auth]\nkind = \"bearer\"\ntoken = \"${env.SECRET_TOKEN_X}\"";
    let tmp = tempfile::tempdir().expect("temp dir");
    let folder = tmp.path().join("connectors");
    std::fs::create_dir(&folder).expect("connectors folder");
    std::fs::write(
        folder.join("mli-refused.toml"),
        protocol_file("MLI", &refusing_url, "retries = 0", auth),
    )
    .expect("write");
    std::fs::write(
        folder.join("caf-accepted.toml"),
        protocol_file("CAF", &accepting_url, "", auth),
    )
    .expect("write");
    let config = gateway_config(tmp.path(), &folder);
    let config = config.to_str().expect("UTF-8 path");
    let env = [("SECRET_TOKEN_X", SECRET), ("RUST_LOG", "debug")];

    let checked = casegraph(&["check-config", "--config", config], &env)
        .output()
        .await
        .expect("run check-config");
    let report = text_of(&checked);
    assert!(checked.status.success(), "{report}");
    assert!(
        report.contains("mli-refused") && report.contains("caf-accepted"),
        "{report}"
    );
    assert!(
        !report.contains(SECRET),
        "check-config shows the secret:\n{report}"
    );

    let mut child = Stopped(
        casegraph_std(&["serve", "--config", config], &env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start casegraph serve"),
    );
    let stderr = child.0.stderr.take().expect("piped stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        let listening = {
            let log = log.lock().expect("log lock");
            log.lines()
                .find_map(|l| l.split("listening on http://").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        };
        if let Some(addr) = listening {
            break addr;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "casegraph serve exited with {status}:\n{}",
                log.lock().expect("log lock")
            );
        }
        assert!(
            Instant::now() < deadline,
            "casegraph serve did not start:\n{}",
            log.lock().expect("log lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let issuer = casegraph::auth::DevIssuer::load_or_create(&tmp.path().join("dev-key.pem"))
        .expect("dev key");
    let token = issuer
        .mint(
            "casegraph",
            "test-user",
            "UN",
            &["un-analyst".to_string()],
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    let body: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": TWO_CASES, "variables": { "mali": MLI_CASE, "car": CAF_CASE } }))
        .send()
        .await
        .expect("GraphQL request")
        .json()
        .await
        .expect("JSON answer");
    assert_eq!(
        common::error_codes(&body),
        vec!["CONNECTOR_AUTH_FAILED"],
        "{body}"
    );
    assert_eq!(
        body["data"]["other"]["nationalProceedings"][0]["source"], "caf-accepted",
        "{body}"
    );
    assert_eq!(
        accepting.received().len(),
        1,
        "the secret was sent to the system that accepts it"
    );
    assert!(refusing.received().is_empty());

    // Give the log lines of the request time to be written, then stop the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(child);
    reader.join().expect("the stderr reader ends");
    let log = log.lock().expect("log lock").clone();
    assert!(log.contains("DEBUG"), "debug logging was on:\n{log}");
    assert!(
        log.contains("Host-state system call failed") && log.contains("CONNECTOR_AUTH_FAILED"),
        "the refused call is logged:\n{log}"
    );
    assert!(!log.contains(SECRET), "the secret is in the logs:\n{log}");

    // A connector file with the secret at a key its auth kind refuses: every error is shown,
    // never the value.
    std::fs::write(
        folder.join("mli-refused.toml"),
        protocol_file(
            "MLI",
            &refusing_url,
            "",
            "[auth]\nkind = \"api_key\"\ntoken = \"${env.SECRET_TOKEN_X}\"",
        ),
    )
    .expect("write");
    let refused = casegraph(&["check-config", "--config", config], &env)
        .output()
        .await
        .expect("run check-config");
    let report = text_of(&refused);
    assert!(!refused.status.success(), "{report}");
    assert!(
        report.contains("auth.token"),
        "the error names the key:\n{report}"
    );
    assert!(
        !report.contains(SECRET),
        "check-config shows the secret:\n{report}"
    );
}

// ---------- 9. casegraph connector test ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_test_shows_the_raw_answer_and_fails_on_an_unmapped_stage_or_an_unknown_id() {
    let pending = "MINUSMA-20230221";
    let (server, url) = reference_server(
        vec![record(MLI_CASE, "CHARGED"), record(pending, "PENDING")],
        None,
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let folder = tmp.path().join("connectors");
    std::fs::create_dir(&folder).expect("connectors folder");
    std::fs::write(
        folder.join("mli-reference.toml"),
        protocol_file("MLI", &url, "", ""),
    )
    .expect("write");
    std::fs::write(
        folder.join("caf-reference.toml"),
        protocol_file("CAF", &url, "", ""),
    )
    .expect("write");
    let config = gateway_config(tmp.path(), &folder);
    let config = config.to_str().expect("UTF-8 path");

    let good = casegraph(
        &[
            "connector",
            "test",
            "mli-reference",
            "--reference",
            MLI_CASE,
            "--config",
            config,
        ],
        &[],
    )
    .output()
    .await
    .expect("run connector test");
    let out = text_of(&good);
    assert!(good.status.success(), "{out}");
    assert!(out.contains("Raw response"), "{out}");
    assert!(
        out.contains(&format!("\"national_reference\": \"RP-{MLI_CASE}\"")),
        "the raw answer: {out}"
    );
    assert!(out.contains("OK"), "{out}");
    assert!(!out.contains("UNMAPPED"), "{out}");
    assert_eq!(server.received().len(), 1);
    assert_eq!(server.received()[0].keys, vec![MLI_CASE.to_string()]);

    let bad = casegraph(
        &[
            "connector",
            "test",
            "mli-reference",
            "--reference",
            pending,
            "--config",
            config,
        ],
        &[],
    )
    .output()
    .await
    .expect("run connector test");
    let out = text_of(&bad);
    assert!(!bad.status.success(), "{out}");
    assert!(
        out.contains("UNMAPPED") && out.contains("PENDING"),
        "names the unmapped value: {out}"
    );

    let unknown = casegraph(
        &[
            "connector",
            "test",
            "bfa-nowhere",
            "--reference",
            MLI_CASE,
            "--config",
            config,
        ],
        &[],
    )
    .output()
    .await
    .expect("run connector test");
    let out = text_of(&unknown);
    assert!(!unknown.status.success(), "{out}");
    assert!(out.contains("bfa-nowhere"), "{out}");
    assert!(
        out.contains("caf-reference") && out.contains("mli-reference"),
        "lists the known ids: {out}"
    );
    assert_eq!(server.received().len(), 2, "an unknown id calls nothing");
}

// ---------- 10. example connector files ----------

#[tokio::test]
async fn every_example_connector_file_loads_and_builds() {
    let folder = Path::new(ROOT).join("connectors");
    let files =
        connectors::load_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    let on_disk = std::fs::read_dir(&folder)
        .expect("connectors/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert_eq!(
        files.len(),
        on_disk,
        "every *.toml in connectors/ is a connector file"
    );
    for loaded in &files {
        if let Err(e) = connectors::build(loaded, policy_sealing()).await {
            panic!("{}: {e}", loaded.path.display());
        }
    }
}

// ---------- 11. the gateway keeps only what it asked for, and nothing SEALED ----------

/// Values that only a full record holds: finding one outside its field is a leak.
const PLANTED_NATREF: &str = "RP-PLANTED-NATREF-31";
const PLANTED_AUTHORITY: &str = "PLANTED-AUTHORITY Juge d'instruction";
const PLANTED_COURT: &str = "PLANTED-COURT Tribunal militaire";
const PLANTED_CHARGE: &str = "PLANTED-CHARGE atteinte a la surete";
const PLANTED_DEFENDANT: &str = "PLANTED-DEFENDANT Ag Planted";
const PLANTED_EXTRA: &str = "PLANTED-EXTRA member of the server's own";
const PLANTED_VALUES: [&str; 6] = [
    PLANTED_NATREF,
    PLANTED_AUTHORITY,
    PLANTED_COURT,
    PLANTED_CHARGE,
    PLANTED_DEFENDANT,
    PLANTED_EXTRA,
];

/// A canonical record holding every member, a server-specific one and a marking per field.
fn full_record(key: &str, marking: &str) -> Value {
    json!({
        "key": key,
        "national_reference": PLANTED_NATREF,
        "authority": PLANTED_AUTHORITY,
        "stage": "CHARGED",
        "national_stage": "Mise en accusation",
        "stage_history": [{ "stage": "CHARGED", "date": "2024-02-01" }],
        "court": { "name": PLANTED_COURT, "type": "MILITARY" },
        "charges": [PLANTED_CHARGE],
        "defendants": [{ "name": PLANTED_DEFENDANT, "status": "IN_CUSTODY", "marking": "CONFIDENTIEL" }],
        "next_hearing": "2026-06-02",
        "updated_at": "2025-11-02T10:00:00Z",
        "marking": marking,
        "field_markings": {
            "national_reference": "CONFIDENTIEL", "authority": "CONFIDENTIEL", "stage": "PUBLIC",
            "court": "CONFIDENTIEL", "charges": "CONFIDENTIEL", "defendants": "CONFIDENTIEL"
        },
        "x_note": PLANTED_EXTRA
    })
}

/// A protocol server that ignores `fields` and answers every record in full; it keeps the
/// bodies of the lookups it received.
async fn server_ignoring_fields() -> (Arc<Mutex<Vec<Value>>>, String) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let router = axum::Router::new()
        .route(
            "/lookup",
            axum::routing::post(
                |axum::extract::State(received): axum::extract::State<Arc<Mutex<Vec<Value>>>>,
                 axum::Json(body): axum::Json<Value>| async move {
                    let records: Vec<Value> = body["keys"]
                        .as_array()
                        .expect("keys")
                        .iter()
                        .map(|k| full_record(k.as_str().expect("a key"), "PUBLIC"))
                        .collect();
                    received.lock().expect("lock").push(body);
                    axum::Json(json!({ "records": records }))
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let addr = serve(router).await;
    (received, format!("http://{addr}"))
}

fn found(
    lookups: &std::collections::HashMap<String, Lookup>,
    key: &str,
) -> Arc<connectors::Served> {
    match lookups.get(key) {
        Some(Lookup::Found(served)) => Arc::clone(served),
        other => panic!("{key} should be found, got {other:?}"),
    }
}

/// Asserts that `p` holds nothing of the full record outside the stage.
#[track_caller]
fn holds_the_stage_only(p: &Proceedings, what: &str) {
    assert_eq!(
        p.stage,
        Some(Mapped::Known(CaseStage::Charged)),
        "{what}: {p:?}"
    );
    assert_eq!(
        p.national_stage.as_deref(),
        Some("Mise en accusation"),
        "{what}"
    );
    assert_eq!(
        (
            &p.national_reference,
            &p.authority,
            &p.court,
            &p.next_hearing,
            &p.source_updated_at
        ),
        (&None, &None, &None, &None, &None),
        "{what}: {p:?}"
    );
    assert!(
        p.stage_history.is_empty() && p.charges.is_empty() && p.defendants.is_empty(),
        "{what}: {p:?}"
    );
    assert_eq!(
        p.field_markings.keys().collect::<Vec<_>>(),
        ["stage"],
        "{what}: only the markings of the fields asked for"
    );
    let text = format!("{p:?}");
    for planted in PLANTED_VALUES {
        assert!(!text.contains(planted), "{what}: `{planted}` kept: {text}");
    }
}

#[tokio::test]
async fn a_system_ignoring_fields_costs_bandwidth_only_nothing_outside_the_mask_is_served_or_cached(
) {
    let (received, url) = server_ignoring_fields().await;
    let dir = connectors_dir(&[("mli-verbose", protocol_file("MLI", &url, "retries = 0", ""))]);
    let handle = built(dir.path(), "mli-verbose").await;
    let key = MLI_CASE.to_string();
    let stage_only = FieldMask(FieldMask::STAGE);

    let first = handle
        .runtime
        .lookup_fields(std::slice::from_ref(&key), stage_only)
        .await;
    let served = found(&first, MLI_CASE);
    assert_eq!(served.freshness, FreshnessState::Live);
    holds_the_stage_only(&served.proceedings, "the live answer");
    {
        let received = received.lock().expect("lock");
        assert_eq!(received.len(), 1);
        assert_eq!(
            received[0]["fields"],
            json!(["stage"]),
            "the client asked for the stage only"
        );
    }
    let (cached, fields) = handle.runtime.cached(MLI_CASE).await.expect("cached");
    assert_eq!(
        fields, stage_only,
        "the entry claims the fields it was fetched for"
    );
    holds_the_stage_only(&cached, "the cache entry");

    let second = handle
        .runtime
        .lookup_fields(std::slice::from_ref(&key), stage_only)
        .await;
    let served = found(&second, MLI_CASE);
    assert_eq!(served.freshness, FreshnessState::Cached);
    holds_the_stage_only(&served.proceedings, "the cached answer");
    assert_eq!(
        received.lock().expect("lock").len(),
        1,
        "served from the cache"
    );

    let wider = FieldMask(FieldMask::STAGE | FieldMask::CHARGES);
    let third = handle
        .runtime
        .lookup_fields(std::slice::from_ref(&key), wider)
        .await;
    let served = found(&third, MLI_CASE);
    assert_eq!(
        served.freshness,
        FreshnessState::Live,
        "a wider lookup goes upstream"
    );
    assert_eq!(received.lock().expect("lock").len(), 2);
    assert_eq!(
        received.lock().expect("lock")[1]["fields"],
        json!(["stage", "charges"])
    );
    assert_eq!(served.proceedings.charges, [PLANTED_CHARGE]);
    assert!(
        served.proceedings.court.is_none() && served.proceedings.defendants.is_empty(),
        "{:?}",
        served.proceedings
    );

    // The wider entry serves a narrower lookup with the narrower fields only.
    let fourth = handle
        .runtime
        .lookup_fields(std::slice::from_ref(&key), stage_only)
        .await;
    let served = found(&fourth, MLI_CASE);
    assert_eq!(served.freshness, FreshnessState::Cached);
    holds_the_stage_only(&served.proceedings, "a narrow answer from a wider entry");
    assert_eq!(received.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn the_reference_server_answers_only_the_fields_asked_with_their_markings() {
    let (_server, url) = reference_server(vec![full_record(MLI_CASE, "PUBLIC")], None).await;
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/lookup"))
        .json(&json!({ "match_by": "un_reference", "keys": [MLI_CASE], "fields": ["stage", "charges"] }))
        .send()
        .await
        .expect("the reference server answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        answer,
        json!({ "records": [{
            "key": MLI_CASE, "marking": "PUBLIC", "stage": "CHARGED",
            "national_stage": "Mise en accusation", "charges": [PLANTED_CHARGE],
            "field_markings": { "stage": "PUBLIC", "charges": "CONFIDENTIEL" }
        }] })
    );
}

/// A sealed record, and an open one with a sealed field and a sealed defendant.
fn sealed_records() -> Vec<Value> {
    let mut sealed = full_record(MLI_CASE, "scellé");
    sealed["defendants"][0]["marking"] = json!(null);
    let mut parts = full_record(CAF_CASE, "CONFIDENTIEL");
    parts["field_markings"]["court"] = json!("Sous scellés");
    parts["defendants"] = json!([
        { "name": PLANTED_DEFENDANT, "status": "IN_CUSTODY", "marking": "PROTECTED_WITNESS" },
        { "name": "Accusé 2", "status": "AT_LARGE", "marking": "CONFIDENTIEL" }
    ]);
    vec![sealed, parts]
}

#[tokio::test]
async fn sealed_records_fields_and_defendants_reach_neither_the_answer_nor_the_cache() {
    let (server, url) = reference_server(sealed_records(), None).await;
    let dir = connectors_dir(&[("mli-sealed", protocol_file("MLI", &url, "retries = 0", ""))]);
    let handle = built(dir.path(), "mli-sealed").await;
    let keys = [MLI_CASE.to_string(), CAF_CASE.to_string()];

    for (round, freshness) in [(1, FreshnessState::Live), (2, FreshnessState::Cached)] {
        let lookups = handle.runtime.lookup(&keys).await;

        let sealed = found(&lookups, MLI_CASE);
        assert_eq!(sealed.freshness, freshness, "round {round}");
        assert_eq!(
            sealed.proceedings,
            Proceedings::withheld(MLI_CASE),
            "round {round}: the key and that a sealed record exists, nothing else"
        );
        assert!(sealed.proceedings.sealed);

        let parts = &found(&lookups, CAF_CASE).proceedings;
        assert!(
            parts.sealed_parts && !parts.sealed,
            "round {round}: {parts:?}"
        );
        assert_eq!(
            parts.court, None,
            "round {round}: the sealed court is emptied"
        );
        assert!(!parts.field_markings.contains_key("court"));
        assert_eq!(
            parts.field_markings["charges"], "CONFIDENTIEL",
            "other markings stay"
        );
        assert_eq!(parts.marking.as_deref(), Some("CONFIDENTIEL"));
        assert_eq!(
            parts.charges,
            [PLANTED_CHARGE],
            "what is not sealed is served"
        );
        let names: Vec<_> = parts
            .defendants
            .iter()
            .filter_map(|d| d.name.as_deref())
            .collect();
        assert_eq!(
            names,
            ["Accusé 2"],
            "round {round}: the protected witness is removed"
        );
        assert_eq!(parts.defendants[0].marking.as_deref(), Some("CONFIDENTIEL"));

        let text = format!("{:?}", sealed.proceedings);
        for planted in PLANTED_VALUES {
            assert!(
                !text.contains(planted),
                "round {round}: `{planted}` served: {text}"
            );
        }
        let text = format!("{parts:?}");
        for planted in [PLANTED_COURT, PLANTED_DEFENDANT] {
            assert!(
                !text.contains(planted),
                "round {round}: `{planted}` served: {text}"
            );
        }
    }
    assert_eq!(
        server.received().len(),
        1,
        "the second round came from the cache"
    );

    let (cached, _) = handle.runtime.cached(MLI_CASE).await.expect("cached");
    assert_eq!(cached, Proceedings::withheld(MLI_CASE));
    let (cached, _) = handle.runtime.cached(CAF_CASE).await.expect("cached");
    let text = format!("{cached:?}");
    for planted in [
        PLANTED_COURT,
        PLANTED_DEFENDANT,
        "Sous scellés",
        "PROTECTED_WITNESS",
    ] {
        assert!(!text.contains(planted), "`{planted}` cached: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_test_shows_the_host_state_its_own_sealed_record_and_says_the_gateway_withholds_it(
) {
    let (_server, url) = reference_server(sealed_records(), None).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let folder = tmp.path().join("connectors");
    std::fs::create_dir(&folder).expect("connectors folder");
    std::fs::write(
        folder.join("mli-sealed.toml"),
        protocol_file("MLI", &url, "", ""),
    )
    .expect("write");
    let config = gateway_config(tmp.path(), &folder);
    let config = config.to_str().expect("UTF-8 path");
    let run = |reference: &'static str| {
        casegraph(
            &[
                "connector",
                "test",
                "mli-sealed",
                "--reference",
                reference,
                "--config",
                config,
            ],
            &[],
        )
        .output()
    };

    let out = run(MLI_CASE).await.expect("run connector test");
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(PLANTED_CHARGE),
        "the raw answer, in full: {text}"
    );
    assert!(text.contains("sealed: the whole record"), "{text}");

    let out = run(CAF_CASE).await.expect("run connector test");
    let text = text_of(&out);
    assert!(text.contains("sealed: field court"), "{text}");
    assert!(text.contains("sealed: defendant 1"), "{text}");
    assert!(!text.contains("defendant 2 —"), "{text}");
}
