//! SEALED content is dropped here, in the connector layer, right after mapping and before the
//! cache: a record whose source marking is SEALED never reaches the cache, the schema or a log.
//! Only the fact that it exists is kept ([`Proceedings::sealed`]).
//!
//! Which markings are SEALED is the access policy's decision (its `[markings]` table); the
//! connector layer receives it as a plain predicate when the connectors are built, so that it
//! depends on no other layer.

use super::model::Proceedings;
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
    /// [`Proceedings::withheld`] (its key and `sealed` only). Other markings are kept as given,
    /// for the schema layer.
    pub fn apply(&self, p: Proceedings) -> Proceedings {
        if p.marking.as_deref().is_some_and(|m| self.is_sealed(m)) {
            return Proceedings::withheld(&p.key);
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

    fn record(marking: Option<&str>) -> Proceedings {
        let mut p = Proceedings::withheld("MINUSMA-20150528");
        p.sealed = false;
        p.national_reference = Some("RP-12/2015".into());
        p.charges = vec!["assassinat".into()];
        p.marking = marking.map(Into::into);
        p
    }

    fn sealing() -> Sealing {
        Sealing::markings(&["SEALED", "SCELLÉ"])
    }

    #[test]
    fn a_sealed_record_keeps_only_its_key_and_that_it_is_sealed() {
        let p = sealing().apply(record(Some(" scellé ")));
        assert_eq!(p, Proceedings::withheld("MINUSMA-20150528"));
        assert!(p.sealed);
        assert!(p.marking.is_none(), "the marking itself may say too much");
    }

    #[test]
    fn a_record_without_sealed_content_is_unchanged() {
        for marking in [None, Some("CONFIDENTIEL")] {
            let open = record(marking);
            assert_eq!(sealing().apply(open.clone()), open);
        }
    }
}
