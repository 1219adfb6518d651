//! Statistical disclosure control for `Query.statistics`: cell suppression, checked by an audit.
//!
//! # What a principal can see
//!
//! A principal that is not concerned with every case (a Member State's analyst, a regional
//! organisation) may ask for the four unfiltered tables — cases and victims per MISSION,
//! HOST_STATE, YEAR and ACT — and nothing finer: statistics filters are refused to it. It can
//! also read every mission's public facts (`Query.missions { kind hostTerritories startDate
//! endDate }`) and list the cases it is related to with any filter, so it knows their mission,
//! host state, year, acts and victim count exactly, and it knows that it sees *every* case
//! hosted by its own state (or, for a focal point, every case of its missions).
//!
//! Tables computed from one set of cases are linked: each case has exactly one mission, one host
//! state (or none known) and one year, so the MISSION, HOST_STATE and YEAR tables are margins of
//! one joint table and share one total; a mission's cases lie in its host territories (anywhere
//! for a UN entity) and, when its dates are known, within its years; the ACT table counts a case
//! once per act and so is tied to the others through the total only (every case has at least one
//! act). Suppressing the small cells of each table separately therefore leaks: subtract the
//! published cells of one table from a published cell of another, and a suppressed cell can come
//! out exactly. This module withholds cells so that none can.
//!
//! # Method
//!
//! This is the cell suppression practised by national statistical offices (the method that
//! tools such as tau-ARGUS implement), restated for CaseGraph's tables:
//!
//! 1. **Primary suppression.** A cell (or the total) is sensitive when it holds at least one and
//!    fewer than `threshold` cases *and* at least one case the principal cannot see. A small
//!    cell made only of the principal's own cases tells it nothing new and is published. A
//!    cell's case and victim counts are withheld together.
//! 2. **Audit.** The principal's knowledge is written as a system of linear constraints over the
//!    unknown counts: the published cells and totals; every listed group has at least one case,
//!    an absent key none; the mission facts above; every count at least what the principal sees
//!    of it, and exactly that where it sees everything (its own host state, its missions). For
//!    every withheld cell the lowest and the highest value the system allows are computed, for
//!    cases and for victims. A cell is *disclosed* when they are equal.
//! 3. **Complementary suppression.** While some withheld cell is disclosed, more published cells
//!    are withheld: those on the cheapest cycle of the network below through the disclosed cell
//!    (the cost of opening a cell is its case count, so small cells go first; the total and the
//!    ACT cells are candidates too), or, where no cycle exists, the smallest published cell
//!    linked to it. Withholding a cell only widens what the principal must consider possible,
//!    so a cell once protected stays protected; every round withholds at least one more cell,
//!    so the loop ends (at worst with everything withheld, where no count the principal cannot
//!    see entirely has an upper bound).
//!
//! # Why the audit is exact and fast
//!
//! The joint table need not be written down: a mission links its host side and its year side
//! only through its own count. The unknowns are x\[mission, host\] and y\[mission, year\],
//! and the constraints form a circulation in the network source → host → mission → year → sink
//! → source, where every table cell and the total is the flow on one arc, bounded either to its
//! published value or to what the principal knows. The constraint matrix of a network is a
//! network matrix, hence totally unimodular: with integer bounds the linear program's optimum
//! is integral, so the LP bounds are the integer bounds, not an approximation. The ACT table
//! touches this network only through the total T: with a\[k\] the cases with act k that the
//! principal cannot see and T' the cases it cannot see, a\[k\] ≤ T' and Σ a\[k\] ≥ T'. For a
//! fixed T the feasible a form an integer box cut by one sum, and the totals that the ACT table
//! allows form an integer interval, so the ACT side reduces exactly to bounds on the total arc
//! plus a closed formula per act cell. Victim counts get the same network with their own
//! unknowns.
//!
//! [`audit`] solves these programs with an LP solver (`good_lp` over the pure-Rust `microlp`,
//! integer variables on the ACT side): it is the proof, used by tests. [`protect`], which runs
//! in the request path, asks the same question in the network directly: starting from the true
//! counts (a feasible flow), a cell can take another value exactly when the residual network
//! has a cycle through its arc — a graph search, microseconds per cell, no solver.
//!
//! # Where the data contradicts the public facts
//!
//! Some recorded cases lie outside their mission's territories or years (historical data has
//! such quirks). The principal's model would then be infeasible, so it is widened with the true
//! support: the (mission, host) and (mission, year) pairs that hold cases are always allowed.
//! A principal that believed the public facts strictly would find them contradicted, not
//! pinned to a value. Likewise a case with no act, should one exist, drops the "every case has
//! an act" constraint. Counts the principal sees are clamped to the true ones, so a write
//! between the two store reads cannot make the model infeasible.
//!
//! # Limits
//!
//! Case and victim counts are audited as two separate networks. A principal that combined
//! them (a pair that can hold no case holds no victim) could know a little more than the
//! victim network says; the case network, which carries the threshold rule, is exact. The
//! rule is the one the policy states — no withheld count can be worked out exactly — not a
//! minimum width for the interval (tau-ARGUS's protection levels), and the threshold applies
//! to a group's size: a group of `threshold` cases or more is published even when the
//! principal sees all but one of them.

use crate::domain::MissionKind;
use crate::store::{CrossCount, MissionRecord, StatisticsDimension, StatisticsRow};
use chrono::{Datelike, NaiveDate};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;

/// No upper bound (also "infinite capacity" inside the network).
const INF: i64 = i64::MAX / 4;
/// Index of the case count in `[cases, victims]` pairs.
const CASES: usize = 0;
/// Index of the victim count in `[cases, victims]` pairs.
const VICTIMS: usize = 1;
/// LP optima this large mean "no upper bound" (see `lp_interval`).
const UNBOUNDED_LP: i64 = 1 << 30;

/// A statistics table's grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// Mission code.
    Mission,
    /// Host state (`None` where unknown).
    HostState,
    /// Incident year.
    Year,
    /// Act (a case with two acts counts in both groups).
    Act,
}

impl Dimension {
    /// The four tables, in a fixed order.
    pub const ALL: [Dimension; 4] = [
        Dimension::Mission,
        Dimension::HostState,
        Dimension::Year,
        Dimension::Act,
    ];

    /// The GraphQL name of the dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Mission => "MISSION",
            Dimension::HostState => "HOST_STATE",
            Dimension::Year => "YEAR",
            Dimension::Act => "ACT",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<StatisticsDimension> for Dimension {
    fn from(d: StatisticsDimension) -> Self {
        match d {
            StatisticsDimension::Mission => Dimension::Mission,
            StatisticsDimension::HostState => Dimension::HostState,
            StatisticsDimension::Year => Dimension::Year,
            StatisticsDimension::Act => Dimension::Act,
        }
    }
}

/// One group of a table: its key and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Group key (mission code, alpha-3, year or act); `None` for an unknown host state.
    pub key: Option<String>,
    /// Cases in the group.
    pub cases: i64,
    /// Victims of those cases.
    pub victims: i64,
}

