//! The demo as a visitor meets it: the three example connectors in `connectors/` (Mali REST
//! with OAuth2, DR Congo GraphQL, Central African Republic CSV folder) joined into real UN
//! cases of the bundled data, with the built-in host-state simulators as the national systems
//! and no other process. The simulators run on port 0 here, so the tests copy the connector
//! files with the simulators' real addresses; everything else is the demo as shipped.

mod common;

use casegraph::config::SimulatorsConfig;
use casegraph::simulator::{self, Simulators};
use common::{try_spawn, AppOptions, TestApp};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

thread_local! {
    /// The connectors folder of the gateway being started on this thread (`configure` is a
    /// plain `fn`, so it cannot capture it).
    static CONNECTORS_DIR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn root() -> PathBuf {
    PathBuf::from(ROOT)
}

/// Simulators on 127.0.0.1 port 0, serving the shipped fixtures.
async fn start_simulators() -> Simulators {
    simulator::start(&SimulatorsConfig {
        enabled: true,
        mli_rest_listen: "127.0.0.1:0".into(),
        cod_graphql_listen: "127.0.0.1:0".into(),
        fixtures_dir: root()
            .join("connectors/fixtures")
            .to_string_lossy()
            .into_owned(),
    })
    .await
    .expect("the simulators start on port 0")
}

/// A copy of `connectors/` (the three demo files and the CSV fixtures) pointing at `sims`.
fn demo_connectors(sims: &Simulators, dir: &Path) {
    for name in [
        "mli-pole-judiciaire.toml",
        "cod-justice-militaire.toml",
        "caf-depot-csv.toml",
    ] {
        let text = std::fs::read_to_string(root().join("connectors").join(name))
            .expect("demo connector file");
        let text = text
            .replace("127.0.0.1:4701", &sims.mli_rest_addr().to_string())
            .replace("127.0.0.1:4702", &sims.cod_graphql_addr().to_string());
        std::fs::write(dir.join(name), text).expect("write connector");
    }
    let caf = dir.join("fixtures/caf");
    std::fs::create_dir_all(&caf).expect("fixtures folder");
    for entry in std::fs::read_dir(root().join("connectors/fixtures/caf")).expect("caf fixtures") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, caf.join(path.file_name().expect("name"))).expect("copy csv");
    }
}

async fn spawn_demo(dir: &Path) -> TestApp {
    CONNECTORS_DIR.with(|d| *d.borrow_mut() = dir.to_string_lossy().into_owned());
    try_spawn(AppOptions {
        configure: |c| c.connectors.dir = CONNECTORS_DIR.with(|d| d.borrow().clone()),
        ..AppOptions::default()
    })
    .await
    .expect("SQLite is always available")
}

const PROCEEDINGS: &str = r#"query($ref: String!) {
  case(reference: $ref) {
    reference hostState
    nationalProceedings {
      source nationalReference stage nationalStage
      stageHistory { stage nationalLabel date }
      court { name type }
      charges
      defendants { status nationalStatus inAbsentia sentence }
      freshness { state }
    }
  }
}"#;

