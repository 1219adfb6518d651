//! The store's SQL, shared by both backends through sqlx's `Any` driver. Placeholders are
//! `$1, $2, …`, which both SQLite and PostgreSQL accept; the few dialect differences live in
//! `super::sqlite` and `super::postgres`.

use super::records::*;
use super::{postgres, sqlite, Store, StoreError, StoreResult};
use crate::domain::{
    Act, AssistanceKind, AssistanceStatus, CountryCode, FollowUpKind, Gender, Harm, MissionCode,
    MissionKind, MissionStatus, PersonnelCategory,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, Row, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest number of keys bound in one `IN (…)` list; longer batches are split.
const IN_CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// The case store over SQLite or PostgreSQL.
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    queries: AtomicU64,
}

/// A bind value.
#[derive(Debug, Clone)]
enum Arg {
    Text(Option<String>),
    Int(i64),
    Float(Option<f64>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<f64>> for Arg {
    fn from(v: Option<f64>) -> Self {
        Arg::Float(v)
    }
}
impl From<NaiveDate> for Arg {
    fn from(v: NaiveDate) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<Option<NaiveDate>> for Arg {
    fn from(v: Option<NaiveDate>) -> Self {
        Arg::Text(v.map(|d| d.to_string()))
    }
}

/// SQL text with its numbered bind values. Only this module's constants and placeholders are
/// ever written into the text; every value goes through `bind`.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, arg: impl Into<Arg>) -> &mut Self {
        self.args.push(arg.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    fn bind_list<T: Into<Arg> + Clone>(&mut self, items: &[T]) -> &mut Self {
        self.text.push('(');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(item.clone());
        }
        self.text.push(')');
        self
    }

    fn query(&self) -> sqlx::query::Query<'static, Any, AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for arg in &self.args {
            q = match arg {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
                Arg::Float(v) => q.bind(*v),
            };
        }
        // sqlx 0.9's `Any` driver sends a NULL `f64` to PostgreSQL as FLOAT4. A prepared
        // statement cached with that type then fails on the next non-NULL (8-byte) value
        // ("incorrect binary data format"), so statements with a NULL float are not cached.
        if self.args.iter().any(|a| matches!(a, Arg::Float(None))) {
            q = q.persistent(false);
        }
        q
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Deterministic id for imported rows, so the same dataset gets the same ids in every store.
fn import_id(key: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("casegraph:{key}").as_bytes(),
    )
    .to_string()
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

fn get_date(row: &AnyRow, col: &str) -> StoreResult<NaiveDate> {
    let s: String = row.try_get(col)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| corrupt(col, e))
}

fn get_opt_date(row: &AnyRow, col: &str) -> StoreResult<Option<NaiveDate>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| corrupt(col, e)))
        .transpose()
}

fn get_time(row: &AnyRow, col: &str) -> StoreResult<DateTime<Utc>> {
    let s: String = row.try_get(col)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(col, e))
}

fn get_enum<T>(
    row: &AnyRow,
    col: &str,
    parse: fn(&str) -> Result<T, crate::domain::ParseError>,
) -> StoreResult<T> {
    let s: String = row.try_get(col)?;
    parse(&s).map_err(|e| corrupt(col, e))
}

fn get_opt_enum<T>(
    row: &AnyRow,
    col: &str,
    parse: fn(&str) -> Result<T, crate::domain::ParseError>,
) -> StoreResult<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| parse(&s).map_err(|e| corrupt(col, e)))
        .transpose()
}

pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

fn mission_from_row(row: &AnyRow) -> StoreResult<MissionRecord> {
    let code: String = row.try_get("code")?;
    let territories: String = row.try_get("host_territories")?;
    let focal_name: Option<String> = row.try_get("focal_point_name")?;
    Ok(MissionRecord {
        code: MissionCode::parse(&code).map_err(|e| corrupt("missions.code", e))?,
        name: row.try_get("name")?,
        kind: get_enum(row, "kind", MissionKind::parse)?,
        status: get_enum(row, "status", MissionStatus::parse)?,
        start_date: get_opt_date(row, "start_date")?,
        end_date: get_opt_date(row, "end_date")?,
        host_territories: territories
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| CountryCode::parse(t).map_err(|e| corrupt("missions.host_territories", e)))
            .collect::<StoreResult<_>>()?,
        location_name: row.try_get("location_name")?,
        latitude: row.try_get("latitude")?,
        longitude: row.try_get("longitude")?,
        focal_point: focal_name.map(|name| FocalPoint {
            name,
            email: row.try_get("focal_point_email").ok().flatten(),
        }),
    })
}

fn case_from_row(row: &AnyRow) -> StoreResult<CaseRecord> {
    let acts: Option<String> = row.try_get("acts")?;
    let mut acts: Vec<Act> = acts
        .unwrap_or_default()
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| Act::parse(a).map_err(|e| corrupt("case_acts.act", e)))
        .collect::<StoreResult<_>>()?;
    acts.sort();
    let groups: String = row.try_get("perpetrator_groups")?;
    let list = |col: &str| -> StoreResult<Vec<String>> {
        let v: Option<String> = row.try_get(col)?;
        let mut items: Vec<String> = v
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        items.sort();
        Ok(items)
    };
    Ok(CaseRecord {
        victim_nationalities: list("victim_nationalities")?,
        contributing_countries: list("contributing_countries")?,
        id: row.try_get("id")?,
        reference: row.try_get("reference")?,
        mission_code: row.try_get("mission_code")?,
        host_state: row.try_get("host_state")?,
        incident_date: get_date(row, "incident_date")?,
        reported_date: get_opt_date(row, "reported_date")?,
        acts,
        region: row.try_get("region")?,
        locality: row.try_get("locality")?,
        latitude: row.try_get("latitude")?,
        longitude: row.try_get("longitude")?,
        summary: row.try_get("summary")?,
        perpetrator_groups: serde_json::from_str(&groups)
            .map_err(|e| corrupt("cases.perpetrator_groups", e))?,
        victim_count: row.try_get("victim_count")?,
        version: row.try_get("version")?,
        source: row.try_get("source")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn victim_from_row(row: &AnyRow) -> StoreResult<VictimRecord> {
    Ok(VictimRecord {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        category: get_enum(row, "category", PersonnelCategory::parse)?,
        contributing_country: row.try_get("contributing_country")?,
        nationality: row.try_get("nationality")?,
        harm: get_enum(row, "harm", Harm::parse)?,
        gender: get_opt_enum(row, "gender", Gender::parse)?,
        name: row.try_get("name")?,
        service_number: row.try_get("service_number")?,
    })
}

fn follow_up_from_row(row: &AnyRow) -> StoreResult<FollowUpRecord> {
    Ok(FollowUpRecord {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        kind: get_enum(row, "kind", FollowUpKind::parse)?,
        description: row.try_get("description")?,
        taken_on: get_date(row, "taken_on")?,
        recorded_by: row.try_get("recorded_by")?,
        recorded_at: get_time(row, "recorded_at")?,
    })
}

fn national_reference_from_row(row: &AnyRow) -> StoreResult<NationalReferenceRecord> {
    Ok(NationalReferenceRecord {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        state: row.try_get("state")?,
        authority: row.try_get("authority")?,
        reference: row.try_get("reference")?,
        recorded_by: row.try_get("recorded_by")?,
        recorded_at: get_time(row, "recorded_at")?,
    })
}

fn assistance_from_row(row: &AnyRow) -> StoreResult<AssistanceRecord> {
    let case_ids: Option<String> = row.try_get("case_ids")?;
    let mut case_ids: Vec<String> = case_ids
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    case_ids.sort();
    Ok(AssistanceRecord {
        id: row.try_get("id")?,
        host_state: row.try_get("host_state")?,
        kind: get_enum(row, "kind", AssistanceKind::parse)?,
        provider: row.try_get("provider")?,
        status: get_enum(row, "status", AssistanceStatus::parse)?,
        period_start: get_opt_date(row, "period_start")?,
        period_end: get_opt_date(row, "period_end")?,
        description: row.try_get("description")?,
        case_ids,
        version: row.try_get("version")?,
        recorded_at: get_time(row, "recorded_at")?,
    })
}

const MISSION_COLUMNS: &str =
    "code, name, kind, status, start_date, end_date, host_territories, location_name, \
     latitude, longitude, focal_point_name, focal_point_email";

const SUBMISSION_COLUMNS: &str =
    "id, case_id, organisation, submitted_by, content, status, submitted_at, reviewed_by, reviewed_at, review_note";

fn submission_from_row(row: &AnyRow) -> StoreResult<SubmissionRecord> {
    let reviewed_at: Option<String> = row.try_get("reviewed_at")?;
    Ok(SubmissionRecord {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        organisation: row.try_get("organisation")?,
        submitted_by: row.try_get("submitted_by")?,
        content: row.try_get("content")?,
        status: get_enum(row, "status", SubmissionStatus::parse)?,
        submitted_at: get_time(row, "submitted_at")?,
        reviewed_by: row.try_get("reviewed_by")?,
        reviewed_at: reviewed_at
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| corrupt("reviewed_at", e))
            })
            .transpose()?,
        review_note: row.try_get("review_note")?,
    })
}

