//! Domain vocabulary: validated newtypes and the closed enums of the canonical model.
//!
//! Values are parsed once at the edge (GraphQL input, CSV import, token claims) and trusted after
//! ("parse, don't validate").

mod countries;
mod enums;

pub use countries::{countries_by_name, country_name, CountryCode, CountryStatus};
pub use enums::*;

use chrono::NaiveDate;
use std::fmt;

/// Why a value could not become a domain value. The message never repeats the rejected value
/// in full when it may be sensitive; codes, dates and references are not sensitive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not an ISO 3166-1 alpha-3 code CaseGraph knows.
    #[error("`{0}` is not an ISO 3166-1 alpha-3 country code")]
    CountryCode(String),
    /// Not a well-formed mission code.
    #[error("`{0}` is not a mission code (2 to 32 letters, digits, spaces or hyphens)")]
    MissionCode(String),
    /// Empty after trimming.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// Too long.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Maximum length.
        max: usize,
    },
    /// Contains characters outside the allowed set.
    #[error("{0} contains characters that are not allowed")]
    BadCharacters(&'static str),
    /// Not a date in YYYY-MM-DD form.
    #[error("`{0}` is not a date in YYYY-MM-DD form")]
    Date(String),
    /// Unknown enum value.
    #[error("`{value}` is not a known {kind}")]
    Enum {
        /// Enum name.
        kind: &'static str,
        /// Rejected value.
        value: String,
    },
}

/// A mission code such as `MINUSMA`, `UNOSOM II` or the UN entity `UNSecretariat`, as the UN
/// Peace and Security Data Hub spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MissionCode(String);

impl MissionCode {
    /// Parses a mission code: 2–32 ASCII letters, digits, inner spaces or hyphens.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        let ok = (2..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ParseError::MissionCode(truncate(s, 40)))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MissionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a bounded, non-empty free-text value (a summary, an authority, a reference).
pub fn parse_text(field: &'static str, raw: &str, max: usize) -> Result<String, ParseError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(ParseError::Empty(field));
    }
    if s.chars().count() > max {
        return Err(ParseError::TooLong { field, max });
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ParseError::BadCharacters(field));
    }
    Ok(s.to_string())
}

/// Parses a reference (a UN case reference or a national case-file number): printable, no
/// line breaks, at most 128 characters.
pub fn parse_reference(field: &'static str, raw: &str) -> Result<String, ParseError> {
    let s = parse_text(field, raw, 128)?;
    if s.contains('\n') || s.contains('\t') {
        return Err(ParseError::BadCharacters(field));
    }
    Ok(s)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> Result<NaiveDate, ParseError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| ParseError::Date(truncate(raw, 40)))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mission_codes_from_the_data_hub_parse() {
        for code in ["MINUSMA", "UNOSOM II", "UNSecretariat", "UN-1"] {
            assert_eq!(MissionCode::parse(code).expect(code).as_str(), code);
        }
    }

    #[test]
    fn malformed_mission_codes_are_refused() {
        for bad in ["", "M", "MINUSMA;DROP", "1ABC", &"X".repeat(33)] {
            assert!(MissionCode::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn empty_and_oversized_text_is_refused() {
        assert_eq!(
            parse_text("summary", "  ", 10),
            Err(ParseError::Empty("summary"))
        );
        assert!(matches!(
            parse_text("summary", "abcdefghijk", 10),
            Err(ParseError::TooLong { .. })
        ));
        assert_eq!(
            parse_reference("reference", " RP-12/2021 ").as_deref(),
            Ok("RP-12/2021")
        );
        assert!(parse_reference("reference", "a\nb").is_err());
    }

    #[test]
    fn dates_must_be_iso() {
        assert!(parse_date("2021-02-30").is_err());
        assert!(parse_date("12/01/2021").is_err());
        assert_eq!(
            parse_date("2021-01-13").expect("valid").to_string(),
            "2021-01-13"
        );
    }
}
