//! A small closed-loop HTTP load generator for the CaseGraph GraphQL endpoint (used by
//! `scripts/bench.sh`).
//!
//! One shared `reqwest` client (pool of `--concurrency` idle connections per host) and
//! `--concurrency` tasks, each looping request → record latency until the deadline or until the
//! target's `--max-requests` budget is spent. Several targets are measured in interleaved rounds
//! (round 1: A, B, C; round 2: A, B, C; …) so that they see the same machine noise; each measured
//! window is preceded by a warm-up whose requests are discarded.
//!
//! A request is an error when the status is not 200, the body is not JSON, the body has an
//! `errors` member or lacks `data`. A run with errors is invalid (exit code 2).
//!
//! Only loopback targets (`127.0.0.1`) are accepted: this is a benchmark, not a stress tool.
//!
//! ```text
//! loadgen --token T --concurrency 32 --warmup 2 --duration 10 --rounds 3 \
//!     --target typename http://127.0.0.1:4000/graphql q_typename.graphql \
//!     --target cases100 http://127.0.0.1:4000/graphql q_cases.graphql
//! loadgen check --token T http://127.0.0.1:4000/graphql q.graphql   # one request, prints body
//! ```
//!
//! Output: one JSON object per target per round (`"kind":"round"`), one per target aggregated
//! over rounds (`"kind":"target"`), on stdout; a human table on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone)]
struct Target {
    name: String,
    url: reqwest::Url,
    body: Arc<Vec<u8>>,
}

#[derive(Debug)]
struct Opts {
    token: Option<String>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    rounds: usize,
    max_requests: u64,
    timeout: Duration,
    targets: Vec<Target>,
    check: bool,
}

#[derive(Deserialize)]
struct GraphqlResponse {
    #[serde(default)]
    data: Option<IgnoredAny>,
    #[serde(default)]
    errors: Option<IgnoredAny>,
}

/// What one measured window produced.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    errors: u64,
    bytes: u64,
    elapsed: Duration,
    first_error: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen [--token T] [--concurrency N] [--warmup S] [--duration S] [--rounds N] \
         [--max-requests N] [--timeout S] --target NAME URL QUERY_FILE [--target …]\n       \
         loadgen check [--token T] URL QUERY_FILE"
    );
    std::process::exit(64);
}

fn loopback_url(raw: &str) -> reqwest::Url {
    let url = reqwest::Url::parse(raw).unwrap_or_else(|e| {
        eprintln!("loadgen: `{raw}` is not a URL: {e}");
        std::process::exit(64)
    });
    if url.scheme() != "http" || url.host_str() != Some("127.0.0.1") {
        eprintln!("loadgen: refusing `{raw}`: only http://127.0.0.1 targets are allowed");
        std::process::exit(64);
    }
    url
}

fn graphql_body(query_file: &str) -> Arc<Vec<u8>> {
    let query = std::fs::read_to_string(query_file).unwrap_or_else(|e| {
        eprintln!("loadgen: cannot read {query_file}: {e}");
        std::process::exit(64)
    });
    Arc::new(serde_json::to_vec(&json!({ "query": query.trim() })).expect("a string serialises"))
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1).peekable();
    let mut o = Opts {
        token: None,
        concurrency: 32,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(10),
        rounds: 1,
        max_requests: 5_000_000,
        timeout: Duration::from_secs(30),
        targets: Vec::new(),
        check: false,
    };
    if args.peek().map(String::as_str) == Some("check") {
        args.next();
        o.check = true;
    }
    let secs = |v: Option<String>| -> Duration {
        let v = v.unwrap_or_else(|| usage());
        Duration::from_secs_f64(v.parse::<f64>().unwrap_or_else(|_| usage()))
    };
    let mut positional = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--token" => o.token = Some(args.next().unwrap_or_else(|| usage())),
            "--concurrency" => o.concurrency = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--rounds" => o.rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--max-requests" => o.max_requests = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--warmup" => o.warmup = secs(args.next()),
            "--duration" => o.duration = secs(args.next()),
            "--timeout" => o.timeout = secs(args.next()),
            "--target" => {
                let (Some(name), Some(url), Some(file)) = (args.next(), args.next(), args.next()) else { usage() };
                o.targets.push(Target { name, url: loopback_url(&url), body: graphql_body(&file) });
            }
            "-h" | "--help" => usage(),
            _ if o.check => positional.push(a),
            _ => usage(),
        }
    }
    if o.check {
        let [url, file] = positional.as_slice() else { usage() };
        o.targets.push(Target { name: "check".into(), url: loopback_url(url), body: graphql_body(file) });
    }
    if o.targets.is_empty() || o.concurrency == 0 || o.rounds == 0 {
        usage();
    }
    o
}

