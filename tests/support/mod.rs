//! Shared by the integration test binaries: the application under test and the broker.

pub mod broker;
pub mod fixtures;
pub mod helpers;
