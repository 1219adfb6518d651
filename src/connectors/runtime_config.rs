//! Runtime settings every connector file may tune (`[runtime]`).

use crate::config::Validation;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How CaseGraph calls the host-state system: timeouts, retries, batching, caching, protection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Milliseconds one upstream call may take before it counts as a timeout.
    pub timeout_ms: u64,
    /// Retries of a failed idempotent call (timeouts, refused connections, 5xx), with
    /// exponential backoff. 0 disables retries.
    pub retries: u32,
    /// Backoff before the first retry, in milliseconds; doubled for each further retry.
    pub retry_backoff_ms: u64,
    /// Share of calls that may be retries over time (retry budget), e.g. 0.2 = one retry per five
    /// calls, so a failing system is not hammered.
    pub retry_budget_ratio: f64,
    /// Most keys sent in one batched upstream call; larger batches are split.
    pub batch_size: usize,
    /// Seconds a fetched record is served from the cache without calling the system.
    pub cache_ttl_secs: u64,
    /// Seconds an expired record may still be served, marked stale, when the system fails.
    pub max_stale_secs: u64,
    /// Most records kept in the cache.
    pub cache_capacity: u64,
    /// Most concurrent calls to the system.
    pub max_concurrency: usize,
    /// Consecutive failures that open the circuit breaker.
    pub circuit_failure_threshold: u32,
    /// Seconds the circuit stays open before one probe call may close it.
    pub circuit_open_secs: u64,
    /// Largest accepted response body, in bytes.
    pub max_response_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 2_000,
            retries: 2,
            retry_backoff_ms: 100,
            retry_budget_ratio: 0.2,
            batch_size: 50,
            cache_ttl_secs: 300,
            max_stale_secs: 86_400,
            cache_capacity: 100_000,
            max_concurrency: 8,
            circuit_failure_threshold: 5,
            circuit_open_secs: 30,
            max_response_bytes: 2 * 1024 * 1024,
        }
    }
}

impl RuntimeConfig {
    /// Checks every setting; errors are keyed under `runtime.`.
    pub fn validate_into(&self, v: &mut Validation) {
        if !(1..=120_000).contains(&self.timeout_ms) {
            v.error(
                "runtime.timeout_ms",
                "must be between 1 and 120000 milliseconds",
            );
        }
        if self.retries > 10 {
            v.error("runtime.retries", "must be at most 10");
        }
        if !(0.0..=1.0).contains(&self.retry_budget_ratio) {
            v.error("runtime.retry_budget_ratio", "must be between 0 and 1");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            v.error("runtime.batch_size", "must be between 1 and 10000");
        }
        if self.max_stale_secs < self.cache_ttl_secs {
            v.error(
                "runtime.max_stale_secs",
                "must be at least runtime.cache_ttl_secs",
            );
        }
        if self.cache_capacity == 0 {
            v.error("runtime.cache_capacity", "must be at least 1");
        }
        if !(1..=1_000).contains(&self.max_concurrency) {
            v.error("runtime.max_concurrency", "must be between 1 and 1000");
        }
        if self.circuit_failure_threshold == 0 {
            v.error("runtime.circuit_failure_threshold", "must be at least 1");
        }
        if self.max_response_bytes < 1024 {
            v.error("runtime.max_response_bytes", "must be at least 1024");
        }
    }
}
