//! HPAN and HTOKEN: lowercase hex SHA-256 digests of a PAN or token PAN followed by the salt.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ParseError;

/// Accepts 64 hex characters in any case; keeps them lower-cased.
fn parse_hex64(input: &str) -> Result<String, ParseError> {
    if input.len() != 64 {
        return Err(ParseError("must be 64 hexadecimal characters"));
    }
    if !input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError("must be hexadecimal"));
    }
    Ok(input.to_ascii_lowercase())
}

macro_rules! digest {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses 64 hex characters, any case.
            pub fn parse(input: &str) -> Result<Self, ParseError> {
                parse_hex64(input).map(Self)
            }

            /// Wraps a digest computed by [`crate::crypto::Hasher`] (already lowercase hex).
            pub(crate) fn from_digest(hex: String) -> Self {
                Self(hex)
            }

            /// The lowercase hex value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Truncated, so that a stray `{:?}` in a log line follows the masking rule.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), super::truncated(&self.0))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

digest!(
    /// The hash of a card number (HPAN).
    Hpan
);
digest!(
    /// The hash of a token PAN (HTOKEN).
    Htoken
);

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "A261F9479522020529213C5336DEC371DE5B3DACCA0A8165C50AC33032C631AC";

    #[test]
    fn accepts_any_case_and_lowercases() {
        let h = Hpan::parse(H).unwrap();
        assert_eq!(h.as_str(), H.to_ascii_lowercase());
    }

    #[test]
    fn refuses_wrong_length_or_non_hex() {
        assert!(Hpan::parse(&H[..63]).is_err());
        assert!(Hpan::parse(&format!("{}0", H)).is_err());
        assert!(Hpan::parse(&H.replace('A', "g")).is_err());
    }

    #[test]
    fn debug_is_truncated() {
        let h = Htoken::parse(H).unwrap();
        assert_eq!(format!("{h:?}"), "Htoken(a261f9…)");
    }
}
