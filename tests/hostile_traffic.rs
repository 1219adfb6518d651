//! Hostile and overloaded traffic against the real gateway on 127.0.0.1 port 0 (issue 9): each
//! attack is refused with its code, and a normal query of another principal still answers.
//!
//! No test measures the machine: a refusal is checked to come back within a bound ten times
//! the 100 ms the issue asks (it does no work that grows with the attack), and otherwise while
//! the work it would wait for is still held (a hanging upstream the test controls), or by
//! counters showing the expensive work never ran (store statements, upstream calls).

mod common;

use axum::extract::State;
use axum::routing::{get, post};
use common::{error_codes, spawn_with, TestApp};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ten times the 100 ms the issue asks for a refusal: a loaded laptop still makes it.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// A MINUSMA case in Mali in the bundled UN data.
const MLI_CASE: &str = "MINUSMA-20230609";

/// An analyst's everyday question.
const NORMAL: &str =
    r#"{ cases(first: 5, filter: {hostStates: ["MLI"]}) { totalCount nodes { reference } } }"#;

/// The 1.7 KB document of the report: `levels` fragments, each spreading the previous twice.
fn fan_out(levels: usize) -> String {
    let mut q = format!("query {{ ...F{levels} }} fragment F0 on Query {{ __typename }}");
    for i in 1..=levels {
        q.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i - 1,
            i - 1
        ));
    }
    q
}

/// A token for another person than the attacker (`app.token` is always "test-user").
fn bystander(app: &TestApp) -> String {
    app.dev
        .mint(
            &app.audience,
            "bystander",
            "UN",
            &["un-analyst".to_string()],
            &[],
            Duration::from_secs(600),
        )
        .expect("mint")
}

/// The normal query of a bystander answers in full.
async fn normal_query_answers(app: &TestApp) {
    let (status, body) = app.gql(&bystander(app), NORMAL, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        body["data"]["cases"]["totalCount"].as_i64() > Some(0),
        "{body}"
    );
}

/// POSTs a GraphQL request; status, headers, JSON body and how long it took.
async fn timed_post(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
) -> (u16, reqwest::header::HeaderMap, Value, Duration) {
    let started = Instant::now();
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body: Value = res.json().await.expect("JSON body");
    (status, headers, body, started.elapsed())
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

// ---------- operation cost ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_fan_outs_of_2_20_and_2_39_are_refused_at_once_while_a_normal_query_answers() {
    let app = spawn_with(|_| {}).await;
    let attacker = app.analyst();
    for levels in [20usize, 39] {
        let query = fan_out(levels);
        assert!(
            query.len() < 2_000,
            "a small document: {} bytes",
            query.len()
        );
        // Four in flight at once, as in the report, next to a bystander's normal query.
        let attacks = (0..4).map(|_| timed_post(&app, &attacker, &query, json!({})));
        let (attacks, ()) = tokio::join!(
            futures::future::join_all(attacks),
            normal_query_answers(&app)
        );
        for (status, _, body, elapsed) in attacks {
            assert_eq!(status, 400, "{body}");
            assert_eq!(error_codes(&body), ["OPERATION_TOO_COMPLEX"], "{body}");
            let ext = &body["errors"][0]["extensions"];
            assert_eq!(ext["limit"], "fields", "{body}");
            assert_eq!(ext["maximum"], 1000, "{body}");
            let measured = ext["measured"].as_f64().expect("the figure");
            assert!(measured >= 2f64.powi(levels as i32), "{body}");
            assert!(body.get("data").is_none(), "nothing ran: {body}");
            assert!(elapsed < REFUSED_WITHIN, "2^{levels} took {elapsed:?}");
        }
    }
    normal_query_answers(&app).await;
}

