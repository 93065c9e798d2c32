//! Writes a batch of decided records in one transaction: outcomes, duplicate keys and accepted
//! payments by binary `COPY`, reversals and their payments' reversed sums, and the upload's
//! progress (ordered by `db::uploads::record_progress`, so a batch is written once).

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::published::{
    OutcomeMessage, PublishedRecord, PublishedSource, RECORDS_PER_MESSAGE, TRANSACTION_OUTCOME,
};
use crate::db::outbox::{self, NewMessage};
use crate::db::uploads::{record_progress, BatchProgress};
use crate::db::DbError;
use crate::domain::matching::{MatchKind, Outcome};
use crate::domain::transactions::{DupKey, HashKey};

/// Where a stored record is: its source (upload) and line.
pub type RecordRef = (Uuid, i64);

/// One record's outcome.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    /// 1-based physical line.
    pub line: i64,
    /// `id_trx_acquirer`, when readable.
    pub id_trx_acquirer: Option<String>,
    /// The outcome.
    pub outcome: Outcome,
    /// The match kind.
    pub kind: MatchKind,
    /// The failing field of an invalid record.
    pub detail: Option<&'static str>,
    /// A valid record's operation, hash, instant and PAR (what its explanation starts from).
    pub facts: Option<RecordFacts>,
}

/// What a valid record's explanation starts from.
#[derive(Debug, Clone)]
pub struct RecordFacts {
    /// `tipo_operazione`.
    pub operation: &'static str,
    /// `hash_pan`.
    pub hash: HashKey,
    /// `date_time`.
    pub at: DateTime<Utc>,
    /// `PAR`.
    pub par: Option<String>,
}

/// The facts of a payment or reversal kept for correlation.
#[derive(Debug, Clone)]
pub struct Movement {
    /// Line.
    pub line: i64,
    /// `hash_pan`.
    pub hash: HashKey,
    /// `acquirer_id`.
    pub acquirer_id: String,
    /// Award period id.
    pub period: String,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// `total_amount`.
    pub amount: i64,
    /// `merchant_id`.
    pub merchant_id: String,
    /// `terminal_id`.
    pub terminal_id: String,
    /// `date_time`.
    pub at: DateTime<Utc>,
}

/// An accepted payment.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    /// Its facts.
    pub facts: Movement,
    /// `tipo_operazione`.
    pub operation: &'static str,
    /// How it matched.
    pub kind: MatchKind,
    /// The PAR it matched through, if any.
    pub par: Option<String>,
}

/// A reversal, correlated with `payment` or waiting until `retry_until`.
#[derive(Debug, Clone)]
pub struct ReversalRow {
    /// Its facts.
    pub facts: Movement,
    /// The last processing day on which a later payment may still correlate it.
    pub retry_until: NaiveDate,
    /// Its payment, when correlated.
    pub payment: Option<RecordRef>,
}

/// A waiting reversal of an earlier source, correlated now.
#[derive(Debug, Clone)]
pub struct Correlated {
    /// The reversal.
    pub reversal: RecordRef,
    /// Its new outcome.
    pub outcome: Outcome,
    /// The payment.
    pub payment: RecordRef,
}

/// Everything one batch writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// Outcomes of the batch's records.
    pub outcomes: Vec<OutcomeRow>,
    /// Duplicate keys of its valid records.
    pub keys: Vec<(DupKey, i64)>,
    /// Its accepted payments.
    pub payments: Vec<PaymentRow>,
    /// Its reversals.
    pub reversals: Vec<ReversalRow>,
    /// Payments' new reversed sums.
    pub reversed: Vec<(RecordRef, i64)>,
    /// Waiting reversals of earlier sources correlated by this batch.
    pub correlated: Vec<Correlated>,
    /// The upload's counters for the batch.
    pub progress: BatchProgress,
    /// What the batch publishes, by source (a waiting reversal of an earlier file is published
    /// as that file's).
    pub published: Vec<(PublishedSource, Vec<PublishedRecord>)>,
}

const BY: &str = "transaction-matcher";

/// Writes `batch` of upload `source`, processed on `day`, in one transaction.
pub async fn write(
    pool: &Pool,
    source: Uuid,
    day: NaiveDate,
    batch: &Batch,
) -> Result<(), DbError> {
    write_gated(pool, source, day, batch, std::future::ready(Ok(()))).await
}

