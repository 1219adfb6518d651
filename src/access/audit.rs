//! The audit trail: every read of a field at CASE_PARTIES or above, every denied attempt and
//! every write. Resolvers note what they do in a per-request [`RequestAudit`]; at the end of
//! the request it becomes [`AuditEvent`]s handed to the [`AuditSink`], whose single writer task
//! appends them to the hash-chained log in the store. Requests never wait for the writer.
//!
//! # The hash chain
//!
//! Entry `seq` (1, 2, 3, … without gaps) stores `prev_hash`, the `hash` of entry `seq - 1`
//! ([`GENESIS_HASH`], 64 zeros, for entry 1), and its own `hash`:
//!
//! ```text
//! hash = lowercase_hex(SHA-256(prev_hash || "\n" || canonical_json))
//! ```
//!
//! where `prev_hash` is the 64 ASCII hex characters, `"\n"` one byte 0x0A, and `canonical_json`
//! the UTF-8 bytes of a JSON object with exactly these eight members, keys in this (sorted)
//! order, no whitespace, strings escaped as RFC 8785 (JCS) does (`\"`, `\\`, `\b \f \n \r \t`,
//! other control characters as lowercase `\u00xx`, everything else, non-ASCII included, as is):
//!
//! ```text
//! {"at":"2021-01-13T08:00:00.123Z","case_id":"…"|null,"decision":"READ"|"DENIED"|"WRITE",
//!  "fields":["path",…],"operation":"…","organisation":"…","seq":1,"subject":"…"}
//! ```
//!
//! `at` is RFC 3339 in UTC with exactly three fractional digits and `Z` (as stored);
//! `fields` keeps the stored order; `seq` is a JSON integer. This is the form an external
//! verifier reimplements; [`entry_hash`] computes it and a unit test pins it to fixed values.

use crate::store::{ChainedAuditEntry, Store, StoreError};
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most entries the writer appends in one transaction.
const MAX_BATCH: usize = 500;

/// Entries read per page when walking the chain.
const VERIFY_PAGE: u32 = 1000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditDecision {
    /// Sensitive fields were read.
    Read,
    /// An attempt was refused.
    Denied,
    /// The record was changed.
    Write,
}

impl AuditDecision {
    /// The decision spelled `s` (as stored).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Read, Self::Denied, Self::Write]
            .into_iter()
            .find(|d| d.as_str() == s)
    }

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Denied => "DENIED",
            Self::Write => "WRITE",
        }
    }
}

/// One entry of the audit log, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Token subject.
    pub subject: String,
    /// Organisation.
    pub organisation: String,
    /// GraphQL operation name, or the mutation field.
    pub operation: String,
    /// Case concerned, if any.
    pub case_id: Option<String>,
    /// Field paths read or refused (e.g. `cases.nodes.3.victims.0.name`).
    pub fields: Vec<String>,
    /// Decision.
    pub decision: AuditDecision,
}

/// What one request did, collected while it runs.
#[derive(Debug, Default)]
pub struct RequestAudit {
    reads: Mutex<BTreeMap<String, BTreeSet<String>>>,
    denials: Mutex<BTreeMap<Option<String>, BTreeSet<String>>>,
    writes: Mutex<Vec<(String, Option<String>)>>,
    operation: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RequestAudit {
    /// A sensitive field of `case` was read at `path`.
    pub fn read(&self, case: &str, path: String) {
        lock(&self.reads)
            .entry(case.to_string())
            .or_default()
            .insert(path);
    }

    /// Reading `path` (of `case`, if any) was refused.
    pub fn denied(&self, case: Option<&str>, path: String) {
        lock(&self.denials)
            .entry(case.map(str::to_string))
            .or_default()
            .insert(path);
    }

    /// The request changed the record.
    pub fn write(&self, operation: &str, case: Option<&str>) {
        lock(&self.writes).push((operation.to_string(), case.map(str::to_string)));
    }

    /// The document's only operation is named `name` (clients need not repeat it as
    /// `operationName`).
    pub fn operation_named(&self, name: &str) {
        *lock(&self.operation) = Some(name.to_string());
    }

    /// The events of the request (`operation` names the request's operation unless the
    /// document named its only one, see [`RequestAudit::operation_named`]): one per case read, one per case (or none) denied, one per
    /// write.
    pub fn into_events(
        self,
        subject: &str,
        organisation: &str,
        operation: &str,
    ) -> Vec<AuditEvent> {
        self.take_events(subject, organisation, operation)
    }

    /// Like [`RequestAudit::into_events`], through a shared reference: what was collected so
    /// far is taken out. For a request whose work is cancelled (timeout, client gone) while
    /// resolvers may still hold the collector.
    pub fn take_events(
        &self,
        subject: &str,
        organisation: &str,
        operation: &str,
    ) -> Vec<AuditEvent> {
        let at = Utc::now();
        let named = lock(&self.operation).take();
        let operation = named.as_deref().unwrap_or(operation);
        let event = |case_id: Option<String>, fields: Vec<String>, decision, op: &str| AuditEvent {
            at,
            subject: subject.to_string(),
            organisation: organisation.to_string(),
            operation: op.to_string(),
            case_id,
            fields,
            decision,
        };
        let mut out = Vec::new();
        for (op, case) in std::mem::take(&mut *lock(&self.writes)) {
            out.push(event(case, Vec::new(), AuditDecision::Write, &op));
        }
        for (case, fields) in std::mem::take(&mut *lock(&self.reads)) {
            out.push(event(
                Some(case),
                fields.into_iter().collect(),
                AuditDecision::Read,
                operation,
            ));
        }
        for (case, fields) in std::mem::take(&mut *lock(&self.denials)) {
            out.push(event(
                case,
                fields.into_iter().collect(),
                AuditDecision::Denied,
                operation,
            ));
        }
        out
    }
}

/// What the writer task receives.
#[derive(Debug)]
enum Message {
    /// One request's events.
    Events(Vec<AuditEvent>),
    /// Answer once everything sent before is in the store.
    Flush(oneshot::Sender<()>),
}

/// Where finished requests hand their events. Cloning shares the writer.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: Option<mpsc::UnboundedSender<Message>>,
}

