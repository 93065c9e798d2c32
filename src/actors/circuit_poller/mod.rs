//! CircuitPoller: one per circuit, owns that circuit's token BIN ranges and their daily refresh.
//! This session holds the plain acceptance rules; the actor arrives with issue #4.

pub mod rules;
