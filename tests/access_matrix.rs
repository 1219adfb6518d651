//! The access matrix, generated from `config/policy.toml`: for every classified field of the
//! case-data types, a query reaching it from `case(id:)` runs as one principal per relationship,
//! and the answer must be exactly what the policy says (value, or null with one
//! `FORBIDDEN_FIELD` error at that path, or an invisible case). Expectations are computed here
//! from the parsed policy (levels, who may read each level, markings, the convicted-defendant
//! rule) and the relationships each principal is known to have: change a level in the policy and
//! the expectations change with it.

mod access_fixtures;
mod common;

use access_fixtures::*;
use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
use casegraph::access::{Level, Policy, PolicyError, PolicyFile, Relationship};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const POLICY_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.toml");

/// The marking the test system puts on its record of the main case.
const MARKING: &str = "CONFIDENTIEL";

/// The case-data types the matrix covers, and the chain of fields reaching each from a case.
const CHAINS: &[(&str, &[(&str, &str)])] = &[
    ("Case", &[]),
    ("Victim", &[("Case", "victims")]),
    ("CaseLocation", &[("Case", "location")]),
    (
        "Coordinates",
        &[("Case", "location"), ("CaseLocation", "coordinates")],
    ),
    ("NationalReference", &[("Case", "nationalReferences")]),
    ("FollowUpAction", &[("Case", "followUpActions")]),
    ("Submission", &[("Case", "submissions")]),
    (
        "CapacityBuildingAssistance",
        &[("Case", "capacityBuildingAssistance")],
    ),
    ("NationalProceedings", &[("Case", "nationalProceedings")]),
    (
        "Court",
        &[
            ("Case", "nationalProceedings"),
            ("NationalProceedings", "court"),
        ],
    ),
    (
        "Defendant",
        &[
            ("Case", "nationalProceedings"),
            ("NationalProceedings", "defendants"),
        ],
    ),
    (
        "StageEntry",
        &[
            ("Case", "nationalProceedings"),
            ("NationalProceedings", "stageHistory"),
        ],
    ),
    (
        "Freshness",
        &[
            ("Case", "nationalProceedings"),
            ("NationalProceedings", "freshness"),
        ],
    ),
];

/// Types whose fields a source's marking raises (the record of a host-state system).
const MARKED_TYPES: &[&str] = &["NationalProceedings", "Court", "Defendant", "StageEntry"];

/// Fields of a national record that describe the answer, not the record: the marking leaves
/// them at their own level (so a marked record never loses a non-null key).
const UNMARKED_FIELDS: &[&str] = &[
    "source",
    "sourceName",
    "freshness",
    "restrictedRecordExists",
];

/// What the test knows of a principal's relationships, stated per subject.
struct Principal {
    who: Who,
    /// Relationships to the main case (ANY is implied).
    case: &'static [Relationship],
    /// The principal's state, for OWN_VICTIM_STATE on one victim's fields.
    own_state: Option<&'static str>,
    /// Relationships to capacity-building assistance to Mali (not case data: UN / host only).
    assistance_to_mli: &'static [Relationship],
}

fn principals() -> Vec<Principal> {
    use Relationship::*;
    vec![
        Principal {
            who: UN_ANALYST,
            case: &[Un],
            own_state: None,
            assistance_to_mli: &[Un],
        },
        Principal {
            who: UN_OFFICER,
            case: &[Un],
            own_state: None,
            assistance_to_mli: &[Un],
        },
        Principal {
            who: HOST_MLI,
            case: &[HostState],
            own_state: None,
            assistance_to_mli: &[HostState],
        },
        // SEN contributed the military victim, who is also a SEN national; the case's own
        // fields are "the victim's own state" for it, the TCD victim's fields are not.
        Principal {
            who: CONTRIBUTOR_SEN,
            case: &[ContributingState, NationalityState, OwnVictimState],
            own_state: Some("SEN"),
            assistance_to_mli: &[],
        },
        Principal {
            who: NATIONALITY_TCD,
            case: &[NationalityState, OwnVictimState],
            own_state: Some("TCD"),
            assistance_to_mli: &[],
        },
        Principal {
            who: UNRELATED_FRA,
            case: &[],
            own_state: None,
            assistance_to_mli: &[],
        },
        Principal {
            who: REGIONAL_AU,
            case: &[],
            own_state: None,
            assistance_to_mli: &[],
        },
        Principal {
            who: FOCAL_POINT,
            case: &[Un, FocalPoint],
            own_state: None,
            assistance_to_mli: &[Un],
        },
        Principal {
            who: AUDITOR,
            case: &[Un],
            own_state: None,
            assistance_to_mli: &[Un],
        },
    ]
}

