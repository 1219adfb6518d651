//! The hostile-traffic benchmark's load (used by `scripts/bench-hostile.sh`): a normal analyst
//! query measured while each attack of issue 9 runs, next to the same query on the idle
//! gateway, in interleaved rounds (round 1: idle, attack A, attack B, …; round 2: …) so that
//! every scenario sees the same machine noise.
//!
//! ```text
//! hostile_load idp --listen 127.0.0.1:0 --key tests/fixtures/keys/rsa-test-key.pem \
//!     --jwk tests/fixtures/keys/rsa-test-jwk.json          # a JWKS server that can be made to hang
//! hostile_load run --url http://127.0.0.1:4000/graphql --dev-key data/dev-issuer-key.pem \
//!     --idp http://127.0.0.1:4800 --idp-key tests/fixtures/keys/rsa-test-key.pem \
//!     --pid 1234 --rounds 3 --duration 10 --victims 4
//! ```
//!
//! Scenarios: `idle`; `fanout20` and `fanout39` (the 1.7 KB fragment fan-outs, 8 senders);
//! `list30k` (a 30,000-item list written in the document, 8 senders); `slow2000` (2,000
//! connections that never finish their headers, re-opened as the gateway closes them);
//! `burst` (one principal sending the normal query from `--burst` clients at once: over its
//! bound of requests running); `crowd` (`--burst` clients of as many principals sending it at
//! once, each honouring `Retry-After`: the gateway at its concurrency limit); `overrate` (one principal of the default rate
//! limit, 16 senders); `idphang` (the identity provider's JWKS endpoint accepts and never
//! answers; victims use its tokens). The attacks of the fan-outs and the list come from a
//! principal whose rate is not limited, so that the operation limits are what refuses them.
//! The victims (`--victims` closed-loop clients, one principal of their own) send the normal
//! query throughout. Every request asks for `application/graphql-response+json`, so that a
//! refused request is a 4xx, not a 200 carrying errors.
//!
//! Output: one JSON object per scenario per round on stdout; a table on stderr. Only loopback
//! addresses are accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// The victims' query: an analyst's page of Malian cases with their victims.
const NORMAL: &str = r#"{ cases(first: 20, filter: {hostStates: ["MLI"]}) { totalCount nodes { reference incidentDate victims { nationality harm } } } }"#;
const IDP_ISSUER: &str = "https://idp.bench/";

fn die(message: impl std::fmt::Display) -> ! {
    eprintln!("hostile_load: {message}");
    std::process::exit(64)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn required(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| die(format!("{name} is required")))
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| die(format!("{name} must be a number")))
    })
}

fn loopback(raw: &str) -> reqwest::Url {
    let url = reqwest::Url::parse(raw).unwrap_or_else(|e| die(format!("{raw}: {e}")));
    if url.scheme() != "http" || url.host_str() != Some("127.0.0.1") {
        die(format!("refusing {raw}: only http://127.0.0.1 is allowed"));
    }
    url
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("idp") => idp(&args).await,
        Some("run") => run(&args).await,
        _ => die("usage: hostile_load idp … | hostile_load run … (see the source)"),
    }
}

// ---------- the identity provider ----------

#[derive(Clone)]
struct Idp {
    jwk: Value,
    hang: Arc<AtomicBool>,
}

async fn jwks(State(idp): State<Idp>) -> axum::Json<Value> {
    if idp.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    axum::Json(json!({ "keys": [idp.jwk] }))
}

