//! The fatalities dataset (`DPPADPOSS-FATALITIES`). Only malicious acts are in the scope of
//! resolution 2589; deaths by illness, accident or self-inflicted harm are counted and skipped.
//!
//! Mapping choices (documented in the README):
//! - one case per (mission, incident date), acts `[KILLING]`, one victim per row, harm `KILLED`;
//! - "Local " personnel are `NATIONAL_CIVILIAN`;
//! - nationality from `isocode3`, else from the name ("Côte dIvoire" has no code), else unknown
//!   ("ZZ [Undetermined]", blank);
//! - the contributing country of uniformed personnel (military, observers, police) is their
//!   nationality — the dataset has no separate column; civilians have none;
//! - the host state is the mission's main territory, except where the mission spans several
//!   territories (or is a UN entity without one): then the nationality of locally recruited victims,
//!   or the mission named by the `casualty_id` prefix, decides.

use super::table::MissionTable;
use super::{column_index, ImportError, ImportReport, RejectedRow};
use crate::domain::{parse_date, Act, CountryCode, Gender, Harm, MissionCode, PersonnelCategory};
use crate::store::{ImportedCase, NewVictim};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

/// Dataset name recorded as the source of imported cases.
pub const FATALITIES_DATASET: &str = "DPPADPOSS-FATALITIES";

const ALIASES: &str = include_str!("../../data/reference/country-aliases.csv");

static NAME_ALIASES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    csv::Reader::from_reader(ALIASES.as_bytes())
        .records()
        .filter_map(Result::ok)
        .filter_map(|r| {
            Some((
                r.get(0)?.trim().to_lowercase(),
                r.get(1)?.trim().to_string(),
            ))
        })
        .collect()
});

const COLUMNS: &[&str] = &[
    "id",
    "incident_date",
    "casualty_id",
    "mission_acronym",
    "type_of_casualty",
    "gender",
    "casualty_nationality",
    "casualty_personnel_type",
    "type_of_incident",
    "isocode3",
];

fn personnel(raw: &str) -> Result<PersonnelCategory, String> {
    Ok(match raw.trim() {
        "Military" => PersonnelCategory::Military,
        "Military Observer" => PersonnelCategory::MilitaryObserver,
        "Police" => PersonnelCategory::Police,
        "International Civilian" => PersonnelCategory::InternationalCivilian,
        "Local" => PersonnelCategory::NationalCivilian,
        "Other" => PersonnelCategory::Other,
        other => {
            return Err(format!(
                "casualty_personnel_type `{other}` is not a known category"
            ))
        }
    })
}

fn harm(raw: &str) -> Result<Harm, String> {
    match raw.trim() {
        "Fatality" => Ok(Harm::Killed),
        "Injury" => Ok(Harm::Injured),
        other => Err(format!("type_of_casualty `{other}` is not Fatality")),
    }
}

fn gender(raw: &str) -> Result<Option<Gender>, String> {
    match raw.trim() {
        "" => Ok(None),
        "M" => Ok(Some(Gender::Male)),
        "F" => Ok(Some(Gender::Female)),
        other => Err(format!("gender `{other}` is neither M, F nor blank")),
    }
}

fn nationality(code: &str, name: &str) -> Result<Option<CountryCode>, String> {
    if let Ok(c) = CountryCode::parse(code) {
        return Ok(Some(c));
    }
    let name = name.trim();
    if name.is_empty() || name.starts_with("ZZ") {
        return Ok(None);
    }
    if let Some(c) = NAME_ALIASES
        .get(&name.to_lowercase())
        .and_then(|c| CountryCode::parse(c).ok())
    {
        return Ok(Some(c));
    }
    crate::domain::countries_by_name(name)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "nationality `{name}` (isocode3 `{}`) is not a known country",
                code.trim()
            )
        })
}

struct Row {
    line: u64,
    row_id: String,
    casualty_prefix: String,
    victim: NewVictim,
}

