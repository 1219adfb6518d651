//! Kind `file`: for a state without an API, a folder into which it drops CSV or JSON exports.
//!
//! # For host-state IT staff
//!
//! CaseGraph reads every file of the folder whose name matches `pattern` (default `*.csv` or
//! `*.json`; `*` stands for any characters, capitals do not matter). Names starting with `.` or
//! `~` are skipped (editors' lock and temporary files). CaseGraph checks the folder every
//! `poll_secs` seconds and re-reads a file whose size or modification time changed; a file that
//! disappears stops being served.
//!
//! **If a file cannot be read** (wrong delimiter, broken JSON, a case without its key),
//! CaseGraph keeps serving what that file held the last time it was good, and reports the file
//! and the line in its log, its health page and `casegraph connector test`. Fix the file and
//! save it again: it is picked up at the next check. At start-up a bad file stops the gateway,
//! so that a mistake is seen at once.
//!
//! To replace a file safely, write the new version under a name that does not match the pattern
//! (e.g. `export.csv.tmp`) and then rename it. A file still being written when CaseGraph looks is
//! simply read again at the next check.
//!
//! When two files hold the same case, the file whose name sorts last wins (so
//! `export-2024-06.csv` overrides `export-2024-05.csv`).
//!
//! ## CSV files
//!
//! - The first line names the columns; each following line is a case. Files should be UTF-8
//!   ("CSV UTF-8" in Excel); a file that is not is read as Windows-1252 (the plain "CSV" of a
//!   French-language Excel).
//! - `delimiter` separates cells: `","` by default, `";"` in most French-language exports. A
//!   cell containing the delimiter is written between double quotes.
//! - Spaces around a cell are ignored; an empty cell means "no value".
//! - A dot in a column name makes a group: `juridiction.nom` and `juridiction.type` become
//!   `{"juridiction": {"nom": …, "type": …}}`, so the `[mapping]` pointer is
//!   `"/juridiction/nom"`.
//! - **Lists.** The column that `[mapping] charges` names, and any column whose name ends with
//!   `[]` (e.g. `chefs[]`), hold a list: the cell is cut at each `list_separator` (e.g.
//!   `assassinat | terrorisme` with `list_separator = "|"`).
//! - **Several defendants.** Repeat the case's line once per defendant. Lines with the same value
//!   in the key column (the column `[mapping] key` names) are one case. A column named
//!   `list[].field`, e.g. `accuses[].nom`, adds to a list of objects: each line adds one entry
//!   made of its `accuses[].…` cells (a line whose `accuses[].…` cells are all empty adds none).
//!   The other cells describe the case: give them on the first line and either repeat the same
//!   value or leave them empty on the next ones — a different value is an error.
//!
//! ```text
//! numero_onu;etape;juridiction.nom;chefs;accuses[].nom;accuses[].situation
//! MINUSCA-20170508;Arrêt rendu;Cour d'assises de Bangui;assassinat|pillage;A. Yékatom;Condamné
//! MINUSCA-20170508;;;;B. Ngaïkosset;En fuite
//! MINUSMA-20150528;Information judiciaire;Pôle judiciaire spécialisé;terrorisme;;
//! ```
//!
//! gives two cases; the first is
//! `{"numero_onu": "MINUSCA-20170508", "etape": "Arrêt rendu", "juridiction": {"nom": "Cour
//! d'assises de Bangui"}, "chefs": ["assassinat", "pillage"], "accuses": [{"nom": "A. Yékatom",
//! "situation": "Condamné"}, {"nom": "B. Ngaïkosset", "situation": "En fuite"}]}`, read with
//!
//! ```toml
//! kind = "file"
//! [file]
//! folder = "../depot/car"
//! format = "csv"
//! delimiter = ";"
//! list_separator = "|"
//! [mapping]
//! key = "/numero_onu"
//! stage = "/etape"
//! court_name = "/juridiction/nom"
//! charges = "/chefs"
//! defendants = { list = "/accuses", name = "/nom", status = "/situation" }
//! ```
//!
//! ## JSON files
//!
//! A file holds an array of cases, or an object with the array where `[mapping] records` points
//! (e.g. `{"dossiers": [...]}` with `records = "/dossiers"`). Within one file each case appears
//! once.
//!
//! Tip: set `[runtime] cache_ttl_secs` low (e.g. 10) so that a corrected file shows quickly.

use super::error::ConnectorError;
use super::mapping::Mapping;
use super::{Connector, Fetched};
use crate::config::Validation;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

const DEFAULT_POLL_SECS: u64 = 5;
const MAX_POLL_SECS: u64 = 86_400;

/// The format of the files in the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Text files whose first line names the columns, one case per line (several lines for a
    /// case with several defendants).
    Csv,
    /// JSON files holding an array of cases, or an object with the array where
    /// `[mapping] records` points.
    Json,
}

impl FileFormat {
    fn default_pattern(self) -> &'static str {
        match self {
            Self::Csv => "*.csv",
            Self::Json => "*.json",
        }
    }
}

/// `[file]` of a connector file: where the exports are dropped and how they are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FileConfig {
    /// Folder holding the files, e.g. "../depot/mali". A relative path starts from the folder of
    /// this connector file.
    pub folder: String,
    /// How the files are written: "csv" or "json".
    pub format: FileFormat,
    /// Which files of the folder to read, by name: `*` stands for any characters, capitals do
    /// not matter. Default "*.csv" or "*.json" according to `format`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// CSV only: the character between cells. Default ","; French-language exports usually use
    /// ";". Write "\t" for a tab.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// CSV only: the character(s) between the items of a cell holding a list, e.g. "|" for
    /// "assassinat|terrorisme". Applies to the charges column and to columns whose name ends
    /// with "[]". Without it such a cell is a list of one item.
    #[serde(default)]
    pub list_separator: Option<String>,
    /// Seconds between two checks of the folder for new, changed or removed files (default 5).
    #[serde(default)]
    pub poll_secs: Option<u64>,
}

impl FileConfig {
    /// Checks every setting without touching the disk; errors are keyed under `file.`.
    pub fn validate_into(&self, v: &mut Validation) {
        if self.folder.trim().is_empty() {
            v.error(
                "file.folder",
                "name the folder holding the files, e.g. \"../depot/mali\"",
            );
        }
        if let Some(p) = &self.pattern {
            if p.trim().is_empty() {
                v.error(
                    "file.pattern",
                    "must not be empty; leave it out to read every \"*.csv\" or \"*.json\" file",
                );
            } else if p.contains(['/', '\\']) {
                v.error(
                    "file.pattern",
                    "is matched against file names only: put the folder in `folder`",
                );
            }
        }
        let csv = self.format == FileFormat::Csv;
        if let Some(d) = &self.delimiter {
            if !csv {
                v.error("file.delimiter", "applies only to format = \"csv\"");
            } else if parse_delimiter(d).is_none() {
                v.error("file.delimiter", "must be one character such as \";\", \",\" or \"\\t\" (tab), other than a double quote");
            }
        }
        if let Some(s) = &self.list_separator {
            if !csv {
                v.error("file.list_separator", "applies only to format = \"csv\"");
            } else if s.trim().is_empty() {
                v.error(
                    "file.list_separator",
                    "must not be empty or only spaces; leave it out if no cell holds a list",
                );
            } else if s.contains(['"', '\n', '\r']) {
                v.error(
                    "file.list_separator",
                    "must not contain a double quote or a line break",
                );
            } else if s.as_bytes()
                == [self
                    .delimiter
                    .as_deref()
                    .and_then(parse_delimiter)
                    .unwrap_or(b',')]
            {
                v.error(
                    "file.list_separator",
                    "must differ from the delimiter between cells",
                );
            }
        }
        if let Some(secs) = self.poll_secs {
            if !(1..=MAX_POLL_SECS).contains(&secs) {
                v.error(
                    "file.poll_secs",
                    format!("must be between 1 and {MAX_POLL_SECS} seconds"),
                );
            }
        }
    }
}

