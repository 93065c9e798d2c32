//! The processing of one stored token list: a first pass decrypts the whole file (the MDC is
//! checked at its end, the plaintext capped at `uploads.max_ratio` × the upload) and counts its
//! rows, so a damaged or oversized file is rejected before a row is applied; the second pass
//! decrypts again on a blocking thread, checks each row and hands batches to the card registry,
//! which applies the kept rows and records the batch's lines as done in one transaction. A
//! restart resumes after the last committed line.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufReader;
use std::sync::Arc;

use actix::Addr;
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::batches::{prepare, Flight, Prepared};
use crate::actors::card_registry::messages::CardError;
use crate::actors::card_registry::CardRegistry;
use crate::config::UploadsSettings;
use crate::crypto::pgp::{PgpKey, StreamError};
use crate::crypto::Hasher;
use crate::db::uploads::{self, Progress, UploadRecord};
use crate::db::DbError;
use crate::domain::token_list::{Discard, TokenRanges};
use crate::files::token_list::TokenListReader;
use crate::files::uploads::UploadStore;

/// What processing needs.
#[derive(Clone)]
pub struct IngestDeps {
    /// The database.
    pub pool: Pool,
    /// Applies the kept rows.
    pub registry: Addr<CardRegistry>,
    /// tkm's PGP key (acquirers encrypt to it).
    pub pgp: PgpKey,
    /// The salted hash of token PANs.
    pub hasher: Hasher,
    /// Where uploads are stored.
    pub store: UploadStore,
    /// Limits and batch size.
    pub settings: UploadsSettings,
}

/// How an ingestion ended.
#[derive(Debug)]
pub enum Ended {
    /// Processed (now or before): the final record.
    Finished(Box<UploadRecord>),
    /// Another process is working on it.
    Busy,
    /// No such upload.
    Unknown,
}

/// Failures that leave the upload to be resumed (the database or the registry was away).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The card registry refused or failed the batch.
    #[error(transparent)]
    Registry(#[from] CardError),
    /// The registry actor is gone.
    #[error("the card registry is not running")]
    Mailbox(#[from] actix::MailboxError),
    /// A batch's task ended without an answer (the runtime is stopping).
    #[error("a batch was cut off")]
    Lost,
}

/// Called after each committed batch with the counters and the total rows of the file.
pub type OnProgress = Arc<dyn Fn(&Progress, u64) + Send + Sync>;

pub(super) const BY: &str = "token-list";
/// Batches applied at once: while PostgreSQL works on one, the next is applied on another
/// connection; a `BatchGate` orders their locks and commits (49.6 s for 1 M rows against 57.9 s
/// one at a time). Each row takes two advisory locks: keep `IN_FLIGHT × 2 × uploads.batch_rows`
/// well under PostgreSQL's lock table.
const IN_FLIGHT: usize = 2;

const UNDECRYPTABLE: &str = "the file cannot be decrypted with tkm's key, or it is damaged";

/// Why a whole file is rejected, from a failure of reading it.
fn rejection(e: &std::io::Error) -> String {
    match StreamError::of(e) {
        Some(StreamError::TooLarge(_)) => {
            "the decompressed content is larger than uploads.max_ratio times the upload".into()
        }
        Some(StreamError::Undecryptable) => UNDECRYPTABLE.into(),
        None => format!("the stored file cannot be read: {}", e.kind()),
    }
}

/// The rows of a stored upload, decrypted as they are read (both passes open it this way).
fn open_rows(
    pgp: &PgpKey,
    path: &std::path::Path,
    max_plain: u64,
) -> Result<TokenListReader<BufReader<crate::crypto::pgp::PlainStream<'static>>>, String> {
    let file = std::fs::File::open(path).map_err(|e| rejection(&e))?;
    let plain = pgp
        .decrypt_stream(BufReader::with_capacity(256 * 1024, file), max_plain)
        .map_err(|_| UNDECRYPTABLE.to_owned())?;
    Ok(TokenListReader::new(BufReader::with_capacity(
        256 * 1024,
        plain,
    )))
}