#[tokio::test]
async fn unknown_and_repeated_directives_are_refused() {
    let app = spawn_with(|_| {}).await;
    for query in [
        "{ __typename @nosuch(x: 1) }",
        "{ __typename @include(if: true) @include(if: true) }",
    ] {
        let (status, _, body, _) = timed_post(&app, &app.analyst(), query, json!({})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    }
}

#[tokio::test]
async fn a_60000_deep_query_gets_a_short_error_that_does_not_echo_it() {
    let app = spawn_with(|_| {}).await;
    let query = format!("{}{}", "{a".repeat(60_000), "}".repeat(60_000));
    let (status, _, body, elapsed) = timed_post(&app, &app.analyst(), &query, json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_codes(&body), ["OPERATION_TOO_COMPLEX"], "{body}");
    assert!(
        body.to_string().len() < 500,
        "{} bytes",
        body.to_string().len()
    );
    assert!(elapsed < REFUSED_WITHIN, "{elapsed:?}");
}

// ---------- list arguments ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_30000_countries_is_refused_before_any_store_statement() {
    let app = spawn_with(|c| {
        // Large enough for the 180 KB of variables, so the list itself is what is refused.
        c.limits.max_variables_bytes = 200 * 1024;
    })
    .await;
    let t = app.analyst();
    let many = vec!["MLI"; 30_000];
    let by_variable = "query($h: [String!]) { cases(filter: {hostStates: $h}) { totalCount } }";
    let by_nationality =
        "query($h: [String!]) { cases(filter: {victimNationalities: $h}) { totalCount } }";
    let inline = format!(
        "{{ cases(filter: {{hostStates: [{}]}}) {{ totalCount }} }}",
        vec!["\"MLI\""; 30_000].join(",")
    );
    let before = app.store.query_count();
    let (attacks, ()) = tokio::join!(
        futures::future::join_all([
            timed_post(&app, &t, by_variable, json!({ "h": many })),
            timed_post(&app, &t, by_nationality, json!({ "h": many })),
            timed_post(&app, &t, &inline, json!({})),
        ]),
        normal_query_answers(&app)
    );
    for (i, (status, _, body, elapsed)) in attacks.into_iter().enumerate() {
        assert_eq!(status, 400, "{body}");
        if i < 2 {
            assert_eq!(error_codes(&body), ["INPUT_TOO_LARGE"], "{body}");
            let message = body["errors"][0]["message"].as_str().expect("a message");
            assert!(message.contains("30000 items"), "{message}");
        } else {
            // Written in the document, the list is refused before it is even parsed.
            assert_eq!(error_codes(&body), ["OPERATION_TOO_COMPLEX"], "{body}");
            assert_eq!(body["errors"][0]["extensions"]["limit"], "tokens", "{body}");
        }
        assert!(elapsed < REFUSED_WITHIN, "{elapsed:?}");
    }
    // The normal query's statements only (a count and a page, plus any prefetch).
    let spent = app.store.query_count() - before;
    assert!(spent <= 8, "the refused lists cost no statement: {spent}");

    // 500 copies of one country are one country.
    let (status, _, body, _) =
        timed_post(&app, &t, by_variable, json!({ "h": vec!["MLI"; 500] })).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, once, _) = timed_post(&app, &t, by_variable, json!({ "h": ["MLI"] })).await;
    assert_eq!(body["data"], once["data"], "{body} vs {once}");
}