/// The one national proceedings entry of a case, failing on any error.
async fn proceedings(app: &TestApp, reference: &str) -> Value {
    let (status, body) = app
        .gql(&app.officer(), PROCEEDINGS, json!({ "ref": reference }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("errors").is_none(),
        "{reference}: unexpected errors: {body}"
    );
    let list = body["data"]["case"]["nationalProceedings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        list.len(),
        1,
        "{reference}: one connector covers the host state: {body}"
    );
    list[0].clone()
}

fn count(defendants: &Value, field: &str, value: &Value) -> usize {
    defendants
        .as_array()
        .map_or(0, |d| d.iter().filter(|x| &x[field] == value).count())
}

#[tokio::test]
async fn the_demo_shows_public_verdicts_through_rest_graphql_and_file_connectors() {
    let sims = start_simulators().await;
    let dir = tempfile::tempdir().expect("temp dir");
    demo_connectors(&sims, dir.path());
    let app = spawn_demo(dir.path()).await;

    // DR Congo, kind graphql: the Kananga military court, 29 January 2022, then the
    // prosecutor's appeal.
    let cod = proceedings(&app, "UNSECRETARIAT-20170312").await;
    assert_eq!(cod["source"], "cod-justice-militaire");
    assert_eq!(cod["stage"], "APPEAL_PENDING");
    assert_eq!(cod["court"]["type"], "MILITARY");
    let judgment = cod["stageHistory"]
        .as_array()
        .expect("history")
        .iter()
        .find(|e| e["stage"] == "JUDGMENT")
        .cloned();
    assert_eq!(
        judgment.map(|e| e["date"].clone()),
        Some(json!("2022-01-29"))
    );
    let d = &cod["defendants"];
    assert_eq!(d.as_array().map(Vec::len), Some(54), "54 accused");
    assert_eq!(
        count(d, "status", &json!("CONVICTED")),
        52,
        "51 death sentences and one prison term"
    );
    assert_eq!(count(d, "status", &json!("ACQUITTED")), 2);
    assert_eq!(
        count(d, "inAbsentia", &json!(true)),
        22,
        "22 fugitives tried in absentia"
    );

    // Mali, kind rest behind OAuth2: the Siby attack, Bamako assize court, 24 January 2023.
    let mli = proceedings(&app, "MINUSMA-20190222").await;
    assert_eq!(mli["source"], "mli-pole-judiciaire");
    assert_eq!(mli["stage"], "JUDGMENT");
    assert_eq!(mli["court"]["type"], "SPECIAL");
    assert_eq!(mli["defendants"][0]["status"], "CONVICTED");
    assert!(
        mli["defendants"][0]["sentence"]
            .as_str()
            .is_some_and(|s| s.starts_with("peine de mort")),
        "{mli}"
    );
    assert_eq!(mli["charges"].as_array().map(Vec::len), Some(5));
    // 24 March 2021: nine convicted, eight in absentia.
    let mli_2021 = proceedings(&app, "MINUSMA-20150525").await;
    assert_eq!(
        count(&mli_2021["defendants"], "status", &json!("CONVICTED")),
        9
    );
    assert_eq!(
        count(&mli_2021["defendants"], "inAbsentia", &json!(true)),
        8
    );
    let judgment = mli_2021["stageHistory"]
        .as_array()
        .expect("history")
        .last()
        .cloned()
        .expect("a stage");
    assert_eq!(
        (judgment["stage"].clone(), judgment["date"].clone()),
        (json!("JUDGMENT"), json!("2021-03-24"))
    );

    // Central African Republic, kind file: Bangui Court of Appeal, 7 February 2020, 28 of 32.
    let caf = proceedings(&app, "MINUSCA-20170508").await;
    assert_eq!(caf["source"], "caf-depot-csv");
    assert_eq!(caf["stage"], "JUDGMENT");
    assert_eq!(caf["defendants"].as_array().map(Vec::len), Some(32));
    assert_eq!(count(&caf["defendants"], "status", &json!("CONVICTED")), 28);
    assert_eq!(
        count(
            &caf["defendants"],
            "sentence",
            &json!("travaux forcés à perpétuité")
        ),
        5
    );
    assert_eq!(
        caf["charges"].as_array().map(Vec::len),
        Some(6),
        "the `|`-separated list"
    );

    // A case no national system knows has no proceedings, and no error.
    let (_, body) = app
        .gql(
            &app.officer(),
            PROCEEDINGS,
            json!({ "ref": "MINUSMA-20131023" }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["case"]["nationalProceedings"], json!([]));
}

#[tokio::test]
async fn the_mali_simulator_refuses_calls_without_a_valid_access_token() {
    let sims = start_simulators().await;
    let base = format!("http://{}", sims.mli_rest_addr());
    let client = reqwest::Client::new();
    let api = format!("{base}/api/v1/dossiers?reference_onu=MINUSMA-20190222");

    let res = client.get(&api).send().await.expect("sent");
    assert_eq!(res.status(), 401);
    assert!(res
        .headers()
        .get("www-authenticate")
        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer")));
    let res = client
        .get(&api)
        .bearer_auth("forged")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 401);

    let wrong = client
        .post(format!("{base}/oauth2/token"))
        .basic_auth(simulator::MLI_DEMO_CLIENT_ID, Some("wrong-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.expect("json")["error"],
        "invalid_client"
    );

    let token: Value = client
        .post(format!("{base}/oauth2/token"))
        .basic_auth(
            simulator::MLI_DEMO_CLIENT_ID,
            Some(simulator::MLI_DEMO_CLIENT_SECRET),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let access = token["access_token"].as_str().expect("an access token");
    assert!(
        token["expires_in"].as_u64().is_some_and(|s| s > 0),
        "{token}"
    );
    let found: Value = client
        .get(&api)
        .bearer_auth(access)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(found["dossiers"][0]["reference_onu"], "MINUSMA-20190222");
}

/// A gateway configuration over a fresh SQLite file in `dir`, with no data and no connectors.
fn bare_config(dir: &Path) -> casegraph::config::Config {
    let mut config =
        common::test_config(dir, format!("sqlite://{}", dir.join("cases.db").display()));
    config.store.import_bundled_data_when_empty = false;
    config.connectors.dir = String::new();
    config.simulators = SimulatorsConfig {
        enabled: true,
        mli_rest_listen: "127.0.0.1:0".into(),
        cod_graphql_listen: "127.0.0.1:0".into(),
        fixtures_dir: format!("{ROOT}/connectors/fixtures"),
    };
    config
}

#[test]
fn the_demo_config_enables_the_simulators_on_the_ports_the_demo_connectors_name() {
    let demo = casegraph::config::load_str(casegraph::config::EMBEDDED_DEFAULT, "embedded")
        .expect("loads");
    assert!(demo.simulators.enabled);
    assert_eq!(demo.simulators.mli_rest_listen, "127.0.0.1:4701");
    assert_eq!(demo.simulators.cod_graphql_listen, "127.0.0.1:4702");
    assert_eq!(demo.connectors.dir, "connectors");
    let mli =
        std::fs::read_to_string(root().join("connectors/mli-pole-judiciaire.toml")).expect("file");
    let cod = std::fs::read_to_string(root().join("connectors/cod-justice-militaire.toml"))
        .expect("file");
    assert!(mli.contains("http://127.0.0.1:4701/") && cod.contains("http://127.0.0.1:4702/"));
}

#[tokio::test]
async fn the_gateway_starts_its_simulators_and_stops_them_when_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let gateway = casegraph::Gateway::builder(bare_config(dir.path()))
        .build()
        .await
        .expect("the gateway starts");
    let addr = gateway.simulators().expect("started").cod_graphql_addr();
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("X-API-Key", simulator::COD_DEMO_API_KEY)
        .json(&json!({ "query": "{ dossier(referenceOnu: \"UNSECRETARIAT-20170312\") { etat } }" }))
        .send()
        .await
        .expect("the simulator answers while the gateway lives");
    assert_eq!(
        res.json::<Value>().await.expect("json")["data"]["dossier"]["etat"],
        "appel interjeté"
    );
    drop(gateway);
    // The simulators' tasks end asynchronously: wait for it, within a bound far above any
    // scheduling delay, rather than for a fixed time a loaded machine may not honour.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let after = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .send()
            .await;
        if after.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the simulators stop with the gateway"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_simulator_port_in_use_stops_the_gateway_naming_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = bare_config(dir.path());
    config.simulators.mli_rest_listen = addr.clone();
    let err = match casegraph::Gateway::builder(config).build().await {
        Ok(_) => panic!("a taken port must stop the start"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&addr) && err.contains("mli_rest_listen"),
        "{err}"
    );
}

#[test]
fn every_shipped_connector_file_loads() {
    let files = casegraph::connectors::load_dir(&root().join("connectors"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = files.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "caf-depot-csv",
            "cod-justice-militaire",
            "mli-pole-judiciaire"
        ]
    );

    // The protocol example is not loaded by the demo (it is `.toml.example`) but must stay valid.
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(
        root().join("connectors/examples/ssd-protocol.toml.example"),
        dir.path().join("ssd-protocol.toml"),
    )
    .expect("copy");
    std::env::set_var("SSD_PROTOCOL_TOKEN", "test-token-for-the-example");
    let files = casegraph::connectors::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(files[0].id, "ssd-protocol");
    assert_eq!(
        files[0].file.kind,
        casegraph::connectors::ConnectorKind::Protocol
    );
}

#[test]
fn the_protocol_fixture_is_served_by_the_reference_server() {
    let path = root().join("connectors/fixtures/protocol/records.json");
    casegraph::connectors::protocol::reference::ReferenceServer::from_file(&path, None)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_shipped_connector_schema_is_up_to_date() {
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("connectors/connector.schema.json"))
            .expect("connectors/connector.schema.json"),
    )
    .expect("JSON");
    let current = serde_json::to_value(schemars::schema_for!(casegraph::connectors::ConnectorFile))
        .expect("JSON");
    assert!(
        shipped == current,
        "connectors/connector.schema.json is out of date: refresh it with\n  cargo run -q -- connector-schema > connectors/connector.schema.json"
    );
}
