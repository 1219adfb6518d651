//! What wraps every connector: the cache (source data only; access rules apply after it),
//! batching into chunks, and a tower stack of kept parts for each upstream call — the circuit
//! breaker ([`super::breaker`]), `tower::retry` with a budget, a bounded wait for a slot of
//! `tower::limit`, the measure of the call, and `tower::timeout` (see [`super::stack`]) — and
//! the health figures.
//!
//! Records are mapped inside the stack (a wrong-shaped answer is a failed call, for the
//! breaker too), and two things happen between mapping and the cache: SEALED content is
//! dropped ([`Sealing`]), and the record is cut down to the fields the lookup asked for, so that
//! a cache entry holds no more than the fields it claims. A record whose values have the wrong
//! types fails alone, at its key; the other records of the answer are served.

use super::breaker::CircuitBreakerLayer;
use super::error::ConnectorError;
use super::mapping::{Mapping, MappingReport};
use super::model::{FieldMask, FreshnessState, Proceedings};
use super::runtime_config::RuntimeConfig;
use super::sealing::Sealing;
use super::stack::{MeasureLayer, Recorder, RetryPolicy, SlotWaitLayer};
use super::Connector;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// A record served to a request, with how fresh it is.
#[derive(Debug, Clone)]
pub struct Served {
    /// The mapped proceedings.
    pub proceedings: Proceedings,
    /// Live, cached or stale.
    pub freshness: FreshnessState,
    /// Age of the data.
    pub age: Duration,
}

/// The outcome of looking one key up.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The system knows the case.
    Found(Arc<Served>),
    /// The system answered and does not know the case.
    NotKnown,
    /// The system failed and nothing usable was cached.
    Failed(ConnectorError),
}

#[derive(Debug)]
struct CacheEntry {
    /// The mapped record, SEALED content already dropped, holding only `fields`. `None`: the
    /// system answered that it does not know the key.
    record: Option<Arc<Proceedings>>,
    fetched_at: Instant,
    /// The parts of the record that were asked for, and the only ones `record` holds.
    fields: FieldMask,
}

/// The public health state of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, serde::Serialize)]
pub enum HealthState {
    /// The last calls succeeded.
    Up,
    /// Recent calls failed, or stale data was served.
    Degraded,
    /// The circuit breaker is open: calls are not sent.
    CircuitOpen,
}

/// The last error a connector met.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    /// Error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// When.
    pub at: SystemTime,
}

#[derive(Debug, Default)]
struct Stats {
    calls: u64,
    failures: u64,
    consecutive_failures: u32,
    stale_served: u64,
    cache_hits: u64,
    last_success: Option<SystemTime>,
    last_error: Option<LastError>,
    latencies_us: VecDeque<u64>,
}

const LATENCY_WINDOW: usize = 1024;

/// Health figures of one connector.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HealthSnapshot {
    /// State.
    pub state: HealthState,
    /// Upstream calls made.
    pub calls: u64,
    /// Upstream calls that failed (after retries).
    pub failures: u64,
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups answered with stale data.
    pub stale_served: u64,
    /// Last successful call.
    pub last_success: Option<SystemTime>,
    /// Last error.
    pub last_error: Option<LastError>,
    /// Latency percentiles of the last calls, in milliseconds: p50, p95, p99.
    pub latency_ms: Option<(f64, f64, f64)>,
}

/// What one call brought back, by key: each record mapped, its SEALED content dropped and cut
/// down to the fields asked; or the error of a record whose values have the wrong types, or of
/// a key the system's answer cannot say it does not know.
type MappedRecords = HashMap<String, Result<Arc<Proceedings>, ConnectorError>>;

/// One attempt's request: the keys of a chunk and the fields to ask for.
#[derive(Clone)]
struct Attempt {
    keys: Arc<[String]>,
    fields: FieldMask,
}

/// A connector with its runtime protections. Cheap to share (`Arc`).
pub struct ConnectorRuntime {
    id: String,
    inner: Arc<dyn Connector>,
    mapping: Mapping,
    sealing: Sealing,
    config: RuntimeConfig,
    cache: moka::future::Cache<String, Arc<CacheEntry>>,
    breaker: CircuitBreakerLayer,
    stack: BoxCloneSyncService<Attempt, MappedRecords, ConnectorError>,
    stats: Arc<Mutex<Stats>>,
}

/// Where the stack's measure reports each call.
struct StatsRecorder(Arc<Mutex<Stats>>);

