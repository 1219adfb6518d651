//! The mission table CaseGraph maintains (`data/reference/missions.toml`): what the UN files lack
//! (kind, host territories, missions absent from the list) and what they get wrong (MINUSMA's
//! status, swapped coordinates, a truncated name).

use crate::config::{load_toml, Validate, Validation};
use crate::domain::{parse_date, CountryCode, MissionKind, MissionStatus};
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

const BUNDLED: &str = include_str!("../../data/reference/missions.toml");

/// The whole table.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MissionTable {
    /// One entry per mission code.
    pub missions: BTreeMap<String, MissionTableEntry>,
}

/// What CaseGraph knows about one mission beyond (or instead of) the UN mission list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MissionTableEntry {
    /// Kind of presence.
    pub kind: MissionKind,
    /// Territories where it operated (ISO alpha-3), main first.
    pub host_territories: Vec<String>,
    /// Status correction.
    pub status: Option<MissionStatus>,
    /// Start date (YYYY-MM-DD) when the list lacks it.
    pub start_date: Option<String>,
    /// End date (YYYY-MM-DD) correction.
    pub end_date: Option<String>,
    /// Name, when the list lacks it or spells it wrong.
    pub name: Option<String>,
    /// The list gives longitude and latitude the wrong way round.
    #[serde(default)]
    pub coordinates_swapped: bool,
    /// Why.
    pub note: Option<String>,
}

impl MissionTableEntry {
    /// Host territories as codes (validated when the table loads).
    pub fn territories(&self) -> Vec<CountryCode> {
        self.host_territories
            .iter()
            .filter_map(|t| CountryCode::parse(t).ok())
            .collect()
    }

    /// Start date (validated when the table loads).
    pub fn start(&self) -> Option<NaiveDate> {
        self.start_date.as_deref().and_then(|d| parse_date(d).ok())
    }

    /// End date (validated when the table loads).
    pub fn end(&self) -> Option<NaiveDate> {
        self.end_date.as_deref().and_then(|d| parse_date(d).ok())
    }
}

impl Validate for MissionTable {
    fn validate(&self, errors: &mut Validation) {
        for (code, entry) in &self.missions {
            let key = format!("missions.{code}");
            if crate::domain::MissionCode::parse(code).is_err() {
                errors.error(&key, format!("`{code}` is not a mission code"));
            }
            for t in &entry.host_territories {
                if let Err(e) = CountryCode::parse(t) {
                    errors.error(&format!("{key}.host_territories"), e.to_string());
                }
            }
            if entry.host_territories.is_empty() && entry.kind != MissionKind::UnEntity {
                errors.error(
                    &format!("{key}.host_territories"),
                    "only a UN entity may have no host territory",
                );
            }
            for (field, value) in [
                ("start_date", &entry.start_date),
                ("end_date", &entry.end_date),
            ] {
                if let Some(Err(e)) = value.as_deref().map(parse_date) {
                    errors.error(&format!("{key}.{field}"), e.to_string());
                }
            }
        }
    }
}

impl MissionTable {
    /// The table bundled in the binary.
    pub fn bundled() -> Self {
        load_toml(BUNDLED, "data/reference/missions.toml").unwrap_or_else(|e| {
            panic!("the bundled mission table is valid (a unit test checks it):\n{e}")
        })
    }

    /// The entry for a code.
    pub fn get(&self, code: &str) -> Option<&MissionTableEntry> {
        self.missions.get(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_mission_table_loads_and_covers_minusma() {
        let table = MissionTable::bundled();
        let minusma = table.get("MINUSMA").expect("MINUSMA is in the table");
        assert_eq!(minusma.status, Some(MissionStatus::Closed));
        assert_eq!(
            minusma.end().map(|d| d.to_string()).as_deref(),
            Some("2023-12-31")
        );
        assert_eq!(
            minusma.territories().first().map(|c| c.as_str()),
            Some("MLI")
        );
        assert_eq!(
            table.get("UNSecretariat").map(|e| e.kind),
            Some(MissionKind::UnEntity)
        );
    }
}
