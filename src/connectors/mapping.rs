//! The declarative mapping from a national JSON record onto [`Proceedings`]: JSON pointers
//! (RFC 6901) say where each field is, and tables map national labels ("information judiciaire")
//! onto the canonical vocabulary. Unmapped labels are kept and reported, never dropped.

use super::model::{
    CaseStage, Court, CourtType, Defendant, DefendantStatus, FieldMask, Mapped, Proceedings,
    StageEntry,
};
use crate::config::Validation;
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a list of dated stages is, and where each entry's stage and date are.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StageHistoryMapping {
    /// Pointer to the array of stages, e.g. "/historique".
    pub list: String,
    /// Pointer, inside one entry, to its national stage label, e.g. "/etape".
    pub stage: String,
    /// Pointer, inside one entry, to its date, e.g. "/date".
    pub date: String,
}

/// Where the list of defendants is, and where each defendant's fields are.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DefendantsMapping {
    /// Pointer to the array of defendants, e.g. "/accuses".
    pub list: String,
    /// Pointer to the name.
    pub name: Option<String>,
    /// Pointer to the national status label (mapped with `defendant_statuses`).
    pub status: Option<String>,
    /// Pointer to the national wording of the status, when sent apart from `status`.
    #[serde(default)]
    pub national_status: Option<String>,
    /// Pointer to a true/false "tried in absentia" flag ("par défaut", "contumace").
    pub in_absentia: Option<String>,
    /// Pointer to the verdict.
    pub verdict: Option<String>,
    /// Pointer to the sentence.
    pub sentence: Option<String>,
    /// Pointer, inside one defendant, to your own confidentiality marking of that defendant,
    /// e.g. "/diffusion". A defendant marked with a SEALED marking (see the `[markings]` table
    /// of CaseGraph's policy, e.g. "SCELLÉ") is removed before CaseGraph keeps anything; another
    /// marking (e.g. "CONFIDENTIEL") restricts who sees that defendant.
    #[serde(default)]
    pub marking: Option<String>,
}

/// Where your own confidentiality markings of single fields are, one pointer per field (inside
/// a record, like the other pointers). A field marked with a SEALED marking (e.g. "SCELLÉ") is
/// emptied before CaseGraph keeps anything; another marking (e.g. "CONFIDENTIEL") restricts who
/// sees that field. A marking of the whole record is `marking`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct FieldMarkingsMapping {
    /// Pointer to the marking of the national reference, e.g. "/diffusion_champs/numero".
    pub national_reference: Option<String>,
    /// Pointer to the marking of the authority in charge.
    pub authority: Option<String>,
    /// Pointer to the marking of the current stage (canonical and national wording).
    pub stage: Option<String>,
    /// Pointer to the marking of the stage history.
    pub stage_history: Option<String>,
    /// Pointer to the marking of the court (name and kind), e.g. "/juridiction/diffusion".
    pub court: Option<String>,
    /// Pointer to the marking of the charges.
    pub charges: Option<String>,
    /// Pointer to the marking of the whole list of defendants (one defendant's own marking is
    /// `defendants.marking`).
    pub defendants: Option<String>,
    /// Pointer to the marking of the next hearing date.
    pub next_hearing: Option<String>,
    /// Pointer to the marking of the date the record last changed.
    pub updated_at: Option<String>,
}

impl FieldMarkingsMapping {
    /// Each configured pointer with the protocol field name it marks.
    pub fn pointers(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("national_reference", &self.national_reference),
            ("authority", &self.authority),
            ("stage", &self.stage),
            ("stage_history", &self.stage_history),
            ("court", &self.court),
            ("charges", &self.charges),
            ("defendants", &self.defendants),
            ("next_hearing", &self.next_hearing),
            ("updated_at", &self.updated_at),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_ref().map(|p| (name, p)))
    }
}

