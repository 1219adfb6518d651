//! Prometheus metrics of the gateway, rendered at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Counters of GraphQL requests and of the protections against overload.
#[derive(Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    shed: AtomicU64,
    rate_limited: AtomicU64,
    timed_out: AtomicU64,
}

/// An open connection, counted until dropped.
pub struct OpenConnection<'a>(&'a AtomicU64);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A connection was closed at once: `server.max_connections` were open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection is open until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(&self.connections_open)
    }

    /// A GraphQL request was shed (503 OVERLOADED).
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// A GraphQL request was over its principal's rate (429 RATE_LIMITED).
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A GraphQL operation was cancelled at its wall-clock limit (504 OPERATION_TIMEOUT).
    pub fn timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// The load figures: connections, requests running and queued, refusals.
    pub fn render_load(&self, in_flight: usize, queued: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "casegraph_connections_open",
            "gauge",
            "Open client connections.",
            self.connections_open.load(Ordering::Relaxed),
        );
        metric(
            "casegraph_connections_refused_total",
            "counter",
            "Connections closed at once because server.max_connections were open.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        metric(
            "casegraph_graphql_in_flight",
            "gauge",
            "GraphQL requests running.",
            in_flight as u64,
        );
        metric(
            "casegraph_graphql_queued",
            "gauge",
            "GraphQL requests waiting for a slot.",
            queued as u64,
        );
        metric(
            "casegraph_graphql_shed_total",
            "counter",
            "GraphQL requests shed with 503 OVERLOADED.",
            self.shed.load(Ordering::Relaxed),
        );
        metric(
            "casegraph_graphql_rate_limited_total",
            "counter",
            "GraphQL requests refused with 429 RATE_LIMITED.",
            self.rate_limited.load(Ordering::Relaxed),
        );
        metric(
            "casegraph_graphql_timed_out_total",
            "counter",
            "GraphQL operations cancelled with 504 OPERATION_TIMEOUT.",
            self.timed_out.load(Ordering::Relaxed),
        );
        out
    }

    /// Records one GraphQL request.
    pub fn record(&self, status: u16, latency: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self, store_queries: u64) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP casegraph_graphql_requests_total GraphQL HTTP requests by status class.\n",
        );
        out.push_str("# TYPE casegraph_graphql_requests_total counter\n");
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "casegraph_graphql_requests_total{{status=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP casegraph_graphql_request_duration_seconds Latency of GraphQL HTTP requests.\n",
        );
        out.push_str("# TYPE casegraph_graphql_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "casegraph_graphql_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "casegraph_graphql_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "casegraph_graphql_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "casegraph_graphql_request_duration_seconds_count {count}"
        );
        out.push_str("# HELP casegraph_store_queries_total Statements the case store executed.\n");
        out.push_str("# TYPE casegraph_store_queries_total counter\n");
        let _ = writeln!(out, "casegraph_store_queries_total {store_queries}");
        out
    }
}

/// Connector figures: calls, failures, cache hits, stale answers, state and latency quantiles.
pub fn render_connectors(connectors: &crate::connectors::Connectors) -> String {
    let mut out = String::new();
    if connectors.all().is_empty() {
        return out;
    }
    out.push_str(
        "# HELP casegraph_connector_calls_total Upstream calls per host-state connector.\n",
    );
    out.push_str("# TYPE casegraph_connector_calls_total counter\n");
    let snapshots: Vec<_> = connectors
        .all()
        .iter()
        .map(|c| (c.id.clone(), c.runtime.health()))
        .collect();
    for (id, h) in &snapshots {
        let _ = writeln!(
            out,
            "casegraph_connector_calls_total{{connector=\"{id}\"}} {}",
            h.calls
        );
    }
    out.push_str("# TYPE casegraph_connector_failures_total counter\n");
    for (id, h) in &snapshots {
        let _ = writeln!(
            out,
            "casegraph_connector_failures_total{{connector=\"{id}\"}} {}",
            h.failures
        );
    }
    out.push_str("# TYPE casegraph_connector_cache_hits_total counter\n");
    for (id, h) in &snapshots {
        let _ = writeln!(
            out,
            "casegraph_connector_cache_hits_total{{connector=\"{id}\"}} {}",
            h.cache_hits
        );
    }
    out.push_str("# TYPE casegraph_connector_stale_served_total counter\n");
    for (id, h) in &snapshots {
        let _ = writeln!(
            out,
            "casegraph_connector_stale_served_total{{connector=\"{id}\"}} {}",
            h.stale_served
        );
    }
    out.push_str("# HELP casegraph_connector_up 1 up, 0.5 degraded, 0 circuit open.\n");
    out.push_str("# TYPE casegraph_connector_up gauge\n");
    for (id, h) in &snapshots {
        let v = match h.state {
            crate::connectors::HealthState::Up => "1",
            crate::connectors::HealthState::Degraded => "0.5",
            crate::connectors::HealthState::CircuitOpen => "0",
        };
        let _ = writeln!(out, "casegraph_connector_up{{connector=\"{id}\"}} {v}");
    }
    out.push_str("# TYPE casegraph_connector_latency_seconds summary\n");
    for (id, h) in &snapshots {
        if let Some((p50, p95, p99)) = h.latency_ms {
            for (q, v) in [("0.5", p50), ("0.95", p95), ("0.99", p99)] {
                let _ = writeln!(
                    out,
                    "casegraph_connector_latency_seconds{{connector=\"{id}\",quantile=\"{q}\"}} {}",
                    v / 1000.0
                );
            }
        }
    }
    out
}

/// The access plan cache's counters.
pub fn render_plans(stats: &crate::access::PlanStats) -> String {
    let mut out = String::new();
    out.push_str("# HELP casegraph_access_plans_total Operations planned against the access policy, by whether the plan came from the cache.\n");
    out.push_str("# TYPE casegraph_access_plans_total counter\n");
    let _ = writeln!(
        out,
        "casegraph_access_plans_total{{cache=\"hit\"}} {}",
        stats.hits.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "casegraph_access_plans_total{{cache=\"miss\"}} {}",
        stats.misses.load(Ordering::Relaxed)
    );
    out.push_str("# HELP casegraph_access_planning_seconds_total Time spent planning operations (cache misses).\n");
    out.push_str("# TYPE casegraph_access_planning_seconds_total counter\n");
    let _ = writeln!(
        out,
        "casegraph_access_planning_seconds_total {}",
        stats.planning_ns.load(Ordering::Relaxed) as f64 / 1e9
    );
    out
}