impl From<&StatisticsRow> for Cell {
    fn from(r: &StatisticsRow) -> Self {
        Cell {
            key: r.key.clone(),
            cases: r.case_count,
            victims: r.victim_count,
        }
    }
}

/// The global, unscoped statistics: the joint (mission, host state, year) counts — whose margins
/// are the MISSION, HOST_STATE and YEAR tables — and the ACT table. Giving the joint counts
/// rather than the three tables keeps them consistent, and lets the model be widened where the
/// data contradicts the public mission facts.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    cross: Vec<CrossCount>,
    acts: Vec<Cell>,
}

impl Tables {
    /// Tables from the store's `case_cross_counts` and `statistics(ACT)` over every case.
    pub fn new(cross: Vec<CrossCount>, acts: Vec<Cell>) -> Self {
        Tables { cross, acts }
    }

    /// One table as `statistics` computes it (before suppression), ordered by key.
    pub fn rows(&self, dimension: Dimension) -> Vec<Cell> {
        if dimension == Dimension::Act {
            let mut rows: Vec<Cell> = self.acts.clone();
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            return rows;
        }
        let mut groups: BTreeMap<Option<String>, [i64; 2]> = BTreeMap::new();
        for c in &self.cross {
            let key = match dimension {
                Dimension::Mission => Some(c.mission.clone()),
                Dimension::HostState => c.host_state.clone(),
                _ => Some(c.year.clone()),
            };
            let g = groups.entry(key).or_default();
            g[CASES] += c.cases;
            g[VICTIMS] += c.victims;
        }
        groups
            .into_iter()
            .map(|(key, [cases, victims])| Cell {
                key,
                cases,
                victims,
            })
            .collect()
    }

    /// Total cases and victims (each case counted once).
    pub fn total(&self) -> (i64, i64) {
        self.cross
            .iter()
            .fold((0, 0), |(c, v), r| (c + r.cases, v + r.victims))
    }
}

/// What is public about a mission (`Query.missions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissionFact {
    /// Mission code.
    pub code: String,
    /// Territories where it operated (alpha-3).
    pub host_territories: Vec<String>,
    /// A UN entity rather than a mission: its cases may be anywhere.
    pub any_host: bool,
    /// Start date, when known.
    pub start: Option<NaiveDate>,
    /// End date, when known (none while active).
    pub end: Option<NaiveDate>,
}

impl From<&MissionRecord> for MissionFact {
    fn from(m: &MissionRecord) -> Self {
        MissionFact {
            code: m.code.to_string(),
            host_territories: m.host_territories.iter().map(|c| c.to_string()).collect(),
            any_host: m.kind == MissionKind::UnEntity,
            start: m.start_date,
            end: m.end_date,
        }
    }
}

/// What a principal sees of the cases itself.
///
/// Built from the principal's visibility (`Viewpoint::visibility`, not `All` exactly when cells
/// are suppressed for it): with `filter = CaseFilter { visibility, ..CaseFilter::all() }`,
/// `cross` is `store.case_cross_counts(&filter)`, `acts` is `store.statistics(ACT, &filter)`,
/// `complete_hosts` is `visibility.complete_hosts()` and `complete_missions` is
/// `visibility.complete_missions()`. Two principals with the same visibility get the same
/// [`Protection`] (the statistics resolver recomputes it per request; it takes milliseconds).
#[derive(Debug, Clone, Default)]
pub struct Visible {
    /// Its visible cases, grouped by (mission, host state, year): the store's
    /// `case_cross_counts` with the principal's scope as filter.
    pub cross: Vec<CrossCount>,
    /// Its visible cases per act: `statistics(ACT)` with its scope as filter.
    pub acts: Vec<Cell>,
    /// Host states all of whose cases it sees (a Member State sees every case it hosts).
    pub complete_hosts: Vec<String>,
    /// Missions all of whose cases it sees (a focal point's missions).
    pub complete_missions: Vec<String>,
}

impl Visible {
    /// A principal that sees no case.
    pub fn nothing() -> Self {
        Visible::default()
    }
}

/// A cell of one table, or the total (the same two numbers in every table).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellRef {
    /// The total number of cases and of victims.
    Total,
    /// A group of one table.
    Group {
        /// The table.
        dimension: Dimension,
        /// The group's key.
        key: Option<String>,
    },
}

impl CellRef {
    /// A group of `dimension`.
    pub fn group(dimension: Dimension, key: Option<&str>) -> Self {
        CellRef::Group {
            dimension,
            key: key.map(str::to_string),
        }
    }
}

impl fmt::Display for CellRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellRef::Total => f.write_str("TOTAL"),
            CellRef::Group { dimension, key } => {
                write!(f, "{dimension} {}", key.as_deref().unwrap_or("(unknown)"))
            }
        }
    }
}

/// Why a cell is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Too small, and holds cases the principal cannot see.
    Primary,
    /// Withheld so that no other withheld cell can be worked out.
    Complementary,
}

/// Which cells are withheld from one principal. A withheld cell withholds both its case and its
/// victim count; a withheld total withholds `totalCases` and `totalVictims` of every table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    withheld: BTreeMap<CellRef, Reason>,
}

impl Protection {
    /// Whether the group `key` of `dimension` is withheld.
    pub fn is_withheld(&self, dimension: Dimension, key: Option<&str>) -> bool {
        self.withheld.contains_key(&CellRef::group(dimension, key))
    }

    /// Whether the totals are published.
    pub fn total_published(&self) -> bool {
        !self.withheld.contains_key(&CellRef::Total)
    }

    /// Every withheld cell and why, in a fixed order.
    pub fn withheld(&self) -> impl Iterator<Item = (&CellRef, Reason)> {
        self.withheld.iter().map(|(c, r)| (c, *r))
    }

    /// How many groups of `dimension` are withheld.
    pub fn withheld_in(&self, dimension: Dimension) -> usize {
        self.withheld
            .keys()
            .filter(|c| matches!(c, CellRef::Group { dimension: d, .. } if *d == dimension))
            .count()
    }

    /// How many cells (totals included) are withheld.
    pub fn len(&self) -> usize {
        self.withheld.len()
    }

    /// Whether nothing is withheld.
    pub fn is_empty(&self) -> bool {
        self.withheld.is_empty()
    }

    /// Withholds `cell` (a cell already withheld keeps its first reason). For building a
    /// publication by hand, e.g. to audit one.
    pub fn withhold(&mut self, cell: CellRef, reason: Reason) {
        self.withheld.entry(cell).or_insert(reason);
    }
}

