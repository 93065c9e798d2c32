//! What the matcher reads back while it works: duplicate keys seen before, the payments a
//! reversal may undo, the reversals waiting for a payment, the lines already decided.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::outcomes::RecordRef;
use crate::db::DbError;
use crate::domain::matching::{MatchKind, Payment};
use crate::domain::transactions::{DupKey, HashKey};

/// Of `keys`, those already stored, with the record that holds each.
pub async fn known_keys(
    pool: &Pool,
    keys: &[DupKey],
) -> Result<HashMap<DupKey, RecordRef>, DbError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let conn = pool.get().await?;
    // In key order, the probes walk the index instead of jumping around it.
    let mut bytes: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
    bytes.sort_unstable();
    let rows = conn
        .query(
            "SELECT key, source_id, line FROM txn_key WHERE key = ANY($1)",
            &[&bytes],
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let key: Vec<u8> = row.try_get(0)?;
        let mut k = [0u8; 16];
        if key.len() == 16 {
            k.copy_from_slice(&key);
            out.insert(DupKey(k), (row.try_get(1)?, row.try_get(2)?));
        }
    }
    Ok(out)
}

fn hash_of(b: &[u8]) -> Result<HashKey, DbError> {
    <[u8; 32]>::try_from(b)
        .map(HashKey)
        .map_err(|_| DbError::Unexpected(anyhow::anyhow!("a stored hash is not 32 bytes")))
}

fn amount(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The accepted payments of `abi` on any of `hashes`.
pub async fn payments_for(
    pool: &Pool,
    abi: &str,
    hashes: &[HashKey],
) -> Result<Vec<Payment<RecordRef>>, DbError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let conn = pool.get().await?;
    let hex: Vec<&[u8]> = hashes.iter().map(|h| &h.0[..]).collect();
    let rows = conn
        .query(
            "SELECT source_id, line, hash_pan, acquirer_id, period_id, correlation_id, amount, \
             merchant_id, terminal_id, at, reversed, match FROM txn_payment \
             WHERE hash_pan = ANY($1) AND abi = $2",
            &[&hex, &abi],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let at: DateTime<Utc> = r.try_get(9)?;
            Ok(Payment {
                id: (r.try_get(0)?, r.try_get(1)?),
                hash: hash_of(r.try_get(2)?)?,
                abi: abi.to_owned(),
                acquirer_id: r.try_get(3)?,
                period: r.try_get(4)?,
                correlation_id: r.try_get(5)?,
                amount: amount(r.try_get(6)?),
                merchant_id: r.try_get(7)?,
                terminal_id: r.try_get(8)?,
                at: at.fixed_offset(),
                reversed: amount(r.try_get(10)?),
                kind: MatchKind::from_name(r.try_get(11)?).unwrap_or(MatchKind::None),
            })
        })
        .collect()
}

/// A stored reversal still waiting for its payment.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Where it is.
    pub id: RecordRef,
    /// Its facts, as a payment-shaped record for correlation.
    pub hash: HashKey,
    /// `acquirer_id`.
    pub acquirer_id: String,
    /// Award period id.
    pub period: String,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// `total_amount`.
    pub amount: u64,
    /// `merchant_id`.
    pub merchant_id: String,
    /// `terminal_id`.
    pub terminal_id: String,
    /// `date_time`.
    pub at: DateTime<Utc>,
    /// Its file's name (none for a queue message).
    pub file: Option<String>,
    /// Its queue message's id (its upload's name), for a reversal that came by the queue.
    pub message_id: Option<String>,
    /// Its `id_trx_acquirer`.
    pub id_trx_acquirer: Option<String>,
}

/// The reversals of `abi` from other sources still waiting on `day` (their retry window open)
/// whose hash has a payment in `source`: the ones its payments may now correlate.
pub async fn waiting_reversals(
    pool: &Pool,
    abi: &str,
    source: Uuid,
    day: NaiveDate,
) -> Result<Vec<Waiting>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT r.source_id, r.line, r.hash_pan, r.acquirer_id, r.period_id, r.correlation_id, \
             r.amount, r.merchant_id, r.terminal_id, r.at, u.filename, o.id_trx_acquirer, u.kind \
             FROM txn_reversal r LEFT JOIN upload u ON u.id = r.source_id \
             LEFT JOIN txn_outcome o ON o.source_id = r.source_id AND o.line = r.line \
             WHERE r.payment_source IS NULL AND r.abi = $2 AND r.retry_until >= $3 AND r.source_id <> $1 \
             AND EXISTS (SELECT 1 FROM txn_payment p WHERE p.hash_pan = r.hash_pan AND p.source_id = $1) \
             ORDER BY r.at, r.source_id, r.line",
            &[&source, &abi, &day],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let name: Option<String> = r.try_get(10)?;
            let message = r.try_get::<_, Option<&str>>(12)? == Some("transaction-message");
            Ok(Waiting {
                id: (r.try_get(0)?, r.try_get(1)?),
                hash: hash_of(r.try_get(2)?)?,
                acquirer_id: r.try_get(3)?,
                period: r.try_get(4)?,
                correlation_id: r.try_get(5)?,
                amount: amount(r.try_get(6)?),
                merchant_id: r.try_get(7)?,
                terminal_id: r.try_get(8)?,
                at: r.try_get(9)?,
                file: name.clone().filter(|_| !message),
                message_id: name.filter(|_| message),
                id_trx_acquirer: r.try_get(11)?,
            })
        })
        .collect()
}

/// Of `lines` of `source`, those whose outcome is stored (a resumed pass skips them).
pub async fn decided_lines(
    pool: &Pool,
    source: Uuid,
    lines: &[i64],
) -> Result<HashSet<i64>, DbError> {
    if lines.is_empty() {
        return Ok(HashSet::new());
    }
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT line FROM txn_outcome WHERE source_id = $1 AND line = ANY($2)",
            &[&source, &lines],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Outcome counts of a source: (outcome, reason, count).
pub async fn counts(
    pool: &Pool,
    source: Uuid,
) -> Result<Vec<(String, Option<String>, i64)>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT outcome, reason, count(*) FROM txn_outcome WHERE source_id = $1 \
             GROUP BY outcome, reason ORDER BY outcome, reason",
            &[&source],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// One stored outcome line as `GET /transactions/{id}/outcomes` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutcome {
    /// Line.
    pub line: i64,
    /// `id_trx_acquirer`.
    pub id_trx_acquirer: Option<String>,
    /// Outcome name.
    pub outcome: String,
    /// Reason code.
    pub reason: Option<String>,
    /// Match kind.
    pub kind: String,
    /// Failing field.
    pub detail: Option<String>,
}

/// The outcomes of `source` after line `after`, at most `limit`, in line order.
pub async fn outcomes_page(
    pool: &Pool,
    source: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredOutcome>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT line, id_trx_acquirer, outcome, reason, match, detail FROM txn_outcome \
             WHERE source_id = $1 AND line > $2 ORDER BY line LIMIT $3",
            &[&source, &after, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredOutcome {
                line: r.try_get(0)?,
                id_trx_acquirer: r.try_get(1)?,
                outcome: r.try_get(2)?,
                reason: r.try_get(3)?,
                kind: r.try_get(4)?,
                detail: r.try_get(5)?,
            })
        })
        .collect()
}

/// When `source` was received (its records' processing day is that day).
pub async fn received_at(pool: &Pool, source: Uuid) -> Result<Option<DateTime<Utc>>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt("SELECT created_at FROM upload WHERE id = $1", &[&source])
        .await?;
    row.map(|r| Ok(r.try_get(0)?)).transpose()
}
