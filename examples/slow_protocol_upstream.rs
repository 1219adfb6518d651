//! A deliberately slow host-state system for `scripts/bench-connectors.sh`: the CaseGraph
//! connector protocol reference server (`casegraph::connectors::protocol::reference`), behind a
//! layer that sleeps a fixed delay before every protocol request and counts them.
//!
//! ```text
//! slow_protocol_upstream --store sqlite:///tmp/x/casegraph.db --host-state MLI \
//!     [--listen 127.0.0.1:0] [--delay-ms 20] [--records-out FILE]
//! ```
//!
//! Records: one canonical record (`docs/connector-protocol.md`) for every case of `--host-state`
//! in the store (the real UN data imported by the bench script), keyed by its real UN reference
//! (`MISSION-YYYYMMDD`), with `"marking": "PUBLIC"`. Stage, history, court, charges and
//! defendants are synthetic but deterministic (derived from the reference), so every run serves
//! the same bytes.
//!
//! Routes: the reference server's `GET /capabilities`, `POST /lookup`, `GET /health`, each
//! delayed by `--delay-ms` and counted; `GET /_count` (not delayed, not counted) answers
//! `{"requests": N, "lookups": M, "lookup_keys": K, "delay_ms": D, "records": R}`.
//!
//! Prints `slow_protocol_upstream: listening on http://127.0.0.1:PORT (...)` on stderr once it
//! accepts connections. Only loopback addresses are accepted. Runs until killed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use casegraph::connectors::protocol::reference::ReferenceServer;
use casegraph::store::{CaseCursor, CaseFilter, CaseOrder, CaseRecord};
use serde_json::{json, Value};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    lookups: AtomicU64,
    lookup_keys: AtomicU64,
}

#[derive(Clone)]
struct Slow {
    delay: Duration,
    counts: Arc<Counts>,
}

fn usage() -> ! {
    eprintln!(
        "usage: slow_protocol_upstream --store URL --host-state ISO3 [--listen 127.0.0.1:0] [--delay-ms 20] [--records-out FILE]"
    );
    std::process::exit(64);
}

/// SplitMix64 over the reference: deterministic synthetic content.
fn mix(s: &str) -> u64 {
    let mut x = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A canonical record for `case` (real reference, synthetic proceedings, PUBLIC marking).
fn record(case: &CaseRecord, host: &str, n: usize) -> Value {
    const PATHS: &[&[&str]] = &[
        &["REPORTED", "UNDER_INVESTIGATION"],
        &[
            "REPORTED",
            "UNDER_INVESTIGATION",
            "SUSPENDED_SUSPECT_AT_LARGE",
        ],
        &[
            "REPORTED",
            "REFERRED_TO_NATIONAL_AUTHORITY",
            "UNDER_INVESTIGATION",
            "CHARGED",
            "TRIAL_SCHEDULED",
        ],
        &[
            "REPORTED",
            "UNDER_INVESTIGATION",
            "CHARGED",
            "TRIAL_ONGOING",
            "JUDGMENT",
        ],
        &["REPORTED", "UNDER_INVESTIGATION", "CLOSED_NO_SUSPECT"],
        &["REPORTED", "NO_INFORMATION"],
    ];
    let h = mix(&case.reference);
    let path = PATHS[(h % PATHS.len() as u64) as usize];
    let stage = *path.last().expect("non-empty");
    let start = case.incident_date;
    let history: Vec<Value> = path
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "stage": s, "date": (start + chrono::Days::new(40 * i as u64)).format("%Y-%m-%d").to_string() }))
        .collect();
    let charged = path.contains(&"CHARGED");
    let convicted = stage == "JUDGMENT";
    let defendants: Vec<Value> = if charged {
        (0..1 + (h >> 8) % 3)
            .map(|d| {
                json!({
                    "name": format!("Defendant {}", d + 1),
                    "status": if convicted { "CONVICTED" } else { "IN_CUSTODY" },
                    "national_status": null,
                    "in_absentia": false,
                    "verdict": if convicted { Value::from("guilty") } else { Value::Null },
                    "sentence": if convicted { Value::from("10 years") } else { Value::Null },
                })
            })
            .collect()
    } else if stage == "SUSPENDED_SUSPECT_AT_LARGE" {
        vec![
            json!({ "name": "Suspect 1", "status": "AT_LARGE", "national_status": null, "in_absentia": null, "verdict": null, "sentence": null }),
        ]
    } else {
        Vec::new()
    };
    json!({
        "key": case.reference,
        "national_reference": format!("{host}-BENCH/{}/{:04}", start.format("%Y"), n + 1),
        "authority": format!("Bench prosecutor's office ({host})"),
        "stage": stage,
        "national_stage": null,
        "stage_history": history,
        "court": if charged { json!({ "name": format!("Bench criminal court ({host})"), "type": "CIVILIAN" }) } else { Value::Null },
        "charges": if charged { json!(["murder", "attack on United Nations personnel"]) } else { json!([]) },
        "defendants": defendants,
        "next_hearing": null,
        "updated_at": "2025-01-01T00:00:00Z",
        "marking": "PUBLIC",
    })
}

