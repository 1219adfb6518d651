//! The HTTP transport as a client sees it: GraphQL-over-HTTP content negotiation, request
//! refusals, health, GraphiQL, request ids, metrics; and, against the real `casegraph serve`
//! process, its logs and its graceful shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{try_spawn, AppOptions, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const BIN: &str = env!("CARGO_BIN_EXE_casegraph");

// ---------- helpers ----------

/// A gateway over an empty SQLite store: nothing here needs the bundled cases.
async fn spawn_empty() -> TestApp {
    try_spawn(AppOptions {
        import_bundled: false,
        ..Default::default()
    })
    .await
    .expect("SQLite is always available")
}

fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ASCII header").to_owned())
        .unwrap_or_default()
}

/// POSTs `body` to /graphql as a UN analyst with `accept` (reqwest's own `*/*` when `None`).
async fn post(app: &TestApp, accept: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(app.analyst())
        .json(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.expect("request sent")
}

/// A response read off a raw socket.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs over a bare TCP connection, so that exactly `headers` are sent: reqwest always adds
/// `Accept: */*`, and GraphQL over HTTP treats a missing `Accept` on its own.
async fn raw_post(app: &TestApp, headers: &[(&str, &str)], body: &str) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let mut request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        app.addr
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "raw_post reads Content-Length bodies only"
    );
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The value of an unlabelled Prometheus sample, or of the first line starting with `series`.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{metrics}"))
}

async fn metrics(app: &TestApp) -> String {
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
    res.text().await.expect("metrics text")
}

// ---------- content negotiation ----------

