//! SQLite backend: the embedded default. One file (created with its folder on first start),
//! WAL journal so readers never wait for the writer, foreign keys on, and write transactions
//! that take the write lock up front (`BEGIN IMMEDIATE`) so concurrent writers queue on the
//! busy timeout instead of failing on a lock upgrade.

use sqlx::migrate::Migrator;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// Statements run on every new connection.
pub(super) const SESSION_SETUP: &str =
    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 15000; PRAGMA synchronous = NORMAL;";

/// Statement opening a write transaction.
pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Aggregates a case's acts into one comma-separated value.
pub(super) const ACTS_AGG: &str =
    "(SELECT group_concat(a.act, ',') FROM case_acts a WHERE a.case_id = c.id)";

/// Makes sure the database file's folder exists and the URL asks SQLite to create the file.
pub(super) fn prepare_url(url: &str) -> std::io::Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        // Each pooled connection would get its own in-memory database: refuse quietly by
        // treating it as a file name is worse, so keep the URL as given.
        return Ok(url.to_string());
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Aggregates the distinct values of a victims column for a case.
pub(super) fn victims_agg(column: &str) -> String {
    format!("(SELECT group_concat(DISTINCT v.{column}) FROM victims v WHERE v.case_id = c.id)")
}
