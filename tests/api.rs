mod common;
use serde_json::json;

#[tokio::test]
async fn explore() {
    let app = common::spawn_app().await;
    let t = app.analyst();
    let deep = format!("{{ cases(first:1) {{ nodes {{ {} id {} }} }} }}", "capacityBuildingAssistance { cases { ".repeat(3), "} } ".repeat(3));
    for q in [
        r#"{ a: cases(filter: {victimCategories: [POLICE]}) { totalCount } b: cases(filter: {victimCategories: [NATIONAL_CIVILIAN]}) { totalCount } c: cases(filter: {contributingCountries: ["FRA"]}) { totalCount } d: cases(filter: {victimNationalities: ["FRA"]}) { totalCount } e: cases(filter: {hostStates: ["LBN"]}) { totalCount } f: cases(filter: {from: "2020-01-01", to: "2020-12-31"}) { totalCount } g: cases(filter: {acts: [IED]}) { totalCount } h: cases(filter: {contributingCountries: ["FRA"], victimNationalities: ["FRA"]}) { totalCount } }"#,
        r#"{ s: statistics(by: HOST_STATE) { groups { key } } x: cases(filter: {hostStates: ["XKX"]}) { totalCount }}"#,
        r#"{ mission(code: "MINUSMA") { nam } }"#,
        r#"{ mission(code: "MINUSMA") { names } }"#,
        r#"{ cases(filter: {from: "2021-13-01"}) { totalCount } }"#,
        &deep,
    ] {
        let (s, b) = app.gql(&t, q, json!({})).await;
        let mut out = b.to_string();
        out.truncate(1500);
        println!("{s} {out}\n");
    }
    let (s, b) = app.gql(&t, "query($d: Date) { cases(filter: {from: $d}) { totalCount } }", json!({"d": "2021-13-01"})).await;
    println!("{s} {b}\n");
    let app2 = common::try_spawn(common::AppOptions { configure: |c| c.server.introspection = false, ..Default::default() }).await.unwrap();
    for q in [r#"{ __schema { queryType { name } types { name } } }"#, r#"{ __type(name: "Case") { name fields { name } } }"#, r#"{ mission(code: "MINUSMA") { nam } }"#, r#"{ mission(code: "MINUSMA") { __typename name } }"#] {
        let (s, b) = app2.gql(&app2.analyst(), q, json!({})).await;
        println!("{s} {b}\n");
    }
}
