//! The GraphQL API over HTTP, as a client sees it: filters, ordering and pagination, lookups,
//! statistics, every mutation with its validation and concurrency rules, write authorization,
//! batching and operation limits. Every response goes through [`codes`], which fails the test
//! when an error lacks `extensions.code`.

mod common;

use base64::Engine;
use common::{spawn_app, try_spawn, AppOptions, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Cases in the bundled UN data.
const TOTAL_CASES: i64 = 611;
/// Victims in the bundled UN data.
const TOTAL_VICTIMS: i64 = 1134;

/// The `extensions.code` of every error in `body`; fails when an error has none.
fn codes(body: &Value) -> Vec<String> {
    let Some(errors) = body.get("errors") else {
        return Vec::new();
    };
    let errors = errors
        .as_array()
        .unwrap_or_else(|| panic!("`errors` is not a list: {body}"));
    assert!(!errors.is_empty(), "`errors` is present but empty: {body}");
    errors
        .iter()
        .map(|e| {
            e["extensions"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("an error has no extensions.code: {e}"))
                .to_string()
        })
        .collect()
}

/// Sends a request and checks that every error carries a code.
async fn call(app: &TestApp, token: &str, query: &str, vars: Value) -> (u16, Value) {
    let (status, body) = app.gql(token, query, vars).await;
    codes(&body);
    (status, body)
}

/// Runs `query` with `token` and returns `data`, failing on any error.
async fn ok_as(app: &TestApp, token: &str, query: &str, vars: Value) -> Value {
    let (status, body) = call(app, token, query, vars).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

/// Reads as a UN case officer, who may read every level up to RESTRICTED (the API tests are
/// about the API; who sees what is tested in access_matrix and access_attacks).
async fn read(app: &TestApp, query: &str, vars: Value) -> Value {
    ok_as(app, &app.officer(), query, vars).await
}

/// Writes as a UN case officer.
async fn write(app: &TestApp, query: &str, vars: Value) -> Value {
    ok_as(app, &app.officer(), query, vars).await
}

/// Runs `query` with `token` and asserts that it fails with exactly `code`; returns the body.
async fn fails_with(app: &TestApp, token: &str, query: &str, vars: Value, code: &str) -> Value {
    let (_, body) = call(app, token, query, vars).await;
    assert_eq!(
        codes(&body),
        vec![code.to_string()],
        "expected {code}: {body}"
    );
    body
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}"))
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A date safely in the future whatever the time zone.
fn future_date() -> String {
    (today() + chrono::Days::new(2)).to_string()
}

// ---------------------------------------------------------------------------------------------
// Filters

const CASE_FIELDS: &str = "id reference incidentDate hostState acts victimCount \
                           mission { code status } victims { category nationality contributingCountry }";

/// The cases matching `filter` (at most 500) and `totalCount`, checked to agree.
async fn filtered(app: &TestApp, filter: Value) -> (i64, Vec<Value>) {
    let query = format!(
        "query($f: CaseFilterInput) {{ cases(filter: $f, first: 500) {{ totalCount pageInfo {{ hasNextPage }} \
         nodes {{ {CASE_FIELDS} }} }} }}"
    );
    let data = read(app, &query, json!({ "f": filter })).await;
    let total = int(&data["cases"]["totalCount"]);
    let nodes = list(&data["cases"]["nodes"]).clone();
    assert!(total <= 500, "filter {filter} is too wide for this helper");
    assert_eq!(
        nodes.len() as i64,
        total,
        "totalCount agrees with the cases listed for {filter}"
    );
    assert_eq!(data["cases"]["pageInfo"]["hasNextPage"], json!(false));
    (total, nodes)
}

fn references(nodes: &[Value]) -> HashSet<String> {
    nodes
        .iter()
        .map(|n| text(&n["reference"]).to_string())
        .collect()
}

fn has_victim_with(node: &Value, field: &str, value: &str) -> bool {
    list(&node["victims"])
        .iter()
        .any(|v| v[field] == json!(value))
}

#[tokio::test]
async fn missions_filter_keeps_only_cases_of_those_missions() {
    let app = spawn_app().await;
    let (total, nodes) = filtered(&app, json!({ "missions": ["MINUSMA"] })).await;
    assert_eq!(total, 72);
    assert!(nodes
        .iter()
        .all(|n| n["mission"]["code"] == json!("MINUSMA")));

    let (both, nodes) = filtered(&app, json!({ "missions": ["MINUSMA", "UNIFIL"] })).await;
    let (unifil, _) = filtered(&app, json!({ "missions": ["UNIFIL"] })).await;
    assert_eq!(both, 72 + unifil, "a list matches any of its values");
    assert!(nodes
        .iter()
        .all(|n| ["MINUSMA", "UNIFIL"].contains(&text(&n["mission"]["code"]))));
}

#[tokio::test]
async fn host_states_filter_keeps_only_cases_in_those_states() {
    let app = spawn_app().await;
    let (total, nodes) = filtered(&app, json!({ "hostStates": ["LBN"] })).await;
    assert_eq!(total, 68);
    assert!(nodes.iter().all(|n| n["hostState"] == json!("LBN")));

    let (mli, nodes) = filtered(&app, json!({ "hostStates": ["mli"] })).await;
    assert_eq!(mli, 72, "lowercase codes are normalised");
    assert!(nodes.iter().all(|n| n["hostState"] == json!("MLI")));
}

#[tokio::test]
async fn acts_filter_matches_cases_with_any_of_the_acts() {
    let app = spawn_app().await;
    // The bundled dataset records fatalities only: every case is a killing.
    let data = read(
        &app,
        r#"{ k: cases(filter: {acts: [KILLING]}) { totalCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(int(&data["k"]["totalCount"]), TOTAL_CASES);
    let (none, _) = filtered(&app, json!({ "acts": ["IED"] })).await;
    assert_eq!(none, 0);

    let reported = report(
        &app,
        json!({ "mission": "UNIFIL", "incidentDate": "2019-05-04", "acts": ["IED", "AMBUSH"] }),
    )
    .await;
    let (ied, nodes) = filtered(&app, json!({ "acts": ["IED"] })).await;
    assert_eq!(ied, 1);
    assert_eq!(nodes[0]["id"], reported["id"]);
    let (either, _) = filtered(&app, json!({ "acts": ["ABDUCTION", "AMBUSH"] })).await;
    assert_eq!(either, 1);
    let data = read(
        &app,
        r#"{ k: cases(filter: {acts: [KILLING]}) { totalCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        int(&data["k"]["totalCount"]),
        TOTAL_CASES,
        "the new case is not a killing"
    );
}

#[tokio::test]
async fn victim_categories_filter_keeps_cases_with_a_victim_of_that_category() {
    let app = spawn_app().await;
    let (police, nodes) = filtered(&app, json!({ "victimCategories": ["POLICE"] })).await;
    assert_eq!(police, 33);
    assert!(nodes
        .iter()
        .all(|n| has_victim_with(n, "category", "POLICE")));
    let (national, nodes) =
        filtered(&app, json!({ "victimCategories": ["NATIONAL_CIVILIAN"] })).await;
    assert_eq!(national, 54);
    assert!(nodes
        .iter()
        .all(|n| has_victim_with(n, "category", "NATIONAL_CIVILIAN")));
    let (either, _) = filtered(
        &app,
        json!({ "victimCategories": ["POLICE", "NATIONAL_CIVILIAN"] }),
    )
    .await;
    assert!(either >= police.max(national) && either <= police + national);
}

#[tokio::test]
async fn victim_nationalities_filter_keeps_cases_with_a_victim_of_that_nationality() {
    let app = spawn_app().await;
    let (total, nodes) = filtered(&app, json!({ "victimNationalities": ["CIV"] })).await;
    assert_eq!(total, 2);
    assert!(references(&nodes).contains("MINUSMA-20210113"));
    assert!(nodes
        .iter()
        .all(|n| has_victim_with(n, "nationality", "CIV")));

    let (fra, nodes) = filtered(&app, json!({ "victimNationalities": ["FRA"] })).await;
    assert_eq!(fra, 32);
    assert!(nodes
        .iter()
        .all(|n| has_victim_with(n, "nationality", "FRA")));
}

#[tokio::test]
async fn contributing_countries_filter_keeps_cases_with_a_victim_sent_by_that_country() {
    let app = spawn_app().await;
    let (total, nodes) = filtered(&app, json!({ "contributingCountries": ["FRA"] })).await;
    assert_eq!(total, 31);
    assert!(nodes
        .iter()
        .all(|n| has_victim_with(n, "contributingCountry", "FRA")));
    let (civ, nodes) = filtered(&app, json!({ "contributingCountries": ["CIV"] })).await;
    assert!(civ >= 1);
    assert!(references(&nodes).contains("MINUSMA-20210113"));
}

#[tokio::test]
async fn from_and_to_bound_every_incident_date_inclusively() {
    let app = spawn_app().await;
    let (year, nodes) = filtered(&app, json!({ "from": "2020-01-01", "to": "2020-12-31" })).await;
    assert_eq!(year, 9);
    assert!(nodes
        .iter()
        .all(|n| ("2020-01-01".."2021-01-01").contains(&text(&n["incidentDate"]))));

    let stats = read(
        &app,
        "{ statistics(by: YEAR) { groups { key caseCount } } }",
        json!({}),
    )
    .await;
    let groups = list(&stats["statistics"]["groups"]);
    let since_2015: i64 = groups
        .iter()
        .filter(|g| text(&g["key"]) >= "2015")
        .map(|g| int(&g["caseCount"]))
        .sum();
    let (from_only, nodes) = filtered(&app, json!({ "from": "2015-01-01" })).await;
    assert_eq!(from_only, since_2015);
    assert!(nodes
        .iter()
        .all(|n| text(&n["incidentDate"]) >= "2015-01-01"));

    let data = read(&app, r#"{ cases(filter: {to: "1960-12-31"}, first: 500) { totalCount nodes { incidentDate } } }"#, json!({}))
        .await;
    let until_1960: i64 = groups
        .iter()
        .filter(|g| text(&g["key"]) <= "1960")
        .map(|g| int(&g["caseCount"]))
        .sum();
    assert_eq!(int(&data["cases"]["totalCount"]), until_1960);
    assert!(list(&data["cases"]["nodes"])
        .iter()
        .all(|n| text(&n["incidentDate"]) <= "1960-12-31"));

    // Both bounds are inclusive: a one-day range finds the case of that day.
    let (one_day, nodes) =
        filtered(&app, json!({ "from": "2021-01-13", "to": "2021-01-13" })).await;
    assert!(one_day >= 1);
    assert!(references(&nodes).contains("MINUSMA-20210113"));
    assert!(nodes
        .iter()
        .all(|n| n["incidentDate"] == json!("2021-01-13")));
}

#[tokio::test]
async fn mission_status_filter_keeps_only_cases_of_missions_in_that_status() {
    let app = spawn_app().await;
    let (closed, nodes) = filtered(&app, json!({ "missionStatus": "CLOSED" })).await;
    let missions: HashSet<&str> = nodes.iter().map(|n| text(&n["mission"]["code"])).collect();
    assert!(missions.contains("MINUSMA"), "MINUSMA closed in 2023");
    assert!(!missions.contains("UNIFIL"), "UNIFIL still operates");
    assert!(nodes
        .iter()
        .all(|n| n["mission"]["status"] == json!("CLOSED")));

    let data = read(&app, "{ cases(filter: {missionStatus: ACTIVE}, first: 500) { totalCount nodes { mission { code status } } } }", json!({}))
        .await;
    let active = int(&data["cases"]["totalCount"]);
    let nodes = list(&data["cases"]["nodes"]);
    assert!(nodes
        .iter()
        .all(|n| n["mission"]["status"] == json!("ACTIVE")));
    assert!(nodes
        .iter()
        .any(|n| n["mission"]["code"] == json!("UNIFIL")));
    assert_eq!(closed + active, TOTAL_CASES);
    assert!(closed > 0 && active > 0);
}

#[tokio::test]
async fn filter_fields_combine_with_and() {
    let app = spawn_app().await;
    let parts = [
        json!({ "missions": ["MINUSMA", "UNIFIL", "MONUSCO"] }),
        json!({ "victimCategories": ["MILITARY"] }),
        json!({ "from": "2012-01-01", "to": "2019-12-31" }),
    ];
    let mut expected: Option<HashSet<String>> = None;
    let mut combined = json!({});
    for part in &parts {
        let (_, nodes) = filtered(&app, part.clone()).await;
        let refs = references(&nodes);
        expected = Some(match expected {
            None => refs,
            Some(e) => e.intersection(&refs).cloned().collect(),
        });
        for (k, v) in part.as_object().expect("an object") {
            combined[k] = v.clone();
        }
    }
    let (total, nodes) = filtered(&app, combined).await;
    let expected = expected.expect("parts");
    assert!(total > 0 && total < 72);
    assert_eq!(
        references(&nodes),
        expected,
        "the cases matching every field, and only them"
    );
    let (none, _) = filtered(
        &app,
        json!({ "missions": ["UNIFIL"], "hostStates": ["MLI"] }),
    )
    .await;
    assert_eq!(none, 0);
}

#[tokio::test]
async fn invalid_filter_values_are_refused_with_their_codes() {
    let app = spawn_app().await;
    let t = app.analyst();
    let q = "query($f: CaseFilterInput) { cases(filter: $f) { totalCount } }";
    fails_with(
        &app,
        &t,
        q,
        json!({ "f": { "hostStates": ["XX"] } }),
        "INVALID_COUNTRY_CODE",
    )
    .await;
    fails_with(
        &app,
        &t,
        q,
        json!({ "f": { "victimNationalities": ["ZZZ"] } }),
        "INVALID_COUNTRY_CODE",
    )
    .await;
    fails_with(
        &app,
        &t,
        q,
        json!({ "f": { "contributingCountries": ["France"] } }),
        "INVALID_COUNTRY_CODE",
    )
    .await;
    fails_with(
        &app,
        &t,
        q,
        json!({ "f": { "missions": ["NOSUCHMISSION"] } }),
        "UNKNOWN_MISSION",
    )
    .await;
    fails_with(
        &app,
        &t,
        q,
        json!({ "f": { "from": "2021-01-02", "to": "2021-01-01" } }),
        "INVALID_DATE_RANGE",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Ordering and pagination

const PAGE_QUERY: &str = "query($o: CaseOrderInput, $first: Int, $after: String) { \
    cases(orderBy: $o, first: $first, after: $after) { totalCount \
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } \
      edges { cursor node { id reference incidentDate victimCount mission { code } } } } }";

/// Walks every page of `cases` in `order` and returns the nodes in order.
async fn walk(app: &TestApp, order: Value, page: usize) -> Vec<Value> {
    let mut after: Option<String> = None;
    let mut nodes = Vec::new();
    for _ in 0..=(TOTAL_CASES as usize / page + 1) {
        let data = read(
            app,
            PAGE_QUERY,
            json!({ "o": order, "first": page, "after": after }),
        )
        .await;
        let conn = &data["cases"];
        assert_eq!(
            int(&conn["totalCount"]),
            TOTAL_CASES,
            "totalCount ignores pagination"
        );
        let info = &conn["pageInfo"];
        let edges = list(&conn["edges"]);
        assert_eq!(info["hasPreviousPage"], json!(after.is_some()));
        assert_eq!(
            info["startCursor"],
            edges.first().map_or(Value::Null, |e| e["cursor"].clone())
        );
        assert_eq!(
            info["endCursor"],
            edges.last().map_or(Value::Null, |e| e["cursor"].clone())
        );
        nodes.extend(edges.iter().map(|e| e["node"].clone()));
        if info["hasNextPage"] == json!(false) {
            return nodes;
        }
        assert_eq!(edges.len(), page, "only the last page is short");
        after = Some(text(&info["endCursor"]).to_string());
    }
    panic!("pagination in {order} did not end");
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(|n| text(&n["id"]).to_string()).collect()
}

/// The sort key of a node for an order field, comparable as text.
fn sort_key(field: &str, node: &Value) -> String {
    match field {
        "INCIDENT_DATE" => text(&node["incidentDate"]).to_string(),
        "REFERENCE" => text(&node["reference"]).to_string(),
        "MISSION" => text(&node["mission"]["code"]).to_string(),
        "VICTIM_COUNT" => format!("{:010}", int(&node["victimCount"])),
        other => panic!("unknown order field {other}"),
    }
}

#[tokio::test]
async fn cases_come_most_recent_first_by_default() {
    let app = spawn_app().await;
    let default = read(&app, PAGE_QUERY, json!({ "first": 100 })).await;
    let nodes = list(&default["cases"]["edges"])
        .iter()
        .map(|e| e["node"].clone())
        .collect::<Vec<_>>();
    assert_eq!(nodes.len(), 100);
    let dates: Vec<&str> = nodes.iter().map(|n| text(&n["incidentDate"])).collect();
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "dates descend: {dates:?}"
    );
    let stats = read(
        &app,
        "{ statistics(by: YEAR) { groups { key } } }",
        json!({}),
    )
    .await;
    let last_year = list(&stats["statistics"]["groups"])
        .last()
        .map(|g| text(&g["key"]).to_string())
        .expect("groups");
    assert!(
        dates[0].starts_with(&last_year),
        "the first case is from the latest year {last_year}"
    );

    let explicit = read(
        &app,
        PAGE_QUERY,
        json!({ "first": 100, "o": { "field": "INCIDENT_DATE", "direction": "DESC" } }),
    )
    .await;
    assert_eq!(
        default["cases"]["edges"], explicit["cases"]["edges"],
        "the default is INCIDENT_DATE DESC"
    );
    let field_only = read(
        &app,
        PAGE_QUERY,
        json!({ "first": 100, "o": { "field": "INCIDENT_DATE" } }),
    )
    .await;
    assert_eq!(
        default["cases"]["edges"], field_only["cases"]["edges"],
        "direction defaults to DESC"
    );
}

#[tokio::test]
async fn walking_every_page_yields_each_case_exactly_once() {
    let app = spawn_app().await;
    let nodes = walk(&app, Value::Null, 100).await;
    let ids = ids(&nodes);
    assert_eq!(ids.len() as i64, TOTAL_CASES);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len() as i64,
        TOTAL_CASES,
        "no case repeats"
    );
    let dates: Vec<&str> = nodes.iter().map(|n| text(&n["incidentDate"])).collect();
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "the order holds across pages"
    );

    // Past the last case: an empty page that says so.
    let first = read(&app, PAGE_QUERY, json!({ "first": 500 })).await;
    let last_page = json!({ "first": 500, "after": first["cases"]["pageInfo"]["endCursor"] });
    let last = read(&app, PAGE_QUERY, last_page).await;
    assert_eq!(list(&last["cases"]["edges"]).len(), 111);
    let end = text(&last["cases"]["pageInfo"]["endCursor"]).to_string();
    assert_eq!(last["cases"]["pageInfo"]["hasNextPage"], json!(false));
    let after_end = read(&app, PAGE_QUERY, json!({ "first": 10, "after": end })).await;
    assert_eq!(list(&after_end["cases"]["edges"]).len(), 0);
    assert_eq!(after_end["cases"]["pageInfo"]["hasNextPage"], json!(false));
    assert_eq!(after_end["cases"]["pageInfo"]["endCursor"], Value::Null);
}

#[tokio::test]
async fn every_order_field_and_direction_is_monotonic_across_pages() {
    let app = spawn_app().await;
    for field in ["INCIDENT_DATE", "REFERENCE", "MISSION", "VICTIM_COUNT"] {
        let mut firsts = Vec::new();
        for direction in ["ASC", "DESC"] {
            let nodes = walk(&app, json!({ "field": field, "direction": direction }), 150).await;
            let ids = ids(&nodes);
            assert_eq!(
                ids.iter().collect::<HashSet<_>>().len() as i64,
                TOTAL_CASES,
                "{field} {direction}: all cases once"
            );
            let keys: Vec<String> = nodes.iter().map(|n| sort_key(field, n)).collect();
            let monotonic = match direction {
                "ASC" => keys.windows(2).all(|w| w[0] <= w[1]),
                _ => keys.windows(2).all(|w| w[0] >= w[1]),
            };
            assert!(monotonic, "{field} {direction} is not monotonic: {keys:?}");
            assert_ne!(
                keys.first(),
                keys.last(),
                "{field}: the data has more than one key"
            );
            firsts.push(keys[0].clone());
        }
        assert_ne!(
            firsts[0], firsts[1],
            "{field}: ASC and DESC start at opposite ends"
        );
    }
}

#[tokio::test]
async fn a_tampered_or_foreign_cursor_is_refused_as_invalid_cursor() {
    let app = spawn_app().await;
    let t = app.analyst();
    let page = read(&app, PAGE_QUERY, json!({ "first": 5 })).await;
    let cursor = text(&page["cases"]["pageInfo"]["endCursor"]).to_string();
    // The genuine cursor works.
    read(&app, PAGE_QUERY, json!({ "first": 5, "after": cursor })).await;

    let alphabet: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['-', '_'])
        .collect();
    for (i, c) in cursor.char_indices() {
        let pos = alphabet
            .iter()
            .position(|a| *a == c)
            .expect("cursors are base64url");
        let replacement = alphabet[(pos + 17) % alphabet.len()];
        let mut tampered = cursor.clone();
        tampered.replace_range(i..i + 1, &replacement.to_string());
        let body = fails_with(
            &app,
            &t,
            PAGE_QUERY,
            json!({ "first": 5, "after": tampered }),
            "INVALID_CURSOR",
        )
        .await;
        assert!(body["data"].is_null() || body["data"]["cases"].is_null());
    }

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged = [
        b64.encode(
            br#"{"order":{"field":"IncidentDate","direction":"Desc"},"key":"2020-01-01","id":"x"}"#,
        ),
        b64.encode(b"hello, world"),
        b64.encode([0xff, 0x00, 0x13, 0x37]),
        "not base64 at all!".to_string(),
        String::new(),
    ];
    for after in forged {
        fails_with(
            &app,
            &t,
            PAGE_QUERY,
            json!({ "first": 5, "after": after }),
            "INVALID_CURSOR",
        )
        .await;
    }
}

#[tokio::test]
async fn a_cursor_issued_for_one_order_is_refused_for_another() {
    let app = spawn_app().await;
    let t = app.analyst();
    let orders = [
        Value::Null,
        json!({ "field": "INCIDENT_DATE", "direction": "ASC" }),
        json!({ "field": "REFERENCE", "direction": "DESC" }),
        json!({ "field": "MISSION", "direction": "ASC" }),
        json!({ "field": "VICTIM_COUNT", "direction": "DESC" }),
    ];
    let mut cursors = Vec::new();
    for order in &orders {
        let page = read(&app, PAGE_QUERY, json!({ "first": 3, "o": order })).await;
        cursors.push(text(&page["cases"]["pageInfo"]["endCursor"]).to_string());
    }
    for (i, cursor) in cursors.iter().enumerate() {
        for (j, order) in orders.iter().enumerate() {
            let vars = json!({ "first": 3, "o": order, "after": cursor });
            if i == j {
                read(&app, PAGE_QUERY, vars).await;
            } else {
                fails_with(&app, &t, PAGE_QUERY, vars, "INVALID_CURSOR").await;
            }
        }
    }
}

#[tokio::test]
async fn page_size_is_bounded_and_never_negative() {
    let app = spawn_app().await;
    let t = app.analyst();
    fails_with(
        &app,
        &t,
        PAGE_QUERY,
        json!({ "first": 501 }),
        "PAGE_TOO_LARGE",
    )
    .await;
    fails_with(
        &app,
        &t,
        PAGE_QUERY,
        json!({ "first": -1 }),
        "INVALID_INPUT",
    )
    .await;
    let max = read(&app, PAGE_QUERY, json!({ "first": 500 })).await;
    assert_eq!(list(&max["cases"]["edges"]).len(), 500);
    let default = read(&app, PAGE_QUERY, json!({})).await;
    assert_eq!(
        list(&default["cases"]["edges"]).len(),
        20,
        "the default page size is 20"
    );
    let empty = read(&app, PAGE_QUERY, json!({ "first": 0 })).await;
    assert_eq!(list(&empty["cases"]["edges"]).len(), 0);
    assert_eq!(empty["cases"]["pageInfo"]["hasNextPage"], json!(true));
}

// ---------------------------------------------------------------------------------------------
// One case

#[tokio::test]
async fn case_by_id_and_by_reference_find_the_same_case() {
    let app = spawn_app().await;
    let q = "query($id: ID, $ref: String) { case(id: $id, reference: $ref) { id reference incidentDate victimCount } }";
    let by_ref = read(&app, q, json!({ "ref": "MINUSMA-20210113" })).await;
    let id = text(&by_ref["case"]["id"]).to_string();
    assert_eq!(by_ref["case"]["incidentDate"], json!("2021-01-13"));
    let by_id = read(&app, q, json!({ "id": id })).await;
    assert_eq!(by_id, by_ref);

    let t = app.analyst();
    fails_with(&app, &t, q, json!({}), "INVALID_INPUT").await;
    fails_with(
        &app,
        &t,
        q,
        json!({ "id": id, "ref": "MINUSMA-20210113" }),
        "INVALID_INPUT",
    )
    .await;

    let unknown = read(
        &app,
        q,
        json!({ "id": "00000000-0000-0000-0000-000000000000" }),
    )
    .await;
    assert_eq!(unknown["case"], Value::Null);
    let unknown = read(&app, q, json!({ "ref": "MINUSMA-18000101" })).await;
    assert_eq!(unknown["case"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// Statistics

const STATS_QUERY: &str = "query($by: StatisticsDimension!, $f: CaseFilterInput) { \
    statistics(by: $by, filter: $f) { by totalCases totalVictims groups { key caseCount victimCount } } }";

#[tokio::test]
async fn statistics_groups_add_up_to_every_case_and_victim() {
    let app = spawn_app().await;
    for by in ["MISSION", "HOST_STATE", "YEAR", "ACT"] {
        let data = read(&app, STATS_QUERY, json!({ "by": by })).await;
        let s = &data["statistics"];
        assert_eq!(s["by"], json!(by));
        assert_eq!(int(&s["totalCases"]), TOTAL_CASES, "{by}");
        assert_eq!(int(&s["totalVictims"]), TOTAL_VICTIMS, "{by}");
        let groups = list(&s["groups"]);
        let keys: Vec<String> = groups
            .iter()
            .map(|g| g["key"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "{by}: groups are ordered by key and distinct: {keys:?}"
        );
        if by != "ACT" {
            assert_eq!(
                groups.iter().map(|g| int(&g["caseCount"])).sum::<i64>(),
                TOTAL_CASES,
                "{by}"
            );
            assert_eq!(
                groups.iter().map(|g| int(&g["victimCount"])).sum::<i64>(),
                TOTAL_VICTIMS,
                "{by}"
            );
        }
        if by == "MISSION" {
            assert_eq!(groups.len(), 52);
            let minusma = groups
                .iter()
                .find(|g| g["key"] == json!("MINUSMA"))
                .expect("MINUSMA group");
            assert_eq!(int(&minusma["caseCount"]), 72);
        }
    }
}

#[tokio::test]
async fn statistics_agree_with_case_counts_and_victims_listed() {
    let app = spawn_app().await;
    let data = read(&app, STATS_QUERY, json!({ "by": "HOST_STATE" })).await;
    for g in list(&data["statistics"]["groups"]).iter().take(8) {
        let key = text(&g["key"]);
        let q = "query($f: CaseFilterInput) { cases(filter: $f, first: 500) { totalCount nodes { victimCount victims { id } } } }";
        let cases = read(&app, q, json!({ "f": { "hostStates": [key] } })).await;
        assert_eq!(
            int(&cases["cases"]["totalCount"]),
            int(&g["caseCount"]),
            "{key}"
        );
        let nodes = list(&cases["cases"]["nodes"]);
        let victims: i64 = nodes.iter().map(|n| list(&n["victims"]).len() as i64).sum();
        assert_eq!(victims, int(&g["victimCount"]), "{key}: victims listed");
        assert!(nodes
            .iter()
            .all(|n| int(&n["victimCount"]) == list(&n["victims"]).len() as i64));
    }
}

#[tokio::test]
async fn a_filter_narrows_statistics() {
    let app = spawn_app().await;
    let data = read(
        &app,
        STATS_QUERY,
        json!({ "by": "MISSION", "f": { "missions": ["MINUSMA"] } }),
    )
    .await;
    let s = &data["statistics"];
    assert_eq!(
        s["groups"],
        json!([{ "key": "MINUSMA", "caseCount": 72, "victimCount": 174 }])
    );
    assert_eq!((int(&s["totalCases"]), int(&s["totalVictims"])), (72, 174));

    let data = read(
        &app,
        STATS_QUERY,
        json!({ "by": "YEAR", "f": { "hostStates": ["MLI"] } }),
    )
    .await;
    let groups = list(&data["statistics"]["groups"]);
    assert_eq!(groups.iter().map(|g| int(&g["caseCount"])).sum::<i64>(), 72);
    assert!(
        groups.iter().all(|g| text(&g["key"]) >= "2013"),
        "MINUSMA started in 2013"
    );

    let data = read(
        &app,
        STATS_QUERY,
        json!({ "by": "ACT", "f": { "from": "2020-01-01", "to": "2020-12-31" } }),
    )
    .await;
    assert_eq!(int(&data["statistics"]["totalCases"]), 9);

    let data = read(
        &app,
        STATS_QUERY,
        json!({ "by": "HOST_STATE", "f": { "missionStatus": "ACTIVE" } }),
    )
    .await;
    let keys: Vec<&str> = list(&data["statistics"]["groups"])
        .iter()
        .map(|g| text(&g["key"]))
        .collect();
    assert!(keys.contains(&"LBN") && !keys.contains(&"MLI"), "{keys:?}");
}

#[tokio::test]
async fn statistics_refuse_an_unknown_mission() {
    let app = spawn_app().await;
    let t = app.analyst();
    let body = fails_with(
        &app,
        &t,
        STATS_QUERY,
        json!({ "by": "MISSION", "f": { "missions": ["MINUSMA", "MINUSXX"] } }),
        "UNKNOWN_MISSION",
    )
    .await;
    assert!(
        body.to_string().contains("MINUSXX"),
        "the message names the unknown mission: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Mutations

const CASE_OUT: &str = "id reference mission { code hostTerritories } hostState incidentDate reportedDate acts \
    location { region locality coordinates { latitude longitude } } summary perpetratorGroups victimCount \
    version source createdAt updatedAt";

const REPORT: &str = "mutation($input: ReportCaseInput!) { reportCase(input: $input) { \
    id reference mission { code hostTerritories } hostState incidentDate reportedDate acts \
    location { region locality coordinates { latitude longitude } } summary perpetratorGroups victimCount \
    version source createdAt updatedAt } }";

/// Reports a case as an officer and returns it.
async fn report(app: &TestApp, input: Value) -> Value {
    write(app, REPORT, json!({ "input": input })).await["reportCase"].clone()
}

const CASE_BY_ID: &str = "query($id: ID!) { case(id: $id) { id reference mission { code hostTerritories } hostState \
    incidentDate reportedDate acts location { region locality coordinates { latitude longitude } } summary \
    perpetratorGroups victimCount version source createdAt updatedAt \
    victims { id category nationality contributingCountry harm gender name serviceNumber } \
    followUpActions { id kind description takenOn } nationalReferences { id state authority reference } \
    capacityBuildingAssistance { id kind } } }";

async fn case_by_id(app: &TestApp, id: &Value) -> Value {
    read(app, CASE_BY_ID, json!({ "id": id })).await["case"].clone()
}

#[tokio::test]
async fn report_case_returns_a_new_case_at_version_one_with_a_mission_date_reference() {
    let app = spawn_app().await;
    let before = read(
        &app,
        r#"{ case(reference: "MINUSMA-20200615") { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(before["case"], Value::Null, "no case yet on that day");
    let case = report(
        &app,
        json!({
            "mission": "MINUSMA",
            "incidentDate": "2020-06-15",
            "reportedDate": "2020-06-16",
            "acts": ["IED", "AMBUSH"],
            "region": "Mopti",
            "locality": "Douentza",
            "coordinates": { "latitude": 15.0, "longitude": -2.95 },
            "summary": "  A convoy struck an IED.  ",
            "perpetratorGroups": ["Unidentified armed group"],
        }),
    )
    .await;
    assert_eq!(case["reference"], json!("MINUSMA-20200615"));
    assert_eq!(case["version"], json!(1));
    assert_eq!(
        case["hostState"], case["mission"]["hostTerritories"][0],
        "defaults to the main territory"
    );
    assert_eq!(case["hostState"], json!("MLI"));
    assert_eq!(case["source"], json!("reported"));
    assert_eq!(case["victimCount"], json!(0));
    assert_eq!(case["incidentDate"], json!("2020-06-15"));
    assert_eq!(case["reportedDate"], json!("2020-06-16"));
    let acts: HashSet<&str> = list(&case["acts"]).iter().map(text).collect();
    assert_eq!(acts, HashSet::from(["IED", "AMBUSH"]));
    assert_eq!(
        case["summary"],
        json!("A convoy struck an IED."),
        "text is trimmed"
    );
    assert_eq!(
        case["location"]["coordinates"],
        json!({ "latitude": 15.0, "longitude": -2.95 })
    );
    assert_eq!(case["createdAt"], case["updatedAt"]);

    // Visible to later queries, by id, by reference and in lists.
    let stored = case_by_id(&app, &case["id"]).await;
    assert_eq!(stored["reference"], case["reference"]);
    assert_eq!(stored["summary"], case["summary"]);
    let by_ref = read(
        &app,
        r#"{ case(reference: "MINUSMA-20200615") { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(by_ref["case"]["id"], case["id"]);
    let (total, _) = filtered(&app, json!({ "missions": ["MINUSMA"] })).await;
    assert_eq!(total, 73);
    let stats = read(&app, STATS_QUERY, json!({ "by": "MISSION" })).await;
    assert_eq!(int(&stats["statistics"]["totalCases"]), TOTAL_CASES + 1);
}

#[tokio::test]
async fn report_case_gives_a_second_case_on_the_same_day_its_own_reference() {
    let app = spawn_app().await;
    let case = report(
        &app,
        json!({ "mission": "MINUSMA", "incidentDate": "2021-01-13", "acts": ["KILLING"] }),
    )
    .await;
    assert_eq!(case["reference"], json!("MINUSMA-20210113-2"));
    let third = report(
        &app,
        json!({ "mission": "MINUSMA", "incidentDate": "2021-01-13", "acts": ["KILLING"] }),
    )
    .await;
    assert_eq!(third["reference"], json!("MINUSMA-20210113-3"));
    let original = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { victimCount source } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        original["case"]["victimCount"],
        json!(3),
        "the imported case is untouched"
    );
}

#[tokio::test]
async fn report_case_keeps_an_explicit_host_state() {
    let app = spawn_app().await;
    let default = report(
        &app,
        json!({ "mission": "MINURCAT", "incidentDate": "2009-03-01", "acts": ["ASSAULT_INJURY"] }),
    )
    .await;
    assert_eq!(default["hostState"], json!("TCD"));
    let explicit =
        report(&app, json!({ "mission": "MINURCAT", "hostState": "caf", "incidentDate": "2009-03-02", "acts": ["DETENTION"] }))
            .await;
    assert_eq!(explicit["hostState"], json!("CAF"));
}

#[tokio::test]
async fn update_case_changes_the_given_fields_and_bumps_the_version() {
    let app = spawn_app().await;
    let case = report(&app, json!({ "mission": "UNIFIL", "incidentDate": "2018-07-01", "acts": ["KILLING"], "region": "South" }))
        .await;
    let q = format!(
        "mutation($id: ID!, $v: Int!, $input: UpdateCaseInput!) {{ updateCase(id: $id, expectedVersion: $v, input: $input) {{ {CASE_OUT} }} }}"
    );
    let updated = write(
        &app,
        &q,
        json!({ "id": case["id"], "v": 1, "input": { "summary": "Shot at a checkpoint.", "acts": ["KILLING", "AMBUSH"], "locality": "Naqoura" } }),
    )
    .await["updateCase"]
        .clone();
    assert_eq!(updated["version"], json!(2));
    assert_eq!(updated["summary"], json!("Shot at a checkpoint."));
    assert_eq!(updated["location"]["locality"], json!("Naqoura"));
    assert_eq!(
        updated["location"]["region"],
        json!("South"),
        "omitted fields stay"
    );
    assert_eq!(updated["reference"], case["reference"]);
    assert_eq!(updated["hostState"], json!("LBN"));
    assert_eq!(list(&updated["acts"]).len(), 2);

    let stored = case_by_id(&app, &case["id"]).await;
    assert_eq!(stored["version"], json!(2));
    assert_eq!(stored["summary"], json!("Shot at a checkpoint."));
    assert_eq!(stored["acts"], updated["acts"]);
    let (ambush, _) = filtered(&app, json!({ "acts": ["AMBUSH"] })).await;
    assert_eq!(ambush, 1, "the new acts are searchable");
}

#[tokio::test]
async fn add_victim_returns_the_victim_and_the_case_at_its_new_version() {
    let app = spawn_app().await;
    let case = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id version victimCount } }"#,
        json!({}),
    )
    .await["case"]
        .clone();
    let q = "mutation($id: ID!, $v: Int, $input: VictimInput!) { addVictim(caseId: $id, expectedVersion: $v, input: $input) { \
             victim { id category nationality contributingCountry harm gender name serviceNumber } \
             case { id version victimCount victims { id } } } }";
    let payload = write(
        &app,
        q,
        json!({ "id": case["id"], "v": case["version"], "input": {
            "category": "MILITARY", "nationality": "civ", "harm": "INJURED", "gender": "FEMALE",
            "name": "A. Koné", "serviceNumber": "CIV-0001" } }),
    )
    .await["addVictim"]
        .clone();
    let victim = &payload["victim"];
    assert_eq!(victim["nationality"], json!("CIV"));
    assert_eq!(
        victim["contributingCountry"],
        json!("CIV"),
        "defaults to the nationality for uniformed personnel"
    );
    assert_eq!(victim["harm"], json!("INJURED"));
    assert_eq!(payload["case"]["version"], json!(int(&case["version"]) + 1));
    assert_eq!(payload["case"]["victimCount"], json!(4));
    assert!(list(&payload["case"]["victims"])
        .iter()
        .any(|v| v["id"] == victim["id"]));

    // A civilian gets no contributing country by default; no expectedVersion is fine.
    let civilian = write(
        &app,
        q,
        json!({ "id": case["id"], "input": { "category": "NATIONAL_CIVILIAN", "nationality": "MLI", "harm": "KILLED" } }),
    )
    .await["addVictim"]
        .clone();
    assert_eq!(civilian["victim"]["contributingCountry"], Value::Null);
    assert_eq!(civilian["case"]["victimCount"], json!(5));

    let stored = case_by_id(&app, &case["id"]).await;
    assert_eq!(list(&stored["victims"]).len(), 5);
    assert_eq!(
        stored["victims"][3]["name"],
        json!("A. Koné"),
        "victims keep their order"
    );
    let stats = read(&app, STATS_QUERY, json!({ "by": "MISSION" })).await;
    assert_eq!(int(&stats["statistics"]["totalVictims"]), TOTAL_VICTIMS + 2);
}

#[tokio::test]
async fn record_follow_up_action_is_listed_on_the_case() {
    let app = spawn_app().await;
    let case = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id version } }"#,
        json!({}),
    )
    .await["case"]
        .clone();
    let q = "mutation($id: ID!, $v: Int, $input: FollowUpActionInput!) { recordFollowUpAction(caseId: $id, expectedVersion: $v, input: $input) { \
             followUpAction { id kind description takenOn recordedAt } case { id version followUpActions { id } } } }";
    let payload = write(
        &app,
        q,
        json!({ "id": case["id"], "v": case["version"], "input": {
            "kind": "REFERRAL_TO_HOST_STATE", "description": "Referred to the Bamako prosecutor.", "takenOn": "2021-02-01" } }),
    )
    .await["recordFollowUpAction"]
        .clone();
    let action = &payload["followUpAction"];
    assert_eq!(action["kind"], json!("REFERRAL_TO_HOST_STATE"));
    assert_eq!(action["takenOn"], json!("2021-02-01"));
    assert!(action["recordedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(payload["case"]["version"], json!(int(&case["version"]) + 1));
    assert_eq!(
        payload["case"]["followUpActions"],
        json!([{ "id": action["id"] }])
    );

    let stored = case_by_id(&app, &case["id"]).await;
    assert_eq!(
        stored["followUpActions"][0]["description"],
        json!("Referred to the Bamako prosecutor.")
    );
}

#[tokio::test]
async fn record_assistance_links_cases_that_resolve_through_cases() {
    let app = spawn_app().await;
    let a = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id } }"#,
        json!({}),
    )
    .await["case"]["id"]
        .clone();
    let b = report(
        &app,
        json!({ "mission": "MINUSMA", "incidentDate": "2022-02-02", "acts": ["IED"] }),
    )
    .await["id"]
        .clone();
    let q = "mutation($input: AssistanceInput!) { recordAssistance(input: $input) { \
             id hostState kind provider status periodStart periodEnd description version cases { id reference } } }";
    let rec = write(
        &app,
        q,
        json!({ "input": {
            "hostState": "MLI", "kind": "FORENSICS", "provider": "UNODC", "status": "OFFERED",
            "periodStart": "2022-01-01", "periodEnd": "2022-06-30", "description": "Forensic kits.",
            "caseIds": [a, b, a] } }),
    )
    .await["recordAssistance"]
        .clone();
    assert_eq!(rec["version"], json!(1));
    assert_eq!(rec["hostState"], json!("MLI"));
    assert_eq!(rec["periodEnd"], json!("2022-06-30"));
    let linked: HashSet<&str> = list(&rec["cases"]).iter().map(|c| text(&c["id"])).collect();
    assert_eq!(
        linked,
        HashSet::from([text(&a), text(&b)]),
        "each case once"
    );

    let listed = read(
        &app,
        r#"{ m: capacityBuildingAssistance(hostStates: ["MLI"]) { id cases { id } } o: capacityBuildingAssistance(hostStates: ["LBN"]) { id } k: capacityBuildingAssistance(kinds: [TRAINING]) { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(list(&listed["m"]).len(), 1);
    assert_eq!(listed["m"][0]["id"], rec["id"]);
    assert_eq!(list(&listed["m"][0]["cases"]).len(), 2);
    assert_eq!(listed["o"], json!([]));
    assert_eq!(listed["k"], json!([]));
    let stored = case_by_id(&app, &a).await;
    assert_eq!(
        stored["capacityBuildingAssistance"],
        json!([{ "id": rec["id"], "kind": "FORENSICS" }])
    );
}

const LINK: &str = "mutation($id: ID!, $v: Int, $input: NationalReferenceInput!) { linkNationalReference(caseId: $id, expectedVersion: $v, input: $input) { \
    nationalReference { id state authority reference recordedAt } case { id version nationalReferences { id reference } } } }";

#[tokio::test]
async fn link_national_reference_is_listed_and_a_duplicate_is_refused() {
    let app = spawn_app().await;
    let case = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id version } }"#,
        json!({}),
    )
    .await["case"]
        .clone();
    let input = json!({ "state": "MLI", "authority": "Pôle judiciaire spécialisé, Bamako", "reference": "RP-2021/0042" });
    let payload = write(
        &app,
        LINK,
        json!({ "id": case["id"], "v": case["version"], "input": input }),
    )
    .await["linkNationalReference"]
        .clone();
    assert_eq!(payload["nationalReference"]["state"], json!("MLI"));
    assert_eq!(
        payload["nationalReference"]["reference"],
        json!("RP-2021/0042")
    );
    let version = int(&payload["case"]["version"]);
    assert_eq!(version, int(&case["version"]) + 1);
    assert_eq!(list(&payload["case"]["nationalReferences"]).len(), 1);

    let body = fails_with(
        &app,
        &app.officer(),
        LINK,
        json!({ "id": case["id"], "input": input }),
        "DUPLICATE",
    )
    .await;
    assert!(no_data(&body["data"]), "{body}");
    let stored = case_by_id(&app, &case["id"]).await;
    assert_eq!(
        int(&stored["version"]),
        version,
        "a refused duplicate changes nothing"
    );
    assert_eq!(list(&stored["nationalReferences"]).len(), 1);
    assert_eq!(
        stored["nationalReferences"][0]["authority"],
        json!("Pôle judiciaire spécialisé, Bamako")
    );

    // The same number held by another state is a different file.
    let other = json!({ "state": "FRA", "authority": "Parquet national antiterroriste", "reference": "RP-2021/0042" });
    write(&app, LINK, json!({ "id": case["id"], "input": other })).await;
    assert_eq!(
        list(&case_by_id(&app, &case["id"]).await["nationalReferences"]).len(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Everything a refused write could have changed: counts, and one case in full.
async fn snapshot(app: &TestApp, case_id: &Value) -> Value {
    let q = "{ cases(first: 0) { totalCount } statistics(by: YEAR) { totalVictims } capacityBuildingAssistance { id } }";
    let counts = read(app, q, json!({})).await;
    json!({ "counts": counts, "case": case_by_id(app, case_id).await })
}

#[tokio::test]
async fn each_invalid_report_gives_its_code_and_writes_nothing() {
    let app = spawn_app().await;
    let case_id = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id } }"#,
        json!({}),
    )
    .await["case"]["id"]
        .clone();
    let before = snapshot(&app, &case_id).await;
    let t = app.officer();
    let base = json!({ "mission": "MINUSMA", "incidentDate": "2021-03-01", "acts": ["KILLING"] });
    let with = |patch: Value| {
        let mut input = base.clone();
        for (k, v) in patch.as_object().expect("an object") {
            input[k] = v.clone();
        }
        json!({ "input": input })
    };
    let cases = [
        (json!({ "hostState": "XXX" }), "INVALID_COUNTRY_CODE"),
        (json!({ "hostState": "ML" }), "INVALID_COUNTRY_CODE"),
        (json!({ "mission": "MINUSXX" }), "UNKNOWN_MISSION"),
        (json!({ "mission": "" }), "UNKNOWN_MISSION"),
        (json!({ "incidentDate": future_date() }), "DATE_IN_FUTURE"),
        (json!({ "reportedDate": future_date() }), "DATE_IN_FUTURE"),
        (json!({ "acts": [] }), "EMPTY_VALUE"),
        (json!({ "summary": "" }), "EMPTY_VALUE"),
        (json!({ "summary": "   \n " }), "EMPTY_VALUE"),
        (json!({ "region": " " }), "EMPTY_VALUE"),
        (
            json!({ "perpetratorGroups": ["Group A", ""] }),
            "EMPTY_VALUE",
        ),
        (
            json!({ "reportedDate": "2021-02-28" }),
            "INVALID_DATE_RANGE",
        ),
        (
            json!({ "coordinates": { "latitude": 91.0, "longitude": 0.0 } }),
            "INVALID_INPUT",
        ),
        (
            json!({ "coordinates": { "latitude": 0.0, "longitude": -180.5 } }),
            "INVALID_INPUT",
        ),
    ];
    for (patch, code) in cases {
        let body = fails_with(&app, &t, REPORT, with(patch.clone()), code).await;
        assert!(no_data(&body["data"]), "{patch}: {body}");
    }
    assert_eq!(
        snapshot(&app, &case_id).await,
        before,
        "refused reports wrote nothing"
    );
    // The base input itself is valid.
    report(&app, base).await;
}