const VICTIM_COLUMNS: &str =
    "id, case_id, category, contributing_country, nationality, harm, gender, name, service_number";

const AUDIT_COLUMNS: &str =
    "seq, at, subject, organisation, operation, case_id, fields, decision, prev_hash, hash";

/// Audit rows per INSERT statement (10 bind values each, well under both backends' limits).
const AUDIT_INSERT_CHUNK: usize = 100;

fn audit_entry_from_row(row: &AnyRow) -> StoreResult<ChainedAuditEntry> {
    let seq: i64 = row.try_get("seq")?;
    let fields: String = row.try_get("fields")?;
    let at: String = row.try_get("at")?;
    Ok(ChainedAuditEntry {
        seq,
        at: DateTime::parse_from_rfc3339(&at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| corrupt(&format!("audit_log entry seq {seq}: at"), e))?,
        subject: row.try_get("subject")?,
        organisation: row.try_get("organisation")?,
        operation: row.try_get("operation")?,
        case_id: row.try_get("case_id")?,
        fields: serde_json::from_str(&fields)
            .map_err(|e| corrupt(&format!("audit_log entry seq {seq}: fields"), e))?,
        decision: row.try_get("decision")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Hash of everything an import writes for a case, so an unchanged row is recognised.
fn import_hash(case: &ImportedCase) -> String {
    let mut h = Sha256::new();
    h.update(format!("{case:?}").as_bytes());
    format!("{:x}", h.finalize())
}

/// `MINUSMA-20210113` from a mission code and a date; spaces in codes become hyphens.
pub(crate) fn base_reference(mission: &str, date: NaiveDate) -> String {
    format!(
        "{}-{}",
        mission.replace(' ', "-").to_uppercase(),
        date.format("%Y%m%d")
    )
}

impl SqlStore {
    /// Connects to `url`, sets the connection up for its backend and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let defaults = crate::config::StoreConfig::default();
        Self::connect_with(
            url,
            super::ConnectOptions {
                max_connections,
                ..super::ConnectOptions::of(&defaults)
            },
        )
        .await
    }

    /// [`SqlStore::connect`] with explicit pool size and timeouts.
    pub async fn connect_with(url: &str, connect: super::ConnectOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let url = match dialect {
            Dialect::Sqlite => {
                sqlite::prepare_url(url).map_err(|e| corrupt("creating the database folder", e))?
            }
            Dialect::Postgres => url.to_string(),
        };
        // One connection first, by hand: a pool retries a failing connection until its acquire
        // timeout and then reports only that it timed out, hiding the cause.
        probe(&url, dialect, connect.connect_timeout).await?;
        let mut options = AnyPoolOptions::new()
            .max_connections(connect.max_connections.max(1))
            .acquire_timeout(connect.acquire_timeout);
        if dialect == Dialect::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(sqlite::SESSION_SETUP).await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        match dialect {
            Dialect::Sqlite => {
                pool.execute("PRAGMA journal_mode = WAL").await?;
                sqlite::MIGRATOR.run(&pool).await?;
            }
            Dialect::Postgres => postgres::MIGRATOR.run(&pool).await?,
        }
        Ok(Self {
            pool,
            dialect,
            queries: AtomicU64::new(0),
        })
    }

    fn counted(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    fn acts_agg(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => sqlite::ACTS_AGG,
            Dialect::Postgres => postgres::ACTS_AGG,
        }
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        self.counted();
        self.begin_uncounted().await
    }

    /// Opens a write transaction without counting it (the audit writer's statements).
    async fn begin_uncounted(&self) -> StoreResult<Transaction<'static, Any>> {
        let stmt = match self.dialect {
            Dialect::Sqlite => sqlite::BEGIN_WRITE,
            Dialect::Postgres => postgres::BEGIN_WRITE,
        };
        Ok(self.pool.begin_with(stmt).await?)
    }

    fn case_select(&self) -> String {
        let victims_agg = match self.dialect {
            Dialect::Sqlite => sqlite::victims_agg,
            Dialect::Postgres => postgres::victims_agg,
        };
        format!(
            "SELECT c.id, c.reference, c.mission_code, c.host_state, c.incident_date, c.reported_date, c.region, \
             c.locality, c.latitude, c.longitude, c.summary, c.perpetrator_groups, c.victim_count, c.version, \
             c.source, c.created_at, c.updated_at, {} AS acts, {} AS victim_nationalities, \
             {} AS contributing_countries FROM cases c",
            self.acts_agg(),
            victims_agg("nationality"),
            victims_agg("contributing_country"),
        )
    }

    async fn fetch_all(&self, sql: &Sql) -> StoreResult<Vec<AnyRow>> {
        self.counted();
        Ok(sql.query().fetch_all(&self.pool).await?)
    }

    /// Runs a batch query over `ids` in chunks (one query for up to `IN_CHUNK` keys).
    async fn fetch_by_keys(
        &self,
        prefix: &str,
        keys: &[String],
        suffix: &str,
    ) -> StoreResult<Vec<AnyRow>> {
        let mut rows = Vec::new();
        for chunk in keys.chunks(IN_CHUNK) {
            let mut sql = Sql::new(prefix);
            sql.bind_list(chunk).push(suffix);
            rows.extend(self.fetch_all(&sql).await?);
        }
        Ok(rows)
    }

    async fn submission_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> StoreResult<SubmissionRecord> {
        let mut sql = Sql::new(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM case_submissions WHERE id = "
        ));
        sql.bind(id);
        self.counted();
        let row = sql.query().fetch_optional(&mut **tx).await?;
        row.as_ref()
            .map(submission_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("submission {id}")))
    }

    async fn case_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> StoreResult<CaseRecord> {
        let mut sql = Sql::new(&self.case_select());
        sql.push(" WHERE c.id = ").bind(id);
        self.counted();
        let row = sql.query().fetch_optional(&mut **tx).await?;
        row.as_ref()
            .map(case_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("case {id}")))
    }

    /// Bumps a case's version (checking it when asked) inside `tx`; explains a miss.
    async fn bump_version(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        expected: Option<i64>,
        extra_set: &str,
    ) -> StoreResult<()> {
        let mut sql = Sql::new("UPDATE cases SET version = version + 1, updated_at = ");
        sql.bind(now())
            .push(extra_set)
            .push(" WHERE id = ")
            .bind(id);
        if let Some(v) = expected {
            sql.push(" AND version = ").bind(v);
        }
        self.counted();
        let done = sql.query().execute(&mut **tx).await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self
            .explain_missed_update(tx, id, expected.unwrap_or_default())
            .await)
    }

    /// Why an `UPDATE … WHERE id = $1 AND version = $2` touched no row: the case does not
    /// exist, or it is at another version.
    async fn explain_missed_update(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        expected: i64,
    ) -> StoreError {
        let mut check = Sql::new("SELECT version FROM cases WHERE id = ");
        check.bind(id);
        self.counted();
        let row = match check.query().fetch_optional(&mut **tx).await {
            Ok(row) => row,
            Err(e) => return e.into(),
        };
        match row.map(|r| r.try_get::<i64, _>("version")) {
            None => StoreError::NotFound(format!("case {id}")),
            Some(Ok(current)) => StoreError::VersionConflict {
                id: id.to_string(),
                expected,
                current,
            },
            Some(Err(e)) => e.into(),
        }
    }

    async fn insert_acts(
        &self,
        tx: &mut Transaction<'static, Any>,
        case_id: &str,
        acts: &[Act],
    ) -> StoreResult<()> {
        let unique: HashSet<&Act> = acts.iter().collect();
        for act in unique {
            let mut sql = Sql::new("INSERT INTO case_acts (case_id, act) VALUES (");
            sql.bind(case_id).push(", ").bind(act.as_str()).push(")");
            self.counted();
            sql.query().execute(&mut **tx).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_victim_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        case_id: &str,
        position: i64,
        v: &NewVictim,
        import_key: Option<&str>,
        actor: &str,
    ) -> StoreResult<()> {
        let mut sql = Sql::new(
            "INSERT INTO victims (id, case_id, position, category, contributing_country, nationality, harm, gender, \
             name, service_number, import_key, created_by, created_at) VALUES (",
        );
        sql.bind(id)
            .push(", ")
            .bind(case_id)
            .push(", ")
            .bind(position)
            .push(", ")
            .bind(v.category.as_str());
        sql.push(", ")
            .bind(v.contributing_country.as_ref().map(|c| c.as_str()));
        sql.push(", ")
            .bind(v.nationality.as_ref().map(|c| c.as_str()));
        sql.push(", ")
            .bind(v.harm.as_str())
            .push(", ")
            .bind(v.gender.map(|g| g.as_str()));
        sql.push(", ")
            .bind(v.name.clone())
            .push(", ")
            .bind(v.service_number.clone());
        sql.push(", ")
            .bind(import_key)
            .push(", ")
            .bind(actor)
            .push(", ")
            .bind(now())
            .push(")");
        self.counted();
        sql.query().execute(&mut **tx).await?;
        Ok(())
    }

    /// Picks a free reference starting from `base` (`base`, `base-2`, `base-3`, …).
    async fn free_reference(
        &self,
        tx: &mut Transaction<'static, Any>,
        base: &str,
    ) -> StoreResult<String> {
        // `base` and `base-N` only: an index range scan (`-` sorts just before `.`), not a LIKE
        // that would read every case on each insert.
        let mut sql = Sql::new("SELECT reference FROM cases WHERE reference = ");
        sql.bind(base)
            .push(" OR (reference >= ")
            .bind(format!("{base}-"))
            .push(" AND reference < ")
            .bind(format!("{base}."));
        sql.push(")");
        self.counted();
        let taken: HashSet<String> = sql
            .query()
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("reference"))
            .collect::<Result<_, _>>()?;
        if !taken.contains(base) {
            return Ok(base.to_string());
        }
        let n = (2..)
            .find(|n| !taken.contains(&format!("{base}-{n}")))
            .expect("an unbounded range has a free number");
        Ok(format!("{base}-{n}"))
    }

    async fn mission_territories(
        &self,
        tx: &mut Transaction<'static, Any>,
        code: &str,
    ) -> StoreResult<Vec<String>> {
        let mut sql = Sql::new("SELECT host_territories FROM missions WHERE code = ");
        sql.bind(code);
        self.counted();
        let row = sql.query().fetch_optional(&mut **tx).await?;
        let row = row.ok_or_else(|| StoreError::UnknownMission(code.to_string()))?;
        let t: String = row.try_get("host_territories")?;
        Ok(t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// Opens and closes one connection within `timeout`, reading the schema (a file that is not a
/// SQLite database fails only when read): its error is the real cause of a store that cannot
/// be opened.
async fn probe(url: &str, dialect: Dialect, timeout: std::time::Duration) -> StoreResult<()> {
    use sqlx::Connection;
    let attempt = async {
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        if dialect == Dialect::Sqlite {
            conn.execute(sqlite::SESSION_SETUP).await?;
        }
        if dialect == Dialect::Sqlite {
            conn.execute("SELECT count(*) FROM sqlite_master").await?;
        } else {
            conn.execute("SELECT 1").await?;
        }
        conn.close().await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::ConnectTimeout(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )),
    }
}

/// Appends the WHERE clause of a case filter (cases aliased `c`).
fn push_case_filter(sql: &mut Sql, f: &CaseFilter) {
    sql.push(" WHERE 1 = 1");
    if !f.missions.is_empty() {
        sql.push(" AND c.mission_code IN ").bind_list(&f.missions);
    }
    if !f.host_states.is_empty() {
        sql.push(" AND c.host_state IN ").bind_list(&f.host_states);
    }
    if !f.acts.is_empty() {
        let acts: Vec<&str> = f.acts.iter().map(|a| a.as_str()).collect();
        sql.push(" AND EXISTS (SELECT 1 FROM case_acts a WHERE a.case_id = c.id AND a.act IN ")
            .bind_list(&acts)
            .push(")");
    }
    if !f.victim_categories.is_empty() {
        let cats: Vec<&str> = f.victim_categories.iter().map(|a| a.as_str()).collect();
        sql.push(" AND EXISTS (SELECT 1 FROM victims v WHERE v.case_id = c.id AND v.category IN ")
            .bind_list(&cats)
            .push(")");
    }
    if !f.victim_nationalities.is_empty() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM victims v WHERE v.case_id = c.id AND v.nationality IN ",
        )
        .bind_list(&f.victim_nationalities)
        .push(")");
    }
    if !f.contributing_countries.is_empty() {
        sql.push(" AND EXISTS (SELECT 1 FROM victims v WHERE v.case_id = c.id AND v.contributing_country IN ")
            .bind_list(&f.contributing_countries)
            .push(")");
    }
    if let Some(from) = f.from {
        sql.push(" AND c.incident_date >= ").bind(from);
    }
    if let Some(to) = f.to {
        sql.push(" AND c.incident_date <= ").bind(to);
    }
    push_visibility(sql, &f.visibility);
    if let Some(status) = f.mission_status {
        sql.push(" AND c.mission_code IN (SELECT m.code FROM missions m WHERE m.status = ")
            .bind(status.as_str())
            .push(")");
    }
}

