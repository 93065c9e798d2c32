//! The stored facts one record's decision is explained from: its stored outcome and record
//! fields, and a snapshot holding only the instrument it names (its card, the PAR's cards and
//! tokens, their enrolment intervals, their citizens' consent history), with the cards' HPANs.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::outcomes::RecordRef;
use super::snapshot::{add_card, add_consent, add_interval, add_token};
use crate::db::DbError;
use crate::domain::matching::{Snapshot, SnapshotBuilder};
use crate::domain::transactions::HashKey;

/// One stored outcome with the record fields kept for explanations.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Line.
    pub line: i64,
    /// When the file was received.
    pub processing_day: NaiveDate,
    /// `id_trx_acquirer`.
    pub id_trx_acquirer: Option<String>,
    /// Outcome name.
    pub outcome: String,
    /// Reason code.
    pub reason: Option<String>,
    /// Match kind.
    pub kind: String,
    /// Failing field of an invalid record.
    pub detail: Option<String>,
    /// `tipo_operazione` (valid records).
    pub operation: Option<String>,
    /// `hash_pan` (valid records).
    pub hash: Option<HashKey>,
    /// `date_time` (valid records).
    pub at: Option<DateTime<Utc>>,
    /// The record's PAR.
    pub par: Option<String>,
}

/// The stored record at `line` of `source`.
pub async fn record(pool: &Pool, source: Uuid, line: i64) -> Result<Option<StoredRecord>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT line, processing_day, id_trx_acquirer, outcome, reason, match, detail, operation, \
             hash_pan, at, par FROM txn_outcome WHERE source_id = $1 AND line = $2",
            &[&source, &line],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let hash: Option<Vec<u8>> = r.try_get(8)?;
    Ok(Some(StoredRecord {
        line: r.try_get(0)?,
        processing_day: r.try_get(1)?,
        id_trx_acquirer: r.try_get(2)?,
        outcome: r.try_get(3)?,
        reason: r.try_get(4)?,
        kind: r.try_get(5)?,
        detail: r.try_get(6)?,
        operation: r.try_get(7)?,
        hash: hash
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .map(HashKey),
        at: r.try_get(9)?,
        par: r.try_get(10)?,
    }))
}

/// The record holding a duplicate key first.
pub async fn first_of_key(pool: &Pool, key: &[u8]) -> Result<Option<RecordRef>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT source_id, line FROM txn_key WHERE key = $1",
            &[&key],
        )
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// A correlated reversal's payment: (its record, amount, reversed so far).
pub async fn reversal_payment(
    pool: &Pool,
    reversal: RecordRef,
) -> Result<Option<(RecordRef, i64, i64)>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT p.source_id, p.line, p.amount, p.reversed FROM txn_reversal r \
             JOIN txn_payment p ON p.source_id = r.payment_source AND p.line = r.payment_line \
             WHERE r.source_id = $1 AND r.line = $2",
            &[&reversal.0, &reversal.1],
        )
        .await?;
    row.map(|r| Ok(((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?, r.try_get(3)?)))
        .transpose()
}

/// A snapshot holding only what `hash` and `par` can match: the card of that HPAN, the token of
/// that HTOKEN, the cards and tokens of its PAR or of `par`, their intervals and consent history
/// — as they stood at `as_of` (the file's snapshot time: what was learnt since, from this file
/// too, is left out).
pub async fn instrument_snapshot(
    pool: &Pool,
    zone: Tz,
    hash: &HashKey,
    par: Option<&str>,
    as_of: DateTime<Utc>,
) -> Result<(Snapshot, HashMap<i64, String>), DbError> {
    let pars: Vec<&str> = par.into_iter().collect();
    instruments_snapshot(pool, zone, std::slice::from_ref(hash), &pars, Some(as_of)).await
}

/// [`instrument_snapshot`] for several records at once; `as_of` `None`: everything stored (a
/// queue message's records: what they can match, read when it is matched, so always caught up).
pub async fn instruments_snapshot(
    pool: &Pool,
    zone: Tz,
    hashes: &[HashKey],
    pars: &[&str],
    as_of: Option<DateTime<Utc>>,
) -> Result<(Snapshot, HashMap<i64, String>), DbError> {
    let conn = pool.get().await?;
    let hex: Vec<String> = hashes.iter().map(HashKey::to_hex).collect();
    let par_keys: Vec<String> = pars.iter().map(|p| p.to_ascii_uppercase()).collect();
    // The PAR keys involved: the records', their cards', their tokens'.
    let keys: Vec<String> = conn
        .query(
            "SELECT par_key FROM card WHERE hpan = ANY($1) AND par_key IS NOT NULL AND ($3::timestamptz IS NULL OR created_at <= $3) \
             UNION SELECT par_key FROM token WHERE htoken = ANY($1) AND par_key IS NOT NULL AND NOT deleted \
                 AND ($3::timestamptz IS NULL OR created_at <= $3) \
             UNION SELECT unnest($2::text[])",
            &[&hex, &par_keys, &as_of],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut b = SnapshotBuilder::new(zone);
    let cards = conn
        .query(
            "SELECT id, hpan, par FROM card WHERE (hpan = ANY($1) OR par_key = ANY($2)) AND ($3::timestamptz IS NULL OR created_at <= $3) \
             ORDER BY id",
            &[&hex, &keys, &as_of],
        )
        .await?;
    let mut ids = Vec::with_capacity(cards.len());
    let mut hpans = HashMap::new();
    for r in &cards {
        add_card(&mut b, r)?;
        let id: i64 = r.try_get(0)?;
        ids.push(id);
        hpans.insert(id, r.try_get::<_, String>(1)?);
    }
    let tokens = conn
        .query(
            "SELECT htoken, par FROM token WHERE NOT deleted AND (htoken = ANY($1) OR par_key = ANY($2)) \
             AND ($3::timestamptz IS NULL OR created_at <= $3)",
            &[&hex, &keys, &as_of],
        )
        .await?;
    for r in &tokens {
        add_token(&mut b, r)?;
    }
    let intervals = conn
        .query(
            "SELECT card_id, tax_code, opened_at, closed_at FROM card_link_interval \
             WHERE card_id = ANY($1) AND ($2::timestamptz IS NULL OR created_at <= $2)",
            &[&ids, &as_of],
        )
        .await?;
    let mut citizens = Vec::new();
    for r in &intervals {
        add_interval(&mut b, r)?;
        citizens.push(r.try_get::<_, String>(1)?);
    }
    let history = conn
        .query(
            "SELECT tax_code, version, at, after FROM consent_history \
             WHERE tax_code = ANY($1) AND ($2::timestamptz IS NULL OR created_at <= $2)",
            &[&citizens, &as_of],
        )
        .await?;
    for r in &history {
        add_consent(&mut b, r)?;
    }
    Ok((b.build(), hpans))
}