/// A delimiter the CSV reader accepts: one ASCII character other than a quote or line break.
fn parse_delimiter(d: &str) -> Option<u8> {
    let mut chars = d.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() && !matches!(c, '"' | '\n' | '\r') => u8::try_from(c).ok(),
        _ => None,
    }
}

/// Why a file (or the folder) could not be read: where, and what to fix. Never holds a cell's
/// value, which may be sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    file: String,
    line: Option<u64>,
    message: String,
}

impl Problem {
    fn new(file: &Path, line: Option<u64>, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A parse failure inside one file, before the file's path is attached.
struct Bad {
    line: Option<u64>,
    message: String,
}

impl Bad {
    fn at(line: u64, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        Self {
            line: None,
            message: message.into(),
        }
    }
}

/// One record with where it came from, shown by `casegraph connector test`.
#[derive(Debug)]
struct Located {
    source: String,
    record: Value,
}

/// What is served: every good record by key, and the problems of the last check.
#[derive(Debug, Default)]
struct Index {
    records: HashMap<String, Arc<Located>>,
    problems: Vec<Problem>,
}

/// Size and modification time: a file is re-read when either changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            modified: m.modified().ok(),
            len: m.len(),
        }
    }
}

/// One file of the folder: the stamp last read, its last good records, its current problem.
#[derive(Debug)]
struct FileState {
    path: PathBuf,
    stamp: Option<Stamp>,
    good: Vec<(String, Arc<Located>)>,
    problem: Option<Problem>,
}

/// What the poller knows of the folder (only the poller and `new` touch it).
#[derive(Debug, Default)]
struct Scan {
    folder_problem: Option<Problem>,
    /// By file name, so that the file sorting last wins a duplicated key.
    files: BTreeMap<String, FileState>,
}

impl Scan {
    fn problems(&self) -> Vec<Problem> {
        self.folder_problem
            .iter()
            .chain(self.files.values().filter_map(|f| f.problem.as_ref()))
            .cloned()
            .collect()
    }
}

enum Listed {
    Present(PathBuf, Stamp),
    Unreadable(PathBuf, Problem),
}

enum Loaded {
    Records(Vec<(String, Arc<Located>)>),
    Bad(Problem),
    /// The file vanished between listing and reading.
    Gone,
    /// The file changed while it was read: read it again at the next check.
    Changing,
}

/// Settings resolved once from the configuration and the mapping.
#[derive(Debug)]
struct Settings {
    format: FileFormat,
    pattern: String,
    delimiter: u8,
    list_separator: Option<String>,
    mapping: Mapping,
    key_path: Vec<String>,
    charges_path: Option<Vec<String>>,
}