/// [`write`], committing only once `gate` has succeeded (what must be durable before the batch
/// counts as done: the associations the batch teaches). The gate runs while the rows are
/// written — it needs no lock this transaction holds — so a batch costs the longer of the two,
/// not their sum.
pub async fn write_gated(
    pool: &Pool,
    source: Uuid,
    day: NaiveDate,
    batch: &Batch,
    gate: impl std::future::Future<Output = Result<(), DbError>>,
) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let t0 = std::time::Instant::now();
    let gate = async {
        gate.await?;
        Ok::<_, DbError>(t0.elapsed())
    };
    let (written, taught) = tokio::try_join!(write_rows(&tx, source, day, batch), gate)?;
    let t1 = std::time::Instant::now();
    tx.commit().await?;
    if crate::metrics::profiling() {
        eprintln!(
            "  rows {written:?} gate {taught:?} commit {:?}",
            t1.elapsed()
        );
    }
    Ok(())
}

/// Everything a batch writes in its transaction; answers the time it took.
async fn write_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    source: Uuid,
    day: NaiveDate,
    batch: &Batch,
) -> Result<std::time::Duration, DbError> {
    let t0 = std::time::Instant::now();
    copy_outcomes(tx, source, day, &batch.outcomes).await?;
    let t1 = std::time::Instant::now();
    copy_keys(tx, source, &batch.keys).await?;
    let t2 = std::time::Instant::now();
    copy_payments(tx, source, &batch.payments).await?;
    let t3 = std::time::Instant::now();
    if crate::metrics::profiling() {
        eprintln!(
            "  outcomes {:?} keys {:?} payments {:?}",
            t1 - t0,
            t2 - t1,
            t3 - t2
        );
    }
    insert_reversals(tx, source, &batch.reversals).await?;
    update_reversed(tx, &batch.reversed).await?;
    for c in &batch.correlated {
        tx.execute(
            "UPDATE txn_reversal SET payment_source = $3, payment_line = $4, updated_at = now(), \
             updated_by = $5 WHERE source_id = $1 AND line = $2",
            &[
                &c.reversal.0,
                &c.reversal.1,
                &c.payment.0,
                &c.payment.1,
                &BY,
            ],
        )
        .await?;
        tx.execute(
            "UPDATE txn_outcome SET outcome = $3, reason = NULL, updated_at = now(), updated_by = $4 \
             WHERE source_id = $1 AND line = $2",
            &[&c.reversal.0, &c.reversal.1, &c.outcome.name(), &BY],
        )
        .await?;
    }
    for (source, records) in &batch.published {
        let processed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let messages: Vec<OutcomeMessage<'_>> = records
            .chunks(RECORDS_PER_MESSAGE)
            .map(|records| OutcomeMessage {
                source,
                processed_at: processed_at.clone(),
                records,
            })
            .collect();
        let rows: Vec<NewMessage<'_, OutcomeMessage<'_>>> = messages
            .iter()
            .map(|m| NewMessage {
                kind: TRANSACTION_OUTCOME,
                partition_key: &source.id,
                payload: m,
            })
            .collect();
        outbox::insert(tx, &rows, BY).await?;
    }
    if batch.progress.last_line > batch.progress.after_line {
        record_progress(tx, source, &batch.progress, BY).await?;
    }
    Ok(t0.elapsed())
}