#[tokio::test]
async fn variables_larger_than_the_limit_are_refused() {
    let app = spawn_with(|_| {}).await;
    let big = "x".repeat(70 * 1024);
    let (status, _, body, _) = timed_post(
        &app,
        &app.analyst(),
        "query($r: String) { case(reference: $r) { id } }",
        json!({ "r": big }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_codes(&body), ["INPUT_TOO_LARGE"], "{body}");
}

// ---------- slow clients and connections ----------

/// Reads until the server closes the connection (EOF or reset); false when `deadline` passes
/// first.
async fn closed_by_server(stream: &mut TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 the server may write before closing.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_that_never_finish_their_headers_are_cut_off_while_a_normal_query_answers(
) {
    let app = spawn_with(|c| {
        c.server.header_read_timeout_ms = 1_000;
        c.server.max_connections = 4_096;
    })
    .await;
    let mut slow = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream
            .write_all(b"POST /graphql HTTP/1.1\r\nHost: casegraph\r\nContent-Type: appl")
            .await
            .expect("a partial header");
        slow.push(stream);
    }
    normal_query_answers(&app).await;
    let health = app
        .client
        .get(format!("{}/health/live", app.base))
        .send()
        .await
        .expect("GET /health/live");
    assert_eq!(health.status(), 200);
    // Every one is closed by the server after its header timeout (1 s); the bound only has
    // to be far above it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, deadline).await,
            "slow connection {i} is still open"
        );
    }
    normal_query_answers(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_as_soon_as_they_are_accepted() {
    let app = spawn_with(|c| {
        c.server.max_connections = 8;
        // Far above the test: a connection closed here was closed for the limit.
        c.server.header_read_timeout_ms = 120_000;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for _ in 0..4 {
        let mut extra = TcpStream::connect(app.addr).await.expect("connect");
        assert!(
            closed_by_server(&mut extra, deadline).await,
            "a connection over the limit is closed"
        );
    }
    drop(held);
    // The slots come back as the server sees the held connections close.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = app
            .client
            .get(format!("{}/health/live", app.base))
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never freed its slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&app, "casegraph_connections_refused_total").await >= 4.0);
    normal_query_answers(&app).await;
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408() {
    let app = spawn_with(|c| c.server.body_read_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: casegraph\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\":",
        app.analyst()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}]}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server answers a stalled body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
}

// ---------- load shedding, rate limits, timeouts (a national system the test holds) ----------