#[tokio::test]
async fn a_json_client_gets_json_and_200_even_for_a_validation_error() {
    let app = spawn_empty().await;
    let res = post(
        &app,
        Some("application/json"),
        &json!({ "query": "{ noSuchField }" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(content_type(&res), "application/json");
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(
        common::error_codes(&body),
        ["GRAPHQL_VALIDATION_FAILED"],
        "{body}"
    );
    assert!(
        body.get("data").is_none(),
        "a request error has no data: {body}"
    );
}

#[tokio::test]
async fn a_client_without_accept_gets_the_graphql_response_type_and_400_without_data_for_a_syntax_error(
) {
    let app = spawn_empty().await;
    let token = app.analyst();
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    let ok = raw_post(
        &app,
        &headers,
        &json!({ "query": "{ viewer { subject } }" }).to_string(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("content-type"), Some(GRAPHQL_RESPONSE));

    let bad = raw_post(
        &app,
        &headers,
        &json!({ "query": "{ viewer { subject " }).to_string(),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.header("content-type"), Some(GRAPHQL_RESPONSE));
    let body: Value = serde_json::from_str(&bad.body).expect("JSON body");
    assert!(
        body.get("data").is_none(),
        "a request error has no data key: {body}"
    );
    assert!(!common::error_codes(&body).is_empty(), "{body}");
}

#[tokio::test]
async fn a_graphql_response_client_gets_400_without_data_for_a_syntax_error() {
    let app = spawn_empty().await;
    let res = post(&app, Some(GRAPHQL_RESPONSE), &json!({ "query": "query {" })).await;
    assert_eq!(res.status(), 400);
    assert_eq!(content_type(&res), GRAPHQL_RESPONSE);
    let body: Value = res.json().await.expect("JSON body");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(
        common::error_codes(&body),
        ["GRAPHQL_VALIDATION_FAILED"],
        "{body}"
    );

    let res = post(
        &app,
        Some(GRAPHQL_RESPONSE),
        &json!({ "query": "{ viewer { subject } }" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(content_type(&res), GRAPHQL_RESPONSE);
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(
        body["data"]["viewer"]["subject"],
        json!("test-user"),
        "{body}"
    );
}

#[tokio::test]
async fn a_client_accepting_only_html_gets_406() {
    let app = spawn_empty().await;
    let res = post(
        &app,
        Some("text/html"),
        &json!({ "query": "{ viewer { subject } }" }),
    )
    .await;
    assert_eq!(res.status(), 406);
}

// ---------- refused requests ----------

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_payload_too_large() {
    fn small_limit(config: &mut casegraph::config::Config) {
        config.server.body_limit_bytes = 2048;
    }
    let app = try_spawn(AppOptions {
        import_bundled: false,
        configure: small_limit,
        ..Default::default()
    })
    .await
    .expect("SQLite is always available");
    let padding = " ".repeat(4096);
    let res = post(
        &app,
        Some("application/json"),
        &json!({ "query": format!("{{ viewer {{ subject }} {padding}}}") }),
    )
    .await;
    assert_eq!(res.status(), 413);
    let text = res.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the 413 body is not JSON ({e}): {text}"));
    assert_eq!(common::error_codes(&body), ["PAYLOAD_TOO_LARGE"], "{body}");

    // Just under the limit is served.
    let res = post(
        &app,
        Some("application/json"),
        &json!({ "query": "{ viewer { subject } }" }),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_refused_with_415() {
    let app = spawn_empty().await;
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(app.analyst())
        .header("content-type", "text/plain")
        .body(json!({ "query": "{ viewer { subject } }" }).to_string())
        .send()
        .await
        .expect("request sent");
    assert_eq!(res.status(), 415);
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(common::error_codes(&body), ["BAD_REQUEST"], "{body}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_bad_request() {
    let app = spawn_empty().await;
    for body in ["{ viewer { subject } }", "{\"query\": 42}", ""] {
        let res = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(app.analyst())
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(res.status(), 400, "{body:?}");
        let answer: Value = res.json().await.expect("JSON body");
        assert_eq!(
            common::error_codes(&answer),
            ["BAD_REQUEST"],
            "{body:?}: {answer}"
        );
    }
}

#[tokio::test]
async fn get_on_graphql_is_405_allowing_post() {
    let app = spawn_empty().await;
    let res = app
        .client
        .get(format!(
            "{}/graphql?query=%7Bviewer%7Bsubject%7D%7D",
            app.base
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

// ---------- health, GraphiQL, request ids, metrics ----------

#[tokio::test]
async fn liveness_and_readiness_answer_200() {
    let app = spawn_empty().await;
    for path in ["/health/live", "/health/ready"] {
        let res = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn graphiql_is_served_at_the_root_with_the_demo_config() {
    let app = spawn_empty().await;
    let res = app.client.get(&app.base).send().await.expect("GET /");
    assert_eq!(res.status(), 200);
    assert!(
        content_type(&res).starts_with("text/html"),
        "{}",
        content_type(&res)
    );
    let html = res.text().await.expect("HTML");
    assert!(html.to_ascii_lowercase().contains("graphiql"), "{html}");
    assert!(
        html.contains("/graphql"),
        "GraphiQL points at the endpoint: {html}"
    );
}

#[tokio::test]
async fn the_root_is_404_when_graphiql_is_off() {
    fn no_graphiql(config: &mut casegraph::config::Config) {
        config.server.graphiql = false;
    }
    let app = try_spawn(AppOptions {
        import_bundled: false,
        configure: no_graphiql,
        ..Default::default()
    })
    .await
    .expect("SQLite is always available");
    let res = app.client.get(&app.base).send().await.expect("GET /");
    assert_eq!(res.status(), 404);
    assert!(!res
        .text()
        .await
        .expect("body")
        .to_ascii_lowercase()
        .contains("<html"));
}

#[tokio::test]
async fn every_response_carries_an_x_request_id_and_echoes_the_clients() {
    let app = spawn_empty().await;
    let mut seen = Vec::new();
    for path in ["/health/live", "/graphql", "/no-such-route"] {
        let res = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("GET");
        let id = res
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path} has no x-request-id"))
            .to_str()
            .expect("ASCII");
        assert!(!id.is_empty(), "{path}");
        seen.push(id.to_owned());
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "each request gets its own id: {seen:?}");

    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(app.analyst())
        .header("x-request-id", "client-chosen-42")
        .json(&json!({ "query": "{ viewer { subject } }" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chosen-42")
    );
}

#[tokio::test]
async fn metrics_expose_store_queries_and_count_graphql_requests() {
    let app = spawn_empty().await;
    let before = metrics(&app).await;
    assert!(
        before.contains("# TYPE casegraph_store_queries_total counter"),
        "{before}"
    );
    let ok_before = sample(&before, "casegraph_graphql_requests_total{status=\"2xx\"}");
    let unauth_before = sample(&before, "casegraph_graphql_requests_total{status=\"4xx\"}");
    let queries_before = sample(&before, "casegraph_store_queries_total");

    let (status, body) = app
        .gql(&app.analyst(), "{ missions { code } }", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .gql("not-a-token", "{ viewer { subject } }", json!({}))
        .await;
    assert_eq!(status, 401);

    let after = metrics(&app).await;
    assert_eq!(
        sample(&after, "casegraph_graphql_requests_total{status=\"2xx\"}"),
        ok_before + 1,
        "{after}"
    );
    assert_eq!(
        sample(&after, "casegraph_graphql_requests_total{status=\"4xx\"}"),
        unauth_before + 1,
        "{after}"
    );
    assert!(
        sample(&after, "casegraph_store_queries_total") > queries_before,
        "listing missions queries the store: {after}"
    );
    assert_eq!(
        sample(&after, "casegraph_graphql_request_duration_seconds_count"),
        sample(&before, "casegraph_graphql_request_duration_seconds_count") + 2
    );
    // The same document again is planned once: the second run hits the plan cache.
    let misses = sample(&after, "casegraph_access_plans_total{cache=\"miss\"}");
    let hits = sample(&after, "casegraph_access_plans_total{cache=\"hit\"}");
    let (status, body) = app
        .gql(&app.analyst(), "{ missions { code } }", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let again = metrics(&app).await;
    assert_eq!(
        sample(&again, "casegraph_access_plans_total{cache=\"miss\"}"),
        misses,
        "{again}"
    );
    assert_eq!(
        sample(&again, "casegraph_access_plans_total{cache=\"hit\"}"),
        hits + 1,
        "{again}"
    );
}

// ---------- the real binary: logs and shutdown ----------

/// A `casegraph serve` child process; killed if a test fails before stopping it.
struct Server {
    child: Child,
    addr: String,
    config: PathBuf,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a copy of `config/casegraph.toml` with its store and dev key in a temporary folder,
/// no bundled import (fast start), no demo connectors or simulators, then `edit` applied.
fn write_config(dir: &Path, edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> PathBuf {
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/casegraph.toml"
    ))
    .expect("demo config");
    let mut doc: toml_edit::DocumentMut = demo.parse().expect("the demo config is TOML");
    doc["store"]["url"] = toml_edit::value(format!("sqlite://{}", dir.join("cases.db").display()));
    doc["store"]["import_bundled_data_when_empty"] = toml_edit::value(false);
    doc["auth"]["dev_issuer"]["key_file"] =
        toml_edit::value(dir.join("dev-key.pem").display().to_string());
    // The demo's simulators listen on fixed ports, which tests running in parallel would share.
    doc["simulators"]["enabled"] = toml_edit::value(false);
    doc["connectors"]["dir"] = toml_edit::value("");
    edit(&mut doc);
    let path = dir.join("casegraph.toml");
    std::fs::write(&path, doc.to_string()).expect("write the config");
    path
}

/// Starts `casegraph serve` and waits for its "listening" banner.
fn start_server(edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), edit);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env_remove("CASEGRAPH_STORE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start casegraph serve");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let pipe = child.stderr.take().expect("piped stderr");
    let sink = Arc::clone(&stderr);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock()
                .expect("stderr lock")
                .push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.split("CaseGraph is listening on http://").nth(1) {
                    break rest
                        .split_whitespace()
                        .next()
                        .expect("an address after the banner")
                        .to_owned();
                }
                // With JSON logs the start is a log event carrying the address.
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    if event["message"] == "CaseGraph is listening" {
                        if let Some(addr) = event["address"].as_str() {
                            break addr.to_owned();
                        }
                    }
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no listening banner within 60 s; stderr:\n{}",
                    stderr.lock().expect("stderr lock")
                );
            }
        }
    };
    Server {
        child,
        addr,
        config,
        stderr,
        reader: Some(reader),
        _dir: dir,
    }
}

impl Server {
    /// Sends SIGTERM and waits up to `within` for the exit; returns the status and all of stderr.
    fn terminate(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "casegraph did not exit within {within:?} of SIGTERM; stderr:\n{}",
                    self.stderr.lock().expect("lock")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        let stderr = self.stderr.lock().expect("stderr lock").clone();
        (status, stderr)
    }

    /// A dev token minted by `casegraph dev-token` with the server's own configuration.
    fn dev_token(&self) -> String {
        let out = Command::new(BIN)
            .args(["dev-token", "--config"])
            .arg(&self.config)
            .args(["--org", "MLI", "--role", "member-state-analyst"])
            .env_remove("CASEGRAPH_STORE_URL")
            .output()
            .expect("run casegraph dev-token");
        assert!(
            out.status.success(),
            "dev-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)
            .expect("UTF-8 token")
            .trim()
            .to_owned();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        token
    }
}

/// Sends one authenticated query and one with a bad token, both tagged with request ids.
async fn exercise(client: &reqwest::Client, server: &Server, token: &str) {
    let res = client
        .post(format!("http://{}/graphql", server.addr))
        .bearer_auth(token)
        .header("x-request-id", "test-req-123")
        .json(&json!({ "query": "{ viewer { subject organisation } }" }))
        .send()
        .await
        .expect("POST to the child");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("test-req-123")
    );
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(
        body["data"]["viewer"]["organisation"],
        json!("MLI"),
        "{body}"
    );

    // A token with a broken signature is refused and must not be logged either.
    let forged = format!("{}AAAA", token);
    let res = client
        .post(format!("http://{}/graphql", server.addr))
        .bearer_auth(&forged)
        .header("x-request-id", "test-req-456")
        .json(&json!({ "query": "{ viewer { subject } }" }))
        .send()
        .await
        .expect("POST to the child");
    assert_eq!(res.status(), 401);
}

fn assert_no_token(stderr: &str, token: &str) {
    let signature = token.rsplit('.').next().expect("a signature part");
    assert!(signature.len() > 20, "a real signature: {token}");
    assert!(
        !stderr.contains(token),
        "the token reached the log:\n{stderr}"
    );
    assert!(
        !stderr.contains(signature),
        "the token's signature reached the log:\n{stderr}"
    );
}

#[tokio::test]
async fn the_server_logs_the_request_id_but_never_the_token() {
    let mut server = start_server(|_| {});
    let token = server.dev_token();
    exercise(&reqwest::Client::new(), &server, &token).await;
    let (status, stderr) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}; stderr:\n{stderr}");

    let tagged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("test-req-123"))
        .collect();
    assert!(
        !tagged.is_empty(),
        "no log line carries the request id:\n{stderr}"
    );
    assert!(
        tagged.iter().any(|l| l.contains("Request finished")),
        "{tagged:#?}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("test-req-456") && l.contains("Token refused")),
        "{stderr}"
    );
    assert_no_token(&stderr, &token);
}

/// Lines `casegraph serve` prints for people on start (not log events).
fn is_banner(line: &str) -> bool {
    line.trim().is_empty()
        || [
            "CaseGraph is listening on ",
            "  GraphiQL:",
            "Get a token (development issuer)",
            "  TOKEN=$(",
            "  curl -s ",
            "    -d '",
        ]
        .iter()
        .any(|prefix| line.starts_with(prefix))
}

#[tokio::test]
async fn with_json_logging_every_log_line_on_stderr_is_a_json_object() {
    let mut server = start_server(|doc| doc["log"]["format"] = toml_edit::value("json"));
    let token = server.dev_token();
    exercise(&reqwest::Client::new(), &server, &token).await;
    let (status, stderr) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}; stderr:\n{stderr}");

    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| !is_banner(l))
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n\nstderr:\n{stderr}"))
        })
        .collect();
    assert!(
        events.len() >= 3,
        "start, requests and stop are logged:\n{stderr}"
    );
    for event in &events {
        assert!(event.is_object(), "{event}");
        assert!(
            event.get("level").is_some() && event.get("timestamp").is_some(),
            "{event}"
        );
    }
    let finished = events
        .iter()
        .find(|e| {
            e["message"] == json!("Request finished")
                && e["span"]["request_id"] == json!("test-req-123")
        })
        .unwrap_or_else(|| panic!("no JSON event of the tagged request:\n{stderr}"));
    assert_eq!(finished["status"], json!(200), "{finished}");
    assert_no_token(&stderr, &token);
}

#[tokio::test]
async fn sigterm_stops_the_server_with_exit_status_0_within_the_grace_period() {
    let mut server = start_server(|doc| doc["server"]["shutdown_grace_secs"] = toml_edit::value(5));
    let token = server.dev_token();
    // The client stays alive, so its kept-alive connection is open when SIGTERM arrives: an idle
    // connection must be closed at once, not hold the shutdown until the grace period is over.
    let client = reqwest::Client::new();
    exercise(&client, &server, &token).await;
    let (status, stderr) = server.terminate(Duration::from_secs(5 + 2));
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("Shutting down"), "{stderr}");
    assert!(
        stderr.contains("Stopped"),
        "the server drained and returned: {stderr}"
    );
    assert!(
        !stderr.contains("Grace period over"),
        "an idle connection held the shutdown: {stderr}"
    );
    drop(client);
}