/// Processes upload `id` to its end (or resumes it).
pub async fn ingest(
    deps: &IngestDeps,
    id: Uuid,
    on_progress: OnProgress,
) -> Result<Ended, IngestError> {
    let Some(_claim) = uploads::try_claim(&deps.pool, id).await? else {
        return Ok(Ended::Busy);
    };
    let Some(record) = uploads::start(&deps.pool, id, BY).await? else {
        return match uploads::get(&deps.pool, id).await? {
            Some(r) => Ok(Ended::Finished(Box::new(r))),
            None => Ok(Ended::Unknown),
        };
    };
    let ranges = crate::db::bin_ranges::token_ranges(&deps.pool).await?;
    let ranges = Arc::new(TokenRanges::new(&ranges));
    let max_plain = deps.settings.max_plaintext(record.bytes);
    let path = deps.store.path(id);

    // Pass 1: the whole file decrypts, its MDC holds and it stays under the cap.
    let (pgp, p) = (deps.pgp.clone(), path.clone());
    let verified = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        open_rows(&pgp, &p, max_plain)?
            .count_rows()
            .map_err(|e| rejection(&e))
    })
    .await
    .unwrap_or_else(|_| Err("the file could not be read".into()));
    let total = match verified {
        Ok(total) => total,
        Err(reason) => return reject(deps, id, &reason).await,
    };

    // Pass 2: rows in batches, applied after the last committed line.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Prepared, String>>(2);
    let (pgp, hasher, batch_rows) = (
        deps.pgp.clone(),
        deps.hasher.clone(),
        deps.settings.batch_rows,
    );
    let resume_after = record.progress.last_line;
    let by = format!("{BY}:{id}");
    let producer_by = by.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut reader = match open_rows(&pgp, &path, max_plain) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let next = reader
                .next_batch(batch_rows, &ranges, resume_after)
                .map_err(|e| rejection(&e));
            let prepared = match next {
                // Only lines committed before a restart: nothing to do.
                Ok(Some(batch)) if batch.last_line <= resume_after => continue,
                Ok(Some(batch)) => prepare(batch, &hasher, &producer_by),
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if tx.blocking_send(Ok(prepared)).is_err() {
                return;
            }
        }
    });

    let mut progress = record.progress.clone();
    on_progress(&progress, total);
    // Up to IN_FLIGHT batches on their way; they commit in file order
    // (`db::uploads::record_progress`), while the producer thread decrypts and checks the next.
    let mut flights: VecDeque<Flight> = VecDeque::new();
    let mut after_line = progress.last_line;
    let mut failure = None;
    let mut signals = None;
    loop {
        while failure.is_none() && flights.len() < IN_FLIGHT {
            match rx.recv().await {
                Some(Ok(p)) => {
                    let ahead = if flights.is_empty() {
                        None
                    } else {
                        signals.take()
                    };
                    let (flight, next) = Flight::start(deps, id, &by, p.after(after_line), ahead);
                    after_line = flight.last_line();
                    signals = Some(next);
                    flights.push_back(flight);
                }
                Some(Err(reason)) => failure = Some(reason),
                None => break,
            }
        }
        let Some(flight) = flights.pop_front() else {
            break;
        };
        let batch = flight.land(deps, id, &by).await?;
        progress = progress.plus(&batch);
        on_progress(&progress, total);
    }
    if let Some(reason) = failure {
        drop(rx);
        let _ = producer.await;
        return reject(deps, id, &reason).await;
    }
    let _ = producer.await;
    uploads::finish(&deps.pool, id, None, BY).await?;
    deps.store.remove(id);
    finished(deps, id).await
}

async fn reject(deps: &IngestDeps, id: Uuid, reason: &str) -> Result<Ended, IngestError> {
    tracing::warn!(upload = %id, reason, "token list rejected");
    uploads::finish(&deps.pool, id, Some(reason), BY).await?;
    deps.store.remove(id);
    finished(deps, id).await
}

async fn finished(deps: &IngestDeps, id: Uuid) -> Result<Ended, IngestError> {
    Ok(match uploads::get(&deps.pool, id).await? {
        Some(r) => Ended::Finished(Box::new(r)),
        None => Ended::Unknown,
    })
}

/// Counts by reason, every reason present (zeros included) for reports.
pub fn counts_by_reason(p: &Progress) -> BTreeMap<String, u64> {
    Discard::ALL
        .iter()
        .map(|d| {
            (
                d.as_str().to_owned(),
                p.discarded.get(d.as_str()).copied().unwrap_or(0),
            )
        })
        .collect()
}
