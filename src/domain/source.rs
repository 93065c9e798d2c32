//! Where an association (card→PAR, token→PAR, token→card) comes from, ranked by trust.

use std::fmt;
use std::str::FromStr;

use super::ParseError;

/// The source of an association. The order is the trust order: `Transaction` < `TokenList` <
/// `Issuer` < `Circuit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Learnt by the transaction matcher.
    Transaction,
    /// An acquirer's token list.
    TokenList,
    /// A card event (payment manager, issuers, platform).
    Issuer,
    /// The circuit itself (PAR lookup).
    Circuit,
}

impl Source {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Transaction => "transaction",
            Source::TokenList => "token-list",
            Source::Issuer => "issuer",
            Source::Circuit => "circuit",
        }
    }

    /// Below `issuer`: the resolver verifies it with the circuit when it can.
    pub fn is_provisional(self) -> bool {
        self < Source::Issuer
    }
}

impl FromStr for Source {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transaction" => Ok(Source::Transaction),
            "token-list" => Ok(Source::TokenList),
            "issuer" => Ok(Source::Issuer),
            "circuit" => Ok(Source::Circuit),
            _ => Err(ParseError("unknown association source")),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_order_is_the_spec_order() {
        assert!(Source::Circuit > Source::Issuer);
        assert!(Source::Issuer > Source::TokenList);
        assert!(Source::TokenList > Source::Transaction);
        assert!(Source::TokenList.is_provisional() && !Source::Issuer.is_provisional());
        for s in [
            Source::Transaction,
            Source::TokenList,
            Source::Issuer,
            Source::Circuit,
        ] {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
        }
    }
}
