//! Matches one transaction file end to end, resumably: pass 1 decides every row but reversals in
//! batches (each committed with the upload's resume point); pass 2 reads the file again for its
//! reversals, once every payment of the file is stored; then waiting reversals of earlier files
//! are tried against this file's payments. The enrolment snapshot is loaded after the file's
//! receipt, so it holds every change committed before it. A `tkm-transactions` message runs the
//! same way, its rows held in memory (a crash before its end leaves it unacked: redelivered, it
//! resumes).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use uuid::Uuid;

use actix::Addr;

use super::instruments::{self, KeptSnapshot};
use super::judge::{self, FileContext};
use super::learn;
use crate::actors::card_registry::messages::ApplyCommands;
use crate::actors::card_registry::CardRegistry;
use crate::config::{MatchingSettings, UploadsSettings};
use crate::crypto::pgp::PgpKey;
use crate::crypto::Hasher;
use crate::db::bin_ranges;
use crate::db::transactions::published::PublishedSource;
use crate::db::transactions::{outcomes, periods, reads};
use crate::db::uploads::{self, UploadRecord};
use crate::db::DbError;
use crate::domain::matching::{day_of, Rules};
use crate::domain::token_list::TokenRanges;
use crate::domain::transactions::{Operation, Record};
use crate::domain::Abi;
use crate::domain::Sourced;
use crate::files::trnlog::{Row, TrnlogError, TrnlogReader};
use crate::metrics::Metrics;

const BY: &str = "transaction-matcher";

/// What matching a file needs.
#[derive(Clone)]
pub struct MatchDeps {
    /// The database.
    pub pool: Pool,
    /// tkm's acquirer key (PGP files).
    pub pgp: PgpKey,
    /// The salt (clear PANs in column 4).
    pub hasher: Hasher,
    /// `[matching]`.
    pub matching: MatchingSettings,
    /// `[uploads]` (the decompression cap).
    pub uploads: UploadsSettings,
    /// `tkm_transactions_total`.
    pub metrics: Metrics,
    /// Where learnt associations go.
    pub registry: Addr<CardRegistry>,
    /// The whole enrolment snapshot, kept between large files.
    pub kept: KeptSnapshot,
}

impl std::fmt::Debug for MatchDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchDeps").finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Ended {
    /// Done or rejected: its record.
    Finished(Box<UploadRecord>),
    /// Another process is matching it.
    Busy,
    /// No such upload.
    Unknown,
}

/// Why a run stopped before the file's end (it is retried; the file is not rejected).
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A configuration value is unusable.
    #[error("matching configuration: {0}")]
    Config(String),
    /// The reading thread stopped.
    #[error("the file reader stopped unexpectedly")]
    Reader,
    /// The batch writing task stopped.
    #[error("the batch writer stopped unexpectedly")]
    Writer,
    /// The card registry could not apply what a batch teaches.
    #[error("learning associations: {0}")]
    Registry(String),
    /// The whole enrolment snapshot was not there after loading it.
    #[error("the enrolment snapshot is missing after its load")]
    Snapshot,
}

/// Called with the rows read so far.
pub type OnProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Where an upload's rows come from.
#[derive(Debug, Clone)]
pub enum RowSource {
    /// A stored file (plain or PGP).
    File(PathBuf),
    /// A queue message's rows, parsed by the bridge.
    Message(Arc<Vec<Row>>),
}