#[tokio::test]
async fn a_malformed_date_fails_validation_whether_literal_or_variable() {
    let app = spawn_app().await;
    let t = app.officer();
    let input = json!({ "mission": "MINUSMA", "incidentDate": "2021-13-01", "acts": ["KILLING"] });
    fails_with(
        &app,
        &t,
        REPORT,
        json!({ "input": input }),
        "GRAPHQL_VALIDATION_FAILED",
    )
    .await;
    let literal = r#"mutation { reportCase(input: {mission: "MINUSMA", incidentDate: "2021-13-01", acts: [KILLING]}) { id } }"#;
    fails_with(&app, &t, literal, json!({}), "GRAPHQL_VALIDATION_FAILED").await;
    for bad in ["2021-02-30", "13/01/2021", "2021-1-1x", ""] {
        let q = "query($d: Date) { cases(filter: {from: $d}) { totalCount } }";
        fails_with(
            &app,
            &app.analyst(),
            q,
            json!({ "d": bad }),
            "GRAPHQL_VALIDATION_FAILED",
        )
        .await;
    }
    let q = r#"{ cases(filter: {to: "2021-00-10"}) { totalCount } }"#;
    fails_with(
        &app,
        &app.analyst(),
        q,
        json!({}),
        "GRAPHQL_VALIDATION_FAILED",
    )
    .await;
    let (total, _) = filtered(&app, json!({ "missions": ["MINUSMA"] })).await;
    assert_eq!(total, 72, "nothing was written");
}

