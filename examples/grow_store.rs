//! Grows a case store with synthetic copies of the cases it already holds (used by
//! `scripts/bench.sh` to measure the gateway on 100× the real data).
//!
//! ```text
//! cargo run --release --example grow_store -- sqlite:///tmp/big/casegraph.db 100 [--chunk 2000]
//! ```
//!
//! Reads every non-synthetic case and its victims through the public store API
//! (`list_cases`, `victims_by_case_ids`), then writes `FACTOR` copies of each through
//! `Store::import_cases` with source `SYNTHETIC-x<FACTOR>`, in chunks (one transaction each).
//! Each copy keeps the mission, host state, acts and victims (category, nationality,
//! contributing country, harm, gender) of its original, so that filters select the same share of
//! the data; only the incident date is jittered, deterministically, within the same calendar
//! year (never after today). Import keys (`SYNTHETIC-x100:<case id>:<copy>`) and references
//! (`<MISSION>-<YYYYMMDD>-S<copy>`) are distinct, so running it twice changes nothing.

use std::time::Instant;

use casegraph::domain::CountryCode;
use casegraph::store::{CaseCursor, CaseFilter, CaseOrder, ImportedCase, NewVictim, VictimRecord};
use chrono::{Datelike, NaiveDate};
use std::collections::HashMap;

/// SplitMix64: a deterministic, dependency-free mix of (case, copy) into a day offset.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A date in the same year as `date`, chosen by `seed`, not after `today`.
fn jitter(date: NaiveDate, seed: u64, today: NaiveDate) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("1 January exists");
    let last = NaiveDate::from_ymd_opt(date.year(), 12, 31)
        .expect("31 December exists")
        .min(today.max(date));
    let span = u64::try_from((last - first).num_days()).unwrap_or(0) + 1;
    first + chrono::Days::new(mix(seed) % span)
}

fn country(code: Option<&str>) -> anyhow::Result<Option<CountryCode>> {
    code.map(|c| CountryCode::parse(c).map_err(|e| anyhow::anyhow!("stored country `{c}`: {e}")))
        .transpose()
}

fn new_victim(v: &VictimRecord) -> anyhow::Result<NewVictim> {
    Ok(NewVictim {
        category: v.category,
        contributing_country: country(v.contributing_country.as_deref())?,
        nationality: country(v.nationality.as_deref())?,
        harm: v.harm,
        gender: v.gender,
        name: v.name.clone(),
        service_number: v.service_number.clone(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: grow_store STORE_URL FACTOR [--chunk N]";
    let (url, factor) = match args.as_slice() {
        [url, factor, ..] => (
            url.clone(),
            factor
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("{usage}"))?,
        ),
        _ => anyhow::bail!("{usage}"),
    };
    let chunk = match args.iter().position(|a| a == "--chunk") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| anyhow::anyhow!("{usage}"))?,
        None => 2000,
    };
    anyhow::ensure!(factor >= 1 && chunk >= 1, "{usage}");
    let source = format!("SYNTHETIC-x{factor}");

    let store = casegraph::store::connect(&url, 4).await?;
    let started = Instant::now();

    // Every case, page by page (keyset pagination), leaving out earlier synthetic copies.
    let order = CaseOrder::default();
    let filter = CaseFilter::all();
    let mut cases = Vec::new();
    let mut after: Option<CaseCursor> = None;
    loop {
        let page = store
            .list_cases(&filter, order, after.as_ref(), 500)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(CaseCursor::after(last, order));
        cases.extend(
            page.into_iter()
                .filter(|c| !c.source.starts_with("SYNTHETIC")),
        );
    }
    anyhow::ensure!(
        !cases.is_empty(),
        "the store at {url} holds no case to copy; import the UN data first"
    );

    let mut victims: HashMap<String, Vec<VictimRecord>> = HashMap::new();
    for ids in cases
        .iter()
        .map(|c| c.id.clone())
        .collect::<Vec<_>>()
        .chunks(500)
    {
        for v in store.victims_by_case_ids(ids).await? {
            victims.entry(v.case_id.clone()).or_default().push(v);
        }
    }
    let victim_total: usize = victims.values().map(Vec::len).sum();
    eprintln!(
        "grow_store: read {} cases, {} victims in {:.2}s; writing {} copies each ({} cases, {} victims) as {source}, {chunk} cases per transaction",
        cases.len(),
        victim_total,
        started.elapsed().as_secs_f64(),
        factor,
        cases.len() * factor as usize,
        victim_total * factor as usize,
    );

    let today = chrono::Utc::now().date_naive();
    let mut synthetic = Vec::with_capacity(cases.len() * factor as usize);
    for copy in 0..factor {
        for c in &cases {
            let import_key = format!("{source}:{}:{copy}", c.id);
            let date = jitter(c.incident_date, fnv1a(&import_key), today);
            let reference = format!(
                "{}-{}-S{copy:03}",
                c.mission_code.replace(' ', "-").to_uppercase(),
                date.format("%Y%m%d")
            );
            let case_victims = victims
                .get(&c.id)
                .map(|vs| {
                    vs.iter()
                        .enumerate()
                        .map(|(i, v)| Ok((format!("{import_key}:v{i}"), new_victim(v)?)))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .transpose()?
                .unwrap_or_default();
            synthetic.push(ImportedCase {
                import_key,
                reference,
                mission_code: c.mission_code.clone(),
                host_state: c.host_state.clone(),
                incident_date: date,
                acts: c.acts.clone(),
                summary: c.summary.clone(),
                victims: case_victims,
            });
        }
    }

    let write_started = Instant::now();
    let total = synthetic.len();
    let noop = |_: usize, _: usize| {};
    let (mut inserted, mut unchanged, mut updated) = (0, 0, 0);
    for (i, part) in synthetic.chunks(chunk).enumerate() {
        let t0 = Instant::now();
        let counts = store.import_cases(part, &source, &noop).await?;
        inserted += counts.inserted;
        updated += counts.updated;
        unchanged += counts.unchanged;
        let done = (i * chunk + part.len()).min(total);
        eprintln!(
            "grow_store: {done:>7}/{total} cases written ({:.1}s this chunk, {:.0} cases/s overall)",
            t0.elapsed().as_secs_f64(),
            done as f64 / write_started.elapsed().as_secs_f64()
        );
    }
    let count = store.count_cases(&CaseFilter::all()).await?;
    println!(
        "grow_store: {inserted} inserted, {updated} updated, {unchanged} unchanged; the store now holds {count} cases; \
         writing took {:.1}s ({:.0} cases/s)",
        write_started.elapsed().as_secs_f64(),
        total as f64 / write_started.elapsed().as_secs_f64()
    );
    Ok(())
}
