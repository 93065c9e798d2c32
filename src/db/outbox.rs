//! The outbox (`outbox`): messages written in the transaction of the change that causes them,
//! taken by the relay head-of-key first (order holds per partition key, a card or a citizen),
//! deleted after their confirm, retried with backoff when they fail, and parked — never deleted —
//! after `outbox.max_attempts`, until an operator retries them.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::types::Json;

use super::DbError;

/// Rows the card registry turns into card updates (never published as they are).
pub const CONSENT_CHANGED: &str = "consent.changed";
/// Card updates for the platform (routing key `card.update`).
pub const CARD_UPDATE: &str = "card.update";

/// The outbox part of the consent write, the last clause of its one statement (a consent
/// write is one round trip: state, history and this row): parameters `$1` tax code (the
/// partition), `$3` time, `$6` author, `$7` the change's payload, or NULL when nothing changed.
pub const CONSENT_CHANGED_INSERT: &str =
    "INSERT INTO outbox (kind, partition_key, payload, created_at, created_by, updated_at, updated_by) \
     SELECT 'consent.changed', $1, $7::jsonb, $3, $6, $3, $6 WHERE $7::jsonb IS NOT NULL";

/// A message to write.
#[derive(Debug)]
pub struct NewMessage<'a, T: serde::Serialize + Sync> {
    /// Its kind: the routing key it is published with (or [`CONSENT_CHANGED`]).
    pub kind: &'a str,
    /// Rows with the same key are handled in order (a citizen's tax code).
    pub partition_key: &'a str,
    /// The JSON body.
    pub payload: &'a T,
}

/// Writes `messages` in the caller's transaction, as `by`.
pub async fn insert<T: serde::Serialize + Sync + std::fmt::Debug>(
    client: &impl GenericClient,
    messages: &[NewMessage<'_, T>],
    by: &str,
) -> Result<u64, DbError> {
    if messages.is_empty() {
        return Ok(0);
    }
    let kinds: Vec<&str> = messages.iter().map(|m| m.kind).collect();
    let keys: Vec<&str> = messages.iter().map(|m| m.partition_key).collect();
    let payloads: Vec<Json<&T>> = messages.iter().map(|m| Json(m.payload)).collect();
    Ok(client
        .execute(
            "INSERT INTO outbox (kind, partition_key, payload, created_by, updated_by) \
             SELECT k, pk, p, $4, $4 FROM unnest($1::text[], $2::text[], $3::json[]) AS x(k, pk, p)",
            &[&kinds, &keys, &payloads, &by],
        )
        .await?)
}

/// A row the relay handles now.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id (the published `message_id`).
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its partition key.
    pub partition_key: String,
    /// The JSON body, as text.
    pub payload: String,
    /// When the change that caused it committed.
    pub created_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// Up to `limit` rows that are due: the oldest unpublished row of each partition key, when it is
/// neither parked nor waiting for its next attempt. A failing or parked row holds back only the
/// rows of its own key (`parked`: the keys with a parked row, see [`parked_keys`]). Reads the
/// first rows in id order (an index range, whatever the backlog) and picks with [`pick_heads`].
pub async fn due_heads(
    pool: &Pool,
    limit: i64,
    parked: &HashSet<String>,
) -> Result<Vec<Row>, DbError> {
    let mut conn = pool.get().await?;
    let window = limit.saturating_mul(2);
    // The outbox churns: between two vacuums it holds many dead rows, which a sequential scan
    // reads every round while the planner, seeing a small table, prefers one. The index range
    // over `id` skips them (their index entries are marked dead by the first scan that meets
    // them), so this read always takes it.
    let tx = conn.build_transaction().read_only(true).start().await?;
    tx.batch_execute("SET LOCAL enable_seqscan = off").await?;
    let rows = tx
        .query(
            "SELECT id, kind, partition_key, payload::text, created_at, attempts, \
             next_attempt_at <= now() FROM outbox WHERE parked_at IS NULL ORDER BY id LIMIT $1",
            &[&window],
        )
        .await?;
    tx.commit().await?;
    let candidates = rows
        .iter()
        .map(|r| {
            Ok((
                Row {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    partition_key: r.try_get(2)?,
                    payload: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                },
                r.try_get::<_, bool>(6)?,
            ))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(pick_heads(
        candidates,
        parked,
        usize::try_from(limit).unwrap_or(0),
    ))
}

/// The partition keys that have a parked row (their later rows wait for it).
pub async fn parked_keys(pool: &Pool) -> Result<HashSet<String>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT DISTINCT partition_key FROM outbox WHERE parked_at IS NOT NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// From rows in id order (each with whether it is due), the first row of each partition key,
/// skipping keys that have a parked row and keys whose first row is not due yet; at most
/// `limit`.
pub fn pick_heads(rows: Vec<(Row, bool)>, parked_keys: &HashSet<String>, limit: usize) -> Vec<Row> {
    let mut seen = HashSet::new();
    let mut picked = Vec::new();
    for (row, due) in rows {
        if picked.len() >= limit {
            break;
        }
        // Only the first row of a key may go; a later one waits for it.
        if !seen.insert(row.partition_key.clone()) {
            continue;
        }
        if due && !parked_keys.contains(&row.partition_key) {
            picked.push(row);
        }
    }
    picked
}

/// Deletes handled rows (published and confirmed, or applied), in the caller's transaction or
/// on its own.
pub async fn delete(client: &impl GenericClient, ids: &[i64]) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(client
        .execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids])
        .await?)
}