/// `[mapping]` of a connector file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct MappingConfig {
    /// Pointer to the array of records in a response; "" when the response is the array (or the
    /// single record) itself.
    pub records: String,
    /// Pointer, inside a record, to the key it answers: the UN case reference or the national
    /// reference, depending on `match_by`.
    pub key: String,
    /// Pointer to the national reference.
    pub national_reference: Option<String>,
    /// Pointer to the authority in charge (prosecutor's office, investigating judge).
    pub authority: Option<String>,
    /// Pointer to the current national stage label (mapped with `stages`).
    pub stage: Option<String>,
    /// Pointer to the national wording of the stage, for systems that send the canonical stage
    /// in `stage` and their own wording separately (the connector protocol does). Default: the
    /// label `stage` points at.
    pub national_stage: Option<String>,
    /// The dated stage history.
    pub stage_history: Option<StageHistoryMapping>,
    /// Pointer to the court's name.
    pub court_name: Option<String>,
    /// Pointer to the court's national kind label (mapped with `court_types`).
    pub court_type: Option<String>,
    /// Pointer to the charges: an array of strings, or of objects (then see `charge_label`).
    pub charges: Option<String>,
    /// Pointer, inside one charge object, to its wording.
    pub charge_label: Option<String>,
    /// The defendants.
    pub defendants: Option<DefendantsMapping>,
    /// Pointer to the next hearing date.
    pub next_hearing: Option<String>,
    /// Pointer to when the source last changed the record.
    pub updated_at: Option<String>,
    /// Pointer to the source's own confidentiality marking of the whole record. A record with a
    /// SEALED marking (see the `[markings]` table of CaseGraph's policy, e.g. "SCELLÉ") is
    /// dropped before CaseGraph keeps anything: only the fact that it exists is shown.
    pub marking: Option<String>,
    /// Where your markings of single fields are (`[mapping.field_markings]`), e.g.
    /// `court = "/juridiction/diffusion"`.
    pub field_markings: FieldMarkingsMapping,
    /// National stage label → canonical stage (REPORTED, UNDER_INVESTIGATION, CHARGED, …).
    /// Labels match ignoring case, surrounding spaces and the kind of apostrophe.
    pub stages: BTreeMap<String, CaseStage>,
    /// National defendant status label → canonical status (AT_LARGE, CONVICTED, …).
    pub defendant_statuses: BTreeMap<String, DefendantStatus>,
    /// National court kind label → CIVILIAN, MILITARY or SPECIAL.
    pub court_types: BTreeMap<String, CourtType>,
}

/// Why an answer, or one record of it, does not have the shape the mapping declares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The record lacks its key.
    #[error("a record has no key at `{0}`")]
    MissingKey(String),
    /// The records pointer does not lead to an array or object.
    #[error("the response has no records at `{0}`")]
    NoRecords(String),
    /// The records pointer leads to something else than the array of records.
    #[error("the response holds {found} at `{pointer}` where the array of records should be")]
    NotAList {
        /// The records pointer.
        pointer: String,
        /// What is there instead ("an object", "a number"…).
        found: &'static str,
    },
    /// A record's key has another type than text, so the record answers no known case.
    #[error("a record's {field} at `{pointer}` should be {expected}, found {found}")]
    WrongKey {
        /// "key".
        field: String,
        /// The key pointer.
        pointer: String,
        /// "text".
        expected: &'static str,
        /// What is there instead.
        found: String,
    },
    /// A value of a record has another type than the mapping reads there.
    #[error("record `{key}`: {field} at `{pointer}` should be {expected}, found {found}")]
    WrongType {
        /// The record's key.
        key: String,
        /// The field of the canonical model ("stage", "defendants[2].status"…).
        field: String,
        /// The pointer configured for it.
        pointer: String,
        /// What the mapping reads there ("text", "a date", "an array"…).
        expected: &'static str,
        /// What is there instead.
        found: String,
    },
}

impl MappingError {
    /// A wrong key's error concerns the whole answer: no record is attributable.
    fn without_key(self) -> Self {
        match self {
            Self::WrongType {
                field,
                pointer,
                expected,
                found,
                ..
            } => Self::WrongKey {
                field,
                pointer,
                expected,
                found,
            },
            other => other,
        }
    }

