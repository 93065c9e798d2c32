//! The RabbitMQ bridge as the rest of tkm sees it: the broker connection's state and the
//! requests the bridge actor answers (it owns the consumers, the outbox relay and the dead
//! letters). The bridge implements them in `bridge/`; the API and start-up use only these types.

use std::sync::atomic::{AtomicBool, Ordering};

use actix::Message;
use uuid::Uuid;

use crate::db::dead_letters::DeadLetter;
use crate::db::outbox::Parked;
use crate::db::DbError;

/// Whether the broker is connected (readiness reports `up` or `degraded`).
#[derive(Debug, Default)]
pub struct BrokerStatus {
    connected: AtomicBool,
}

impl BrokerStatus {
    /// Connected and topology declared.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records the connection's state.
    pub fn set(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }
}

/// Why a request to the bridge failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No such dead letter or parked row.
    #[error("not found")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The broker could not be reached or did not confirm.
    #[error("broker: {0}")]
    Broker(String),
    /// A dead letter's sealed original does not open (its vault key left the ring).
    #[error("the sealed original cannot be opened")]
    Sealed,
}

/// Request: stop consuming, finish in-flight batches and confirms, then close (bounded wait).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    /// Longest wait.
    pub timeout: std::time::Duration,
}

/// Request: publish dead letter `id` again to the queue it came from (an operator's replay).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct ReplayDeadLetter {
    /// The dead letter.
    pub id: Uuid,
    /// Who asks (audit).
    pub by: String,
}

/// Request: the newest dead letters.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<DeadLetter>, BrokerError>")]
pub struct ListDeadLetters {
    /// At most this many.
    pub limit: i64,
}

/// Request: the parked outbox rows, oldest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Parked>, BrokerError>")]
pub struct ListParked {
    /// At most this many.
    pub limit: i64,
}

/// Request: send parked outbox row `id` again (its attempts start over).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct RetryParked {
    /// The row.
    pub id: i64,
    /// Who asks (audit).
    pub by: String,
}

/// Request: the outbox backlog and how much of it is parked.
#[derive(Debug, Message)]
#[rtype(result = "Result<OutboxState, BrokerError>")]
pub struct GetOutboxState;

/// The outbox as `/admin/status` shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxState {
    /// Rows not yet handled.
    pub backlog: i64,
    /// Of which parked.
    pub parked: i64,
}