/// The state shared by the connector and its poller.
#[derive(Debug)]
struct Shared {
    id: String,
    folder: PathBuf,
    settings: Settings,
    index: RwLock<Arc<Index>>,
    scan: Mutex<Scan>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The scan state is rebuilt from the disk at each change, so a poisoned lock is harmless.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A connector serving the records of a drop folder from memory, re-reading changed files in
/// the background.
pub struct FileConnector {
    shared: Arc<Shared>,
    poller: JoinHandle<()>,
}

impl FileConnector {
    /// Reads every matching file of the folder (any unreadable or invalid file is an error naming
    /// the file and line) and starts checking the folder every `poll_secs`. Must run inside the
    /// tokio runtime.
    pub fn new(
        id: &str,
        config: FileConfig,
        mapping: Mapping,
        base_dir: &Path,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the file connector must be built inside the tokio runtime, which runs its folder checks".to_string())?;
        let delimiter = match config.delimiter.as_deref() {
            None => b',',
            Some(d) => parse_delimiter(d)
                .ok_or_else(|| "file.delimiter must be one character".to_string())?,
        };
        let key_path = pointer_path(&mapping.config().key);
        if key_path.is_empty() {
            return Err("the mapping's key must be a pointer such as \"/numero_onu\"".into());
        }
        let charges_path = mapping.config().charges.as_deref().map(pointer_path);
        let settings = Settings {
            format: config.format,
            pattern: config
                .pattern
                .clone()
                .unwrap_or_else(|| config.format.default_pattern().to_string()),
            delimiter,
            list_separator: config.list_separator.clone(),
            mapping,
            key_path,
            charges_path,
        };
        let shared = Arc::new(Shared {
            id: id.to_string(),
            folder: base_dir.join(&config.folder),
            settings,
            index: RwLock::new(Arc::new(Index::default())),
            scan: Mutex::new(Scan::default()),
        });
        {
            let mut scan = lock(&shared.scan);
            shared.refresh(&mut scan, false);
            let problems = scan.problems();
            if !problems.is_empty() {
                return Err(problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"));
            }
            shared.publish(&scan);
            let records: usize = scan.files.values().map(|f| f.good.len()).sum();
            if scan.files.is_empty() {
                tracing::warn!(connector = %id, folder = %shared.folder.display(), pattern = %shared.settings.pattern, "No file in the drop folder matches the pattern yet");
            } else {
                tracing::info!(connector = %id, folder = %shared.folder.display(), files = scan.files.len(), records, "Drop folder loaded");
            }
        }
        let every = Duration::from_secs(
            config
                .poll_secs
                .unwrap_or(DEFAULT_POLL_SECS)
                .clamp(1, MAX_POLL_SECS),
        );
        let poller = runtime.spawn(poll(Arc::downgrade(&shared), every));
        Ok(Self { shared, poller })
    }

    /// The problems found by the last check of the folder, each as `file:line: what to fix`;
    /// empty when every file was read. For `casegraph connector test` and the health page.
    pub fn last_reload_errors(&self) -> Vec<String> {
        self.shared
            .index()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

impl Drop for FileConnector {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Checks the folder every `every` until the connector is dropped. Holds only a weak reference
/// between checks, so the connector's data is freed as soon as the connector is.
async fn poll(shared: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let id = shared.id.clone();
        // Reading files blocks: keep it off the request-serving threads.
        if let Err(e) = tokio::task::spawn_blocking(move || shared.check()).await {
            tracing::error!(connector = %id, error = %e, "Checking the drop folder failed unexpectedly; trying again at the next check");
        }
    }
}

impl Shared {
    fn index(&self) -> Arc<Index> {
        Arc::clone(
            &self
                .index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// One check of the folder; publishes a new index when anything changed.
    #[tracing::instrument(skip(self), fields(connector = %self.id))]
    fn check(&self) {
        let mut scan = lock(&self.scan);
        if self.refresh(&mut scan, true) {
            self.publish(&scan);
        }
    }

    /// Re-reads what changed since the last check. Returns whether the served data or the
    /// problems changed. `log` is false at start-up, where problems are returned instead.
    fn refresh(&self, scan: &mut Scan, log: bool) -> bool {
        let listing = match self.list() {
            Ok(listing) => listing,
            Err(problem) => {
                let new = scan.folder_problem.as_ref() != Some(&problem);
                if new && log {
                    tracing::warn!(connector = %self.id, folder = %self.folder.display(), error = %problem.message, "Cannot read the drop folder: the last good data stays served");
                }
                scan.folder_problem = Some(problem);
                return new;
            }
        };
        let mut changed = scan.folder_problem.take().is_some();
        scan.files.retain(|name, state| {
            let keep = listing.contains_key(name);
            if !keep {
                changed = true;
                if log {
                    tracing::info!(connector = %self.id, file = %state.path.display(), records = state.good.len(), "File removed from the drop folder: its records are no longer served");
                }
            }
            keep
        });
        for (name, listed) in listing {
            let (path, stamp) = match listed {
                Listed::Present(path, stamp) => (path, stamp),
                Listed::Unreadable(path, problem) => {
                    let state = scan
                        .files
                        .entry(name)
                        .or_insert_with(|| FileState::new(path));
                    changed |= self.note_problem(state, problem, log);
                    continue;
                }
            };
            if scan
                .files
                .get(&name)
                .is_some_and(|f| f.stamp == Some(stamp))
            {
                continue;
            }
            match self.load(&path, stamp) {
                Loaded::Records(records) => {
                    if log {
                        tracing::info!(connector = %self.id, file = %path.display(), records = records.len(), "File read from the drop folder");
                    }
                    let state = scan
                        .files
                        .entry(name)
                        .or_insert_with(|| FileState::new(path));
                    state.stamp = Some(stamp);
                    state.good = records;
                    state.problem = None;
                    changed = true;
                }
                Loaded::Bad(problem) => {
                    let state = scan
                        .files
                        .entry(name)
                        .or_insert_with(|| FileState::new(path));
                    state.stamp = Some(stamp);
                    changed |= self.note_problem(state, problem, log);
                }
                Loaded::Gone => changed |= scan.files.remove(&name).is_some(),
                Loaded::Changing => {
                    tracing::debug!(connector = %self.id, file = %path.display(), "File changed while being read: reading it at the next check");
                }
            }
        }
        changed
    }

    /// Records a file's problem, warning once per distinct problem; its last good records stay.
    fn note_problem(&self, state: &mut FileState, problem: Problem, log: bool) -> bool {
        if state.problem.as_ref() == Some(&problem) {
            return false;
        }
        if log {
            tracing::warn!(
                connector = %self.id,
                file = %problem.file,
                line = problem.line,
                error = %problem.message,
                kept_records = state.good.len(),
                "File not loaded: the last good data of this file stays served"
            );
        }
        state.problem = Some(problem);
        true
    }

    /// The matching files of the folder with their stamps.
    fn list(&self) -> Result<BTreeMap<String, Listed>, Problem> {
        let unreadable = |e: std::io::Error| {
            Problem::new(&self.folder, None, format!("cannot read the folder: {e}"))
        };
        let mut listing = BTreeMap::new();
        for entry in std::fs::read_dir(&self.folder).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(['.', '~']) || !glob_matches(&self.settings.pattern, &name) {
                continue;
            }
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    listing.insert(name, Listed::Present(path, Stamp::of(&m)));
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    let problem = Problem::new(&path, None, format!("cannot read the file: {e}"));
                    listing.insert(name, Listed::Unreadable(path, problem));
                }
            }
        }
        Ok(listing)
    }

    fn load(&self, path: &Path, stamp: Stamp) -> Loaded {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Loaded::Gone,
            Err(e) => {
                return Loaded::Bad(Problem::new(
                    path,
                    None,
                    format!("cannot read the file: {e}"),
                ))
            }
        };
        match std::fs::metadata(path) {
            Ok(m) if Stamp::of(&m) == stamp => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Loaded::Gone,
            _ => return Loaded::Changing,
        }
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = decode(&bytes);
        let parsed = match self.settings.format {
            FileFormat::Csv => parse_csv(&self.settings, &name, &text),
            FileFormat::Json => parse_json(&self.settings, &name, &text),
        };
        match parsed {
            Ok(records) => Loaded::Records(records),
            Err(bad) => Loaded::Bad(Problem::new(path, bad.line, bad.message)),
        }
    }

    /// Rebuilds the served index from every file's last good records.
    fn publish(&self, scan: &Scan) {
        let mut records = HashMap::new();
        let mut overridden = 0usize;
        for state in scan.files.values() {
            for (key, located) in &state.good {
                if records.insert(key.clone(), Arc::clone(located)).is_some() {
                    overridden += 1;
                }
            }
        }
        if overridden > 0 {
            tracing::warn!(connector = %self.id, cases = overridden, "Several files hold the same cases: the file whose name sorts last wins");
        }
        let index = Arc::new(Index {
            records,
            problems: scan.problems(),
        });
        *self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = index;
    }
}

impl FileState {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            stamp: None,
            good: Vec::new(),
            problem: None,
        }
    }
}

#[async_trait]
impl Connector for FileConnector {
    async fn fetch(&self, keys: &[String]) -> Result<Fetched, ConnectorError> {
        let index = self.shared.index();
        let found: Vec<&Arc<Located>> = keys.iter().filter_map(|k| index.records.get(k)).collect();
        // A file that cannot be read might hold the cases no other file holds: they are not
        // known to be unknown.
        let incomplete = index.problems.first().map(|problem| {
            ConnectorError::bad_response(format!(
                "connector {}: {} file(s) of the drop folder cannot be read ({problem}), so a case they may hold cannot be looked up",
                self.shared.id,
                index.problems.len()
            ))
        });
        Ok(Fetched {
            raw: Value::Array(
                found
                    .iter()
                    .map(|l| json!({ "source": l.source, "record": l.record }))
                    .collect(),
            ),
            records: found.iter().map(|l| l.record.clone()).collect(),
            incomplete,
        })
    }

    async fn probe(&self) -> Result<(), ConnectorError> {
        let shared = &self.shared;
        let _listing = tokio::fs::read_dir(&shared.folder).await.map_err(|e| {
            ConnectorError::unavailable(format!(
                "connector {}: cannot read the folder {}: {e}",
                shared.id,
                shared.folder.display()
            ))
        })?;
        let problems = self.last_reload_errors();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::unavailable(format!(
                "connector {}: {}",
                shared.id,
                problems.join("; ")
            )))
        }
    }
}

/// `*` matches any run of characters; everything else matches itself, ignoring case.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if p.get(pi) == Some(&'*') {
            star = Some((pi, ni));
            pi += 1;
        } else if p.get(pi) == Some(&n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The parts of a JSON pointer: "/juridiction/nom" → ["juridiction", "nom"].
fn pointer_path(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// UTF-8 without its byte-order mark, or else Windows-1252 (what Excel writes as plain "CSV").
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| windows_1252(b)).collect()),
    }
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}',
        '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}',
        '\u{178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// JSON: a top-level array, or the records where the mapping's `records` points; each record
