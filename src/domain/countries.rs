//! ISO 3166-1 alpha-3 country codes, from the table bundled at `data/reference/countries.csv`
//! (Debian's iso-codes, plus withdrawn codes that old UN records still use, plus XKX for Kosovo).

use super::ParseError;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

const TABLE: &str = include_str!("../../data/reference/countries.csv");

/// Whether a code is in use today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountryStatus {
    /// An ISO 3166-1 code in use.
    Current,
    /// A withdrawn ISO 3166-1 code (ISO 3166-3), e.g. YUG, kept for historical records.
    Historical,
    /// A user-assigned code in common use (XKX, Kosovo).
    UserAssigned,
}

struct Country {
    name: String,
    status: CountryStatus,
}

static COUNTRIES: LazyLock<HashMap<String, Country>> = LazyLock::new(|| {
    let mut reader = csv::Reader::from_reader(TABLE.as_bytes());
    let mut map = HashMap::new();
    for row in reader.records() {
        let row = row.expect("the bundled country table is valid CSV (checked by a test)");
        let status = match row.get(3) {
            Some("historical") => CountryStatus::Historical,
            Some("user-assigned") => CountryStatus::UserAssigned,
            _ => CountryStatus::Current,
        };
        map.insert(
            row.get(0).unwrap_or_default().to_string(),
            Country {
                name: row.get(2).unwrap_or_default().to_string(),
                status,
            },
        );
    }
    map
});

/// An ISO 3166-1 alpha-3 code known to CaseGraph (current, historical or user-assigned).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(String);

impl CountryCode {
    /// Parses an alpha-3 code; lowercase is accepted and normalised.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() == 3 && COUNTRIES.contains_key(&code) {
            Ok(Self(code))
        } else {
            Err(ParseError::CountryCode(raw.chars().take(16).collect()))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the code is current, historical or user-assigned.
    pub fn status(&self) -> CountryStatus {
        COUNTRIES
            .get(&self.0)
            .map_or(CountryStatus::Current, |c| c.status)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The English short name of a code, if known.
pub fn country_name(code: &str) -> Option<&'static str> {
    COUNTRIES.get(code).map(|c| c.name.as_str())
}

/// Looks a country up by its English name (exact, case-insensitive); used by the importer.
pub fn countries_by_name(name: &str) -> Option<CountryCode> {
    static BY_NAME: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
        COUNTRIES
            .iter()
            .map(|(code, c)| (c.name.to_lowercase(), code.clone()))
            .collect()
    });
    BY_NAME
        .get(&name.trim().to_lowercase())
        .map(|c| CountryCode(c.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_historical_and_user_assigned_codes_parse() {
        assert_eq!(CountryCode::parse("mli").expect("Mali").as_str(), "MLI");
        assert_eq!(
            CountryCode::parse("YUG").expect("Yugoslavia").status(),
            CountryStatus::Historical
        );
        assert_eq!(
            CountryCode::parse("XKX").expect("Kosovo").status(),
            CountryStatus::UserAssigned
        );
        assert!(
            COUNTRIES.len() > 249,
            "the table holds every ISO 3166-1 code"
        );
    }

    #[test]
    fn unknown_codes_are_refused() {
        for bad in ["XXX", "ML", "MALI", "", "ZZ"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_resolve_to_codes() {
        assert_eq!(
            countries_by_name("France").map(|c| c.0),
            Some("FRA".to_string())
        );
    }
}
