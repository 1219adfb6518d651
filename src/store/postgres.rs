//! PostgreSQL backend: the production store, shared by every gateway replica.

use sqlx::migrate::Migrator;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// Statement opening a write transaction. Row-level `UPDATE … WHERE version = $n` statements
/// give optimistic concurrency; READ COMMITTED is enough for them.
pub(super) const BEGIN_WRITE: &str = "BEGIN";

/// Aggregates a case's acts into one comma-separated value.
pub(super) const ACTS_AGG: &str =
    "(SELECT string_agg(a.act, ',' ORDER BY a.act) FROM case_acts a WHERE a.case_id = c.id)";

/// Aggregates the distinct values of a victims column for a case.
pub(super) fn victims_agg(column: &str) -> String {
    format!("(SELECT string_agg(DISTINCT v.{column}, ',') FROM victims v WHERE v.case_id = c.id)")
}
