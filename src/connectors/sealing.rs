//! SEALED content is dropped here, in the connector layer, right after mapping and before the
//! cache: a record, a field or a defendant whose source marking is SEALED never reaches the
//! cache, the schema or a log. Only the fact that such content exists is kept
//! ([`Proceedings::sealed`], [`Proceedings::sealed_parts`]).
//!
//! Which markings are SEALED is the access policy's decision (its `[markings]` table); the
//! connector layer receives it as a plain predicate when the connectors are built, so that it
//! depends on no other layer.

use super::model::{FieldMask, Proceedings};
use std::fmt;
use std::sync::Arc;

/// Which source markings are SEALED. Cheap to clone.
#[derive(Clone)]
pub struct Sealing(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl Sealing {
    /// A rule saying whether a source marking, as the source writes it, is SEALED. The
    /// gateway builds it from the access policy (`Policy::marking_level(m) == Level::Sealed`,
    /// see `casegraph::sealing_of`).
    pub fn new(is_sealed: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(is_sealed))
    }

    /// The markings listed, matched ignoring case and surrounding spaces (tests, embedding).
    pub fn markings(sealed: &[&str]) -> Self {
        let sealed: Vec<String> = sealed.iter().map(|m| m.trim().to_lowercase()).collect();
        Self::new(move |m| sealed.contains(&m.trim().to_lowercase()))
    }

    /// Whether `marking` is SEALED.
    pub fn is_sealed(&self, marking: &str) -> bool {
        (self.0)(marking)
    }

    /// Drops the SEALED content of a mapped record: a SEALED record becomes
    /// [`Proceedings::withheld`] (its key and `sealed` only); a SEALED field is emptied and its
    /// marking entry removed, a SEALED defendant is removed, and `sealed_parts` says so. Other
    /// markings are kept as given, for the schema layer.
    pub fn apply(&self, mut p: Proceedings) -> Proceedings {
        if p.marking.as_deref().is_some_and(|m| self.is_sealed(m)) {
            return Proceedings::withheld(&p.key);
        }
        let sealed_fields: Vec<u16> = p
            .field_markings
            .iter()
            .filter(|(_, m)| self.is_sealed(m))
            .filter_map(|(name, _)| FieldMask::bit_of(name))
            .collect();
        for bit in &sealed_fields {
            p.clear(*bit);
        }
        // A marking keyed by a name CaseGraph does not know marks nothing it holds.
        p.field_markings
            .retain(|name, _| FieldMask::bit_of(name).is_some());
        let defendants = p.defendants.len();
        p.defendants
            .retain(|d| !d.marking.as_deref().is_some_and(|m| self.is_sealed(m)));
        if !sealed_fields.is_empty() || p.defendants.len() < defendants {
            p.sealed_parts = true;
        }
        p
    }
}

impl fmt::Debug for Sealing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealing(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::model::{Court, Defendant};
    use std::collections::BTreeMap;

    fn defendant(name: &str, marking: Option<&str>) -> Defendant {
        Defendant {
            name: Some(name.into()),
            status: None,
            national_status: None,
            in_absentia: None,
            verdict: None,
            sentence: None,
            marking: marking.map(Into::into),
        }
    }

    fn record(marking: Option<&str>, field_markings: &[(&str, &str)]) -> Proceedings {
        let mut p = Proceedings::withheld("MINUSMA-20150528");
        p.sealed = false;
        p.national_reference = Some("RP-12/2015".into());
        p.authority = Some("Juge d'instruction".into());
        p.court = Some(Court {
            name: Some("Tribunal militaire".into()),
            court_type: None,
        });
        p.charges = vec!["assassinat".into()];
        p.defendants = vec![
            defendant("Open", None),
            defendant("Confidential", Some("CONFIDENTIEL")),
            defendant("Sealed", Some(" scellé ")),
        ];
        p.marking = marking.map(Into::into);
        p.field_markings = field_markings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p
    }

    fn sealing() -> Sealing {
        Sealing::markings(&["SEALED", "SCELLÉ"])
    }

    #[test]
    fn a_sealed_record_keeps_only_its_key_and_that_it_is_sealed() {
        let p = sealing().apply(record(Some("Sealed"), &[]));
        assert_eq!(p, Proceedings::withheld("MINUSMA-20150528"));
        assert!(p.sealed);
        assert!(p.marking.is_none(), "the marking itself may say too much");
    }

    #[test]
    fn a_sealed_field_is_emptied_and_a_sealed_defendant_removed_the_rest_kept() {
        let p = sealing().apply(record(
            Some("CONFIDENTIEL"),
            &[
                ("court", "SCELLÉ"),
                ("charges", "huis clos"),
                ("victims", "x"),
            ],
        ));
        assert!(!p.sealed);
        assert!(p.sealed_parts);
        assert_eq!(p.court, None);
        assert_eq!(p.charges, ["assassinat"]);
        assert_eq!(p.national_reference.as_deref(), Some("RP-12/2015"));
        assert_eq!(p.marking.as_deref(), Some("CONFIDENTIEL"));
        assert_eq!(
            p.field_markings,
            BTreeMap::from([("charges".to_string(), "huis clos".to_string())]),
            "non-SEALED markings stay for the schema layer; unknown names go"
        );
        let names: Vec<_> = p.defendants.iter().filter_map(|d| d.name.clone()).collect();
        assert_eq!(names, ["Open", "Confidential"]);
        assert_eq!(p.defendants[1].marking.as_deref(), Some("CONFIDENTIEL"));
    }

    #[test]
    fn a_record_without_sealed_content_is_unchanged() {
        let mut open = record(None, &[("charges", "PUBLIC")]);
        open.defendants.pop();
        assert_eq!(sealing().apply(open.clone()), open);
    }
}
