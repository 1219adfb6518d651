//! The `casegraph` command's configuration and tooling verbs, run as an operator would: every
//! example configuration loads, a broken file is reported in full, and the printed schemas are
//! the ones the project publishes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_casegraph");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `casegraph args…` from the repository root with a clean environment for the variables
/// CaseGraph reads, plus `env`.
fn casegraph(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(ROOT)
        .env_remove("CASEGRAPH_STORE_URL")
        .env_remove("CASEGRAPH_DATABASE_URL")
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run casegraph")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr")
}

/// Every `*.toml` in `config/`.
fn example_configs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("config"))
        .expect("config/ exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        // The sensitivity policy is not a gateway configuration; access_matrix loads it.
        .filter(|path| path.file_name().is_some_and(|n| n != "policy.toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_bundled_policy_loads_and_classifies_every_field_of_the_schema() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("config/policy.toml"))
        .expect("config/policy.toml");
    let policy =
        casegraph::access::Policy::load(&text, "config/policy.toml", &casegraph::schema::shape())
            .expect("the policy classifies every field, argument and mutation");
    casegraph::schema::access_for(policy).expect("no non-null field of the schema is deniable");
    assert_eq!(
        text,
        casegraph::access::EMBEDDED_POLICY,
        "the binary embeds config/policy.toml as it is"
    );
}

/// Writes `text` as `name` in `dir` and returns its path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config");
    path.display().to_string()
}

/// A valid configuration with the development issuer, its key in `dir`.
fn dev_config(dir: &Path) -> String {
    let text = format!(
        "[store]\nurl = \"sqlite://{store}\"\n\n[auth.dev_issuer]\nenabled = true\nkey_file = \"{key}\"\n",
        store = dir.join("cases.db").display(),
        key = dir.join("dev-key.pem").display(),
    );
    write(dir, "dev.toml", &text)
}

// ---------- example configurations ----------

#[test]
fn every_example_config_passes_check_config() {
    let files = example_configs();
    assert!(
        files.len() >= 2,
        "the demo and production examples: {files:?}"
    );
    // The production example reads its database URL, password included, from the environment.
    let database_url = "postgres://casegraph:Sup3r-S3cret-pw@db.internal:5432/casegraph";
    for file in &files {
        let path = file.display().to_string();
        let out = casegraph(
            &["check-config", "--config", &path],
            &[
                ("CASEGRAPH_DATABASE_URL", database_url),
                (
                    "CASEGRAPH_CURSOR_SECRET",
                    "a-cursor-secret-of-forty-bytes-or-so-123",
                ),
            ],
        );
        assert!(out.status.success(), "{path}:\n{}", stderr(&out));
        let report = stdout(&out);
        assert!(report.starts_with(&format!("{path}: OK")), "{report}");
        assert!(
            !report.contains("Sup3r-S3cret-pw"),
            "the password is printed: {report}"
        );
    }
}

#[test]
fn every_example_config_loads_in_process_but_for_unset_environment_variables() {
    let mut loaded = 0;
    for file in example_configs() {
        match casegraph::config::load_file(&file) {
            Ok(_) => loaded += 1,
            // Those files are loaded through the CLI above, with the variables set in the child.
            Err(errors) => assert!(
                errors
                    .iter()
                    .all(|e| e.message.starts_with("environment variable `")
                        && e.message.ends_with("` is not set")),
                "{errors}"
            ),
        }
    }
    assert!(
        loaded >= 1,
        "config/casegraph.toml needs no environment variable"
    );
}

#[test]
fn the_production_example_without_its_database_url_is_refused_naming_the_variable() {
    let path = Path::new(ROOT)
        .join("config/production.example.toml")
        .display()
        .to_string();
    let out = casegraph(&["check-config", "--config", &path], &[]);
    assert!(!out.status.success());
    let report = stderr(&out);
    assert!(report.contains("CASEGRAPH_DATABASE_URL"), "{report}");
    assert!(report.contains(&format!("{path}:")), "{report}");
}

#[test]
fn a_shared_store_needs_a_cursor_secret_of_at_least_32_bytes() {
    let path = Path::new(ROOT)
        .join("config/production.example.toml")
        .display()
        .to_string();
    let database_url = "postgres://casegraph:pw@db.internal:5432/casegraph";
    let short = casegraph(
        &["check-config", "--config", &path],
        &[
            ("CASEGRAPH_DATABASE_URL", database_url),
            ("CASEGRAPH_CURSOR_SECRET", "too-short"),
        ],
    );
    assert!(!short.status.success());
    let report = stderr(&short);
    assert!(
        report.contains("access.cursor_secret") && report.contains("at least 32 bytes"),
        "{report}"
    );
    assert!(
        !report.contains("too-short"),
        "the secret is printed: {report}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pg.toml");
    std::fs::write(
        &file,
        "[store]\nurl = \"postgres://casegraph@db.internal:5432/casegraph\"\n\n[auth.dev_issuer]\nenabled = true\n",
    )
    .expect("write");
    let missing = casegraph(
        &["check-config", "--config", &file.display().to_string()],
        &[],
    );
    assert!(!missing.status.success());
    let report = stderr(&missing);
    assert!(
        report.contains("access.cursor_secret")
            && report.contains("required with a PostgreSQL store"),
        "{report}"
    );
}

// ---------- check-config ----------

#[test]
fn check_config_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = "\
[server]
listen = \"127.0.0.1:4000\"
colour = \"blue\"

[store]
url = \"sqlite://cases.db\"
max_connections = \"many\"

[auth.jwt]
issuer = \"https://idp.example.org/\"
jwks_url = \"ftp://idp.example.org/keys\"
";
    let path = write(dir.path(), "bad.toml", text);
    let out = casegraph(&["check-config", "--config", &path], &[]);
    let report = stderr(&out);
    assert!(!out.status.success(), "{report}");
    let expected = [
        (3, "server.colour"),
        (7, "store.max_connections"),
        (11, "auth.jwt.jwks_url"),
    ];
    for (line, key) in expected {
        let prefix = format!("{path}:{line}:");
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(&format!(": {key}: "))),
            "no `{prefix}…: {key}:` line in:\n{report}"
        );
    }
    assert!(report.contains("unknown key `colour`"), "{report}");
    assert!(report.contains("invalid type: string"), "{report}");
    assert!(report.contains("https://"), "{report}");
    assert!(
        report.trim_end().ends_with(&format!("3 errors in {path}")),
        "{report}"
    );
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dev_config(dir.path());
    let out = casegraph(&["check-config", "--config", &path], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK"), "{}", stdout(&out));
}

