//! Importers for the UN Peace and Security Data Hub datasets (`DPPADPOSS-PKO`, the mission list,
//! and `DPPADPOSS-FATALITIES`, the fatalities), merged with the mission table CaseGraph maintains
//! (`data/reference/missions.toml`).
//!
//! An import parses the whole file first and reports every row it cannot use with its line
//! number and reason. Unless `skip_invalid` is set, a single bad row stops the import before
//! anything is written; the write itself is one transaction, keyed so that running the same
//! import again inserts and duplicates nothing.

mod fatalities;
mod missions;
mod table;

pub use fatalities::FATALITIES_DATASET;
pub use missions::MISSIONS_DATASET;
pub use table::{MissionTable, MissionTableEntry};

use crate::store::{ImportCounts, Store, StoreError};
use serde::Serialize;

/// The mission list bundled in the binary (UN Peace and Security Data Hub, `DPPADPOSS-PKO`).
pub const BUNDLED_MISSIONS: &[u8] = include_bytes!("../../data/un/DPPADPOSS-PKO.csv");
/// The fatalities dataset bundled in the binary (`DPPADPOSS-FATALITIES`).
pub const BUNDLED_FATALITIES: &[u8] = include_bytes!("../../data/un/DPPADPOSS-FATALITIES.csv");

/// A row the importer could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What an import read, wrote and refused.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Dataset name.
    pub dataset: String,
    /// Data rows read (header excluded).
    pub rows_read: usize,
    /// Rows outside the scope of the database (e.g. deaths by illness or accident).
    pub rows_out_of_scope: usize,
    /// Records the file yields (missions, or cases).
    pub records: usize,
    /// Victims the file yields (fatalities only).
    pub victims: usize,
    /// Store changes.
    pub counts: ImportCounts,
    /// Rows refused.
    pub rejected: Vec<RejectedRow>,
    /// Notes on values the importer corrected or left out.
    pub warnings: Vec<String>,
}

/// Import failures.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not the expected CSV.
    #[error("{0}")]
    Format(String),
    /// Some rows cannot be imported; nothing was written.
    #[error("{} row(s) cannot be imported, nothing was written (use --skip-invalid to import the other rows):\n{}",
        .0.rejected.len(),
        .0.rejected.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"))]
    Rejected(Box<ImportReport>),
    /// The store refused the write; nothing was written.
    #[error("the store refused the import, nothing was written: {0}")]
    Store(#[from] StoreError),
}

/// Options of an import.
#[derive(Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// Import the valid rows and report the others, instead of writing nothing.
    pub skip_invalid: bool,
    /// Called with (done, total) while writing.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

/// Imports a mission list (`DPPADPOSS-PKO` CSV).
pub async fn import_missions(
    store: &dyn Store,
    csv: &[u8],
    opts: ImportOptions<'_>,
) -> Result<ImportReport, ImportError> {
    let table = MissionTable::bundled();
    let (records, mut report) = missions::parse(csv, &table)?;
    finish_check(&mut report, opts)?;
    report.counts = store.import_missions(&records, MISSIONS_DATASET).await?;
    Ok(report)
}

/// Imports a fatalities dataset (`DPPADPOSS-FATALITIES` CSV): malicious-act rows become cases,
/// one per (mission, incident date), with one victim per row.
pub async fn import_fatalities(
    store: &dyn Store,
    csv: &[u8],
    opts: ImportOptions<'_>,
) -> Result<ImportReport, ImportError> {
    let table = MissionTable::bundled();
    let known: std::collections::HashSet<String> = store
        .list_missions(&Default::default())
        .await?
        .into_iter()
        .map(|m| m.code.to_string())
        .collect();
    let today = chrono::Utc::now().date_naive();
    let (cases, mut report) = fatalities::parse(csv, &table, &known, today)?;
    finish_check(&mut report, opts)?;
    let noop = |_: usize, _: usize| {};
    let progress = opts.progress.unwrap_or(&noop);
    report.counts = store
        .import_cases(&cases, FATALITIES_DATASET, progress)
        .await?;
    Ok(report)
}

/// Imports the datasets bundled in the binary (missions first, then fatalities).
pub async fn import_bundled(
    store: &dyn Store,
    opts: ImportOptions<'_>,
) -> Result<(ImportReport, ImportReport), ImportError> {
    let missions = import_missions(store, BUNDLED_MISSIONS, opts).await?;
    let fatalities = import_fatalities(store, BUNDLED_FATALITIES, opts).await?;
    Ok((missions, fatalities))
}

fn finish_check(report: &mut ImportReport, opts: ImportOptions<'_>) -> Result<(), ImportError> {
    if !report.rejected.is_empty() && !opts.skip_invalid {
        return Err(ImportError::Rejected(Box::new(std::mem::take(report))));
    }
    Ok(())
}

/// Reads the header of a CSV file and finds the columns an importer needs.
fn column_index(
    headers: &csv::StringRecord,
    wanted: &[&'static str],
) -> Result<Vec<usize>, ImportError> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !headers.iter().any(|h| h.trim() == *w))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Format(format!(
            "line 1: the header lacks column(s) {}; is this the right file?",
            missing.join(", ")
        )));
    }
    Ok(wanted
        .iter()
        .map(|w| {
            headers
                .iter()
                .position(|h| h.trim() == *w)
                .expect("checked above")
        })
        .collect())
}