/// Streams batches of rows after `after`: a file's from a blocking thread (decryption and
/// parsing stay off the async workers), at most two batches waiting; a message's from memory.
pub(super) fn read_batches(
    deps: &MatchDeps,
    source: &RowSource,
    max_plain: u64,
    abi: Abi,
    after: u64,
) -> mpsc::Receiver<Result<Vec<Row>, TrnlogError>> {
    let (tx, rx) = mpsc::channel(2);
    let path = match source {
        RowSource::File(path) => path.clone(),
        RowSource::Message(rows) => {
            let (rows, batch) = (rows.clone(), deps.matching.batch_rows.max(1));
            tokio::spawn(async move {
                let left: Vec<&Row> = rows.iter().filter(|r| r.line > after).collect();
                for chunk in left.chunks(batch) {
                    let owned = chunk.iter().map(|r| (*r).clone()).collect();
                    if tx.send(Ok(owned)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(Ok(Vec::new())).await;
            });
            return rx;
        }
    };
    let (pgp, hasher, batch) = (
        deps.pgp.clone(),
        deps.hasher.clone(),
        deps.matching.batch_rows,
    );
    tokio::task::spawn_blocking(move || {
        let mut reader = match TrnlogReader::open(&path, &pgp, max_plain, abi, hasher) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let next = reader.next_batch(batch, after);
            let end = matches!(&next, Ok(rows) if rows.is_empty()) || next.is_err();
            if tx.blocking_send(next).is_err() || end {
                return;
            }
        }
    });
    rx
}

/// Matches upload `id`, whose rows come from `rows`, to its end (or resumes it).
pub async fn match_file(
    deps: &MatchDeps,
    id: Uuid,
    rows: RowSource,
    on_progress: OnProgress,
) -> Result<Ended, MatchError> {
    let Some(_claim) = uploads::try_claim(&deps.pool, id).await? else {
        return Ok(Ended::Busy);
    };
    let Some(record) = uploads::start(&deps.pool, id, BY).await? else {
        return finished(deps, id).await;
    };
    let zone = deps
        .matching
        .zone()
        .map_err(|e| MatchError::Config(e.to_string()))?;
    let received = reads::received_at(&deps.pool, id)
        .await?
        .unwrap_or_else(chrono::Utc::now);
    let abi = Abi::parse(&record.abi).map_err(|e| MatchError::Config(e.0.to_owned()))?;
    let award = periods::load(&deps.pool).await?;
    let max_plain = deps.uploads.max_plaintext(record.bytes);

    // A damaged or oversized PGP file is rejected before any row is decided (a file sent again
    // after a rejection must not find its own rows as duplicates): it is read whole first, as
    // is a small plain file, to learn which instruments it names.
    let encrypted = match &rows {
        RowSource::File(path) => match is_pgp(path) {
            Ok(e) => e,
            Err(e) => return reject(deps, id, &e).await,
        },
        RowSource::Message(_) => false,
    };
    let fresh = record.progress.last_line == 0;
    let read =
        instruments::read_first(deps, &rows, max_plain, &abi, encrypted && fresh, fresh).await?;
    let named = match read {
        Ok(named) => named,
        Err(e) => return reject(deps, id, &e).await,
    };
    let snap = instruments::snapshot(deps, zone, named).await?;
    let (cards, tokens, pars) = snap.sizes();
    tracing::info!(upload = %id, cards, tokens, pars, "enrolment snapshot loaded");
    let rules = Rules {
        snapshot: &snap,
        periods: &award,
        rule: deps.matching.date_rule,
        service: deps.matching.service,
        zone,
    };
    let ranges = TokenRanges::new(&bin_ranges::token_ranges(&deps.pool).await?);
    // A message is published under its own id (its upload is named by it).
    let source = match rows {
        RowSource::File(_) => PublishedSource {
            file: Some(record.filename.clone()),
            id: id.to_string(),
        },
        RowSource::Message(_) => PublishedSource {
            file: None,
            id: record.filename.clone(),
        },
    };
    let ctx = FileContext {
        rules,
        abi: &abi,
        day: day_of(received, zone),
        source: &source,
        ranges: &ranges,
    };

    // Pass 1: every row but reversals, from the resume point; the reversals read are kept for
    // pass 2 (a resumed file reads them again: those before the resume point were not read).
    let mut reversals: Vec<(u64, Record)> = Vec::new();
    let mut seen = HashSet::new();
    let mut taught = HashSet::new();
    let mut after = record.progress.last_line;
    let mut read = record.progress.rows;
    let mut batches = read_batches(deps, &rows, max_plain, abi.clone(), after);
    // One batch is written while the next is read and judged; writes stay in file order.
    let mut writing: Option<tokio::task::JoinHandle<Result<(), MatchError>>> = None;
    loop {
        let rows = match batches.recv().await.ok_or(MatchError::Reader)? {
            Ok(rows) if rows.is_empty() => break,
            Ok(rows) => rows,
            Err(e) => {
                finish_write(writing.take()).await?;
                return reject(deps, id, &e).await;
            }
        };
        let t0 = std::time::Instant::now();
        let keys = judge::keys_of(&abi, &rows, |r| r.operation != Operation::Reversal);
        let known = reads::known_keys(&deps.pool, &keys).await?;
        let t1 = std::time::Instant::now();
        let (batch, lessons) = judge::payments(&ctx, &rows, after, &known, &mut seen, &mut taught);
        let t2 = std::time::Instant::now();
        after = batch.progress.last_line;
        read = read.saturating_add(batch.progress.rows);
        if fresh {
            reversals.extend(rows.into_iter().filter_map(reversal));
        }
        finish_write(writing.take()).await?;
        on_progress(read.saturating_sub(batch.progress.rows));
        let t3 = std::time::Instant::now();
        if crate::metrics::profiling() {
            eprintln!("keys {:?} judge {:?} wait {:?}", t1 - t0, t2 - t1, t3 - t2);
        }
        let (deps2, day) = (deps.clone(), ctx.day);
        writing = Some(tokio::spawn(async move {
            // The lessons are applied while the batch is written, and before it commits:
            // applying one again after a crash is a no-op, one lost after a commit would never
            // be taught again.
            let gate = async {
                teach(&deps2, lessons)
                    .await
                    .map_err(|e| DbError::Unavailable(anyhow::anyhow!(e.to_string())))
            };
            outcomes::write_gated(&deps2.pool, id, day, &batch, gate).await?;
            count(&deps2, &batch);
            Ok(())
        }));
    }
    finish_write(writing.take()).await?;
    on_progress(read);

    // Pass 2: the reversals, once every payment of the file is stored.
    let mut seen = HashSet::new();
    if fresh {
        for chunk in reversals.chunks(deps.matching.batch_rows) {
            decide_reversals(deps, id, &ctx, chunk.to_vec(), &mut seen).await?;
        }
    } else {
        let mut batches = read_batches(deps, &rows, max_plain, abi.clone(), 0);
        loop {
            let rows = match batches.recv().await.ok_or(MatchError::Reader)? {
                Ok(rows) if rows.is_empty() => break,
                Ok(rows) => rows,
                Err(e) => return reject(deps, id, &e).await,
            };
            let found = rows.into_iter().filter_map(reversal).collect();
            decide_reversals(deps, id, &ctx, found, &mut seen).await?;
        }
    }

    // Reversals of earlier files waiting for a payment this file brought.
    let waiting = reads::waiting_reversals(&deps.pool, abi.as_str(), id, ctx.day).await?;
    if !waiting.is_empty() {
        let hashes: Vec<_> = waiting.iter().map(|w| w.hash).collect();
        let mut payments = reads::payments_for(&deps.pool, abi.as_str(), &hashes).await?;
        let batch = judge::retry_waiting(&abi, &waiting, &mut payments);
        write(deps, id, &ctx, &batch).await?;
    }
    uploads::finish(&deps.pool, id, None, BY).await?;
    finished(deps, id).await
}

/// A row's record when it is a valid reversal.
fn reversal(row: Row) -> Option<(u64, Record)> {
    let record = row
        .parsed
        .ok()
        .filter(|p| p.operation == Operation::Reversal)?;
    Some((row.line, record))
}

/// Whether a stored file is PGP content (else plain: a file an operator matches in place).
fn is_pgp(path: &std::path::Path) -> Result<bool, TrnlogError> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head))?;
    Ok(crate::files::uploads::looks_like_pgp(head.get(..n).unwrap_or(&[])).unwrap_or(false))
}