#[tokio::test]
async fn each_invalid_change_to_a_case_gives_its_code_and_changes_nothing() {
    let app = spawn_app().await;
    let case = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id version } }"#,
        json!({}),
    )
    .await["case"]
        .clone();
    let id = case["id"].clone();
    let v = case["version"].clone();
    let before = snapshot(&app, &id).await;
    let t = app.officer();

    let update = "mutation($id: ID!, $v: Int!, $input: UpdateCaseInput!) { updateCase(id: $id, expectedVersion: $v, input: $input) { id version } }";
    let updates = [
        (json!({ "hostState": "ZZZ" }), "INVALID_COUNTRY_CODE"),
        (json!({ "incidentDate": future_date() }), "DATE_IN_FUTURE"),
        (json!({ "acts": [] }), "EMPTY_VALUE"),
        (json!({ "summary": "  " }), "EMPTY_VALUE"),
        (
            json!({ "coordinates": { "latitude": -90.01, "longitude": 10.0 } }),
            "INVALID_INPUT",
        ),
        (
            json!({ "reportedDate": "2021-01-12" }),
            "INVALID_DATE_RANGE",
        ),
        (
            json!({ "incidentDate": "2021-01-20", "reportedDate": "2021-01-19" }),
            "INVALID_DATE_RANGE",
        ),
    ];
    for (input, code) in updates {
        fails_with(
            &app,
            &t,
            update,
            json!({ "id": id, "v": v, "input": input }),
            code,
        )
        .await;
    }
    fails_with(
        &app,
        &t,
        update,
        json!({ "id": "no-such-case", "v": 1, "input": { "summary": "x" } }),
        "NOT_FOUND",
    )
    .await;

    let victim = "mutation($id: ID!, $input: VictimInput!) { addVictim(caseId: $id, input: $input) { victim { id } } }";
    let victims = [
        (
            json!({ "category": "POLICE", "nationality": "XXX", "harm": "KILLED" }),
            "INVALID_COUNTRY_CODE",
        ),
        (
            json!({ "category": "POLICE", "contributingCountry": "EU", "harm": "KILLED" }),
            "INVALID_COUNTRY_CODE",
        ),
        (
            json!({ "category": "POLICE", "harm": "KILLED", "name": " " }),
            "EMPTY_VALUE",
        ),
        (
            json!({ "category": "POLICE", "harm": "KILLED", "serviceNumber": "" }),
            "EMPTY_VALUE",
        ),
    ];
    for (input, code) in victims {
        fails_with(&app, &t, victim, json!({ "id": id, "input": input }), code).await;
    }
    let unknown =
        json!({ "id": "no-such-case", "input": { "category": "POLICE", "harm": "KILLED" } });
    fails_with(&app, &t, victim, unknown, "NOT_FOUND").await;

    let follow = "mutation($id: ID!, $input: FollowUpActionInput!) { recordFollowUpAction(caseId: $id, input: $input) { followUpAction { id } } }";
    let follows = [
        (
            json!({ "kind": "OTHER", "description": "", "takenOn": "2021-02-01" }),
            "EMPTY_VALUE",
        ),
        (
            json!({ "kind": "OTHER", "description": "Done.", "takenOn": future_date() }),
            "DATE_IN_FUTURE",
        ),
    ];
    for (input, code) in follows {
        fails_with(&app, &t, follow, json!({ "id": id, "input": input }), code).await;
    }

    let links = [
        (
            json!({ "state": "MLI", "authority": "Tribunal", "reference": "" }),
            "EMPTY_VALUE",
        ),
        (
            json!({ "state": "MLI", "authority": "Tribunal", "reference": "   " }),
            "EMPTY_VALUE",
        ),
        (
            json!({ "state": "MLI", "authority": "", "reference": "RP-1" }),
            "EMPTY_VALUE",
        ),
        (
            json!({ "state": "Mali", "authority": "Tribunal", "reference": "RP-1" }),
            "INVALID_COUNTRY_CODE",
        ),
        (
            json!({ "state": "MLI", "authority": "Tribunal", "reference": "RP\n1" }),
            "INVALID_INPUT",
        ),
    ];
    for (input, code) in links {
        fails_with(&app, &t, LINK, json!({ "id": id, "input": input }), code).await;
    }

    let assist = "mutation($input: AssistanceInput!) { recordAssistance(input: $input) { id } }";
    let base =
        json!({ "hostState": "MLI", "kind": "TRAINING", "provider": "UNPOL", "status": "OFFERED" });
    let with = |k: &str, val: Value| {
        let mut input = base.clone();
        input[k] = val;
        json!({ "input": input })
    };
    fails_with(
        &app,
        &t,
        assist,
        with("hostState", json!("XKK")),
        "INVALID_COUNTRY_CODE",
    )
    .await;
    fails_with(
        &app,
        &t,
        assist,
        with("provider", json!(" ")),
        "EMPTY_VALUE",
    )
    .await;
    fails_with(
        &app,
        &t,
        assist,
        with("caseIds", json!([id, "no-such-case"])),
        "NOT_FOUND",
    )
    .await;
    let mut range = with("periodStart", json!("2022-06-01"));
    range["input"]["periodEnd"] = json!("2022-01-01");
    fails_with(&app, &t, assist, range, "INVALID_DATE_RANGE").await;

    assert_eq!(
        snapshot(&app, &id).await,
        before,
        "refused writes changed nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Optimistic concurrency

#[tokio::test]
async fn of_two_updates_from_the_same_version_one_wins_and_the_other_conflicts() {
    let app = spawn_app().await;
    let case = report(&app, json!({ "mission": "UNMISS", "incidentDate": "2016-07-10", "acts": ["ATTACK_ON_PREMISES"] })).await;
    let q = "mutation($id: ID!, $v: Int!, $input: UpdateCaseInput!) { updateCase(id: $id, expectedVersion: $v, input: $input) { version summary } }";
    let t = app.officer();
    let first = json!({ "id": case["id"], "v": 1, "input": { "summary": "Version A", "region": "Juba A" } });
    let second = json!({ "id": case["id"], "v": 1, "input": { "summary": "Version B", "region": "Juba B" } });
    let ((s1, b1), (s2, b2)) = tokio::join!(call(&app, &t, q, first), call(&app, &t, q, second));
    assert_eq!((s1, s2), (200, 200));
    let outcomes = [
        (codes(&b1), &b1, "Version A", "Juba A"),
        (codes(&b2), &b2, "Version B", "Juba B"),
    ];
    let winners: Vec<_> = outcomes.iter().filter(|o| o.0.is_empty()).collect();
    let losers: Vec<_> = outcomes.iter().filter(|o| !o.0.is_empty()).collect();
    assert_eq!(winners.len(), 1, "exactly one update wins: {b1} {b2}");
    assert_eq!(losers[0].0, vec!["VERSION_CONFLICT".to_string()]);
    assert!(no_data(&losers[0].1["data"]), "{}", losers[0].1);
    assert_eq!(winners[0].1["data"]["updateCase"]["version"], json!(2));

    let stored = case_by_id(&app, &case["id"]).await;
    assert_eq!(stored["version"], json!(2));
    assert_eq!(stored["summary"], json!(winners[0].2));
    assert_eq!(
        stored["location"]["region"],
        json!(winners[0].3),
        "none of the loser's change is stored"
    );

    // Retrying with the version just read succeeds.
    let retry = json!({ "id": case["id"], "v": 2, "input": { "summary": losers[0].2 } });
    let data = write(&app, q, retry).await;
    assert_eq!(data["updateCase"]["version"], json!(3));
}

#[tokio::test]
async fn writes_with_a_stale_expected_version_conflict_and_change_nothing() {
    let app = spawn_app().await;
    let case = report(
        &app,
        json!({ "mission": "UNISFA", "incidentDate": "2017-01-05", "acts": ["KILLING"] }),
    )
    .await;
    let id = case["id"].clone();
    let update = "mutation($id: ID!, $v: Int!, $input: UpdateCaseInput!) { updateCase(id: $id, expectedVersion: $v, input: $input) { version } }";
    write(
        &app,
        update,
        json!({ "id": id, "v": 1, "input": { "summary": "Now at version 2." } }),
    )
    .await;
    let before = snapshot(&app, &id).await;
    let t = app.officer();

    let victim = "mutation($id: ID!, $v: Int, $input: VictimInput!) { addVictim(caseId: $id, expectedVersion: $v, input: $input) { victim { id } } }";
    let input = json!({ "category": "MILITARY", "nationality": "ETH", "harm": "KILLED" });
    fails_with(
        &app,
        &t,
        victim,
        json!({ "id": id, "v": 1, "input": input }),
        "VERSION_CONFLICT",
    )
    .await;
    let follow = "mutation($id: ID!, $v: Int, $input: FollowUpActionInput!) { recordFollowUpAction(caseId: $id, expectedVersion: $v, input: $input) { followUpAction { id } } }";
    let action = json!({ "kind": "NOTE_VERBALE", "description": "Sent.", "takenOn": "2017-01-10" });
    fails_with(
        &app,
        &t,
        follow,
        json!({ "id": id, "v": 1, "input": action }),
        "VERSION_CONFLICT",
    )
    .await;
    let link = json!({ "state": "SDN", "authority": "Prosecutor", "reference": "K-1" });
    fails_with(
        &app,
        &t,
        LINK,
        json!({ "id": id, "v": 1, "input": link }),
        "VERSION_CONFLICT",
    )
    .await;
    fails_with(
        &app,
        &t,
        update,
        json!({ "id": id, "v": 1, "input": { "summary": "Stale." } }),
        "VERSION_CONFLICT",
    )
    .await;
    fails_with(
        &app,
        &t,
        update,
        json!({ "id": id, "v": 3, "input": { "summary": "Ahead." } }),
        "VERSION_CONFLICT",
    )
    .await;
    assert_eq!(snapshot(&app, &id).await, before);

    // With the current version the same write goes through.
    let data = write(&app, victim, json!({ "id": id, "v": 2, "input": input })).await;
    assert!(data["addVictim"]["victim"]["id"].is_string());
    assert_eq!(case_by_id(&app, &id).await["victimCount"], json!(1));
}

// ---------------------------------------------------------------------------------------------
// Authorization of writes

#[tokio::test]
async fn only_case_officers_may_write_anything() {
    let app = spawn_app().await;
    let case = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id version } }"#,
        json!({}),
    )
    .await["case"]
        .clone();
    let (id, v) = (case["id"].clone(), case["version"].clone());
    let before = snapshot(&app, &id).await;
    let writes: Vec<(&str, Value)> = vec![
        (REPORT, json!({ "input": { "mission": "MINUSMA", "incidentDate": "2021-03-01", "acts": ["KILLING"] } })),
        (
            "mutation($id: ID!, $v: Int!) { updateCase(id: $id, expectedVersion: $v, input: {summary: \"x\"}) { id } }",
            json!({ "id": id, "v": v }),
        ),
        (
            "mutation($id: ID!) { addVictim(caseId: $id, input: {category: POLICE, harm: KILLED}) { victim { id } } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { recordFollowUpAction(caseId: $id, input: {kind: OTHER, description: \"x\", takenOn: \"2021-02-01\"}) { followUpAction { id } } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { recordAssistance(input: {hostState: \"MLI\", kind: TRAINING, provider: \"UNPOL\", status: OFFERED, caseIds: [$id]}) { id } }",
            json!({ "id": id }),
        ),
        (LINK, json!({ "id": id, "input": { "state": "MLI", "authority": "Tribunal", "reference": "RP-9" } })),
    ];
    let principals = [
        ("UN analyst", app.analyst()),
        (
            "member-state analyst",
            app.token("MLI", &["member-state-analyst"]),
        ),
        ("admin", app.token("UN", &["admin"])),
        (
            "focal point and auditor",
            app.token("UN/MINUSMA", &["focal-point", "auditor"]),
        ),
    ];
    for (who, token) in &principals {
        for (q, vars) in &writes {
            let (status, body) = call(&app, token, q, vars.clone()).await;
            assert_eq!(codes(&body), vec!["FORBIDDEN".to_string()], "{who}: {body}");
            assert_eq!(status, 200, "{who}: a refused field keeps HTTP 200");
            assert!(no_data(&body["data"]), "{who}: {body}");
        }
    }
    assert_eq!(snapshot(&app, &id).await, before, "nothing was written");

    // Without a token nothing runs at all.
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": writes[0].0, "variables": writes[0].1 }))
        .send()
        .await
        .expect("request sent");
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(codes(&body), vec!["UNAUTHENTICATED".to_string()]);
    assert_eq!(snapshot(&app, &id).await, before);
}