/// Sends one request; `Ok((bytes, body if keep))` for a valid answer, `Err(description)` otherwise.
async fn send(client: &reqwest::Client, target: &Target, token: Option<&str>, keep: bool) -> Result<(u64, Option<String>), String> {
    let mut req = client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(target.body.as_ref().clone());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("reading body: {e}"))?;
    let n = body.len() as u64;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
    }
    match serde_json::from_slice::<GraphqlResponse>(&body) {
        Ok(GraphqlResponse { errors: None, data: Some(_) }) => Ok((n, keep.then(|| String::from_utf8_lossy(&body).into_owned()))),
        Ok(_) => Err(format!("GraphQL errors: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))),
        Err(e) => Err(format!("body is not JSON ({e})")),
    }
}

/// Runs `concurrency` closed loops against `target` until `deadline` or until `budget` requests
/// have been started.
async fn window(client: &reqwest::Client, target: &Target, o: &Opts, length: Duration, budget: u64) -> Window {
    let started = Instant::now();
    let deadline = started + length;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(o.concurrency);
    for _ in 0..o.concurrency {
        let client = client.clone();
        let target = target.clone();
        let token = o.token.clone();
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut w = Window { latencies_us: Vec::with_capacity(16 * 1024), ..Default::default() };
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < budget {
                let t0 = Instant::now();
                let res = send(&client, &target, token.as_deref(), false).await;
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                match res {
                    Ok((n, _)) => {
                        w.latencies_us.push(us);
                        w.bytes += n;
                    }
                    Err(e) => {
                        w.errors += 1;
                        w.first_error.get_or_insert(e);
                    }
                }
            }
            w
        }));
    }
    let mut all = Window::default();
    for t in tasks {
        let w = t.await.expect("a load task panicked");
        all.latencies_us.extend(w.latencies_us);
        all.errors += w.errors;
        all.bytes += w.bytes;
        if all.first_error.is_none() {
            all.first_error = w.first_error;
        }
    }
    // The window ends when the last in-flight request returns, not at the deadline.
    all.elapsed = started.elapsed();
    all
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest-rank percentile.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .timeout(o.timeout)
        .tcp_nodelay(true)
        .build()
        .expect("building the HTTP client");

    if o.check {
        let t = &o.targets[0];
        match send(&client, t, o.token.as_deref(), true).await {
            Ok((_, body)) => {
                println!("{}", body.unwrap_or_default());
                return;
            }
            Err(e) => {
                eprintln!("loadgen check: {e}");
                std::process::exit(2);
            }
        }
    }

    struct Acc {
        latencies_us: Vec<u64>,
        requests: u64,
        errors: u64,
        bytes: u64,
        secs: f64,
        round_rps: Vec<f64>,
        round_p50: Vec<f64>,
        round_p99: Vec<f64>,
        first_error: Option<String>,
    }
    let mut acc: Vec<Acc> = o
        .targets
        .iter()
        .map(|_| Acc {
            latencies_us: Vec::new(),
            requests: 0,
            errors: 0,
            bytes: 0,
            secs: 0.0,
            round_rps: Vec::new(),
            round_p50: Vec::new(),
            round_p99: Vec::new(),
            first_error: None,
        })
        .collect();

    for round in 1..=o.rounds {
        for (i, t) in o.targets.iter().enumerate() {
            if !o.warmup.is_zero() {
                let _ = window(&client, t, &o, o.warmup, o.max_requests).await;
            }
            let mut w = window(&client, t, &o, o.duration, o.max_requests).await;
            w.latencies_us.sort_unstable();
            let ok = w.latencies_us.len() as u64;
            let secs = w.elapsed.as_secs_f64();
            let rps = ok as f64 / secs;
            let (p50, p99) = (percentile(&w.latencies_us, 50.0), percentile(&w.latencies_us, 99.0));
            println!(
                "{}",
                json!({
                    "kind": "round", "target": t.name, "round": round, "requests": ok, "errors": w.errors,
                    "secs": secs, "rps": rps, "p50_ms": p50, "p99_ms": p99,
                    "mean_response_bytes": if ok > 0 { w.bytes / ok } else { 0 },
                })
            );
            eprintln!(
                "  round {round}/{} {:<28} {:>9.1} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
                o.rounds, t.name, rps, p50, p99, w.errors
            );
            let a = &mut acc[i];
            a.latencies_us.extend_from_slice(&w.latencies_us);
            a.requests += ok;
            a.errors += w.errors;
            a.bytes += w.bytes;
            a.secs += secs;
            a.round_rps.push(rps);
            a.round_p50.push(p50);
            a.round_p99.push(p99);
            if a.first_error.is_none() {
                a.first_error = w.first_error;
            }
        }
    }

    let mut any_errors = false;
    eprintln!(
        "\n  {:<28} {:>10} {:>10} {:>10} {:>10} {:>8}   (medians over {} round(s) of {:.0} s, {} connections)",
        "target", "req/s", "p50 ms", "p99 ms", "requests", "errors", o.rounds, o.duration.as_secs_f64(), o.concurrency
    );
    for (t, a) in o.targets.iter().zip(acc.iter_mut()) {
        a.latencies_us.sort_unstable();
        let rps_median = median(&mut a.round_rps.clone());
        let (p50, p99) = (percentile(&a.latencies_us, 50.0), percentile(&a.latencies_us, 99.0));
        any_errors |= a.errors > 0;
        println!(
            "{}",
            json!({
                "kind": "target", "target": t.name, "rounds": o.rounds, "concurrency": o.concurrency,
                "requests": a.requests, "errors": a.errors, "secs": a.secs,
                "rps_median": rps_median, "rps_rounds": a.round_rps,
                "p50_ms": p50, "p99_ms": p99,
                "p50_ms_median": median(&mut a.round_p50.clone()), "p99_ms_median": median(&mut a.round_p99.clone()),
                "mean_response_bytes": if a.requests > 0 { a.bytes / a.requests } else { 0 },
                "first_error": a.first_error,
            })
        );
        eprintln!(
            "  {:<28} {:>10.1} {:>10.2} {:>10.2} {:>10} {:>8}",
            t.name, rps_median, p50, p99, a.requests, a.errors
        );
        if let Some(e) = &a.first_error {
            eprintln!("    first error: {e}");
        }
    }
    if any_errors {
        eprintln!("\nloadgen: INVALID RUN: some requests failed (see above)");
        std::process::exit(2);
    }
}