// ---------- printed schemas ----------

#[test]
fn config_schema_prints_json_that_denies_unknown_keys_at_the_root() {
    let out = casegraph(&["config-schema"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let schema: Value = serde_json::from_slice(&out.stdout).expect("config-schema prints JSON");
    assert_eq!(
        schema["additionalProperties"],
        Value::Bool(false),
        "{schema:#}"
    );
    for table in ["server", "store", "auth", "limits", "log"] {
        assert!(
            schema["properties"].get(table).is_some(),
            "no `{table}` in {schema:#}"
        );
    }
}

#[test]
fn schema_prints_exactly_schema_graphql() {
    let out = casegraph(&["schema"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let golden =
        std::fs::read_to_string(Path::new(ROOT).join("schema.graphql")).expect("schema.graphql");
    assert!(stdout(&out) == golden, "`casegraph schema` differs from schema.graphql; refresh with `cargo run -q -- schema > schema.graphql`");
}

// ---------- dev-token ----------

#[test]
fn dev_token_prints_a_jwt_with_a_good_org_and_role() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dev_config(dir.path());
    let out = casegraph(
        &[
            "dev-token",
            "--config",
            &config,
            "--org",
            "MLI",
            "--role",
            "member-state-analyst",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim().split('.').count(),
        3,
        "{}",
        stdout(&out)
    );
}

#[test]
fn dev_token_refuses_an_unknown_role_and_lists_the_known_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dev_config(dir.path());
    let out = casegraph(
        &[
            "dev-token",
            "--config",
            &config,
            "--org",
            "MLI",
            "--role",
            "superuser",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "no token is printed: {}",
        stdout(&out)
    );
    let message = stderr(&out);
    assert!(
        message.contains("--role superuser: unknown role"),
        "{message}"
    );
    assert!(
        message.contains("member-state-analyst") && message.contains("un-case-officer"),
        "{message}"
    );
}

#[test]
fn dev_token_refuses_an_org_that_is_no_member_state_un_entity_or_regional_organisation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dev_config(dir.path());
    for org in ["ACME", "mli", "XXX"] {
        let out = casegraph(
            &[
                "dev-token",
                "--config",
                &config,
                "--org",
                org,
                "--role",
                "member-state-analyst",
            ],
            &[],
        );
        assert!(!out.status.success(), "{org}");
        assert!(
            stdout(&out).is_empty(),
            "no token is printed: {}",
            stdout(&out)
        );
        let message = stderr(&out);
        assert!(message.contains(&format!("--org {org}:")), "{message}");
        assert!(
            message.contains("Member State"),
            "the message says what is expected: {message}"
        );
    }
}

#[test]
fn dev_token_refuses_when_the_dev_issuer_is_disabled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "[store]\nurl = \"sqlite://{}\"\n\n[auth.jwt]\nissuer = \"https://idp.example.org/\"\njwks_url = \"https://idp.example.org/keys\"\n\n[auth.dev_issuer]\nenabled = false\nkey_file = \"{}\"\n",
        dir.path().join("cases.db").display(),
        dir.path().join("dev-key.pem").display(),
    );
    let config = write(dir.path(), "prod.toml", &text);
    let out = casegraph(
        &[
            "dev-token",
            "--config",
            &config,
            "--org",
            "MLI",
            "--role",
            "member-state-analyst",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "no token is printed: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("the development issuer is disabled"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("dev-key.pem").exists(),
        "no development key is created"
    );
}