impl AuditSink {
    /// A sink that drops everything (tools and tests that do not audit).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Whether events go anywhere.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands events to the writer without waiting.
    pub fn record(&self, events: Vec<AuditEvent>) {
        if events.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            if tx.send(Message::Events(events)).is_err() {
                tracing::error!("The audit writer has stopped: audit events are being lost");
            }
        }
    }

    /// Waits until every event recorded before this call is in the store (graceful shutdown,
    /// auditors' reads, tests). Returns at once for a disabled sink or a stopped writer; while
    /// the store fails it waits as long as the writer retries, so callers bound it with a
    /// timeout.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The canonical JSON of an entry (see the module documentation): struct members are
/// serialised in declaration order, which is sorted, whatever serde_json's map features.
#[derive(Serialize)]
struct Canonical<'a> {
    at: String,
    case_id: Option<&'a str>,
    decision: &'a str,
    fields: &'a [String],
    operation: &'a str,
    organisation: &'a str,
    seq: i64,
    subject: &'a str,
}

/// The canonical JSON an entry's hash covers (everything but `prev_hash` and `hash`).
pub fn canonical_json(entry: &ChainedAuditEntry) -> String {
    let c = Canonical {
        at: entry.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        case_id: entry.case_id.as_deref(),
        decision: &entry.decision,
        fields: &entry.fields,
        operation: &entry.operation,
        organisation: &entry.organisation,
        seq: entry.seq,
        subject: &entry.subject,
    };
    serde_json::to_string(&c).expect("strings, integers and lists serialise")
}

/// `hex(SHA-256(prev_hash || "\n" || canonical_json(entry)))`: what `entry.hash` must be when
/// it follows `prev_hash`.
pub fn entry_hash(prev_hash: &str, entry: &ChainedAuditEntry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical_json(entry).as_bytes());
    format!("{:x}", h.finalize())
}

/// The end of the chain an appended entry links to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tail {
    seq: i64,
    hash: String,
}

impl Tail {
    fn of(last: Option<&ChainedAuditEntry>) -> Self {
        last.map_or_else(
            || Self {
                seq: 0,
                hash: GENESIS_HASH.to_string(),
            },
            |e| Self {
                seq: e.seq,
                hash: e.hash.clone(),
            },
        )
    }
}

/// Chains `events` after `tail`, in order.
fn chain(tail: &Tail, events: &[AuditEvent]) -> Vec<ChainedAuditEntry> {
    let mut prev = tail.hash.clone();
    events
        .iter()
        .zip(tail.seq + 1..)
        .map(|(e, seq)| {
            let mut entry = ChainedAuditEntry {
                seq,
                // The stored form has milliseconds: hash what is stored.
                at: e.at.trunc_subsecs(3),
                subject: e.subject.clone(),
                organisation: e.organisation.clone(),
                operation: e.operation.clone(),
                case_id: e.case_id.clone(),
                fields: e.fields.clone(),
                decision: e.decision.as_str().to_string(),
                prev_hash: std::mem::take(&mut prev),
                hash: String::new(),
            };
            entry.hash = entry_hash(&entry.prev_hash, &entry);
            prev.clone_from(&entry.hash);
            entry
        })
        .collect()
}