/// Decides reversals of the file not decided yet (a resumed run skips those already stored).
async fn decide_reversals(
    deps: &MatchDeps,
    id: Uuid,
    ctx: &FileContext<'_>,
    mut found: Vec<(u64, Record)>,
    seen: &mut HashSet<crate::domain::transactions::DupKey>,
) -> Result<(), MatchError> {
    let line = |l: u64| i64::try_from(l).unwrap_or(i64::MAX);
    let lines: Vec<i64> = found.iter().map(|(l, _)| line(*l)).collect();
    let decided = reads::decided_lines(&deps.pool, id, &lines).await?;
    found.retain(|(l, _)| !decided.contains(&line(*l)));
    if found.is_empty() {
        return Ok(());
    }
    let keys: Vec<_> = found
        .iter()
        .map(|(_, r)| crate::domain::transactions::DupKey::of(ctx.abi, r))
        .collect();
    let known = reads::known_keys(&deps.pool, &keys).await?;
    let hashes: Vec<_> = found.iter().map(|(_, r)| r.hash).collect();
    let mut payments = reads::payments_for(&deps.pool, ctx.abi.as_str(), &hashes).await?;
    let batch = judge::reversals(ctx, &found, &known, seen, &mut payments);
    write(deps, id, ctx, &batch).await
}