/// The values of one count consistent with everything a principal sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Lowest value.
    pub min: i64,
    /// Highest value; `None` when nothing bounds it.
    pub max: Option<i64>,
}

impl Interval {
    /// Whether the count is worked out exactly (lowest equals highest).
    pub fn is_exact(&self) -> bool {
        self.max == Some(self.min)
    }

    /// Whether `value` lies in the interval.
    pub fn contains(&self, value: i64) -> bool {
        self.min <= value && self.max.is_none_or(|m| value <= m)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(f, "[{}, {max}]", self.min),
            None => write!(f, "[{}, ∞)", self.min),
        }
    }
}

/// The audit of one withheld cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellInterval {
    /// The cell.
    pub cell: CellRef,
    /// Its case count's interval.
    pub cases: Interval,
    /// Its victim count's interval.
    pub victims: Interval,
}

impl CellInterval {
    /// Whether either count is worked out exactly.
    pub fn is_disclosed(&self) -> bool {
        self.cases.is_exact() || self.victims.is_exact()
    }
}

/// An audit that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The LP solver failed (or found the model infeasible, which the true counts rule out).
    #[error("the audit's linear program for {cell} ({measure}) failed: {reason}")]
    Solver {
        /// Cell being bounded.
        cell: String,
        /// "cases" or "victims".
        measure: &'static str,
        /// Solver message.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The model: what the principal knows, shared by `protect` and `audit`.
// ---------------------------------------------------------------------------------------------

/// One cell (or the total) of the model.
#[derive(Debug, Clone)]
struct CellInfo {
    cell: CellRef,
    truth: [i64; 2],
    seen: [i64; 2],
    /// The principal knows the value exactly (it sees every case the cell can hold).
    exact: bool,
}

/// One unknown x[mission, host] or y[mission, year] of the joint table.
#[derive(Debug, Clone)]
struct Pair {
    mission: usize,
    other: usize,
    truth: [i64; 2],
    seen: [i64; 2],
    exact: bool,
}

/// The principal's knowledge, cell by cell. Cell 0 is the total.
#[derive(Debug, Clone)]
struct Model {
    cells: Vec<CellInfo>,
    index: HashMap<CellRef, usize>,
    missions: Vec<usize>,
    hosts: Vec<usize>,
    years: Vec<usize>,
    acts: Vec<usize>,
    xs: Vec<Pair>,
    ys: Vec<Pair>,
    /// Per measure: "an act cell's unseen part ≤ the unseen total" holds in the data.
    act_cap: [bool; 2],
    /// Per measure: "the unseen act cells add up to at least the unseen total" holds.
    act_cover: [bool; 2],
}

const TOTAL: usize = 0;

fn add(a: &mut [i64; 2], c: i64, v: i64) {
    a[CASES] += c;
    a[VICTIMS] += v;
}

fn min2(a: [i64; 2], b: [i64; 2]) -> [i64; 2] {
    [a[0].min(b[0]), a[1].min(b[1])]
}

impl Model {
    fn build(tables: &Tables, missions: &[MissionFact], visible: &Visible) -> Model {
        type Key = (String, Option<String>, String);
        let mut truth: BTreeMap<Key, [i64; 2]> = BTreeMap::new();
        for c in tables.cross.iter().filter(|c| c.cases > 0) {
            let k = (c.mission.clone(), c.host_state.clone(), c.year.clone());
            add(truth.entry(k).or_default(), c.cases, c.victims);
        }
        let mut seen: BTreeMap<Key, [i64; 2]> = BTreeMap::new();
        for c in visible.cross.iter().filter(|c| c.cases > 0) {
            let k = (c.mission.clone(), c.host_state.clone(), c.year.clone());
            add(seen.entry(k).or_default(), c.cases, c.victims);
        }
        // A write between the two reads must not make the model infeasible.
        let seen: BTreeMap<Key, [i64; 2]> = seen
            .into_iter()
            .filter_map(|(k, s)| truth.get(&k).map(|t| (k, min2(s, *t))))
            .collect();

        let mut cells = vec![CellInfo {
            cell: CellRef::Total,
            truth: [0, 0],
            seen: [0, 0],
            exact: false,
        }];
        let mut index: HashMap<CellRef, usize> = HashMap::new();
        index.insert(CellRef::Total, TOTAL);
        let mut cell_id = |cells: &mut Vec<CellInfo>, cell: CellRef| -> usize {
            *index.entry(cell.clone()).or_insert_with(|| {
                cells.push(CellInfo {
                    cell,
                    truth: [0, 0],
                    seen: [0, 0],
                    exact: false,
                });
                cells.len() - 1
            })
        };
        let mut xs: BTreeMap<(usize, usize), Pair> = BTreeMap::new();
        let mut ys: BTreeMap<(usize, usize), Pair> = BTreeMap::new();
        let pair = |mission, other| Pair {
            mission,
            other,
            truth: [0, 0],
            seen: [0, 0],
            exact: false,
        };
        for ((m, h, y), t) in &truth {
            let s = seen.get(&(m.clone(), h.clone(), y.clone())).copied();
            let s = s.unwrap_or_default();
            let mc = cell_id(&mut cells, CellRef::group(Dimension::Mission, Some(m)));
            let hc = cell_id(
                &mut cells,
                CellRef::group(Dimension::HostState, h.as_deref()),
            );
            let yc = cell_id(&mut cells, CellRef::group(Dimension::Year, Some(y)));
            for id in [TOTAL, mc, hc, yc] {
                add(&mut cells[id].truth, t[CASES], t[VICTIMS]);
                add(&mut cells[id].seen, s[CASES], s[VICTIMS]);
            }
            let x = xs.entry((mc, hc)).or_insert_with(|| pair(mc, hc));
            add(&mut x.truth, t[CASES], t[VICTIMS]);
            add(&mut x.seen, s[CASES], s[VICTIMS]);
            let yp = ys.entry((mc, yc)).or_insert_with(|| pair(mc, yc));
            add(&mut yp.truth, t[CASES], t[VICTIMS]);
            add(&mut yp.seen, s[CASES], s[VICTIMS]);
        }
        let of = |d: Dimension, cells: &[CellInfo]| -> Vec<usize> {
            (0..cells.len())
                .filter(|&i| matches!(&cells[i].cell, CellRef::Group { dimension, .. } if *dimension == d))
                .collect()
        };
        let mission_ids = of(Dimension::Mission, &cells);
        let host_ids = of(Dimension::HostState, &cells);
        let year_ids = of(Dimension::Year, &cells);

        // Acts: their own table, tied to the rest through the total.
        let seen_acts: HashMap<Option<String>, [i64; 2]> = visible
            .acts
            .iter()
            .map(|c| (c.key.clone(), [c.cases, c.victims]))
            .collect();
        let mut act_ids = Vec::new();
        for a in tables.acts.iter().filter(|a| a.cases > 0) {
            let id = cell_id(&mut cells, CellRef::group(Dimension::Act, a.key.as_deref()));
            cells[id].truth = [a.cases, a.victims];
            cells[id].seen = min2(
                seen_acts.get(&a.key).copied().unwrap_or_default(),
                [a.cases, a.victims],
            );
            act_ids.push(id);
        }

        // The public model, widened with the pairs that hold cases.
        let facts: HashMap<&str, &MissionFact> =
            missions.iter().map(|f| (f.code.as_str(), f)).collect();
        let keys: Vec<Option<String>> = cells
            .iter()
            .map(|c| match &c.cell {
                CellRef::Group { key, .. } => key.clone(),
                CellRef::Total => None,
            })
            .collect();
        let key_of = |id: usize| keys[id].clone();
        for &m in &mission_ids {
            let code = key_of(m).unwrap_or_default();
            let fact = facts.get(code.as_str()).copied();
            for &h in &host_ids {
                if !xs.contains_key(&(m, h)) && host_allowed(fact, key_of(h).as_deref()) {
                    xs.insert((m, h), pair(m, h));
                }
            }
            for &y in &year_ids {
                if !ys.contains_key(&(m, y)) && year_allowed(fact, key_of(y).as_deref()) {
                    ys.insert((m, y), pair(m, y));
                }
            }
        }
        let mut xs: Vec<Pair> = xs.into_values().collect();
        let mut ys: Vec<Pair> = ys.into_values().collect();

        // What the principal sees entirely.
        let complete_hosts: HashSet<Option<String>> = visible
            .complete_hosts
            .iter()
            .map(|h| Some(h.clone()))
            .collect();
        let complete_missions: HashSet<&str> = visible
            .complete_missions
            .iter()
            .map(String::as_str)
            .collect();
        for &m in &mission_ids {
            let own = complete_missions.contains(key_of(m).unwrap_or_default().as_str());
            let all_hosts_seen = xs
                .iter()
                .filter(|x| x.mission == m)
                .all(|x| complete_hosts.contains(&key_of(x.other)));
            if own || all_hosts_seen {
                cells[m].exact = true;
            }
        }
        for x in &mut xs {
            x.exact = cells[x.mission].exact || complete_hosts.contains(&key_of(x.other));
        }
        for y in &mut ys {
            y.exact = cells[y.mission].exact;
        }
        for &h in &host_ids {
            cells[h].exact = xs.iter().filter(|x| x.other == h).all(|x| x.exact);
        }
        for &y in &year_ids {
            cells[y].exact = ys.iter().filter(|p| p.other == y).all(|p| p.exact);
        }
        cells[TOTAL].exact = mission_ids.iter().all(|&m| cells[m].exact);

        let mut act_cap = [true; 2];
        let mut act_cover = [true; 2];
        for k in 0..2 {
            let unseen_total = cells[TOTAL].truth[k] - cells[TOTAL].seen[k];
            let unseen = |id: usize| cells[id].truth[k] - cells[id].seen[k];
            act_cap[k] = act_ids.iter().all(|&a| unseen(a) <= unseen_total);
            act_cover[k] = act_ids.iter().map(|&a| unseen(a)).sum::<i64>() >= unseen_total;
        }
        Model {
            cells,
            index,
            missions: mission_ids,
            hosts: host_ids,
            years: year_ids,
            acts: act_ids,
            xs,
            ys,
            act_cap,
            act_cover,
        }
    }

    fn is_group(&self, id: usize) -> bool {
        id != TOTAL
    }

    /// Bounds of cell `id`'s `k` count: its value when published; what the principal knows
    /// when withheld.
    fn cell_bounds(&self, id: usize, k: usize, withheld: bool) -> (i64, i64) {
        let c = &self.cells[id];
        if !withheld || c.exact {
            return (c.truth[k], c.truth[k]);
        }
        // A listed group holds at least one case.
        let listed = if k == CASES && self.is_group(id) {
            1
        } else {
            0
        };
        (c.seen[k].max(listed), INF)
    }

    fn pair_bounds(p: &Pair, k: usize) -> (i64, i64) {
        if p.exact {
            (p.truth[k], p.truth[k])
        } else {
            (p.seen[k], INF)
        }
    }

    /// Residual bounds (unseen part) of every act cell's `k` count.
    fn act_residues(&self, k: usize, withheld: &[bool]) -> Vec<(i64, i64)> {
        self.acts
            .iter()
            .map(|&a| {
                let (lo, hi) = self.cell_bounds(a, k, withheld[a]);
                let s = self.cells[a].seen[k];
                (lo - s, if hi >= INF { INF } else { hi - s })
            })
            .collect()
    }

    /// The totals the ACT table allows, as absolute bounds on the total's `k` count.
    fn act_total_range(&self, k: usize, withheld: &[bool]) -> (i64, i64) {
        let res = self.act_residues(k, withheld);
        let lo = if self.act_cap[k] {
            res.iter().map(|r| r.0).max().unwrap_or(0).max(0)
        } else {
            0
        };
        let hi = if self.act_cover[k] {
            res.iter()
                .map(|r| r.1)
                .try_fold(0i64, |acc, h| (h < INF).then(|| acc + h))
                .unwrap_or(INF)
        } else {
            INF
        };
        let s = self.cells[TOTAL].seen[k];
        (lo + s, if hi >= INF { INF } else { hi + s })
    }

    /// Bounds of the total's `k` count: its own, cut by what the ACT table allows.
    fn total_bounds(&self, k: usize, withheld: &[bool]) -> (i64, i64) {
        let (lo, hi) = self.cell_bounds(TOTAL, k, withheld[TOTAL]);
        let (alo, ahi) = self.act_total_range(k, withheld);
        (lo.max(alo), hi.min(ahi))
    }

    /// The interval of act cell `act` (index into `acts`) when the total's `k` count ranges
    /// over `[tlo, thi]`.
    fn act_interval(
        &self,
        act: usize,
        k: usize,
        withheld: &[bool],
        tlo: i64,
        thi: i64,
    ) -> Interval {
        let res = self.act_residues(k, withheld);
        let s_total = self.cells[TOTAL].seen[k];
        let tlo = tlo - s_total;
        let thi = if thi >= INF {
            INF
        } else {
            (thi - s_total).max(tlo)
        };
        let (lo_k, hi_k) = res[act];
        let upper = if self.act_cap[k] { hi_k.min(thi) } else { hi_k };
        let mut lower = lo_k;
        if self.act_cover[k] {
            // g(T) = T − Σ_{j≠k} min(hi_j, T) is convex and piecewise linear with breakpoints
            // at the hi_j: its minimum over [tlo, thi] is at an end or a breakpoint.
            let g = |t: i64| -> i64 {
                let others: i64 = res
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != act)
                    .map(|(_, r)| if self.act_cap[k] { r.1.min(t) } else { r.1 })
                    .fold(0i64, |a, b| a.saturating_add(b));
                t.saturating_sub(others)
            };
            let mut points = vec![tlo];
            if thi < INF {
                points.push(thi);
            }
            points.extend(
                res.iter()
                    .enumerate()
                    .filter(|(j, r)| *j != act && r.1 < INF)
                    .map(|(_, r)| r.1.clamp(tlo, thi)),
            );
            let gmin = points.into_iter().map(g).min().unwrap_or(i64::MIN);
            lower = lower.max(gmin);
        }
        let s = self.cells[self.acts[act]].seen[k];
        Interval {
            min: lower + s,
            max: (upper < INF).then_some(upper + s),
        }
    }
}