    /// Whether the error concerns one record whose key is known (the others of the answer
    /// can still be used), rather than the whole answer.
    pub fn record_key(&self) -> Option<&str> {
        match self {
            Self::WrongType { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What a JSON value is, for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a record's values with their declared types; the first wrong one is kept.
struct Reader<'a> {
    key: &'a str,
    error: Option<MappingError>,
}

impl Reader<'_> {
    fn wrong(&mut self, field: &str, pointer: &str, expected: &'static str, found: String) {
        if self.error.is_none() {
            self.error = Some(MappingError::WrongType {
                key: self.key.to_string(),
                field: field.to_string(),
                pointer: pointer.to_string(),
                expected,
                found,
            });
        }
    }

    /// Text: a string (trimmed; empty is absent) or a number; null is absent.
    fn text(&mut self, field: &str, pointer: &str, v: Option<&Value>) -> Option<String> {
        match v? {
            Value::Null => None,
            Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.wrong(field, pointer, "text", kind_of(other).to_string());
                None
            }
        }
    }

    /// A date (`YYYY-MM-DD`, `DD/MM/YYYY` or an RFC 3339 timestamp); null or empty is absent.
    fn date(&mut self, field: &str, pointer: &str, v: Option<&Value>) -> Option<NaiveDate> {
        let text = self.text(field, pointer, v)?;
        let date = parse_date(&text);
        if date.is_none() {
            self.wrong(field, pointer, "a date", "text that is no date".into());
        }
        date
    }

    /// A time (RFC 3339, or a date); null or empty is absent.
    fn time(&mut self, field: &str, pointer: &str, v: Option<&Value>) -> Option<DateTime<Utc>> {
        let text = self.text(field, pointer, v)?;
        let time = parse_time(&text);
        if time.is_none() {
            self.wrong(
                field,
                pointer,
                "a date or time",
                "text that is no date".into(),
            );
        }
        time
    }

    /// An array; null is absent.
    fn list<'v>(&mut self, field: &str, pointer: &str, v: Option<&'v Value>) -> &'v [Value] {
        match v {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.wrong(field, pointer, "an array", kind_of(other).to_string());
                &[]
            }
        }
    }

    /// An object (one entry of a list).
    fn object(&mut self, field: &str, pointer: &str, v: &Value) -> bool {
        if v.is_object() {
            true
        } else {
            self.wrong(field, pointer, "an object", kind_of(v).to_string());
            false
        }
    }

    /// A true/false flag: a boolean, 0/1, or yes/no words (oui/non, o/n, y/n).
    fn flag(&mut self, field: &str, pointer: &str, v: Option<&Value>) -> Option<bool> {
        let flag = match v? {
            Value::Null => return None,
            Value::Bool(b) => Some(*b),
            Value::String(s) => match normalise_label(s).as_str() {
                "" => return None,
                "true" | "oui" | "yes" | "1" | "o" | "y" => Some(true),
                "false" | "non" | "no" | "0" | "n" => Some(false),
                _ => None,
            },
            Value::Number(n) => n.as_i64().map(|n| n != 0),
            _ => None,
        };
        if flag.is_none() {
            let found = v.map_or("nothing", kind_of).to_string();
            self.wrong(field, pointer, "true or false", found);
        }
        flag
    }
}

/// What the mapping found in one record, for `casegraph connector test`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MappingReport {
    /// Configured pointers that found nothing in the record.
    pub missing: Vec<String>,
    /// National labels with no canonical mapping: (field, label).
    pub unmapped: Vec<(String, String)>,
    /// What the gateway withholds because its marking is SEALED ("the whole record",
    /// "field court", "defendant 2"); filled by `connector test`.
    pub sealed: Vec<String>,
}