/// The policy as a reader of the file understands it (independent of the gate's code).
struct Rules {
    file: PolicyFile,
    policy: Policy,
}

impl Rules {
    fn field(&self, key: &str) -> Level {
        self.file
            .fields
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not classified"))
            .level()
    }

    fn marking(&self, marking: &str) -> Level {
        self.file
            .markings
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(marking.trim()))
            .map_or(Level::Restricted, |(_, l)| *l)
    }

    /// Whether a principal with `roles`, related by `rels`, may read `level`.
    fn grants(&self, roles: &[&str], rels: &BTreeSet<Relationship>, level: Level) -> bool {
        if level == Level::Sealed {
            return false;
        }
        let rule = &self.file.levels[&level];
        rule.relationships
            .iter()
            .any(|r| *r == Relationship::Any || rels.contains(r))
            || rule.roles.iter().any(|r| roles.contains(&r.as_str()))
    }
}

fn load_rules() -> Rules {
    let text = std::fs::read_to_string(POLICY_PATH).expect("read config/policy.toml");
    let policy = Policy::load(&text, "config/policy.toml", &casegraph::schema::shape())
        .expect("the policy loads");
    let file: PolicyFile =
        casegraph::config::load_toml(&text, "config/policy.toml").expect("the policy parses");
    Rules { file, policy }
}

/// Field types of the schema: (type, field) → GraphQL type.
fn schema_types() -> (BTreeMap<(String, String), Type>, BTreeSet<String>) {
    let doc = async_graphql::parser::parse_schema(casegraph::schema::sdl()).expect("SDL parses");
    let mut fields = BTreeMap::new();
    let mut objects = BTreeSet::new();
    for def in doc.definitions {
        if let TypeSystemDefinition::Type(t) = def {
            let name = t.node.name.node.to_string();
            if let TypeKind::Object(o) = &t.node.kind {
                objects.insert(name.clone());
                for f in &o.fields {
                    fields.insert(
                        (name.clone(), f.node.name.node.to_string()),
                        f.node.ty.node.clone(),
                    );
                }
            }
        }
    }
    (fields, objects)
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// A response path segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Field(String),
    Index(usize),
}

fn path_json(path: &[Seg]) -> Value {
    Value::Array(
        path.iter()
            .map(|s| match s {
                Seg::Field(f) => json!(f),
                Seg::Index(i) => json!(i),
            })
            .collect(),
    )
}

fn at<'a>(data: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(data, |v, s| match s {
        Seg::Field(f) => v.as_object()?.get(f),
        Seg::Index(i) => v.as_array()?.get(*i),
    })
}

/// What the reference answer (the case officer's) tells about each record on the way.
#[derive(Default, Clone)]
struct Context {
    victim: Option<(Option<String>, Option<String>)>,
    assistance_host: Option<String>,
    floor: Option<Level>,
    convicted: Option<bool>,
}

/// One expected outcome.
#[derive(Debug)]
enum Expect {
    /// No error; the value equals the reference answer's.
    Value(Vec<Seg>, Value),
    /// One FORBIDDEN_FIELD error at this path; `nulled` is where the null lands.
    Denied { path: Vec<Seg>, nulled: Vec<Seg> },
}

struct Walk<'a> {
    rules: &'a Rules,
    types: &'a BTreeMap<(String, String), Type>,
    principal: &'a Principal,
}