/// Starts the audit writer over `store` and returns the sink requests feed.
///
/// One task owns the end of the chain: it reads the last stored entry once, then takes
/// whatever requests have sent (up to 500 entries), chains it in memory and appends
/// it in one transaction. Requests only send on an unbounded channel, so they never wait for
/// the store; a failed append is retried with backoff, in order, so no seq is ever skipped.
pub async fn start(store: Arc<dyn Store>) -> Result<AuditSink, crate::GatewayError> {
    let last = store
        .last_audit_entry()
        .await
        .map_err(|e| crate::GatewayError::Audit(e.to_string()))?;
    let tail = Tail::of(last.as_ref());
    tracing::info!(last_seq = tail.seq, "Audit log writer started");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(store, rx, tail));
    Ok(AuditSink { tx: Some(tx) })
}

/// The writer task: runs until every sink is dropped and the channel is drained.
async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    mut tail: Tail,
) {
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Events(e) => events.extend(e),
                Message::Flush(done) => flushed.push(done),
            }
            if events.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !events.is_empty() {
            tail = append_in_order(store.as_ref(), tail, &events).await;
            events.clear();
        }
        // Everything sent before these markers is now stored.
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
    tracing::info!(last_seq = tail.seq, "Audit log writer stopped");
}

/// Appends `events` after `tail`, retrying until the store takes them; returns the new tail.
async fn append_in_order(store: &dyn Store, mut tail: Tail, events: &[AuditEvent]) -> Tail {
    let mut backoff = Duration::from_millis(100);
    let mut entries = chain(&tail, events);
    loop {
        let error = match store.append_audit(&entries).await {
            Ok(()) => return Tail::of(entries.last()),
            Err(e) => e,
        };
        tracing::error!(error = %error, first_seq = entries[0].seq, entries = entries.len(), retry_in_ms = backoff.as_millis() as u64, "Appending to the audit log failed: retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
        // Find out where the log ends now: the failed commit may have gone through, or
        // another replica's writer may have appended first.
        let stored = match store.last_audit_entry().await {
            Ok(last) => Tail::of(last.as_ref()),
            Err(_) => continue,
        };
        if stored == Tail::of(entries.last()) {
            return stored;
        }
        if stored != tail {
            if stored.seq < tail.seq {
                tracing::error!(
                    stored_seq = stored.seq,
                    written_seq = tail.seq,
                    "The audit log ends before entries this gateway wrote: entries were removed"
                );
            }
            tail = stored;
            entries = chain(&tail, events);
        }
    }
}

/// Why a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry's content does not match its hash.
    Modified,
    /// The entry's seq is not the next one: entries before it are missing.
    MissingEntryBefore,
    /// The entry's `prev_hash` is not the previous entry's hash.
    PrevHashMismatch,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Modified => "modified",
            Self::MissingEntryBefore => "missing entry before",
            Self::PrevHashMismatch => "prev_hash does not match",
        })
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every entry links to the one before and matches its hash.
    Intact {
        /// Entries checked.
        entries: u64,
        /// Hash of the last entry ([`GENESIS_HASH`] for an empty log): publish it elsewhere to
        /// detect a truncated tail later.
        last_hash: String,
    },
    /// The first entry that does not fit.
    Broken {
        /// Its seq.
        seq: i64,
        /// What is wrong with it.
        reason: ChainBreak,
    },
}