/// Normalises a national label for table look-up.
pub fn normalise_label(s: &str) -> String {
    s.trim()
        .replace(['\u{2019}', '\u{2018}', '`', '\u{00b4}'], "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Parses `YYYY-MM-DD`, `DD/MM/YYYY` or the date part of an RFC 3339 timestamp.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.date_naive()))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            parse_date(s)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

struct Tables {
    stages: BTreeMap<String, CaseStage>,
    defendants: BTreeMap<String, DefendantStatus>,
    courts: BTreeMap<String, CourtType>,
}

/// A validated mapping, ready to apply.
#[derive(Debug, Clone)]
pub struct Mapping {
    config: MappingConfig,
    stages: BTreeMap<String, CaseStage>,
    defendants: BTreeMap<String, DefendantStatus>,
    courts: BTreeMap<String, CourtType>,
}

impl Mapping {
    /// Prepares a mapping (labels normalised once).
    pub fn new(config: MappingConfig) -> Self {
        let t = Tables {
            stages: config
                .stages
                .iter()
                .map(|(k, v)| (normalise_label(k), *v))
                .collect(),
            defendants: config
                .defendant_statuses
                .iter()
                .map(|(k, v)| (normalise_label(k), *v))
                .collect(),
            courts: config
                .court_types
                .iter()
                .map(|(k, v)| (normalise_label(k), *v))
                .collect(),
        };
        Self {
            config,
            stages: t.stages,
            defendants: t.defendants,
            courts: t.courts,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MappingConfig {
        &self.config
    }

    /// The records of an answer to a lookup of many keys: the array at the records pointer
    /// (an empty array says no key is known). At the top of the answer (an empty pointer) a
    /// single object is one record. Anything else is the wrong shape: it never reads as "no
    /// record".
    pub fn records<'a>(&self, response: &'a Value) -> Result<Vec<&'a Value>, MappingError> {
        self.records_in(response, false)
    }

    /// The records of an answer about one key (a REST single-case endpoint): like
    /// [`Mapping::records`], and a single object at the records pointer is that record.
    pub fn records_of_one<'a>(&self, response: &'a Value) -> Result<Vec<&'a Value>, MappingError> {
        self.records_in(response, true)
    }

    fn records_in<'a>(
        &self,
        response: &'a Value,
        one: bool,
    ) -> Result<Vec<&'a Value>, MappingError> {
        let pointer = &self.config.records;
        let at = if pointer.is_empty() {
            Some(response)
        } else {
            response.pointer(pointer)
        };
        match at {
            Some(Value::Array(items)) => Ok(items.iter().collect()),
            Some(Value::Null) | None => Err(MappingError::NoRecords(pointer.clone())),
            Some(obj @ Value::Object(_)) if one || pointer.is_empty() => Ok(vec![obj]),
            Some(other) => Err(MappingError::NotAList {
                pointer: if pointer.is_empty() {
                    "/".into()
                } else {
                    pointer.clone()
                },
                found: kind_of(other),
            }),
        }
    }

    /// The key a record answers: a non-empty string at the key pointer (a record whose key is
    /// missing or of another type cannot be matched to any case).
    pub fn key_of(&self, record: &Value) -> Result<String, MappingError> {
        match record.pointer(&self.config.key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            None | Some(Value::Null) => Err(MappingError::MissingKey(self.config.key.clone())),
            Some(Value::String(_)) => Err(MappingError::MissingKey(self.config.key.clone())),
            Some(other) => Err(MappingError::WrongType {
                key: "?".into(),
                field: "key".into(),
                pointer: self.config.key.clone(),
                expected: "text",
                found: kind_of(other).to_string(),
            }
            .without_key()),
        }
    }

    fn stage(&self, label: &str) -> Mapped<CaseStage> {
        self.stages.get(&normalise_label(label)).map_or_else(
            || Mapped::Unmapped(label.to_string()),
            |s| Mapped::Known(*s),
        )
    }

    /// Maps one record; the report lists what was missing or unmapped. A value of another
    /// type than the mapping reads (an object where text is expected, a list that is not an
    /// array, a date that is no date) is an error naming the record, the field and the
    /// pointer: it is never read as an absent value.
    pub fn apply(&self, record: &Value) -> Result<(Proceedings, MappingReport), MappingError> {
        let c = &self.config;
        let key = self.key_of(record)?;
        let mut report = MappingReport::default();
        let mut r = Reader {
            key: &key,
            error: None,
        };
        let mut get = |field: &str, ptr: &Option<String>| -> Option<(&Value, String)> {
            let p = ptr.as_ref()?;
            let v = record.pointer(p).filter(|v| !v.is_null());
            if v.is_none() {
                report.missing.push(format!("{field} ({p})"));
            }
            v.map(|v| (v, p.clone()))
        };
        let national_reference = get("national_reference", &c.national_reference);
        let authority = get("authority", &c.authority);
        let stage_at = get("stage", &c.stage);
        let court_name = get("court_name", &c.court_name);
        let court_type = get("court_type", &c.court_type);
        let charges_v = get("charges", &c.charges);
        let next_hearing = get("next_hearing", &c.next_hearing);
        let updated_at = get("updated_at", &c.updated_at);
        let marking = get("marking", &c.marking);
        let stage_history_v = c.stage_history.as_ref().map(|h| {
            let v = record.pointer(&h.list).filter(|v| !v.is_null());
            if v.is_none() {
                report.missing.push(format!("stage_history ({})", h.list));
            }
            v
        });
        let defendants_v = c.defendants.as_ref().map(|d| {
            let v = record.pointer(&d.list).filter(|v| !v.is_null());
            if v.is_none() {
                report.missing.push(format!("defendants ({})", d.list));
            }
            v
        });
        let text_of = |r: &mut Reader<'_>, field: &str, at: Option<(&Value, String)>| {
            at.and_then(|(v, p)| r.text(field, &p, Some(v)))
        };
        let national_reference = text_of(&mut r, "national_reference", national_reference);
        let authority = text_of(&mut r, "authority", authority);
        let stage_label = text_of(&mut r, "stage", stage_at);
        let national_stage = match &c.national_stage {
            Some(p) => r.text("national_stage", p, record.pointer(p)),
            None => None,
        }
        .or_else(|| stage_label.clone());
        let court_name = text_of(&mut r, "court_name", court_name);
        let court_label = text_of(&mut r, "court_type", court_type);
        let next_hearing = next_hearing.and_then(|(v, p)| r.date("next_hearing", &p, Some(v)));
        let updated_at = updated_at.and_then(|(v, p)| r.time("updated_at", &p, Some(v)));
        let marking = text_of(&mut r, "marking", marking);
        let mut field_markings = BTreeMap::new();
        for (name, p) in c.field_markings.pointers() {
            // Most fields carry no marking of their own: an absent one is not reported missing.
            if let Some(m) = r.text(&format!("field_markings.{name}"), p, record.pointer(p)) {
                field_markings.insert(name.to_string(), m);
            }
        }
        let stage = stage_label.as_deref().map(|l| self.stage(l));
        if let Some(Mapped::Unmapped(l)) = &stage {
            report.unmapped.push(("stage".into(), l.clone()));
        }
        let mut stage_history = Vec::new();
        if let (Some(h), Some(list)) = (&c.stage_history, stage_history_v) {
            for (i, item) in r.list("stage_history", &h.list, list).iter().enumerate() {
                let field = format!("stage_history[{i}]");
                if !r.object(&field, &h.list, item) {
                    continue;
                }
                let Some(label) =
                    r.text(&format!("{field}.stage"), &h.stage, item.pointer(&h.stage))
                else {
                    continue;
                };
                let mapped = self.stage(&label);
                if let Mapped::Unmapped(l) = &mapped {
                    report
                        .unmapped
                        .push(("stage_history.stage".into(), l.clone()));
                }
                let date = r.date(&format!("{field}.date"), &h.date, item.pointer(&h.date));
                stage_history.push(StageEntry {
                    stage: mapped,
                    national_label: label,
                    date,
                });
            }
            stage_history.sort_by_key(|e| e.date);
        }
        let court_type = court_label.map(|l| {
            self.courts.get(&normalise_label(&l)).map_or_else(
                || {
                    report.unmapped.push(("court_type".into(), l.clone()));
                    Mapped::Unmapped(l.clone())
                },
                |t| Mapped::Known(*t),
            )
        });
        let court = (court_name.is_some() || court_type.is_some()).then_some(Court {
            name: court_name,
            court_type,
        });
        let charges = match charges_v {
            Some((Value::Array(items), p)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let field = format!("charges[{i}]");
                    match (&c.charge_label, item) {
                        (Some(label), obj) if obj.is_object() => {
                            r.text(&field, label, obj.pointer(label))
                        }
                        _ => r.text(&field, &p, Some(item)),
                    }
                })
                .collect(),
            Some((v, p)) => r.text("charges", &p, Some(v)).into_iter().collect(),
            None => Vec::new(),
        };
        let mut defendants = Vec::new();
        if let (Some(d), Some(list)) = (&c.defendants, defendants_v) {
            for (i, item) in r.list("defendants", &d.list, list).iter().enumerate() {
                let field = |name: &str| format!("defendants[{i}].{name}");
                if !r.object(&format!("defendants[{i}]"), &d.list, item) {
                    continue;
                }
                let text = |r: &mut Reader<'_>, name: &str, p: &Option<String>| {
                    p.as_ref()
                        .and_then(|p| r.text(&field(name), p, item.pointer(p)))
                };
                let status_label = text(&mut r, "status", &d.status);
                let national_status = text(&mut r, "national_status", &d.national_status)
                    .or_else(|| status_label.clone());
                let name = text(&mut r, "name", &d.name);
                let verdict = text(&mut r, "verdict", &d.verdict);
                let sentence = text(&mut r, "sentence", &d.sentence);
                let marking = text(&mut r, "marking", &d.marking);
                let in_absentia = d
                    .in_absentia
                    .as_ref()
                    .and_then(|p| r.flag(&field("in_absentia"), p, item.pointer(p)));
                let status = status_label.as_ref().map(|l| {
                    self.defendants.get(&normalise_label(l)).map_or_else(
                        || {
                            report
                                .unmapped
                                .push(("defendants.status".into(), l.clone()));
                            Mapped::Unmapped(l.clone())
                        },
                        |s| Mapped::Known(*s),
                    )
                });
                defendants.push(Defendant {
                    name,
                    status,
                    national_status,
                    in_absentia,
                    verdict,
                    sentence,
                    marking,
                });
            }
        }
        if let Some(error) = r.error {
            return Err(error);
        }
        Ok((
            Proceedings {
                key,
                national_reference,
                authority,
                stage,
                national_stage,
                stage_history,
                court,
                charges,
                defendants,
                next_hearing,
                source_updated_at: updated_at,
                marking,
                field_markings,
                sealed: false,
                sealed_parts: false,
            },
            report,
        ))
    }
}

