//! Attack-shaped queries against the access rules: each plants unique sensitive values and
//! searches the raw response text for them, whatever the query shape (aliases, fragments,
//! pagination, filters, statistics, cursors, tokens, error messages, introspection).

mod access_fixtures;
mod common;

use access_fixtures::*;
use common::error_codes;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

async fn plain() -> Fixture {
    start(Setup::default()).await
}

/// Victim values a TCD principal may not read (the SEN victim's), and everything RESTRICTED.
fn not_for_tcd() -> Vec<&'static str> {
    vec![
        SEN_NAME,
        SEN_SERVICE,
        LATITUDE_TEXT,
        LONGITUDE_TEXT,
        SUSPECT,
    ]
}

#[tokio::test]
async fn aliases_do_not_reveal_another_victims_name_or_the_coordinates() {
    let fx = plain().await;
    let q = r#"query($id: ID!) { case(id: $id) {
        a: victims { n1: name n2: name s: serviceNumber }
        b: victims { x: name }
        l: location { c: coordinates { la: latitude lo: longitude } }
    } }"#;
    let (_, text, body) = run(&fx.app, &NATIONALITY_TCD, q, json!({ "id": fx.case_id })).await;
    assert_absent(&text, &not_for_tcd(), "TCD with aliases");
    assert!(
        text.contains(TCD_NAME),
        "TCD reads its own victim's name (the query works): {text}"
    );
    assert!(
        error_codes(&body).iter().all(|c| c == "FORBIDDEN_FIELD"),
        "{text}"
    );
    let (_, text, body) = run(&fx.app, &UNRELATED_FRA, q, json!({ "id": fx.case_id })).await;
    assert_absent(&text, &planted(), "FRA with aliases");
    assert_eq!(body["data"]["case"], Value::Null, "{text}");
}

#[tokio::test]
async fn fragments_spread_twice_and_inline_fragments_are_checked_like_fields() {
    let fx = plain().await;
    let q = r#"
    fragment V on Victim { name serviceNumber ... on Victim { name } }
    fragment C on Case { victims { ...V ...V } location { coordinates { latitude longitude } } }
    query($id: ID!) { case(id: $id) { ...C ...C ... on Case { summary victims { ... on Victim { name } } } } }"#;
    let vars = json!({ "id": fx.case_id });
    let (_, text, _) = run(&fx.app, &NATIONALITY_TCD, q, vars.clone()).await;
    assert_absent(&text, &not_for_tcd(), "TCD with fragments");
    assert!(text.contains(TCD_NAME), "{text}");
    let (_, text, _) = run(&fx.app, &CONTRIBUTOR_SEN, q, vars.clone()).await;
    assert_absent(
        &text,
        &[TCD_NAME, TCD_SERVICE, LATITUDE_TEXT, LONGITUDE_TEXT],
        "SEN with fragments",
    );
    assert!(text.contains(SEN_NAME), "{text}");
    let (_, text, _) = run(&fx.app, &HOST_MLI, q, vars.clone()).await;
    assert_absent(
        &text,
        &[LATITUDE_TEXT, LONGITUDE_TEXT],
        "host state with fragments",
    );
    for who in [UNRELATED_FRA, REGIONAL_AU] {
        let (_, text, _) = run(&fx.app, &who, q, vars.clone()).await;
        assert_absent(&text, &planted(), who.label);
    }
}

const PAGE: &str = r#"query($after: String, $first: Int, $f: CaseFilterInput) {
  cases(first: $first, after: $after, filter: $f) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id hostState victims { nationality contributingCountry name serviceNumber } summary location { coordinates { latitude } } }
  }
}"#;

