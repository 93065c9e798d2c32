//! Outcomes, reason codes and match kinds (`matching.md`, "Outcomes and reason codes").

use std::fmt;

/// Why a record earned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `01`: instrument (or its PAR) not active at the transaction date.
    NotActive,
    /// `02`: outside every award period.
    OutsidePeriod,
    /// `03`: no consent for the service at the transaction date.
    NoConsent,
    /// `04`: infrastructure failure (the record is retried).
    Error,
    /// `10`: not enrolled.
    NotEnrolled,
    /// `11`: invalid record.
    Invalid,
    /// `12`: duplicate.
    Duplicate,
    /// `20`: an uncorrelated reversal.
    Uncorrelated,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 8] = [
        Self::NotActive,
        Self::OutsidePeriod,
        Self::NoConsent,
        Self::Error,
        Self::NotEnrolled,
        Self::Invalid,
        Self::Duplicate,
        Self::Uncorrelated,
    ];

    /// The two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotActive => "01",
            Self::OutsidePeriod => "02",
            Self::NoConsent => "03",
            Self::Error => "04",
            Self::NotEnrolled => "10",
            Self::Invalid => "11",
            Self::Duplicate => "12",
            Self::Uncorrelated => "20",
        }
    }

    /// Parses a stored code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A record's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A rewardable payment.
    Accepted,
    /// A reversal of a whole payment.
    ReversalTotal,
    /// A reversal of part of a payment.
    ReversalPartial,
    /// A reversal with no payment found (reason `20`), stored and tried again.
    ReversalUncorrelated,
    /// Discarded for a reason.
    Discarded(Reason),
}

impl Outcome {
    /// The outcome's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::ReversalTotal => "REVERSAL_TOTAL",
            Self::ReversalPartial => "REVERSAL_PARTIAL",
            Self::ReversalUncorrelated => "REVERSAL_UNCORRELATED",
            Self::Discarded(Reason::Error) => "ERROR",
            Self::Discarded(_) => "DISCARDED",
        }
    }

    /// The reason code, if the outcome has one.
    pub fn reason(self) -> Option<Reason> {
        match self {
            Self::ReversalUncorrelated => Some(Reason::Uncorrelated),
            Self::Discarded(r) => Some(r),
            _ => None,
        }
    }

    /// Rebuilds an outcome from its stored name and reason.
    pub fn from_parts(name: &str, reason: Option<&str>) -> Option<Self> {
        match (name, reason) {
            ("ACCEPTED", _) => Some(Self::Accepted),
            ("REVERSAL_TOTAL", _) => Some(Self::ReversalTotal),
            ("REVERSAL_PARTIAL", _) => Some(Self::ReversalPartial),
            ("REVERSAL_UNCORRELATED", _) => Some(Self::ReversalUncorrelated),
            ("ERROR", _) => Some(Self::Discarded(Reason::Error)),
            ("DISCARDED", Some(code)) => Reason::from_code(code).map(Self::Discarded),
            _ => None,
        }
    }
}

/// How a record was tied to an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// The HPAN of a card.
    Hpan,
    /// An HTOKEN attached to a PAR.
    Htoken,
    /// The record's PAR.
    Par,
    /// Nothing.
    None,
}

impl MatchKind {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hpan => "HPAN",
            Self::Htoken => "HTOKEN",
            Self::Par => "PAR",
            Self::None => "NONE",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Hpan, Self::Htoken, Self::Par, Self::None]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
