//! Messages the CardRegistry answers.

use actix::Message;

pub use crate::db::cards::BatchReport;
use crate::db::uploads::BatchProgress;
pub use crate::domain::cards::{CardView, Outcome};
use crate::domain::{Hpan, Sourced, TaxCode};

/// Why a card request failed (never a card value).
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The database is unavailable: retry later, nothing was applied.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Too many requests in flight: retry later, nothing was applied.
    #[error("overloaded: too many requests in flight")]
    Overloaded,
    /// A bug or a corrupt row.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<crate::db::DbError> for CardError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Unavailable(e) => CardError::Unavailable(e),
            crate::db::DbError::Unexpected(e) => CardError::Unexpected(e),
        }
    }
}

/// Request: apply card commands (events, deletions) in order, in one transaction.
#[derive(Debug, Message)]
#[rtype(result = "Result<BatchReport, CardError>")]
pub struct ApplyCommands {
    /// The commands.
    pub commands: Vec<Sourced>,
    /// Who (for audit columns).
    pub by: String,
}

/// Turns the outcomes of an upload's batch into the batch's counters and the lines it
/// discarded (pure: it runs again when a lost lock race retries the batch).
pub type UploadAccount = std::sync::Arc<dyn Fn(&[Outcome]) -> BatchProgress + Send + Sync>;

/// Request: apply the rows of an acquirer's upload (one command per kept row) and record the
/// rows as done in the same transaction, so each line is applied exactly once.
#[derive(Message)]
#[rtype(result = "Result<BatchReport, CardError>")]
pub struct ApplyUploadRows {
    /// The commands of the kept rows, in file order.
    pub commands: Vec<Sourced>,
    /// Who (for audit columns).
    pub by: String,
    /// The upload.
    pub upload: uuid::Uuid,
    /// Outcomes → counters.
    pub account: UploadAccount,
    /// Its order against the batch ahead of it in flight.
    pub gate: Option<std::sync::Arc<crate::db::uploads::BatchGate>>,
}

/// Request: publish what the consent changes of these citizens mean for their cards, and delete
/// the `consent.changed` outbox rows they came from.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, CardError>")]
pub struct ConsentChanged {
    /// The citizens.
    pub tax_codes: Vec<TaxCode>,
    /// The outbox rows handled.
    pub outbox_ids: Vec<i64>,
}

/// Request: a live card as `GET /cards` shows it (`None`: unknown or inactive).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<CardView>, CardError>")]
pub struct GetCard {
    /// The card.
    pub hpan: Hpan,
}
