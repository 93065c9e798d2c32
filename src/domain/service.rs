//! The services consent applies to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// A service of the programme a citizen consents to.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Service {
    /// Cashback.
    #[serde(rename = "BPD")]
    Bpd,
    /// Automatic invoicing.
    #[serde(rename = "FA")]
    Fa,
}

impl Service {
    /// Every service, in a stable order.
    pub const ALL: [Service; 2] = [Service::Bpd, Service::Fa];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Bpd => "BPD",
            Service::Fa => "FA",
        }
    }
}

impl FromStr for Service {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "BPD" => Ok(Service::Bpd),
            "FA" => Ok(Service::Fa),
            _ => Err(ParseError("must be BPD or FA")),
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_services_only() {
        assert_eq!("BPD".parse::<Service>(), Ok(Service::Bpd));
        assert_eq!("FA".parse::<Service>(), Ok(Service::Fa));
        assert!("bpd".parse::<Service>().is_err());
        assert!("".parse::<Service>().is_err());
    }
}
