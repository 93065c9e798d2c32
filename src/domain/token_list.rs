//! Rows of an acquirer's token list (`files.md`, Token list, TK9): `token_pan;circuit;par` or the
//! older `token_pan;par`, checked against the token BIN ranges numerically, with the reason a
//! row is discarded.

use std::fmt;

use super::{BinRange, Circuit, Par, TokenPan};

/// Why a row of a token list is not applied (the report's reason names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Discard {
    /// A circuit code tkm does not handle (`00`, `04`…).
    UnsupportedCircuit,
    /// A 2-field row whose token no BIN range holds.
    UnknownCircuit,
    /// The token lies in none of its circuit's token BIN ranges.
    NotInTokenBinRange,
    /// A field breaks its rule (the field is named beside it).
    InvalidRecord,
    /// The token is already attached to that PAR.
    AlreadyKnown,
    /// A more trusted source attached the token to another PAR.
    ParConflict,
    /// The PAR already has `cards.max_learnt_tokens_per_par` provisional tokens.
    ParTokenLimit,
}

impl Discard {
    /// Every reason, in report order.
    pub const ALL: [Discard; 7] = [
        Discard::UnsupportedCircuit,
        Discard::UnknownCircuit,
        Discard::NotInTokenBinRange,
        Discard::InvalidRecord,
        Discard::AlreadyKnown,
        Discard::ParConflict,
        Discard::ParTokenLimit,
    ];

    /// The reason as reports and the database name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::UnsupportedCircuit => "UNSUPPORTED_CIRCUIT",
            Discard::UnknownCircuit => "UNKNOWN_CIRCUIT",
            Discard::NotInTokenBinRange => "NOT_IN_TOKEN_BIN_RANGE",
            Discard::InvalidRecord => "INVALID_RECORD",
            Discard::AlreadyKnown => "ALREADY_KNOWN",
            Discard::ParConflict => "PAR_CONFLICT",
            Discard::ParTokenLimit => "PAR_TOKEN_LIMIT",
        }
    }

    /// The reason of a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Discard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A discarded row: the reason and, for `INVALID_RECORD`, the failing field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discarded {
    /// Why.
    pub reason: Discard,
    /// The field that broke its rule (`token_pan`, `circuit`, `par`, `fields`).
    pub field: Option<&'static str>,
}

impl Discarded {
    fn invalid(field: &'static str) -> Self {
        Discarded {
            reason: Discard::InvalidRecord,
            field: Some(field),
        }
    }

    fn because(reason: Discard) -> Self {
        Discarded {
            reason,
            field: None,
        }
    }
}

/// A row that passed every check: a token and its PAR, of a circuit tkm handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenListRow {
    /// The token PAN (never printed in clear).
    pub token: TokenPan,
    /// The circuit, from the row or from the BIN range holding the token.
    pub circuit: Circuit,
    /// The PAR.
    pub par: Par,
}

/// The longest bound is 21 digits: every bound and token fits a `u128` once padded to it.
const WIDTH: usize = 21;