/// must have its key, once.
fn parse_json(
    settings: &Settings,
    name: &str,
    text: &str,
) -> Result<Vec<(String, Arc<Located>)>, Bad> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        // serde_json ends its message with the position, which the problem already carries.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        Bad::at(
            e.line() as u64,
            format!("not valid JSON (column {}): {message}", e.column()),
        )
    })?;
    let mapping = &settings.mapping;
    let items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        _ => mapping.records(&value).map_err(|e| {
            Bad::whole(format!("{e}: the file must hold an array of cases, or an object with the array where [mapping] records points"))
        })?,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, record) in items.into_iter().enumerate() {
        let n = i + 1;
        let key = mapping
            .key_of(record)
            .map_err(|e| Bad::whole(format!("case {n} of the file: {e}")))?;
        if let Some(first) = seen.insert(key.clone(), n) {
            return Err(Bad::whole(format!(
                "cases {first} and {n} of the file have the same key: a file holds each case once"
            )));
        }
        out.push((
            key,
            Arc::new(Located {
                source: format!("{name} case {n}"),
                record: record.clone(),
            }),
        ));
    }
    Ok(out)
}

/// How one CSV column becomes part of a record.
#[derive(Debug)]
enum Column {
    /// No header: the column is ignored.
    Ignored,
    /// A value of the case, at `path`.
    Case { path: Vec<String>, list: bool },
    /// A field, at `path`, of one entry of the list of objects `group`.
    Item {
        group: usize,
        path: Vec<String>,
        list: bool,
    },
}

/// What the header line says about the columns.
#[derive(Debug)]
struct Layout {
    headers: Vec<String>,
    columns: Vec<Column>,
    /// Paths of the lists of objects (`accuses` for `accuses[].nom`).
    groups: Vec<Vec<String>>,
    key: usize,
}

/// Whether one path is the other or lies inside it (then a value would also be a group).
fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn layout(settings: &Settings, headers: &csv::StringRecord, line: u64) -> Result<Layout, Bad> {
    let mut columns = Vec::with_capacity(headers.len());
    let mut groups: Vec<Vec<String>> = Vec::new();
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_string()).collect();
    for name in &names {
        if name.is_empty() {
            columns.push(Column::Ignored);
            continue;
        }
        let mut parts: Vec<&str> = name.split('.').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty() || *p == "[]") {
            return Err(Bad::at(
                line,
                format!("column `{name}`: a part of the name between dots is empty"),
            ));
        }
        let last = parts.len() - 1;
        let list = parts[last].ends_with("[]");
        if let Some(stripped) = parts[last].strip_suffix("[]") {
            parts[last] = stripped;
        }
        let marked: Vec<usize> = (0..last).filter(|&i| parts[i].ends_with("[]")).collect();
        let clean = |ps: &[&str]| -> Vec<String> {
            ps.iter()
                .map(|p| p.trim_end_matches("[]").to_string())
                .collect()
        };
        if parts
            .iter()
            .any(|p| p.trim_end_matches("[]").contains("[]"))
            || marked.len() > 1
        {
            return Err(Bad::at(
                line,
                format!(
                    "column `{name}`: write lists of objects as `list[].field`, with a single `[]`"
                ),
            ));
        }
        match marked.first() {
            Some(&g) => {
                let group_path = clean(&parts[..=g]);
                let group = groups
                    .iter()
                    .position(|p| *p == group_path)
                    .unwrap_or_else(|| {
                        groups.push(group_path);
                        groups.len() - 1
                    });
                columns.push(Column::Item {
                    group,
                    path: clean(&parts[g + 1..]),
                    list,
                });
            }
            None => {
                let path = clean(&parts);
                let list = list || settings.charges_path.as_ref() == Some(&path);
                columns.push(Column::Case { path, list });
            }
        }
    }
    // A name may not be both a value and a group, nor appear twice.
    let mut seen: Vec<(&[String], &str)> = Vec::new();
    for (column, name) in columns.iter().zip(&names) {
        if let Column::Case { path, .. } = column {
            seen.push((path, name));
        }
    }
    for (g, path) in groups.iter().enumerate() {
        let name = columns
            .iter()
            .zip(&names)
            .find(|(c, _)| matches!(c, Column::Item { group, .. } if *group == g))
            .map_or("", |(_, n)| n);
        seen.push((path, name));
    }
    check_overlaps(&seen, line)?;
    for g in 0..groups.len() {
        let fields: Vec<(&[String], &str)> = columns
            .iter()
            .zip(&names)
            .filter_map(|(c, n)| match c {
                Column::Item { group, path, .. } if *group == g => {
                    Some((path.as_slice(), n.as_str()))
                }
                _ => None,
            })
            .collect();
        check_overlaps(&fields, line)?;
    }
    let key_name = settings.key_path.join(".");
    let is_key = |c: &Column| matches!(c, Column::Case { path, .. } if *path == settings.key_path);
    let Some(key) = columns.iter().position(is_key) else {
        let mut message = format!(
            "no column `{key_name}`, which [mapping] key names to identify the case; \
             the columns are: {}",
            names.join(", ")
        );
        let other_delimiter = [';', ',', '\t', '|']
            .into_iter()
            .find(|d| names[0].contains(*d));
        if let (1, Some(d)) = (names.len(), other_delimiter) {
            let configured = char::from(settings.delimiter);
            message.push_str(&format!(
                " — is the delimiter {d:?} rather than {configured:?}?"
            ));
        }
        return Err(Bad::at(line, message));
    };
    if matches!(columns[key], Column::Case { list: true, .. }) {
        return Err(Bad::at(
            line,
            format!("column `{key_name}` identifies the case: it cannot hold a list"),
        ));
    }
    Ok(Layout {
        headers: names,
        columns,
        groups,
        key,
    })
}

fn check_overlaps(paths: &[(&[String], &str)], line: u64) -> Result<(), Bad> {
    for (i, (a, a_name)) in paths.iter().enumerate() {
        for (b, b_name) in &paths[i + 1..] {
            if a == b {
                return Err(Bad::at(
                    line,
                    format!("columns `{a_name}` and `{b_name}` give the same value twice"),
                ));
            }
            if overlaps(a, b) {
                return Err(Bad::at(
                    line,
                    format!("columns `{a_name}` and `{b_name}` cannot both exist: one would be both a value and a group of values"),
                ));
            }
        }
    }
    Ok(())
}

/// A case being assembled from its lines.
struct Pending {
    line: u64,
    /// Per column: the case value and the line that gave it.
    cells: Vec<Option<(String, u64)>>,
    /// Per group: the entries added by the lines.
    items: Vec<Vec<Value>>,
}

fn csv_error(e: &csv::Error, delimiter: u8) -> Bad {
    let line = e.position().map(csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!(
            "{len} cells where the header line has {expected_len}: check that the delimiter is {:?} and that cells containing it are between double quotes",
            char::from(delimiter)
        ),
        csv::ErrorKind::Io(err) => format!("cannot read the file: {err}"),
        _ => format!("not valid CSV: {e}"),
    };
    Bad { line, message }
}

fn cell_value(settings: &Settings, cell: &str, list: bool) -> Value {
    if !list {
        return Value::String(cell.to_string());
    }
    let items: Vec<&str> = match &settings.list_separator {
        Some(sep) => cell.split(sep.as_str()).collect(),
        None => vec![cell],
    };
    Value::Array(
        items
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
            .collect(),
    )
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let (last, parents) = path
        .split_last()
        .expect("a column name has at least one part");
    let mut at = map;
    for part in parents {
        at = at
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("the header check refuses a name that is both a value and a group");
    }
    at.insert(last.clone(), value);
}

