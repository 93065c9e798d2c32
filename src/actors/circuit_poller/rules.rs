//! The acceptance rules of a BIN range refresh (`circuits.md`): the whole new set is validated
//! before anything changes; one bad row fails the refresh, naming its position and reason.

use crate::circuits::RawBinRange;
use crate::domain::{BinRange, Circuit};

/// Why a fetched set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// A row failed validation (1-based position in the fetched set).
    #[error("row {row}: {reason}")]
    BadRow {
        /// Position of the row.
        row: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The circuit sent no ranges at all.
    #[error("the circuit sent no ranges")]
    Empty,
}

/// Validates every fetched row into [`BinRange`]s; the first bad row refuses the whole set.
pub fn validate_set(circuit: Circuit, raws: &[RawBinRange]) -> Result<Vec<BinRange>, SetError> {
    if raws.is_empty() {
        return Err(SetError::Empty);
    }
    raws.iter()
        .enumerate()
        .map(|(i, r)| {
            BinRange::parse(
                circuit,
                &r.min,
                &r.max,
                r.issuer_bin.as_deref(),
                r.issuer_name.as_deref(),
            )
            .map_err(|e| SetError::BadRow {
                row: i + 1,
                reason: e.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(min: &str, max: &str) -> RawBinRange {
        RawBinRange {
            min: min.to_owned(),
            max: max.to_owned(),
            issuer_bin: None,
            issuer_name: None,
        }
    }

    #[test]
    fn a_valid_set_is_kept_in_order() {
        let set = validate_set(
            Circuit::Visa,
            &[raw("400000", "400099"), raw("410000", "410000")],
        );
        let set = set.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.len(), 2);
        assert_eq!(set[1].min(), "410000");
    }

    #[test]
    fn one_bad_row_refuses_the_set_and_names_it() {
        let got = validate_set(
            Circuit::Amex,
            &[
                raw("370000", "379999"),
                raw("38x000", "389999"),
                raw("1", "2"),
            ],
        );
        assert_eq!(
            got,
            Err(SetError::BadRow {
                row: 2,
                reason: "min must be 6 to 21 digits"
            })
        );
        assert_eq!(
            validate_set(Circuit::Amex, &[raw("379999", "370000")]),
            Err(SetError::BadRow {
                row: 1,
                reason: "min must not exceed max"
            })
        );
        assert_eq!(validate_set(Circuit::Amex, &[]), Err(SetError::Empty));
    }
}