/// Lessons per card registry transaction: each takes two advisory locks (token and PAR), and a
/// batch of `matching.batch_rows` may teach one per row — 10 000 at once would overflow
/// PostgreSQL's lock table (6 400 entries by default) and fail the batch every time.
const LESSONS_PER_TRANSACTION: usize = 500;

/// Applies what a batch teaches through the card registry, [`LESSONS_PER_TRANSACTION`] at a time
/// (a lesson applied again after a failure is a no-op).
async fn teach(deps: &MatchDeps, lessons: Vec<Sourced>) -> Result<(), MatchError> {
    for chunk in lessons.chunks(LESSONS_PER_TRANSACTION) {
        deps.registry
            .send(ApplyCommands {
                commands: chunk.to_vec(),
                by: learn::BY.to_owned(),
            })
            .await
            .map_err(|_| MatchError::Registry("the card registry is not running".into()))?
            .map_err(|e| MatchError::Registry(e.to_string()))?;
    }
    Ok(())
}

/// Writes a batch, then counts its outcomes.
async fn write(
    deps: &MatchDeps,
    id: Uuid,
    ctx: &FileContext<'_>,
    batch: &outcomes::Batch,
) -> Result<(), MatchError> {
    outcomes::write(&deps.pool, id, ctx.day, batch).await?;
    count(deps, batch);
    Ok(())
}

/// Counts a written batch's outcomes.
fn count(deps: &MatchDeps, batch: &outcomes::Batch) {
    for o in &batch.outcomes {
        let reason = o.outcome.reason().map_or("", |r| r.code());
        deps.metrics
            .transactions
            .with_label_values(&[o.outcome.name(), reason])
            .inc();
    }
}

/// Waits for the batch being written, if any.
async fn finish_write(
    writing: Option<tokio::task::JoinHandle<Result<(), MatchError>>>,
) -> Result<(), MatchError> {
    match writing {
        Some(handle) => handle.await.map_err(|_| MatchError::Writer)?,
        None => Ok(()),
    }
}

async fn reject(deps: &MatchDeps, id: Uuid, e: &TrnlogError) -> Result<Ended, MatchError> {
    tracing::warn!(upload = %id, error = %e, "transaction file rejected");
    uploads::finish(&deps.pool, id, Some(&e.to_string()), BY).await?;
    finished(deps, id).await
}

async fn finished(deps: &MatchDeps, id: Uuid) -> Result<Ended, MatchError> {
    Ok(match uploads::get(&deps.pool, id).await? {
        Some(r) => Ended::Finished(Box::new(r)),
        None => Ended::Unknown,
    })
}
