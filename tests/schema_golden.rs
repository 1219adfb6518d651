//! `schema.graphql` is the golden SDL of the API: it must equal what the code produces.

#[test]
fn schema_graphql_equals_the_code_first_schema() {
    let golden = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql exists at the repository root");
    let current = casegraph::schema::sdl();
    if golden != current {
        let first_diff = golden
            .lines()
            .zip(current.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "(one is a prefix of the other)".to_string(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "schema.graphql is out of date ({first_diff}).\n\
             If the change to the API is intended, refresh it with:\n\n    \
             cargo run -q -- schema > schema.graphql\n\n\
             and review the diff: it is the public contract portals and analysts rely on."
        );
    }
}
