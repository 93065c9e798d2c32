//! tkm — Token Manager for tokenized payment cards.
//!
//! Keeps the encrypted PAN/HPAN ↔ PAR ↔ token associations, the citizens' consent registry, and
//! the lists acquirers filter with. See `README.md` and `../shared/spec/`.

pub mod actors;
pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bridge;
pub mod circuits;
pub mod cli;
pub mod cli_keys;
pub mod cli_lists;
pub mod cli_publish;
pub mod cli_token_lists;
pub mod cli_transactions;
pub mod config;
pub mod crypto;
pub mod csv_dialect;
pub mod db;
pub mod domain;
pub mod files;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod metrics;
pub mod retry;
pub mod startup;
pub mod startup_circuits;
pub mod startup_uploads;
pub mod telemetry;
