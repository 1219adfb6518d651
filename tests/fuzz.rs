//! Property-based fuzzing of the real router (proptest): generated GraphQL documents (fields
//! of the schema and made-up ones, aliases, arguments of every value kind, variables,
//! directives, fragments that spread each other — cycles included — and inline fragments),
//! generated variables, and generated HTTP bodies are sent over HTTP to a gateway on
//! 127.0.0.1 port 0. Whatever comes in, nothing panics and no answer is a 5xx other than 503;
//! afterwards the gateway still answers a normal query.
//!
//! Bounded so that CI runs it in seconds: a fixed number of cases per property, no shrinking
//! beyond a few hundred iterations, and no persistence of failures to disk.

mod common;

use common::{spawn_with, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// Field names: most from the schema, so that documents get past validation and run.
const FIELDS: &[&str] = &[
    "cases",
    "case",
    "missions",
    "mission",
    "statistics",
    "viewer",
    "connectors",
    "capacityBuildingAssistance",
    "auditLog",
    "nodes",
    "edges",
    "node",
    "totalCount",
    "pageInfo",
    "hasNextPage",
    "endCursor",
    "reference",
    "id",
    "victims",
    "nationality",
    "harm",
    "category",
    "nationalProceedings",
    "stage",
    "defendants",
    "name",
    "status",
    "code",
    "incidentDate",
    "hostState",
    "groups",
    "key",
    "caseCount",
    "__typename",
    "__schema",
    "__type",
    "types",
    "_entities",
    "_service",
    "sdl",
    "nosuch",
];
const ARGUMENTS: &[&str] = &[
    "first",
    "after",
    "filter",
    "orderBy",
    "reference",
    "code",
    "by",
    "hostStates",
    "missions",
    "victimNationalities",
    "from",
    "to",
    "status",
    "representations",
    "name",
    "x",
];
const TYPES: &[&str] = &[
    "Query",
    "Case",
    "Mission",
    "CaseConnection",
    "Victim",
    "Nope",
];
const DIRECTIVES: &[&str] = &["skip", "include", "deprecated", "nosuch"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(list).prop_map(str::to_string)
}

/// A GraphQL input value, as written in a document.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).expect("a JSON string")),
        Just("true".to_string()),
        Just("null".to_string()),
        pick(&["MLI", "KILLING", "YEAR", "ASC", "CLOSED", "MINUSMA", "COD"]),
        "[a-c]".prop_map(|v| format!("${v}")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((pick(ARGUMENTS), inner), 0..3).prop_map(|kv| {
                let fields: Vec<String> =
                    kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
}

fn arguments() -> impl Strategy<Value = String> {
    prop::collection::vec((pick(ARGUMENTS), value()), 0..3).prop_map(|args| {
        if args.is_empty() {
            String::new()
        } else {
            let args: Vec<String> = args.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("({})", args.join(", "))
        }
    })
}

fn directives() -> impl Strategy<Value = String> {
    prop::collection::vec((pick(DIRECTIVES), prop::bool::ANY), 0..2).prop_map(|ds| {
        ds.into_iter()
            .map(|(d, on)| format!(" @{d}(if: {on})"))
            .collect()
    })
}

/// A selection set of fields, fragment spreads (of `fragments` names, and unknown ones) and
/// inline fragments.
fn selection_set(fragments: usize) -> impl Strategy<Value = String> {
    let spread = (0..fragments.max(1) + 1).prop_map(|i| format!("...F{i}"));
    let field = (
        prop::option::of("[a-z]{1,3}"),
        pick(FIELDS),
        arguments(),
        directives(),
    )
        .prop_map(|(alias, name, args, dirs)| {
            let alias = alias.map(|a| format!("{a}: ")).unwrap_or_default();
            format!("{alias}{name}{args}{dirs}")
        });
    let leaf = prop_oneof![4 => field, 1 => spread];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            (
                pick(FIELDS),
                arguments(),
                prop::collection::vec(inner.clone(), 1..5)
            )
                .prop_map(|(name, args, items)| format!("{name}{args} {{ {} }}", items.join(" "))),
            (pick(TYPES), prop::collection::vec(inner, 1..4))
                .prop_map(|(on, items)| format!("... on {on} {{ {} }}", items.join(" "))),
        ]
    })
    .prop_map(|s| format!("{{ {s} }}"))
}

/// A document: an operation (query or mutation, with variable definitions) and fragments.
fn document() -> impl Strategy<Value = String> {
    (0usize..4).prop_flat_map(|fragments| {
        (
            prop_oneof![Just("query"), Just("mutation"), Just("")],
            prop::collection::vec(
                pick(&["$a: Int", "$b: [String!]", "$c: String = \"x\""]),
                0..3,
            ),
            selection_set(fragments),
            prop::collection::vec((pick(TYPES), selection_set(fragments)), fragments),
        )
            .prop_map(|(kind, vars, body, frags)| {
                let vars = if vars.is_empty() || kind.is_empty() {
                    String::new()
                } else {
                    format!("({})", vars.join(", "))
                };
                let mut doc = format!("{kind} {vars} {body}");
                for (i, (on, set)) in frags.into_iter().enumerate() {
                    doc.push_str(&format!(" fragment F{i} on {on} {set}"));
                }
                doc
            })
    })
}

/// Any JSON value, for variables and bodies.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]{1,2}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a client may POST: a GraphQL request of generated parts, JSON of any shape, or bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (document(), prop::option::of(json_value()), prop::option::of("[A-Za-z]{0,6}"))
            .prop_map(|(query, variables, name)| {
                let mut request = json!({ "query": query });
                if let Some(v) = variables {
                    request["variables"] = v;
                }
                if let Some(n) = name {
                    request["operationName"] = json!(n);
                }
                serde_json::to_vec(&request).expect("JSON")
            }),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Sends `body` and checks the answer: no 5xx but 503, and a JSON body on `/graphql`.
async fn send(app: &TestApp, token: &str, body: Vec<u8>, accept: &str) -> Result<(), String> {
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(|e| format!("no body: {e}"))?;
    if status >= 500 && status != 503 {
        return Err(format!("HTTP {status}: {text}"));
    }
    serde_json::from_str::<Value>(&text)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {text}"))?;
    Ok(())
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn generated_documents_variables_and_bodies_never_crash_the_gateway() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let app = rt.block_on(spawn_with(|c| c.server.introspection = true));
    let token = app.analyst();

    let mut documents = runner(500);
    documents
        .run(
            &(document(), prop::option::of(json_value())),
            |(query, variables)| {
                let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))
                    .expect("JSON");
                rt.block_on(send(
                    &app,
                    &token,
                    body,
                    "application/graphql-response+json",
                ))
                .map_err(|e| TestCaseError::fail(format!("{e}\ndocument: {query}")))
            },
        )
        .expect("every generated document gets an answer that is not a 5xx but 503");

    let mut bodies = runner(300);
    bodies
        .run(&(body(), prop::bool::ANY), |(body, json_only)| {
            let accept = if json_only {
                "application/json"
            } else {
                "application/graphql-response+json"
            };
            let shown = String::from_utf8_lossy(&body).into_owned();
            rt.block_on(send(&app, &token, body, accept))
                .map_err(|e| TestCaseError::fail(format!("{e}\nbody: {shown}")))
        })
        .expect("every generated body gets an answer that is not a 5xx but 503");

    // Still serving.
    let (status, body) = rt.block_on(app.gql(&token, "{ missions { code } }", json!({})));
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["missions"].is_array(), "{body}");
}
