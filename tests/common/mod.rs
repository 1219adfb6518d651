//! Test harness: starts the real gateway on 127.0.0.1 port 0 over a fresh store (a temporary
//! SQLite file, or a fresh schema in the local PostgreSQL) and talks to it over HTTP.
#![allow(dead_code)]

use casegraph::auth::DevIssuer;
use casegraph::config::Config;
use casegraph::store::Store;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Which store backs the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub dev: DevIssuer,
    pub audience: String,
    pub dir: tempfile::TempDir,
    /// The store's URL, as the gateway was given it.
    pub store_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The default PostgreSQL of the development machine and CI.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty PostgreSQL schema for one test, as a store URL; `None` (with a loud message)
/// when no PostgreSQL is reachable, unless `CASEGRAPH_REQUIRE_POSTGRES=1`, which makes it fail.
pub async fn postgres_url() -> Option<String> {
    let base =
        std::env::var("CASEGRAPH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    let required = std::env::var("CASEGRAPH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    sqlx::any::install_default_drivers();
    let conn = tokio::time::timeout(Duration::from_secs(5), sqlx::AnyPool::connect(&base)).await;
    let pool = match conn {
        Ok(Ok(p)) => p,
        Ok(Err(e)) if !required => {
            eprintln!("\n!!!!! SKIPPED: PostgreSQL is not reachable at {base} ({e}); this PostgreSQL test did NOT run !!!!!\n");
            return None;
        }
        Err(_) if !required => {
            eprintln!("\n!!!!! SKIPPED: PostgreSQL at {base} did not answer in 5 s; this PostgreSQL test did NOT run !!!!!\n");
            return None;
        }
        Ok(Err(e)) => {
            panic!("CASEGRAPH_REQUIRE_POSTGRES=1 but PostgreSQL at {base} is not reachable: {e}")
        }
        Err(_) => panic!("CASEGRAPH_REQUIRE_POSTGRES=1 but PostgreSQL at {base} did not answer"),
    };
    let schema = format!("cg_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options[search_path]={schema}"))
}

/// How to start the app.
pub struct AppOptions {
    pub backend: Backend,
    pub import_bundled: bool,
    pub configure: fn(&mut Config),
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            import_bundled: true,
            configure: |_| {},
        }
    }
}

/// The demo configuration pointed at a temporary folder, without the demo connectors and
/// simulators.
pub fn test_config(dir: &std::path::Path, url: String) -> Config {
    let mut config = casegraph::config::load_str(casegraph::config::EMBEDDED_DEFAULT, "embedded")
        .expect("the embedded default loads");
    config.store.url = url;
    config.auth.dev_issuer.key_file = dir.join("dev-key.pem").to_string_lossy().into_owned();
    config.server.listen = "127.0.0.1:0".into();
    config.server.shutdown_grace_secs = 1;
    // The demo's connectors and simulators (fixed ports 4701/4702) are opt-in per test: tests
    // run in parallel, and most have no use for national proceedings.
    config.connectors.dir = String::new();
    config.simulators.enabled = false;
    // Tests send many requests as one principal, faster than any person: their rate is
    // limited too, only far above what they send. Tests of the rate limit set their own.
    config.rate_limits.default = casegraph::config::RateLimit {
        requests_per_minute: 1_000_000,
        burst: 100_000,
        max_in_flight: 100_000,
    };
    // Required with PostgreSQL (replicas share it); harmless with SQLite.
    config.access.cursor_secret = Some(secrecy::SecretString::from(
        "test-cursor-secret-of-at-least-32-bytes",
    ));
    config
}

/// Starts the gateway; `None` when the backend is PostgreSQL and none is reachable.
pub async fn try_spawn(opts: AppOptions) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match opts.backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("cases.db").display()),
        Backend::Postgres => postgres_url().await?,
    };
    let mut config = test_config(dir.path(), url.clone());
    config.store.import_bundled_data_when_empty = opts.import_bundled;
    (opts.configure)(&mut config);
    let audience = config.auth.audience.clone();
    let key_file = config.auth.dev_issuer.key_file.clone();
    let gateway = casegraph::Gateway::builder(config)
        .build()
        .await
        .expect("the gateway starts");
    let store = Arc::clone(gateway.store());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async move {
        let _ = rx.await;
    }));
    let dev = DevIssuer::load_or_create(std::path::Path::new(&key_file)).expect("dev key");
    Some(TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        dev,
        audience,
        dir,
        store_url: url,
        shutdown: Some(tx),
    })
}

/// Starts the gateway over SQLite with the bundled data.
pub async fn spawn_app() -> TestApp {
    try_spawn(AppOptions::default())
        .await
        .expect("SQLite is always available")
}

impl TestApp {
    /// A dev-issuer token for `org` with `roles`.
    pub fn token(&self, org: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.dev
            .mint(
                &self.audience,
                "test-user",
                org,
                &roles,
                &[],
                Duration::from_secs(600),
            )
            .expect("mint")
    }

    /// A UN case officer's token.
    pub fn officer(&self) -> String {
        self.token("UN", &["un-case-officer"])
    }

    /// A UN analyst's token (reads only).
    pub fn analyst(&self) -> String {
        self.token("UN", &["un-analyst"])
    }

    /// POSTs a GraphQL request with `token`; returns status and JSON body.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request sent");
        let status = res.status().as_u16();
        let body = res.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    /// Runs a query as a UN analyst and returns `data`, failing on any error.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql(&self.analyst(), query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }
}

/// The `extensions.code` of every error in a response.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts the gateway over SQLite with the bundled data, `configure` applied to the test
/// configuration last (a closure, so a test can pass what it created: a folder, a URL).
pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    try_spawn_with(Backend::Sqlite, configure)
        .await
        .expect("SQLite is always available")
}

/// [`spawn_with`] over `backend`; `None` when it is PostgreSQL and none is reachable.
pub async fn try_spawn_with(
    backend: Backend,
    configure: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("cases.db").display()),
        Backend::Postgres => postgres_url().await?,
    };
    Some(start(dir, url, configure).await)
}

/// The gateway over the store at `url` (with the bundled data), `configure` applied last.
pub async fn spawn_with_store_url(url: String, configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    start(dir, url, configure).await
}

async fn start(
    dir: tempfile::TempDir,
    url: String,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = test_config(dir.path(), url.clone());
    configure(&mut config);
    let audience = config.auth.audience.clone();
    let key_file = config.auth.dev_issuer.key_file.clone();
    let gateway = casegraph::Gateway::builder(config)
        .build()
        .await
        .expect("the gateway starts");
    let store = Arc::clone(gateway.store());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async move {
        let _ = rx.await;
    }));
    let dev = DevIssuer::load_or_create(std::path::Path::new(&key_file)).expect("dev key");
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        dev,
        audience,
        dir,
        store_url: url,
        shutdown: Some(tx),
    }
}
