//! Consent tables: the citizen row (lock and version), derived per-service/override rows, the
//! append-only history, and the `consent.changed` outbox row — all written in one transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde_json::{json, Value};

use tokio_postgres::types::Json;

use super::DbError;
use crate::domain::{next_instant, Change, Consent, ConsentState, Hpan, Service, TaxCode};

/// NOTIFY channel that tells other replicas a citizen changed (payload `TAXCODE:version`).
pub const NOTIFY_CHANNEL: &str = "tkm_consent";

/// Tells other replicas which citizens changed, one notification per `TAXCODE:version`.
///
/// Sent after the changes committed, in batches, and never inside the writing transaction:
/// PostgreSQL serialises the commits of notifying transactions on one lock, which would cap
/// consent writes at one fsync each.
pub async fn notify_changes(pool: &Pool, payloads: &[String]) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        &[&NOTIFY_CHANNEL, &payloads],
    )
    .await?;
    Ok(())
}

/// How many recent changes a cached citizen keeps: enough for the status of any recent instant;
/// older instants are answered from the database.
pub const RECENT_CHANGES: usize = 64;

/// A citizen's consent as the cache holds it: the current version and its recent changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenConsent {
    /// Incremented by every accepted request.
    pub version: i64,
    /// The most recent committed changes, oldest first; the last one is the current state.
    pub changes: Vec<Change>,
    /// Whether `changes` starts with the citizen's first change (the timeline is whole).
    pub complete: bool,
}

impl CitizenConsent {
    /// Appends a committed change, keeping at most [`RECENT_CHANGES`].
    fn push(&mut self, version: i64, change: Change) {
        self.version = version;
        self.changes.push(change);
        if self.changes.len() > RECENT_CHANGES {
            let excess = self.changes.len() - RECENT_CHANGES;
            self.changes.drain(..excess);
            self.complete = false;
        }
    }

    /// The current state.
    pub fn current(&self) -> Option<&ConsentState> {
        self.changes.last().map(|c| &c.state)
    }

    /// When the consent last changed.
    pub fn last_update(&self) -> Option<DateTime<Utc>> {
        self.changes.last().map(|c| c.at)
    }
}

/// One history row as `GET /consent/history` shows it.
#[derive(Clone, Debug)]
pub struct HistoryRow {
    /// When the change took effect.
    pub at: DateTime<Utc>,
    /// The client identity that asked.
    pub by: String,
    /// The request as recorded.
    pub request: Value,
    /// The state before (`None` at creation).
    pub before: Option<ConsentState>,
    /// The state after.
    pub after: ConsentState,
}

/// Who asked for a change, for audit columns and history.
#[derive(Clone, Debug)]
pub struct Actor {
    /// Client identity (certificate name).
    pub by: String,
}

/// Loads a citizen's latest `limit` changes; `None` for an unknown citizen.
pub async fn load(
    client: &impl GenericClient,
    tax: &TaxCode,
    limit: i64,
) -> Result<Option<CitizenConsent>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT c.version, h.version, h.at, h.after FROM consent_citizen c \
             CROSS JOIN LATERAL (SELECT version, at, after FROM consent_history \
                 WHERE tax_code = c.tax_code ORDER BY version DESC LIMIT $2) h \
             WHERE c.tax_code = $1",
        )
        .await?;
    let rows = client.query(&stmt, &[&tax.as_str(), &limit]).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let version: i64 = first.try_get(0)?;
    let mut changes = Vec::with_capacity(rows.len());
    let mut oldest = i64::MAX;
    for row in rows.iter().rev() {
        oldest = oldest.min(row.try_get(1)?);
        let Json(state): Json<ConsentState> = row.try_get(3)?;
        changes.push(Change {
            at: row.try_get(2)?,
            state,
        });
    }
    Ok(Some(CitizenConsent {
        version,
        changes,
        complete: oldest == 1,
    }))
}

