//! The case store failing or racing, against the real gateway: a uniqueness race is
//! `DUPLICATE`, an unreachable store fails fast with `STORE_UNAVAILABLE` (and readiness says
//! so), and a store that cannot be opened at start names its cause.

mod common;

use common::{error_codes, postgres_url, try_spawn_with, Backend};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const REPORT: &str =
    "mutation($input: ReportCaseInput!) { reportCase(input: $input) { id reference } }";

fn report(date: &str) -> serde_json::Value {
    json!({ "input": { "mission": "MINUSMA", "incidentDate": date, "acts": ["KILLING"] } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_racing_another_for_the_same_reference_on_postgres_is_duplicate() {
    let Some(app) = try_spawn_with(Backend::Postgres, |_| {}).await else {
        return;
    };
    let url = app.store_url.clone();
    let reference = "MINUSMA-20190713";
    // Another writer holds, uncommitted, a case with the reference the report will pick: the
    // report's look-up does not see it (READ COMMITTED), and its insert then waits on the
    // unique index until that writer commits.
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut other = sqlx::AnyConnection::connect(&url).await.expect("connect");
    other.execute("BEGIN").await.expect("begin");
    other
        .execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO cases (id, reference, mission_code, incident_date, source, created_by, created_at, updated_at) \
             VALUES ('race-1', '{reference}', 'MINUSMA', '2019-07-13', 'reported', 'other', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')"
        )))
        .await
        .expect("insert");
    let app = Arc::new(app);
    let racing = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.gql(&app.officer(), REPORT, report("2019-07-13")).await })
    };
    let mut watch = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO cases %'",
        )
        .fetch_one(&mut watch)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the report never reached its insert"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.execute("COMMIT").await.expect("commit");
    let (status, body) = racing.await.expect("task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_codes(&body), ["DUPLICATE"], "{body}");
    let message = body["errors"][0]["message"].as_str().expect("a message");
    assert!(message.contains(reference), "{message}");

    // Sent again, it takes the next reference.
    let (_, body) = app.gql(&app.officer(), REPORT, report("2019-07-13")).await;
    assert_eq!(
        body["data"]["reportCase"]["reference"], "MINUSMA-20190713-2",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reports_for_one_mission_and_date_on_postgres_never_fail_as_internal() {
    let Some(app) = try_spawn_with(Backend::Postgres, |_| {}).await else {
        return;
    };
    let app = Arc::new(app);
    let mut duplicates = 0;
    for day in 1..=10 {
        let date = format!("2019-08-{day:02}");
        let reports = (0..4).map(|_| {
            let app = Arc::clone(&app);
            let date = date.clone();
            async move { app.gql(&app.officer(), REPORT, report(&date)).await }
        });
        let mut references = std::collections::HashSet::new();
        for (status, body) in futures::future::join_all(reports).await {
            assert_eq!(status, 200, "{body}");
            match error_codes(&body).as_slice() {
                [] => {
                    let reference = body["data"]["reportCase"]["reference"]
                        .as_str()
                        .expect("a reference")
                        .to_string();
                    assert!(references.insert(reference), "{body}");
                }
                [code] if code == "DUPLICATE" => duplicates += 1,
                other => panic!("a race is DUPLICATE, never {other:?}: {body}"),
            }
        }
        assert!(!references.is_empty(), "one report of each race succeeds");
    }
    eprintln!("{duplicates} of 40 concurrent reports lost their race (DUPLICATE)");
}

/// A TCP proxy to PostgreSQL that the test can cut: the listener goes (new connections are
/// refused) and every open connection is closed.
struct CuttableProxy {
    port: u16,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let target = target.to_string();
        let pipes = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                pipes.lock().expect("lock").push(pipe);
            }
        });
        Self {
            port,
            tasks,
            accept,
        }
    }

    fn cut(&self) {
        self.accept.abort();
        for pipe in self.tasks.lock().expect("lock").drain(..) {
            pipe.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_fails_requests_and_readiness_fast_with_store_unavailable() {
    let Some(direct) = postgres_url().await else {
        return;
    };
    let target = direct
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the URL")
        .to_string();
    let proxy = CuttableProxy::to(&target).await;
    let via_proxy = direct.replacen(&target, &format!("127.0.0.1:{}", proxy.port), 1);
    let app = common::spawn_with_store_url(via_proxy, |c| {
        c.store.acquire_timeout_ms = 300;
        c.store.connect_timeout_ms = 300;
    })
    .await;
    let query = r#"{ cases(first: 1) { totalCount } }"#;
    let (status, body) = app.gql(&app.analyst(), query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    proxy.cut();
    // Ten times the acquire timeout, far below the ten seconds the pool used to wait.
    let bound = Duration::from_secs(3);
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = app.gql(&app.analyst(), query, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_codes(&body), ["STORE_UNAVAILABLE"], "{body}");
        assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    }
    let started = Instant::now();
    let ready = app
        .client
        .get(format!("{}/health/ready", app.base))
        .send()
        .await
        .expect("GET /health/ready");
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_names_the_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![0x5a; 8192]).expect("write");
    let options = casegraph::store::ConnectOptions {
        max_connections: 2,
        connect_timeout: Duration::from_millis(2_000),
        acquire_timeout: Duration::from_millis(2_000),
    };
    let err = casegraph::store::connect_with(&format!("sqlite://{}", corrupt.display()), options)
        .await
        .err()
        .expect("a corrupt file is refused");
    assert!(err.to_string().contains("file is not a database"), "{err}");

    // A port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let started = Instant::now();
    let err = casegraph::store::connect_with(
        &format!("postgres://postgres@127.0.0.1:{port}/test"),
        options,
    )
    .await
    .err()
    .expect("nothing listens");
    let message = err.to_string().to_lowercase();
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("timed out"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