async fn idp(args: &[String]) {
    let listen: SocketAddr = required(args, "--listen")
        .parse()
        .unwrap_or_else(|e| die(format!("--listen: {e}")));
    if !listen.ip().is_loopback() {
        die("--listen must be a loopback address");
    }
    let jwk_text = std::fs::read_to_string(required(args, "--jwk")).unwrap_or_else(|e| die(e));
    let state = Idp {
        jwk: serde_json::from_str(&jwk_text).unwrap_or_else(|e| die(e)),
        hang: Arc::default(),
    };
    let hang = Arc::clone(&state.hang);
    let answer = Arc::clone(&state.hang);
    let app = axum::Router::new()
        .route("/jwks", get(jwks))
        .route(
            "/hang",
            post(move || async move { hang.store(true, Ordering::SeqCst) }),
        )
        .route(
            "/answer",
            post(move || async move { answer.store(false, Ordering::SeqCst) }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| die(e));
    println!(
        "idp listening on http://{}",
        listener.local_addr().unwrap_or_else(|e| die(e))
    );
    axum::serve(listener, app).await.unwrap_or_else(|e| die(e));
}

fn idp_token(key: &jsonwebtoken::EncodingKey, subject: &str) -> String {
    let now = casegraph_now();
    let claims = json!({
        "iss": IDP_ISSUER, "sub": subject, "aud": "casegraph", "exp": now + 3600, "nbf": now,
        "org": "UN", "roles": ["un-analyst"],
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-test-1".into());
    jsonwebtoken::encode(&header, &claims, key).unwrap_or_else(|e| die(e))
}

fn casegraph_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------- measuring ----------

#[derive(Default)]
struct Tally {
    latencies_us: Mutex<Vec<u64>>,
    statuses: Mutex<std::collections::BTreeMap<u16, u64>>,
    failed: AtomicU64,
}

impl Tally {
    fn record(&self, status: u16, elapsed: Duration) {
        self.latencies_us
            .lock()
            .expect("lock")
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        *self
            .statuses
            .lock()
            .expect("lock")
            .entry(status)
            .or_default() += 1;
    }

    fn summary(&self, seconds: f64) -> Value {
        let mut lat = self.latencies_us.lock().expect("lock").clone();
        lat.sort_unstable();
        let pct = |p: f64| {
            if lat.is_empty() {
                Value::Null
            } else {
                let rank = ((p / 100.0) * lat.len() as f64).ceil().max(1.0) as usize;
                json!(lat[rank.min(lat.len()) - 1] as f64 / 1000.0)
            }
        };
        let statuses = self.statuses.lock().expect("lock").clone();
        let ok = statuses.get(&200).copied().unwrap_or(0);
        json!({
            "requests": lat.len(),
            "ok": ok,
            "ok_per_s": ok as f64 / seconds,
            "p50_ms": pct(50.0),
            "p99_ms": pct(99.0),
            "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": self.failed.load(Ordering::Relaxed),
        })
    }
}

/// Closed-loop senders of `body` with `tokens` (one per sender, cycled) until `stop`. Polite
/// senders wait as long as a 429 or 503 says in `Retry-After` before sending again; the others
/// send again at once.
#[allow(clippy::too_many_arguments)]
fn senders(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: Arc<Vec<u8>>,
    tokens: Arc<Vec<String>>,
    count: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    polite: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let (client, url, body, tokens, tally, stop) = (
                client.clone(),
                url.clone(),
                Arc::clone(&body),
                Arc::clone(&tokens),
                Arc::clone(&tally),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let token = &tokens[i % tokens.len()];
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let sent = client
                        .post(url.clone())
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .header("accept", "application/graphql-response+json")
                        .body(body.as_ref().clone())
                        .send()
                        .await;
                    match sent {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            let retry_after = res
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok());
                            let _ = res.bytes().await;
                            tally.record(status, started.elapsed());
                            if let (true, Some(secs)) = (polite, retry_after) {
                                tokio::time::sleep(Duration::from_secs(secs)).await;
                            }
                        }
                        Err(_) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Holds `count` connections that never finish their headers, opening a new one whenever the
/// gateway closes one; counts the connections the gateway closed.
fn slow_connections(
    addr: SocketAddr,
    count: usize,
    closed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let (closed, stop) = (Arc::clone(&closed), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if stream
                        .write_all(b"POST /graphql HTTP/1.1\r\nHost: casegraph\r\nContent-Ty")
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    let mut buf = [0u8; 256];
                    loop {
                        tokio::select! {
                            read = tokio::io::AsyncReadExt::read(&mut stream, &mut buf) => {
                                if matches!(read, Ok(0) | Err(_)) {
                                    closed.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                            () = tokio::time::sleep(Duration::from_millis(200)) => {
                                if stop.load(Ordering::Relaxed) {
                                    return;
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

fn fan_out(levels: usize) -> String {
    let mut q = format!("query {{ ...F{levels} }} fragment F0 on Query {{ __typename }}");
    for i in 1..=levels {
        q.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i - 1,
            i - 1
        ));
    }
    q
}

fn body_of(query: &str) -> Arc<Vec<u8>> {
    Arc::new(serde_json::to_vec(&json!({ "query": query })).expect("JSON"))
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn run(args: &[String]) {
    let url = loopback(&required(args, "--url"));
    let addr: SocketAddr = format!(
        "127.0.0.1:{}",
        url.port().unwrap_or_else(|| die("--url needs a port"))
    )
    .parse()
    .expect("an address");
    let dev = casegraph::auth::DevIssuer::load_or_create(std::path::Path::new(&required(
        args,
        "--dev-key",
    )))
    .unwrap_or_else(|e| die(e));
    let idp = arg(args, "--idp").map(|u| loopback(&u));
    let idp_key = arg(args, "--idp-key").map(|p| {
        let pem = std::fs::read(p).unwrap_or_else(|e| die(e));
        jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap_or_else(|e| die(e))
    });
    let pid = arg(args, "--pid").map(|p| p.parse().unwrap_or_else(|_| die("--pid")));
    let rounds = number(args, "--rounds", 3);
    let duration = Duration::from_secs(number(args, "--duration", 10));
    let warmup = Duration::from_secs(number(args, "--warmup", 2));
    let victims = number(args, "--victims", 4) as usize;
    let burst = number(args, "--burst", 512) as usize;
    let only: Option<Vec<String>> =
        arg(args, "--scenarios").map(|s| s.split(',').map(str::to_string).collect());

    let mint = |subject: &str, org: &str, role: &str| {
        dev.mint(
            "casegraph",
            subject,
            org,
            &[role.to_string()],
            &[],
            Duration::from_secs(4 * 3600),
        )
        .unwrap_or_else(|e| die(e))
    };
    let victim_tokens = Arc::new(vec![mint("victim", "UN", "un-analyst")]);
    // Of the default rate limit (the bench gives un-analysts a rate nobody reaches).
    let attacker = Arc::new(vec![mint("attacker", "MLI", "member-state-analyst")]);
    let heavy = Arc::new(vec![mint("heavy", "UN", "un-analyst")]);
    let bursty = Arc::new(vec![mint("bursty", "UN", "un-analyst")]);
    let crowd: Arc<Vec<String>> = Arc::new(
        (0..burst)
            .map(|i| mint(&format!("crowd-{i}"), "UN", "un-analyst"))
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(burst + victims + 64)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a client");
    let list_query = format!(
        "{{ cases(filter: {{hostStates: [{}]}}) {{ totalCount }} }}",
        vec!["\"MLI\""; 30_000].join(",")
    );
    let mut scenarios = vec![
        "idle", "fanout20", "fanout39", "list30k", "slow2000", "burst", "crowd", "overrate",
    ];
    if idp.is_some() && idp_key.is_some() {
        scenarios.push("idphang");
    }
    if let Some(only) = &only {
        scenarios.retain(|s| only.iter().any(|o| o == s));
    }
    for round in 1..=rounds {
        for scenario in &scenarios {
            let stop = Arc::new(AtomicBool::new(false));
            let attack = Arc::new(Tally::default());
            let closed = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            let mut victim_tokens = Arc::clone(&victim_tokens);
            match *scenario {
                "idle" => {}
                "fanout20" | "fanout39" => {
                    let levels = if *scenario == "fanout20" { 20 } else { 39 };
                    let body = body_of(&fan_out(levels));
                    tasks = senders(
                        &client,
                        &url,
                        body,
                        Arc::clone(&heavy),
                        8,
                        Arc::clone(&attack),
                        Arc::clone(&stop),
                        false,
                    );
                }
                "list30k" => {
                    let body = body_of(&list_query);
                    tasks = senders(
                        &client,
                        &url,
                        body,
                        Arc::clone(&heavy),
                        8,
                        Arc::clone(&attack),
                        Arc::clone(&stop),
                        false,
                    );
                }
                "slow2000" => {
                    tasks = slow_connections(addr, 2_000, Arc::clone(&closed), Arc::clone(&stop));
                }
                "burst" => {
                    let body = body_of(NORMAL);
                    tasks = senders(
                        &client,
                        &url,
                        body,
                        Arc::clone(&bursty),
                        burst,
                        Arc::clone(&attack),
                        Arc::clone(&stop),
                        false,
                    );
                }
                "crowd" => {
                    let body = body_of(NORMAL);
                    tasks = senders(
                        &client,
                        &url,
                        body,
                        Arc::clone(&crowd),
                        burst,
                        Arc::clone(&attack),
                        Arc::clone(&stop),
                        true,
                    );
                }
                "overrate" => {
                    let body = body_of(NORMAL);
                    tasks = senders(
                        &client,
                        &url,
                        body,
                        Arc::clone(&attacker),
                        16,
                        Arc::clone(&attack),
                        Arc::clone(&stop),
                        false,
                    );
                }
                "idphang" => {
                    let (idp, key) = (
                        idp.as_ref().expect("checked"),
                        idp_key.as_ref().expect("checked"),
                    );
                    victim_tokens = Arc::new(vec![idp_token(key, "victim-idp")]);
                    let control = idp.join("hang").expect("a URL");
                    client.post(control).send().await.unwrap_or_else(|e| die(e));
                }
                other => die(format!("unknown scenario {other}")),
            }
            // The attack settles during the warm-up; victims are measured after it.
            tokio::time::sleep(warmup).await;
            let victim = Arc::new(Tally::default());
            let victim_stop = Arc::new(AtomicBool::new(false));
            let victim_tasks = senders(
                &client,
                &url,
                body_of(NORMAL),
                victim_tokens,
                victims,
                Arc::clone(&victim),
                Arc::clone(&victim_stop),
                false,
            );
            let attack_before = attack.latencies_us.lock().expect("lock").len();
            let started = Instant::now();
            tokio::time::sleep(duration).await;
            victim_stop.store(true, Ordering::Relaxed);
            let seconds = started.elapsed().as_secs_f64();
            for t in victim_tasks {
                let _ = t.await;
            }
            let rss = rss_kib(pid);
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.abort();
            }
            if *scenario == "idphang" {
                let control = idp
                    .as_ref()
                    .expect("checked")
                    .join("answer")
                    .expect("a URL");
                client.post(control).send().await.unwrap_or_else(|e| die(e));
            }
            let attack_summary = attack.summary(seconds + warmup.as_secs_f64());
            let line = json!({
                "kind": "scenario",
                "round": round,
                "scenario": scenario,
                "seconds": seconds,
                "victim": victim.summary(seconds),
                "attack": attack_summary,
                "attack_requests_in_window": attack.latencies_us.lock().expect("lock").len() - attack_before,
                "slow_connections_closed_by_gateway": closed.load(Ordering::Relaxed),
                "gateway_rss_kib": rss,
            });
            println!("{line}");
            eprintln!(
                "round {round} {scenario:>9}: victim p50 {} ms p99 {} ms ({} ok, statuses {}), attack statuses {}",
                line["victim"]["p50_ms"], line["victim"]["p99_ms"], line["victim"]["ok"],
                line["victim"]["statuses"], line["attack"]["statuses"]
            );
            // Let the gateway drain what the attack left before the next scenario.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