/// `digits` padded on the right with `pad` to 21 digits, as a number; `None` when not 1–21
/// ASCII digits.
fn padded(digits: &str, pad: u8) -> Option<u128> {
    if digits.is_empty() || digits.len() > WIDTH {
        return None;
    }
    let mut value: u128 = 0;
    for i in 0..WIDTH {
        let b = digits.as_bytes().get(i).copied().unwrap_or(pad);
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    Some(value)
}

/// One circuit's ranges as numbers: `lo` is the lower bound padded with `0`, `hi` the upper one
/// padded with `9`. A token `t` is inside when `lo ≤ t padded with 0` and `t padded with 9 ≤ hi`
/// (padding both sides to 21 digits with the same digit keeps the comparison of `files.md`).
#[derive(Debug, Default, Clone)]
struct CircuitRanges {
    /// Sorted by `lo`.
    ranges: Vec<(u128, u128)>,
    /// `reach[i]` = the largest `hi` among `ranges[..=i]`: the backward scan stops below it.
    reach: Vec<u128>,
}

impl CircuitRanges {
    fn new(ranges: &[BinRange]) -> Self {
        let mut ranges: Vec<(u128, u128)> = ranges
            .iter()
            .filter_map(|r| Some((padded(r.min(), b'0')?, padded(r.max(), b'9')?)))
            .collect();
        ranges.sort_unstable();
        let reach = ranges
            .iter()
            .scan(0u128, |m, &(_, hi)| {
                *m = (*m).max(hi);
                Some(*m)
            })
            .collect();
        CircuitRanges { ranges, reach }
    }

    fn contains(&self, digits: &str) -> bool {
        let (Some(t0), Some(t9)) = (padded(digits, b'0'), padded(digits, b'9')) else {
            return false;
        };
        // Ranges whose lower bound is at most the token, newest-first, while one may still
        // reach above it.
        let end = self.ranges.partition_point(|&(lo, _)| lo <= t0);
        for i in (0..end).rev() {
            if self.reach.get(i).is_none_or(|&r| r < t9) {
                return false;
            }
            if self.ranges.get(i).is_some_and(|&(_, hi)| t9 <= hi) {
                return true;
            }
        }
        false
    }
}

/// The token BIN ranges of every circuit, indexed for the numeric range test.
#[derive(Debug, Default, Clone)]
pub struct TokenRanges {
    visa: CircuitRanges,
    mastercard: CircuitRanges,
    amex: CircuitRanges,
}

impl TokenRanges {
    /// Indexes the ranges (each remembers its circuit).
    pub fn new(ranges: &[BinRange]) -> Self {
        let of = |c: Circuit| {
            let own: Vec<BinRange> = ranges
                .iter()
                .filter(|r| r.circuit() == c)
                .cloned()
                .collect();
            CircuitRanges::new(&own)
        };
        TokenRanges {
            visa: of(Circuit::Visa),
            mastercard: of(Circuit::Mastercard),
            amex: of(Circuit::Amex),
        }
    }

    fn of(&self, circuit: Circuit) -> &CircuitRanges {
        match circuit {
            Circuit::Visa => &self.visa,
            Circuit::Mastercard => &self.mastercard,
            Circuit::Amex => &self.amex,
        }
    }

    /// Whether a token BIN range of `circuit` holds the token's digits.
    pub fn holds(&self, circuit: Circuit, digits: &str) -> bool {
        self.of(circuit).contains(digits)
    }

    /// The first circuit (Visa, Mastercard, Amex) with a range holding the token.
    pub fn circuit_of(&self, digits: &str) -> Option<Circuit> {
        [Circuit::Visa, Circuit::Mastercard, Circuit::Amex]
            .into_iter()
            .find(|&c| self.holds(c, digits))
    }

    /// How many ranges are indexed.
    pub fn len(&self) -> usize {
        self.visa.ranges.len() + self.mastercard.ranges.len() + self.amex.ranges.len()
    }

    /// No range at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks one row (without its line terminator; comments and blank lines are skipped before).
pub fn parse_row(line: &str, ranges: &TokenRanges) -> Result<TokenListRow, Discarded> {
    let fields: Vec<&str> = line.split(';').collect();
    let (token, circuit, par) = match fields.as_slice() {
        [token, circuit, par] => (*token, Some(*circuit), *par),
        [token, par] => (*token, None, *par),
        _ => return Err(Discarded::invalid("fields")),
    };
    let token = TokenPan::parse(token.trim()).map_err(|_| Discarded::invalid("token_pan"))?;
    let circuit = match circuit.map(str::trim) {
        Some(code) => {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Discarded::invalid("circuit"));
            }
            let circuit = Circuit::from_file_code(code)
                .map_err(|_| Discarded::because(Discard::UnsupportedCircuit))?;
            // Mastercard tokens are exempt from the range check (`files.md`).
            if circuit != Circuit::Mastercard && !ranges.holds(circuit, token.expose()) {
                return Err(Discarded::because(Discard::NotInTokenBinRange));
            }
            circuit
        }
        None => ranges
            .circuit_of(token.expose())
            .ok_or(Discarded::because(Discard::UnknownCircuit))?,
    };
    let par = Par::parse(par.trim()).map_err(|_| Discarded::invalid("par"))?;
    Ok(TokenListRow {
        token,
        circuit,
        par,
    })
}

#[cfg(test)]
#[path = "token_list_tests.rs"]
mod tests;