/// CSV: one record per key, merging the lines that share it (see the module documentation).
fn parse_csv(
    settings: &Settings,
    name: &str,
    text: &str,
) -> Result<Vec<(String, Arc<Located>)>, Bad> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(settings.delimiter)
        .trim(csv::Trim::All)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| csv_error(&e, settings.delimiter))?
        .clone();
    if headers.is_empty() {
        return Err(Bad::at(
            1,
            "the file is empty: its first line must name the columns",
        ));
    }
    let header_line = headers.position().map_or(1, csv::Position::line);
    let layout = layout(settings, &headers, header_line)?;
    let mut order: Vec<String> = Vec::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| csv_error(&e, settings.delimiter))?;
        let line = row.position().map_or(0, csv::Position::line);
        if row.iter().all(str::is_empty) {
            continue;
        }
        let key = row.get(layout.key).unwrap_or_default();
        if key.is_empty() {
            return Err(Bad::at(
                line,
                format!(
                    "no value in column `{}`, which identifies the case",
                    layout.headers[layout.key]
                ),
            ));
        }
        let case = pending.entry(key.to_string()).or_insert_with(|| {
            order.push(key.to_string());
            Pending {
                line,
                cells: vec![None; layout.columns.len()],
                items: vec![Vec::new(); layout.groups.len()],
            }
        });
        let mut items = vec![Map::new(); layout.groups.len()];
        for (i, cell) in row.iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            match &layout.columns[i] {
                Column::Ignored => {}
                Column::Case { .. } => match &case.cells[i] {
                    Some((first, first_line)) if first != cell => {
                        return Err(Bad::at(
                            line,
                            format!(
                                "column `{}` differs from line {first_line} for the same case: repeat the same value or leave the cell empty",
                                layout.headers[i]
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => case.cells[i] = Some((cell.to_string(), line)),
                },
                Column::Item { group, path, list } => {
                    insert_path(&mut items[*group], path, cell_value(settings, cell, *list))
                }
            }
        }
        for (group, item) in items.into_iter().enumerate() {
            if !item.is_empty() {
                case.items[group].push(Value::Object(item));
            }
        }
    }
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        let case = pending
            .remove(&key)
            .expect("every key in `order` is pending");
        let mut record = Map::new();
        for (column, cell) in layout.columns.iter().zip(case.cells) {
            if let (Column::Case { path, list }, Some((value, _))) = (column, cell) {
                insert_path(&mut record, path, cell_value(settings, &value, *list));
            }
        }
        for (path, items) in layout.groups.iter().zip(case.items) {
            insert_path(&mut record, path, Value::Array(items));
        }
        let located = Located {
            source: format!("{name} line {}", case.line),
            record: Value::Object(record),
        };
        out.push((key, Arc::new(located)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::error::ConnectorErrorKind;
    use crate::connectors::mapping::{DefendantsMapping, MappingConfig};
    use crate::connectors::model::{CaseStage, CourtType, DefendantStatus, Mapped};
    use crate::connectors::runtime::{ConnectorRuntime, Lookup};
    use crate::connectors::runtime_config::RuntimeConfig;
    use crate::connectors::sealing::Sealing;
    use std::time::Instant;

    /// How long a test waits for the poller (poll_secs = 1) before failing.
    const WAIT: Duration = Duration::from_secs(10);

    fn french_mapping() -> Mapping {
        Mapping::new(MappingConfig {
            records: "/dossiers".into(),
            key: "/numero_onu".into(),
            national_reference: Some("/numero_parquet".into()),
            stage: Some("/etape".into()),
            court_name: Some("/juridiction/nom".into()),
            court_type: Some("/juridiction/type".into()),
            charges: Some("/chefs".into()),
            defendants: Some(DefendantsMapping {
                list: "/accuses".into(),
                national_status: None,
                name: Some("/nom".into()),
                status: Some("/situation".into()),
                in_absentia: Some("/par_defaut".into()),
                verdict: None,
                sentence: None,
                marking: Some("/diffusion".into()),
            }),
            field_markings: crate::connectors::mapping::FieldMarkingsMapping {
                court: Some("/juridiction/diffusion".into()),
                ..Default::default()
            },
            stages: [
                (
                    "Information judiciaire".to_string(),
                    CaseStage::UnderInvestigation,
                ),
                (
                    "Renvoi devant la cour d'assises".to_string(),
                    CaseStage::TrialScheduled,
                ),
                (
                    "Classement sans suite".to_string(),
                    CaseStage::ClosedNoSuspect,
                ),
                ("Arrêt rendu".to_string(), CaseStage::Judgment),
            ]
            .into(),
            defendant_statuses: [
                ("En fuite".to_string(), DefendantStatus::AtLarge),
                ("Détenu".to_string(), DefendantStatus::InCustody),
                ("Condamné".to_string(), DefendantStatus::Convicted),
            ]
            .into(),
            court_types: [
                ("Cour d'assises".to_string(), CourtType::Civilian),
                ("Tribunal militaire".to_string(), CourtType::Military),
            ]
            .into(),
            ..Default::default()
        })
    }

    fn csv_config(folder: &str) -> FileConfig {
        FileConfig {
            folder: folder.into(),
            format: FileFormat::Csv,
            pattern: None,
            delimiter: Some(";".into()),
            list_separator: Some("|".into()),
            poll_secs: Some(1),
        }
    }

    fn json_config(folder: &str) -> FileConfig {
        FileConfig {
            format: FileFormat::Json,
            delimiter: None,
            list_separator: None,
            ..csv_config(folder)
        }
    }

    /// A connector folder with a `depot` drop folder inside, as a host state would lay it out.
    fn depot() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let depot = dir.path().join("depot");
        std::fs::create_dir(&depot).expect("create depot");
        (dir, depot)
    }

    fn connector(dir: &tempfile::TempDir, config: FileConfig) -> FileConnector {
        FileConnector::new("mli-fichiers", config, french_mapping(), dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn record(c: &FileConnector, key: &str) -> Option<Value> {
        let fetched = c
            .fetch(&[key.to_string()])
            .await
            .expect("fetch answers from memory");
        assert!(fetched.records.len() <= 1, "{:?}", fetched.records);
        fetched.records.into_iter().next()
    }

    async fn stage(c: &FileConnector, key: &str) -> Option<Mapped<CaseStage>> {
        let r = record(c, key).await?;
        french_mapping().apply(&r).expect("maps").0.stage
    }

    /// Waits, up to [`WAIT`], for the poller to make `done` true.
    macro_rules! eventually {
        ($what:literal, $done:expr) => {{
            let deadline = Instant::now() + WAIT;
            while !$done {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting until {}",
                    $what
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }};
    }

    const CASES: &str = "\
numero_onu ; numero_parquet ; etape ; juridiction.nom ; juridiction.type ; chefs ; accuses[].nom ; accuses[].situation ; accuses[].par_defaut
MINUSMA-20150528;RP-12/2015;Information judiciaire;Pôle judiciaire spécialisé;Cour d’assises;assassinat | terrorisme;;;
MINUSCA-20170508;RP-3/2017;renvoi devant la cour d'assises;Cour d'assises de Bangui;cour d'assises;association de malfaiteurs;A. Ndjadder;Détenu;non
";

    #[tokio::test]
    async fn a_semicolon_csv_with_french_headers_maps_onto_proceedings_through_the_runtime() {
        let (dir, depot) = depot();
        std::fs::write(depot.join("export.csv"), CASES).expect("write");
        let c = connector(&dir, csv_config("depot"));
        let runtime = ConnectorRuntime::new(
            "mli-fichiers",
            Arc::new(c),
            french_mapping(),
            RuntimeConfig::default(),
            Sealing::markings(&["SCELLÉ"]),
        );
        let keys = ["MINUSMA-20150528", "MINUSCA-20170508", "MINUSMA-20990101"].map(String::from);
        let found = runtime.lookup(&keys).await;

        let Some(Lookup::Found(bamako)) = found.get("MINUSMA-20150528") else {
            panic!("{found:?}")
        };
        let p = &bamako.proceedings;
        assert_eq!(p.stage, Some(Mapped::Known(CaseStage::UnderInvestigation)));
        assert_eq!(p.national_reference.as_deref(), Some("RP-12/2015"));
        assert_eq!(
            p.court.as_ref().and_then(|c| c.name.as_deref()),
            Some("Pôle judiciaire spécialisé")
        );
        assert_eq!(
            p.court.as_ref().and_then(|c| c.court_type.clone()),
            Some(Mapped::Known(CourtType::Civilian))
        );
        assert_eq!(
            p.charges,
            ["assassinat", "terrorisme"],
            "the charges column is a list"
        );
        assert!(p.defendants.is_empty());

        let Some(Lookup::Found(bangui)) = found.get("MINUSCA-20170508") else {
            panic!("{found:?}")
        };
        let p = &bangui.proceedings;
        assert_eq!(p.stage, Some(Mapped::Known(CaseStage::TrialScheduled)));
        assert_eq!(p.charges, ["association de malfaiteurs"]);
        assert_eq!(p.defendants.len(), 1);
        assert_eq!(p.defendants[0].name.as_deref(), Some("A. Ndjadder"));
        assert_eq!(
            p.defendants[0].status,
            Some(Mapped::Known(DefendantStatus::InCustody))
        );
        assert_eq!(p.defendants[0].in_absentia, Some(false));

        assert!(
            matches!(found.get("MINUSMA-20990101"), Some(Lookup::NotKnown)),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn csv_columns_mark_a_field_and_a_defendant_and_sealed_ones_never_reach_the_cache() {
        let (dir, depot) = depot();
        let text = "\
numero_onu;etape;juridiction.nom;juridiction.diffusion;chefs;accuses[].nom;accuses[].situation;accuses[].diffusion
MINUSCA-20170508;Information judiciaire;Tribunal PLANTED-COURT;scellé;assassinat;A. Ouvert;Détenu;
MINUSCA-20170508;;;;;B. Confidentiel;Détenu;CONFIDENTIEL
MINUSCA-20170508;;;;;C. PLANTED-DEFENDANT;Détenu;Scellé
";
        std::fs::write(depot.join("export.csv"), text).expect("write");
        let runtime = ConnectorRuntime::new(
            "caf-fichiers",
            Arc::new(connector(&dir, csv_config("depot"))),
            french_mapping(),
            RuntimeConfig::default(),
            Sealing::markings(&["SCELLÉ"]),
        );
        let key = "MINUSCA-20170508".to_string();
        let found = runtime.lookup(std::slice::from_ref(&key)).await;
        let Some(Lookup::Found(served)) = found.get(&key) else {
            panic!("{found:?}")
        };
        let p = &served.proceedings;
        assert_eq!(p.court, None, "the sealed court is emptied");
        assert!(p.sealed_parts && !p.sealed, "{p:?}");
        let names: Vec<_> = p.defendants.iter().filter_map(|d| d.name.clone()).collect();
        assert_eq!(names, ["A. Ouvert", "B. Confidentiel"]);
        assert_eq!(p.defendants[0].marking, None);
        assert_eq!(p.defendants[1].marking.as_deref(), Some("CONFIDENTIEL"));
        assert_eq!(p.charges, ["assassinat"], "unmarked fields are kept");
        let (cached, _) = runtime.cached(&key).await.expect("cached");
        let cached = format!("{cached:?}");
        for planted in ["PLANTED-COURT", "PLANTED-DEFENDANT", "scellé", "Scellé"] {
            assert!(!cached.contains(planted), "{planted} cached: {cached}");
        }
    }

    #[tokio::test]
    async fn unknown_keys_are_absent_from_the_records() {
        let (dir, depot) = depot();
        std::fs::write(depot.join("export.csv"), CASES).expect("write");
        let c = connector(&dir, csv_config("depot"));
        let keys = ["MINUSMA-20990101", "MINUSMA-20150528", "minusma-20150528"].map(String::from);
        let fetched = c.fetch(&keys).await.expect("fetch");
        let got: Vec<String> = fetched
            .records
            .iter()
            .map(|r| french_mapping().key_of(r).expect("key"))
            .collect();
        assert_eq!(got, ["MINUSMA-20150528"], "only the exact known key");
        assert_eq!(
            fetched.raw[0]["source"], "export.csv line 2",
            "raw says where the record came from"
        );
    }

    #[tokio::test]
    async fn repeated_rows_with_the_same_key_merge_their_defendants_into_one_record() {
        let (dir, depot) = depot();
        let text = "\
numero_onu;etape;chefs;accuses[].nom;accuses[].situation;accuses[].chefs[]
MINUSCA-20170508;Arrêt rendu;assassinat|pillage;A. Yékatom;Condamné;assassinat|pillage
MINUSCA-20170508;;;B. Ngaïkosset;En fuite;
MINUSMA-20150528;Information judiciaire;;;;
MINUSCA-20170508;Arrêt rendu;assassinat|pillage;C. Mokom;Condamné;pillage
";
        std::fs::write(depot.join("export.csv"), text).expect("write");
        let c = connector(&dir, csv_config("depot"));

        let bangui = record(&c, "MINUSCA-20170508").await.expect("found");
        assert_eq!(
            bangui["accuses"][0]["chefs"],
            json!(["assassinat", "pillage"]),
            "`[]` field inside a list entry"
        );
        let (p, _) = french_mapping().apply(&bangui).expect("maps");
        assert_eq!(p.stage, Some(Mapped::Known(CaseStage::Judgment)));
        assert_eq!(p.charges, ["assassinat", "pillage"]);
        let names: Vec<_> = p
            .defendants
            .iter()
            .map(|d| d.name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            ["A. Yékatom", "B. Ngaïkosset", "C. Mokom"],
            "in file order, across non-adjacent lines"
        );
        assert_eq!(
            p.defendants[1].status,
            Some(Mapped::Known(DefendantStatus::AtLarge))
        );

        let bamako = record(&c, "MINUSMA-20150528").await.expect("found");
        assert_eq!(
            bamako["accuses"],
            json!([]),
            "a line with empty defendant cells adds no defendant"
        );
    }

    #[tokio::test]
    async fn a_case_value_that_differs_between_its_lines_is_refused_with_both_lines() {
        let (dir, depot) = depot();
        let text = "numero_onu;etape;accuses[].nom\nMINUSCA-20170508;Arrêt rendu;A\nMINUSCA-20170508;Information judiciaire;B\n";
        std::fs::write(depot.join("export.csv"), text).expect("write");
        let err = FileConnector::new("x", csv_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("refused");
        assert!(err.contains("export.csv:3:"), "{err}");
        assert!(err.contains("column `etape` differs from line 2"), "{err}");
        assert!(
            !err.contains("Information judiciaire"),
            "cell values stay out of messages: {err}"
        );
    }

    #[tokio::test]
    async fn a_json_folder_serves_arrays_and_objects_holding_the_records() {
        let (dir, depot) = depot();
        let object = json!({"dossiers": [{"numero_onu": "MINUSMA-20150528", "etape": "Classement sans suite",
            "juridiction": {"nom": "Tribunal militaire de Bamako", "type": "Tribunal militaire"}}]});
        let array = json!([{"numero_onu": "MINUSCA-20170508", "etape": "Arrêt rendu",
            "accuses": [{"nom": "A", "situation": "Condamné"}, {"nom": "B", "situation": "En fuite"}]}]);
        std::fs::write(depot.join("a.json"), object.to_string()).expect("write");
        std::fs::write(
            depot.join("b.JSON"),
            serde_json::to_string_pretty(&array).expect("json"),
        )
        .expect("write");
        std::fs::write(depot.join("notes.txt"), "not json, not read").expect("write");
        let c = connector(&dir, json_config(&depot.display().to_string()));

        assert_eq!(
            stage(&c, "MINUSMA-20150528").await,
            Some(Mapped::Known(CaseStage::ClosedNoSuspect))
        );
        let (p, _) = french_mapping()
            .apply(&record(&c, "MINUSCA-20170508").await.expect("found"))
            .expect("maps");
        assert_eq!(p.stage, Some(Mapped::Known(CaseStage::Judgment)));
        assert_eq!(p.defendants.len(), 2);
        assert!(c.last_reload_errors().is_empty());
        c.probe().await.expect("healthy");
    }

    #[tokio::test]
    async fn a_json_file_with_a_case_without_its_key_is_refused_at_start() {
        let (dir, depot) = depot();
        std::fs::write(
            depot.join("a.json"),
            r#"[{"numero_onu": "MINUSMA-20150528"}, {"etape": "x"}]"#,
        )
        .expect("write");
        let err = FileConnector::new("x", json_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("refused");
        assert!(
            err.contains("a.json: case 2 of the file: a record has no key at `/numero_onu`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_file_changed_on_disk_is_read_again() {
        let (dir, depot) = depot();
        let file = depot.join("export.csv");
        std::fs::write(
            &file,
            "numero_onu;etape\nMINUSMA-20150528;Information judiciaire\n",
        )
        .expect("write");
        let c = connector(&dir, csv_config("depot"));
        assert_eq!(
            stage(&c, "MINUSMA-20150528").await,
            Some(Mapped::Known(CaseStage::UnderInvestigation))
        );

        std::fs::write(&file, "numero_onu;etape\nMINUSMA-20150528;Renvoi devant la cour d'assises\nMINUSMA-20160412;Information judiciaire\n")
            .expect("rewrite");
        eventually!(
            "the new stage is served",
            stage(&c, "MINUSMA-20150528").await == Some(Mapped::Known(CaseStage::TrialScheduled))
        );
        assert!(
            record(&c, "MINUSMA-20160412").await.is_some(),
            "a case added to the file is served"
        );

        std::fs::write(
            depot.join("nouveau.csv"),
            "numero_onu;etape\nMINUSMA-20170101;Arrêt rendu\n",
        )
        .expect("add");
        eventually!(
            "a file added to the folder is served",
            record(&c, "MINUSMA-20170101").await.is_some()
        );
    }

    #[tokio::test]
    async fn a_corrupted_file_keeps_its_last_good_data_served_and_reports_the_error() {
        let (dir, depot) = depot();
        let file = depot.join("export.csv");
        std::fs::write(
            &file,
            "numero_onu;etape\nMINUSMA-20150528;Information judiciaire\n",
        )
        .expect("write");
        let c = connector(&dir, csv_config("depot"));
        c.probe().await.expect("healthy at start");

        std::fs::write(
            &file,
            "numero_onu;etape\nMINUSMA-20150528;Arrêt rendu\nMINUSMA-20160412;Arrêt;rendu\n",
        )
        .expect("corrupt");
        eventually!("the error is reported", !c.last_reload_errors().is_empty());
        let errors = c.last_reload_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("export.csv:3: 3 cells where the header line has 2"),
            "{errors:?}"
        );
        assert_eq!(
            stage(&c, "MINUSMA-20150528").await,
            Some(Mapped::Known(CaseStage::UnderInvestigation)),
            "last good data"
        );
        assert!(
            record(&c, "MINUSMA-20160412").await.is_none(),
            "nothing of the bad version is served"
        );
        let err = c
            .probe()
            .await
            .expect_err("a bad file makes the probe fail");
        assert_eq!(err.kind, ConnectorErrorKind::Unavailable);
        assert!(err.message.contains("export.csv:3"), "{err}");

        std::fs::write(&file, "numero_onu;etape\n;Arrêt rendu\n").expect("key missing");
        eventually!(
            "the new error replaces the old",
            c.last_reload_errors()
                .iter()
                .any(|e| e.contains("no value in column `numero_onu`"))
        );
        assert!(
            c.last_reload_errors()[0].contains("export.csv:2:"),
            "{:?}",
            c.last_reload_errors()
        );
        assert_eq!(
            stage(&c, "MINUSMA-20150528").await,
            Some(Mapped::Known(CaseStage::UnderInvestigation))
        );

        std::fs::write(&file, "numero_onu;etape\nMINUSMA-20150528;Arrêt rendu\n").expect("fix");
        eventually!(
            "the fixed file is served",
            stage(&c, "MINUSMA-20150528").await == Some(Mapped::Known(CaseStage::Judgment))
        );
        assert!(
            c.last_reload_errors().is_empty(),
            "{:?}",
            c.last_reload_errors()
        );
        c.probe().await.expect("healthy again");
    }

    #[tokio::test]
    async fn a_removed_file_stops_serving_its_records() {
        let (dir, depot) = depot();
        std::fs::write(
            depot.join("a.csv"),
            "numero_onu;etape\nMINUSMA-20150528;Information judiciaire\n",
        )
        .expect("write");
        std::fs::write(
            depot.join("b.csv"),
            "numero_onu;etape\nMINUSCA-20170508;Arrêt rendu\n",
        )
        .expect("write");
        let c = connector(&dir, csv_config("depot"));
        assert!(record(&c, "MINUSCA-20170508").await.is_some());

        std::fs::remove_file(depot.join("b.csv")).expect("remove");
        eventually!(
            "the removed file's case is gone",
            record(&c, "MINUSCA-20170508").await.is_none()
        );
        assert!(
            record(&c, "MINUSMA-20150528").await.is_some(),
            "the other file still serves"
        );
        assert!(c.last_reload_errors().is_empty());
    }

    #[tokio::test]
    async fn the_file_whose_name_sorts_last_wins_a_case_held_twice() {
        let (dir, depot) = depot();
        std::fs::write(
            depot.join("export-2024-06.csv"),
            "numero_onu;etape\nMINUSMA-20150528;Arrêt rendu\n",
        )
        .expect("write");
        std::fs::write(
            depot.join("export-2024-05.csv"),
            "numero_onu;etape\nMINUSMA-20150528;Information judiciaire\n",
        )
        .expect("write");
        let c = connector(&dir, csv_config("depot"));
        assert_eq!(
            stage(&c, "MINUSMA-20150528").await,
            Some(Mapped::Known(CaseStage::Judgment))
        );
    }

    #[tokio::test]
    async fn start_up_fails_on_a_missing_folder_or_an_unparsable_file_naming_file_and_line() {
        let (dir, depot) = depot();
        let err = FileConnector::new("x", csv_config("absent"), french_mapping(), dir.path())
            .err()
            .expect("no folder");
        assert!(
            err.contains("absent") && err.contains("cannot read the folder"),
            "{err}"
        );

        std::fs::write(
            depot.join("ok.csv"),
            "numero_onu;etape\nMINUSMA-20150528;Arrêt rendu\n",
        )
        .expect("write");
        std::fs::write(
            depot.join("bad.json.csv"),
            "numero_onu;etape\nMINUSMA-1;a\n\"MINUSMA-2;b\n",
        )
        .expect("write");
        std::fs::write(depot.join("comma.csv"), "numero_onu,etape\nMINUSMA-3,a\n").expect("write");
        let err = FileConnector::new("x", csv_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("bad files");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "every bad file is reported at once: {err}");
        assert!(lines[0].contains("bad.json.csv:3:"), "{err}");
        assert!(
            lines[1].contains("comma.csv:1: no column `numero_onu`")
                && lines[1].contains("is the delimiter ','"),
            "{err}"
        );

        std::fs::write(depot.join("x.json"), "[{\"numero_onu\": \"MINUSMA-1\",}]").expect("write");
        let err = FileConnector::new("x", json_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("bad json");
        assert!(err.contains("x.json:1: not valid JSON (column"), "{err}");
    }

    #[tokio::test]
    async fn a_windows_1252_export_with_a_byte_order_mark_or_list_headers_is_read() {
        let (dir, depot) = depot();
        // "Arrêt rendu" and "cour d’assises" as French Excel saves them.
        let cp1252 = b"numero_onu;etape;juridiction.type;chefs\r\nMINUSMA-20150528;Arr\xEAt rendu;Cour d\x92assises;assassinat\r\n";
        std::fs::write(depot.join("a.csv"), cp1252).expect("write");
        let bom =
            "\u{feff}numero_onu;etape;victimes[]\nMINUSCA-20170508;Information judiciaire;X | Y\n";
        std::fs::write(depot.join("b.csv"), bom).expect("write");
        let c = connector(&dir, csv_config("depot"));
        let (p, _) = french_mapping()
            .apply(&record(&c, "MINUSMA-20150528").await.expect("found"))
            .expect("maps");
        assert_eq!(p.stage, Some(Mapped::Known(CaseStage::Judgment)));
        assert_eq!(
            p.court.and_then(|c| c.court_type),
            Some(Mapped::Known(CourtType::Civilian))
        );
        let b = record(&c, "MINUSCA-20170508")
            .await
            .expect("the BOM does not hide the key column");
        assert_eq!(b["victimes"], json!(["X", "Y"]));
    }

    #[tokio::test]
    async fn header_names_that_are_both_a_value_and_a_group_are_refused() {
        let (dir, depot) = depot();
        std::fs::write(
            depot.join("a.csv"),
            "numero_onu;juridiction;juridiction.nom\nMINUSMA-1;a;b\n",
        )
        .expect("write");
        let err = FileConnector::new("x", csv_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("refused");
        assert!(
            err.contains("a.csv:1: columns `juridiction` and `juridiction.nom` cannot both exist"),
            "{err}"
        );
        std::fs::write(depot.join("a.csv"), "numero_onu;a[].b[].c\nMINUSMA-1;a\n").expect("write");
        let err = FileConnector::new("x", csv_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("refused");
        assert!(err.contains("a single `[]`"), "{err}");
    }

    #[tokio::test]
    async fn dropping_the_connector_stops_its_poller() {
        let (dir, depot) = depot();
        std::fs::write(depot.join("a.csv"), CASES).expect("write");
        let c = connector(&dir, csv_config("depot"));
        let poller = c.poller.abort_handle();
        let shared = Arc::downgrade(&c.shared);
        drop(c);
        eventually!("the poller ends", poller.is_finished());
        eventually!("the data is freed", shared.upgrade().is_none());
    }

    #[test]
    fn building_outside_the_tokio_runtime_is_an_error_not_a_panic() {
        let (dir, _depot) = depot();
        let err = FileConnector::new("x", csv_config("depot"), french_mapping(), dir.path())
            .err()
            .expect("refused");
        assert!(err.contains("tokio runtime"), "{err}");
    }

    #[test]
    fn validation_reports_every_bad_setting_under_file() {
        let mut v = Validation::new();
        FileConfig {
            folder: " ".into(),
            format: FileFormat::Csv,
            pattern: Some("exports/*.csv".into()),
            delimiter: Some(";;".into()),
            list_separator: Some(" ".into()),
            poll_secs: Some(0),
        }
        .validate_into(&mut v);
        let keys: Vec<&str> = v.errors().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "file.folder",
                "file.pattern",
                "file.delimiter",
                "file.list_separator",
                "file.poll_secs"
            ]
        );

        let mut v = Validation::new();
        FileConfig {
            delimiter: Some(";".into()),
            ..json_config("depot")
        }
        .validate_into(&mut v);
        assert_eq!(
            v.errors(),
            [(
                "file.delimiter".to_string(),
                "applies only to format = \"csv\"".to_string()
            )]
        );

        let mut v = Validation::new();
        FileConfig {
            delimiter: None,
            list_separator: Some(",".into()),
            ..csv_config("depot")
        }
        .validate_into(&mut v);
        assert_eq!(
            v.errors()[0].0,
            "file.list_separator",
            "same as the default delimiter"
        );

        let mut v = Validation::new();
        FileConfig {
            delimiter: Some("\t".into()),
            pattern: Some("EXPORT_*.CSV".into()),
            ..csv_config("depot")
        }
        .validate_into(&mut v);
        assert!(v.is_empty(), "{:?}", v.errors());
    }

    #[test]
    fn the_schema_documents_every_field_and_denies_unknown_keys() {
        let schema = schemars::schema_for!(FileConfig).to_value();
        assert_eq!(schema["additionalProperties"], json!(false), "{schema:#}");
        let props = schema["properties"].as_object().expect("properties");
        for field in [
            "folder",
            "format",
            "pattern",
            "delimiter",
            "list_separator",
            "poll_secs",
        ] {
            let described = props[field]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty());
            assert!(described, "`{field}` has no description: {schema:#}");
        }
        let toml = "folder = \"depot\"\nformat = \"csv\"\ndelimiter = \";\"\n";
        let config: FileConfig = toml_edit::de::from_str(toml).expect("parses");
        assert_eq!(
            (config.format, config.pattern, config.poll_secs),
            (FileFormat::Csv, None, None)
        );
    }

    #[test]
    fn patterns_match_file_names_with_stars_ignoring_case() {
        assert!(glob_matches("*.csv", "Export.CSV"));
        assert!(glob_matches("export_*_mali.csv", "export_2024-06_mali.csv"));
        assert!(glob_matches("*", "anything"));
        assert!(!glob_matches("*.csv", "export.csv.tmp"));
        assert!(!glob_matches("export_*.csv", "other_1.csv"));
    }
}
