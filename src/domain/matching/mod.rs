//! Transaction matching (`matching.md`, TK11) as plain code: the date rule, award periods, the
//! enrolment snapshot, the checks and reversal correlation. Unit-tested without actix or a database.

mod dates;
mod decide;
mod outcome;
mod periods;
mod reversals;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_delta;
#[cfg(test)]
mod tests_reversals;

pub use dates::{day_of, DateRule, Interval};
pub use decide::{Check, Decision, Rules};
pub use outcome::{MatchKind, Outcome, Reason};
pub use periods::{AwardPeriod, AwardPeriods, PeriodError, DEFAULT_GRACE_DAYS};
pub use reversals::{apply, correlate, Correlation, Payment};
pub use snapshot::{ConsentAt, Found, Idx, Link, ParKey, Snapshot, SnapshotBuilder, SnapshotError};
