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

/// Everything tkm knows of a citizen's consent, as loaded into the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenConsent {
    /// Incremented by every accepted request.
    pub version: i64,
    /// Every committed change, oldest first; the last one is the current state.
    pub changes: Vec<Change>,
}

impl CitizenConsent {
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

/// Loads a citizen's whole consent timeline; `None` for an unknown citizen.
pub async fn load(
    client: &impl GenericClient,
    tax: &TaxCode,
) -> Result<Option<CitizenConsent>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT c.version, h.at, h.after FROM consent_citizen c \
             JOIN consent_history h ON h.tax_code = c.tax_code \
             WHERE c.tax_code = $1 ORDER BY h.version",
        )
        .await?;
    let rows = client.query(&stmt, &[&tax.as_str()]).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let version: i64 = first.try_get(0)?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let Json(state): Json<ConsentState> = row.try_get(2)?;
        changes.push(Change {
            at: row.try_get(1)?,
            state,
        });
    }
    Ok(Some(CitizenConsent { version, changes }))
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
            "SELECT at, created_by, request, before, after FROM consent_history \
             WHERE tax_code = $1 AND ($2::timestamptz IS NULL OR at >= $2) \
             AND ($3::timestamptz IS NULL OR at <= $3) ORDER BY version",
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
/// tax code across processes), lets `decide` compute the next state from the current one (`None`:
/// unknown citizen), writes state, history (with `request`) and outbox, and notifies other
/// replicas. `cached` is used as the current state when its version is current. A refusal by
/// `decide` rolls back and is returned as the inner error.
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

    let locked = lock_citizen(&tx, tax, &actor.by).await?;
    let current = match (locked, cached) {
        (None, _) => None,
        (Some(v), Some(c)) if c.version == v => Some(c.clone()),
        (Some(_), _) => load(&tx, tax).await?,
    };
    let before = current.as_ref().and_then(|c| c.current());
    let after = match decide(before) {
        Ok(s) => s,
        Err(e) => {
            tx.rollback().await?;
            return Ok(Err(e));
        }
    };
    let version = current.as_ref().map_or(1, |c| c.version + 1);
    let at = next_instant(current.as_ref().and_then(|c| c.last_update()), Utc::now());
    write_change(&tx, tax, actor, request, before, &after, version, at).await?;
    tx.commit().await?;

    let mut next = current.unwrap_or(CitizenConsent {
        version: 0,
        changes: Vec::new(),
    });
    next.version = version;
    next.changes.push(Change { at, state: after });
    Ok(Ok(next))
}

/// Locks the citizen row and returns its version, creating it (locked) when absent.
async fn lock_citizen(
    tx: &deadpool_postgres::Transaction<'_>,
    tax: &TaxCode,
    by: &str,
) -> Result<Option<i64>, DbError> {
    let select = tx
        .prepare_cached("SELECT version FROM consent_citizen WHERE tax_code = $1 FOR UPDATE")
        .await?;
    if let Some(row) = tx.query_opt(&select, &[&tax.as_str()]).await? {
        return Ok(Some(row.try_get(0)?));
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
    let row = tx.query_one(&select, &[&tax.as_str()]).await?;
    let version: i64 = row.try_get(0)?;
    Ok((version > 0).then_some(version))
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
    let update_citizen = tx
        .prepare_cached(
            "UPDATE consent_citizen SET version = $2, updated_at = $3, updated_by = $4 \
             WHERE tax_code = $1",
        )
        .await?;
    let upsert_services = tx
        .prepare_cached(
            "INSERT INTO consent_service (tax_code, service, allowed, created_at, created_by, updated_at, updated_by) \
             SELECT $1, s, a, $4, $5, $4, $5 FROM unnest($2::text[], $3::bool[]) AS x(s, a) \
             ON CONFLICT (tax_code, service) DO UPDATE SET allowed = EXCLUDED.allowed, \
             updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by \
             WHERE consent_service.allowed IS DISTINCT FROM EXCLUDED.allowed",
        )
        .await?;
    let insert_history = tx
        .prepare_cached(
            "INSERT INTO consent_history (tax_code, version, at, request, before, after, created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $3, $7, $3, $7)",
        )
        .await?;

    let (svc_names, svc_allowed): (Vec<&str>, Vec<bool>) = Service::ALL
        .iter()
        .map(|s| (s.as_str(), after.service(*s) == Consent::Allow))
        .unzip();
    let before_json = before.map(Json);
    let after_json = Json(after);

    let payload = format!("{t}:{version}");
    let citizen_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&t, &version, &at, &by];
    let service_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&t, &svc_names, &svc_allowed, &at, &by];
    let history_params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&t, &version, &at, request, &before_json, &after_json, &by];
    let notify_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
        [&NOTIFY_CHANNEL, &payload];
    let citizen = tx.execute(&update_citizen, &citizen_params);
    let services = tx.execute(&upsert_services, &service_params);
    let hist = tx.execute(&insert_history, &history_params);
    let overrides = write_overrides(tx, t, by, at, before, after);
    let outbox = write_outbox(tx, tax, by, at, version, before, after);
    let notify = tx.execute("SELECT pg_notify($1, $2)", &notify_params);
    // Issued together so tokio-postgres pipelines them on the connection.
    futures_util::future::try_join4(citizen, services, hist, notify).await?;
    futures_util::future::try_join(overrides, outbox).await?;
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

/// Writes the `consent.changed` outbox row when the state actually changed; the relay turns it
/// into card updates and revocations for the citizen's cards.
async fn write_outbox(
    tx: &deadpool_postgres::Transaction<'_>,
    tax: &TaxCode,
    by: &str,
    at: DateTime<Utc>,
    version: i64,
    before: Option<&ConsentState>,
    after: &ConsentState,
) -> Result<(), DbError> {
    if before == Some(after) {
        return Ok(());
    }
    let payload = json!({
        "taxCode": tax.as_str(),
        "version": version,
        "at": at,
        "before": before,
        "after": after,
    });
    let stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (kind, partition_key, payload, created_at, created_by, updated_at, updated_by) \
             VALUES ('consent.changed', $1, $2, $3, $4, $3, $4)",
        )
        .await?;
    tx.execute(&stmt, &[&tax.as_str(), &payload, &at, &by])
        .await?;
    Ok(())
}
