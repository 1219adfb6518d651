//! The mission list (`DPPADPOSS-PKO`).

use super::table::MissionTable;
use super::{column_index, ImportError, ImportReport, RejectedRow};
use crate::domain::{parse_date, MissionCode, MissionStatus};
use crate::store::MissionRecord;
use std::collections::BTreeSet;

/// Dataset name recorded as the source of imported missions.
pub const MISSIONS_DATASET: &str = "DPPADPOSS-PKO";

const COLUMNS: &[&str] = &[
    "mission_acronym",
    "mission_name",
    "mission_isactive",
    "start_date",
    "end_date",
    "mission_location",
    "mission_longitude",
    "mission_latitude",
];

/// "15,9833" (decimal comma, as the file writes it) or "15.9833".
fn parse_decimal(raw: &str) -> Result<Option<f64>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.replace(',', ".")
        .parse::<f64>()
        .map(Some)
        .map_err(|_| format!("`{s}` is not a number"))
}

/// "Yes" / "No" in any case ("NO" occurs).
fn parse_flag(raw: &str) -> Result<MissionStatus, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "yes" => Ok(MissionStatus::Active),
        "no" => Ok(MissionStatus::Closed),
        _ => Err(format!(
            "mission_isactive `{}` is neither Yes nor No",
            raw.trim()
        )),
    }
}