/// Appends the caller's visibility (see `access::visibility`): the SQL form of the same
/// conditions the enforcement point evaluates in memory.
fn push_visibility(sql: &mut Sql, v: &crate::access::Visibility) {
    use crate::access::{CaseCondition, Visibility};
    let conditions = match v {
        Visibility::All => return,
        Visibility::Nothing => {
            sql.push(" AND 1 = 0");
            return;
        }
        Visibility::Any(cs) => cs,
    };
    sql.push(" AND (1 = 0");
    for c in conditions {
        match c {
            CaseCondition::HostStateIn(s) => {
                sql.push(" OR c.host_state IN ").bind_list(s);
            }
            CaseCondition::VictimNationalityIn(s) => {
                sql.push(
                    " OR EXISTS (SELECT 1 FROM victims v WHERE v.case_id = c.id AND v.nationality IN ",
                )
                .bind_list(s)
                .push(")");
            }
            CaseCondition::VictimContributorIn(s) => {
                sql.push(" OR EXISTS (SELECT 1 FROM victims v WHERE v.case_id = c.id AND v.contributing_country IN ")
                    .bind_list(s)
                    .push(")");
            }
            CaseCondition::MissionIn(s) => {
                sql.push(" OR c.mission_code IN ").bind_list(s);
            }
        }
    }
    sql.push(")");
}

