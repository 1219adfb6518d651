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
//! `--allow-error-code CODE` (repeatable; every target) or `--allow-error-code-for NAME CODE`
//! (one target) relaxes that for scenarios where partial answers are the expected outcome (e.g.
//! `FORBIDDEN_FIELD` for a principal denied some fields): a body with `data` and an `errors`
//! array is then valid when *every* error has `extensions.code` among the allowed codes. Such
//! answers are counted (`"allowed_error_responses"` in the JSON output); any other error still
//! invalidates the run. Without the options nothing changes.
//!
//! `--token T` is sent to every target; `--token-for NAME T` overrides it for one target (several
//! principals measured side by side in the same interleaved rounds).
//!
//! Only loopback targets (`127.0.0.1`) are accepted: this is a benchmark, not a stress tool.
//!
//! ```text
//! loadgen --token T --concurrency 32 --warmup 2 --duration 10 --rounds 3 \
//!     --target typename http://127.0.0.1:4000/graphql q_typename.graphql \
//!     --target cases100 http://127.0.0.1:4000/graphql q_cases.graphql
//! loadgen check --token T http://127.0.0.1:4000/graphql q.graphql   # one request, prints body
//! loadgen --token T_UN --token-for ms T_MLI --allow-error-code-for ms FORBIDDEN_FIELD … \
//!     --target un URL q.graphql --target ms URL q.graphql
//! ```
//!
//! Output: one JSON object per target per round (`"kind":"round"`), one per target aggregated
//! over rounds (`"kind":"target"`, with `warmup_requests`: requests sent during the discarded
//! warm-ups), on stdout; a human table on stderr.

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
    /// Bearer token (the global one unless `--token-for` names this target).
    token: Option<String>,
    /// Tolerated error codes (global ones plus `--allow-error-code-for` this target).
    allowed: Arc<Vec<String>>,
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
    /// Error codes (`extensions.code`) that do not make a response an error.
    allowed_codes: Arc<Vec<String>>,
}

#[derive(Deserialize)]
struct GraphqlResponse {
    #[serde(default)]
    data: Option<IgnoredAny>,
    #[serde(default)]
    errors: Option<IgnoredAny>,
}

/// The same body, with the error codes (parsed only when some codes are allowed).
#[derive(Deserialize)]
struct GraphqlResponseCodes {
    #[serde(default)]
    data: Option<IgnoredAny>,
    #[serde(default)]
    errors: Option<Vec<GraphqlErrorCode>>,
}

#[derive(Deserialize)]
struct GraphqlErrorCode {
    #[serde(default)]
    extensions: Option<ErrorExtensions>,
}

#[derive(Deserialize)]
struct ErrorExtensions {
    #[serde(default)]
    code: Option<String>,
}

/// How a valid answer looked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `data` and no `errors`.
    Clean,
    /// `data` and errors whose codes are all allowed.
    AllowedErrors,
}

/// What one measured window produced.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    errors: u64,
    allowed_error_responses: u64,
    bytes: u64,
    elapsed: Duration,
    first_error: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen [--token T] [--concurrency N] [--warmup S] [--duration S] [--rounds N] \
         [--max-requests N] [--timeout S] [--allow-error-code CODE …] [--allow-error-code-for NAME CODE …] \
         [--token-for NAME T …] --target NAME URL QUERY_FILE [--target …]\n       \
         loadgen check [--token T] [--allow-error-code CODE …] URL QUERY_FILE"
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
        allowed_codes: Arc::new(Vec::new()),
    };
    let mut allowed_codes = Vec::new();
    let mut allowed_for: Vec<(String, String)> = Vec::new();
    let mut token_for: Vec<(String, String)> = Vec::new();
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
            "--concurrency" => {
                o.concurrency = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--rounds" => {
                o.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--max-requests" => {
                o.max_requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--warmup" => o.warmup = secs(args.next()),
            "--duration" => o.duration = secs(args.next()),
            "--timeout" => o.timeout = secs(args.next()),
            "--allow-error-code" => {
                let code = args.next().unwrap_or_else(|| usage());
                if code.is_empty() {
                    usage();
                }
                allowed_codes.push(code);
            }
            "--allow-error-code-for" => {
                let (Some(name), Some(code)) = (args.next(), args.next()) else {
                    usage()
                };
                if code.is_empty() {
                    usage();
                }
                allowed_for.push((name, code));
            }
            "--token-for" => {
                let (Some(name), Some(token)) = (args.next(), args.next()) else {
                    usage()
                };
                token_for.push((name, token));
            }
            "--target" => {
                let (Some(name), Some(url), Some(file)) = (args.next(), args.next(), args.next())
                else {
                    usage()
                };
                o.targets.push(Target {
                    name,
                    url: loopback_url(&url),
                    body: graphql_body(&file),
                    token: None,
                    allowed: Arc::default(),
                });
            }
            "-h" | "--help" => usage(),
            _ if o.check => positional.push(a),
            _ => usage(),
        }
    }
    o.allowed_codes = Arc::new(allowed_codes);
    if o.check {
        let [url, file] = positional.as_slice() else {
            usage()
        };
        o.targets.push(Target {
            name: "check".into(),
            url: loopback_url(url),
            body: graphql_body(file),
            token: None,
            allowed: Arc::default(),
        });
    }
    for (name, _) in allowed_for.iter().chain(token_for.iter()) {
        if !o.targets.iter().any(|t| &t.name == name) {
            eprintln!("loadgen: `{name}` names no --target");
            std::process::exit(64);
        }
    }
    for t in &mut o.targets {
        t.token = token_for
            .iter()
            .rev()
            .find(|(n, _)| n == &t.name)
            .map(|(_, v)| v.clone())
            .or_else(|| o.token.clone());
        let mut allowed = o.allowed_codes.as_ref().clone();
        allowed.extend(
            allowed_for
                .iter()
                .filter(|(n, _)| n == &t.name)
                .map(|(_, c)| c.clone()),
        );
        t.allowed = Arc::new(allowed);
    }
    if o.targets.is_empty() || o.concurrency == 0 || o.rounds == 0 {
        usage();
    }
    o
}

