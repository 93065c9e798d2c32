//! Italian fiscal code (codice fiscale) of a citizen: pattern, omocodia and check character.

use std::fmt;

use super::ParseError;

/// A citizen's fiscal code, stored upper-case. `Debug` truncates it (logs never show it whole).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxCode(String);

/// Positions (0-based) that hold a digit or its omocodia letter.
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
/// Letters that replace digits 0–9 in omocodia codes.
const OMOCODIA: &[u8; 10] = b"LMNPQRSTUV";
/// Month letters January–December.
const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";
/// Values of characters in odd (1st, 3rd, …) positions, indexed by digit or letter value.
const ODD_VALUES: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

impl TaxCode {
    /// Parses a fiscal code (lower case accepted), checking the pattern, the day of birth and the
    /// check character.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let code = input.to_ascii_uppercase();
        let bytes = code.as_bytes();
        if bytes.len() != 16 {
            return Err(ParseError("must be 16 characters"));
        }
        for (i, &b) in bytes.iter().enumerate() {
            let ok = if DIGIT_POSITIONS.contains(&i) {
                b.is_ascii_digit() || OMOCODIA.contains(&b)
            } else if i == 8 {
                MONTHS.contains(&b)
            } else {
                b.is_ascii_uppercase()
            };
            if !ok {
                return Err(ParseError("does not follow the fiscal code pattern"));
            }
        }
        let day = digit_value(bytes[9]) * 10 + digit_value(bytes[10]);
        if !((1..=31).contains(&day) || (41..=71).contains(&day)) {
            return Err(ParseError("has an impossible day of birth"));
        }
        if check_character(&bytes[..15]) != bytes[15] {
            return Err(ParseError("has a wrong check character"));
        }
        Ok(Self(code))
    }

    /// The upper-case code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The digit a position holds, decoding omocodia letters. Only called on validated positions.
fn digit_value(b: u8) -> u32 {
    if b.is_ascii_digit() {
        u32::from(b - b'0')
    } else {
        OMOCODIA
            .iter()
            .position(|&l| l == b)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0)
    }
}

/// Value of an alphanumeric character: digits 0–9 and letters A–Z (0–25).
fn char_index(b: u8) -> usize {
    if b.is_ascii_digit() {
        usize::from(b - b'0')
    } else {
        usize::from(b.saturating_sub(b'A'))
    }
}

/// The check character over the first 15 characters (the official algorithm).
fn check_character(first15: &[u8]) -> u8 {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let idx = char_index(b).min(25);
            if i % 2 == 0 {
                ODD_VALUES[idx]
            } else {
                u32::try_from(idx).unwrap_or(0)
            }
        })
        .sum();
    b'A' + u8::try_from(sum % 26).unwrap_or(0)
}

impl fmt::Display for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaxCode({})", super::truncated(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_codes_and_uppercases() {
        for code in ["KBVCPX27A11F205A", "RSSMRA85T10A562S", "MRTMTT25D09F205Z"] {
            assert_eq!(TaxCode::parse(code).unwrap().as_str(), code);
        }
        let lower = TaxCode::parse("rssmra85t10a562s").unwrap();
        assert_eq!(lower.as_str(), "RSSMRA85T10A562S");
    }

    #[test]
    fn accepts_omocodia() {
        // RSSMRA85T10A562S with its last town digit 2 replaced by N: check letter recomputed.
        let first15 = b"RSSMRA85T10A56N";
        let check = char::from(check_character(first15));
        let code = format!("RSSMRA85T10A56N{check}");
        assert!(TaxCode::parse(&code).is_ok(), "{code}");
    }

    #[test]
    fn refuses_a_wrong_check_character() {
        assert_eq!(
            TaxCode::parse("RSSMRA85T10A562T"),
            Err(ParseError("has a wrong check character"))
        );
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(TaxCode::parse("RSSMRA85T10A562").is_err(), "15 chars");
        assert!(TaxCode::parse("RSSMRA85Z10A562S").is_err(), "Z is no month");
        assert!(
            TaxCode::parse("RSSMRA85T10A5625").is_err(),
            "check must be a letter"
        );
        assert!(TaxCode::parse("1SSMRA85T10A562S").is_err());
        assert!(TaxCode::parse("RSSMRA85T00A562S").is_err(), "day 00");
        assert!(TaxCode::parse("RSSMRA85T35A562S").is_err(), "day 35");
        assert!(TaxCode::parse("RSSMRÀ85T10A562S").is_err(), "non-ASCII");
    }

    #[test]
    fn debug_is_truncated() {
        let tc = TaxCode::parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(format!("{tc:?}"), "TaxCode(RSSMRA…)");
    }
}
