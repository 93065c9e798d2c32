//! The date rule (`matching.md`): day granularity in the configured zone, design or `bpd` variant.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// Which inequality decides whether a transaction day lies in an enrolment interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DateRule {
    /// `dATT ≤ dTR` and (`dDIS` absent or `dTR < dDIS`): the design table I–VIII.
    #[default]
    Design,
    /// `dATT < dTR ≤ dDIS`: what the legacy platform applied in production.
    Bpd,
}

/// An enrolment interval in days: activated on `from`, deactivated on `until` (if ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// `dATT`.
    pub from: NaiveDate,
    /// `dDIS`, absent while still live.
    pub until: Option<NaiveDate>,
}

impl Interval {
    /// The interval of instants `[opened, closed)` as days of `zone`.
    pub fn of_instants(opened: DateTime<Utc>, closed: Option<DateTime<Utc>>, zone: Tz) -> Self {
        Self {
            from: day_of(opened, zone),
            until: closed.map(|c| day_of(c, zone)),
        }
    }
}

impl DateRule {
    /// Whether `day` (`dTR`) lies inside `interval`.
    pub fn inside(self, interval: &Interval, day: NaiveDate) -> bool {
        match self {
            Self::Design => interval.from <= day && interval.until.is_none_or(|u| day < u),
            Self::Bpd => interval.from < day && interval.until.is_none_or(|u| day <= u),
        }
    }
}

/// The calendar day of an instant in `zone`.
pub fn day_of<Z: TimeZone>(at: DateTime<Z>, zone: Tz) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}
