//! What wraps every connector: the cache (source data only; access rules apply after it),
//! batching into chunks, timeout, bounded retries with a retry budget, the circuit breaker,
//! the concurrency limit, and the health figures.
//!
//! Records are mapped before they are cached, and two things happen between mapping and the
//! cache: SEALED content is dropped ([`Sealing`]), and the record is cut down to the fields the
//! lookup asked for, so that a cache entry holds no more than the fields it claims.

use super::error::{ConnectorError, ConnectorErrorKind};
use super::mapping::{Mapping, MappingReport};
use super::model::{FieldMask, FreshnessState, Proceedings};
use super::runtime_config::RuntimeConfig;
use super::sealing::Sealing;
use super::Connector;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

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

/// Circuit breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
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

/// A connector with its runtime protections. Cheap to share (`Arc`).
pub struct ConnectorRuntime {
    id: String,
    inner: Arc<dyn Connector>,
    mapping: Mapping,
    sealing: Sealing,
    config: RuntimeConfig,
    cache: moka::future::Cache<String, Arc<CacheEntry>>,
    breaker: Mutex<Breaker>,
    semaphore: Semaphore,
    budget: Mutex<f64>,
    stats: Mutex<Stats>,
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
        Self {
            id: id.to_string(),
            inner,
            mapping,
            sealing,
            semaphore: Semaphore::new(config.max_concurrency),
            budget: Mutex::new(config.retries as f64),
            config,
            cache,
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            stats: Mutex::new(Stats::default()),
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
            match result {
                Ok(records) => {
                    let now = Instant::now();
                    for key in chunk {
                        let entry = Arc::new(CacheEntry {
                            record: records.get(&key).cloned(),
                            fetched_at: now,
                            fields,
                        });
                        self.cache.insert(key.clone(), Arc::clone(&entry)).await;
                        out.insert(key, serve(&entry, asked, FreshnessState::Live));
                    }
                }
                Err(err) => {
                    for key in chunk {
                        match stale.get(&key) {
                            Some(entry) if entry.fetched_at.elapsed() < max_stale => {
                                lock(&self.stats).stale_served += 1;
                                tracing::warn!(connector = %self.id, code = err.kind.code(), "Serving stale data: the host-state system failed");
                                out.insert(key, serve(entry, asked, FreshnessState::Stale));
                            }
                            _ => {
                                out.insert(key, Lookup::Failed(err.clone()));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// One protected upstream call for a chunk: each record mapped, its SEALED content
    /// dropped and cut down to `fields`, indexed by key. The national JSON goes no further.
    async fn fetch_mapped(
        &self,
        keys: &[String],
        fields: FieldMask,
    ) -> Result<HashMap<String, Arc<Proceedings>>, ConnectorError> {
        let fetched = self.call(keys, fields).await?;
        let mut by_key = HashMap::new();
        for record in &fetched.records {
            let (proceedings, _) = self.mapping.apply(record).map_err(|e| {
                self.fail_after_call(ConnectorError::bad_response(format!(
                    "connector {}: {e}",
                    self.id
                )))
            })?;
            let mut proceedings = self.sealing.apply(proceedings);
            proceedings.retain_fields(fields);
            if let std::collections::hash_map::Entry::Vacant(slot) =
                by_key.entry(proceedings.key.clone())
            {
                slot.insert(Arc::new(proceedings));
            }
        }
        Ok(by_key)
    }

    fn fail_after_call(&self, err: ConnectorError) -> ConnectorError {
        self.record_failure(&err);
        err
    }

    /// Calls the connector through the breaker, the concurrency limit, the timeout and the
    /// retry policy.
    pub(crate) async fn call(
        &self,
        keys: &[String],
        fields: FieldMask,
    ) -> Result<super::Fetched, ConnectorError> {
        if !self.breaker_allows() {
            let err = ConnectorError::new(
                ConnectorErrorKind::CircuitOpen,
                format!(
                    "connector {}: circuit open after repeated failures; not called",
                    self.id
                ),
            );
            return Err(err);
        }
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout, self.semaphore.acquire()).await {
                Err(_) | Ok(Err(_)) => Err(ConnectorError::unavailable(format!(
                    "connector {}: all {} connections busy for {} ms",
                    self.id, self.config.max_concurrency, self.config.timeout_ms
                ))),
                Ok(Ok(_permit)) => {
                    match tokio::time::timeout(timeout, self.inner.fetch_fields(keys, fields)).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(ConnectorError::timeout(format!(
                            "connector {}: no answer within {} ms",
                            self.id, self.config.timeout_ms
                        ))),
                    }
                }
            };
            {
                let mut stats = lock(&self.stats);
                stats.calls += 1;
                stats
                    .latencies_us
                    .push_back(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
                if stats.latencies_us.len() > LATENCY_WINDOW {
                    stats.latencies_us.pop_front();
                }
            }
            match result {
                Ok(fetched) => {
                    self.record_success();
                    return Ok(fetched);
                }
                Err(err)
                    if err.kind.retryable()
                        && self.inner.idempotent()
                        && attempt < self.config.retries
                        && self.take_retry_token() =>
                {
                    attempt += 1;
                    let backoff = self
                        .config
                        .retry_backoff_ms
                        .saturating_mul(1 << (attempt - 1).min(10));
                    tracing::debug!(connector = %self.id, attempt, code = err.kind.code(), "Retrying a failed call");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(err) => {
                    self.record_failure(&err);
                    return Err(err);
                }
            }
        }
    }

    fn take_retry_token(&self) -> bool {
        let mut tokens = lock(&self.budget);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn breaker_allows(&self) -> bool {
        let mut b = lock(&self.breaker);
        match *b {
            Breaker::Closed { .. } => true,
            Breaker::Open { until } if Instant::now() >= until => {
                *b = Breaker::HalfOpen { probing: true };
                tracing::info!(connector = %self.id, "Circuit half-open: sending one probe call");
                true
            }
            Breaker::Open { .. } => false,
            Breaker::HalfOpen { probing } => {
                if probing {
                    false
                } else {
                    *b = Breaker::HalfOpen { probing: true };
                    true
                }
            }
        }
    }

    fn record_success(&self) {
        {
            let mut b = lock(&self.breaker);
            if !matches!(*b, Breaker::Closed { failures: 0 }) {
                if matches!(*b, Breaker::HalfOpen { .. }) {
                    tracing::info!(connector = %self.id, "Circuit closed: the probe call succeeded");
                }
                *b = Breaker::Closed { failures: 0 };
            }
        }
        {
            let mut tokens = lock(&self.budget);
            *tokens = (*tokens + self.config.retry_budget_ratio)
                .min(f64::from(self.config.retries.max(1)) * 10.0);
        }
        let mut stats = lock(&self.stats);
        stats.consecutive_failures = 0;
        stats.last_success = Some(SystemTime::now());
    }

    fn record_failure(&self, err: &ConnectorError) {
        {
            let mut b = lock(&self.breaker);
            let open = Breaker::Open {
                until: Instant::now() + Duration::from_secs(self.config.circuit_open_secs),
            };
            *b = match *b {
                Breaker::Closed { failures }
                    if failures + 1 >= self.config.circuit_failure_threshold =>
                {
                    tracing::warn!(connector = %self.id, failures = failures + 1, "Circuit opened after repeated failures");
                    open
                }
                Breaker::Closed { failures } => Breaker::Closed {
                    failures: failures + 1,
                },
                Breaker::HalfOpen { .. } => {
                    tracing::warn!(connector = %self.id, "Circuit re-opened: the probe call failed");
                    open
                }
                Breaker::Open { until } => Breaker::Open { until },
            };
        }
        {
            let mut tokens = lock(&self.budget);
            *tokens = (*tokens + self.config.retry_budget_ratio)
                .min(f64::from(self.config.retries.max(1)) * 10.0);
        }
        let mut stats = lock(&self.stats);
        stats.failures += 1;
        stats.consecutive_failures += 1;
        stats.last_error = Some(LastError {
            code: err.kind.code(),
            message: err.message.clone(),
            at: SystemTime::now(),
        });
        tracing::warn!(connector = %self.id, code = err.kind.code(), error = %err.message, "Host-state system call failed");
    }

    /// Health figures.
    pub fn health(&self) -> HealthSnapshot {
        let open = matches!(*lock(&self.breaker), Breaker::Open { .. });
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