/// The history of a citizen between two instants (inclusive), oldest first.
pub async fn history(
    client: &impl GenericClient,
    tax: &TaxCode,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<HistoryRow>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT at, created_by, request, before, after FROM ( \
                 SELECT at, created_by, request, lag(after) OVER (ORDER BY version) AS before, \
                     after, version FROM consent_history WHERE tax_code = $1) h \
             WHERE ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at <= $3) \
             ORDER BY version",
        )
        .await?;
    let rows = client.query(&stmt, &[&tax.as_str(), &from, &to]).await?;
    rows.iter()
        .map(|row| {
            let before: Option<Json<ConsentState>> = row.try_get(3)?;
            let Json(after): Json<ConsentState> = row.try_get(4)?;
            Ok(HistoryRow {
                at: row.try_get(0)?,
                by: row.try_get(1)?,
                request: row.try_get(2)?,
                before: before.map(|Json(b)| b),
                after,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)
}

/// Records a change for `tax` in one transaction: locks the citizen row (serialising changes per
/// tax code across processes) and reads its state with the lock, lets `decide` compute the next
/// state (`None`: unknown citizen), then writes the state, the history row (with `request`) and
/// the outbox row in one statement. Other replicas are told after the commit
/// ([`notify_changes`]). `cached` is extended when it is current, so the caller's cache keeps its
/// timeline. A refusal by `decide` rolls back and is returned as the inner error.
pub async fn record_change<E>(
    pool: &Pool,
    tax: &TaxCode,
    request: &Value,
    actor: &Actor,
    cached: Option<&CitizenConsent>,
    decide: impl FnOnce(Option<&ConsentState>) -> Result<ConsentState, E>,
) -> Result<Result<CitizenConsent, E>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;

    let current = lock_citizen(&tx, tax, &actor.by).await?;
    let before = current.as_ref().map(|c| &c.state);
    let after = match decide(before) {
        Ok(s) => s,
        Err(e) => {
            tx.rollback().await?;
            return Ok(Err(e));
        }
    };
    let version = current.as_ref().map_or(1, |c| c.version + 1);
    let at = next_instant(current.as_ref().map(|c| c.at), Utc::now());
    write_change(&tx, tax, actor, request, before, &after, version, at).await?;
    tx.commit().await?;

    let mut next = match (cached, &current) {
        (Some(c), Some(cur)) if c.version == cur.version => c.clone(),
        (_, Some(cur)) => CitizenConsent {
            version: cur.version,
            changes: vec![Change {
                at: cur.at,
                state: cur.state.clone(),
            }],
            complete: cur.version == 1,
        },
        (_, None) => CitizenConsent {
            version: 0,
            changes: Vec::new(),
            complete: true,
        },
    };
    next.push(version, Change { at, state: after });
    Ok(Ok(next))
}

/// The citizen row as read under its lock.
struct Current {
    version: i64,
    state: ConsentState,
    at: DateTime<Utc>,
}

/// Locks the citizen row and returns its state; creates the row (locked) for a new citizen.
async fn lock_citizen(
    tx: &deadpool_postgres::Transaction<'_>,
    tax: &TaxCode,
    by: &str,
) -> Result<Option<Current>, DbError> {
    let select = tx
        .prepare_cached(
            "SELECT version, state, updated_at FROM consent_citizen \
             WHERE tax_code = $1 AND version > 0 FOR UPDATE",
        )
        .await?;
    let read = |row: tokio_postgres::Row| -> Result<Current, DbError> {
        let Json(state): Json<ConsentState> = row.try_get(1)?;
        Ok(Current {
            version: row.try_get(0)?,
            state,
            at: row.try_get(2)?,
        })
    };
    if let Some(row) = tx.query_opt(&select, &[&tax.as_str()]).await? {
        return read(row).map(Some);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO consent_citizen (tax_code, version, created_by, updated_by) \
             VALUES ($1, 0, $2, $2) ON CONFLICT (tax_code) DO NOTHING RETURNING version",
        )
        .await?;
    if tx
        .query_opt(&insert, &[&tax.as_str(), &by])
        .await?
        .is_some()
    {
        return Ok(None);
    }
    // Another transaction created it meanwhile: wait for its lock, then read what it wrote.
    tx.query_opt(&select, &[&tax.as_str()])
        .await?
        .map(read)
        .transpose()
}

#[allow(clippy::too_many_arguments)]
async fn write_change(
    tx: &deadpool_postgres::Transaction<'_>,
    tax: &TaxCode,
    actor: &Actor,
    request: &Value,
    before: Option<&ConsentState>,
    after: &ConsentState,
    version: i64,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let t = tax.as_str();
    let by = actor.by.as_str();
    // One statement: citizen state, history row and (when the state changed) the
    // `consent.changed` outbox row that the relay turns into card updates and revocations.
    static WRITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH citizen AS ( \
                 UPDATE consent_citizen SET version = $2, state = $5, updated_at = $3, updated_by = $6 \
                 WHERE tax_code = $1), \
             history AS ( \
                 INSERT INTO consent_history (tax_code, version, at, request, after, \
                     created_at, created_by, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, $3, $6, $3, $6)) {}",
            super::outbox::CONSENT_CHANGED_INSERT
        )
    });
    let write = tx.prepare_cached(&WRITE).await?;
    let outbox = (before != Some(after)).then(|| {
        json!({
            "taxCode": t,
            "version": version,
            "at": at,
            "before": before,
            "after": after,
        })
    });
    let after_json = Json(after);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&t, &version, &at, request, &after_json, &by, &outbox];
    let overrides = write_overrides(tx, t, by, at, before, after);
    // Issued together so tokio-postgres pipelines them on the connection.
    let write = async { tx.execute(&write, &params).await.map_err(DbError::from) };
    futures_util::future::try_join(write, overrides).await?;
    Ok(())
}