impl Walk<'_> {
    fn level(&self, ty: &str, field: &str, ctx: &Context) -> Level {
        let mut level = self.rules.field(&format!("{ty}.{field}"));
        if ty == "Defendant" && field == "name" && ctx.convicted == Some(true) {
            if let Some(l) = self.rules.file.convicted_defendant_name {
                level = l;
            }
        }
        let marked = MARKED_TYPES.contains(&ty)
            && !(ty == "NationalProceedings" && UNMARKED_FIELDS.contains(&field));
        match ctx.floor {
            Some(f) if marked => level.max(f),
            _ => level,
        }
    }

    fn relationships(&self, ty: &str, ctx: &Context) -> BTreeSet<Relationship> {
        let p = self.principal;
        let mut rels: BTreeSet<Relationship> = BTreeSet::from([Relationship::Any]);
        if ty == "CapacityBuildingAssistance" {
            assert_eq!(
                ctx.assistance_host.as_deref(),
                Some("MLI"),
                "the fixture's assistance is to Mali"
            );
            rels.extend(p.assistance_to_mli);
            return rels;
        }
        rels.extend(p.case.iter().copied());
        if ty == "Victim" {
            rels.remove(&Relationship::OwnVictimState);
            let (nationality, contributing) = ctx.victim.clone().expect("a victim's context");
            if p.own_state.is_some_and(|s| {
                nationality.as_deref() == Some(s) || contributing.as_deref() == Some(s)
            }) {
                rels.insert(Relationship::OwnVictimState);
            }
        }
        rels
    }

    /// Walks `steps` over the reference answer `node` (at `path`), collecting expectations.
    fn walk(
        &self,
        node: &Value,
        facts: &Value,
        path: Vec<Seg>,
        steps: &[(String, String)],
        ctx: Context,
        out: &mut Vec<Expect>,
    ) {
        let (ty, field) = &steps[0];
        let gql_type = &self.types[&(ty.clone(), field.clone())];
        let mut here = path.clone();
        here.push(Seg::Field(field.clone()));
        let level = self.level(ty, field, &ctx);
        let rels = self.relationships(ty, &ctx);
        if !self.rules.grants(self.principal.who.roles, &rels, level) {
            // The denied field itself resolves to null; its record stays.
            let nulled = here.clone();
            out.push(Expect::Denied { path: here, nulled });
            return;
        }
        let value = node.get(field.as_str()).cloned().unwrap_or(Value::Null);
        if steps.len() == 1 || value.is_null() {
            out.push(Expect::Value(here, value));
            return;
        }
        let fact = facts.get(field.as_str()).cloned().unwrap_or(Value::Null);
        match (&value, &gql_type.base) {
            (Value::Array(items), BaseType::List(_)) => {
                for (i, item) in items.iter().enumerate() {
                    let mut ctx = ctx.clone();
                    let item_fact = fact.get(i).cloned().unwrap_or(Value::Null);
                    match (ty.as_str(), field.as_str()) {
                        ("Case", "victims") => {
                            let s = |k: &str| item_fact[k].as_str().map(str::to_string);
                            ctx.victim = Some((s("nationality"), s("contributingCountry")));
                        }
                        ("Case", "capacityBuildingAssistance") => {
                            ctx.assistance_host =
                                item_fact["hostState"].as_str().map(str::to_string);
                        }
                        ("Case", "nationalProceedings") => {
                            ctx.floor = Some(self.rules.marking(MARKING))
                        }
                        ("NationalProceedings", "defendants") => {
                            ctx.convicted = Some(matches!(
                                item_fact["status"].as_str(),
                                Some("CONVICTED" | "SENTENCE_SERVING" | "SENTENCE_SERVED")
                            ));
                        }
                        _ => {}
                    }
                    let mut item_path = here.clone();
                    item_path.push(Seg::Index(i));
                    self.walk(item, &item_fact, item_path, &steps[1..], ctx, out);
                }
            }
            _ => self.walk(&value, &fact, here, &steps[1..], ctx, out),
        }
    }
}

/// The query reaching `steps` from `case(id: $id)`.
fn query_for(
    steps: &[(String, String)],
    objects: &BTreeSet<String>,
    types: &BTreeMap<(String, String), Type>,
) -> String {
    let (ty, field) = steps.last().expect("a field");
    let leaf_type = named(&types[&(ty.clone(), field.clone())]);
    let mut selection = if objects.contains(leaf_type) {
        format!("{field} {{ __typename }}")
    } else {
        field.clone()
    };
    for (_, f) in steps[..steps.len() - 1].iter().rev() {
        selection = format!("{f} {{ {selection} }}");
    }
    format!("query($id: ID!) {{ case(id: $id) {{ {selection} }} }}")
}