async fn copy_outcomes(
    tx: &deadpool_postgres::Transaction<'_>,
    source: Uuid,
    day: NaiveDate,
    rows: &[OutcomeRow],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in(
            "COPY txn_outcome (source_id, line, processing_day, id_trx_acquirer, outcome, reason, \
             match, detail, operation, hash_pan, at, par) FROM STDIN BINARY",
        )
        .await?;
    let types = [
        Type::UUID,
        Type::INT8,
        Type::DATE,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for r in rows {
        let reason = r.outcome.reason().map(|r| r.code());
        let f = r.facts.as_ref();
        let hash: Option<&[u8]> = f.map(|f| &f.hash.0[..]);
        let values: [&(dyn ToSql + Sync); 12] = [
            &source,
            &r.line,
            &day,
            &r.id_trx_acquirer,
            &r.outcome.name(),
            &reason,
            &r.kind.name(),
            &r.detail,
            &f.map(|f| f.operation),
            &hash,
            &f.map(|f| f.at),
            &f.and_then(|f| f.par.as_deref()),
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn copy_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    source: Uuid,
    keys: &[(DupKey, i64)],
) -> Result<(), DbError> {
    if keys.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in("COPY txn_key (key, source_id, line) FROM STDIN BINARY")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::UUID, Type::INT8]);
    pin_mut!(writer);
    // In key order, the inserts fill the index page by page instead of all over it.
    let mut sorted: Vec<&(DupKey, i64)> = keys.iter().collect();
    sorted.sort_unstable_by_key(|(key, _)| *key);
    for (key, line) in sorted {
        let bytes: &[u8] = &key.0;
        writer.as_mut().write(&[&bytes, &source, line]).await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn copy_payments(
    tx: &deadpool_postgres::Transaction<'_>,
    source: Uuid,
    rows: &[PaymentRow],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let abi = abi_of(tx, source).await?;
    let sink = tx
        .copy_in(&format!(
            "COPY txn_payment ({MOVEMENT_COLUMNS}, operation, match, par) FROM STDIN BINARY"
        ))
        .await?;
    let types = [&MOVEMENT_TYPES[..], &[Type::TEXT, Type::TEXT, Type::TEXT]].concat();
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    // In hash order, for the hash index (the primary key follows the lines either way).
    let mut sorted: Vec<&PaymentRow> = rows.iter().collect();
    sorted.sort_unstable_by_key(|p| p.facts.hash);
    for p in sorted {
        let hash: &[u8] = &p.facts.hash.0;
        let mut values = movement_values(&source, &abi, &hash, &p.facts);
        let kind = p.kind.name();
        values.extend([&p.operation as &(dyn ToSql + Sync), &kind, &p.par]);
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// The columns payments and reversals share (a [`Movement`] of a source), in COPY order.
const MOVEMENT_COLUMNS: &str = "source_id, line, hash_pan, abi, acquirer_id, period_id, \
     correlation_id, amount, merchant_id, terminal_id, at";

/// Their binary COPY types.
const MOVEMENT_TYPES: [Type; 11] = [
    Type::UUID,
    Type::INT8,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
];

/// A movement's values for [`MOVEMENT_COLUMNS`]; the caller appends its own.
fn movement_values<'a>(
    source: &'a Uuid,
    abi: &'a String,
    hash: &'a &[u8],
    f: &'a Movement,
) -> Vec<&'a (dyn ToSql + Sync)> {
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(14);
    values.extend([
        source as &(dyn ToSql + Sync),
        &f.line,
        hash,
        abi,
        &f.acquirer_id,
        &f.period,
        &f.correlation_id,
        &f.amount,
        &f.merchant_id,
        &f.terminal_id,
        &f.at,
    ]);
    values
}

async fn abi_of(tx: &deadpool_postgres::Transaction<'_>, source: Uuid) -> Result<String, DbError> {
    Ok(tx
        .query_one("SELECT abi FROM upload WHERE id = $1", &[&source])
        .await?
        .try_get(0)?)
}

async fn insert_reversals(
    tx: &deadpool_postgres::Transaction<'_>,
    source: Uuid,
    rows: &[ReversalRow],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let abi = abi_of(tx, source).await?;
    let sink = tx
        .copy_in(&format!(
            "COPY txn_reversal ({MOVEMENT_COLUMNS}, retry_until, payment_source, payment_line) \
                 FROM STDIN BINARY"
        ))
        .await?;
    let types = [&MOVEMENT_TYPES[..], &[Type::DATE, Type::UUID, Type::INT8]].concat();
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for r in rows {
        let hash: &[u8] = &r.facts.hash.0;
        let (ps, pl) = (r.payment.map(|p| p.0), r.payment.map(|p| p.1));
        let mut values = movement_values(&source, &abi, &hash, &r.facts);
        values.extend([&r.retry_until as &(dyn ToSql + Sync), &ps, &pl]);
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn update_reversed(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[(RecordRef, i64)],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sources: Vec<Uuid> = rows.iter().map(|((s, _), _)| *s).collect();
    let lines: Vec<i64> = rows.iter().map(|((_, l), _)| *l).collect();
    let sums: Vec<i64> = rows.iter().map(|(_, v)| *v).collect();
    tx.execute(
        "UPDATE txn_payment p SET reversed = x.v, updated_at = now(), updated_by = $4 \
         FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS x(s, l, v) \
         WHERE p.source_id = x.s AND p.line = x.l",
        &[&sources, &lines, &sums, &BY],
    )
    .await?;
    Ok(())
}
