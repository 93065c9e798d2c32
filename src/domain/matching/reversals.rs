//! Reversal correlation (`matching.md`, "Reversals"): which accepted payment a reversal undoes.

use chrono::{DateTime, FixedOffset};

use super::outcome::{MatchKind, Outcome};
use crate::domain::transactions::{HashKey, Record};

/// An accepted payment a reversal may undo, with what earlier reversals took from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment<Id> {
    /// Where the payment is stored (upload and line).
    pub id: Id,
    /// Its `hash_pan`.
    pub hash: HashKey,
    /// Its `codice_acquirer`.
    pub abi: String,
    /// Its `acquirer_id`.
    pub acquirer_id: String,
    /// Its award period's id.
    pub period: String,
    /// Its `correlation_id`.
    pub correlation_id: Option<String>,
    /// Its `total_amount`.
    pub amount: u64,
    /// Its `merchant_id`.
    pub merchant_id: String,
    /// Its `terminal_id`.
    pub terminal_id: String,
    /// Its `date_time`.
    pub at: DateTime<FixedOffset>,
    /// The sum of the reversals correlated with it so far.
    pub reversed: u64,
    /// How it was matched (a reversal reports the same).
    pub kind: MatchKind,
}

/// The result of correlating one reversal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correlation {
    /// The payment at this index is reversed whole.
    Total(usize),
    /// The payment at this index is reversed in part.
    Partial(usize),
    /// No single payment fits.
    None,
}

impl Correlation {
    /// The outcome it gives the reversal.
    pub fn outcome(self) -> Outcome {
        match self {
            Self::Total(_) => Outcome::ReversalTotal,
            Self::Partial(_) => Outcome::ReversalPartial,
            Self::None => Outcome::ReversalUncorrelated,
        }
    }

    /// The index of the payment, if any.
    pub fn payment(self) -> Option<usize> {
        match self {
            Self::Total(i) | Self::Partial(i) => Some(i),
            Self::None => None,
        }
    }
}

/// Finds the payment `reversal` (of the file of `abi`, in award period `period`) undoes among
/// `payments`: same instrument, ABI, `acquirer_id` and period; by `correlation_id` when the
/// reversal has one (exactly one candidate), else the oldest unreversed payment of equal amount,
/// merchant and terminal.
pub fn correlate<Id>(
    reversal: &Record,
    abi: &str,
    period: &str,
    payments: &[Payment<Id>],
) -> Correlation {
    let same = |p: &&Payment<Id>| {
        p.hash == reversal.hash
            && p.abi == abi
            && p.acquirer_id == reversal.acquirer_id
            && p.period == period
    };
    match &reversal.correlation_id {
        Some(cid) => {
            let mut found = payments
                .iter()
                .enumerate()
                .filter(|(_, p)| same(p) && p.correlation_id.as_deref() == Some(cid.as_str()));
            let (Some((i, p)), None) = (found.next(), found.next()) else {
                return Correlation::None;
            };
            let after = p.reversed.checked_add(reversal.amount);
            if reversal.amount == p.amount && p.reversed == 0 {
                Correlation::Total(i)
            } else if reversal.amount < p.amount && after.is_some_and(|s| s <= p.amount) {
                Correlation::Partial(i)
            } else {
                Correlation::None
            }
        }
        None => payments
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                same(p)
                    && p.reversed == 0
                    && p.amount == reversal.amount
                    && p.merchant_id == reversal.merchant_id
                    && p.terminal_id == reversal.terminal_id
            })
            .min_by_key(|(i, p)| (p.at, *i))
            .map_or(Correlation::None, |(i, _)| Correlation::Total(i)),
    }
}

/// Records a correlated reversal of `amount` on its payment.
pub fn apply<Id>(payment: &mut Payment<Id>, amount: u64) {
    payment.reversed = payment.reversed.saturating_add(amount).min(payment.amount);
}