fn order_column(field: CaseOrderField) -> &'static str {
    match field {
        CaseOrderField::IncidentDate => "c.incident_date",
        CaseOrderField::Reference => "c.reference",
        CaseOrderField::Mission => "c.mission_code",
        CaseOrderField::VictimCount => "c.victim_count",
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.counted();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    async fn list_missions(&self, filter: &MissionFilter) -> StoreResult<Vec<MissionRecord>> {
        let mut sql = Sql::new(&format!(
            "SELECT {MISSION_COLUMNS} FROM missions WHERE 1 = 1"
        ));
        if let Some(s) = filter.status {
            sql.push(" AND status = ").bind(s.as_str());
        }
        if let Some(k) = filter.kind {
            sql.push(" AND kind = ").bind(k.as_str());
        }
        sql.push(" ORDER BY code");
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(mission_from_row)
            .collect()
    }

    async fn missions_by_codes(&self, codes: &[String]) -> StoreResult<Vec<MissionRecord>> {
        let rows = self
            .fetch_by_keys(
                &format!("SELECT {MISSION_COLUMNS} FROM missions WHERE code IN "),
                codes,
                "",
            )
            .await?;
        rows.iter().map(mission_from_row).collect()
    }

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        order: CaseOrder,
        after: Option<&CaseCursor>,
        limit: u32,
    ) -> StoreResult<Vec<CaseRecord>> {
        let mut sql = Sql::new(&self.case_select());
        push_case_filter(&mut sql, filter);
        let col = order_column(order.field);
        let (dir, cmp) = match order.direction {
            OrderDirection::Asc => ("ASC", ">"),
            OrderDirection::Desc => ("DESC", "<"),
        };
        if let Some(cursor) = after {
            let key: Arg = match (&cursor.key, order.field) {
                (serde_json::Value::Number(n), CaseOrderField::VictimCount) => Arg::Int(
                    n.as_i64()
                        .ok_or_else(|| corrupt("cursor", "non-integer key"))?,
                ),
                (serde_json::Value::String(s), f) if f != CaseOrderField::VictimCount => {
                    Arg::Text(Some(s.clone()))
                }
                _ => return Err(corrupt("cursor", "key does not match the order")),
            };
            sql.push(&format!(" AND ({col}, c.id) {cmp} ("))
                .bind(key)
                .push(", ")
                .bind(&cursor.id)
                .push(")");
        }
        sql.push(&format!(" ORDER BY {col} {dir}, c.id {dir} LIMIT "))
            .bind(i64::from(limit));
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(case_from_row)
            .collect()
    }

    async fn count_cases(&self, filter: &CaseFilter) -> StoreResult<i64> {
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM cases c");
        push_case_filter(&mut sql, filter);
        let rows = self.fetch_all(&sql).await?;
        let row = rows.first().ok_or_else(|| corrupt("count", "no row"))?;
        Ok(row.try_get("n")?)
    }

    async fn cases_by_ids(&self, ids: &[String]) -> StoreResult<Vec<CaseRecord>> {
        let rows = self
            .fetch_by_keys(&format!("{} WHERE c.id IN ", self.case_select()), ids, "")
            .await?;
        rows.iter().map(case_from_row).collect()
    }

    async fn case_by_reference(&self, reference: &str) -> StoreResult<Option<CaseRecord>> {
        let mut sql = Sql::new(&self.case_select());
        sql.push(" WHERE c.reference = ").bind(reference);
        self.fetch_all(&sql)
            .await?
            .first()
            .map(case_from_row)
            .transpose()
    }

    async fn victims_by_case_ids(&self, ids: &[String]) -> StoreResult<Vec<VictimRecord>> {
        let rows = self
            .fetch_by_keys(
                &format!("SELECT {VICTIM_COLUMNS} FROM victims WHERE case_id IN "),
                ids,
                " ORDER BY case_id, position",
            )
            .await?;
        rows.iter().map(victim_from_row).collect()
    }

    async fn follow_ups_by_case_ids(&self, ids: &[String]) -> StoreResult<Vec<FollowUpRecord>> {
        let rows = self
            .fetch_by_keys(
                "SELECT id, case_id, kind, description, taken_on, recorded_by, recorded_at FROM follow_up_actions \
                 WHERE case_id IN ",
                ids,
                " ORDER BY case_id, taken_on, recorded_at",
            )
            .await?;
        rows.iter().map(follow_up_from_row).collect()
    }

    async fn national_references_by_case_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<NationalReferenceRecord>> {
        let rows = self
            .fetch_by_keys(
                "SELECT id, case_id, state, authority, reference, recorded_by, recorded_at FROM national_references \
                 WHERE case_id IN ",
                ids,
                " ORDER BY case_id, recorded_at",
            )
            .await?;
        rows.iter().map(national_reference_from_row).collect()
    }

    async fn assistance_by_case_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(String, AssistanceRecord)>> {
        let agg = match self.dialect {
            Dialect::Sqlite => "(SELECT group_concat(x.case_id, ',') FROM assistance_cases x WHERE x.assistance_id = a.id)",
            Dialect::Postgres => "(SELECT string_agg(x.case_id, ',') FROM assistance_cases x WHERE x.assistance_id = a.id)",
        };
        let rows = self
            .fetch_by_keys(
                &format!(
                    "SELECT l.case_id AS linked_case, a.id, a.host_state, a.kind, a.provider, a.status, a.period_start, \
                     a.period_end, a.description, a.version, a.recorded_at, {agg} AS case_ids \
                     FROM assistance_cases l JOIN capacity_building_assistance a ON a.id = l.assistance_id \
                     WHERE l.case_id IN "
                ),
                ids,
                " ORDER BY a.recorded_at",
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("linked_case")?, assistance_from_row(r)?)))
            .collect()
    }

    async fn list_assistance(
        &self,
        filter: &AssistanceFilter,
    ) -> StoreResult<Vec<AssistanceRecord>> {
        let agg = match self.dialect {
            Dialect::Sqlite => "(SELECT group_concat(x.case_id, ',') FROM assistance_cases x WHERE x.assistance_id = a.id)",
            Dialect::Postgres => "(SELECT string_agg(x.case_id, ',') FROM assistance_cases x WHERE x.assistance_id = a.id)",
        };
        let mut sql = Sql::new(&format!(
            "SELECT a.id, a.host_state, a.kind, a.provider, a.status, a.period_start, a.period_end, a.description, \
             a.version, a.recorded_at, {agg} AS case_ids FROM capacity_building_assistance a WHERE 1 = 1"
        ));
        if !filter.host_states.is_empty() {
            sql.push(" AND a.host_state IN ")
                .bind_list(&filter.host_states);
        }
        if !filter.kinds.is_empty() {
            let kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
            sql.push(" AND a.kind IN ").bind_list(&kinds);
        }
        if let Some(s) = filter.status {
            sql.push(" AND a.status = ").bind(s.as_str());
        }
        sql.push(" ORDER BY a.recorded_at, a.id");
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(assistance_from_row)
            .collect()
    }

    async fn statistics(
        &self,
        by: StatisticsDimension,
        filter: &CaseFilter,
    ) -> StoreResult<Vec<StatisticsRow>> {
        let (key, from) = match by {
            StatisticsDimension::Mission => ("c.mission_code", "cases c"),
            StatisticsDimension::HostState => ("c.host_state", "cases c"),
            StatisticsDimension::Year => ("SUBSTR(c.incident_date, 1, 4)", "cases c"),
            StatisticsDimension::Act => ("g.act", "case_acts g JOIN cases c ON c.id = g.case_id"),
        };
        let mut sql = Sql::new(&format!(
            "SELECT {key} AS k, COUNT(DISTINCT c.id) AS cases, CAST(COALESCE(SUM(c.victim_count), 0) AS BIGINT) AS victims \
             FROM {from}"
        ));
        push_case_filter(&mut sql, filter);
        sql.push(&format!(" GROUP BY {key} ORDER BY {key}"));
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(|r| {
                Ok(StatisticsRow {
                    key: r.try_get("k")?,
                    case_count: r.try_get("cases")?,
                    victim_count: r.try_get("victims")?,
                })
            })
            .collect()
    }

    async fn insert_case(&self, case: NewCase, actor: &str) -> StoreResult<CaseRecord> {
        let mut tx = self.begin_write().await?;
        let territories = self
            .mission_territories(&mut tx, &case.mission_code)
            .await?;
        let host_state = case
            .host_state
            .clone()
            .or_else(|| territories.first().cloned());
        let reference = self
            .free_reference(
                &mut tx,
                &base_reference(&case.mission_code, case.incident_date),
            )
            .await?;
        let id = new_id();
        let ts = now();
        let mut sql = Sql::new(
            "INSERT INTO cases (id, reference, mission_code, host_state, incident_date, reported_date, region, locality, \
             latitude, longitude, summary, perpetrator_groups, victim_count, version, source, created_by, created_at, \
             updated_at) VALUES (",
        );
        sql.bind(&id)
            .push(", ")
            .bind(&reference)
            .push(", ")
            .bind(&case.mission_code)
            .push(", ")
            .bind(host_state);
        sql.push(", ")
            .bind(case.incident_date)
            .push(", ")
            .bind(case.reported_date);
        sql.push(", ")
            .bind(case.region.clone())
            .push(", ")
            .bind(case.locality.clone());
        sql.push(", ")
            .bind(case.latitude)
            .push(", ")
            .bind(case.longitude)
            .push(", ")
            .bind(case.summary.clone());
        sql.push(", ")
            .bind(serde_json::to_string(&case.perpetrator_groups).expect("strings serialise"));
        sql.push(", 0, 1, 'reported', ")
            .bind(actor)
            .push(", ")
            .bind(&ts)
            .push(", ")
            .bind(&ts)
            .push(")");
        self.counted();
        if let Err(e) = sql.query().execute(&mut *tx).await {
            return Err(if is_unique_violation(&e) {
                // Another report of the same mission and date took this reference between the
                // look-up and the insert.
                StoreError::Duplicate(format!(
                    "case reference {reference} (another report of {} on {} was recorded at the same moment; send it again to get the next reference)",
                    case.mission_code, case.incident_date
                ))
            } else {
                e.into()
            });
        }
        self.insert_acts(&mut tx, &id, &case.acts).await?;
        let record = self.case_in_tx(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn update_case(
        &self,
        id: &str,
        expected_version: i64,
        patch: CasePatch,
        _actor: &str,
    ) -> StoreResult<CaseRecord> {
        let mut tx = self.begin_write().await?;
        // The SET list names fixed columns only; every value is bound.
        let mut sql = Sql::new("UPDATE cases SET version = version + 1, updated_at = ");
        sql.bind(now());
        if let Some(v) = &patch.host_state {
            sql.push(", host_state = ").bind(v);
        }
        if let Some(v) = patch.incident_date {
            sql.push(", incident_date = ").bind(v);
        }
        if let Some(v) = patch.reported_date {
            sql.push(", reported_date = ").bind(v);
        }
        if let Some(v) = &patch.region {
            sql.push(", region = ").bind(v);
        }
        if let Some(v) = &patch.locality {
            sql.push(", locality = ").bind(v);
        }
        if let Some((lat, lon)) = patch.coordinates {
            sql.push(", latitude = ")
                .bind(Some(lat))
                .push(", longitude = ")
                .bind(Some(lon));
        }
        if let Some(v) = &patch.summary {
            sql.push(", summary = ").bind(v);
        }
        if let Some(v) = &patch.perpetrator_groups {
            sql.push(", perpetrator_groups = ")
                .bind(serde_json::to_string(v).expect("strings serialise"));
        }
        sql.push(" WHERE id = ")
            .bind(id)
            .push(" AND version = ")
            .bind(expected_version);
        self.counted();
        let done = sql.query().execute(&mut *tx).await?;
        if done.rows_affected() != 1 {
            return Err(self
                .explain_missed_update(&mut tx, id, expected_version)
                .await);
        }
        if let Some(acts) = &patch.acts {
            let mut del = Sql::new("DELETE FROM case_acts WHERE case_id = ");
            del.bind(id);
            self.counted();
            del.query().execute(&mut *tx).await?;
            self.insert_acts(&mut tx, id, acts).await?;
        }
        let record = self.case_in_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn add_victim(
        &self,
        case_id: &str,
        expected_version: Option<i64>,
        victim: NewVictim,
        actor: &str,
    ) -> StoreResult<VictimRecord> {
        let mut tx = self.begin_write().await?;
        self.bump_version(
            &mut tx,
            case_id,
            expected_version,
            ", victim_count = victim_count + 1",
        )
        .await?;
        let mut pos = Sql::new("SELECT victim_count FROM cases WHERE id = ");
        pos.bind(case_id);
        self.counted();
        let position: i64 = pos
            .query()
            .fetch_one(&mut *tx)
            .await?
            .try_get("victim_count")?;
        let id = new_id();
        self.insert_victim_row(&mut tx, &id, case_id, position, &victim, None, actor)
            .await?;
        tx.commit().await?;
        Ok(VictimRecord {
            id,
            case_id: case_id.to_string(),
            category: victim.category,
            contributing_country: victim.contributing_country.map(|c| c.to_string()),
            nationality: victim.nationality.map(|c| c.to_string()),
            harm: victim.harm,
            gender: victim.gender,
            name: victim.name,
            service_number: victim.service_number,
        })
    }

    async fn add_follow_up(
        &self,
        case_id: &str,
        expected_version: Option<i64>,
        action: NewFollowUp,
        actor: &str,
    ) -> StoreResult<FollowUpRecord> {
        let mut tx = self.begin_write().await?;
        self.bump_version(&mut tx, case_id, expected_version, "")
            .await?;
        let id = new_id();
        let ts = now();
        let mut sql = Sql::new(
            "INSERT INTO follow_up_actions (id, case_id, kind, description, taken_on, recorded_by, recorded_at) VALUES (",
        );
        sql.bind(&id)
            .push(", ")
            .bind(case_id)
            .push(", ")
            .bind(action.kind.as_str())
            .push(", ")
            .bind(&action.description);
        sql.push(", ")
            .bind(action.taken_on)
            .push(", ")
            .bind(actor)
            .push(", ")
            .bind(&ts)
            .push(")");
        self.counted();
        sql.query().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(FollowUpRecord {
            id,
            case_id: case_id.to_string(),
            kind: action.kind,
            description: action.description,
            taken_on: action.taken_on,
            recorded_by: actor.to_string(),
            recorded_at: DateTime::parse_from_rfc3339(&ts)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt("now", e))?,
        })
    }

    async fn link_national_reference(
        &self,
        case_id: &str,
        expected_version: Option<i64>,
        link: NewNationalReference,
        actor: &str,
    ) -> StoreResult<NationalReferenceRecord> {
        let mut tx = self.begin_write().await?;
        self.bump_version(&mut tx, case_id, expected_version, "")
            .await?;
        let id = new_id();
        let ts = now();
        let mut sql = Sql::new(
            "INSERT INTO national_references (id, case_id, state, authority, reference, recorded_by, recorded_at) VALUES (",
        );
        sql.bind(&id)
            .push(", ")
            .bind(case_id)
            .push(", ")
            .bind(link.state.as_str())
            .push(", ")
            .bind(&link.authority);
        sql.push(", ")
            .bind(&link.reference)
            .push(", ")
            .bind(actor)
            .push(", ")
            .bind(&ts)
            .push(")");
        self.counted();
        if let Err(e) = sql.query().execute(&mut *tx).await {
            return Err(if is_unique_violation(&e) {
                StoreError::Duplicate(format!(
                    "national reference {} of {} on case {case_id}",
                    link.reference, link.state
                ))
            } else {
                e.into()
            });
        }
        tx.commit().await?;
        Ok(NationalReferenceRecord {
            id,
            case_id: case_id.to_string(),
            state: link.state.to_string(),
            authority: link.authority,
            reference: link.reference,
            recorded_by: actor.to_string(),
            recorded_at: DateTime::parse_from_rfc3339(&ts)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt("now", e))?,
        })
    }

    async fn set_focal_point(
        &self,
        code: &str,
        focal_point: Option<FocalPoint>,
    ) -> StoreResult<MissionRecord> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("UPDATE missions SET focal_point_name = ");
        sql.bind(focal_point.as_ref().map(|f| f.name.clone()));
        sql.push(", focal_point_email = ")
            .bind(focal_point.as_ref().and_then(|f| f.email.clone()));
        sql.push(", updated_at = ")
            .bind(now())
            .push(" WHERE code = ")
            .bind(code);
        self.counted();
        if sql.query().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(StoreError::UnknownMission(code.to_string()));
        }
        let mut read = Sql::new(&format!(
            "SELECT {MISSION_COLUMNS} FROM missions WHERE code = "
        ));
        read.bind(code);
        self.counted();
        let row = read.query().fetch_one(&mut *tx).await?;
        let mission = mission_from_row(&row)?;
        tx.commit().await?;
        Ok(mission)
    }

    async fn insert_assistance(
        &self,
        record: NewAssistance,
        actor: &str,
    ) -> StoreResult<AssistanceRecord> {
        let mut tx = self.begin_write().await?;
        let mut ids: Vec<String> = record.case_ids.clone();
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            let mut check = Sql::new("SELECT id FROM cases WHERE id IN ");
            check.bind_list(&ids);
            self.counted();
            let found: HashSet<String> = check
                .query()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<_, _>>()?;
            if let Some(missing) = ids.iter().find(|id| !found.contains(*id)) {
                return Err(StoreError::NotFound(format!("case {missing}")));
            }
        }
        let id = new_id();
        let ts = now();
        let mut sql = Sql::new(
            "INSERT INTO capacity_building_assistance (id, host_state, kind, provider, status, period_start, period_end, \
             description, version, recorded_by, recorded_at) VALUES (",
        );
        sql.bind(&id)
            .push(", ")
            .bind(record.host_state.as_str())
            .push(", ")
            .bind(record.kind.as_str());
        sql.push(", ")
            .bind(&record.provider)
            .push(", ")
            .bind(record.status.as_str());
        sql.push(", ")
            .bind(record.period_start)
            .push(", ")
            .bind(record.period_end);
        sql.push(", ")
            .bind(record.description.clone())
            .push(", 1, ")
            .bind(actor)
            .push(", ")
            .bind(&ts)
            .push(")");
        self.counted();
        sql.query().execute(&mut *tx).await?;
        for case_id in &ids {
            let mut link =
                Sql::new("INSERT INTO assistance_cases (assistance_id, case_id) VALUES (");
            link.bind(&id).push(", ").bind(case_id).push(")");
            self.counted();
            link.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(AssistanceRecord {
            id,
            host_state: record.host_state.to_string(),
            kind: record.kind,
            provider: record.provider,
            status: record.status,
            period_start: record.period_start,
            period_end: record.period_end,
            description: record.description,
            case_ids: ids,
            version: 1,
            recorded_at: DateTime::parse_from_rfc3339(&ts)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt("now", e))?,
        })
    }

    async fn append_audit(&self, entries: &[ChainedAuditEntry]) -> StoreResult<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut tx = self.begin_uncounted().await?;
        let tail = Sql::new("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .query()
            .fetch_optional(&mut *tx)
            .await?;
        let (found, hash) = match &tail {
            Some(row) => (
                row.try_get::<i64, _>("seq")?,
                row.try_get::<String, _>("hash")?,
            ),
            None => (0, String::new()),
        };
        let linked = found == first.seq - 1 && (found == 0 || hash == first.prev_hash);
        if !linked {
            return Err(StoreError::AuditTailMoved {
                found,
                first: first.seq,
            });
        }
        for chunk in entries.chunks(AUDIT_INSERT_CHUNK) {
            let mut sql = Sql::new(&format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES "));
            for (i, e) in chunk.iter().enumerate() {
                let fields =
                    serde_json::to_string(&e.fields).expect("a list of strings serialises");
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(e.seq)
                    .push(", ")
                    .bind(e.at.to_rfc3339_opts(SecondsFormat::Millis, true));
                sql.push(", ")
                    .bind(&e.subject)
                    .push(", ")
                    .bind(&e.organisation)
                    .push(", ")
                    .bind(&e.operation);
                sql.push(", ")
                    .bind(e.case_id.clone())
                    .push(", ")
                    .bind(fields)
                    .push(", ")
                    .bind(&e.decision);
                sql.push(", ")
                    .bind(&e.prev_hash)
                    .push(", ")
                    .bind(&e.hash)
                    .push(")");
            }
            if let Err(e) = sql.query().execute(&mut *tx).await {
                // A concurrent writer (another replica) took these seqs first.
                return Err(if is_unique_violation(&e) {
                    StoreError::AuditTailMoved {
                        found,
                        first: first.seq,
                    }
                } else {
                    e.into()
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn last_audit_entry(&self) -> StoreResult<Option<ChainedAuditEntry>> {
        let sql = Sql::new(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
        ));
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .first()
            .map(audit_entry_from_row)
            .transpose()
    }

    async fn audit_entries(
        &self,
        filter: &AuditFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ChainedAuditEntry>> {
        let mut sql = Sql::new(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"
        ));
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        if let Some(v) = &filter.subject {
            sql.push(" AND subject = ").bind(v);
        }
        if let Some(v) = &filter.organisation {
            sql.push(" AND organisation = ").bind(v);
        }
        if let Some(v) = &filter.case_id {
            sql.push(" AND case_id = ").bind(v);
        }
        if let Some(v) = &filter.from {
            sql.push(" AND at >= ").bind(time(v));
        }
        if let Some(v) = &filter.to {
            sql.push(" AND at <= ").bind(time(v));
        }
        if let Some(v) = &filter.decision {
            sql.push(" AND decision = ").bind(v);
        }
        if let Some(seq) = before_seq {
            sql.push(" AND seq < ").bind(seq);
        }
        sql.push(" ORDER BY seq DESC LIMIT ").bind(i64::from(limit));
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_entry_from_row)
            .collect()
    }

    async fn audit_chain(
        &self,
        after_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ChainedAuditEntry>> {
        let mut sql = Sql::new(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > "
        ));
        sql.bind(after_seq.unwrap_or(0))
            .push(" ORDER BY seq LIMIT ")
            .bind(i64::from(limit));
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_entry_from_row)
            .collect()
    }

    async fn insert_submission(
        &self,
        case_id: &str,
        organisation: &str,
        submitted_by: &str,
        content: &str,
    ) -> StoreResult<SubmissionRecord> {
        let mut tx = self.begin_write().await?;
        let mut check = Sql::new("SELECT id FROM cases WHERE id = ");
        check.bind(case_id);
        self.counted();
        if check.query().fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::NotFound(format!("case {case_id}")));
        }
        let id = new_id();
        let mut sql = Sql::new(
            "INSERT INTO case_submissions (id, case_id, organisation, submitted_by, content, status, submitted_at) VALUES (",
        );
        sql.bind(&id)
            .push(", ")
            .bind(case_id)
            .push(", ")
            .bind(organisation)
            .push(", ")
            .bind(submitted_by);
        sql.push(", ")
            .bind(content)
            .push(", 'PENDING', ")
            .bind(now())
            .push(")");
        self.counted();
        sql.query().execute(&mut *tx).await?;
        let record = self.submission_in_tx(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn review_submission(
        &self,
        id: &str,
        accept: bool,
        note: Option<&str>,
        reviewer: &str,
    ) -> StoreResult<SubmissionRecord> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("UPDATE case_submissions SET status = ");
        sql.bind(if accept { "ACCEPTED" } else { "REJECTED" })
            .push(", reviewed_by = ")
            .bind(reviewer);
        sql.push(", reviewed_at = ")
            .bind(now())
            .push(", review_note = ")
            .bind(note);
        sql.push(" WHERE id = ")
            .bind(id)
            .push(" AND status = 'PENDING'");
        self.counted();
        if sql.query().execute(&mut *tx).await?.rows_affected() != 1 {
            // Tell "no such submission" from "already reviewed".
            let existing = self.submission_in_tx(&mut tx, id).await?;
            return Err(StoreError::Duplicate(format!(
                "a review of submission {} ({})",
                existing.id,
                existing.status.as_str()
            )));
        }
        let record = self.submission_in_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn submissions_by_case_ids(&self, ids: &[String]) -> StoreResult<Vec<SubmissionRecord>> {
        let rows = self
            .fetch_by_keys(
                &format!("SELECT {SUBMISSION_COLUMNS} FROM case_submissions WHERE case_id IN "),
                ids,
                " ORDER BY case_id, submitted_at",
            )
            .await?;
        rows.iter().map(submission_from_row).collect()
    }

    async fn import_missions(
        &self,
        missions: &[MissionRecord],
        source: &str,
    ) -> StoreResult<ImportCounts> {
        let mut tx = self.begin_write().await?;
        self.counted();
        let existing: HashMap<String, MissionRecord> =
            Sql::new(&format!("SELECT {MISSION_COLUMNS} FROM missions"))
                .query()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| mission_from_row(r).map(|m| (m.code.to_string(), m)))
                .collect::<StoreResult<_>>()?;
        let mut counts = ImportCounts::default();
        for m in missions {
            let territories: Vec<&str> = m.host_territories.iter().map(|t| t.as_str()).collect();
            let territories = territories.join(",");
            let mut sql;
            match existing.get(m.code.as_str()) {
                Some(old) => {
                    // The focal point is maintained in CaseGraph, not in the dataset: keep it.
                    let mut incoming = m.clone();
                    incoming.focal_point = old.focal_point.clone();
                    if &incoming == old {
                        counts.unchanged += 1;
                        continue;
                    }
                    sql = Sql::new("UPDATE missions SET name = ");
                    sql.bind(&m.name)
                        .push(", kind = ")
                        .bind(m.kind.as_str())
                        .push(", status = ")
                        .bind(m.status.as_str());
                    sql.push(", start_date = ")
                        .bind(m.start_date)
                        .push(", end_date = ")
                        .bind(m.end_date);
                    sql.push(", host_territories = ")
                        .bind(territories)
                        .push(", location_name = ")
                        .bind(m.location_name.clone());
                    sql.push(", latitude = ")
                        .bind(m.latitude)
                        .push(", longitude = ")
                        .bind(m.longitude);
                    sql.push(", source = ")
                        .bind(source)
                        .push(", updated_at = ")
                        .bind(now());
                    sql.push(" WHERE code = ").bind(m.code.as_str());
                    counts.updated += 1;
                }
                None => {
                    sql = Sql::new(
                        "INSERT INTO missions (code, name, kind, status, start_date, end_date, host_territories, \
                         location_name, latitude, longitude, source, updated_at) VALUES (",
                    );
                    sql.bind(m.code.as_str())
                        .push(", ")
                        .bind(&m.name)
                        .push(", ")
                        .bind(m.kind.as_str());
                    sql.push(", ")
                        .bind(m.status.as_str())
                        .push(", ")
                        .bind(m.start_date)
                        .push(", ")
                        .bind(m.end_date);
                    sql.push(", ")
                        .bind(territories)
                        .push(", ")
                        .bind(m.location_name.clone());
                    sql.push(", ")
                        .bind(m.latitude)
                        .push(", ")
                        .bind(m.longitude)
                        .push(", ")
                        .bind(source);
                    sql.push(", ").bind(now()).push(")");
                    counts.inserted += 1;
                }
            }
            self.counted();
            sql.query().execute(&mut *tx).await?;
        }
        self.record_import_run(&mut tx, source, &counts).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn import_cases(
        &self,
        cases: &[ImportedCase],
        source: &str,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> StoreResult<ImportCounts> {
        let mut tx = self.begin_write().await?;
        let mut existing_sql =
            Sql::new("SELECT import_key, import_hash, id FROM cases WHERE source = ");
        existing_sql.bind(source);
        self.counted();
        let existing: HashMap<String, (Option<String>, String)> = existing_sql
            .query()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("import_key")?,
                    (r.try_get("import_hash")?, r.try_get("id")?),
                ))
            })
            .collect::<StoreResult<_>>()?;
        self.counted();
        let missions: HashSet<String> = sqlx::query("SELECT code FROM missions")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("code"))
            .collect::<Result<_, _>>()?;
        let mut counts = ImportCounts::default();
        let ts = now();
        for (i, case) in cases.iter().enumerate() {
            if i % 100 == 0 {
                progress(i, cases.len());
            }
            if !missions.contains(&case.mission_code) {
                return Err(StoreError::UnknownMission(case.mission_code.clone()));
            }
            let hash = import_hash(case);
            let id = match existing.get(&case.import_key) {
                Some((Some(old), _)) if *old == hash => {
                    counts.unchanged += 1;
                    continue;
                }
                Some((_, id)) => {
                    let mut sql = Sql::new("UPDATE cases SET mission_code = ");
                    sql.bind(&case.mission_code)
                        .push(", host_state = ")
                        .bind(case.host_state.clone());
                    sql.push(", incident_date = ")
                        .bind(case.incident_date)
                        .push(", summary = ")
                        .bind(case.summary.clone());
                    sql.push(", import_hash = ")
                        .bind(&hash)
                        .push(", version = version + 1, updated_at = ")
                        .bind(&ts);
                    sql.push(" WHERE id = ").bind(id);
                    self.counted();
                    sql.query().execute(&mut *tx).await?;
                    for table in [
                        "DELETE FROM case_acts WHERE case_id = ",
                        "DELETE FROM victims WHERE import_key IS NOT NULL AND case_id = ",
                    ] {
                        let mut del = Sql::new(table);
                        del.bind(id);
                        self.counted();
                        del.query().execute(&mut *tx).await?;
                    }
                    counts.updated += 1;
                    id.clone()
                }
                None => {
                    let id = import_id(&case.import_key);
                    let reference = self.free_reference(&mut tx, &case.reference).await?;
                    let mut sql = Sql::new(
                        "INSERT INTO cases (id, reference, mission_code, host_state, incident_date, summary, \
                         perpetrator_groups, victim_count, version, source, import_key, import_hash, created_by, \
                         created_at, updated_at) VALUES (",
                    );
                    sql.bind(&id)
                        .push(", ")
                        .bind(&reference)
                        .push(", ")
                        .bind(&case.mission_code);
                    sql.push(", ")
                        .bind(case.host_state.clone())
                        .push(", ")
                        .bind(case.incident_date);
                    sql.push(", ")
                        .bind(case.summary.clone())
                        .push(", '[]', 0, 1, ")
                        .bind(source);
                    sql.push(", ")
                        .bind(&case.import_key)
                        .push(", ")
                        .bind(&hash)
                        .push(", ")
                        .bind(format!("import:{source}"));
                    sql.push(", ").bind(&ts).push(", ").bind(&ts).push(")");
                    self.counted();
                    sql.query().execute(&mut *tx).await?;
                    counts.inserted += 1;
                    id
                }
            };
            self.insert_acts(&mut tx, &id, &case.acts).await?;
            for (position, (key, victim)) in case.victims.iter().enumerate() {
                let position = i64::try_from(position).expect("victims per case fit in i64");
                self.insert_victim_row(
                    &mut tx,
                    &import_id(key),
                    &id,
                    position,
                    victim,
                    Some(key),
                    &format!("import:{source}"),
                )
                .await?;
            }
            let mut recount = Sql::new("UPDATE cases SET victim_count = (SELECT COUNT(*) FROM victims v WHERE v.case_id = cases.id) WHERE id = ");
            recount.bind(&id);
            self.counted();
            recount.query().execute(&mut *tx).await?;
        }
        progress(cases.len(), cases.len());
        self.record_import_run(&mut tx, source, &counts).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn case_cross_counts(&self, filter: &CaseFilter) -> StoreResult<Vec<CrossCount>> {
        // The year is computed as the YEAR statistics compute it, so that keys match.
        let mut sql = Sql::new(
            "SELECT c.mission_code AS m, c.host_state AS h, SUBSTR(c.incident_date, 1, 4) AS y, \
             COUNT(*) AS cases, CAST(COALESCE(SUM(c.victim_count), 0) AS BIGINT) AS victims FROM cases c",
        );
        push_case_filter(&mut sql, filter);
        sql.push(
            " GROUP BY c.mission_code, c.host_state, SUBSTR(c.incident_date, 1, 4) ORDER BY m, h, y",
        );
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(|r| {
                Ok(CrossCount {
                    mission: r.try_get("m")?,
                    host_state: r.try_get("h")?,
                    year: r.try_get("y")?,
                    cases: r.try_get("cases")?,
                    victims: r.try_get("victims")?,
                })
            })
            .collect()
    }
}

impl SqlStore {
    async fn record_import_run(
        &self,
        tx: &mut Transaction<'static, Any>,
        dataset: &str,
        counts: &ImportCounts,
    ) -> StoreResult<()> {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let mut sql = Sql::new(
            "INSERT INTO import_runs (dataset, inserted, updated, unchanged, finished_at) VALUES (",
        );
        sql.bind(dataset)
            .push(", ")
            .bind(n(counts.inserted))
            .push(", ")
            .bind(n(counts.updated));
        sql.push(", ")
            .bind(n(counts.unchanged))
            .push(", ")
            .bind(now())
            .push(")");
        self.counted();
        sql.query().execute(&mut **tx).await?;
        Ok(())
    }
}