fn host_allowed(fact: Option<&MissionFact>, host: Option<&str>) -> bool {
    let Some(f) = fact else { return true };
    if f.any_host || f.host_territories.is_empty() {
        return true;
    }
    host.is_some_and(|h| f.host_territories.iter().any(|t| t == h))
}

fn year_allowed(fact: Option<&MissionFact>, year: Option<&str>) -> bool {
    let (Some(f), Some(Ok(y))) = (fact, year.map(str::parse::<i32>)) else {
        return true;
    };
    f.start.is_none_or(|d| d.year() <= y) && f.end.is_none_or(|d| y <= d.year())
}

// ---------------------------------------------------------------------------------------------
// The network: one circulation per measure, with the true counts as a feasible flow.
// ---------------------------------------------------------------------------------------------

const SOURCE: usize = 0;
const SINK: usize = 1;

#[derive(Debug, Clone, Copy)]
enum ArcKind {
    Cell(usize),
    X(usize),
    Y(usize),
}

#[derive(Debug, Clone)]
struct Arc {
    from: usize,
    to: usize,
    kind: ArcKind,
    flow: i64,
}

/// The circulation source → host → mission → year → sink → source of one measure.
struct Net<'m> {
    model: &'m Model,
    k: usize,
    nodes: usize,
    arcs: Vec<Arc>,
    /// Incident arcs of every node.
    adj: Vec<Vec<usize>>,
    /// Arc of every cell (act cells have none).
    cell_arc: HashMap<usize, usize>,
    /// Current bounds of every arc.
    lo: Vec<i64>,
    hi: Vec<i64>,
}