/// Sends one request; `Ok((bytes, kind of answer, body if keep))` for a valid answer,
/// `Err(description)` otherwise.
async fn send(
    client: &reqwest::Client,
    target: &Target,
    keep: bool,
) -> Result<(u64, Answer, Option<String>), String> {
    let allowed = target.allowed.as_slice();
    let mut req = client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(target.body.as_ref().clone());
    if let Some(t) = &target.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading body: {e}"))?;
    let n = body.len() as u64;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    let kept = || keep.then(|| String::from_utf8_lossy(&body).into_owned());
    let graphql_errors = || {
        format!(
            "GraphQL errors: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    };
    if allowed.is_empty() {
        return match serde_json::from_slice::<GraphqlResponse>(&body) {
            Ok(GraphqlResponse {
                errors: None,
                data: Some(_),
            }) => Ok((n, Answer::Clean, kept())),
            Ok(_) => Err(graphql_errors()),
            Err(e) => Err(format!("body is not JSON ({e})")),
        };
    }
    match serde_json::from_slice::<GraphqlResponseCodes>(&body) {
        Ok(GraphqlResponseCodes {
            errors: None,
            data: Some(_),
        }) => Ok((n, Answer::Clean, kept())),
        // `data: null` deserialises as None: an error whatever the codes.
        Ok(GraphqlResponseCodes {
            errors: Some(errors),
            data: Some(_),
        }) if !errors.is_empty()
            && errors.iter().all(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.code.as_deref())
                    .is_some_and(|c| allowed.iter().any(|a| a == c))
            }) =>
        {
            Ok((n, Answer::AllowedErrors, kept()))
        }
        Ok(_) => Err(graphql_errors()),
        Err(e) => Err(format!("body is not JSON ({e})")),
    }
}

/// Runs `concurrency` closed loops against `target` until `deadline` or until `budget` requests
/// have been started.
async fn window(
    client: &reqwest::Client,
    target: &Target,
    o: &Opts,
    length: Duration,
    budget: u64,
) -> Window {
    let started = Instant::now();
    let deadline = started + length;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(o.concurrency);
    for _ in 0..o.concurrency {
        let client = client.clone();
        let target = target.clone();
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut w = Window {
                latencies_us: Vec::with_capacity(16 * 1024),
                ..Default::default()
            };
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < budget {
                let t0 = Instant::now();
                let res = send(&client, &target, false).await;
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                match res {
                    Ok((n, answer, _)) => {
                        w.latencies_us.push(us);
                        w.bytes += n;
                        if answer == Answer::AllowedErrors {
                            w.allowed_error_responses += 1;
                        }
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
        all.allowed_error_responses += w.allowed_error_responses;
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
        match send(&client, t, true).await {
            Ok((_, _, body)) => {
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
        allowed_error_responses: u64,
        warmup_requests: u64,
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
            allowed_error_responses: 0,
            warmup_requests: 0,
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
                let wu = window(&client, t, &o, o.warmup, o.max_requests).await;
                acc[i].warmup_requests += wu.latencies_us.len() as u64 + wu.errors;
            }
            let mut w = window(&client, t, &o, o.duration, o.max_requests).await;
            w.latencies_us.sort_unstable();
            let ok = w.latencies_us.len() as u64;
            let secs = w.elapsed.as_secs_f64();
            let rps = ok as f64 / secs;
            let (p50, p99) = (
                percentile(&w.latencies_us, 50.0),
                percentile(&w.latencies_us, 99.0),
            );
            println!(
                "{}",
                json!({
                    "kind": "round", "target": t.name, "round": round, "requests": ok, "errors": w.errors,
                    "allowed_error_responses": w.allowed_error_responses,
                    "secs": secs, "rps": rps, "p50_ms": p50, "p99_ms": p99,
                    "mean_response_bytes": w.bytes.checked_div(ok).unwrap_or(0),
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
            a.allowed_error_responses += w.allowed_error_responses;
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
        let (p50, p99) = (
            percentile(&a.latencies_us, 50.0),
            percentile(&a.latencies_us, 99.0),
        );
        any_errors |= a.errors > 0;
        println!(
            "{}",
            json!({
                "kind": "target", "target": t.name, "rounds": o.rounds, "concurrency": o.concurrency,
                "requests": a.requests, "errors": a.errors, "secs": a.secs,
                "allowed_error_responses": a.allowed_error_responses, "allowed_error_codes": t.allowed.as_slice(),
                "warmup_requests": a.warmup_requests,
                "rps_median": rps_median, "rps_rounds": a.round_rps,
                "p50_ms": p50, "p99_ms": p99,
                "p50_ms_median": median(&mut a.round_p50.clone()), "p99_ms_median": median(&mut a.round_p99.clone()),
                "mean_response_bytes": a.bytes.checked_div(a.requests).unwrap_or(0),
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
