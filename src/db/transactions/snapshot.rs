//! Loads the matcher's enrolment snapshot (`matching.md`) from one consistent database snapshot:
//! cards, live tokens, enrolment intervals and the consent history, streamed row by row.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use crate::db::DbError;
use crate::domain::matching::{Snapshot, SnapshotBuilder};
use crate::domain::transactions::HashKey;
use crate::domain::{ConsentState, Par};

fn unexpected(e: impl Into<anyhow::Error>) -> DbError {
    DbError::Unexpected(e.into())
}

fn hash(row: &Row, i: usize) -> Result<HashKey, DbError> {
    let s: &str = row.try_get(i)?;
    HashKey::from_hex(s).ok_or_else(|| unexpected(anyhow::anyhow!("a stored hash is not 64 hex")))
}

fn par(row: &Row, i: usize) -> Result<Option<Par>, DbError> {
    let s: Option<&str> = row.try_get(i)?;
    // Stored PARs were parsed on the way in; one that no longer parses is left out, not fatal.
    Ok(s.and_then(|s| Par::parse(s).ok()))
}

/// Adds a `SELECT id, hpan, par FROM card` row.
pub(super) fn add_card(b: &mut SnapshotBuilder, row: &Row) -> Result<(), DbError> {
    b.card(row.try_get(0)?, hash(row, 1)?, par(row, 2)?.as_ref())
        .map_err(unexpected)
}

/// Adds a `SELECT htoken, par FROM token` row.
pub(super) fn add_token(b: &mut SnapshotBuilder, row: &Row) -> Result<(), DbError> {
    b.token(hash(row, 0)?, par(row, 1)?.as_ref())
        .map_err(unexpected)
}

/// Adds a `SELECT card_id, tax_code, opened_at, closed_at FROM card_link_interval` row.
pub(super) fn add_interval(b: &mut SnapshotBuilder, row: &Row) -> Result<(), DbError> {
    let opened: DateTime<Utc> = row.try_get(2)?;
    let closed: Option<DateTime<Utc>> = row.try_get(3)?;
    b.interval(row.try_get(0)?, row.try_get(1)?, opened, closed)
        .map_err(unexpected)
}

/// Adds a `SELECT tax_code, version, at, after FROM consent_history` row.
pub(super) fn add_consent(b: &mut SnapshotBuilder, row: &Row) -> Result<(), DbError> {
    let after: serde_json::Value = row.try_get(3)?;
    let state: ConsentState = serde_json::from_value(after).map_err(unexpected)?;
    b.consent(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, &state)
        .map_err(unexpected)
}

/// Where a snapshot was read: the oldest transaction still running then (PostgreSQL's `xid8`).
/// Every change the snapshot does not show was made by a transaction at or after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Horizon(String);

/// Reads the whole snapshot in one REPEATABLE READ transaction, so that it reflects every
/// change committed before it started (the caller starts it after a file's receipt), and the
/// horizon it was read at.
pub async fn load(pool: &Pool, zone: Tz) -> Result<(Snapshot, Horizon), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // The first statement takes the transaction's snapshot: the reads below see what it saw.
    let horizon = Horizon(
        tx.query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
            .await?
            .try_get(0)?,
    );
    let mut b = SnapshotBuilder::new(zone);
    let none: [&(dyn ToSql + Sync); 0] = [];

    let rows = tx.query_raw("SELECT id, hpan, par FROM card", none).await?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        add_card(&mut b, &row)?;
    }
    let rows = tx
        .query_raw("SELECT htoken, par FROM token WHERE NOT deleted", none)
        .await?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        add_token(&mut b, &row)?;
    }
    let rows = tx
        .query_raw(
            "SELECT card_id, tax_code, opened_at, closed_at FROM card_link_interval",
            none,
        )
        .await?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        add_interval(&mut b, &row)?;
    }
    // Only citizens linked to a card: nobody else's consent can decide a record.
    let rows = tx
        .query_raw(
            "SELECT h.tax_code, h.version, h.at, h.after FROM consent_history h \
             WHERE EXISTS (SELECT 1 FROM card_link l WHERE l.tax_code = h.tax_code)",
            none,
        )
        .await?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        add_consent(&mut b, &row)?;
    }
    tx.commit().await?;
    Ok((b.build(), horizon))
}

/// The hashes of every card, token and interval written, and of every card of a citizen whose
/// consent changed, by transactions at or after `horizon` — a superset of what a snapshot read
/// at `horizon` does not show. Rows carry their writer's transaction id (`xmin`); `age()`
/// compares two of them without wrapping around. One pass over each table, no index: seconds
/// at ten million cards, against tens of seconds for the whole snapshot.
pub async fn changed_since(pool: &Pool, horizon: &Horizon) -> Result<Vec<HashKey>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "WITH h AS (SELECT age(xid($1::text::xid8)) AS a) \
             SELECT c.hpan FROM card c, h WHERE age(c.xmin) <= h.a \
             UNION SELECT c.hpan FROM card_link_interval i JOIN card c ON c.id = i.card_id \
                 CROSS JOIN h WHERE age(i.xmin) <= h.a \
             UNION SELECT t.htoken FROM token t, h WHERE age(t.xmin) <= h.a \
             UNION SELECT c.hpan FROM consent_history ch \
                 JOIN card_link l ON l.tax_code = ch.tax_code \
                 JOIN card c ON c.id = l.card_id CROSS JOIN h WHERE age(ch.xmin) <= h.a",
            &[&horizon.0],
        )
        .await?;
    rows.iter().map(|r| hash(r, 0)).collect()
}
