//! The TransactionMatcher (`matching.md`, TK11): matches transaction files against the
//! enrolment snapshot and stores every record's outcome.

pub mod judge;
pub mod run;