/// Walks the whole audit log in seq order, one page at a time, recomputing every hash.
pub async fn verify(store: &dyn Store) -> Result<Verification, StoreError> {
    let mut tail = Tail::of(None);
    let mut entries = 0u64;
    loop {
        let page = store.audit_chain(Some(tail.seq), VERIFY_PAGE).await?;
        if page.is_empty() {
            return Ok(Verification::Intact {
                entries,
                last_hash: tail.hash,
            });
        }
        for e in page {
            let reason = if e.seq != tail.seq + 1 {
                Some(ChainBreak::MissingEntryBefore)
            } else if e.prev_hash != tail.hash {
                Some(ChainBreak::PrevHashMismatch)
            } else if entry_hash(&e.prev_hash, &e) != e.hash {
                Some(ChainBreak::Modified)
            } else {
                None
            };
            if let Some(reason) = reason {
                return Ok(Verification::Broken { seq: e.seq, reason });
            }
            entries += 1;
            tail = Tail {
                seq: e.seq,
                hash: e.hash,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(
        subject: &str,
        case: Option<&str>,
        fields: &[&str],
        decision: AuditDecision,
    ) -> AuditEvent {
        AuditEvent {
            at: Utc
                .with_ymd_and_hms(2021, 1, 13, 8, 0, 0)
                .single()
                .expect("valid")
                + chrono::Duration::microseconds(123_456),
            subject: subject.into(),
            organisation: "UN".into(),
            operation: "Case".into(),
            case_id: case.map(str::to_string),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            decision,
        }
    }

    #[test]
    fn the_canonical_form_and_hashes_are_fixed() {
        let events = [
            event(
                "officer-1",
                Some("c-1"),
                &["case.summary", "case.victims.0.name"],
                AuditDecision::Read,
            ),
            event("analyst \"é\"\n", None, &[], AuditDecision::Denied),
        ];
        let entries = chain(&Tail::of(None), &events);
        assert_eq!(
            canonical_json(&entries[0]),
            r#"{"at":"2021-01-13T08:00:00.123Z","case_id":"c-1","decision":"READ","fields":["case.summary","case.victims.0.name"],"operation":"Case","organisation":"UN","seq":1,"subject":"officer-1"}"#
        );
        assert_eq!(
            canonical_json(&entries[1]),
            "{\"at\":\"2021-01-13T08:00:00.123Z\",\"case_id\":null,\"decision\":\"DENIED\",\"fields\":[],\"operation\":\"Case\",\"organisation\":\"UN\",\"seq\":2,\"subject\":\"analyst \\\"é\\\"\\n\"}"
        );
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
        // sha256("0"*64 + "\n" + canonical_json(entries[0])), computed independently.
        assert_eq!(entries[0].hash, EXPECTED_FIRST_HASH);
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        assert_eq!(entries[1].hash, EXPECTED_SECOND_HASH);
    }

    const EXPECTED_FIRST_HASH: &str =
        "9139b174e494392fad3f8fe74d168f87be78bb4237c6ba88f61f01a9639211e0";
    const EXPECTED_SECOND_HASH: &str =
        "9f28412fafbabc9ab7f10db9842ee9361efa1d85228133e326c265f99d2fdfbe";

    #[test]
    fn a_changed_field_changes_the_hash() {
        let entries = chain(
            &Tail::of(None),
            &[event("a", Some("c"), &["x"], AuditDecision::Write)],
        );
        let mut changed = entries[0].clone();
        changed.subject = "b".into();
        assert_ne!(entry_hash(GENESIS_HASH, &changed), entries[0].hash);
    }

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        crate::store::connect(&url, 4)
            .await
            .expect("a fresh SQLite store opens")
    }

    #[tokio::test]
    async fn the_writer_chains_batches_and_continues_the_chain_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(&dir).await;
        let sink = start(Arc::clone(&store)).await.expect("the writer starts");
        for i in 0..5 {
            sink.record(vec![
                event(
                    &format!("s{i}"),
                    Some("c"),
                    &["f"],
                    AuditDecision::Read
                );
                2
            ]);
        }
        sink.flush().await;
        drop(sink);
        let again = start(Arc::clone(&store))
            .await
            .expect("the writer restarts");
        again.record(vec![event(
            "after-restart",
            None,
            &[],
            AuditDecision::Write,
        )]);
        again.flush().await;
        let chain = store.audit_chain(None, 100).await.expect("chain");
        assert_eq!(
            chain.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=11).collect::<Vec<_>>()
        );
        assert_eq!(chain[10].subject, "after-restart");
        assert_eq!(
            verify(store.as_ref()).await.expect("verify"),
            Verification::Intact {
                entries: 11,
                last_hash: chain[10].hash.clone()
            }
        );
    }

    #[tokio::test]
    async fn two_writers_on_one_store_rechain_instead_of_forking() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(&dir).await;
        // Two replicas start on the same (empty) log: both believe the next seq is 1.
        let (a, b) = (
            start(Arc::clone(&store)).await.expect("a"),
            start(Arc::clone(&store)).await.expect("b"),
        );
        a.record(vec![event("a", None, &[], AuditDecision::Denied)]);
        a.flush().await;
        b.record(vec![event("b", None, &[], AuditDecision::Denied)]);
        b.flush().await;
        let chain = store.audit_chain(None, 10).await.expect("chain");
        assert_eq!(
            chain
                .iter()
                .map(|e| (e.seq, e.subject.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "a"), (2, "b")]
        );
        assert!(matches!(
            verify(store.as_ref()).await.expect("verify"),
            Verification::Intact { entries: 2, .. }
        ));
    }

    #[tokio::test]
    async fn a_disabled_sink_flushes_at_once() {
        let sink = AuditSink::disabled();
        sink.record(vec![event("x", None, &[], AuditDecision::Read)]);
        sink.flush().await;
        assert!(!sink.enabled());
    }
}