fn flatten(state: Option<&ConsentState>) -> Vec<(Hpan, Service, bool)> {
    state
        .map(|s| {
            s.cards
                .iter()
                .flat_map(|(h, o)| {
                    o.iter()
                        .map(move |(svc, c)| (h.clone(), *svc, *c == Consent::Allow))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn write_overrides(
    tx: &deadpool_postgres::Transaction<'_>,
    tax: &str,
    by: &str,
    at: DateTime<Utc>,
    before: Option<&ConsentState>,
    after: &ConsentState,
) -> Result<(), DbError> {
    let old = flatten(before);
    let new = flatten(Some(after));
    let removed: Vec<&(Hpan, Service, bool)> = old
        .iter()
        .filter(|(h, s, _)| !new.iter().any(|(h2, s2, _)| h == h2 && s == s2))
        .collect();
    let changed: Vec<&(Hpan, Service, bool)> = new.iter().filter(|n| !old.contains(n)).collect();
    if !removed.is_empty() {
        let hpans: Vec<&str> = removed.iter().map(|(h, _, _)| h.as_str()).collect();
        let svcs: Vec<&str> = removed.iter().map(|(_, s, _)| s.as_str()).collect();
        tx.execute(
            "DELETE FROM consent_card_override o USING unnest($2::text[], $3::text[]) AS x(h, s) \
             WHERE o.tax_code = $1 AND o.hpan = x.h AND o.service = x.s",
            &[&tax, &hpans, &svcs],
        )
        .await?;
    }
    if !changed.is_empty() {
        let hpans: Vec<&str> = changed.iter().map(|(h, _, _)| h.as_str()).collect();
        let svcs: Vec<&str> = changed.iter().map(|(_, s, _)| s.as_str()).collect();
        let allowed: Vec<bool> = changed.iter().map(|(_, _, a)| *a).collect();
        tx.execute(
            "INSERT INTO consent_card_override (tax_code, hpan, service, allowed, created_at, created_by, updated_at, updated_by) \
             SELECT $1, h, s, a, $5, $6, $5, $6 FROM unnest($2::text[], $3::text[], $4::bool[]) AS x(h, s, a) \
             ON CONFLICT (tax_code, hpan, service) DO UPDATE SET allowed = EXCLUDED.allowed, \
             updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
            &[&tax, &hpans, &svcs, &allowed, &at, &by],
        )
        .await?;
    }
    Ok(())
}