impl<'m> Net<'m> {
    fn new(model: &'m Model, k: usize, withheld: &[bool]) -> Self {
        let mut node_of: HashMap<usize, usize> = HashMap::new();
        let mut nodes = 2;
        let mut next = || {
            nodes += 1;
            nodes - 1
        };
        for &h in &model.hosts {
            node_of.insert(h, next());
        }
        let mut mission_out = HashMap::new();
        for &m in &model.missions {
            node_of.insert(m, next());
            mission_out.insert(m, next());
        }
        for &y in &model.years {
            node_of.insert(y, next());
        }
        let mut arcs = Vec::new();
        let mut cell_arc = HashMap::new();
        let push = |arcs: &mut Vec<Arc>, from, to, kind, flow| {
            arcs.push(Arc {
                from,
                to,
                kind,
                flow,
            });
            arcs.len() - 1
        };
        let t = model.cells[TOTAL].truth[k];
        cell_arc.insert(
            TOTAL,
            push(&mut arcs, SINK, SOURCE, ArcKind::Cell(TOTAL), t),
        );
        for &h in &model.hosts {
            let f = model.cells[h].truth[k];
            cell_arc.insert(h, push(&mut arcs, SOURCE, node_of[&h], ArcKind::Cell(h), f));
        }
        for (i, x) in model.xs.iter().enumerate() {
            push(
                &mut arcs,
                node_of[&x.other],
                node_of[&x.mission],
                ArcKind::X(i),
                x.truth[k],
            );
        }
        for &m in &model.missions {
            let f = model.cells[m].truth[k];
            let a = push(&mut arcs, node_of[&m], mission_out[&m], ArcKind::Cell(m), f);
            cell_arc.insert(m, a);
        }
        for (i, y) in model.ys.iter().enumerate() {
            push(
                &mut arcs,
                mission_out[&y.mission],
                node_of[&y.other],
                ArcKind::Y(i),
                y.truth[k],
            );
        }
        for &y in &model.years {
            let f = model.cells[y].truth[k];
            cell_arc.insert(y, push(&mut arcs, node_of[&y], SINK, ArcKind::Cell(y), f));
        }
        let nodes = nodes;
        let mut adj = vec![Vec::new(); nodes];
        for (i, a) in arcs.iter().enumerate() {
            adj[a.from].push(i);
            adj[a.to].push(i);
        }
        let mut net = Net {
            model,
            k,
            nodes,
            lo: vec![0; arcs.len()],
            hi: vec![0; arcs.len()],
            arcs,
            adj,
            cell_arc,
        };
        net.set_bounds(withheld);
        net
    }

    fn bounds_of(&self, arc: usize, withheld: &[bool]) -> (i64, i64) {
        match self.arcs[arc].kind {
            ArcKind::Cell(TOTAL) => self.model.total_bounds(self.k, withheld),
            ArcKind::Cell(c) => self.model.cell_bounds(c, self.k, withheld[c]),
            ArcKind::X(i) => Model::pair_bounds(&self.model.xs[i], self.k),
            ArcKind::Y(i) => Model::pair_bounds(&self.model.ys[i], self.k),
        }
    }

    fn set_bounds(&mut self, withheld: &[bool]) {
        for a in 0..self.arcs.len() {
            let (lo, hi) = self.bounds_of(a, withheld);
            self.lo[a] = lo;
            self.hi[a] = hi;
        }
    }

    /// Is there a path `from` → `to` in the residual network, not using arc `skip`?
    fn reachable(&self, from: usize, to: usize, skip: usize) -> bool {
        let mut seen = vec![false; self.nodes];
        let mut queue = VecDeque::from([from]);
        seen[from] = true;
        while let Some(n) = queue.pop_front() {
            if n == to {
                return true;
            }
            for &a in &self.adj[n] {
                if a == skip {
                    continue;
                }
                let arc = &self.arcs[a];
                let next = if arc.from == n && arc.flow < self.hi[a] {
                    arc.to
                } else if arc.to == n && arc.flow > self.lo[a] {
                    arc.from
                } else {
                    continue;
                };
                if !seen[next] {
                    seen[next] = true;
                    queue.push_back(next);
                }
            }
        }
        false
    }

