//! Prometheus metrics of the gateway, rendered at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Counters of GraphQL requests.
#[derive(Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
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
        self.sum_micros.fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, store_queries: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP casegraph_graphql_requests_total GraphQL HTTP requests by status class.\n");
        out.push_str("# TYPE casegraph_graphql_requests_total counter\n");
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(out, "casegraph_graphql_requests_total{{status=\"{}xx\"}} {}", i + 1, c.load(Ordering::Relaxed));
        }
        out.push_str("# HELP casegraph_graphql_request_duration_seconds Latency of GraphQL HTTP requests.\n");
        out.push_str("# TYPE casegraph_graphql_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "casegraph_graphql_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "casegraph_graphql_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "casegraph_graphql_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "casegraph_graphql_request_duration_seconds_count {count}");
        out.push_str("# HELP casegraph_store_queries_total Statements the case store executed.\n");
        out.push_str("# TYPE casegraph_store_queries_total counter\n");
        let _ = writeln!(out, "casegraph_store_queries_total {store_queries}");
        out
    }
}
