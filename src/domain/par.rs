//! Payment Account Reference: kept exactly as received, compared case-insensitively.

use std::fmt;

use super::ParseError;

/// A PAR. The value is kept as its source gave it; [`Par::key`] is the upper-case form used for
/// matching and conflict checks.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Par(String);

impl Par {
    /// Parses a PAR from a circuit: exactly 29 ASCII alphanumerics.
    pub fn parse_from_circuit(input: &str) -> Result<Self, ParseError> {
        if input.len() != 29 {
            return Err(ParseError("must be 29 alphanumeric characters"));
        }
        Self::parse_alnum(input)
    }

    /// Parses a PAR from any other input: 20–32 ASCII alphanumerics.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if !(20..=32).contains(&input.len()) {
            return Err(ParseError("must be 20 to 32 alphanumeric characters"));
        }
        Self::parse_alnum(input)
    }

    fn parse_alnum(input: &str) -> Result<Self, ParseError> {
        if !input.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError("must be alphanumeric"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The value as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key (upper case) stored beside the value.
    pub fn key(&self) -> String {
        self.0.to_ascii_uppercase()
    }

    /// Whether two PARs denote the same account (case-insensitive).
    pub fn same_account(&self, other: &Par) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for Par {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Par {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Par({})", super::truncated(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_pars_are_29_alphanumerics_kept_as_received() {
        let par = Par::parse_from_circuit("5001a1b2c3d4e5f6a7b8c9d0e1f2a").unwrap();
        assert_eq!(par.as_str(), "5001a1b2c3d4e5f6a7b8c9d0e1f2a");
        assert_eq!(par.key(), "5001A1B2C3D4E5F6A7B8C9D0E1F2A");
        assert!(Par::parse_from_circuit("5001a1b2c3d4e5f6a7b8c9d0e1f2").is_err());
    }

    #[test]
    fn other_inputs_take_20_to_32() {
        assert!(Par::parse("A".repeat(20).as_str()).is_ok());
        assert!(Par::parse("A".repeat(32).as_str()).is_ok());
        assert!(Par::parse("A".repeat(19).as_str()).is_err());
        assert!(Par::parse("A".repeat(33).as_str()).is_err());
        assert!(Par::parse("V0010013816180398947762450-").is_err());
        assert!(Par::parse("V00100138161803989477624é").is_err());
    }

    #[test]
    fn same_account_ignores_case() {
        let a = Par::parse("V0010013816180398947762450").unwrap();
        let b = Par::parse("v0010013816180398947762450").unwrap();
        assert!(a.same_account(&b));
        assert_ne!(a, b);
    }
}