    /// Can the flow on `arc` change (up or down) in some feasible circulation? Exact: the
    /// difference of two circulations is a sum of residual cycles, one through `arc`.
    fn can_move(&self, arc: usize) -> (bool, bool) {
        let a = &self.arcs[arc];
        let up = a.flow < self.hi[arc] && self.reachable(a.to, a.from, arc);
        let down = a.flow > self.lo[arc] && self.reachable(a.from, a.to, arc);
        (up, down)
    }

    /// How much more flow can go `from` → `to` through the residual network without `skip`,
    /// up to `limit` (Edmonds–Karp on a copy of the flow).
    fn max_push(&self, from: usize, to: usize, skip: usize, limit: i64) -> i64 {
        let mut flow: Vec<i64> = self.arcs.iter().map(|a| a.flow).collect();
        let mut pushed = 0i64;
        while pushed < limit {
            // BFS for a shortest augmenting path.
            let mut prev: Vec<Option<(usize, bool)>> = vec![None; self.nodes];
            let mut seen = vec![false; self.nodes];
            seen[from] = true;
            let mut queue = VecDeque::from([from]);
            while let Some(n) = queue.pop_front() {
                if n == to {
                    break;
                }
                for &a in &self.adj[n] {
                    if a == skip {
                        continue;
                    }
                    let arc = &self.arcs[a];
                    let (next, fwd) = if arc.from == n && flow[a] < self.hi[a] {
                        (arc.to, true)
                    } else if arc.to == n && flow[a] > self.lo[a] {
                        (arc.from, false)
                    } else {
                        continue;
                    };
                    if !seen[next] {
                        seen[next] = true;
                        prev[next] = Some((a, fwd));
                        queue.push_back(next);
                    }
                }
            }
            if !seen[to] {
                break;
            }
            let mut bottleneck = limit - pushed;
            let mut n = to;
            while n != from {
                let (a, fwd) = prev[n].expect("every node on the path has a predecessor");
                let room = if fwd {
                    self.hi[a].saturating_sub(flow[a])
                } else {
                    flow[a] - self.lo[a]
                };
                bottleneck = bottleneck.min(room);
                n = if fwd {
                    self.arcs[a].from
                } else {
                    self.arcs[a].to
                };
            }
            let mut n = to;
            while n != from {
                let (a, fwd) = prev[n].expect("every node on the path has a predecessor");
                flow[a] += if fwd { bottleneck } else { -bottleneck };
                n = if fwd {
                    self.arcs[a].from
                } else {
                    self.arcs[a].to
                };
            }
            pushed += bottleneck;
        }
        pushed
    }

    /// The range of the total over every feasible circulation.
    fn total_range(&self) -> (i64, i64) {
        let arc = self.cell_arc[&TOTAL];
        let t = self.arcs[arc].flow;
        let up = if self.hi[arc] >= INF {
            INF
        } else {
            self.hi[arc] - t
        };
        let up = self.max_push(SOURCE, SINK, arc, up);
        let down = self.max_push(SINK, SOURCE, arc, t - self.lo[arc]);
        // Pushing through arcs without an upper bound gets within a few units of INF.
        (t - down, if up >= INF / 2 { INF } else { t + up })
    }

    /// The cheapest set of published cells whose withholding opens a residual cycle through
    /// `arc`: Dijkstra where a published cell's arc costs its case count plus one and every
    /// other residual arc is free. `None` when no set of cells can.
    fn cheapest_cycle(&self, arc: usize, withheld: &[bool], weight: &[i64]) -> Option<Vec<usize>> {
        // Bounds of every arc as if its cell were withheld, and the cost of that.
        let opened: Vec<(i64, i64, i64)> = (0..self.arcs.len())
            .map(|a| match self.arcs[a].kind {
                ArcKind::Cell(TOTAL) => {
                    // The total moves as far as its own bounds and the ACT table let it:
                    // opening it may mean withholding it, act cells, or both (`complements`
                    // picks the act cells).
                    let mut w = withheld.to_vec();
                    w[TOTAL] = true;
                    for &x in &self.model.acts {
                        w[x] = true;
                    }
                    let (lo, hi) = self.model.total_bounds(self.k, &w);
                    if (lo, hi) == (self.lo[a], self.hi[a]) {
                        (lo, hi, 0)
                    } else {
                        let own = if withheld[TOTAL] { 0 } else { weight[TOTAL] };
                        (lo, hi, own + 1)
                    }
                }
                ArcKind::Cell(c) if !withheld[c] => {
                    let (lo, hi) = self.model.cell_bounds(c, self.k, true);
                    (lo, hi, weight[c] + 1)
                }
                _ => (self.lo[a], self.hi[a], 0),
            })
            .collect();
        let a = &self.arcs[arc];
        let mut best: Option<(i64, Vec<usize>)> = None;
        for (from, to, ok) in [
            (a.to, a.from, a.flow < self.hi[arc]),
            (a.from, a.to, a.flow > self.lo[arc]),
        ] {
            if !ok {
                continue;
            }
            if let Some((cost, cells)) = self.dijkstra(from, to, arc, &opened) {
                if best.as_ref().is_none_or(|b| cost < b.0) {
                    best = Some((cost, cells));
                }
            }
        }
        best.map(|b| b.1)
    }

    fn dijkstra(
        &self,
        from: usize,
        to: usize,
        skip: usize,
        opened: &[(i64, i64, i64)],
    ) -> Option<(i64, Vec<usize>)> {
        let mut dist = vec![i64::MAX; self.nodes];
        let mut prev: Vec<Option<usize>> = vec![None; self.nodes];
        let mut heap = BinaryHeap::from([Reverse((0i64, from))]);
        dist[from] = 0;
        while let Some(Reverse((d, n))) = heap.pop() {
            if d > dist[n] {
                continue;
            }
            if n == to {
                break;
            }
            for &a in &self.adj[n] {
                if a == skip {
                    continue;
                }
                let arc = &self.arcs[a];
                let (lo, hi, cost) = opened[a];
                let next = if arc.from == n && arc.flow < hi {
                    arc.to
                } else if arc.to == n && arc.flow > lo {
                    arc.from
                } else {
                    continue;
                };
                if d + cost < dist[next] {
                    dist[next] = d + cost;
                    prev[next] = Some(a);
                    heap.push(Reverse((d + cost, next)));
                }
            }
        }
        if dist[to] == i64::MAX {
            return None;
        }
        let mut cells = Vec::new();
        let mut n = to;
        while n != from {
            let a = prev[n].expect("every node on the path has a predecessor");
            if opened[a].2 > 0 {
                if let ArcKind::Cell(c) = self.arcs[a].kind {
                    cells.push(c);
                }
            }
            let arc = &self.arcs[a];
            n = if arc.to == n { arc.from } else { arc.to };
        }
        Some((dist[to], cells))
    }
}

// ---------------------------------------------------------------------------------------------
// Protection.
// ---------------------------------------------------------------------------------------------