/// The retry policy of failing rows.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Failed attempts after which a row is parked.
    pub max_attempts: i32,
    /// Wait after the first failure; doubled after each one.
    pub base: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl From<&crate::config::OutboxSettings> for RetryPolicy {
    fn from(s: &crate::config::OutboxSettings) -> Self {
        RetryPolicy {
            max_attempts: i32::try_from(s.max_attempts).unwrap_or(i32::MAX),
            base: Duration::from_millis(s.retry_base_ms),
            max: Duration::from_millis(s.retry_max_ms),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `attempts`-th failure (1-based): base·2^(attempts−1), capped.
    pub fn delay(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// What became of a failed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// It is due again later.
    Retrying,
    /// It reached the limit and is parked.
    Parked,
}

/// Records a failed attempt of row `id` (which had `attempts` before): due again after the
/// policy's delay, or parked with `reason` once the limit is reached. `reason` names the cause,
/// never the payload.
pub async fn failed(
    pool: &Pool,
    id: i64,
    attempts: i32,
    reason: &str,
    policy: &RetryPolicy,
) -> Result<Failed, DbError> {
    let now_failed = attempts.saturating_add(1);
    let park = now_failed >= policy.max_attempts;
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE outbox SET attempts = $2, last_error = $3, \
         next_attempt_at = now() + make_interval(secs => $4), \
         parked_at = CASE WHEN $5 THEN now() ELSE NULL END, \
         updated_at = now(), updated_by = 'relay' WHERE id = $1",
        &[
            &id,
            &now_failed,
            &reason,
            &policy.delay(now_failed).as_secs_f64(),
            &park,
        ],
    )
    .await?;
    Ok(if park {
        Failed::Parked
    } else {
        Failed::Retrying
    })
}

/// Parks row `id` at once: it can never succeed as it is (e.g. its payload is unusable).
pub async fn park(pool: &Pool, id: i64, reason: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, parked_at = now(), \
         updated_at = now(), updated_by = 'relay' WHERE id = $1",
        &[&id, &reason],
    )
    .await?;
    Ok(())
}

/// Un-parks row `id` for another round of attempts, as `by`; false when no such parked row.
pub async fn retry(pool: &Pool, id: i64, by: &str) -> Result<bool, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = now(), \
             updated_at = now(), updated_by = $2 WHERE id = $1 AND parked_at IS NOT NULL",
            &[&id, &by],
        )
        .await?
        == 1)
}

/// A parked row, as operators see it (no payload: it holds card hashes and a tax code).
#[derive(Debug, Clone)]
pub struct Parked {
    /// Its id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Attempts made.
    pub attempts: i32,
    /// Why the last one failed.
    pub last_error: Option<String>,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// The parked rows, oldest first (at most `limit`).
pub async fn parked(pool: &Pool, limit: i64) -> Result<Vec<Parked>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id, kind, attempts, last_error, parked_at, created_at FROM outbox \
             WHERE parked_at IS NOT NULL ORDER BY id LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Parked {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                attempts: r.try_get(2)?,
                last_error: r.try_get(3)?,
                parked_at: r.try_get(4)?,
                created_at: r.try_get(5)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)
}

/// Rows not yet handled, and how many of them are parked.
pub async fn backlog(client: &impl GenericClient) -> Result<(i64, i64), DbError> {
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE parked_at IS NOT NULL) FROM outbox",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str) -> Row {
        Row {
            id,
            kind: CARD_UPDATE.into(),
            partition_key: key.into(),
            payload: "{}".into(),
            created_at: chrono::Utc::now(),
            attempts: 0,
        }
    }

    #[test]
    fn heads_are_the_first_due_row_of_each_key_not_parked() {
        let rows = vec![
            (row(1, "A"), true),
            (row(2, "A"), true),  // behind 1
            (row(3, "B"), false), // waiting for its next attempt: holds back B
            (row(4, "B"), true),
            (row(5, "C"), true), // C has a parked row: held back
            (row(6, "D"), true),
            (row(7, "E"), true),
        ];
        let parked: HashSet<String> = ["C".to_owned()].into();
        let ids: Vec<i64> = pick_heads(rows.clone(), &parked, 10)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [1, 6, 7]);
        let ids: Vec<i64> = pick_heads(rows, &parked, 2).iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 6]);
    }

    #[test]
    fn the_delay_doubles_from_the_base_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1), Duration::from_millis(500));
        assert_eq!(p.delay(2), Duration::from_secs(1));
        assert_eq!(p.delay(4), Duration::from_secs(4));
        assert_eq!(p.delay(8), Duration::from_secs(60));
        assert_eq!(p.delay(i32::MAX), Duration::from_secs(60));
        assert_eq!(p.delay(0), Duration::from_millis(500));
        assert_eq!(p.delay(-3), Duration::from_millis(500));
    }
}
