//! What the queue holds (per lane, the age of the oldest card lookup) and today's calls.

use deadpool_postgres::Pool;

use crate::db::DbError;
use crate::domain::Circuit;

/// A circuit's lookups still owed, per lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Card lookups pending (due or not).
    pub cards: i64,
    /// Token checks pending.
    pub tokens: i64,
    /// Seconds since the oldest pending card lookup was queued (0 when none).
    pub oldest_card_secs: i64,
}

/// The lookups a circuit still owes, per lane.
pub async fn pending(pool: &Pool, circuit: Circuit) -> Result<Pending, DbError> {
    let conn = pool.get().await?;
    // Each count reads its lane's partial index.
    let cards = conn
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::bigint, 0) \
             FROM par_lookup WHERE circuit = $1 AND state = 'pending' AND subject = 'card'",
            &[&circuit.as_str()],
        )
        .await?;
    let tokens = conn
        .query_one(
            "SELECT count(*) FROM par_lookup \
             WHERE circuit = $1 AND state = 'pending' AND subject = 'token'",
            &[&circuit.as_str()],
        )
        .await?;
    Ok(Pending {
        cards: cards.try_get(0)?,
        oldest_card_secs: cards.try_get(1)?,
        tokens: tokens.try_get(0)?,
    })
}

/// Lookups still owed per circuit (pending, due or not).
pub async fn backlog(pool: &Pool, circuit: Circuit) -> Result<i64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query_one(
            "SELECT count(*) FROM par_lookup WHERE circuit = $1 AND state = 'pending'",
            &[&circuit.as_str()],
        )
        .await?
        .get(0))
}

/// Adds `n` lookups to today's count of a circuit (Europe/Rome day).
pub async fn count_calls(pool: &Pool, circuit: Circuit, n: i64) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO circuit_call_day (circuit, day, lookups) \
         VALUES ($1, (now() AT TIME ZONE 'Europe/Rome')::date, $2) \
         ON CONFLICT (circuit, day) DO UPDATE SET lookups = circuit_call_day.lookups + $2",
        &[&circuit.as_str(), &n],
    )
    .await?;
    Ok(())
}

/// Today's lookups of a circuit.
pub async fn calls_today(pool: &Pool, circuit: Circuit) -> Result<i64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query_opt(
            "SELECT lookups FROM circuit_call_day WHERE circuit = $1 \
             AND day = (now() AT TIME ZONE 'Europe/Rome')::date",
            &[&circuit.as_str()],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0))
}
