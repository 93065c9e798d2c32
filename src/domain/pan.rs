//! Card numbers (`Pan`) and token PANs (`TokenPan`): digits only, never printed in clear.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::ParseError;

/// Accepts 12–19 ASCII digits (Luhn is not required: test and private circuits break it).
fn parse_digits(input: &str) -> Result<String, ParseError> {
    let len = input.len();
    if !(12..=19).contains(&len) {
        return Err(ParseError("must be 12 to 19 digits"));
    }
    if !input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError("must contain digits only"));
    }
    Ok(input.to_owned())
}

fn mask(f: &mut fmt::Formatter<'_>, digits: &str) -> fmt::Result {
    let tail = digits.get(digits.len().saturating_sub(4)..).unwrap_or("");
    write!(f, "…{tail}")
}

macro_rules! card_number {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name(String);

        impl $name {
            /// Parses 12–19 ASCII digits.
            pub fn parse(input: &str) -> Result<Self, ParseError> {
                parse_digits(input).map(Self)
            }

            /// The clear digits, for hashing and encryption only.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The last four digits, the most `data.md` allows beside a hash.
            pub fn last4(&self) -> &str {
                self.0.get(self.0.len().saturating_sub(4)..).unwrap_or("")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                mask(f, &self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                mask(f, &self.0)
            }
        }
    };
}

card_number!(
    /// A card number. `Debug`/`Display` show only `…` and the last four digits; zeroized on drop.
    Pan
);
card_number!(
    /// A token PAN issued by a circuit to a wallet. Masked and zeroized like [`Pan`].
    TokenPan
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_12_to_19_digits_without_luhn() {
        assert!(Pan::parse("123456789012").is_ok());
        assert!(Pan::parse("1234567890123456789").is_ok());
        assert!(
            Pan::parse("4111111111111112").is_ok(),
            "Luhn is not required"
        );
    }

    #[test]
    fn refuses_wrong_lengths_and_non_digits() {
        assert!(Pan::parse("12345678901").is_err());
        assert!(Pan::parse("12345678901234567890").is_err());
        assert!(Pan::parse("41111111111111a1").is_err());
        assert!(Pan::parse("4111 1111 1111 1111").is_err());
        assert!(
            Pan::parse("４１１１１１１１１１１１１１１１").is_err(),
            "Unicode digits are refused"
        );
    }

    #[test]
    fn debug_and_display_show_only_last_four() {
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(format!("{pan:?}"), "…1111");
        assert_eq!(pan.to_string(), "…1111");
        assert!(!format!("{pan:?}").contains("411111"));
        assert_eq!(pan.last4(), "1111");
    }
}
