//! Regressions for what the adversarial review of the first access layer found: the federation
//! SDL behind nested fragments, a location revealing restricted coordinates, non-null keys
//! missing from a marked record, markings named in messages, connector errors naming internal
//! hosts. Each runs the query the review described against the real server.

mod access_fixtures;
mod common;

use access_fixtures::*;
use serde_json::{json, Value};

fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `_service` reached through `depth` nested inline fragments.
fn nested_inline(depth: usize) -> String {
    let mut q = "_service { sdl }".to_string();
    for _ in 0..depth {
        q = format!("... on Query {{ {q} }}");
    }
    format!("{{ {q} }}")
}

/// `_service` reached through a chain of `n` named fragments.
fn fragment_chain(n: usize) -> String {
    let mut q = String::from("query { ...F0 }\n");
    for i in 0..n {
        if i + 1 == n {
            q.push_str(&format!(
                "fragment F{i} on Query {{ _service {{ sdl }} }}\n"
            ));
        } else {
            q.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
    }
    q
}

#[tokio::test]
async fn the_federation_sdl_stays_closed_at_any_depth_of_fragments_when_introspection_is_off() {
    let closed = start(Setup {
        no_introspection: true,
        ..Setup::default()
    })
    .await;
    for (what, q) in [
        ("9 inline fragments", nested_inline(9)),
        ("20 inline fragments", nested_inline(20)),
        ("a chain of 10 named fragments", fragment_chain(10)),
        ("a chain of 30 named fragments", fragment_chain(30)),
    ] {
        let (_, text, body) = run(&closed.app, &UN_OFFICER, &q, json!({})).await;
        assert!(
            !text.contains("serviceNumber") && !text.contains("type Query"),
            "{what}: the SDL leaked: {}",
            &text[..text.len().min(300)]
        );
        assert_eq!(
            error_codes(&body),
            vec!["GRAPHQL_VALIDATION_FAILED"],
            "{what}: {text}"
        );
    }
    // With introspection on, the same documents print the SDL: the refusal above is the check.
    let open = start(Setup::default()).await;
    let (_, text, _) = run(&open.app, &UN_OFFICER, &fragment_chain(10), json!({})).await;
    assert!(
        text.contains("serviceNumber"),
        "{}",
        &text[..text.len().min(300)]
    );
}

#[tokio::test]
async fn a_location_holding_only_restricted_coordinates_is_as_absent_as_no_location() {
    let fx = start(Setup::default()).await;
    let coordinates_only = officer_write(
        &fx.app,
        "mutation($i: ReportCaseInput!) { reportCase(input: $i) { id } }",
        json!({ "i": { "mission": "MINUSMA", "hostState": "MLI", "incidentDate": "2022-02-02",
            "acts": ["KILLING"], "coordinates": { "latitude": 15.1, "longitude": -1.2 } } }),
    )
    .await["reportCase"]["id"]
        .clone();
    let nothing = officer_write(
        &fx.app,
        "mutation($i: ReportCaseInput!) { reportCase(input: $i) { id } }",
        json!({ "i": { "mission": "MINUSMA", "hostState": "MLI", "incidentDate": "2022-02-03",
            "acts": ["KILLING"] } }),
    )
    .await["reportCase"]["id"]
        .clone();
    for q in [
        "query($id: ID!) { case(id: $id) { location { region locality } } }",
        "query($id: ID!) { case(id: $id) { location { region locality coordinates { latitude } } } }",
    ] {
        // The host state reads region and locality, not coordinates.
        let (_, a, with_coordinates) = run(&fx.app, &HOST_MLI, q, json!({ "id": coordinates_only })).await;
        let (_, b, without) = run(&fx.app, &HOST_MLI, q, json!({ "id": nothing })).await;
        assert_eq!(
            with_coordinates, without,
            "recorded coordinates are told apart from none:\n{a}\n{b}"
        );
        assert!(with_coordinates["data"]["case"]["location"].is_null(), "{a}");
        // The case officer, who may read them, sees the location.
        let (_, text, officer) = run(&fx.app, &UN_OFFICER, q, json!({ "id": coordinates_only })).await;
        assert!(officer["data"]["case"]["location"].is_object(), "{text}");
    }
}

fn restricted_system() -> Vec<System> {
    vec![System {
        id: "mli-restricted",
        host_state: "MLI",
        records: |key| vec![proceedings_record(key, "diffusion restreinte")],
    }]
}

#[tokio::test]
async fn a_restricted_national_record_keeps_every_non_null_key_and_names_no_marking() {
    let fx = start(Setup {
        systems: restricted_system(),
        ..Setup::default()
    })
    .await;
    // "diffusion restreinte" is no marking the policy names: it counts as RESTRICTED, above
    // what a UN analyst reads.
    let q = r#"query($r: String!) {
      one: case(reference: $r) { nationalProceedings { source sourceName restrictedRecordExists
        freshness { state ageSeconds } stage nationalReference
        stageHistory { stage nationalLabel } court { name } defendants { name status } } }
      page: cases(first: 3, filter: { missions: ["MINUSMA"], from: "2023-03-14", to: "2023-03-14" }) {
        nodes { id reference nationalProceedings { source freshness { state } stage } } }
    }"#;
    let (status, text, body) = run(&fx.app, &UN_ANALYST, q, json!({ "r": fx.case_ref })).await;
    assert_eq!(status, 200, "{text}");
    let np = &body["data"]["one"]["nationalProceedings"][0];
    for key in [
        "source",
        "sourceName",
        "restrictedRecordExists",
        "freshness",
    ] {
        assert!(
            np.get(key).is_some_and(|v| !v.is_null()),
            "the non-null `{key}` is missing or null: {text}"
        );
    }
    assert_eq!(np["source"], json!("mli-restricted"), "{text}");
    assert!(np["freshness"]["state"].is_string(), "{text}");
    for key in [
        "stage",
        "nationalReference",
        "court",
        "defendants",
        "stageHistory",
    ] {
        assert!(np[key].is_null(), "`{key}` of a RESTRICTED record: {text}");
    }
    let nodes = body["data"]["page"]["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty(), "{text}");
    for n in nodes {
        assert!(
            n.is_object() && n["id"].is_string(),
            "a node is null: {text}"
        );
        for p in n["nationalProceedings"].as_array().expect("list") {
            assert!(
                p["source"].is_string() && p["freshness"].is_object(),
                "{text}"
            );
        }
    }
    assert_absent(&text, &planted(), "a restricted record");
    for e in body["errors"].as_array().expect("denials") {
        let m = e["message"].as_str().expect("message");
        for word in [
            "RESTRICTED",
            "restreinte",
            "CASE_PARTIES",
            "CONCERNED",
            "SEALED",
            "PUBLIC",
        ] {
            assert!(
                !m.contains(word),
                "the message names a level or marking: {m}"
            );
        }
    }
    // The case officer reads the same record in full: the nulls above are the marking's.
    let (_, text, body) = run(&fx.app, &UN_OFFICER, q, json!({ "r": fx.case_ref })).await;
    assert_eq!(
        body["data"]["one"]["nationalProceedings"][0]["nationalReference"],
        json!(NATIONAL_REFERENCE),
        "{text}"
    );
}

#[tokio::test]
async fn connector_error_details_are_for_un_staff_only() {
    let fx = start(Setup {
        dead_systems: vec![("mli-down", "MLI")],
        ..Setup::default()
    })
    .await;
    // A lookup fails, so that the connector has a last error.
    let (_, text, _) = run(
        &fx.app,
        &UN_ANALYST,
        "query($id: ID!) { case(id: $id) { nationalProceedings { source } } }",
        json!({ "id": fx.case_id }),
    )
    .await;
    assert!(
        text.contains("CONNECTOR_"),
        "the dead system failed: {text}"
    );
    let q = "{ connectors { id state lastError { code message at } } }";
    let (_, text, body) = run(&fx.app, &UN_ANALYST, q, json!({})).await;
    let last = &body["data"]["connectors"][0]["lastError"];
    assert!(
        last["message"].is_string(),
        "UN staff read the details: {text}"
    );
    for who in [&HOST_MLI, &UNRELATED_FRA, &REGIONAL_AU] {
        let (_, text, body) = run(&fx.app, who, q, json!({})).await;
        let last = &body["data"]["connectors"][0]["lastError"];
        assert!(
            last["code"].is_string() && last["message"].is_null(),
            "{}: {text}",
            who.label
        );
        assert!(
            !text.contains("127.0.0.1"),
            "{}: the message names the host: {text}",
            who.label
        );
        assert_eq!(
            error_codes(&body),
            vec!["FORBIDDEN_FIELD"],
            "{}: {text}",
            who.label
        );
    }
}