// ---------------------------------------------------------------------------------------------
// Batching

#[tokio::test]
async fn nested_case_fields_cost_the_same_few_queries_whatever_the_page_size() {
    let app = spawn_app().await;
    // Give a few cases follow-ups and references so the batches return rows.
    let case = read(
        &app,
        r#"{ case(reference: "MINUSMA-20210113") { id } }"#,
        json!({}),
    )
    .await["case"]["id"]
        .clone();
    let link = json!({ "state": "MLI", "authority": "Tribunal", "reference": "RP-1" });
    write(&app, LINK, json!({ "id": case, "input": link })).await;

    let q = "query($first: Int) { cases(first: $first, filter: {from: \"2000-01-01\"}) { nodes { id \
             victims { nationality } mission { name status } followUpActions { kind } nationalReferences { reference } } } }";
    let mut deltas = Vec::new();
    for first in [5, 100] {
        let before = app.store.query_count();
        let data = read(&app, q, json!({ "first": first })).await;
        let after = app.store.query_count();
        let nodes = list(&data["cases"]["nodes"]);
        assert_eq!(nodes.len(), first);
        assert!(nodes.iter().all(|n| n["mission"]["name"].is_string()));
        let missions: HashSet<&str> = nodes.iter().map(|n| text(&n["mission"]["name"])).collect();
        if first == 100 {
            assert!(missions.len() > 5, "the page spans many missions");
            assert!(nodes
                .iter()
                .any(|n| list(&n["nationalReferences"]).len() == 1));
        }
        deltas.push(after - before);
    }
    assert_eq!(
        deltas[0], deltas[1],
        "queries per request do not grow with the page: {deltas:?}"
    );
    assert!(
        deltas[1] <= 8,
        "a page costs a handful of queries, not one per case: {deltas:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn an_operation_nested_too_deep_is_refused() {
    let app = spawn_app().await;
    let t = app.analyst();
    let nest = |levels: usize| {
        format!(
            "{{ cases(first: 1) {{ nodes {{ {} id {} }} }} }}",
            "capacityBuildingAssistance { cases { ".repeat(levels),
            "} } ".repeat(levels)
        )
    };
    // cases > nodes > (assistance > cases) x n > id: depth 3 + 2n.
    read(&app, &nest(4), json!({})).await;
    let (status, body) = call(&app, &t, &nest(6), json!({})).await;
    assert_eq!(
        codes(&body),
        vec!["OPERATION_TOO_COMPLEX".to_string()],
        "{body}"
    );
    assert_eq!(status, 400);
    assert!(
        body.get("data").is_none(),
        "a refused operation does not run: {body}"
    );
}

#[tokio::test]
async fn an_operation_with_more_than_64_aliases_is_refused() {
    let app = spawn_app().await;
    let t = app.analyst();
    let aliases = |n: usize| {
        let fields: String = (0..n)
            .map(|i| format!("a{i}: mission(code: \"MINUSMA\") {{ code }} "))
            .collect();
        format!("{{ {fields} }}")
    };
    let data = read(&app, &aliases(64), json!({})).await;
    assert_eq!(data["a63"]["code"], json!("MINUSMA"));
    fails_with(&app, &t, &aliases(65), json!({}), "OPERATION_TOO_COMPLEX").await;

    // Aliases hidden in a fragment count too.
    let fields: String = (0..65).map(|i| format!("n{i}: name ")).collect();
    let q =
        format!("{{ mission(code: \"MINUSMA\") {{ ...F }} }} fragment F on Mission {{ {fields} }}");
    fails_with(&app, &t, &q, json!({}), "OPERATION_TOO_COMPLEX").await;
}

const INTROSPECTION: &str = "{ __schema { queryType { name } types { name } } }";
const MISSPELLED: &str = r#"{ mission(code: "MINUSMA") { nam } }"#;

#[tokio::test]
async fn introspection_and_suggestions_work_with_the_demo_config() {
    let app = spawn_app().await;
    let data = read(&app, INTROSPECTION, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], json!("Query"));
    assert!(list(&data["__schema"]["types"])
        .iter()
        .any(|t| t["name"] == json!("Case")));
    let body = fails_with(
        &app,
        &app.analyst(),
        MISSPELLED,
        json!({}),
        "GRAPHQL_VALIDATION_FAILED",
    )
    .await;
    assert!(
        body.to_string().contains("Did you mean"),
        "suggestions help developers: {body}"
    );
}

