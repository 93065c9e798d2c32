//! The transaction tables (V013): award periods, outcomes, duplicate keys, payments, reversals.

pub mod facts;
pub mod outcomes;
pub mod periods;
pub mod published;
pub mod reads;
pub mod retention;
pub mod snapshot;
