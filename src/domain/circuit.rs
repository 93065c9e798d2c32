//! Card circuits and the one mapping table every input goes through (`data.md`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// A card circuit tkm talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Circuit {
    /// Visa (also Visa Electron, V PAY).
    Visa,
    /// Mastercard (also Maestro).
    Mastercard,
    /// American Express.
    Amex,
}

impl Circuit {
    /// Every circuit.
    pub const ALL: [Circuit; 3] = [Circuit::Visa, Circuit::Mastercard, Circuit::Amex];

    /// Maps a JSON (queue, API) circuit name.
    pub fn from_json_name(input: &str) -> Result<Self, ParseError> {
        match input {
            "VISA" | "VISA_ELECTRON" | "VPAY" => Ok(Circuit::Visa),
            "MASTERCARD" | "MAESTRO" => Ok(Circuit::Mastercard),
            "AMEX" => Ok(Circuit::Amex),
            _ => Err(ParseError("UNSUPPORTED_CIRCUIT")),
        }
    }

    /// Maps an acquirer file circuit code.
    pub fn from_file_code(input: &str) -> Result<Self, ParseError> {
        match input {
            "01" => Ok(Circuit::Visa),
            "02" => Ok(Circuit::Mastercard),
            "03" => Ok(Circuit::Amex),
            _ => Err(ParseError("UNSUPPORTED_CIRCUIT")),
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Visa => "VISA",
            Circuit::Mastercard => "MASTERCARD",
            Circuit::Amex => "AMEX",
        }
    }
}

impl fmt::Display for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_map_as_the_table_says() {
        for (name, c) in [
            ("VISA", Circuit::Visa),
            ("VISA_ELECTRON", Circuit::Visa),
            ("VPAY", Circuit::Visa),
            ("MASTERCARD", Circuit::Mastercard),
            ("MAESTRO", Circuit::Mastercard),
            ("AMEX", Circuit::Amex),
        ] {
            assert_eq!(Circuit::from_json_name(name), Ok(c));
        }
        assert!(Circuit::from_json_name("DINERS").is_err());
        assert!(Circuit::from_json_name("visa").is_err());
    }

    #[test]
    fn file_codes_map_as_the_table_says() {
        assert_eq!(Circuit::from_file_code("01"), Ok(Circuit::Visa));
        assert_eq!(Circuit::from_file_code("02"), Ok(Circuit::Mastercard));
        assert_eq!(Circuit::from_file_code("03"), Ok(Circuit::Amex));
        assert!(Circuit::from_file_code("00").is_err());
        assert!(Circuit::from_file_code("04").is_err());
    }
}