#[tokio::test]
async fn without_introspection_the_schema_stays_hidden_and_errors_suggest_nothing() {
    let app = try_spawn(AppOptions {
        configure: |c| c.server.introspection = false,
        ..Default::default()
    })
    .await
    .expect("SQLite is always available");
    let t = app.analyst();
    let (_, body) = call(&app, &t, INTROSPECTION, json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
    assert!(
        !body.to_string().contains("MutationRoot") && !body.to_string().contains("\"Query\""),
        "no schema leaks: {body}"
    );
    let (_, body) = call(
        &app,
        &t,
        r#"{ __type(name: "Case") { name fields { name } } }"#,
        json!({}),
    )
    .await;
    assert!(body["data"]["__type"].is_null(), "{body}");
    assert!(
        !body.to_string().contains("victims"),
        "no schema leaks: {body}"
    );

    let body = fails_with(&app, &t, MISSPELLED, json!({}), "GRAPHQL_VALIDATION_FAILED").await;
    let message = text(&body["errors"][0]["message"]);
    assert!(message.contains("nam"), "{body}");
    assert!(!message.contains("Did you mean"), "{body}");
    assert!(!body.to_string().contains("\"name\""), "{body}");

    // Ordinary queries still work.
    let data = read(&app, r#"{ mission(code: "MINUSMA") { name } }"#, json!({})).await;
    assert!(data["mission"]["name"].is_string());
}

/// No data came back: `data` is null, or each of its root fields is (mutation fields are
/// nullable, so a refused or failed write is `{"reportCase": null}` with its error).
fn no_data(data: &Value) -> bool {
    data.is_null()
        || data
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_null))
}