/// Walks every page as `who`; returns (ids in order, totalCount of each page, raw texts).
async fn walk_pages(
    fx: &Fixture,
    who: &Who,
    first: i64,
    filter: Value,
) -> (Vec<Value>, BTreeSet<i64>, String) {
    let mut after = Value::Null;
    let mut nodes = Vec::new();
    let mut totals = BTreeSet::new();
    let mut texts = String::new();
    for _ in 0..200 {
        let (status, text, body) = run(
            &fx.app,
            who,
            PAGE,
            json!({ "after": after, "first": first, "f": filter }),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let page = &body["data"]["cases"];
        assert!(page.is_object(), "{}: {text}", who.label);
        totals.insert(page["totalCount"].as_i64().expect("totalCount"));
        nodes.extend(page["nodes"].as_array().expect("nodes").iter().cloned());
        texts.push_str(&text);
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return (nodes, totals, texts);
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    panic!("pagination does not end");
}

fn related_to(node: &Value, state: &str) -> bool {
    node["hostState"] == json!(state)
        || node["victims"].as_array().is_some_and(|vs| {
            vs.iter().any(|v| {
                v["nationality"] == json!(state) || v["contributingCountry"] == json!(state)
            })
        })
}

#[tokio::test]
async fn paging_through_every_case_as_an_unrelated_state_yields_only_its_related_cases_and_a_matching_total(
) {
    let fx = plain().await;
    let (all, _, _) = walk_pages(&fx, &UN_ANALYST, 500, Value::Null).await;
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|n| related_to(n, "FRA"))
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();
    assert!(
        !expected.is_empty(),
        "the bundled data has cases with French victims"
    );
    assert!(
        all.len() > expected.len() + 100,
        "most cases are unrelated to FRA"
    );

    let (nodes, totals, text) = walk_pages(&fx, &UNRELATED_FRA, 37, Value::Null).await;
    let seen: Vec<String> = nodes
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no case twice across pages");
    assert_eq!(
        unique, expected,
        "FRA pages through exactly its related cases"
    );
    assert_eq!(
        totals,
        BTreeSet::from([seen.len() as i64]),
        "totalCount equals what FRA can page through"
    );
    assert!(
        !unique.contains(&fx.case_id),
        "the planted Mali case is not FRA's"
    );
    assert_absent(&text, &planted(), "FRA pagination");
}

#[tokio::test]
async fn a_member_states_total_count_equals_the_cases_it_can_page_through_for_any_filter() {
    let fx = plain().await;
    let filters = [
        Value::Null,
        json!({ "missions": ["MINUSMA"] }),
        json!({ "victimNationalities": ["TCD"] }),
        json!({ "victimNationalities": ["SEN"], "from": "2020-01-01" }),
        json!({ "hostStates": ["MLI"], "to": INCIDENT_DATE }),
    ];
    for who in [UNRELATED_FRA, NATIONALITY_TCD, CONTRIBUTOR_SEN, HOST_MLI] {
        for f in &filters {
            let (nodes, totals, text) = walk_pages(&fx, &who, 200, f.clone()).await;
            assert_eq!(
                totals,
                BTreeSet::from([nodes.len() as i64]),
                "{} with {f}: count oracle",
                who.label
            );
            let state = who.org;
            assert!(
                nodes.iter().all(|n| related_to(n, state)),
                "{} sees an unrelated case with {f}",
                who.label
            );
            if state == "FRA" {
                assert_absent(&text, &planted(), "FRA filtered pages");
            }
        }
    }
}

#[tokio::test]
async fn a_regional_organisation_may_not_filter_or_order_cases_it_cannot_read() {
    let fx = plain().await;
    let attempts = [
        (
            "filter",
            json!({ "f": { "victimNationalities": ["TCD"] } }),
            "query($f: CaseFilterInput) { cases(filter: $f) { totalCount } }",
        ),
        (
            "filter",
            json!({ "f": { "missions": ["MINUSMA"], "from": INCIDENT_DATE } }),
            "query($f: CaseFilterInput) { cases(filter: $f) { totalCount } }",
        ),
        (
            "order",
            json!({}),
            "{ cases(orderBy: { field: VICTIM_COUNT }) { totalCount nodes { id } } }",
        ),
    ];
    for (what, vars, q) in attempts {
        let (status, text, body) = run(&fx.app, &REGIONAL_AU, q, vars).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            error_codes(&body),
            vec!["FORBIDDEN_FIELD"],
            "AU {what}: {text}"
        );
        assert_eq!(body["errors"][0]["path"], json!(["cases"]), "{text}");
        assert!(
            body["data"]["cases"].is_null(),
            "AU {what} gets no count: {text}"
        );
    }
    // Without filter, AU sees no case at all.
    let (_, text, body) = run(
        &fx.app,
        &REGIONAL_AU,
        "{ cases { totalCount nodes { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["cases"]["totalCount"], json!(0), "{text}");
}

const STATS: &str = r#"query($by: StatisticsDimension!, $f: CaseFilterInput) {
  statistics(by: $by, filter: $f) { totalCases totalVictims groups { key caseCount victimCount suppressed } }
}"#;

