//! Token BIN ranges: `[min, max]` bounds of 6–21 digits, compared numerically after padding
//! (`files.md`): the shorter side is padded with `0` against a lower bound and `9` against an
//! upper bound, never compared as plain strings.

use std::cmp::Ordering;

use super::{Circuit, ParseError};

/// A validated token BIN range of one circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinRange {
    circuit: Circuit,
    min: String,
    max: String,
    issuer_bin: Option<String>,
    issuer_name: Option<String>,
}

fn bound(input: &str, which: &'static str) -> Result<String, ParseError> {
    let value = input.trim();
    if !(6..=21).contains(&value.len()) {
        return Err(ParseError(which));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError(which));
    }
    Ok(value.to_owned())
}

/// Compares two digit strings after padding the shorter one with `pad`.
fn compare_padded(a: &str, b: &str, pad: u8) -> Ordering {
    let len = a.len().max(b.len());
    let byte = |s: &str, i: usize| s.as_bytes().get(i).copied().unwrap_or(pad);
    (0..len)
        .map(|i| byte(a, i).cmp(&byte(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

impl BinRange {
    /// Validates a range: digits only, 6–21 digits each, `min ≤ max`. The error names the part.
    pub fn parse(
        circuit: Circuit,
        min: &str,
        max: &str,
        issuer_bin: Option<&str>,
        issuer_name: Option<&str>,
    ) -> Result<Self, ParseError> {
        let min = bound(min, "min must be 6 to 21 digits")?;
        let max = bound(max, "max must be 6 to 21 digits")?;
        // min padded as a lower bound (0s), max as an upper bound (9s).
        let len = min.len().max(max.len());
        let lo = format!("{min:0<len$}");
        let hi = format!("{max:9<len$}");
        if lo > hi {
            return Err(ParseError("min must not exceed max"));
        }
        let clean = |v: Option<&str>, limit: usize| {
            v.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(limit).collect::<String>())
        };
        Ok(Self {
            circuit,
            min,
            max,
            issuer_bin: clean(issuer_bin, 21),
            issuer_name: clean(issuer_name, 200),
        })
    }

    /// The circuit.
    pub fn circuit(&self) -> Circuit {
        self.circuit
    }

    /// The lower bound, digits.
    pub fn min(&self) -> &str {
        &self.min
    }

    /// The upper bound, digits.
    pub fn max(&self) -> &str {
        &self.max
    }

    /// The issuer BIN, when the circuit gave it.
    pub fn issuer_bin(&self) -> Option<&str> {
        self.issuer_bin.as_deref()
    }

    /// The issuer name, when the circuit gave it.
    pub fn issuer_name(&self) -> Option<&str> {
        self.issuer_name.as_deref()
    }

    /// Whether the digits of a token PAN fall inside the range (both bounds inclusive).
    pub fn contains(&self, digits: &str) -> bool {
        compare_padded(digits, &self.min, b'0').is_ge()
            && compare_padded(digits, &self.max, b'9').is_le()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: &str, max: &str) -> Result<BinRange, ParseError> {
        BinRange::parse(Circuit::Visa, min, max, None, None)
    }

    #[test]
    fn bounds_are_6_to_21_digits() {
        assert!(range("400000", "400000").is_ok());
        assert!(range("400000000000000000000", "400000999999999999999").is_ok());
        assert_eq!(
            range("40000", "400000"),
            Err(ParseError("min must be 6 to 21 digits"))
        );
        assert_eq!(
            range("400000", "4000000000000000000000"),
            Err(ParseError("max must be 6 to 21 digits"))
        );
        assert_eq!(
            range("4000a0", "400000"),
            Err(ParseError("min must be 6 to 21 digits"))
        );
        assert_eq!(
            range("400001", "400000"),
            Err(ParseError("min must not exceed max"))
        );
    }

    #[test]
    fn bounds_of_different_lengths_compare_numerically() {
        // "4000009" as a lower bound is 400000900…; "40000099" as an upper bound 40000099999…
        assert!(range("4000009", "40000099").is_ok());
        assert!(range("500000", "4999999").is_err());
        assert!(range("4999990", "499999").is_ok());
    }

    #[test]
    fn contains_pads_the_shorter_side() {
        let r = range("4000001000000000000", "400000199999999999999")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(r.contains("4000001000000000"));
        assert!(r.contains("4000001999999999"));
        assert!(r.contains("4000001234567890123"));
        assert!(!r.contains("4000000999999999"));
        assert!(!r.contains("4000002000000000"));
        let short = range("411111", "411112").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(short.contains("4111110000000000"));
        assert!(short.contains("4111129999999999"));
        assert!(!short.contains("4111130000000000"));
        assert!(!short.contains("4111109999999999"));
    }

    #[test]
    fn issuer_fields_are_trimmed_and_optional() {
        let r = BinRange::parse(Circuit::Amex, "370000", "379999", Some(" 37 "), Some(""))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.issuer_bin(), Some("37"));
        assert_eq!(r.issuer_name(), None);
    }
}