/// Primary suppression only: the cells (and total) with `0 < cases < threshold` that hold a
/// case the principal cannot see. Not safe to publish as is (see [`protect`]); useful to show
/// what complementary suppression adds.
pub fn primary(
    tables: &Tables,
    missions: &[MissionFact],
    visible: &Visible,
    threshold: u32,
) -> Protection {
    let model = Model::build(tables, missions, visible);
    let mut p = Protection::default();
    for id in primary_ids(&model, threshold) {
        p.withhold(model.cells[id].cell.clone(), Reason::Primary);
    }
    p
}

fn primary_ids(model: &Model, threshold: u32) -> Vec<usize> {
    let t = i64::from(threshold);
    (0..model.cells.len())
        .filter(|&i| {
            let c = &model.cells[i];
            c.truth[CASES] > 0 && c.truth[CASES] < t && c.seen[CASES] < c.truth[CASES]
        })
        .collect()
}

/// Which cells to withhold from a principal so that no withheld count (cases or victims) can
/// be worked out from everything it can see: primary suppression, then complementary
/// suppression until the audit finds every withheld cell with a lowest value below its
/// highest. Pure and deterministic; see the module documentation for the method.
pub fn protect(
    tables: &Tables,
    missions: &[MissionFact],
    visible: &Visible,
    threshold: u32,
) -> Protection {
    let model = Model::build(tables, missions, visible);
    let n = model.cells.len();
    let mut withheld = vec![false; n];
    let mut reason = vec![None; n];
    for id in primary_ids(&model, threshold) {
        withheld[id] = true;
        reason[id] = Some(Reason::Primary);
    }
    let weight: Vec<i64> = model.cells.iter().map(|c| c.truth[CASES]).collect();
    let mut nets = [
        Net::new(&model, CASES, &withheld),
        Net::new(&model, VICTIMS, &withheld),
    ];
    // Cells found safe stay safe: withholding more only widens what is possible.
    let mut safe = vec![[false; 2]; n];
    loop {
        let pinned = (0..n).filter(|&c| withheld[c]).find_map(|c| {
            (0..2).find_map(|k| {
                if safe[c][k] {
                    return None;
                }
                if movable(&model, &nets[k], c, &withheld) {
                    safe[c][k] = true;
                    None
                } else {
                    Some((c, k))
                }
            })
        });
        let Some((cell, k)) = pinned else { break };
        let more = complements(&model, &nets[k], cell, &withheld, &weight);
        let fresh: Vec<usize> = more.into_iter().filter(|&c| !withheld[c]).collect();
        if fresh.is_empty() {
            // Nothing left that could help: the principal knows this cell whatever is done.
            safe[cell][k] = true;
            continue;
        }
        for c in fresh {
            withheld[c] = true;
            reason[c] = Some(Reason::Complementary);
        }
        for net in &mut nets {
            net.set_bounds(&withheld);
        }
    }
    let mut p = Protection::default();
    for (i, r) in reason.iter().enumerate() {
        if let Some(r) = r {
            p.withhold(model.cells[i].cell.clone(), *r);
        }
    }
    p
}

/// Whether withheld cell `c`'s count in `net` can take two values.
fn movable(model: &Model, net: &Net<'_>, c: usize, withheld: &[bool]) -> bool {
    if let Some(&arc) = net.cell_arc.get(&c) {
        let (up, down) = net.can_move(arc);
        return up || down;
    }
    let act = model
        .acts
        .iter()
        .position(|&a| a == c)
        .expect("a cell without an arc is an act cell");
    let (tlo, thi) = if withheld[TOTAL] {
        net.total_range()
    } else {
        let t = model.cells[TOTAL].truth[net.k];
        (t, t)
    };
    !model
        .act_interval(act, net.k, withheld, tlo, thi)
        .is_exact()
}

/// Published cells to withhold so that pinned cell `c` (in `net`'s measure) can move.
fn complements(
    model: &Model,
    net: &Net<'_>,
    c: usize,
    withheld: &[bool],
    weight: &[i64],
) -> Vec<usize> {
    let smallest = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates
            .filter(|&x| !withheld[x] && !model.cells[x].exact)
            .min_by_key(|&x| (weight[x], x))
    };
    let cycle_through = |arc: usize| -> Option<Vec<usize>> {
        let mut cells = net.cheapest_cycle(arc, withheld, weight)?;
        if cells.contains(&TOTAL) {
            // The total can move only as far as the ACT table lets it: open act cells too,
            // smallest first, until it can.
            let mut w = withheld.to_vec();
            w[TOTAL] = true;
            let t = model.cells[TOTAL].truth[net.k];
            let mut acts: Vec<usize> = model.acts.iter().copied().filter(|&a| !w[a]).collect();
            acts.sort_by_key(|&a| (weight[a], a));
            for a in acts {
                let (lo, hi) = model.total_bounds(net.k, &w);
                if lo < t || t < hi {
                    break;
                }
                w[a] = true;
                cells.push(a);
            }
        }
        Some(cells)
    };
    let found = if let Some(&arc) = net.cell_arc.get(&c) {
        cycle_through(arc)
    } else {
        // An act cell: another act cell, else the total, else let the total move.
        smallest(&mut model.acts.iter().copied().filter(|&a| a != c))
            .map(|a| vec![a])
            .or_else(|| (!withheld[TOTAL]).then(|| vec![TOTAL]))
            .or_else(|| cycle_through(net.cell_arc[&TOTAL]))
    };
    match found {
        Some(cells) if cells.iter().any(|&x| !withheld[x]) => cells,
        // Last resort: the smallest published cell anywhere.
        _ => smallest(&mut (0..model.cells.len())).into_iter().collect(),
    }
}

