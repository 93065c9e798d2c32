//! Token BIN ranges per circuit: replaced as a whole in one transaction, and the record of each
//! circuit's last refresh.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};

use super::DbError;
use crate::domain::{BinRange, Circuit};

/// What a circuit's last refresh left.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RefreshState {
    /// Ranges stored now.
    pub ranges: i64,
    /// When a refresh last replaced the ranges.
    pub last_success: Option<DateTime<Utc>>,
    /// When a refresh was last tried.
    pub last_attempt: Option<DateTime<Utc>>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
}

/// The turn of this replica to run a circuit's scheduled refresh: a PostgreSQL session lock
/// held on a connection of its own (taken out of the pool), released when the turn is dropped —
/// or when the process dies, since its connection closes.
pub struct RefreshTurn {
    _session: deadpool_postgres::ClientWrapper,
}

/// Waits for the circuit's refresh turn (another replica may be refreshing it), then answers it
/// unless a refresh succeeded at or after `slot` meanwhile (`None`: nothing left to do). So
/// however many replicas wake at the scheduled time, one of them asks the circuit, and if it
/// dies midway the next one takes over.
pub async fn take_turn(
    pool: &Pool,
    circuit: Circuit,
    slot: DateTime<Utc>,
) -> Result<Option<RefreshTurn>, DbError> {
    // A session lock on a pooled connection would go back to the pool still held if this
    // future were dropped; a detached connection closes instead, and the lock goes with it.
    let session = deadpool_postgres::Object::take(pool.get().await?);
    session
        .execute(
            "SELECT pg_advisory_lock(hashtext('bin_refresh:' || $1))",
            &[&circuit.as_str()],
        )
        .await?;
    let done: Option<DateTime<Utc>> = session
        .query_opt(
            "SELECT last_success FROM bin_refresh WHERE circuit = $1",
            &[&circuit.as_str()],
        )
        .await?
        .and_then(|r| r.get(0));
    Ok(match done {
        Some(at) if at >= slot => None,
        _ => Some(RefreshTurn { _session: session }),
    })
}

/// How many ranges a circuit has now.
pub async fn count(pool: &Pool, circuit: Circuit) -> Result<i64, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "SELECT count(*) FROM bin_range WHERE circuit = $1",
            &[&circuit.as_str()],
        )
        .await?;
    Ok(row.get(0))
}

/// Replaces every range of `circuit` with `ranges` in one transaction and records the success.
/// Refused (nothing changed, `Ok(Err(current))`) when the new set is smaller than `min_ratio` of
/// the current one and the refresh is not forced — checked under the same lock.
pub async fn replace(
    pool: &Pool,
    circuit: Circuit,
    ranges: &[BinRange],
    min_ratio: f64,
    forced: bool,
    by: &str,
) -> Result<Result<(), i64>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // Serialises refreshes of one circuit across replicas.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('bin_range:' || $1))",
        &[&circuit.as_str()],
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT count(*) FROM bin_range WHERE circuit = $1",
            &[&circuit.as_str()],
        )
        .await?
        .get(0);
    if !forced && (ranges.len() as f64) < min_ratio * current as f64 {
        return Ok(Err(current));
    }
    tx.execute(
        "DELETE FROM bin_range WHERE circuit = $1",
        &[&circuit.as_str()],
    )
    .await?;
    // In chunks of unnest arrays: one round trip per 5 000 ranges.
    for chunk in ranges.chunks(5000) {
        let mins: Vec<&str> = chunk.iter().map(BinRange::min).collect();
        let maxs: Vec<&str> = chunk.iter().map(BinRange::max).collect();
        let bins: Vec<Option<&str>> = chunk.iter().map(BinRange::issuer_bin).collect();
        let names: Vec<Option<&str>> = chunk.iter().map(BinRange::issuer_name).collect();
        tx.execute(
            "INSERT INTO bin_range (circuit, min_bound, max_bound, issuer_bin, issuer_name, \
             created_by, updated_by) \
             SELECT $1, mn, mx, ib, nm, $6, $6 \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(mn, mx, ib, nm)",
            &[&circuit.as_str(), &mins, &maxs, &bins, &names, &by],
        )
        .await?;
    }
    let n = ranges.len() as i32;
    tx.execute(
        "INSERT INTO bin_refresh (circuit, ranges, last_success, last_attempt, last_error, \
         created_by, updated_by) VALUES ($1, $2, now(), now(), NULL, $3, $3) \
         ON CONFLICT (circuit) DO UPDATE SET ranges = $2, last_success = now(), \
         last_attempt = now(), last_error = NULL, updated_at = now(), updated_by = $3",
        &[&circuit.as_str(), &n, &by],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Records a failed refresh (the ranges stay as they were).
pub async fn record_failure(
    pool: &Pool,
    circuit: Circuit,
    error: &str,
    by: &str,
) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO bin_refresh (circuit, ranges, last_attempt, last_error, created_by, updated_by) \
         VALUES ($1, (SELECT count(*) FROM bin_range WHERE circuit = $1), now(), $2, $3, $3) \
         ON CONFLICT (circuit) DO UPDATE SET last_attempt = now(), last_error = $2, \
         updated_at = now(), updated_by = $3",
        &[&circuit.as_str(), &error, &by],
    )
    .await?;
    Ok(())
}

/// The refresh state of a circuit.
pub async fn state(client: &impl GenericClient, circuit: Circuit) -> Result<RefreshState, DbError> {
    let row = client
        .query_opt(
            "SELECT (SELECT count(*) FROM bin_range WHERE circuit = $1), r.last_success, \
             r.last_attempt, r.last_error \
             FROM (SELECT 1) AS one LEFT JOIN bin_refresh r ON r.circuit = $1",
            &[&circuit.as_str()],
        )
        .await?;
    Ok(row
        .map(|r| RefreshState {
            ranges: r.get(0),
            last_success: r.get(1),
            last_attempt: r.get(2),
            last_error: r.get(3),
        })
        .unwrap_or_default())
}

/// Every range of a circuit, ordered by lower bound (for lists and tests).
pub async fn all(pool: &Pool, circuit: Circuit) -> Result<Vec<BinRange>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT min_bound, max_bound, issuer_bin, issuer_name FROM bin_range \
             WHERE circuit = $1 ORDER BY min_bound, max_bound",
            &[&circuit.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            BinRange::parse(circuit, r.get(0), r.get(1), r.get(2), r.get(3))
                .map_err(|e| DbError::Unexpected(anyhow::anyhow!("stored bin_range: {}", e.0)))
        })
        .collect()
}

/// The token BIN ranges of every circuit (the range test of acquirers' token lists).
pub async fn token_ranges(pool: &Pool) -> Result<Vec<BinRange>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT circuit, min_bound, max_bound FROM bin_range WHERE token",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let circuit: &str = r.try_get(0)?;
            let circuit = Circuit::from_json_name(circuit)
                .map_err(|e| DbError::Unexpected(anyhow::anyhow!("stored bin_range: {}", e.0)))?;
            BinRange::parse(circuit, r.try_get(1)?, r.try_get(2)?, None, None)
                .map_err(|e| DbError::Unexpected(anyhow::anyhow!("stored bin_range: {}", e.0)))
        })
        .collect()
}