fn check_pointer(v: &mut Validation, key: &str, p: &str, allow_empty: bool) {
    if (p.is_empty() && !allow_empty) || (!p.is_empty() && !p.starts_with('/')) {
        v.error(
            key,
            format!("`{p}` is not a JSON pointer: it starts with `/`, e.g. \"/dossier/reference\""),
        );
    }
}

impl MappingConfig {
    /// Checks pointers and tables; `stages` must be non-empty when `stage` is mapped, and
    /// labels must be unique once normalised.
    pub fn validate_into(&self, v: &mut Validation) {
        check_pointer(v, "mapping.records", &self.records, true);
        check_pointer(v, "mapping.key", &self.key, false);
        for (k, p) in [
            ("national_reference", &self.national_reference),
            ("authority", &self.authority),
            ("stage", &self.stage),
            ("court_name", &self.court_name),
            ("court_type", &self.court_type),
            ("charges", &self.charges),
            ("charge_label", &self.charge_label),
            ("next_hearing", &self.next_hearing),
            ("updated_at", &self.updated_at),
            ("marking", &self.marking),
        ] {
            if let Some(p) = p {
                check_pointer(v, &format!("mapping.{k}"), p, false);
            }
        }
        for (name, p) in self.field_markings.pointers() {
            debug_assert!(FieldMask::bit_of(name).is_some(), "a protocol field name");
            check_pointer(v, &format!("mapping.field_markings.{name}"), p, false);
        }
        if let Some(h) = &self.stage_history {
            check_pointer(v, "mapping.stage_history.list", &h.list, false);
            check_pointer(v, "mapping.stage_history.stage", &h.stage, false);
            check_pointer(v, "mapping.stage_history.date", &h.date, false);
        }
        if let Some(d) = &self.defendants {
            check_pointer(v, "mapping.defendants.list", &d.list, false);
            for (k, p) in [
                ("name", &d.name),
                ("status", &d.status),
                ("in_absentia", &d.in_absentia),
                ("verdict", &d.verdict),
                ("sentence", &d.sentence),
                ("marking", &d.marking),
            ] {
                if let Some(p) = p {
                    check_pointer(v, &format!("mapping.defendants.{k}"), p, false);
                }
            }
            if d.status.is_some() && self.defendant_statuses.is_empty() {
                v.error(
                    "mapping.defendant_statuses",
                    "defendants.status is mapped but the defendant_statuses table is empty",
                );
            }
        }
        if (self.stage.is_some() || self.stage_history.is_some()) && self.stages.is_empty() {
            v.error(
                "mapping.stages",
                "a stage is mapped but the stages table is empty",
            );
        }
        if self.court_type.is_some() && self.court_types.is_empty() {
            v.error(
                "mapping.court_types",
                "court_type is mapped but the court_types table is empty",
            );
        }
        dup_labels(v, "mapping.stages", self.stages.keys());
        dup_labels(
            v,
            "mapping.defendant_statuses",
            self.defendant_statuses.keys(),
        );
        dup_labels(v, "mapping.court_types", self.court_types.keys());
    }