impl Recorder for StatsRecorder {
    fn call_took(&self, elapsed: Duration) {
        let mut stats = lock(&self.0);
        stats.calls += 1;
        stats
            .latencies_us
            .push_back(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        if stats.latencies_us.len() > LATENCY_WINDOW {
            stats.latencies_us.pop_front();
        }
    }
}

/// The innermost service: one upstream call for a chunk, and its records mapped.
#[derive(Clone)]
struct Call {
    id: Arc<str>,
    inner: Arc<dyn Connector>,
    mapping: Arc<Mapping>,
    sealing: Sealing,
}

impl Call {
    async fn run(self, attempt: Attempt) -> Result<MappedRecords, ConnectorError> {
        let fetched = self
            .inner
            .fetch_fields(&attempt.keys, attempt.fields)
            .await?;
        let mut by_key = MappedRecords::new();
        for record in &fetched.records {
            match self.mapping.apply(record) {
                Ok((proceedings, _)) => {
                    let mut proceedings = self.sealing.apply(proceedings);
                    proceedings.retain_fields(attempt.fields);
                    by_key
                        .entry(proceedings.key.clone())
                        .or_insert_with(|| Ok(Arc::new(proceedings)));
                }
                Err(e) => {
                    let err = ConnectorError::bad_response(format!("connector {}: {e}", self.id));
                    match e.record_key() {
                        // One record of the wrong shape: it fails alone, at its key.
                        Some(key) => {
                            by_key.insert(key.to_string(), Err(err));
                        }
                        // A record no key can be read from could answer any key: the whole
                        // answer is unusable, and none of its keys reads as "not known".
                        None => return Err(err),
                    }
                }
            }
        }
        if let Some(incomplete) = fetched.incomplete {
            for key in attempt.keys.iter() {
                by_key
                    .entry(key.clone())
                    .or_insert_with(|| Err(incomplete.clone()));
            }
        }
        Ok(by_key)
    }
}

impl tower::Service<Attempt> for Call {
    type Response = MappedRecords;
    type Error = ConnectorError;
    type Future = futures::future::BoxFuture<'static, Result<MappedRecords, ConnectorError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        Box::pin(self.clone().run(attempt))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConnectorRuntime {
    /// Wraps a connector; `sealing` says which source markings are SEALED (their content is
    /// dropped before the cache).
    pub fn new(
        id: &str,
        inner: Arc<dyn Connector>,
        mapping: Mapping,
        config: RuntimeConfig,
        sealing: Sealing,
    ) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_live(Duration::from_secs(config.max_stale_secs.max(1)))
            .build();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let breaker = CircuitBreakerLayer::new(
            id,
            config.circuit_failure_threshold,
            Duration::from_secs(config.circuit_open_secs),
        );
        let timeout = Duration::from_millis(config.timeout_ms);
        let call = Call {
            id: id.into(),
            inner: Arc::clone(&inner),
            mapping: Arc::new(mapping.clone()),
            sealing: sealing.clone(),
        };
        let (timeout_id, timeout_ms) = (id.to_string(), config.timeout_ms);
        let stack = tower::ServiceBuilder::new()
            .layer(breaker.clone())
            .retry(RetryPolicy::new(
                config.retries,
                Duration::from_millis(config.retry_backoff_ms),
                config.retry_budget_ratio,
                inner.idempotent(),
            ))
            .layer(SlotWaitLayer::new(
                timeout,
                format!(
                    "connector {id}: all {} connections busy for {} ms",
                    config.max_concurrency, config.timeout_ms
                ),
            ))
            .concurrency_limit(config.max_concurrency)
            .layer(MeasureLayer::new(Arc::new(StatsRecorder(Arc::clone(
                &stats,
            )))))
            .map_err(
                move |e: tower::BoxError| match e.downcast::<ConnectorError>() {
                    Ok(e) => *e,
                    Err(_) => ConnectorError::timeout(format!(
                        "connector {timeout_id}: no answer within {timeout_ms} ms"
                    )),
                },
            )
            .timeout(timeout)
            .service(call);
        Self {
            id: id.to_string(),
            inner,
            mapping,
            sealing,
            config,
            cache,
            breaker,
            stack: BoxCloneSyncService::new(stack),
            stats,
        }
    }

    /// The connector id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The mapping.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The runtime settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Looks keys up: fresh cache entries first, then one upstream call per chunk of
    /// `batch_size` missing keys (chunks run concurrently), then stale entries for keys whose
    /// call failed.
    #[tracing::instrument(skip(self, keys), fields(connector = %self.id, keys = keys.len()))]
    pub async fn lookup(&self, keys: &[String]) -> HashMap<String, Lookup> {
        self.lookup_fields(keys, FieldMask::ALL).await
    }

