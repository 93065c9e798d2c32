//! Dead letters (`dead_letter`): the original of every message tkm dead-lettered, sealed with
//! the vault key, listed for operators, replayed on request, forgotten after the retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::DbError;
use crate::crypto::Sealed;

/// A dead letter to record.
#[derive(Debug)]
pub struct NewDeadLetter<'a> {
    /// Its id (the AAD of its seal, and the `x-tkm-dead-letter-id` header of the copy).
    pub id: Uuid,
    /// The queue it was consumed from.
    pub queue: &'a str,
    /// Its `message_id`.
    pub message_id: Option<&'a str>,
    /// The `x-tkm-error-code`.
    pub code: &'a str,
    /// The `x-tkm-error` reason (names a field, never a value).
    pub reason: &'a str,
    /// The original message, sealed.
    pub sealed: &'a Sealed,
}

/// Records a dead letter, as `by`.
pub async fn store(pool: &Pool, letter: &NewDeadLetter<'_>, by: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO dead_letter (id, queue, message_id, code, reason, key_id, sealed, \
         created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        &[
            &letter.id,
            &letter.queue,
            &letter.message_id,
            &letter.code,
            &letter.reason,
            &letter.sealed.key_id,
            &letter.sealed.blob,
            &by,
        ],
    )
    .await?;
    Ok(())
}

/// A recorded dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its id.
    pub id: Uuid,
    /// The queue it came from.
    pub queue: String,
    /// Its `message_id`.
    pub message_id: Option<String>,
    /// The error code.
    pub code: String,
    /// The reason.
    pub reason: String,
    /// The sealed original.
    pub sealed: Sealed,
    /// How often it was replayed.
    pub replays: i32,
    /// The last replay.
    pub replayed_at: Option<DateTime<Utc>>,
    /// When it was dead-lettered.
    pub created_at: DateTime<Utc>,
}

fn row_of(r: &tokio_postgres::Row) -> Result<DeadLetter, tokio_postgres::Error> {
    Ok(DeadLetter {
        id: r.try_get(0)?,
        queue: r.try_get(1)?,
        message_id: r.try_get(2)?,
        code: r.try_get(3)?,
        reason: r.try_get(4)?,
        sealed: Sealed {
            key_id: r.try_get(5)?,
            blob: r.try_get(6)?,
        },
        replays: r.try_get(7)?,
        replayed_at: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

const COLUMNS: &str =
    "id, queue, message_id, code, reason, key_id, sealed, replays, replayed_at, created_at";

/// One dead letter.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<DeadLetter>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM dead_letter WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(row_of).transpose()?)
}

/// The newest dead letters (at most `limit`).
pub async fn list(pool: &Pool, limit: i64) -> Result<Vec<DeadLetter>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM dead_letter ORDER BY created_at DESC LIMIT $1"),
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(row_of)
        .collect::<Result<_, _>>()
        .map_err(DbError::from)
}

/// Records a replay of `id` by `by`.
pub async fn replayed(pool: &Pool, id: Uuid, by: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE dead_letter SET replays = replays + 1, replayed_at = now(), replayed_by = $2, \
         updated_at = now(), updated_by = $2 WHERE id = $1",
        &[&id, &by],
    )
    .await?;
    Ok(())
}

/// Forgets dead letters older than `retention`; returns how many.
pub async fn forget_older_than(pool: &Pool, retention: Duration) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "DELETE FROM dead_letter WHERE created_at < now() - make_interval(secs => $1)",
            &[&retention.as_secs_f64()],
        )
        .await?)
}

/// `tkm keys rotate`: re-encrypts one page of dead letters sealed under another key than the
/// active one (`context` gives each one's seal context); answers how many it took (0: none left).
pub async fn rotate_page(
    pool: &Pool,
    ring: &crate::crypto::KeyRing,
    context: impl Fn(Uuid) -> String,
) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id, key_id, sealed FROM dead_letter WHERE key_id <> $1 ORDER BY id LIMIT 500",
            &[&ring.active_id()],
        )
        .await?;
    for r in &rows {
        let id: Uuid = r.try_get(0)?;
        let sealed = Sealed {
            key_id: r.try_get(1)?,
            blob: r.try_get(2)?,
        };
        let fresh = ring.reseal_blob(&sealed, &context(id)).map_err(|e| {
            DbError::Unexpected(anyhow::anyhow!(
                "a dead letter does not open with key {}: {e}",
                sealed.key_id
            ))
        })?;
        conn.execute(
            "UPDATE dead_letter SET key_id = $2, sealed = $3, updated_at = now(), \
             updated_by = 'keys-rotate' WHERE id = $1 AND sealed = $4",
            &[&id, &fresh.key_id, &fresh.blob, &sealed.blob],
        )
        .await?;
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}

/// Dead letters not under the active key yet.
pub async fn left_to_rotate(pool: &Pool, ring: &crate::crypto::KeyRing) -> Result<i64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query_one(
            "SELECT count(*) FROM dead_letter WHERE key_id <> $1",
            &[&ring.active_id()],
        )
        .await?
        .try_get(0)?)
}