    /// Canonical stages no national label maps to (reported by `check-config` as notes).
    pub fn uncovered_stages(&self) -> Vec<CaseStage> {
        CaseStage::ALL
            .iter()
            .copied()
            .filter(|s| !self.stages.values().any(|v| v == s))
            .collect()
    }

    /// Canonical defendant statuses no national label maps to.
    pub fn uncovered_defendant_statuses(&self) -> Vec<DefendantStatus> {
        DefendantStatus::ALL
            .iter()
            .copied()
            .filter(|s| !self.defendant_statuses.values().any(|v| v == s))
            .collect()
    }
}

fn dup_labels<'a>(v: &mut Validation, key: &str, labels: impl Iterator<Item = &'a String>) {
    let mut seen = BTreeMap::new();
    for l in labels {
        if let Some(first) = seen.insert(normalise_label(l), l.clone()) {
            v.error(
                key,
                format!(
                    "labels `{first}` and `{l}` are the same once case and spacing are ignored"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> Mapping {
        Mapping::new(MappingConfig {
            records: "/dossiers".into(),
            key: "/reference_onu".into(),
            national_reference: Some("/numero".into()),
            stage: Some("/etat".into()),
            stage_history: Some(StageHistoryMapping {
                list: "/historique".into(),
                stage: "/etat".into(),
                date: "/date".into(),
            }),
            court_name: Some("/juridiction/nom".into()),
            court_type: Some("/juridiction/type".into()),
            charges: Some("/chefs".into()),
            defendants: Some(DefendantsMapping {
                list: "/accuses".into(),
                national_status: None,
                name: Some("/nom".into()),
                status: Some("/situation".into()),
                in_absentia: Some("/par_defaut".into()),
                verdict: Some("/verdict".into()),
                sentence: Some("/peine".into()),
                marking: Some("/diffusion".into()),
            }),
            next_hearing: Some("/prochaine_audience".into()),
            marking: Some("/diffusion".into()),
            field_markings: FieldMarkingsMapping {
                court: Some("/juridiction/diffusion".into()),
                charges: Some("/diffusion_chefs".into()),
                ..Default::default()
            },
            stages: [
                (
                    "Information judiciaire".to_string(),
                    CaseStage::UnderInvestigation,
                ),
                (
                    "Renvoi devant la cour d’assises".to_string(),
                    CaseStage::TrialScheduled,
                ),
                ("Arrêt rendu".to_string(), CaseStage::Judgment),
            ]
            .into(),
            defendant_statuses: [("Condamné".to_string(), DefendantStatus::Convicted)].into(),
            court_types: [("Cour d'assises".to_string(), CourtType::Civilian)].into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_french_record_maps_onto_the_canonical_model() {
        let m = mapping();
        let resp = json!({"dossiers": [{
            "reference_onu": "MINUSMA-20150528", "numero": "RP-12/2015", "etat": "arrêt rendu",
            "historique": [{"etat": "Renvoi devant la cour d'assises", "date": "24/01/2020"}, {"etat": "information judiciaire", "date": "2015-06-01"}],
            "juridiction": {"nom": "Cour d'assises de Bamako", "type": "cour d’assises"},
            "chefs": ["assassinat", "terrorisme"],
            "accuses": [{"nom": "X", "situation": "Condamné", "par_defaut": "oui", "verdict": "coupable", "peine": "mort"},
                        {"nom": "Y", "situation": "en fuite", "par_defaut": false}],
            "prochaine_audience": null, "diffusion": "public"
        }]});
        let records = m.records(&resp).expect("records");
        let (p, report) = m.apply(records[0]).expect("maps");
        assert_eq!(p.key, "MINUSMA-20150528");
        assert_eq!(p.stage, Some(Mapped::Known(CaseStage::Judgment)));
        assert_eq!(p.stage_history.len(), 2);
        assert_eq!(
            p.stage_history[0].stage,
            Mapped::Known(CaseStage::UnderInvestigation),
            "sorted by date"
        );
        assert_eq!(
            p.court.as_ref().and_then(|c| c.court_type.clone()),
            Some(Mapped::Known(CourtType::Civilian))
        );
        assert_eq!(p.charges, vec!["assassinat", "terrorisme"]);
        assert_eq!(
            p.defendants[0].status,
            Some(Mapped::Known(DefendantStatus::Convicted))
        );
        assert_eq!(p.defendants[0].in_absentia, Some(true));
        assert_eq!(
            p.defendants[1].status,
            Some(Mapped::Unmapped("en fuite".into())),
            "unmapped labels are kept"
        );
        assert_eq!(
            report.unmapped,
            vec![("defendants.status".to_string(), "en fuite".to_string())]
        );
        assert_eq!(
            report.missing,
            vec!["next_hearing (/prochaine_audience)".to_string()]
        );
    }

    #[test]
    fn markings_of_the_record_of_single_fields_and_of_each_defendant_are_read() {
        let m = mapping();
        let (p, report) = m
            .apply(&json!({
                "reference_onu": "MINUSMA-20150528", "diffusion": "Restreinte",
                "juridiction": {"nom": "Tribunal militaire", "diffusion": "huis clos"},
                "chefs": ["assassinat"],
                "accuses": [{"nom": "X", "diffusion": "CONFIDENTIEL"}, {"nom": "Y"}]
            }))
            .expect("maps");
        assert_eq!(p.marking.as_deref(), Some("Restreinte"));
        assert_eq!(
            p.field_markings,
            BTreeMap::from([("court".to_string(), "huis clos".to_string())]),
            "a field without its own marking has no entry"
        );
        assert_eq!(p.defendants[0].marking.as_deref(), Some("CONFIDENTIEL"));
        assert_eq!(p.defendants[1].marking, None);
        assert!(
            !report.missing.iter().any(|m| m.contains("diffusion_chefs")),
            "an absent field marking is not reported missing: {report:?}"
        );
        assert!(
            !p.sealed && !p.sealed_parts,
            "only the connector layer seals"
        );
    }

    #[test]
    fn a_field_marking_pointer_must_be_a_json_pointer() {
        let mut v = Validation::new();
        MappingConfig {
            key: "/reference".into(),
            field_markings: FieldMarkingsMapping {
                court: Some("juridiction/diffusion".into()),
                ..Default::default()
            },
            defendants: Some(DefendantsMapping {
                list: "/accuses".into(),
                name: None,
                status: None,
                national_status: None,
                in_absentia: None,
                verdict: None,
                sentence: None,
                marking: Some("diffusion".into()),
            }),
            ..Default::default()
        }
        .validate_into(&mut v);
        let keys: Vec<&str> = v.errors().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec!["mapping.field_markings.court", "mapping.defendants.marking"]
        );
    }

    #[test]
    fn a_record_without_its_key_is_refused() {
        let m = mapping();
        assert_eq!(
            m.apply(&json!({"numero": "1"})),
            Err(MappingError::MissingKey("/reference_onu".into()))
        );
        assert!(m.records(&json!({"autre": []})).is_err());
    }

    #[test]
    fn bad_pointers_and_empty_tables_are_reported() {
        let mut v = Validation::new();
        MappingConfig {
            key: "reference".into(),
            stage: Some("/etat".into()),
            ..Default::default()
        }
        .validate_into(&mut v);
        let keys: Vec<&str> = v.errors().iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"mapping.key"), "{keys:?}");
        assert!(keys.contains(&"mapping.stages"), "{keys:?}");
    }
}