    /// Like [`ConnectorRuntime::lookup`], for `fields` only: systems that can answer field by
    /// field are asked for those alone, and every record returned holds nothing outside them.
    /// A cached record serves only lookups whose fields it covers.
    #[tracing::instrument(skip(self, keys), fields(connector = %self.id, keys = keys.len()))]
    pub async fn lookup_fields(
        &self,
        keys: &[String],
        asked: FieldMask,
    ) -> HashMap<String, Lookup> {
        // What is asked upstream, and so what a new cache entry holds: systems that answer whole
        // records are asked for everything, so that their entries serve any later lookup.
        let fields = if self.inner.selects_fields() {
            asked
        } else {
            FieldMask::ALL
        };
        let ttl = Duration::from_secs(self.config.cache_ttl_secs);
        let max_stale = Duration::from_secs(self.config.max_stale_secs);
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing: Vec<String> = Vec::new();
        let mut stale: HashMap<String, Arc<CacheEntry>> = HashMap::new();
        for key in keys {
            if out.contains_key(key) || missing.contains(key) {
                continue;
            }
            match self.cache.get(key).await {
                Some(entry) if entry.fetched_at.elapsed() < ttl && entry.fields.covers(asked) => {
                    lock(&self.stats).cache_hits += 1;
                    out.insert(key.clone(), serve(&entry, asked, FreshnessState::Cached));
                }
                Some(entry) => {
                    if entry.fields.covers(asked) {
                        stale.insert(key.clone(), entry);
                    }
                    missing.push(key.clone());
                }
                None => missing.push(key.clone()),
            }
        }
        if missing.is_empty() {
            return out;
        }
        let chunks: Vec<Vec<String>> = missing
            .chunks(self.config.batch_size)
            .map(<[String]>::to_vec)
            .collect();
        let results =
            futures::future::join_all(chunks.iter().map(|chunk| self.fetch_mapped(chunk, fields)))
                .await;
        for (chunk, result) in chunks.into_iter().zip(results) {
            let mut records = match result {
                Ok(records) => records,
                Err(err) => {
                    for key in chunk {
                        out.insert(
                            key.clone(),
                            self.stale_or(&stale, &key, (asked, max_stale), err.clone()),
                        );
                    }
                    continue;
                }
            };
            let now = Instant::now();
            for key in chunk {
                match records.remove(&key) {
                    Some(Err(err)) => {
                        out.insert(
                            key.clone(),
                            self.stale_or(&stale, &key, (asked, max_stale), err),
                        );
                    }
                    found => {
                        let entry = Arc::new(CacheEntry {
                            record: found.and_then(Result::ok),
                            fetched_at: now,
                            fields,
                        });
                        self.cache.insert(key.clone(), Arc::clone(&entry)).await;
                        out.insert(key, serve(&entry, asked, FreshnessState::Live));
                    }
                }
            }
        }
        out
    }

    /// The stale entry of `key` while it is within `max_stale`, else the failure.
    fn stale_or(
        &self,
        stale: &HashMap<String, Arc<CacheEntry>>,
        key: &str,
        (asked, max_stale): (FieldMask, Duration),
        err: ConnectorError,
    ) -> Lookup {
        match stale.get(key) {
            Some(entry) if entry.fetched_at.elapsed() < max_stale => {
                lock(&self.stats).stale_served += 1;
                tracing::warn!(connector = %self.id, code = err.kind.code(), "Serving stale data: the host-state system failed");
                serve(entry, asked, FreshnessState::Stale)
            }
            _ => Lookup::Failed(err),
        }
    }

    /// One protected upstream call for a chunk (the stack of the module documentation),
    /// with its outcome in the health figures. A record of the wrong shape is recorded as the
    /// last error without counting as a failed call.
    async fn fetch_mapped(
        &self,
        keys: &[String],
        fields: FieldMask,
    ) -> Result<MappedRecords, ConnectorError> {
        let attempt = Attempt {
            keys: keys.into(),
            fields,
        };
        let result = self.stack.clone().oneshot(attempt).await;
        match &result {
            Ok(records) => {
                self.record_success();
                if let Some(Err(bad)) = records.values().find(|r| r.is_err()) {
                    self.note_error(bad);
                }
            }
            // Refused by the open circuit: no call was made, nothing failed anew.
            Err(err) if err.kind == super::ConnectorErrorKind::CircuitOpen => {}
            Err(err) => self.record_failure(err),
        }
        result
    }

    fn record_success(&self) {
        let mut stats = lock(&self.stats);
        stats.consecutive_failures = 0;
        stats.last_success = Some(SystemTime::now());
    }

