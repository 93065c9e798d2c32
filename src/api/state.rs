//! What the HTTP handlers reach, built by start-up: the actors' addresses (handlers only send
//! them messages), the keys that read issuers' PGP input, and the request limits.

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};
use actix_web::web;

use crate::actors::broker::{
    BrokerStatus, GetOutboxState, ListDeadLetters, ListParked, ReplayDeadLetter, RetryParked,
};
use crate::actors::card_registry::CardRegistry;
use crate::actors::circuit_poller::CircuitPoller;
use crate::actors::consent_registry::ConsentRegistry;
use crate::actors::job_runner::JobRunner;
use crate::actors::list_builder::ListBuilder;
use crate::actors::par_resolver::ParResolver;
use crate::actors::token_list_ingestor::TokenListIngestor;
use crate::actors::Ping;
use crate::config::CircuitsMode;
use crate::crypto::pgp::PgpKey;
use crate::crypto::Hasher;
use crate::domain::Circuit;

/// The longest a handler waits for an actor (503 after it).
#[derive(Clone, Copy, Debug)]
pub struct HandlerTimeout(pub Duration);

/// The largest JSON body accepted.
#[derive(Clone, Copy, Debug)]
pub struct JsonLimit(pub usize);

/// tkm's keys for the PGP input of issuers (`pgpPan`, `Pgp-Pan`).
#[derive(Clone)]
pub struct PgpInput {
    /// tkm's PGP key.
    pub pgp: PgpKey,
    /// The HPAN hasher.
    pub hasher: Hasher,
}

/// The bridge, as the admin endpoints reach it.
#[derive(Clone)]
pub struct BrokerHandle {
    /// The connection's state.
    pub status: Arc<BrokerStatus>,
    /// Replays a dead letter.
    pub replay: Recipient<ReplayDeadLetter>,
    /// Lists dead letters.
    pub dead_letters: Recipient<ListDeadLetters>,
    /// Lists parked outbox rows.
    pub parked: Recipient<ListParked>,
    /// Retries a parked row.
    pub retry: Recipient<RetryParked>,
    /// The outbox backlog.
    pub outbox: Recipient<GetOutboxState>,
}

/// What the admin endpoints reach.
#[derive(Clone)]
pub struct AdminDeps {
    /// Runs and stores jobs.
    pub jobs: Addr<JobRunner>,
    /// One poller per enabled circuit.
    pub pollers: Vec<(Circuit, Addr<CircuitPoller>)>,
    /// The resolver.
    pub resolver: Addr<ParResolver>,
    /// Every actor by name, for liveness.
    pub actors: Vec<(&'static str, Recipient<Ping>)>,
    /// The bridge.
    pub broker: BrokerHandle,
    /// Who answers for the circuits (`simulator` only on a development installation).
    pub circuits_mode: CircuitsMode,
}

/// What the list endpoints reach.
#[derive(Clone)]
pub struct ListsHandle {
    /// The list builder (links, downloads, the salt).
    pub builder: Addr<ListBuilder>,
    /// `server.public_url` without a trailing `/`: absolute links start with it.
    pub public_url: String,
}

/// What the token-list endpoints reach.
#[derive(Clone)]
pub struct TokenListsHandle {
    /// The ingestor.
    pub ingestor: Addr<TokenListIngestor>,
    /// Where uploads are streamed to.
    pub store: crate::files::uploads::UploadStore,
    /// `uploads.max_bytes`.
    pub max_bytes: u64,
}

/// What the transaction endpoints reach.
#[derive(Clone)]
pub struct TransactionsHandle {
    /// The matcher.
    pub matcher: Addr<crate::actors::transaction_matcher::TransactionMatcher>,
    /// Where uploads are streamed to.
    pub store: crate::files::uploads::UploadStore,
    /// `uploads.max_bytes`.
    pub max_bytes: u64,
    /// tkm's own public key: plain files are encrypted to it on their way to disk.
    pub seal_to: crate::crypto::pgp::PgpPublicKey,
}

/// Everything the mTLS listener's handlers reach.
#[derive(Clone)]
pub struct ApiState {
    /// The consent registry.
    pub consent: Addr<ConsentRegistry>,
    /// The card registry.
    pub cards: Addr<CardRegistry>,
    /// The admin endpoints' actors.
    pub admin: AdminDeps,
    /// The published lists.
    pub lists: ListsHandle,
    /// The acquirers' token lists.
    pub token_lists: TokenListsHandle,
    /// The acquirers' transaction files.
    pub transactions: TransactionsHandle,
    /// PGP input keys.
    pub input: PgpInput,
    /// Handler timeout.
    pub timeout: HandlerTimeout,
    /// JSON body limit.
    pub json_limit: JsonLimit,
}

impl ApiState {
    /// Registers each piece as application data, for the handlers' extractors.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.consent.clone()))
            .app_data(web::Data::new(self.cards.clone()))
            .app_data(web::Data::new(self.admin.clone()))
            .app_data(web::Data::new(self.lists.clone()))
            .app_data(web::Data::new(self.token_lists.clone()))
            .app_data(web::Data::new(self.transactions.clone()))
            .app_data(web::Data::new(self.input.clone()))
            .app_data(web::Data::new(self.timeout))
            .app_data(web::Data::new(self.json_limit));
    }
}
