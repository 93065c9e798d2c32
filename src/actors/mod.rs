//! Actors, one folder each, with their messages beside them and their rules in plain modules.

pub mod broker;
pub mod card_registry;
pub mod circuit_poller;
pub mod consent_registry;
pub mod inflight;
pub mod job_runner;
pub mod list_builder;
pub mod par_resolver;
pub mod token_list_ingestor;
pub mod transaction_matcher;
pub mod upload_queue;

use actix::Message;

/// Request: answer if alive (readiness checks); replies with the mailbox capacity in use.
#[derive(Debug, Message)]
#[rtype(result = "ActorHealth")]
pub struct Ping;

/// Request, for drills and tests on a development installation only: panic in the handler, to
/// prove that a panic anywhere ends the process (the panic hook exits with code 70).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crash;

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
