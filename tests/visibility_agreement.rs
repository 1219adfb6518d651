//! One visibility rule: under randomly generated `[levels.CONCERNED]` relationship sets, every
//! way of reaching cases agrees for a dozen principals — the list (`cases`, paged to the end),
//! its `totalCount`, `case(id)`, the federation's `_entities`, the back-edge from assistance to
//! its cases, and statistics.
//!
//! Runs over the real bundled data (611 cases) plus a planted case, with the gateway's access
//! layer and schema built in process for each generated policy.

mod access_fixtures;
mod common;

use access_fixtures::*;
use casegraph::access::{Organisation, Policy, Principal, Relationship, Role};
use casegraph::schema::{CaseGraphSchema, SchemaOptions};
use casegraph::store::CaseFilter;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A small deterministic generator (xorshift): the sets are random but the run is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("small")
    }
}

const RELATIONSHIPS: [(Relationship, &str); 6] = [
    (Relationship::Un, "UN"),
    (Relationship::HostState, "HOST_STATE"),
    (Relationship::ContributingState, "CONTRIBUTING_STATE"),
    (Relationship::NationalityState, "NATIONALITY_STATE"),
    (Relationship::OwnVictimState, "OWN_VICTIM_STATE"),
    (Relationship::FocalPoint, "FOCAL_POINT"),
];

/// The bundled policy with `[levels.CONCERNED]` granted by `relationships` and `roles` only.
fn policy_with(text: &str, relationships: &[&str], roles: &[&str]) -> String {
    let start = text
        .find("[levels.CONCERNED]")
        .expect("the CONCERNED level");
    let end = start + text[start..].find("\n\n").expect("the end of the table");
    let quoted = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("\"{x}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{}[levels.CONCERNED]\nrelationships = [{}]\nroles = [{}]{}",
        &text[..start],
        quoted(relationships),
        quoted(roles),
        &text[end..]
    )
}

fn principal(org: &str, roles: &[Role], missions: &[&str]) -> Principal {
    Principal {
        subject: format!("agreement-{org}"),
        organisation: Organisation::parse(org).expect("organisation"),
        roles: roles.iter().copied().collect(),
        missions: missions.iter().map(|m| m.to_string()).collect(),
        issuer: "test".into(),
    }
}

fn principals() -> Vec<Principal> {
    use Role::*;
    vec![
        principal("MLI", &[MemberStateAnalyst], &[]),
        principal("SEN", &[MemberStateAnalyst], &[]),
        principal("TCD", &[MemberStateAnalyst], &[]),
        principal("HTI", &[MemberStateAnalyst], &[]),
        principal("COD", &[MemberStateAnalyst], &[]),
        principal("PAK", &[MemberStateAnalyst], &[]),
        principal("FRA", &[MemberStateAnalyst], &[]),
        principal("ISL", &[MemberStateAnalyst], &[]),
        principal("AU", &[MemberStateAnalyst], &[]),
        principal("UN", &[UnAnalyst], &[]),
        principal("UN/MINUSMA", &[FocalPoint], &["MINUSMA"]),
        principal("UN/OIOS", &[Auditor], &[]),
    ]
}

async fn run(schema: &CaseGraphSchema, who: &Principal, query: &str, vars: Value) -> Value {
    let request =
        async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(vars));
    let response = casegraph::schema::execute(schema, request, who.clone()).await;
    let body = serde_json::to_value(&response).expect("serialises");
    assert!(
        body.get("errors").is_none(),
        "{} {query}: {body}",
        who.organisation
    );
    body["data"].clone()
}