async fn stats(fx: &Fixture, who: &Who, by: &str, f: Value) -> (Value, String) {
    let (status, text, body) = run(&fx.app, who, STATS, json!({ "by": by, "f": f })).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        body.get("errors").is_none(),
        "{} statistics: {text}",
        who.label
    );
    (body["data"]["statistics"].clone(), text)
}

fn threshold() -> i64 {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.toml"))
        .expect("policy");
    let file: casegraph::access::PolicyFile =
        casegraph::config::load_toml(&text, "policy").expect("policy parses");
    i64::from(file.enforcement.small_cell_threshold)
}

#[tokio::test]
async fn statistics_suppress_small_cells_and_their_complements_for_an_unrelated_state() {
    let fx = plain().await;
    // A second MINUSMA case, in Niger: a host-state cell of one.
    report_case(&fx.app, "MINUSMA", "NER", "2022-05-02").await;
    let t = threshold();
    let mut suppressed_somewhere = false;
    for by in ["MISSION", "HOST_STATE", "YEAR", "ACT"] {
        let (truth, _) = stats(&fx, &UN_ANALYST, by, Value::Null).await;
        let (s, text) = stats(&fx, &UNRELATED_FRA, by, Value::Null).await;
        let groups = s["groups"].as_array().expect("groups");
        let true_groups = truth["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), true_groups.len(), "{by}: {text}");
        let suppressed = groups
            .iter()
            .filter(|g| g["suppressed"] == json!(true))
            .count();
        suppressed_somewhere |= suppressed > 0;
        assert!(
            suppressed != 1 || s["totalCases"].is_null(),
            "{by}: a lone suppressed cell is recomputable from the total: {text}"
        );
        for (g, tg) in groups.iter().zip(true_groups) {
            let n = tg["caseCount"]
                .as_i64()
                .expect("the analyst sees every count");
            if g["suppressed"] == json!(true) {
                assert!(
                    g["caseCount"].is_null() && g["victimCount"].is_null(),
                    "{by}: {text}"
                );
            } else {
                assert!(n >= t, "{by}: a cell of {n} published: {text}");
                assert_eq!(g["caseCount"], tg["caseCount"], "{by}: {text}");
            }
            if n < t {
                assert_eq!(
                    g["suppressed"],
                    json!(true),
                    "{by}: a cell of {n} published: {text}"
                );
            }
        }
        if !s["totalCases"].is_null() {
            assert_eq!(s["totalCases"], truth["totalCases"], "{by}: {text}");
        }
        assert_absent(&text, &planted(), "statistics");
    }
    assert!(suppressed_somewhere, "the battery exercised suppression");
}

#[tokio::test]
async fn an_unrelated_state_cannot_filter_statistics_so_no_two_tables_can_be_subtracted() {
    // Filtered tables could be subtracted from each other (or from the unfiltered ones) to
    // recover a suppressed cell: a principal not concerned with every case gets no filter.
    let fx = plain().await;
    report_case(&fx.app, "MINUSMA", "NER", "2022-05-02").await;
    let filters = [
        json!({ "missions": ["MINUSMA"] }),
        json!({ "missions": ["MINUSMA"], "hostStates": ["MLI"] }),
        json!({ "victimNationalities": ["TCD"] }),
        json!({ "from": "2023-03-01", "to": "2023-03-31" }),
    ];
    for by in ["MISSION", "HOST_STATE"] {
        for f in &filters {
            let (status, text, body) =
                run(&fx.app, &UNRELATED_FRA, STATS, json!({ "by": by, "f": f })).await;
            assert_eq!(status, 200, "{text}");
            assert_eq!(
                error_codes(&body),
                vec!["FORBIDDEN_FIELD"],
                "{by} {f}: {text}"
            );
            assert!(
                body["data"]["statistics"].is_null(),
                "no partial table: {text}"
            );
            let (truth, _) = stats(&fx, &UN_ANALYST, by, f.clone()).await;
            assert!(
                truth["totalCases"].is_number(),
                "the UN analyst may filter: {truth}"
            );
        }
    }
}

#[tokio::test]
async fn a_foreign_case_id_answers_exactly_like_a_case_that_does_not_exist() {
    let fx = plain().await;
    let q = "query($id: ID!) { case(id: $id) { id reference summary victims { name } } }";
    for who in [UNRELATED_FRA, REGIONAL_AU] {
        let (s1, foreign, _) = run(&fx.app, &who, q, json!({ "id": fx.case_id })).await;
        let (s2, unknown, _) = run(
            &fx.app,
            &who,
            q,
            json!({ "id": "00000000-0000-4000-8000-000000000000" }),
        )
        .await;
        assert_eq!(
            (s1, &foreign),
            (s2, &unknown),
            "{}: a foreign case differs from an unknown one",
            who.label
        );
        assert_eq!(foreign, r#"{"data":{"case":null}}"#);
        let qr = "query($r: String!) { case(reference: $r) { id summary } }";
        let (_, by_ref, _) = run(&fx.app, &who, qr, json!({ "r": fx.case_ref })).await;
        let (_, unknown_ref, _) = run(&fx.app, &who, qr, json!({ "r": "MINUSMA-19000101" })).await;
        assert_eq!(by_ref, unknown_ref, "{}: by reference", who.label);
    }
}

#[tokio::test]
async fn the_entities_entry_point_resolves_a_case_only_for_those_who_see_it() {
    // Federation's `_entities` resolves `Case` by id for a supergraph: it follows the same
    // visibility as `case(id:)`, and the same enforcement applies to what it resolves.
    let fx = start(Setup {
        no_introspection: true,
        ..Setup::default()
    })
    .await;
    let q = r#"query($r: [_Any!]!) { _entities(representations: $r) { __typename ... on Case { id summary victims { name } } } }"#;
    let case = json!({ "r": [{ "__typename": "Case", "id": fx.case_id }] });
    for who in [UNRELATED_FRA, REGIONAL_AU] {
        let (_, text, body) = run(&fx.app, &who, q, case.clone()).await;
        assert_absent(&text, &planted(), who.label);
        assert!(!text.contains(&fx.case_id), "{}: {text}", who.label);
        assert_eq!(
            body["data"]["_entities"],
            json!([null]),
            "{}: {text}",
            who.label
        );
        // Exactly what a case that does not exist gives.
        let (_, _, none) = run(
            &fx.app,
            &who,
            q,
            json!({ "r": [{ "__typename": "Case", "id": "no-such-case" }] }),
        )
        .await;
        assert_eq!(none, body, "{}", who.label);
    }
    // A victim's state resolves it, without what it may not read (the other victim's name).
    let (_, text, body) = run(&fx.app, &NATIONALITY_TCD, q, case.clone()).await;
    assert_eq!(
        body["data"]["_entities"][0]["id"],
        json!(fx.case_id),
        "{text}"
    );
    assert_absent(&text, &[SEN_NAME], "nationality state through _entities");
    assert!(text.contains(TCD_NAME), "its own victim's name: {text}");
    // The case officer reads it all.
    let (_, text, body) = run(&fx.app, &UN_OFFICER, q, case).await;
    assert_eq!(
        body["data"]["_entities"][0]["summary"],
        json!(SUMMARY),
        "{text}"
    );
    // A type with no entity resolver resolves nothing.
    let victim = json!({ "r": [{ "__typename": "Victim", "id": "x" }] });
    let (_, text, _) = run(&fx.app, &UN_OFFICER, q, victim).await;
    assert_absent(&text, &planted(), "an unknown entity type");
}

#[tokio::test]
async fn forged_expired_and_wrong_audience_tokens_are_refused_with_401() {
    let fx = plain().await;
    let q = "query($id: ID!) { case(id: $id) { summary victims { name } } }";
    let vars = json!({ "id": fx.case_id });
    let other_dir = tempfile::tempdir().expect("dir");
    let other =
        casegraph::auth::DevIssuer::load_or_create(&other_dir.path().join("k.pem")).expect("key");
    let roles = vec!["un-case-officer".to_string()];
    let forged = other
        .mint(
            "casegraph",
            "mallory",
            "UN",
            &roles,
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    let wrong_audience = fx
        .app
        .dev
        .mint(
            "another-api",
            "mallory",
            "UN",
            &roles,
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    // Expired well beyond the leeway: the dev key signs claims of our choosing.
    let pem = std::fs::read(fx.app.dir.path().join("dev-key.pem")).expect("dev key");
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("P-256");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(fx.app.dev.key_id().to_string());
    let claims = json!({ "iss": "casegraph-dev", "sub": "mallory", "aud": "casegraph", "exp": now - 3600, "nbf": now - 7200,
        "iat": now - 7200, "org": "UN", "roles": roles });
    let expired = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    let mut tampered = token(&fx.app, &UNRELATED_FRA);
    tampered = tampered.replacen(".", ".x", 1);
    for (what, t) in [
        ("forged", forged),
        ("wrong audience", wrong_audience),
        ("expired", expired),
        ("tampered", tampered),
    ] {
        let (status, text, body) = raw(&fx.app, &t, q, vars.clone()).await;
        assert_eq!(status, 401, "{what}: {text}");
        assert_eq!(
            error_codes(&body),
            vec!["UNAUTHENTICATED"],
            "{what}: {text}"
        );
        assert!(body.get("data").is_none(), "{what}: {text}");
        assert_absent(&text, &planted(), what);
    }
}

#[tokio::test]
async fn a_cursor_is_refused_when_replayed_by_another_principal_or_tampered_with() {
    let fx = plain().await;
    let q =
        "query($a: String) { cases(first: 2, after: $a) { nodes { id } pageInfo { endCursor } } }";
    let (_, text, body) = run(&fx.app, &HOST_MLI, q, json!({ "a": null })).await;
    let cursor = body["data"]["cases"]["pageInfo"]["endCursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    let (_, ok, body) = run(&fx.app, &HOST_MLI, q, json!({ "a": cursor })).await;
    assert!(
        body.get("errors").is_none(),
        "its owner may use it: {ok} (first page {text})"
    );
    for who in [CONTRIBUTOR_SEN, UNRELATED_FRA, UN_ANALYST] {
        let (_, text, body) = run(&fx.app, &who, q, json!({ "a": cursor })).await;
        assert_eq!(
            error_codes(&body),
            vec!["INVALID_CURSOR"],
            "{} replays MLI's cursor: {text}",
            who.label
        );
    }
    // Flip one character in the payload, or cut the MAC.
    let mut chars: Vec<char> = cursor.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    let cut = cursor[..cursor.len() - 4].to_string();
    for bad in [
        flipped,
        cut,
        "eyJvcmRlciI6e30sImtleSI6IjIwMjQiLCJpZCI6ImEifQ".to_string(),
    ] {
        let (_, text, body) = run(&fx.app, &HOST_MLI, q, json!({ "a": bad })).await;
        assert_eq!(
            error_codes(&body),
            vec!["INVALID_CURSOR"],
            "tampered cursor: {text}"
        );
    }
}

#[tokio::test]
async fn a_second_principal_right_after_the_first_gets_its_own_answer() {
    let fx = plain().await;
    let q = "query($id: ID!) { case(id: $id) { victims { name serviceNumber } location { coordinates { latitude } } } }";
    let vars = json!({ "id": fx.case_id });
    for _ in 0..3 {
        let (_, officer, _) = run(&fx.app, &UN_OFFICER, q, vars.clone()).await;
        assert!(
            officer.contains(SEN_NAME)
                && officer.contains(TCD_NAME)
                && officer.contains(LATITUDE_TEXT),
            "{officer}"
        );
        let (_, fra, _) = run(&fx.app, &UNRELATED_FRA, q, vars.clone()).await;
        assert_absent(&fra, &planted(), "FRA right after the officer");
        let (_, tcd, _) = run(&fx.app, &NATIONALITY_TCD, q, vars.clone()).await;
        assert_absent(&tcd, &not_for_tcd(), "TCD right after the officer");
    }
    // Concurrently, too.
    let (a, b) = futures::join!(
        run(&fx.app, &UN_OFFICER, q, vars.clone()),
        run(&fx.app, &NATIONALITY_TCD, q, vars.clone())
    );
    assert!(a.1.contains(SEN_NAME), "{}", a.1);
    assert_absent(&b.1, &not_for_tcd(), "TCD concurrently with the officer");
}

#[tokio::test]
async fn error_messages_never_carry_a_planted_value() {
    let fx = plain().await;
    let update = "mutation($id: ID!, $v: Int!, $i: UpdateCaseInput!) { updateCase(id: $id, expectedVersion: $v, input: $i) { summary } }";
    let vars = json!({ "id": fx.case_id, "v": 1, "i": { "locality": "Menaka" } });
    let (_, text, body) = run(&fx.app, &UN_OFFICER, update, vars.clone()).await;
    assert_eq!(error_codes(&body), vec!["VERSION_CONFLICT"], "{text}");
    assert_absent(&text, &planted(), "version conflict");
    for who in [HOST_MLI, UNRELATED_FRA, UN_ANALYST] {
        let (_, text, body) = run(&fx.app, &who, update, vars.clone()).await;
        assert_eq!(
            error_codes(&body),
            vec!["FORBIDDEN"],
            "{}: {text}",
            who.label
        );
        assert_absent(&text, &planted(), who.label);
    }
    let add = "mutation($c: ID!, $i: VictimInput!) { addVictim(caseId: $c, expectedVersion: 1, input: $i) { victim { name } } }";
    let (_, text, body) = run(
        &fx.app,
        &UN_OFFICER,
        add,
        json!({ "c": fx.case_id, "i": { "category": "POLICE", "harm": "KILLED", "name": "x" } }),
    )
    .await;
    assert_eq!(error_codes(&body), vec!["VERSION_CONFLICT"], "{text}");
    assert_absent(&text, &planted(), "addVictim conflict");
    let q = "query($id: ID!) { case(id: $id) { summary victims { name serviceNumber } location { coordinates { latitude longitude } } } }";
    for who in [NATIONALITY_TCD, CONTRIBUTOR_SEN, HOST_MLI, UN_ANALYST] {
        let (_, text, body) = run(&fx.app, &who, q, json!({ "id": fx.case_id })).await;
        assert!(
            error_codes(&body).iter().any(|c| c == "FORBIDDEN_FIELD"),
            "{}: {text}",
            who.label
        );
        for e in body["errors"].as_array().expect("errors") {
            let m = e["message"].as_str().expect("message");
            assert_absent(m, &planted(), who.label);
        }
    }
}

#[tokio::test]
async fn without_introspection_there_is_no_schema_and_no_suggestion_for_a_misspelled_field() {
    let fx = start(Setup {
        no_introspection: true,
        ..Setup::default()
    })
    .await;
    let (_, text, body) = run(
        &fx.app,
        &UNRELATED_FRA,
        "{ __schema { types { name fields { name } } } }",
        json!({}),
    )
    .await;
    assert!(body["data"]["__schema"].is_null(), "{text}");
    assert!(
        !text.contains("serviceNumber") && !text.contains("\"Victim\""),
        "{text}"
    );
    let (_, text, _) = run(
        &fx.app,
        &UNRELATED_FRA,
        "{ __type(name: \"Victim\") { fields { name } } }",
        json!({}),
    )
    .await;
    assert!(!text.contains("serviceNumber"), "{text}");
    // Federation's `_service { sdl }` is introspection by another name.
    let (_, text, _) = run(&fx.app, &UNRELATED_FRA, "{ _service { sdl } }", json!({})).await;
    assert!(
        !text.contains("serviceNumber"),
        "introspection is off but `_service` prints the schema: {}",
        &text[..text.len().min(300)]
    );
    let q = "query($id: ID!) { case(id: $id) { victims { nme servceNumber } } }";
    let (_, text, body) = run(&fx.app, &UNRELATED_FRA, q, json!({ "id": fx.case_id })).await;
    assert!(!error_codes(&body).is_empty(), "{text}");
    assert!(
        !text.contains("Did you mean")
            && !text.contains("\"name\"")
            && !text.contains("serviceNumber"),
        "{text}"
    );
    // With introspection on (the default), the same typo gets a suggestion: the check above means something.
    let open = plain().await;
    let (_, text, _) = run(&open.app, &UNRELATED_FRA, q, json!({ "id": open.case_id })).await;
    assert!(text.contains("Did you mean"), "{text}");
}

#[tokio::test]
async fn with_reject_enforcement_a_denied_field_refuses_the_whole_operation() {
    let policy =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.toml"))
            .expect("policy");
    let rejecting = policy.replace("on_denied_field = \"null\"", "on_denied_field = \"reject\"");
    assert_ne!(rejecting, policy, "the policy names its enforcement");
    let fx = start(Setup {
        policy: Some(rejecting),
        ..Setup::default()
    })
    .await;
    let q = "query($id: ID!) { case(id: $id) { reference victims { nationality name serviceNumber } } }";
    let (status, text, body) = run(&fx.app, &NATIONALITY_TCD, q, json!({ "id": fx.case_id })).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(error_codes(&body), vec!["FORBIDDEN_FIELD"], "{text}");
    assert!(
        body.get("data").is_none(),
        "nothing of the operation leaves: {text}"
    );
    assert_absent(&text, &planted(), "reject");
    assert!(
        !text.contains(TCD_NAME) && !text.contains(&fx.case_ref),
        "not even what TCD may read: {text}"
    );
    // What the principal may read still answers.
    let own = "query($id: ID!) { case(id: $id) { reference victims { nationality } } }";
    let (_, text, body) = run(&fx.app, &NATIONALITY_TCD, own, json!({ "id": fx.case_id })).await;
    assert!(
        body.get("errors").is_none() && text.contains(&fx.case_ref),
        "{text}"
    );
}

fn sealed_and_open() -> Vec<System> {
    vec![
        System {
            id: "mli-open",
            host_state: "MLI",
            records: |key| vec![proceedings_record(key, "CONFIDENTIEL")],
        },
        System {
            id: "mli-sealed",
            host_state: "MLI",
            records: |key| vec![sealed_record(key)],
        },
    ]
}

const SEALED_VALUES: &[&str] = &[
    SEALED_CHARGE,
    SEALED_DEFENDANT,
    SEALED_REFERENCE,
    "Tribunal militaire",
    "huis clos",
];

#[tokio::test]
async fn a_sealed_record_shows_only_that_it_exists_even_to_the_case_officer() {
    let fx = start(Setup {
        systems: sealed_and_open(),
        ..Setup::default()
    })
    .await;
    let vars = json!({ "id": fx.case_id });
    let (_, text, body) = run(
        &fx.app,
        &UN_OFFICER,
        "query($id: ID!) { case(id: $id) { nationalProceedings { restrictedRecordExists } } }",
        vars.clone(),
    )
    .await;
    let flags: BTreeSet<String> = body["data"]["case"]["nationalProceedings"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["restrictedRecordExists"].to_string())
        .collect();
    assert_eq!(
        flags,
        BTreeSet::from(["false".to_string(), "true".to_string()]),
        "{text}"
    );
    let everything = r#"query($id: ID!) { case(id: $id) { nationalProceedings {
        source sourceName nationalReference authority stage nationalStage nextHearing sourceUpdatedAt
        restrictedRecordExists charges court { name type } stageHistory { stage nationalLabel date }
        defendants { name status nationalStatus inAbsentia verdict sentence } freshness { state }
    } } }"#;
    for who in [
        UN_OFFICER,
        FOCAL_POINT,
        HOST_MLI,
        UN_ANALYST,
        CONTRIBUTOR_SEN,
    ] {
        let (_, text, _) = run(&fx.app, &who, everything, vars.clone()).await;
        assert_absent(&text, SEALED_VALUES, who.label);
        let (_, text, _) = run(&fx.app, &who, "query($id: ID!) { case(id: $id) { nationalProceedings { charges } a: nationalProceedings { defendants { name } } } }", vars.clone()).await;
        assert_absent(&text, SEALED_VALUES, who.label);
    }
    let (_, text, _) = run(&fx.app, &UN_OFFICER, everything, vars.clone()).await;
    assert!(
        text.contains(CHARGE) && text.contains(SUSPECT),
        "the open record reaches the officer: {text}"
    );
    assert!(
        fx.servers.iter().all(|s| !s.received().is_empty()),
        "both systems were asked"
    );
}

#[tokio::test]
async fn an_unconvicted_defendants_name_is_restricted_and_a_convicted_ones_is_not() {
    let fx = start(Setup {
        systems: sealed_and_open()[..1].to_vec(),
        ..Setup::default()
    })
    .await;
    let q =
        "query($id: ID!) { case(id: $id) { nationalProceedings { defendants { name status } } } }";
    let vars = json!({ "id": fx.case_id });
    let (_, text, body) = run(&fx.app, &UN_OFFICER, q, vars.clone()).await;
    assert!(
        body.get("errors").is_none() && text.contains(SUSPECT) && text.contains(CONVICT),
        "{text}"
    );
    let (_, text, body) = run(&fx.app, &HOST_MLI, q, vars.clone()).await;
    assert!(
        !text.contains(SUSPECT),
        "the host state reads an unconvicted suspect's name: {text}"
    );
    assert!(
        text.contains(CONVICT),
        "the host state reads a convicted defendant's name: {text}"
    );
    let defendants = &body["data"]["case"]["nationalProceedings"][0]["defendants"];
    let suspect = defendants
        .as_array()
        .expect("defendants")
        .iter()
        .position(|d| d["status"] == json!("IN_CUSTODY"))
        .expect("suspect");
    assert!(defendants[suspect]["name"].is_null(), "{text}");
    assert_eq!(error_codes(&body), vec!["FORBIDDEN_FIELD"], "{text}");
    assert_eq!(
        body["errors"][0]["path"],
        json!([
            "case",
            "nationalProceedings",
            0,
            "defendants",
            suspect,
            "name"
        ]),
        "{text}"
    );
    for who in [UN_ANALYST, CONTRIBUTOR_SEN, NATIONALITY_TCD, AUDITOR] {
        let (_, text, _) = run(&fx.app, &who, q, vars.clone()).await;
        assert!(!text.contains(SUSPECT), "{}: {text}", who.label);
    }
    let (_, text, _) = run(&fx.app, &FOCAL_POINT, q, vars.clone()).await;
    assert!(
        text.contains(SUSPECT),
        "the mission's focal point reads it: {text}"
    );
}

/// A principal concerned by its role only: an auditor of a regional organisation reads
/// CONCERNED data everywhere, CASE_PARTIES data nowhere.
const EXTERNAL_AUDITOR: Who = Who {
    label: "external auditor (EU)",
    org: "EU",
    roles: &["auditor"],
    missions: &[],
};

#[tokio::test]
async fn fields_a_principal_may_not_read_are_never_requested_from_the_host_state_system() {
    let fx = start(Setup {
        systems: vec![System {
            id: "mli-open",
            host_state: "MLI",
            records: |key| vec![proceedings_record(key, "PUBLIC")],
        }],
        ..Setup::default()
    })
    .await;
    let server = &fx.servers[0];
    let q = "query($id: ID!) { case(id: $id) { nationalProceedings { stage charges defendants { name } } } }";
    let vars = json!({ "id": fx.case_id });

    // Concerned only: the stage is asked for, the charges and defendants are not.
    let before = server.received().len();
    let (_, text, body) = run(&fx.app, &EXTERNAL_AUDITOR, q, vars.clone()).await;
    let asked: Vec<_> = server.received()[before..].to_vec();
    assert_eq!(asked.len(), 1, "one lookup: {asked:?}");
    assert_eq!(
        asked[0].fields.as_deref(),
        Some(&["stage".to_string()][..]),
        "{asked:?}"
    );
    assert!(
        body["data"]["case"]["nationalProceedings"][0]["stage"].is_string(),
        "{text}"
    );
    assert_absent(&text, &[CHARGE, SUSPECT, CONVICT], EXTERNAL_AUDITOR.label);

    // A principal the case is invisible to causes no lookup at all.
    let before = server.received().len();
    let (_, text, _) = run(&fx.app, &UNRELATED_FRA, q, vars.clone()).await;
    assert_eq!(
        server.received().len(),
        before,
        "nothing asked for FRA: {text}"
    );

    // The case officer's lookup asks for all three.
    let before = server.received().len();
    let (_, text, _) = run(&fx.app, &UN_OFFICER, q, vars).await;
    let asked: Vec<_> = server.received()[before..].to_vec();
    let fields = asked
        .first()
        .and_then(|a| a.fields.clone())
        .unwrap_or_default();
    for f in ["stage", "charges", "defendants"] {
        assert!(
            fields.iter().any(|x| x == f),
            "{f} asked for the officer: {asked:?}"
        );
    }
    assert!(text.contains(CHARGE), "{text}");
}
