//! Integration tests: the real application on port 0, a fresh database per test, real mTLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod binary;
mod canary;
mod cards;
mod circuits;
mod circuits_db;
mod consent;
mod db_errors;
mod keys;
mod lists;
mod logs;
mod ops;
mod retention;
mod simulator;
mod tls;
mod tls_reload;
mod token_lists;
mod transactions;

use support::{broker, helpers};