/// Every case the list gives, paged to the end, and the total it announces.
async fn listed(schema: &CaseGraphSchema, who: &Principal) -> (BTreeSet<String>, i64) {
    let q = "query($after: String) { cases(first: 500, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } }";
    let mut ids = BTreeSet::new();
    let mut after = Value::Null;
    let mut total;
    loop {
        let data = run(schema, who, q, json!({ "after": after })).await;
        let page = &data["cases"];
        total = Some(page["totalCount"].as_i64().expect("totalCount"));
        for n in page["nodes"].as_array().expect("nodes") {
            assert!(
                ids.insert(n["id"].as_str().expect("id").to_string()),
                "a case listed twice"
            );
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    (ids, total.expect("one page"))
}

#[tokio::test]
async fn lists_counts_lookups_entities_back_edges_and_statistics_agree_under_random_visibility_rules(
) {
    let fx = start(Setup::default()).await;
    // Assistance linking a planted case and two real ones: the back-edge from assistance.
    let all: Vec<String> = fx
        .app
        .store
        .list_cases(&CaseFilter::all(), Default::default(), None, 100_000)
        .await
        .expect("every case")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(all.len() > 600, "the bundled data is there");
    let linked = vec![fx.case_id.clone(), all[10].clone(), all[300].clone()];
    officer_write(
        &fx.app,
        "mutation($i: AssistanceInput!) { recordAssistance(input: $i) { id } }",
        json!({ "i": { "hostState": "MLI", "kind": "TRAINING", "provider": "UNODC", "status": "OFFERED", "caseIds": linked } }),
    )
    .await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.toml"))
        .expect("policy");
    let shape = casegraph::schema::shape();
    let mut rng = Rng(0x5eed_cafe_f00d_2589);
    let mut sets: Vec<(Vec<&str>, Vec<&str>)> = vec![
        // The bundled rule, and the configuration the review tried.
        (
            vec![
                "UN",
                "HOST_STATE",
                "CONTRIBUTING_STATE",
                "NATIONALITY_STATE",
                "FOCAL_POINT",
            ],
            vec!["un-case-officer", "un-analyst", "auditor"],
        ),
        (vec!["UN", "HOST_STATE", "FOCAL_POINT"], vec!["un-analyst"]),
    ];
    for _ in 0..22 {
        let rels: Vec<&str> = RELATIONSHIPS
            .iter()
            .filter(|_| rng.pick(2) == 0)
            .map(|(_, name)| *name)
            .collect();
        let roles: Vec<&str> = ["un-analyst", "auditor"]
            .into_iter()
            .filter(|_| rng.pick(2) == 0)
            .collect();
        sets.push((rels, roles));
    }
    let (mut checked, mut refused) = (0, 0);
    for (rels, roles) in &sets {
        let policy_text = policy_with(&text, rels, roles);
        let policy = Policy::load(&policy_text, "policy.toml", &shape)
            .unwrap_or_else(|e| panic!("{rels:?} {roles:?}: {e}"));
        let access = match casegraph::schema::access_for(policy) {
            Ok(a) => a,
            Err(e) => {
                // A rule under which some non-null field could be denied is refused at start:
                // there is nothing to serve, hence nothing to disagree.
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                eprintln!("CONCERNED = {rels:?} + {roles:?}: refused at start: {first}");
                refused += 1;
                continue;
            }
        };
        let schema = casegraph::schema::build(
            Arc::clone(&fx.app.store),
            casegraph::connectors::Connectors::none(),
            SchemaOptions {
                access,
                audit: casegraph::access::audit::AuditSink::disabled(),
                cursor_key: [9; 32],
                introspection: true,
                limits: casegraph::config::LimitsConfig::default(),
            },
        );
        for who in principals() {
            let label = format!(
                "{} under CONCERNED = {rels:?} + {roles:?}",
                who.organisation
            );
            let (ids, total) = listed(&schema, &who).await;
            assert_eq!(ids.len() as i64, total, "{label}: list and count");
            // Lookups by id and by entity, on cases in and out of the list.
            let mut sample: Vec<&String> = ids.iter().take(12).collect();
            for _ in 0..12 {
                sample.push(&all[rng.pick(all.len())]);
            }
            sample.push(&fx.case_id);
            for id in sample {
                let data = run(
                    &schema,
                    &who,
                    "query($id: ID!) { case(id: $id) { id } }",
                    json!({ "id": id }),
                )
                .await;
                assert_eq!(
                    data["case"].is_object(),
                    ids.contains(id),
                    "{label}: case({id})"
                );
                let request = async_graphql::Request::new(
                    "query($r: [_Any!]!) { _entities(representations: $r) { ... on Case { id } } }",
                )
                .variables(async_graphql::Variables::from_json(
                    json!({ "r": [{ "__typename": "Case", "id": id }] }),
                ));
                let body = serde_json::to_value(
                    casegraph::schema::execute(&schema, request, who.clone()).await,
                )
                .expect("serialises");
                let resolved = body["data"]["_entities"][0]["id"] == json!(id);
                assert_eq!(
                    resolved,
                    ids.contains(id),
                    "{label}: _entities({id}): {body}"
                );
            }
            // The back-edge from assistance gives visible cases only (where the principal may
            // follow it at all: it is CONCERNED data of the assisted host state).
            let body = serde_json::to_value(
                casegraph::schema::execute(
                    &schema,
                    async_graphql::Request::new("{ capacityBuildingAssistance { cases { id } } }"),
                    who.clone(),
                )
                .await,
            )
            .expect("serialises");
            for a in body["data"]["capacityBuildingAssistance"]
                .as_array()
                .expect("list")
            {
                for c in a["cases"].as_array().into_iter().flatten() {
                    let id = c["id"].as_str().expect("id");
                    assert!(ids.contains(id), "{label}: assistance reaches case {id}");
                }
            }
            // Statistics: a principal that sees every case gets exact figures equal to the
            // list; one that does not sees, in every published cell, at least its own cases.
            let data = run(
                &schema,
                &who,
                "{ statistics(by: MISSION) { totalCases groups { key caseCount suppressed } } }",
                json!({}),
            )
            .await;
            let stats = &data["statistics"];
            let everything = ids.len() == all.len();
            if everything {
                assert_eq!(
                    stats["totalCases"],
                    json!(total),
                    "{label}: statistics total"
                );
                assert!(
                    stats["groups"]
                        .as_array()
                        .expect("groups")
                        .iter()
                        .all(|g| g["suppressed"] == json!(false)),
                    "{label}: nothing is withheld from who sees everything"
                );
            } else {
                for g in stats["groups"].as_array().expect("groups").iter().take(8) {
                    let Some(n) = g["caseCount"].as_i64() else {
                        continue;
                    };
                    let request = async_graphql::Request::new(
                        "query($m: [String!]) { cases(filter: { missions: $m }) { totalCount } }",
                    )
                    .variables(async_graphql::Variables::from_json(
                        json!({ "m": [g["key"]] }),
                    ));
                    let body = serde_json::to_value(
                        casegraph::schema::execute(&schema, request, who.clone()).await,
                    )
                    .expect("serialises");
                    // A principal that may not filter on missions learns nothing here.
                    let Some(seen) = body["data"]["cases"]["totalCount"].as_i64() else {
                        continue;
                    };
                    assert!(seen <= n, "{label}: {} sees {seen} of {n}", g["key"]);
                }
            }
            checked += 1;
        }
    }
    eprintln!("{checked} (policy, principal) pairs checked; {refused} rules refused at start");
    assert!(
        checked >= 10 * principals().len(),
        "{checked} (policy, principal) pairs checked, {refused} rules refused at start"
    );
}
