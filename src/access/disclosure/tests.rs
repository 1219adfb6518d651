use super::*;

const THRESHOLD: u32 = 3;

/// One recorded case, as a test writes it.
#[derive(Clone)]
struct Case {
    mission: &'static str,
    host: Option<&'static str>,
    year: &'static str,
    victims: i64,
    acts: &'static [&'static str],
    seen: bool,
}

fn case(mission: &'static str, host: &'static str, year: &'static str, victims: i64) -> Case {
    Case {
        mission,
        host: Some(host),
        year,
        victims,
        acts: &["KILLING"],
        seen: false,
    }
}

fn cases(n: usize, c: Case) -> Vec<Case> {
    vec![c; n]
}

fn cross_of(cases: &[&Case]) -> Vec<CrossCount> {
    let mut groups: BTreeMap<(String, Option<String>, String), [i64; 2]> = BTreeMap::new();
    for c in cases {
        let k = (c.mission.into(), c.host.map(str::to_string), c.year.into());
        add(groups.entry(k).or_default(), 1, c.victims);
    }
    groups
        .into_iter()
        .map(
            |((mission, host_state, year), [cases, victims])| CrossCount {
                mission,
                host_state,
                year,
                cases,
                victims,
            },
        )
        .collect()
}

fn acts_of(cases: &[&Case]) -> Vec<Cell> {
    let mut groups: BTreeMap<String, [i64; 2]> = BTreeMap::new();
    for c in cases {
        for a in c.acts {
            add(groups.entry((*a).to_string()).or_default(), 1, c.victims);
        }
    }
    groups
        .into_iter()
        .map(|(key, [cases, victims])| Cell {
            key: Some(key),
            cases,
            victims,
        })
        .collect()
}

/// The global tables of `all`, and what a principal sees of the cases marked `seen`.
fn tables_and_view(all: &[Case], complete_hosts: &[&str]) -> (Tables, Visible) {
    let every: Vec<&Case> = all.iter().collect();
    let seen: Vec<&Case> = all.iter().filter(|c| c.seen).collect();
    (
        Tables::new(cross_of(&every), acts_of(&every)),
        Visible {
            cross: cross_of(&seen),
            acts: acts_of(&seen),
            complete_hosts: complete_hosts.iter().map(|h| h.to_string()).collect(),
            complete_missions: vec![],
        },
    )
}

fn fact(code: &str, territories: &[&str], years: Option<(i32, i32)>) -> MissionFact {
    let day = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).expect("a valid date");
    MissionFact {
        code: code.into(),
        host_territories: territories.iter().map(|t| t.to_string()).collect(),
        any_host: false,
        start: years.map(|(s, _)| day(s, 3, 1)),
        end: years.map(|(_, e)| day(e, 10, 31)),
    }
}

fn mission(key: &str) -> CellRef {
    CellRef::group(Dimension::Mission, Some(key))
}

fn find<'a>(intervals: &'a [CellInterval], cell: &CellRef) -> &'a CellInterval {
    intervals
        .iter()
        .find(|i| i.cell == *cell)
        .unwrap_or_else(|| panic!("{cell} was audited"))
}

