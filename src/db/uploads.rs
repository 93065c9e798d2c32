//! The `upload` and `upload_discard` tables: acquirers' files, their processing state, resumable
//! progress per line and every discarded row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

use super::DbError;
use crate::domain::{Abi, UploadKind};

/// Where an upload stands (`api.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    /// Stored, not started.
    Received,
    /// Being processed (or cut off by a restart: resumed).
    Processing,
    /// Every row handled.
    Done,
    /// Failed as a whole (decryption, size cap, …): see `error`.
    Rejected,
}

impl UploadState {
    /// The stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Received => "RECEIVED",
            UploadState::Processing => "PROCESSING",
            UploadState::Done => "DONE",
            UploadState::Rejected => "REJECTED",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "RECEIVED" => UploadState::Received,
            "PROCESSING" => UploadState::Processing,
            "DONE" => UploadState::Done,
            "REJECTED" => UploadState::Rejected,
            _ => return Err(DbError::Unexpected(anyhow::anyhow!("unknown upload state"))),
        })
    }

    /// Done or rejected: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, UploadState::Done | UploadState::Rejected)
    }
}

fn kind_name(kind: UploadKind) -> &'static str {
    match kind {
        UploadKind::TokenList => "token-list",
        UploadKind::Transactions => "transactions",
        UploadKind::TransactionMessage => "transaction-message",
    }
}

/// A file safely on disk, to be registered.
#[derive(Clone, Debug)]
pub struct NewUpload {
    /// Its random id (also its file name on disk).
    pub id: Uuid,
    /// Token list or transactions.
    pub kind: UploadKind,
    /// The acquirer.
    pub abi: Abi,
    /// The client's file name (validated; never a path).
    pub filename: String,
    /// Lowercase hex SHA-256 of the bytes received.
    pub sha256: String,
    /// Size received.
    pub bytes: u64,
}

/// What registering gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registered {
    /// A new upload, to be processed.
    New(Uuid),
    /// The same file (name and SHA-256) was uploaded before and not rejected: its id.
    Existing(Uuid),
}

/// An upload's counters: rows read, kept, discarded by reason, and the resume point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Data rows read.
    pub rows: u64,
    /// Rows applied.
    pub accepted: u64,
    /// Discarded rows by reason name.
    pub discarded: BTreeMap<String, u64>,
    /// The last physical line committed.
    pub last_line: u64,
}

/// A discarded row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscardedLine {
    /// Its 1-based physical line.
    pub line: u64,
    /// The reason name.
    pub reason: &'static str,
    /// The failing field, for an invalid record.
    pub field: Option<&'static str>,
}

/// An upload as its report shows it.
#[derive(Clone, Debug)]
pub struct UploadRecord {
    /// Its id.
    pub id: Uuid,
    /// Its kind.
    pub kind: UploadKind,
    /// The acquirer.
    pub abi: String,
    /// The client's file name.
    pub filename: String,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// Size stored.
    pub bytes: u64,
    /// The state.
    pub state: UploadState,
    /// Why it was rejected.
    pub error: Option<String>,
    /// Counters.
    pub progress: Progress,
    /// When processing started and ended.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (done or rejected).
    pub finished_at: Option<DateTime<Utc>>,
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "id, kind, abi, filename, sha256, bytes, state, error, rows, accepted, \
                       discarded, last_line, started_at, finished_at";

fn record(row: &tokio_postgres::Row) -> Result<UploadRecord, DbError> {
    let kind = match row.try_get::<_, &str>(1)? {
        "token-list" => UploadKind::TokenList,
        "transaction-message" => UploadKind::TransactionMessage,
        _ => UploadKind::Transactions,
    };
    let discarded: serde_json::Value = row.try_get(10)?;
    let discarded = discarded
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(UploadRecord {
        id: row.try_get(0)?,
        kind,
        abi: row.try_get(2)?,
        filename: row.try_get(3)?,
        sha256: row.try_get(4)?,
        bytes: count(row.try_get(5)?),
        state: UploadState::parse(row.try_get(6)?)?,
        error: row.try_get(7)?,
        progress: Progress {
            rows: count(row.try_get(8)?),
            accepted: count(row.try_get(9)?),
            discarded,
            last_line: count(row.try_get(11)?),
        },
        started_at: row.try_get(12)?,
        finished_at: row.try_get(13)?,
    })
}

/// Registers a stored file; the same name and SHA-256 as an upload not rejected gives that
/// upload's id instead (the caller deletes its copy).
pub async fn register(pool: &Pool, new: &NewUpload, by: &str) -> Result<Registered, DbError> {
    let conn = pool.get().await?;
    let kind = kind_name(new.kind);
    let inserted = conn
        .query_opt(
            "INSERT INTO upload (id, kind, abi, filename, sha256, bytes, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (kind, filename, sha256) WHERE state <> 'REJECTED' DO NOTHING \
             RETURNING id",
            &[
                &new.id,
                &kind,
                &new.abi.as_str(),
                &new.filename,
                &new.sha256,
                &signed(new.bytes),
                &by,
            ],
        )
        .await?;
    if inserted.is_some() {
        return Ok(Registered::New(new.id));
    }
    let row = conn
        .query_opt(
            "SELECT id FROM upload WHERE kind = $1 AND filename = $2 AND sha256 = $3 \
             AND state <> 'REJECTED'",
            &[&kind, &new.filename, &new.sha256],
        )
        .await?;
    match row {
        Some(r) => Ok(Registered::Existing(r.try_get(0)?)),
        // Rejected between the two statements: register again.
        None => Box::pin(register(pool, new, by)).await,
    }
}

/// An upload by id.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<UploadRecord>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM upload WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(record).transpose()
}

