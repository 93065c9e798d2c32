//! Actors, one folder each, with their messages beside them and their rules in plain modules.

pub mod broker;
pub mod card_registry;
pub mod circuit_poller;
pub mod consent_registry;
pub mod inflight;
pub mod job_runner;
pub mod par_resolver;

use actix::Message;

/// Request: answer if alive (readiness checks); replies with the mailbox capacity in use.
#[derive(Debug, Message)]
#[rtype(result = "ActorHealth")]
pub struct Ping;

/// What an actor reports about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActorHealth {
    /// The actor's name.
    pub name: &'static str,
    /// Its bound on work in flight (and on its mailbox).
    pub mailbox_capacity: usize,
    /// The work it has in flight now (requests being handled or waiting).
    pub in_flight: usize,
}
