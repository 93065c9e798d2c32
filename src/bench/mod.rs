//! `tkm bench …`: end-to-end load generators run against a live tkm (see `scripts/bench-*.sh`).

pub mod card_events;
pub mod par_queue;
pub mod protocol_rate;
pub mod transactions;