/// Parses the file into cases; rows out of scope are counted, bad rows reported.
pub(super) fn parse(
    csv: &[u8],
    table: &MissionTable,
    known_missions: &HashSet<String>,
    today: NaiveDate,
) -> Result<(Vec<ImportedCase>, ImportReport), ImportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(csv);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Format(format!("line 1: {e}")))?
        .clone();
    let idx = column_index(&headers, COLUMNS)?;
    if known_missions.is_empty() {
        return Err(ImportError::Format(
            "the store holds no mission yet: run `casegraph import missions` first (the fatalities refer to them)".into(),
        ));
    }
    let mut report = ImportReport {
        dataset: FATALITIES_DATASET.into(),
        ..Default::default()
    };
    let mut groups: BTreeMap<(String, NaiveDate), Vec<Row>> = BTreeMap::new();
    let mut row_ids = HashSet::new();
    for record in reader.records() {
        report.rows_read += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                report.rejected.push(RejectedRow {
                    line,
                    reason: format!("not a valid CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let f = |i: usize| record.get(idx[i]).unwrap_or_default();
        if f(8).trim() != "Malicious Act" {
            report.rows_out_of_scope += 1;
            continue;
        }
        let mut reasons = Vec::new();
        let row_id = f(0).trim().to_string();
        if row_id.is_empty() {
            reasons.push("id is empty".to_string());
        } else if !row_ids.insert(row_id.clone()) {
            reasons.push(format!("id `{row_id}` appears twice"));
        }
        let date = match parse_date(f(1)) {
            Ok(d) if d > today => {
                reasons.push(format!("incident_date {d} lies in the future"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                reasons.push(format!("incident_date: {e}"));
                None
            }
        };
        let mission = match MissionCode::parse(f(3)) {
            Ok(m) if !known_missions.contains(m.as_str()) => {
                reasons.push(if table.get(m.as_str()).is_some() {
                    format!("mission `{m}` is not in the store yet: run `casegraph import missions` first")
                } else {
                    format!("mission `{m}` is unknown (not in data/reference/missions.toml)")
                });
                None
            }
            Ok(m) => Some(m),
            Err(e) => {
                reasons.push(e.to_string());
                None
            }
        };
        let category = personnel(f(7)).map_err(|e| reasons.push(e)).ok();
        let harm = harm(f(4)).map_err(|e| reasons.push(e)).ok();
        let gender = gender(f(5)).map_err(|e| reasons.push(e)).ok();
        let nationality = nationality(f(9), f(6)).map_err(|e| reasons.push(e)).ok();
        let (
            Some(date),
            Some(mission),
            Some(category),
            Some(harm),
            Some(gender),
            Some(nationality),
            true,
        ) = (
            date,
            mission,
            category,
            harm,
            gender,
            nationality,
            reasons.is_empty(),
        )
        else {
            report.rejected.push(RejectedRow {
                line,
                reason: reasons.join("; "),
            });
            continue;
        };
        let contributing_country = if category.is_uniformed() {
            nationality.clone()
        } else {
            None
        };
        let casualty_prefix = f(2)
            .split('-')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        groups
            .entry((mission.to_string(), date))
            .or_default()
            .push(Row {
                line,
                row_id,
                casualty_prefix,
                victim: NewVictim {
                    category,
                    contributing_country,
                    nationality,
                    harm,
                    gender,
                    name: None,
                    service_number: None,
                },
            });
    }
    let mut cases = Vec::with_capacity(groups.len());
    for ((mission, date), rows) in groups {
        let host_state = host_state(&mission, &rows, table);
        if host_state.is_none() {
            let lines: Vec<String> = rows.iter().map(|r| r.line.to_string()).collect();
            report.warnings.push(format!(
                "{mission} {date}: host state unknown (lines {})",
                lines.join(", ")
            ));
        }
        let n = rows.len();
        report.victims += n;
        cases.push(ImportedCase {
            import_key: format!("{FATALITIES_DATASET}:{mission}:{date}"),
            reference: crate::store::base_reference(&mission, date),
            host_state: host_state.map(|c| c.to_string()),
            incident_date: date,
            acts: vec![Act::Killing],
            summary: Some(format!(
                "{n} UN {} killed in a malicious act ({mission}). Source: UN Peace and Security Data Hub, {FATALITIES_DATASET}.",
                if n == 1 { "staff member" } else { "personnel" }
            )),
            victims: rows.into_iter().map(|r| (format!("{FATALITIES_DATASET}:row:{}", r.row_id), r.victim)).collect(),
            mission_code: mission,
        });
    }
    report.records = cases.len();
    Ok((cases, report))
}

fn host_state(mission: &str, rows: &[Row], table: &MissionTable) -> Option<CountryCode> {
    let territories = table
        .get(mission)
        .map(|e| e.territories())
        .unwrap_or_default();
    if territories.len() == 1 {
        return territories.into_iter().next();
    }
    // Locally recruited staff are nationals of the duty station's country.
    let local = rows.iter().find_map(|r| {
        let n = r.victim.nationality.as_ref()?;
        (r.victim.category == PersonnelCategory::NationalCivilian
            && (territories.is_empty() || territories.contains(n)))
        .then(|| n.clone())
    });
    if local.is_some() {
        return local;
    }
    // The casualty id may name the mission the person served with (e.g. MONUSCO-… under UNSecretariat).
    let by_prefix = rows.iter().find_map(|r| {
        let t = table.get(&r.casualty_prefix)?.territories();
        (r.casualty_prefix != mission && t.len() == 1).then(|| t[0].clone())
    });
    by_prefix.or_else(|| territories.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_missions(table: &MissionTable) -> HashSet<String> {
        table.missions.keys().cloned().collect()
    }

    #[test]
    fn the_bundled_file_yields_611_cases_and_1134_victims() {
        let table = MissionTable::bundled();
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).expect("valid");
        let (cases, report) = parse(
            super::super::BUNDLED_FATALITIES,
            &table,
            &all_missions(&table),
            today,
        )
        .expect("parses");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert_eq!(cases.len(), 611);
        assert_eq!(report.victims, 1134);
        assert_eq!(report.rows_read, 4429);
        assert_eq!(report.rows_out_of_scope, 4429 - 1134);
        let codes: HashSet<&str> = cases.iter().map(|c| c.mission_code.as_str()).collect();
        assert_eq!(codes.len(), 52);
        let drc = cases
            .iter()
            .find(|c| {
                c.mission_code == "UNSecretariat" && c.incident_date.to_string() == "2017-03-12"
            })
            .expect("the 2017 Kasai case");
        assert_eq!(
            drc.host_state.as_deref(),
            Some("COD"),
            "resolved from the MONUSCO casualty id"
        );
        let civ = cases
            .iter()
            .find(|c| c.mission_code == "MINUSMA" && c.incident_date.to_string() == "2021-01-13")
            .expect("MINUSMA 2021-01-13");
        assert!(civ
            .victims
            .iter()
            .all(|(_, v)| v.nationality.as_ref().map(|c| c.as_str()) == Some("CIV")));
        assert!(civ.victims.iter().all(|(_, v)| v
            .contributing_country
            .as_ref()
            .map(|c| c.as_str())
            == Some("CIV")));
    }

    #[test]
    fn bad_rows_are_reported_with_line_and_reason() {
        let table = MissionTable::bundled();
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).expect("valid");
        let csv = "id,incident_date,casualty_id,mission_acronym,type_of_casualty,gender,casualty_nationality,casualty_personnel_type,type_of_incident,m49_code,isocode3,last_update\n\
            1,2021-01-13,X-1,MINUSMA,Fatality,M,Chad,Military,Malicious Act,148.0,TCD,2025-04-04\n\
            2,2031-01-13,X-2,MINUSMA,Fatality,M,Chad,Military,Malicious Act,148.0,TCD,2025-04-04\n\
            3,2021-01-13,X-3,NOSUCH,Fatality,Q,Atlantis,Wizard,Malicious Act,,,2025-04-04\n\
            4,2021-01-13,X-4,MINUSMA,Fatality,M,Chad,Military,Illness,148.0,TCD,2025-04-04\n";
        let (cases, report) =
            parse(csv.as_bytes(), &table, &all_missions(&table), today).expect("parses");
        assert_eq!(cases.len(), 1);
        assert_eq!(report.rows_out_of_scope, 1);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4]);
        assert!(report.rejected[0].reason.contains("future"));
        for word in ["NOSUCH", "Wizard", "`Q`", "Atlantis"] {
            assert!(
                report.rejected[1].reason.contains(word),
                "{} lacks {word}",
                report.rejected[1].reason
            );
        }
    }

    #[test]
    fn a_file_without_the_expected_columns_is_refused() {
        let err = parse(
            b"a,b\n1,2\n",
            &MissionTable::bundled(),
            &HashSet::new(),
            NaiveDate::MAX,
        )
        .expect_err("refused");
        assert!(err.to_string().contains("incident_date"), "{err}");
    }
}