/// The first `limit` discarded rows of an upload, by line.
pub async fn discards(
    pool: &Pool,
    id: Uuid,
    limit: i64,
) -> Result<Vec<(u64, String, Option<String>)>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT line, reason, field FROM upload_discard WHERE upload_id = $1 \
             ORDER BY line LIMIT $2",
            &[&id, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((count(r.try_get(0)?), r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// The uploads of a kind left unfinished (a restart resumes them), oldest first.
pub async fn unfinished(pool: &Pool, kind: UploadKind) -> Result<Vec<Uuid>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id FROM upload WHERE state IN ('RECEIVED', 'PROCESSING') AND kind = $1 \
             ORDER BY created_at",
            &[&kind_name(kind)],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The processing of one upload by this process: a session advisory lock on a connection taken
/// out of the pool, so that the lock goes when the claim is dropped (the connection closes) or
/// the process dies — never left behind on a pooled connection.
pub struct Claim(#[allow(dead_code)] deadpool_postgres::ClientWrapper);

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Claim")
    }
}

/// Takes the processing of upload `id`; `None` when another process (or another task of this
/// one) holds it.
pub async fn try_claim(pool: &Pool, id: Uuid) -> Result<Option<Claim>, DbError> {
    let conn = deadpool_postgres::Object::take(pool.get().await?);
    let row = conn
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('upload:' || $1::uuid::text, 0))",
            &[&id],
        )
        .await?;
    let held: bool = row.try_get(0)?;
    Ok(held.then_some(Claim(conn)))
}

/// Marks an upload as being processed and returns it (its progress is where to resume).
pub async fn start(pool: &Pool, id: Uuid, by: &str) -> Result<Option<UploadRecord>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!(
                "UPDATE upload SET state = 'PROCESSING', started_at = coalesce(started_at, now()), \
                 updated_at = now(), updated_by = $2 \
                 WHERE id = $1 AND state IN ('RECEIVED', 'PROCESSING') RETURNING {COLUMNS}"
            ),
            &[&id, &by],
        )
        .await?;
    row.as_ref().map(record).transpose()
}

/// One batch's share of an upload: its lines and what became of its rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// The last line of the batch before (where this one starts).
    pub after_line: u64,
    /// The batch's last physical line.
    pub last_line: u64,
    /// Data rows in the batch.
    pub rows: u64,
    /// Rows applied.
    pub accepted: u64,
    /// Discarded rows by reason name.
    pub discarded: BTreeMap<String, u64>,
    /// The discarded lines.
    pub lines: Vec<DiscardedLine>,
}

impl Progress {
    /// The counters once `batch` is added.
    pub fn plus(&self, batch: &BatchProgress) -> Progress {
        let mut after = self.clone();
        after.rows = after.rows.saturating_add(batch.rows);
        after.accepted = after.accepted.saturating_add(batch.accepted);
        for (reason, n) in &batch.discarded {
            let slot = after.discarded.entry(reason.clone()).or_insert(0);
            *slot = slot.saturating_add(*n);
        }
        after.last_line = batch.last_line;
        after
    }
}

/// Orders two batches of one upload in flight together: this batch takes its locks only once
/// the batch ahead holds all of its own, and records its progress only once that one has
/// committed (or failed: then the guard of [`record_progress`] refuses this one).
#[derive(Debug)]
pub struct BatchGate {
    ahead_locked: Option<tokio::sync::watch::Receiver<bool>>,
    ahead_done: Option<tokio::sync::watch::Receiver<bool>>,
    locked: tokio::sync::watch::Sender<bool>,
}

/// How long a batch waits for the commit of the batch ahead before it steps back.
pub const GATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the batch behind waits on: this batch's "locked" and "done" signals.
#[derive(Debug, Clone)]
pub struct GateSignals {
    locked: tokio::sync::watch::Receiver<bool>,
    done: tokio::sync::watch::Receiver<bool>,
}

