//! ABI: the 5-character bank code of an acquirer.

use std::fmt;

use super::ParseError;

/// An acquirer's bank code, 5 ASCII alphanumerics, kept as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Abi(String);

impl Abi {
    /// Parses 5 ASCII alphanumerics.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.len() == 5 && input.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(ParseError("must be 5 alphanumeric characters"))
        }
    }

    /// The code recorded for a queue message none of whose records names a valid acquirer
    /// (every record is then invalid on `codice_acquirer`); no bank has it.
    pub fn unknown() -> Self {
        Self("00000".to_owned())
    }

    /// The code as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_alphanumerics() {
        assert!(Abi::parse("99999").is_ok());
        assert!(Abi::parse("STPAY").is_ok());
        assert!(Abi::parse("9999").is_err());
        assert!(Abi::parse("99-99").is_err());
    }
}