/// Test support: which withheld cells the network search finds pinned, per measure.
#[cfg(test)]
fn pinned_by_network(
    tables: &Tables,
    missions: &[MissionFact],
    visible: &Visible,
    protection: &Protection,
) -> std::collections::BTreeSet<(CellRef, usize)> {
    let model = Model::build(tables, missions, visible);
    let withheld: Vec<bool> = model
        .cells
        .iter()
        .map(|c| protection.withheld.contains_key(&c.cell))
        .collect();
    let mut out = std::collections::BTreeSet::new();
    for k in 0..2 {
        let net = Net::new(&model, k, &withheld);
        for c in (0..model.cells.len()).filter(|&c| withheld[c]) {
            if !movable(&model, &net, c, &withheld) {
                out.insert((model.cells[c].cell.clone(), k));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The audit: the same knowledge as linear programs, solved by an LP solver.
// ---------------------------------------------------------------------------------------------

/// For every withheld cell (the total included), the lowest and highest case and victim counts
/// consistent with everything the principal sees: the published cells and totals of all four
/// tables, the listed keys, the public mission facts and its own cases. Solves one linear
/// program per bound (see the module documentation for why its optimum is integral). Cells that
/// `protection` names but the tables do not list are ignored.
pub fn audit(
    tables: &Tables,
    missions: &[MissionFact],
    visible: &Visible,
    protection: &Protection,
) -> Result<Vec<CellInterval>, AuditError> {
    let model = Model::build(tables, missions, visible);
    let withheld: Vec<bool> = model
        .cells
        .iter()
        .map(|c| protection.withheld.contains_key(&c.cell))
        .collect();
    let mut out = Vec::new();
    for (cell, _) in protection.withheld() {
        let Some(&id) = model.index.get(cell) else {
            continue;
        };
        let cases = lp_interval(&model, &withheld, id, CASES)?;
        let victims = lp_interval(&model, &withheld, id, VICTIMS)?;
        out.push(CellInterval {
            cell: cell.clone(),
            cases,
            victims,
        });
    }
    Ok(out)
}

fn lp_interval(
    model: &Model,
    withheld: &[bool],
    target: usize,
    k: usize,
) -> Result<Interval, AuditError> {
    use good_lp::ResolutionError;
    let measure = if k == CASES { "cases" } else { "victims" };
    let fail = |reason: String| AuditError::Solver {
        cell: model.cells[target].cell.to_string(),
        measure,
        reason,
    };
    let min = match solve(model, withheld, target, k, false) {
        Ok(v) => v,
        Err(e) => return Err(fail(e.to_string())),
    };
    let max = match solve(model, withheld, target, k, true) {
        // microlp bounds integer variables by the i32 range: a maximum that far out has no
        // bound in the model.
        Ok(v) if v >= UNBOUNDED_LP => None,
        Ok(v) => Some(v),
        Err(ResolutionError::Unbounded) => None,
        Err(e) => return Err(fail(e.to_string())),
    };
    Ok(Interval { min, max })
}

/// Minimises or maximises cell `target`'s `k` count over the principal's knowledge.
fn solve(
    model: &Model,
    withheld: &[bool],
    target: usize,
    k: usize,
    maximise: bool,
) -> Result<i64, good_lp::ResolutionError> {
    use good_lp::{variable, Expression, ProblemVariables, Solution, SolverModel, Variable};
    let bounded = |v: good_lp::VariableDefinition, lo: i64, hi: i64| {
        let v = v.min(lo as f64);
        if hi >= INF {
            v
        } else {
            v.max(hi as f64)
        }
    };
    let mut vars = ProblemVariables::new();
    // The network unknowns are continuous: the network matrix is totally unimodular.
    let xs: Vec<Variable> = model
        .xs
        .iter()
        .map(|p| {
            let (lo, hi) = Model::pair_bounds(p, k);
            vars.add(bounded(variable(), lo, hi))
        })
        .collect();
    let ys: Vec<Variable> = model
        .ys
        .iter()
        .map(|p| {
            let (lo, hi) = Model::pair_bounds(p, k);
            vars.add(bounded(variable(), lo, hi))
        })
        .collect();
    // The total and the ACT side are integer (their constraints are not a network).
    let (tlo, thi) = model.cell_bounds(TOTAL, k, withheld[TOTAL]);
    let total = vars.add(bounded(variable().integer(), tlo, thi));
    let acts: Vec<Variable> = model
        .acts
        .iter()
        .map(|&a| {
            let (lo, hi) = model.cell_bounds(a, k, withheld[a]);
            vars.add(bounded(variable().integer(), lo, hi))
        })
        .collect();

    let sum =
        |vs: &mut dyn Iterator<Item = Variable>| -> Expression { vs.map(Expression::from).sum() };
    let cell_expr = |c: usize| -> Expression {
        if c == TOTAL {
            return total.into();
        }
        if let Some(i) = model.acts.iter().position(|&a| a == c) {
            return acts[i].into();
        }
        if model.missions.contains(&c) {
            sum(&mut model
                .xs
                .iter()
                .zip(&xs)
                .filter(|(p, _)| p.mission == c)
                .map(|(_, v)| *v))
        } else if model.hosts.contains(&c) {
            sum(&mut model
                .xs
                .iter()
                .zip(&xs)
                .filter(|(p, _)| p.other == c)
                .map(|(_, v)| *v))
        } else {
            sum(&mut model
                .ys
                .iter()
                .zip(&ys)
                .filter(|(p, _)| p.other == c)
                .map(|(_, v)| *v))
        }
    };
    let objective = cell_expr(target);
    let problem = if maximise {
        vars.maximise(objective)
    } else {
        vars.minimise(objective)
    };
    let mut lp = problem.using(good_lp::microlp);
    // A mission's host side and year side carry the same cases.
    for &m in &model.missions {
        let host_side = sum(&mut model
            .xs
            .iter()
            .zip(&xs)
            .filter(|(p, _)| p.mission == m)
            .map(|(_, v)| *v));
        let year_side = sum(&mut model
            .ys
            .iter()
            .zip(&ys)
            .filter(|(p, _)| p.mission == m)
            .map(|(_, v)| *v));
        lp.add_constraint(host_side.eq(year_side));
    }
    // Every cell of the three partitioning tables within its bounds.
    for &c in model
        .missions
        .iter()
        .chain(&model.hosts)
        .chain(&model.years)
    {
        let (lo, hi) = model.cell_bounds(c, k, withheld[c]);
        let e = cell_expr(c);
        if lo == hi {
            lp.add_constraint(e.eq(lo as f64));
        } else {
            lp.add_constraint(e.clone().geq(lo as f64));
            if hi < INF {
                lp.add_constraint(e.leq(hi as f64));
            }
        }
    }
    // One total for every table.
    let all_x = sum(&mut xs.iter().copied());
    lp.add_constraint(Expression::from(total).eq(all_x));
    // The ACT table: on the cases the principal cannot see, every act cell is at most the
    // total and together they cover it.
    let seen_total = model.cells[TOTAL].seen[k] as f64;
    let unseen_total = Expression::from(total) - seen_total;
    if model.act_cap[k] {
        for (i, &a) in model.acts.iter().enumerate() {
            let unseen = Expression::from(acts[i]) - model.cells[a].seen[k] as f64;
            lp.add_constraint(unseen.leq(unseen_total.clone()));
        }
    }
    if model.act_cover[k] {
        let seen_acts: i64 = model.acts.iter().map(|&a| model.cells[a].seen[k]).sum();
        let unseen_acts = sum(&mut acts.iter().copied()) - seen_acts as f64;
        lp.add_constraint(unseen_acts.geq(unseen_total));
    }
    let solution = lp.solve()?;
    let value = solution.eval(cell_expr(target));
    Ok(value.round() as i64)
}

#[cfg(test)]
mod tests;