/// What the case officer's answer says about the records the matrix walks through.
const FACTS: &str = r#"query($id: ID!) { case(id: $id) {
  victims { nationality contributingCountry }
  capacityBuildingAssistance { hostState }
  nationalProceedings { source defendants { status } }
} }"#;

fn matrix_systems() -> Vec<System> {
    vec![System {
        id: "mli-test",
        host_state: "MLI",
        records: |key| vec![proceedings_record(key, MARKING)],
    }]
}

#[tokio::test]
async fn every_case_data_field_answers_each_principal_exactly_as_the_policy_says() {
    let rules = load_rules();
    let (types, objects) = schema_types();
    let fx = start(Setup {
        systems: matrix_systems(),
        ..Setup::default()
    })
    .await;
    let app = &fx.app;
    let vars = json!({ "id": fx.case_id });

    let (_, text, facts) = run(app, &UN_OFFICER, FACTS, vars.clone()).await;
    assert!(
        facts.get("errors").is_none(),
        "the officer reads the facts: {text}"
    );
    let facts = facts["data"]["case"].clone();
    assert_eq!(
        facts["victims"].as_array().map(Vec::len),
        Some(2),
        "two victims planted: {text}"
    );
    assert_eq!(
        facts["nationalProceedings"].as_array().map(Vec::len),
        Some(1),
        "the test system answers: {text}"
    );

    let covered: Vec<&str> = CHAINS.iter().map(|(t, _)| *t).collect();
    let keys: Vec<&String> = rules
        .file
        .fields
        .keys()
        .filter(|k| covered.iter().any(|t| k.starts_with(&format!("{t}."))))
        .collect();
    assert!(
        keys.len() > 60,
        "the matrix covers the case-data fields of the policy: {keys:?}"
    );

    let mut checked = 0usize;
    let mut denials = BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for key in keys {
        let (ty, field) = key.split_once('.').expect("Type.field");
        let prefix = CHAINS
            .iter()
            .find(|(t, _)| *t == ty)
            .expect("covered type")
            .1;
        let steps: Vec<(String, String)> = prefix
            .iter()
            .map(|(t, f)| (t.to_string(), f.to_string()))
            .chain([(ty.to_string(), field.to_string())])
            .collect();
        let query = query_for(&steps, &objects, &types);
        let (status, text, reference) = run(app, &UN_OFFICER, &query, vars.clone()).await;
        assert_eq!(status, 200, "{key}: {text}");
        let reference_case = reference["data"]["case"].clone();
        assert!(
            reference_case.is_object(),
            "{key}: the officer sees the case: {text}"
        );

        for p in principals() {
            let rels: BTreeSet<Relationship> = std::iter::once(Relationship::Any)
                .chain(p.case.iter().copied())
                .collect();
            let visible = rules.grants(p.who.roles, &rels, Level::Concerned);
            let (status, text, body) = run(app, &p.who, &query, vars.clone()).await;
            let who = p.who.label;
            let mut fail = |m: String| {
                failures.push(format!(
                    "{key} as {who}: {m}\n    query: {query}\n    answer: {text}"
                ))
            };
            if status != 200 {
                fail(format!("HTTP {status}"));
                continue;
            }
            checked += 1;
            let errors = body["errors"].as_array().cloned().unwrap_or_default();
            if !visible {
                if !body["data"]["case"].is_null() || !errors.is_empty() {
                    fail("the case must be invisible: `case` null and no error, as for an unknown id".into());
                }
                continue;
            }
            let walk = Walk {
                rules: &rules,
                types: &types,
                principal: &p,
            };
            let mut expected = Vec::new();
            let case_path = vec![Seg::Field("case".into())];
            walk.walk(
                &reference_case,
                &facts,
                case_path,
                &steps,
                Context::default(),
                &mut expected,
            );

            let data = &body["data"];
            let denied_paths: Vec<Value> = expected
                .iter()
                .filter_map(|e| match e {
                    Expect::Denied { path, .. } => Some(path_json(path)),
                    Expect::Value(..) => None,
                })
                .collect();
            *denials.entry(who).or_default() += denied_paths.len();
            let mut actual_paths: Vec<Value> = Vec::new();
            for e in &errors {
                if e["extensions"]["code"] != json!("FORBIDDEN_FIELD") {
                    fail(format!("unexpected error {e}"));
                }
                actual_paths.push(e["path"].clone());
            }
            let mut want = denied_paths.clone();
            want.sort_by_key(Value::to_string);
            actual_paths.sort_by_key(Value::to_string);
            if want != actual_paths {
                fail(format!("FORBIDDEN_FIELD errors at {actual_paths:?}, the policy says exactly at {want:?}"));
            }
            let nulled: Vec<&Vec<Seg>> = expected
                .iter()
                .filter_map(|e| match e {
                    Expect::Denied { nulled, .. } => Some(nulled),
                    Expect::Value(..) => None,
                })
                .collect();
            for e in &expected {
                match e {
                    Expect::Denied { path, nulled } => {
                        if at(data, nulled) != Some(&Value::Null) {
                            fail(format!("{path:?} is denied: {nulled:?} must be null"));
                        }
                    }
                    Expect::Value(path, value) => {
                        if nulled.iter().any(|n| path.starts_with(n)) {
                            continue;
                        }
                        let actual = at(data, path);
                        let volatile = ty == "Freshness"
                            || (ty == "NationalProceedings" && field == "freshness");
                        let ok = if volatile {
                            actual.is_some_and(|v| v.is_null() == value.is_null())
                        } else {
                            actual == Some(value)
                        };
                        if !ok {
                            fail(format!(
                                "{path:?} is granted: expected {value}, got {actual:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s) with the policy:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 500, "the matrix ran ({checked} answers)");
    // The fixture exercises denials for every related state below UN level.
    for who in [
        HOST_MLI.label,
        CONTRIBUTOR_SEN.label,
        NATIONALITY_TCD.label,
        UN_ANALYST.label,
    ] {
        assert!(
            denials.get(who).copied().unwrap_or(0) > 0,
            "no denial exercised for {who}: {denials:?}"
        );
    }
}

#[test]
fn the_policy_classifies_every_field_of_the_schema_and_a_missing_entry_stops_the_start() {
    let text = std::fs::read_to_string(POLICY_PATH).expect("read config/policy.toml");
    let fields = casegraph::schema::shape();
    Policy::load(&text, "config/policy.toml", &fields)
        .expect("the bundled policy classifies every field");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("\"Victim.name\" ="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, text, "the entry was removed");
    match Policy::load(&without, "config/policy.toml", &fields) {
        Err(PolicyError::Invalid(errors)) => {
            assert_eq!(errors.errors.len(), 1, "{errors}");
            assert!(
                errors.errors[0]
                    .message
                    .contains("`Victim.name` is not classified")
                    && errors.errors[0].line > 0,
                "{errors}"
            );
        }
        other => panic!("an unclassified field must stop the start, got {other:?}"),
    }
}

#[test]
fn the_test_reads_the_same_levels_as_the_gate() {
    // The matrix reads the file itself; this pins that it reads what the gate loads.
    let rules = load_rules();
    for (key, rule) in &rules.file.fields {
        assert_eq!(rules.policy.field_level(key), rule.level(), "{key}");
    }
    for (marking, level) in &rules.file.markings {
        assert_eq!(rules.policy.marking_level(marking), *level, "{marking}");
    }
    assert_eq!(
        rules.policy.convicted_defendant_name(),
        rules.file.convicted_defendant_name
    );
}

#[tokio::test]
async fn a_denied_field_is_null_at_its_own_path_and_its_record_stays() {
    // docs/architecture.md, "The single enforcement point": "a denied field resolves to null
    // with one error at its path".
    let fx = start(Setup::default()).await;
    let q = "query($id: ID!) { case(id: $id) { location { region coordinates { latitude } } victims { nationality name } } }";
    let (_, text, body) = run(&fx.app, &NATIONALITY_TCD, q, json!({ "id": fx.case_id })).await;
    let case = &body["data"]["case"];
    assert_eq!(case["location"]["region"], json!("Gao"), "{text}");
    assert!(case["location"]["coordinates"].is_null(), "{text}");
    assert_eq!(
        case["victims"][0],
        json!({ "nationality": "SEN", "name": null }),
        "{text}"
    );
    assert_eq!(case["victims"][1]["name"], json!(TCD_NAME), "{text}");
}