/// A protocol upstream whose lookups hang until released, counting lookups started and
/// lookups dropped before they answered (the gateway gave up on them).
#[derive(Clone, Default)]
struct Hanging {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

struct CountDrop(Arc<AtomicUsize>, bool);

impl Drop for CountDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn hanging_lookup(State(h): State<Hanging>) -> axum::Json<Value> {
    let mut guard = CountDrop(Arc::clone(&h.dropped), false);
    h.started.fetch_add(1, Ordering::SeqCst);
    let notified = h.release.notified();
    if !h.released.load(Ordering::SeqCst) {
        notified.await;
    }
    guard.1 = true;
    axum::Json(json!({ "records": [] }))
}

impl Hanging {
    async fn start() -> (Self, String) {
        let state = Hanging::default();
        let app = axum::Router::new()
            .route("/lookup", post(hanging_lookup))
            .route(
                "/health",
                get(|| async { axum::Json(json!({ "status": "ok" })) }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (state, format!("http://{addr}"))
    }

    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.release.notify_waiters();
    }

    async fn wait_started(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.started.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the upstream never got {n} lookups"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_dropped(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.dropped.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the gateway kept {n} lookup(s) running: their work was not cancelled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A connectors folder with one protocol connector for Mali at `url`, patient enough
/// (60 s, no retry) that only the gateway's own limits end a call.
fn mali_connector(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "name = \"Hanging Mali\"\nkind = \"protocol\"\nhost_states = [\"MLI\"]\nmatch_by = \"un_reference\"\n\n\
         [runtime]\ntimeout_ms = 60000\nretries = 0\n\n[protocol]\nbase_url = \"{url}\"\n"
    );
    std::fs::write(dir.path().join("mli-hanging.toml"), text).expect("write");
    dir
}

const PROCEEDINGS: &str =
    "query($r: String!) { case(reference: $r) { reference nationalProceedings { stage } } }";

fn connectors_at(c: &mut casegraph::config::Config, dir: &Path) {
    c.connectors.dir = dir.display().to_string();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_concurrency_limit_is_shed_with_503_and_retry_after() {
    let (upstream, url) = Hanging::start().await;
    let connectors = mali_connector(&url);
    let app = spawn_with(|c| {
        connectors_at(c, connectors.path());
        c.server.max_in_flight = 2;
        c.server.max_queued = 1;
        c.server.queue_timeout_ms = 120_000;
        c.server.retry_after_secs = 2;
    })
    .await;
    let app = Arc::new(app);
    // Two requests hold both slots, waiting on the national system.
    let holding: Vec<_> = (0..2)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                app.gql(&app.analyst(), PROCEEDINGS, json!({ "r": MLI_CASE }))
                    .await
            })
        })
        .collect();
    upstream.wait_started(2).await;
    // A bystander's normal query waits in the queue's only place.
    let queued = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { normal_query_answers(&app).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&app, "casegraph_graphql_queued").await < 1.0 {
        assert!(Instant::now() < deadline, "the normal query never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The burst finds no slot and no place: each is shed at once.
    let t = app.analyst();
    let burst = (0..20).map(|_| timed_post(&app, &t, NORMAL, json!({})));
    for (status, headers, body, elapsed) in futures::future::join_all(burst).await {
        assert_eq!(status, 503, "{body}");
        assert_eq!(error_codes(&body), ["OVERLOADED"], "{body}");
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("2")
        );
        assert!(elapsed < REFUSED_WITHIN, "{elapsed:?}");
    }
    assert_eq!(
        upstream.started.load(Ordering::SeqCst),
        2,
        "the slots were held all along: the refusals waited for nothing"
    );
    // Probes are not GraphQL requests: they answer while every slot is taken.
    for probe in ["/health/live", "/health/ready"] {
        let res = app
            .client
            .get(format!("{}{probe}", app.base))
            .send()
            .await
            .expect("probe");
        assert_eq!(res.status(), 200, "{probe}");
    }
    assert!(metric(&app, "casegraph_graphql_shed_total").await >= 20.0);
    upstream.release();
    for h in holding {
        let (status, body) = h.await.expect("task");
        assert_eq!(status, 200, "{body}");
    }
    queued
        .await
        .expect("the queued normal query answers once a slot is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_over_its_rate_gets_429_with_retry_after_while_others_answer() {
    let app = spawn_with(|c| {
        c.rate_limits.roles.insert(
            "un-analyst".into(),
            casegraph::config::RateLimit {
                // One token a minute: none refills during the few requests of the test.
                requests_per_minute: 1,
                burst: 3,
                max_in_flight: 8,
            },
        );
        c.rate_limits.roles.insert(
            "un-case-officer".into(),
            casegraph::config::RateLimit {
                requests_per_minute: 600,
                burst: 100,
                max_in_flight: 8,
            },
        );
    })
    .await;
    let attacker = app.analyst();
    for _ in 0..3 {
        let (status, _, body, _) = timed_post(&app, &attacker, "{ __typename }", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = app.store.query_count();
    for _ in 0..5 {
        let (status, headers, body, elapsed) = timed_post(&app, &attacker, NORMAL, json!({})).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(error_codes(&body), ["RATE_LIMITED"], "{body}");
        let after: u64 = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&after), "{after}");
        assert!(elapsed < REFUSED_WITHIN, "{elapsed:?}");
    }
    assert_eq!(app.store.query_count(), before, "refused before any work");
    // Another person, with a role of its own limit, is unaffected.
    let officer = app
        .dev
        .mint(
            &app.audience,
            "officer",
            "UN",
            &["un-case-officer".to_string()],
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    for _ in 0..5 {
        let (status, _, body, _) = timed_post(&app, &officer, NORMAL, json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(metric(&app, "casegraph_graphql_rate_limited_total").await >= 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_principal_is_refused_before_it_takes_the_shared_slots() {
    let (upstream, url) = Hanging::start().await;
    let connectors = mali_connector(&url);
    let app = Arc::new(
        spawn_with(|c| {
            connectors_at(c, connectors.path());
            c.rate_limits.roles.insert(
                "un-analyst".into(),
                casegraph::config::RateLimit {
                    requests_per_minute: 1_000_000,
                    burst: 100_000,
                    max_in_flight: 2,
                },
            );
            // Room for the bystander, none for a queue: only the principal's bound can refuse.
            c.server.max_in_flight = 3;
            c.server.max_queued = 0;
        })
        .await,
    );
    let holding: Vec<_> = (0..2)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                app.gql(&app.analyst(), PROCEEDINGS, json!({ "r": MLI_CASE }))
                    .await
            })
        })
        .collect();
    upstream.wait_started(2).await;
    let t = app.analyst();
    let burst = (0..20).map(|_| timed_post(&app, &t, NORMAL, json!({})));
    for (status, headers, body, elapsed) in futures::future::join_all(burst).await {
        assert_eq!(status, 429, "{body}");
        assert_eq!(error_codes(&body), ["RATE_LIMITED"], "{body}");
        assert!(headers.get("retry-after").is_some());
        assert!(elapsed < REFUSED_WITHIN, "{elapsed:?}");
    }
    // The third shared slot is still free for someone else.
    normal_query_answers(&app).await;
    assert_eq!(upstream.started.load(Ordering::SeqCst), 2);
    upstream.release();
    for h in holding {
        let (status, body) = h.await.expect("task");
        assert_eq!(status, 200, "{body}");
    }
    normal_query_answers(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_over_its_time_limit_is_cancelled_with_504() {
    let (upstream, url) = Hanging::start().await;
    let connectors = mali_connector(&url);
    let app = spawn_with(|c| {
        connectors_at(c, connectors.path());
        c.limits.operation_timeout_ms = 500;
    })
    .await;
    let (status, _, body, _) =
        timed_post(&app, &app.analyst(), PROCEEDINGS, json!({ "r": MLI_CASE })).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(error_codes(&body), ["OPERATION_TIMEOUT"], "{body}");
    // The national lookup it started is dropped, not left running for its 60 s.
    upstream.wait_dropped(1).await;
    normal_query_answers(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_done_before_its_request_is_cancelled_is_still_audited() {
    let (upstream, url) = Hanging::start().await;
    let connectors = mali_connector(&url);
    let app = spawn_with(|c| {
        connectors_at(c, connectors.path());
        c.limits.operation_timeout_ms = 1_000;
    })
    .await;
    // The case is written, then its national proceedings wait on the hanging Malian system
    // until the request is cancelled at its time limit.
    let (status, _, body, _) = timed_post(
        &app,
        &app.officer(),
        "mutation($i: ReportCaseInput!) { reportCase(input: $i) { id nationalProceedings { stage } } }",
        json!({ "i": { "mission": "MINUSMA", "incidentDate": "2018-03-04", "acts": ["IED"] } }),
    )
    .await;
    assert_eq!(status, 504, "{body}");
    upstream.wait_started(1).await;
    let auditor = app
        .dev
        .mint(
            &app.audience,
            "auditor-1",
            "UN",
            &["auditor".to_string()],
            &[],
            Duration::from_secs(600),
        )
        .expect("mint");
    let (status, _, log, _) = timed_post(
        &app,
        &auditor,
        "{ auditLog(first: 20, filter: {decision: WRITE}) { edges { node { operation subject } } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let writes = log["data"]["auditLog"]["edges"].as_array().expect("edges");
    assert!(
        writes
            .iter()
            .any(|e| e["node"]["operation"] == "ReportCase" && e["node"]["subject"] == "test-user"),
        "the committed write of the cancelled request is audited: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_of_a_client_that_goes_away_is_cancelled() {
    let (upstream, url) = Hanging::start().await;
    let connectors = mali_connector(&url);
    let app = Arc::new(spawn_with(|c| connectors_at(c, connectors.path())).await);
    let client = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.gql(&app.analyst(), PROCEEDINGS, json!({ "r": MLI_CASE }))
                .await
        })
    };
    upstream.wait_started(1).await;
    // The client goes away: its connection closes with the task that held it.
    client.abort();
    upstream.wait_dropped(1).await;
    normal_query_answers(&app).await;
}

// ---------- an identity provider that hangs ----------

const RSA_TEST_KEY: &[u8] = include_bytes!("fixtures/keys/rsa-test-key.pem");
const RSA_TEST_JWK: &str = include_str!("fixtures/keys/rsa-test-jwk.json");
const IDP: &str = "https://idp.test/";

/// A JWKS endpoint that answers the test key, or, once told to hang, accepts requests and
/// never answers them (counting those started and those the gateway gave up).
#[derive(Clone, Default)]
struct Idp {
    hang: Arc<std::sync::atomic::AtomicBool>,
    answered: Arc<AtomicUsize>,
    hanging: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
}

async fn jwks(State(idp): State<Idp>) -> axum::Json<Value> {
    if idp.hang.load(Ordering::SeqCst) {
        let _guard = CountDrop(Arc::clone(&idp.abandoned), false);
        idp.hanging.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    idp.answered.fetch_add(1, Ordering::SeqCst);
    let jwk: Value = serde_json::from_str(RSA_TEST_JWK).expect("fixture JWK");
    axum::Json(json!({ "keys": [jwk] }))
}

impl Idp {
    async fn start(hang: bool) -> (Self, String) {
        let idp = Idp::default();
        idp.hang.store(hang, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/jwks", get(jwks))
            .with_state(idp.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (idp, format!("http://{addr}/jwks"))
    }
}

fn idp_token(subject: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "iss": IDP, "sub": subject, "aud": "casegraph", "exp": now + 600, "nbf": now,
        "org": "UN", "roles": ["un-analyst"],
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-test-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_TEST_KEY).expect("fixture key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// The identity provider at `url` only, refreshing its keys every second, each fetch given a
/// minute: a fetch that hangs hangs for the whole test.
fn trust_idp(c: &mut casegraph::config::Config, url: &str) {
    c.auth.jwt = Some(casegraph::config::JwtIssuerConfig {
        issuer: IDP.into(),
        jwks_url: url.into(),
        algorithms: vec!["RS256".into()],
        jwks_refresh_secs: 1,
        jwks_min_refetch_secs: 1,
        jwks_fetch_timeout_ms: 60_000,
    });
    c.auth.dev_issuer.enabled = false;
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("GET")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_identity_provider_costs_requests_nothing_once_keys_are_held() {
    let (idp, url) = Idp::start(false).await;
    let app = spawn_with(|c| trust_idp(c, &url)).await;
    let token = idp_token("analyst-1");
    let (status, _, body, _) = timed_post(&app, &token, "{ __typename }", json!({})).await;
    assert_eq!(status, 200, "{body}");

    idp.hang.store(true, Ordering::SeqCst);
    // The next scheduled refresh (a second later) hangs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while idp.hanging.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no refresh reached the provider");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests = (0..50).map(|i| {
        let token = idp_token(&format!("analyst-{i}"));
        let app = &app;
        async move { timed_post(app, &token, NORMAL, json!({})).await }
    });
    for (status, _, body, _) in futures::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
    }
    // All fifty answered while the refresh was still hanging: none of them waited for it.
    assert_eq!(
        idp.hanging.load(Ordering::SeqCst),
        1,
        "one refresh at a time"
    );
    assert_eq!(
        idp.abandoned.load(Ordering::SeqCst),
        0,
        "the refresh still hangs"
    );
    assert_eq!(status_of(&app, "/health/ready").await, 200, "keys are held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_usable_keys_the_gateway_is_not_ready_and_says_why() {
    let (_idp, url) = Idp::start(true).await;
    let app = spawn_with(|c| trust_idp(c, &url)).await;
    assert_eq!(status_of(&app, "/health/ready").await, 503);
    assert_eq!(status_of(&app, "/health/live").await, 200);
    let (status, _, body, elapsed) =
        timed_post(&app, &idp_token("analyst"), "{ __typename }", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        error_codes(&body),
        ["IDENTITY_PROVIDER_UNAVAILABLE"],
        "{body}"
    );
    // Bounded by the short wait for a first fetch under way, not by the fetch's minute.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
