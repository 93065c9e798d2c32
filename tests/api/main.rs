//! Integration tests: the real application on port 0, a fresh database per test, real mTLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod binary;
mod consent;
mod helpers;
mod logs;
mod ops;
mod tls;