fn describe(intervals: &[CellInterval]) -> String {
    intervals
        .iter()
        .map(|i| format!("{}: cases {} victims {}", i.cell, i.cases, i.victims))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Audits `protection` and asserts that every withheld cell keeps a range that holds its true
/// value and is wider than one value, for cases and for victims.
fn assert_safe(tables: &Tables, facts: &[MissionFact], visible: &Visible, protection: &Protection) {
    let intervals = audit(tables, facts, visible, protection).expect("the audit solves");
    assert_eq!(
        intervals.len(),
        protection.len(),
        "every withheld cell is audited"
    );
    let truth = truth_of(tables);
    for i in &intervals {
        let (c, v) = truth[&i.cell];
        assert!(
            i.cases.contains(c) && i.victims.contains(v),
            "{} holds ({c}, {v}) outside its audit interval: {}",
            i.cell,
            describe(&intervals)
        );
        assert!(
            !i.is_disclosed(),
            "{} is worked out exactly: {}",
            i.cell,
            describe(&intervals)
        );
    }
}

fn truth_of(tables: &Tables) -> HashMap<CellRef, (i64, i64)> {
    let mut truth: HashMap<CellRef, (i64, i64)> = HashMap::new();
    for d in Dimension::ALL {
        for r in tables.rows(d) {
            truth.insert(CellRef::group(d, r.key.as_deref()), (r.cases, r.victims));
        }
    }
    truth.insert(CellRef::Total, tables.total());
    truth
}

/// Haiti, as the issue reports it: 16 cases in HTI, 12 of them MINUSTAH's, and four other
/// missions on Haitian territory with one case each.
fn haiti() -> (Vec<Case>, Vec<MissionFact>) {
    let mut all = Vec::new();
    for y in ["2005", "2008", "2010"] {
        all.extend(cases(4, case("MINUSTAH", "HTI", y, 1)));
    }
    for m in ["UNMIH", "UNSMIH", "UNTMIH", "MIPONUH"] {
        all.push(case(m, "HTI", "2005", 2));
    }
    all.extend(cases(10, case("MINUSMA", "MLI", "2015", 1)));
    all.extend(cases(5, case("UNMISS", "SSD", "2015", 1)));
    let mut facts = vec![
        fact("MINUSTAH", &["HTI"], None),
        fact("MINUSMA", &["MLI"], None),
        fact("UNMISS", &["SSD"], None),
    ];
    for m in ["UNMIH", "UNSMIH", "UNTMIH", "MIPONUH"] {
        facts.push(fact(m, &["HTI"], None));
    }
    (all, facts)
}

#[test]
fn host_total_minus_a_published_mission_pins_each_small_mission_unless_complements_are_withheld() {
    let (all, facts) = haiti();
    let (tables, nobody) = tables_and_view(&all, &[]);
    let naive = primary(&tables, &facts, &nobody, THRESHOLD);
    assert_eq!(naive.withheld_in(Dimension::Mission), 4, "{naive:?}");
    let leaked = audit(&tables, &facts, &nobody, &naive).expect("the audit solves");
    for m in ["UNMIH", "UNSMIH", "UNTMIH", "MIPONUH"] {
        let i = find(&leaked, &mission(m));
        assert_eq!(
            i.cases,
            Interval {
                min: 1,
                max: Some(1)
            },
            "HTI 16 − MINUSTAH 12 over four missions pins each: {}",
            describe(&leaked)
        );
    }

    let safe = protect(&tables, &facts, &nobody, THRESHOLD);
    assert!(
        safe.len() > naive.len(),
        "complements are withheld: {safe:?}"
    );
    for m in ["UNMIH", "UNSMIH", "UNTMIH", "MIPONUH"] {
        assert!(safe.is_withheld(Dimension::Mission, Some(m)));
    }
    assert_safe(&tables, &facts, &nobody, &safe);
}

#[test]
fn a_single_small_cell_under_a_published_total_gets_a_complement() {
    let mut all = Vec::new();
    all.extend(cases(10, case("ALPHA", "AAA", "2010", 1)));
    all.extend(cases(8, case("BRAVO", "BBB", "2010", 1)));
    all.extend(cases(5, case("CHARLIE", "CCC", "2010", 1)));
    all.push(case("SMALL", "CCC", "2010", 3));
    let facts = vec![
        fact("ALPHA", &["AAA"], None),
        fact("BRAVO", &["BBB"], None),
        fact("CHARLIE", &["CCC"], None),
        fact("SMALL", &["CCC"], None),
    ];
    let (tables, nobody) = tables_and_view(&all, &[]);
    let naive = primary(&tables, &facts, &nobody, THRESHOLD);
    assert_eq!(naive.len(), 1, "{naive:?}");
    let leaked = audit(&tables, &facts, &nobody, &naive).expect("the audit solves");
    assert!(
        find(&leaked, &mission("SMALL")).is_disclosed(),
        "the total minus the published missions gives it: {}",
        describe(&leaked)
    );

    let safe = protect(&tables, &facts, &nobody, THRESHOLD);
    assert_eq!(
        safe.withheld()
            .filter(|(_, r)| *r == Reason::Complementary)
            .count(),
        1,
        "one more cell linked to SMALL suffices: {safe:?}"
    );
    assert_safe(&tables, &facts, &nobody, &safe);
}

#[test]
fn the_year_table_and_mission_dates_pin_a_short_mission() {
    // SHORT ran in 1995 only; so did NOVEMBER, published with 4 cases; YEAR 1995 says 5.
    let mut all = vec![case("SHORT", "AAA", "1995", 1)];
    all.extend(cases(2, case("SHORT2", "AAA", "2005", 1)));
    all.extend(cases(10, case("BIG", "AAA", "2005", 1)));
    all.extend(cases(4, case("NOVEMBER", "BBB", "1995", 1)));
    let dated = vec![
        fact("SHORT", &["AAA"], Some((1995, 1995))),
        fact("SHORT2", &["AAA"], Some((2000, 2010))),
        fact("BIG", &["AAA"], Some((2000, 2010))),
        fact("NOVEMBER", &["BBB"], Some((1995, 1995))),
    ];
    let undated: Vec<MissionFact> = dated
        .iter()
        .map(|f| MissionFact {
            start: None,
            end: None,
            ..f.clone()
        })
        .collect();
    let (tables, nobody) = tables_and_view(&all, &[]);
    let naive = primary(&tables, &dated, &nobody, THRESHOLD);
    assert_eq!(naive.withheld_in(Dimension::Mission), 2, "{naive:?}");
    assert_eq!(naive.withheld_in(Dimension::Year), 0, "{naive:?}");

    let without_dates = audit(&tables, &undated, &nobody, &naive).expect("the audit solves");
    assert!(
        !find(&without_dates, &mission("SHORT")).is_disclosed(),
        "without dates the two small missions can swap: {}",
        describe(&without_dates)
    );
    let with_dates = audit(&tables, &dated, &nobody, &naive).expect("the audit solves");
    assert_eq!(
        find(&with_dates, &mission("SHORT")).cases,
        Interval {
            min: 1,
            max: Some(1)
        },
        "YEAR 1995 minus NOVEMBER leaves SHORT: {}",
        describe(&with_dates)
    );

    let safe = protect(&tables, &dated, &nobody, THRESHOLD);
    assert_safe(&tables, &dated, &nobody, &safe);
}

#[test]
fn victims_are_protected_even_where_case_counts_are_not_pinned() {
    // A and B share HHH with C; their cases can be 1+2 or 2+1, but their victims add up to 0.
    let mut all = vec![case("ALPHA", "HHH", "2010", 0)];
    all.extend(cases(2, case("BRAVO", "HHH", "2010", 0)));
    all.extend(cases(5, case("CHARLIE", "HHH", "2010", 2)));
    all.extend(cases(10, case("DELTA", "GGG", "2010", 1)));
    let facts = vec![
        fact("ALPHA", &["HHH"], None),
        fact("BRAVO", &["HHH"], None),
        fact("CHARLIE", &["HHH"], None),
        fact("DELTA", &["GGG"], None),
    ];
    let (tables, nobody) = tables_and_view(&all, &[]);
    let naive = primary(&tables, &facts, &nobody, THRESHOLD);
    let leaked = audit(&tables, &facts, &nobody, &naive).expect("the audit solves");
    let a = find(&leaked, &mission("ALPHA"));
    assert!(!a.cases.is_exact(), "{}", describe(&leaked));
    assert_eq!(
        a.victims,
        Interval {
            min: 0,
            max: Some(0)
        },
        "{}",
        describe(&leaked)
    );

    let safe = protect(&tables, &facts, &nobody, THRESHOLD);
    assert_safe(&tables, &facts, &nobody, &safe);
}

#[test]
fn the_act_table_with_what_the_principal_sees_pins_a_small_act_until_another_is_withheld() {
    // Ten cases; the principal sees nine, all KILLING, one of them also an AMBUSH. The tenth is
    // an AMBUSH without KILLING: KILLING (9, all seen) is published, AMBUSH (2) is withheld.
    let mut all = Vec::new();
    let mut seen = case("MISSION", "HHH", "2010", 1);
    seen.seen = true;
    all.extend(cases(8, seen.clone()));
    all.push(Case {
        acts: &["KILLING", "AMBUSH"],
        ..seen
    });
    all.push(Case {
        acts: &["AMBUSH"],
        ..case("MISSION", "HHH", "2010", 1)
    });
    let facts = vec![fact("MISSION", &["HHH"], None)];
    let (tables, viewer) = tables_and_view(&all, &[]);
    let ambush = CellRef::group(Dimension::Act, Some("AMBUSH"));

    let naive = primary(&tables, &facts, &viewer, THRESHOLD);
    assert_eq!(naive.len(), 1, "only AMBUSH is small and unseen: {naive:?}");
    let leaked = audit(&tables, &facts, &viewer, &naive).expect("the audit solves");
    assert_eq!(
        find(&leaked, &ambush).cases,
        Interval {
            min: 2,
            max: Some(2)
        },
        "one unseen case, not a KILLING, must be the unseen AMBUSH: {}",
        describe(&leaked)
    );
    // A principal that sees nothing cannot tell: AMBUSH is anywhere from 1 to 10.
    let blind = audit(&tables, &facts, &Visible::nothing(), &naive).expect("the audit solves");
    assert_eq!(
        find(&blind, &ambush).cases,
        Interval {
            min: 1,
            max: Some(10)
        },
        "{}",
        describe(&blind)
    );

    let safe = protect(&tables, &facts, &viewer, THRESHOLD);
    assert!(
        safe.is_withheld(Dimension::Act, Some("KILLING")),
        "{safe:?}"
    );
    assert_safe(&tables, &facts, &viewer, &safe);
}

#[test]
fn a_small_cell_the_principal_sees_entirely_is_published_and_seen_cases_bound_the_others() {
    // The principal is SEN: it sees every case hosted in SEN, and one of LIMA's two cases in MLI.
    let mut all = Vec::new();
    let mut own = case("SENMIS", "SEN", "2010", 1);
    own.seen = true;
    all.push(own);
    let mut lima_seen = case("LIMA", "MLI", "2010", 4);
    lima_seen.seen = true;
    all.push(lima_seen);
    all.push(case("LIMA", "MLI", "2010", 2));
    all.extend(cases(10, case("MINUSMA", "MLI", "2010", 1)));
    let facts = vec![
        fact("SENMIS", &["SEN"], None),
        fact("LIMA", &["MLI"], None),
        fact("MINUSMA", &["MLI"], None),
    ];
    let (tables, viewer) = tables_and_view(&all, &["SEN"]);

    let blind = primary(&tables, &facts, &Visible::nothing(), THRESHOLD);
    assert!(blind.is_withheld(Dimension::Mission, Some("SENMIS")));
    let safe = protect(&tables, &facts, &viewer, THRESHOLD);
    assert!(
        !safe.is_withheld(Dimension::Mission, Some("SENMIS")),
        "SEN sees every case of SENMIS: {safe:?}"
    );
    assert!(!safe.is_withheld(Dimension::HostState, Some("SEN")));
    assert!(safe.is_withheld(Dimension::Mission, Some("LIMA")));
    let intervals = audit(&tables, &facts, &viewer, &safe).expect("the audit solves");
    let lima = find(&intervals, &mission("LIMA"));
    assert!(
        lima.cases.min >= 1 && lima.victims.min >= 4,
        "the seen case bounds LIMA from below: {}",
        describe(&intervals)
    );
    assert_safe(&tables, &facts, &viewer, &safe);
}

#[test]
fn cases_outside_their_missions_territory_and_years_widen_the_model_instead_of_failing() {
    // OLD ran 1990–1995 in AAA, yet a case of it is recorded in 1997 in BBB.
    let mut all = vec![case("OLD", "BBB", "1997", 1)];
    all.extend(cases(2, case("OLD", "AAA", "1993", 1)));
    all.extend(cases(6, case("NEW", "BBB", "1997", 1)));
    all.extend(cases(6, case("NEW", "BBB", "1998", 1)));
    all.push(case("TINY", "AAA", "1993", 5));
    let facts = vec![
        fact("OLD", &["AAA"], Some((1990, 1995))),
        fact("NEW", &["BBB"], Some((1996, 2000))),
        fact("TINY", &["AAA"], Some((1993, 1993))),
    ];
    let (tables, nobody) = tables_and_view(&all, &[]);
    let safe = protect(&tables, &facts, &nobody, THRESHOLD);
    assert!(safe.is_withheld(Dimension::Mission, Some("TINY")));
    assert_safe(&tables, &facts, &nobody, &safe);
}

#[test]
fn withholding_everything_protects_every_primary_cell() {
    let (all, facts) = haiti();
    let (tables, nobody) = tables_and_view(&all, &[]);
    let mut everything = Protection::default();
    for d in Dimension::ALL {
        for r in tables.rows(d) {
            everything.withhold(CellRef::group(d, r.key.as_deref()), Reason::Complementary);
        }
    }
    everything.withhold(CellRef::Total, Reason::Complementary);
    let intervals = audit(&tables, &facts, &nobody, &everything).expect("the audit solves");
    for i in &intervals {
        assert_eq!(i.cases.max, None, "{}", describe(&intervals));
    }
}

// ---------------------------------------------------------------------------------------------
// The network search and the LP agree, on many small random data sets.
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const MISSIONS: [&str; 5] = ["MA", "MB", "MC", "MD", "ME"];
const HOSTS: [&str; 3] = ["HA", "HB", "HC"];
const YEARS: [&str; 4] = ["2001", "2002", "2003", "2004"];
const ACTS: [&[&str]; 4] = [
    &["KILLING"],
    &["AMBUSH"],
    &["KILLING", "AMBUSH"],
    &["ARSON"],
];

fn random_instance(rng: &mut Rng) -> (Vec<Case>, Vec<MissionFact>, Vec<&'static str>) {
    let mut facts = Vec::new();
    let mut homes: Vec<(Vec<&'static str>, Vec<&'static str>)> = Vec::new();
    for m in MISSIONS {
        let hosts: Vec<&str> = HOSTS.iter().copied().filter(|_| rng.chance(50)).collect();
        let hosts = if hosts.is_empty() {
            vec![HOSTS[rng.below(3)]]
        } else {
            hosts
        };
        let first = rng.below(4);
        let last = (first + rng.below(3)).min(3);
        facts.push(fact(
            m,
            &hosts,
            rng.chance(70)
                .then(|| (2001 + first as i32, 2001 + last as i32)),
        ));
        homes.push((hosts, YEARS[first..=last].to_vec()));
    }
    let mut all = Vec::new();
    for _ in 0..(6 + rng.below(18)) {
        let m = rng.below(MISSIONS.len());
        let (hosts, years) = &homes[m];
        // Now and then a quirk outside the public facts.
        let host = if rng.chance(5) {
            HOSTS[rng.below(3)]
        } else {
            hosts[rng.below(hosts.len())]
        };
        let year = if rng.chance(5) {
            YEARS[rng.below(4)]
        } else {
            years[rng.below(years.len())]
        };
        all.push(Case {
            mission: MISSIONS[m],
            host: if rng.chance(5) { None } else { Some(host) },
            year,
            victims: rng.below(4) as i64,
            acts: ACTS[rng.below(ACTS.len())],
            seen: rng.chance(20),
        });
    }
    let complete: Vec<&str> = if rng.chance(30) {
        vec![HOSTS[rng.below(3)]]
    } else {
        vec![]
    };
    for c in &mut all {
        if c.host.is_some_and(|h| complete.contains(&h)) {
            c.seen = true;
        }
    }
    (all, facts, complete)
}

#[test]
fn the_network_search_finds_exactly_the_cells_the_linear_programs_pin() {
    let mut rng = Rng(0x5EED_CA5E_0000_0001);
    let mut pinned_seen = 0;
    for round in 0..120 {
        let (all, facts, complete) = random_instance(&mut rng);
        let (tables, viewer) = tables_and_view(&all, &complete);
        // A random publication: every cell withheld with some probability.
        let mut p = Protection::default();
        for d in Dimension::ALL {
            for r in tables.rows(d) {
                if rng.chance(35) {
                    p.withhold(CellRef::group(d, r.key.as_deref()), Reason::Primary);
                }
            }
        }
        if rng.chance(30) {
            p.withhold(CellRef::Total, Reason::Primary);
        }
        let by_network = pinned_by_network(&tables, &facts, &viewer, &p);
        let intervals = audit(&tables, &facts, &viewer, &p).expect("the audit solves");
        let by_lp: std::collections::BTreeSet<(CellRef, usize)> = intervals
            .iter()
            .flat_map(|i| {
                [(i.cases, CASES), (i.victims, VICTIMS)]
                    .into_iter()
                    .filter(|(x, _)| x.is_exact())
                    .map(|(_, k)| (i.cell.clone(), k))
            })
            .collect();
        pinned_seen += by_lp.len();
        assert_eq!(
            by_network,
            by_lp,
            "round {round}: the two methods disagree on {}",
            describe(&intervals)
        );
    }
    assert!(
        pinned_seen > 20,
        "the rounds exercised pinned cells ({pinned_seen})"
    );
}

#[test]
fn protect_leaves_no_withheld_cell_pinned_on_random_data() {
    let mut rng = Rng(0x0DD5_EED5_0000_0002);
    let mut complements = 0;
    for _ in 0..120 {
        let (all, facts, complete) = random_instance(&mut rng);
        let (tables, viewer) = tables_and_view(&all, &complete);
        let p = protect(&tables, &facts, &viewer, THRESHOLD);
        complements += p
            .withheld()
            .filter(|(_, r)| *r == Reason::Complementary)
            .count();
        assert_safe(&tables, &facts, &viewer, &p);
    }
    assert!(
        complements > 20,
        "the rounds exercised complements ({complements})"
    );
}
