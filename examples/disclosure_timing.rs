//! Times `access::disclosure::protect` on the bundled UN data, for a principal that sees no
//! case and for Senegal (which sees the cases with Senegalese victims or contingents):
//!
//! ```text
//! cargo run --release --example disclosure_timing [RUNS]
//! ```
//!
//! Imports the bundled datasets into a temporary SQLite store, reads the tables once, then runs
//! `protect` RUNS times (default 21) per principal and prints the cells withheld per table and
//! the min / median / max time. The store reads are not timed: in the gateway they sit behind
//! the same cache as the result.

use casegraph::access::disclosure::{
    protect, Cell, Dimension, MissionFact, Reason, Tables, Visible,
};
use casegraph::access::{CaseCondition, Visibility};
use casegraph::import::{self, ImportOptions};
use casegraph::store::{CaseFilter, MissionFilter, StatisticsDimension};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(21);
    let dir = tempfile::tempdir()?;
    let store =
        casegraph::store::connect(&format!("sqlite://{}/x.db", dir.path().display()), 2).await?;
    import::import_bundled(store.as_ref(), ImportOptions::default()).await?;

    let all = CaseFilter::all();
    let cells = |rows: Vec<casegraph::store::StatisticsRow>| -> Vec<Cell> {
        rows.iter().map(Cell::from).collect()
    };
    let tables = Tables::new(
        store.case_cross_counts(&all).await?,
        cells(store.statistics(StatisticsDimension::Act, &all).await?),
    );
    let facts: Vec<MissionFact> = store
        .list_missions(&MissionFilter::default())
        .await?
        .iter()
        .map(MissionFact::from)
        .collect();
    // What a Member State's analyst sees under the bundled policy.
    let state = vec!["SEN".to_string()];
    let sen = CaseFilter {
        visibility: Visibility::Any(vec![
            CaseCondition::HostStateIn(state.clone()),
            CaseCondition::VictimNationalityIn(state.clone()),
            CaseCondition::VictimContributorIn(state),
        ]),
        ..CaseFilter::all()
    };
    let senegal = Visible {
        cross: store.case_cross_counts(&sen).await?,
        acts: cells(store.statistics(StatisticsDimension::Act, &sen).await?),
        complete_hosts: vec!["SEN".into()],
        complete_missions: vec![],
    };

    for (who, visible) in [("sees no case", Visible::nothing()), ("SEN", senegal)] {
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        let mut protection = None;
        for _ in 0..runs {
            let start = Instant::now();
            protection = Some(protect(&tables, &facts, &visible, 3));
            times.push(start.elapsed());
        }
        times.sort();
        let p = protection.expect("at least one run");
        let per_table: Vec<String> = Dimension::ALL
            .iter()
            .map(|d| format!("{d} {}", p.withheld_in(*d)))
            .collect();
        let primary = p.withheld().filter(|(_, r)| *r == Reason::Primary).count();
        let complements: Vec<String> = p
            .withheld()
            .filter(|(_, r)| *r == Reason::Complementary)
            .map(|(c, _)| c.to_string())
            .collect();
        println!(
            "{who}: {} withheld, {primary} of them primary ({}; total {}); protect over {runs} runs: \
             min {:.2?}, median {:.2?}, max {:.2?}",
            p.len(),
            per_table.join(", "),
            if p.total_published() { "published" } else { "withheld" },
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
        );
        println!("  complements: {}", complements.join(", "));
    }
    Ok(())
}