async fn load_records(url: &str, host: &str) -> anyhow::Result<Vec<Value>> {
    let store = casegraph::store::connect(url, 2).await?;
    let order = CaseOrder::default();
    let filter = CaseFilter {
        host_states: vec![host.to_string()],
        ..CaseFilter::all()
    };
    let mut cases = Vec::new();
    let mut after: Option<CaseCursor> = None;
    for _ in 0..10_000 {
        let page = store
            .list_cases(&filter, order, after.as_ref(), 500)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(CaseCursor::after(last, order));
        cases.extend(page);
    }
    Ok(cases
        .iter()
        .enumerate()
        .map(|(i, c)| record(c, host, i))
        .collect())
}

async fn slow(State(s): State<Slow>, req: Request, next: Next) -> Response {
    s.counts.requests.fetch_add(1, Ordering::Relaxed);
    if req.uri().path().ends_with("/lookup") {
        s.counts.lookups.fetch_add(1, Ordering::Relaxed);
    }
    tokio::time::sleep(s.delay).await;
    next.run(req).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut store, mut host, mut listen, mut delay_ms, mut out) =
        (None, None, "127.0.0.1:0".to_string(), 20u64, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--store" => store = Some(args.next().unwrap_or_else(|| usage())),
            "--host-state" => host = Some(args.next().unwrap_or_else(|| usage()).to_uppercase()),
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            "--delay-ms" => {
                delay_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--records-out" => out = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    let (Some(store), Some(host)) = (store, host) else {
        usage()
    };
    if !listen.starts_with("127.0.0.1:") {
        eprintln!("slow_protocol_upstream: refusing `{listen}`: only 127.0.0.1 is allowed");
        std::process::exit(64);
    }

    let records = load_records(&store, &host).await?;
    anyhow::ensure!(
        !records.is_empty(),
        "the store at {store} holds no case with host state {host}"
    );
    if let Some(path) = &out {
        std::fs::write(path, serde_json::to_vec_pretty(&records)?)?;
    }
    let n = records.len();

    let counts = Arc::new(Counts::default());
    let reference = ReferenceServer::new(records, None);
    let state = Slow {
        delay: Duration::from_millis(delay_ms),
        counts: Arc::clone(&counts),
    };
    let counting = {
        let reference = reference.clone();
        let counts = Arc::clone(&counts);
        move || {
            // Keys asked for so far, from what the reference server recorded.
            let keys: u64 = reference
                .received()
                .iter()
                .map(|r| r.keys.len() as u64)
                .sum();
            counts.lookup_keys.store(keys, Ordering::Relaxed);
            json!({
                "requests": counts.requests.load(Ordering::Relaxed),
                "lookups": counts.lookups.load(Ordering::Relaxed),
                "lookup_keys": keys,
                "delay_ms": delay_ms,
                "records": n,
            })
        }
    };
    let app = Router::new()
        .merge(
            reference
                .router()
                .layer(axum::middleware::from_fn_with_state(state, slow)),
        )
        .route(
            "/_count",
            get(move || {
                let c = counting.clone();
                async move { Json(c()) }
            }),
        );

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "slow_protocol_upstream: listening on http://{} ({n} records for {host}, delay {delay_ms} ms per request)",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
