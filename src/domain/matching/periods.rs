//! Award periods (`matching.md`): which period a transaction day falls in, grace included.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// Grace days when a period does not say.
pub const DEFAULT_GRACE_DAYS: u32 = 30;

/// One award period: `start ≤ dTR ≤ end`, reported until `end + grace_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardPeriod {
    /// The period's id (at most 64 characters).
    pub id: String,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Days after `end` during which its transactions are still accepted.
    #[serde(default = "default_grace")]
    pub grace_days: u32,
}

fn default_grace() -> u32 {
    DEFAULT_GRACE_DAYS
}

/// Why a set of periods is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// `end` before `start`.
    #[error("award period {0}: end is before start")]
    Reversed(String),
    /// Two periods share a day.
    #[error("award periods {0} and {1} overlap")]
    Overlap(String, String),
    /// Two periods share an id.
    #[error("award period {0} is defined twice")]
    DuplicateId(String),
    /// An empty id or one over 64 characters.
    #[error("an award period id must be 1 to 64 characters")]
    BadId,
}

impl AwardPeriod {
    /// The last processing day on which this period's transactions count (`end + grace`).
    pub fn last_processing_day(&self) -> NaiveDate {
        self.end
            .checked_add_days(Days::new(u64::from(self.grace_days)))
            .unwrap_or(NaiveDate::MAX)
    }

    /// Checks the id and that `end` is not before `start`.
    pub fn check(&self) -> Result<(), PeriodError> {
        if self.id.is_empty() || self.id.chars().count() > 64 {
            return Err(PeriodError::BadId);
        }
        if self.end < self.start {
            return Err(PeriodError::Reversed(self.id.clone()));
        }
        Ok(())
    }

    /// Whether a transaction of day `day`, processed on `processing_day`, is in this period.
    pub fn holds(&self, day: NaiveDate, processing_day: NaiveDate) -> bool {
        self.start <= day && day <= self.end && processing_day <= self.last_processing_day()
    }
}

/// A validated, non-overlapping set of award periods, sorted by start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwardPeriods(Vec<AwardPeriod>);

impl AwardPeriods {
    /// Checks that every period is well formed and that no two overlap or share an id.
    pub fn new(mut periods: Vec<AwardPeriod>) -> Result<Self, PeriodError> {
        periods.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        for p in &periods {
            p.check()?;
        }
        for (i, p) in periods.iter().enumerate() {
            if periods.get(..i).unwrap_or(&[]).iter().any(|q| q.id == p.id) {
                return Err(PeriodError::DuplicateId(p.id.clone()));
            }
        }
        for pair in periods.windows(2) {
            if let [a, b] = pair {
                if b.start <= a.end {
                    return Err(PeriodError::Overlap(a.id.clone(), b.id.clone()));
                }
            }
        }
        Ok(Self(periods))
    }

    /// The period holding a transaction of `day` processed on `processing_day`.
    pub fn find(&self, day: NaiveDate, processing_day: NaiveDate) -> Option<&AwardPeriod> {
        self.0.iter().find(|p| p.holds(day, processing_day))
    }

    /// The index (in [`AwardPeriods::all`]) of the period [`AwardPeriods::find`] gives.
    pub fn find_index(&self, day: NaiveDate, processing_day: NaiveDate) -> Option<usize> {
        self.0.iter().position(|p| p.holds(day, processing_day))
    }

    /// The period at `index`.
    pub fn get(&self, index: usize) -> Option<&AwardPeriod> {
        self.0.get(index)
    }

    /// The periods, sorted by start.
    pub fn all(&self) -> &[AwardPeriod] {
        &self.0
    }
}