    fn note_error(&self, err: &ConnectorError) {
        lock(&self.stats).last_error = Some(LastError {
            code: err.kind.code(),
            message: err.message.clone(),
            at: SystemTime::now(),
        });
        tracing::warn!(connector = %self.id, code = err.kind.code(), error = %err.message, "A host-state record was refused");
    }

    fn record_failure(&self, err: &ConnectorError) {
        {
            let mut stats = lock(&self.stats);
            stats.failures += 1;
            stats.consecutive_failures += 1;
            stats.last_error = Some(LastError {
                code: err.kind.code(),
                message: err.message.clone(),
                at: SystemTime::now(),
            });
        }
        tracing::warn!(connector = %self.id, code = err.kind.code(), error = %err.message, "Host-state system call failed");
    }

    /// Health figures.
    pub fn health(&self) -> HealthSnapshot {
        let open = self.breaker.is_open();
        let stats = lock(&self.stats);
        let latency_ms = (!stats.latencies_us.is_empty()).then(|| {
            let mut v: Vec<u64> = stats.latencies_us.iter().copied().collect();
            v.sort_unstable();
            let pct = |p: f64| {
                let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
                v[idx.min(v.len() - 1)] as f64 / 1000.0
            };
            (pct(0.50), pct(0.95), pct(0.99))
        });
        let state = if open {
            HealthState::CircuitOpen
        } else if stats.consecutive_failures > 0 {
            HealthState::Degraded
        } else {
            HealthState::Up
        };
        HealthSnapshot {
            state,
            calls: stats.calls,
            failures: stats.failures,
            cache_hits: stats.cache_hits,
            stale_served: stats.stale_served,
            last_success: stats.last_success,
            last_error: stats.last_error.clone(),
            latency_ms,
        }
    }

    /// For `casegraph connector test`: one uncached call for `key`, with the raw response,
    /// each mapped record, what the mapping missed and what the gateway would withhold as
    /// SEALED. The records are shown in full, SEALED content included: this is the host
    /// state's own data, on its own operator's command line; nothing of it is cached.
    pub async fn test(&self, key: &str) -> Result<TestReport, ConnectorError> {
        let fetched = self.inner.fetch(&[key.to_string()]).await?;
        let mut mapped = Vec::new();
        for record in &fetched.records {
            let (proceedings, mut report) = self
                .mapping
                .apply(record)
                .map_err(|e| ConnectorError::bad_response(e.to_string()))?;
            report.sealed = self.sealed_parts_of(&proceedings);
            mapped.push((proceedings, report));
        }
        Ok(TestReport {
            raw: fetched.raw,
            mapped,
        })
    }

    /// What [`Sealing::apply`] would drop from `p`, in words.
    fn sealed_parts_of(&self, p: &Proceedings) -> Vec<String> {
        if p.marking
            .as_deref()
            .is_some_and(|m| self.sealing.is_sealed(m))
        {
            return vec!["the whole record".to_string()];
        }
        let fields = p
            .field_markings
            .iter()
            .filter(|(_, m)| self.sealing.is_sealed(m))
            .map(|(name, _)| format!("field {name}"));
        let defendants = p
            .defendants
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.marking
                    .as_deref()
                    .is_some_and(|m| self.sealing.is_sealed(m))
            })
            .map(|(i, _)| format!("defendant {}", i + 1));
        fields.chain(defendants).collect()
    }

    /// Test support: the record cached for `key` as the cache holds it (mapped, SEALED content
    /// dropped, only the fields it was fetched for), and those fields; `None` when nothing is
    /// cached or the system did not know the key. Reads the cache without counting a hit.
    #[doc(hidden)]
    pub async fn cached(&self, key: &str) -> Option<(Proceedings, FieldMask)> {
        let entry = self.cache.get(key).await?;
        let record = entry.record.as_deref()?.clone();
        Some((record, entry.fields))
    }
}

/// The answer to a lookup from one cache entry, holding only the fields `asked` for.
fn serve(entry: &CacheEntry, asked: FieldMask, freshness: FreshnessState) -> Lookup {
    let Some(record) = &entry.record else {
        return Lookup::NotKnown;
    };
    let proceedings = if asked.covers(entry.fields) {
        Proceedings::clone(record)
    } else {
        let mut p = Proceedings::clone(record);
        p.retain_fields(asked);
        p
    };
    Lookup::Found(Arc::new(Served {
        proceedings,
        freshness,
        age: entry.fetched_at.elapsed(),
    }))
}

/// What `connector test` shows.
#[derive(Debug)]
pub struct TestReport {
    /// The raw upstream response(s).
    pub raw: Value,
    /// Each record mapped (in full), with what was missing, unmapped or would be withheld as
    /// SEALED.
    pub mapped: Vec<(Proceedings, MappingReport)>,
}