/// Parses the file and merges the maintained table; returns the missions and a report.
pub(super) fn parse(
    csv: &[u8],
    table: &MissionTable,
) -> Result<(Vec<MissionRecord>, ImportReport), ImportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(csv);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Format(format!("line 1: {e}")))?
        .clone();
    let idx = column_index(&headers, COLUMNS)?;
    let mut report = ImportReport {
        dataset: MISSIONS_DATASET.into(),
        ..Default::default()
    };
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    for row in reader.records() {
        report.rows_read += 1;
        let row = match row {
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
        let line = row.position().map_or(0, |p| p.line());
        let field = |i: usize| row.get(idx[i]).unwrap_or_default();
        let mut reasons = Vec::new();
        let code = match MissionCode::parse(field(0)) {
            Ok(c) => Some(c),
            Err(e) => {
                reasons.push(e.to_string());
                None
            }
        };
        let entry = code.as_ref().and_then(|c| table.get(c.as_str()));
        if let (Some(c), None) = (&code, entry) {
            reasons.push(format!(
                "mission `{c}` is not in data/reference/missions.toml: add it with its kind and host territories"
            ));
        }
        let flag = parse_flag(field(2)).map_err(|e| reasons.push(e)).ok();
        let start = match field(3).trim() {
            "" => None,
            d => parse_date(d)
                .map_err(|e| reasons.push(format!("start_date: {e}")))
                .ok(),
        };
        let end = match field(4).trim() {
            "" => None,
            d => parse_date(d)
                .map_err(|e| reasons.push(format!("end_date: {e}")))
                .ok(),
        };
        let lon = parse_decimal(field(6))
            .map_err(|e| reasons.push(format!("mission_longitude: {e}")))
            .ok()
            .flatten();
        let lat = parse_decimal(field(7))
            .map_err(|e| reasons.push(format!("mission_latitude: {e}")))
            .ok()
            .flatten();
        if let Some(c) = &code {
            if !seen.insert(c.to_string()) {
                reasons.push(format!("mission `{c}` appears twice"));
            }
        }
        let (Some(code), Some(entry), Some(flag), true) = (code, entry, flag, reasons.is_empty())
        else {
            report.rejected.push(RejectedRow {
                line,
                reason: reasons.join("; "),
            });
            continue;
        };
        let (mut lat, mut lon) = if entry.coordinates_swapped {
            (lon, lat)
        } else {
            (lat, lon)
        };
        if lat.is_some_and(|v| !(-90.0..=90.0).contains(&v))
            || lon.is_some_and(|v| !(-180.0..=180.0).contains(&v))
        {
            report.warnings.push(format!(
                "line {line}: {code}: coordinates out of range, left out"
            ));
            (lat, lon) = (None, None);
        }
        let status = entry.status.unwrap_or(flag);
        if status != flag {
            report.warnings.push(format!(
                "line {line}: {code}: status corrected to {status} by the mission table"
            ));
        }
        let location = field(5).trim();
        records.push(MissionRecord {
            name: entry
                .name
                .clone()
                .unwrap_or_else(|| field(1).trim().to_string()),
            kind: entry.kind,
            status,
            start_date: start.or(entry.start()),
            end_date: entry.end().or(end),
            host_territories: entry.territories(),
            location_name: (!location.is_empty()).then(|| location.to_string()),
            latitude: lat,
            longitude: lon,
            focal_point: None,
            code,
        });
    }
    // Missions the list does not carry (special political missions, UN entities) come from the table.
    for (code, entry) in &table.missions {
        if seen.contains(code) {
            continue;
        }
        let Ok(mission_code) = MissionCode::parse(code) else {
            continue;
        };
        records.push(MissionRecord {
            code: mission_code,
            name: entry.name.clone().unwrap_or_else(|| code.clone()),
            kind: entry.kind,
            status: entry.status.unwrap_or(if entry.end().is_some() {
                MissionStatus::Closed
            } else {
                MissionStatus::Active
            }),
            start_date: entry.start(),
            end_date: entry.end(),
            host_territories: entry.territories(),
            location_name: None,
            latitude: None,
            longitude: None,
            focal_point: None,
        });
    }
    report.records = records.len();
    Ok((records, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_commas_and_flags_parse() {
        assert_eq!(parse_decimal("15,9833"), Ok(Some(15.9833)));
        assert_eq!(parse_decimal(""), Ok(None));
        assert!(parse_decimal("abc").is_err());
        assert_eq!(parse_flag("NO"), Ok(MissionStatus::Closed));
        assert_eq!(parse_flag("Yes"), Ok(MissionStatus::Active));
        assert!(parse_flag("maybe").is_err());
    }

    #[test]
    fn the_bundled_list_imports_with_corrections() {
        let (records, report) =
            parse(super::super::BUNDLED_MISSIONS, &MissionTable::bundled()).expect("parses");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let minusma = records
            .iter()
            .find(|m| m.code.as_str() == "MINUSMA")
            .expect("MINUSMA");
        assert_eq!(minusma.status, MissionStatus::Closed);
        assert_eq!(
            minusma.end_date.map(|d| d.to_string()).as_deref(),
            Some("2023-12-31")
        );
        // Bamako lies at 12.65 N, 8.0 W: the file's swapped pair is put right.
        assert_eq!(
            (minusma.latitude, minusma.longitude),
            (Some(12.65), Some(-8.0))
        );
        let domrep = records
            .iter()
            .find(|m| m.code.as_str() == "DOMREP")
            .expect("DOMREP");
        assert!(
            !domrep.name.starts_with('"'),
            "the truncated name is replaced: {}",
            domrep.name
        );
        assert!(
            records.iter().any(|m| m.code.as_str() == "UNSecretariat"),
            "table-only entities are added"
        );
        assert_eq!(report.rows_read, 81);
    }

    #[test]
    fn a_bad_row_is_reported_with_its_line() {
        let csv = "id,mission_acronym,mission_name,lead_department,mission_isactive,start_date,end_date,mission_location,mission_longitude,mission_latitude,last_update\n\
                   1,MINUSMA,Mali,DPO,Yes,2013-04-25,,Bamako,\"12,65\",\"-8,0\",2024-02-19\n\
                   2,NOPE,Nowhere,DPO,Perhaps,2013-13-01,,X,,,2024-02-19\n";
        let (_, report) = parse(csv.as_bytes(), &MissionTable::bundled()).expect("parses");
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].line, 3);
        assert!(
            report.rejected[0].reason.contains("NOPE"),
            "{}",
            report.rejected[0].reason
        );
        assert!(report.rejected[0].reason.contains("Perhaps"));
        assert!(report.rejected[0].reason.contains("start_date"));
    }
}
