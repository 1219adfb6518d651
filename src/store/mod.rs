//! The UN case store: one [`Store`] trait, two backends.
//!
//! SQLite is the embedded default (a file under `./data/`), PostgreSQL the production backend.
//! Both run the same SQL through sqlx's `Any` driver; each backend module owns its connection
//! set-up, its migrations and the few statements where the dialects differ. Every write is one
//! transaction; updates use optimistic concurrency on a per-case version number.

mod postgres;
mod records;
mod sql;
mod sqlite;

pub use records::*;
pub(crate) use sql::base_reference;
pub use sql::SqlStore;

use async_trait::async_trait;
use std::sync::Arc;

/// Store failures. Messages name what is wrong without repeating sensitive values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The record changed since the caller read it.
    #[error("case {id} is at version {current}, not {expected}: it changed since you read it; re-read it and retry")]
    VersionConflict {
        /// Case id.
        id: String,
        /// Version the caller expected.
        expected: i64,
        /// Version in the store.
        current: i64,
    },
    /// A unique value is already taken.
    #[error("{0} already exists")]
    Duplicate(String),
    /// A referenced mission does not exist.
    #[error("mission `{0}` is not in the store")]
    UnknownMission(String),
    /// The audit log's last entry is not the one a batch was chained to (another writer
    /// appended first, or entries were removed): the batch must be chained again.
    #[error("the audit log ends at seq {found} with another hash than the batch starting at seq {first} expects")]
    AuditTailMoved {
        /// Last seq in the store (0 when empty).
        found: i64,
        /// First seq of the refused batch.
        first: i64,
    },
    /// The URL names no supported backend.
    #[error("unsupported store URL scheme (expected sqlite: or postgres://)")]
    UnsupportedUrl,
    /// No connection to the store could be opened in time (an unreachable or silent host).
    #[error("no connection to the store within {0} ms")]
    ConnectTimeout(u64),
    /// A stored value could not be read back (corrupt row, bad migration).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Migrations failed.
    #[error("migrating the store failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// The client-facing error code.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::VersionConflict { .. } => ErrorCode::VersionConflict,
            Self::Duplicate(_) => ErrorCode::Duplicate,
            Self::UnknownMission(_) => ErrorCode::UnknownMission,
            // Two writers raced for one unique value: the loser's write is a duplicate.
            Self::Database(e) if sql::is_unique_violation(e) => ErrorCode::Duplicate,
            Self::ConnectTimeout(_)
            | Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => ErrorCode::StoreUnavailable,
            _ => ErrorCode::Internal,
        }
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The UN case store. Batch methods take many keys and answer in one query so that GraphQL
/// data loaders cost a constant number of queries per request.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is ("sqlite" or "postgres").
    fn backend(&self) -> &'static str;
    /// Checks the store answers (readiness probe).
    async fn ping(&self) -> StoreResult<()>;
    /// Statements executed since start (for tests and `/metrics`). The audit log's are not
    /// counted: its writer runs in the background, in batches, outside any request's cost.
    fn query_count(&self) -> u64;

    /// Missions, optionally filtered.
    async fn list_missions(&self, filter: &MissionFilter) -> StoreResult<Vec<MissionRecord>>;
    /// Missions by code (batch).
    async fn missions_by_codes(&self, codes: &[String]) -> StoreResult<Vec<MissionRecord>>;

    /// One page of cases in the given order, starting after `after` (keyset pagination).
    async fn list_cases(
        &self,
        filter: &CaseFilter,
        order: CaseOrder,
        after: Option<&CaseCursor>,
        limit: u32,
    ) -> StoreResult<Vec<CaseRecord>>;
    /// How many cases match.
    async fn count_cases(&self, filter: &CaseFilter) -> StoreResult<i64>;
    /// Cases by id (batch).
    async fn cases_by_ids(&self, ids: &[String]) -> StoreResult<Vec<CaseRecord>>;
    /// A case by its reference.
    async fn case_by_reference(&self, reference: &str) -> StoreResult<Option<CaseRecord>>;
    /// Victims of many cases (batch).
    async fn victims_by_case_ids(&self, ids: &[String]) -> StoreResult<Vec<VictimRecord>>;
    /// Follow-up actions of many cases (batch).
    async fn follow_ups_by_case_ids(&self, ids: &[String]) -> StoreResult<Vec<FollowUpRecord>>;
    /// National references of many cases (batch).
    async fn national_references_by_case_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<NationalReferenceRecord>>;
    /// Assistance records linked to many cases (batch): (case id, record).
    async fn assistance_by_case_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(String, AssistanceRecord)>>;
    /// Assistance records, optionally filtered.
    async fn list_assistance(
        &self,
        filter: &AssistanceFilter,
    ) -> StoreResult<Vec<AssistanceRecord>>;
    /// Counts of cases and victims grouped by one dimension.
    async fn statistics(
        &self,
        by: StatisticsDimension,
        filter: &CaseFilter,
    ) -> StoreResult<Vec<StatisticsRow>>;

    /// Records a new case; the store assigns id, reference and version 1.
    async fn insert_case(&self, case: NewCase, actor: &str) -> StoreResult<CaseRecord>;
    /// Changes a case if it is still at `expected_version`.
    async fn update_case(
        &self,
        id: &str,
        expected_version: i64,
        patch: CasePatch,
        actor: &str,
    ) -> StoreResult<CaseRecord>;
    /// Adds a victim to a case (bumps the case version; checks it when `expected_version` is given).
    async fn add_victim(
        &self,
        case_id: &str,
        expected_version: Option<i64>,
        victim: NewVictim,
        actor: &str,
    ) -> StoreResult<VictimRecord>;
    /// Records a follow-up action on a case (bumps the case version).
    async fn add_follow_up(
        &self,
        case_id: &str,
        expected_version: Option<i64>,
        action: NewFollowUp,
        actor: &str,
    ) -> StoreResult<FollowUpRecord>;
    /// Links a national case-file reference to a case (bumps the case version).
    async fn link_national_reference(
        &self,
        case_id: &str,
        expected_version: Option<i64>,
        link: NewNationalReference,
        actor: &str,
    ) -> StoreResult<NationalReferenceRecord>;
    /// Sets (or clears, with `None`) a mission's focal point (res. 2589 §9).
    async fn set_focal_point(
        &self,
        code: &str,
        focal_point: Option<FocalPoint>,
    ) -> StoreResult<MissionRecord>;
    /// Records capacity-building assistance.
    async fn insert_assistance(
        &self,
        record: NewAssistance,
        actor: &str,
    ) -> StoreResult<AssistanceRecord>;

    /// Appends chained entries to the audit log in one transaction, after checking that the
    /// log ends with the entry the first one is chained to ([`StoreError::AuditTailMoved`]
    /// otherwise). The log is never updated nor deleted from.
    async fn append_audit(&self, entries: &[ChainedAuditEntry]) -> StoreResult<()>;
    /// The audit log's last entry (highest seq), if any.
    async fn last_audit_entry(&self) -> StoreResult<Option<ChainedAuditEntry>>;
    /// One page of audit entries matching `filter`, newest first (descending seq), starting
    /// below `before_seq`.
    async fn audit_entries(
        &self,
        filter: &AuditFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ChainedAuditEntry>>;
    /// One page of the whole audit log in chain order (ascending seq), starting after
    /// `after_seq`: what verification walks.
    async fn audit_chain(
        &self,
        after_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ChainedAuditEntry>>;

    /// Records a Member State's submission on a case, pending review.
    async fn insert_submission(
        &self,
        case_id: &str,
        organisation: &str,
        submitted_by: &str,
        content: &str,
    ) -> StoreResult<SubmissionRecord>;
    /// Accepts or rejects a pending submission; a reviewed one cannot be reviewed again.
    async fn review_submission(
        &self,
        id: &str,
        accept: bool,
        note: Option<&str>,
        reviewer: &str,
    ) -> StoreResult<SubmissionRecord>;
    /// Submissions on many cases (batch).
    async fn submissions_by_case_ids(&self, ids: &[String]) -> StoreResult<Vec<SubmissionRecord>>;

    /// Upserts missions in one transaction (import).
    async fn import_missions(
        &self,
        missions: &[MissionRecord],
        source: &str,
    ) -> StoreResult<ImportCounts>;
    /// Upserts imported cases and their victims in one transaction, keyed by `import_key`.
    async fn import_cases(
        &self,
        cases: &[ImportedCase],
        source: &str,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> StoreResult<ImportCounts>;

    /// Counts of the cases matching `filter` (and their victims) grouped by mission, host state
    /// and incident year together, in one query: with `filter.visibility` scoped to a principal, what it sees
    /// of the cases itself; without, the joint table behind the MISSION, HOST_STATE and YEAR
    /// statistics. Statistical disclosure control needs both (`access::disclosure`).
    async fn case_cross_counts(&self, filter: &CaseFilter) -> StoreResult<Vec<CrossCount>>;
}

/// How the store's connections are opened and shared.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Time allowed to open one connection.
    pub connect_timeout: std::time::Duration,
    /// Time a caller waits for a pooled connection (opening one included) before the call
    /// fails with STORE_UNAVAILABLE.
    pub acquire_timeout: std::time::Duration,
}

impl ConnectOptions {
    /// The `[store]` settings.
    pub fn of(config: &crate::config::StoreConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            connect_timeout: std::time::Duration::from_millis(config.connect_timeout_ms),
            acquire_timeout: std::time::Duration::from_millis(config.acquire_timeout_ms),
        }
    }
}

/// Opens the store named by `url` (`sqlite:…` or `postgres://…`) and runs its migrations, with
/// the default timeouts of `[store]`.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    let defaults = crate::config::StoreConfig::default();
    connect_with(
        url,
        ConnectOptions {
            max_connections,
            ..ConnectOptions::of(&defaults)
        },
    )
    .await
}

/// Opens the store named by `url` with `options` and runs its migrations. A store that cannot
/// be opened says why (refused, unknown host, not a database file…), not that a pool timed out.
pub async fn connect_with(url: &str, options: ConnectOptions) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(SqlStore::connect_with(url, options).await?))
}