impl BatchGate {
    /// The gate of a batch behind `ahead` (`None`: the first in flight), the "done" receiver
    /// its caller fires (once the batch committed or failed), and the signals for the batch
    /// behind this one.
    pub fn new(
        ahead: Option<GateSignals>,
        done: tokio::sync::watch::Receiver<bool>,
    ) -> (Self, GateSignals) {
        let (locked, locked_rx) = tokio::sync::watch::channel(false);
        let gate = BatchGate {
            ahead_locked: ahead.as_ref().map(|a| a.locked.clone()),
            ahead_done: ahead.map(|a| a.done),
            locked,
        };
        (
            gate,
            GateSignals {
                locked: locked_rx,
                done,
            },
        )
    }

    async fn wait(rx: &Option<tokio::sync::watch::Receiver<bool>>) {
        if let Some(rx) = rx {
            let mut rx = rx.clone();
            // A dropped sender means the batch ahead is gone: nothing to wait for.
            let _ = rx.wait_for(|v| *v).await;
        }
    }

    /// Waits until the batch ahead holds its locks (or is done, having failed before).
    pub async fn wait_ahead_locked(&self) {
        tokio::select! {
            () = Self::wait(&self.ahead_locked) => {}
            () = Self::wait(&self.ahead_done) => {}
        }
    }

    /// Signals that this batch holds its locks.
    pub fn locked(&self) {
        self.locked.send_replace(true);
    }

    /// Waits until the batch ahead committed or failed. A batch ahead that a lost lock race
    /// makes start over may need a lock this one holds: after [`GATE_PATIENCE`] this one gives
    /// up ([`OutOfOrder`]: rolled back, its locks released, sent again after the one ahead).
    pub async fn wait_ahead_committed(&self) -> Result<(), DbError> {
        tokio::time::timeout(GATE_PATIENCE, Self::wait(&self.ahead_done))
            .await
            .map_err(|_| DbError::Unavailable(OutOfOrder.into()))
    }
}

/// A batch whose predecessor in the file is not committed (yet, or ever): its transaction must
/// be rolled back and the batch sent again after the one before it.
#[derive(Debug, thiserror::Error)]
#[error("the batch before this one is not committed")]
pub struct OutOfOrder;

/// Whether a database error is [`OutOfOrder`].
pub fn is_out_of_order(e: &DbError) -> bool {
    let (DbError::Unavailable(e) | DbError::Unexpected(e)) = e;
    e.chain().any(|c| c.downcast_ref::<OutOfOrder>().is_some())
}

/// Records, in the caller's transaction, a batch's rows as done: its discarded lines, and the
/// upload's counters advanced to its last line — only if the upload stands at the batch's
/// first line, so batches in flight together commit in file order (the later one waits for the
/// earlier one's row lock, and fails with [`OutOfOrder`] when that one did not commit).
pub async fn record_progress(
    client: &impl GenericClient,
    id: Uuid,
    batch: &BatchProgress,
    by: &str,
) -> Result<(), DbError> {
    let discarded = &batch.lines;
    if !discarded.is_empty() {
        let lines: Vec<i64> = discarded.iter().map(|d| signed(d.line)).collect();
        let reasons: Vec<&str> = discarded.iter().map(|d| d.reason).collect();
        let fields: Vec<Option<&str>> = discarded.iter().map(|d| d.field).collect();
        client
            .execute(
                "INSERT INTO upload_discard (upload_id, line, reason, field) \
                 SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[]) \
                 ON CONFLICT DO NOTHING",
                &[&id, &lines, &reasons, &fields],
            )
            .await?;
    }
    let counts =
        serde_json::to_value(&batch.discarded).map_err(|e| DbError::Unexpected(e.into()))?;
    let updated = client
        .execute(
            "UPDATE upload SET rows = rows + $2, accepted = accepted + $3, \
             discarded = (SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM ( \
                 SELECT k, sum(v::bigint) AS n FROM ( \
                     SELECT * FROM jsonb_each_text(discarded) \
                     UNION ALL SELECT * FROM jsonb_each_text($4::jsonb)) AS e(k, v) \
                 GROUP BY k) AS s), \
             last_line = $5, updated_at = now(), updated_by = $6 \
             WHERE id = $1 AND last_line = $7",
            &[
                &id,
                &signed(batch.rows),
                &signed(batch.accepted),
                &counts,
                &signed(batch.last_line),
                &by,
                &signed(batch.after_line),
            ],
        )
        .await?;
    if updated == 0 {
        return Err(DbError::Unavailable(OutOfOrder.into()));
    }
    Ok(())
}

/// Ends an upload: done, or rejected with `error` (the rows applied before stay applied; a
/// rejected file can be uploaded again).
pub async fn finish(pool: &Pool, id: Uuid, error: Option<&str>, by: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    let state = if error.is_some() { "REJECTED" } else { "DONE" };
    conn.execute(
        "UPDATE upload SET state = $2, error = $3, finished_at = now(), updated_at = now(), \
         updated_by = $4 WHERE id = $1 AND state IN ('RECEIVED', 'PROCESSING')",
        &[&id, &state, &error, &by],
    )
    .await?;
    Ok(())
}
