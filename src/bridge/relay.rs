//! The outbox relay: turns `consent.changed` rows into card updates (through the CardRegistry)
//! and publishes the other rows to `tkm.out` with their kind as routing key — persistent,
//! mandatory, with pipelined publisher confirms — deleting a row only after its confirm. Only the
//! oldest row of each partition key is taken, so each citizen's messages stay in order; a row
//! that fails holds back its own key only, is retried with backoff and parked after
//! `outbox.max_attempts`. One replica relays at a time (PostgreSQL advisory lock).

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::Utc;
use deadpool_postgres::Pool;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection};
use tokio::sync::{watch, Notify};
use tokio_postgres::NoTls;

use crate::actors::card_registry::messages::{CardError, ConsentChanged};
use crate::actors::card_registry::CardRegistry;
use crate::config::RabbitSettings;
use crate::db::outbox::{self, RetryPolicy, Row};
use crate::db::DbError;
use crate::domain::TaxCode;
use crate::metrics::Metrics;
use crate::retry::{self, Retryable};

/// What the relay needs.
pub struct RelayDeps {
    /// Names and tuning.
    pub settings: RabbitSettings,
    /// The outbox's database.
    pub pool: Pool,
    /// For the leader lock's own connection.
    pub pg: tokio_postgres::Config,
    /// Turns consent changes into card updates.
    pub registry: Addr<CardRegistry>,
    /// Counters.
    pub metrics: Metrics,
    /// Woken when card updates are written.
    pub wakeup: Arc<Notify>,
    /// Retries of failing rows.
    pub policy: RetryPolicy,
    /// The keys with a parked row, as last read (rare, so read every few seconds, not per round).
    pub parked: std::sync::Mutex<ParkedKeys>,
}

/// The partition keys held back by a parked row, and when they were read.
#[derive(Debug, Default)]
pub struct ParkedKeys {
    keys: std::collections::HashSet<String>,
    read_at: Option<std::time::Instant>,
}

impl ParkedKeys {
    /// Forces a fresh read before the next round (a parked row was retried).
    pub fn invalidate(&mut self) {
        self.read_at = None;
    }
}

/// How long the parked keys are trusted (another replica's retry is seen within this).
const PARKED_KEYS_FRESH: Duration = Duration::from_secs(5);

/// The parked keys, read again when stale.
async fn parked_keys(deps: &RelayDeps) -> Result<std::collections::HashSet<String>, DbError> {
    if let Ok(p) = deps.parked.lock() {
        if p.read_at.is_some_and(|at| at.elapsed() < PARKED_KEYS_FRESH) {
            return Ok(p.keys.clone());
        }
    }
    let keys = outbox::parked_keys(&deps.pool).await?;
    if let Ok(mut p) = deps.parked.lock() {
        p.keys = keys.clone();
        p.read_at = Some(std::time::Instant::now());
    }
    Ok(keys)
}

/// Advisory lock held by the replica that relays ("tkm-rela").
pub const RELAY_LOCK: i64 = 0x746b_6d2d_7265_6c61;

/// Relays until told to drain (`Ok`, after publishing what is due) or a broker failure (`Err`:
/// the bridge reconnects).
pub async fn run(
    conn: &Connection,
    deps: Arc<RelayDeps>,
    mut shutdown: watch::Receiver<bool>,
) -> lapin::Result<()> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions { nowait: false })
        .await?;
    let idle = Duration::from_millis(deps.settings.relay_poll_ms);
    loop {
        // Become the relaying replica (the lock lives as long as this connection); another
        // replica may hold it for as long as it runs, so ask again forever.
        let elected = (|| take_leadership(&deps.pg)).retry(retry::RELAY_LEADERSHIP.builder());
        let leader = tokio::select! {
            l = elected => l,
            _ = shutdown.changed() => return Ok(()),
        };
        let Ok((lock_client, lock_conn)) = leader else {
            continue;
        };
        let mut last_backlog = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            if *shutdown.borrow() {
                return drain(&ch, &deps).await;
            }
            if lock_conn.is_finished() || lock_client.is_closed() {
                tracing::warn!("relay lost its leadership connection; re-electing");
                break;
            }
            // Go on at once while rows are handled (a key's next row becomes due only after
            // its previous one); wait when nothing was due.
            let progress = match round(&ch, &deps).await {
                Ok(handled) => handled > 0,
                Err(RoundError::Broker(e)) => return Err(e),
                Err(RoundError::Db(e)) => {
                    tracing::warn!(error = ?e, "outbox relay round failed; retrying");
                    false
                }
            };
            if last_backlog.elapsed() > Duration::from_secs(5) {
                last_backlog = std::time::Instant::now();
                if let Ok(conn) = deps.pool.get().await {
                    if let Ok((backlog, parked)) = outbox::backlog(&conn).await {
                        deps.metrics.outbox_backlog.set(backlog);
                        deps.metrics.outbox_parked.set(parked);
                    }
                }
            }
            if !progress {
                tokio::select! {
                    _ = deps.wakeup.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => return drain(&ch, &deps).await,
                }
            }
        }
    }
}

/// At shutdown: publishes whatever is due until a round finds nothing (the bridge's shutdown
/// timeout bounds the wait; rows left are published by the next process).
async fn drain(ch: &lapin::Channel, deps: &RelayDeps) -> lapin::Result<()> {
    loop {
        match round(ch, deps).await {
            Ok(0) => return Ok(()),
            Ok(handled) => tracing::info!(handled, "outbox drained at shutdown"),
            Err(RoundError::Broker(e)) => return Err(e),
            Err(RoundError::Db(e)) => {
                tracing::warn!(error = ?e, "outbox left undrained at shutdown; the next start publishes it");
                return Ok(());
            }
        }
    }
}

/// Another replica relays, or the database cannot be asked.
#[derive(Debug)]
struct NotLeader;

async fn take_leadership(
    pg: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), NotLeader> {
    let (client, connection) = pg.connect(NoTls).await.map_err(|_| NotLeader)?;
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    let got = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK])
        .await
        .and_then(|row| row.try_get::<_, bool>(0));
    if let Ok(true) = got {
        Ok((client, handle))
    } else {
        handle.abort();
        Err(NotLeader)
    }
}

enum RoundError {
    Broker(lapin::Error),
    Db(DbError),
}

impl From<DbError> for RoundError {
    fn from(e: DbError) -> Self {
        RoundError::Db(e)
    }
}

/// One round over the due rows (the oldest unhandled row of each partition key): consent
/// changes go to the CardRegistry, everything else is published with its kind as routing key.
/// A row that fails is retried with backoff and parked after `outbox.max_attempts`, holding back
/// only its own key. Returns how many rows were handled (0: nothing was due).
async fn round(ch: &lapin::Channel, deps: &RelayDeps) -> Result<usize, RoundError> {
    let limit = i64::try_from(deps.settings.relay_batch).unwrap_or(i64::MAX);
    let parked = parked_keys(deps).await?;
    let rows = outbox::due_heads(&deps.pool, limit, &parked).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (changes, messages): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|r| r.kind == outbox::CONSENT_CHANGED);
    let mut handled = apply_consent_changes(deps, changes).await?;
    handled += publish(ch, deps, messages).await?;
    Ok(handled)
}

/// Consent changes become card updates in the CardRegistry (one transaction for the lot; one
/// by one when that fails, so a bad row cannot hold back the others).
async fn apply_consent_changes(deps: &RelayDeps, rows: Vec<Row>) -> Result<usize, RoundError> {
    let mut usable = Vec::with_capacity(rows.len());
    for row in rows {
        let tax = serde_json::from_str::<serde_json::Value>(&row.payload)
            .ok()
            .and_then(|v| {
                v.get("taxCode")
                    .and_then(|t| t.as_str())
                    .map(TaxCode::parse)
            });
        match tax {
            Some(Ok(tax)) => usable.push((row, tax)),
            _ => {
                tracing::error!(
                    id = row.id,
                    "consent change without a valid taxCode; parked"
                );
                outbox::park(&deps.pool, row.id, "payload has no valid taxCode").await?;
                if let Ok(mut p) = deps.parked.lock() {
                    p.keys.insert(row.partition_key.clone());
                }
            }
        }
    }
    if usable.is_empty() {
        return Ok(0);
    }
    let all = ConsentChanged {
        tax_codes: usable.iter().map(|(_, t)| t.clone()).collect(),
        outbox_ids: usable.iter().map(|(r, _)| r.id).collect(),
    };
    match deps.registry.send(all).await {
        Ok(Ok(_)) => return Ok(usable.len()),
        Ok(Err(CardError::Unavailable(e))) => return Err(RoundError::Db(DbError::Unavailable(e))),
        Ok(Err(e @ CardError::Overloaded)) => {
            return Err(RoundError::Db(DbError::Unavailable(e.into())))
        }
        Err(e) => return Err(RoundError::Db(DbError::Unavailable(e.into()))),
        Ok(Err(CardError::Unexpected(e))) => {
            tracing::warn!(error = ?e, rows = usable.len(), "consent changes failed together; one by one");
        }
    }
    let mut handled = 0;
    for (row, tax) in usable {
        let one = ConsentChanged {
            tax_codes: vec![tax],
            outbox_ids: vec![row.id],
        };
        match deps.registry.send(one).await {
            Ok(Ok(_)) => handled += 1,
            Ok(Err(CardError::Unexpected(e))) => {
                failed(deps, &row, &format!("card registry: {e}")).await?;
            }
            Ok(Err(CardError::Unavailable(e))) => {
                return Err(RoundError::Db(DbError::Unavailable(e)))
            }
            Ok(Err(e @ CardError::Overloaded)) => {
                return Err(RoundError::Db(DbError::Unavailable(e.into())))
            }
            Err(e) => return Err(RoundError::Db(DbError::Unavailable(e.into()))),
        }
    }
    Ok(handled)
}

/// Publishes rows persistent and mandatory with pipelined confirms; deletes the confirmed ones.
/// A nack or a return (no queue bound to the routing key) is a failed attempt of that row.
async fn publish(
    ch: &lapin::Channel,
    deps: &RelayDeps,
    rows: Vec<Row>,
) -> Result<usize, RoundError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(row.id.to_string().into())
            .with_timestamp(u64::try_from(row.created_at.timestamp()).unwrap_or(0))
            .with_delivery_mode(2);
        let confirm = ch
            .basic_publish(
                deps.settings.out_exchange.as_str().into(),
                row.kind.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                row.payload.as_bytes(),
                props,
            )
            .await
            .map_err(RoundError::Broker)?;
        pending.push((row, confirm));
    }
    let mut done = Vec::with_capacity(pending.len());
    for (row, confirm) in pending {
        let confirmation = confirm.await.map_err(RoundError::Broker)?;
        let acked = confirmation.is_ack();
        // A mandatory message nobody could route comes back inside an Ack: a failure too.
        let returned = acked && confirmation.take_message().is_some();
        if acked && !returned {
            done.push(row.id);
            let age = (Utc::now() - row.created_at).num_milliseconds().max(0);
            deps.metrics.outbox_publish.observe(age as f64 / 1000.0);
        } else {
            let reason = if returned {
                "returned by the broker: no queue bound to the routing key (NO_ROUTE)"
            } else {
                "nacked by the broker"
            };
            failed(deps, row, reason).await?;
        }
    }
    let conn = deps.pool.get().await.map_err(DbError::from)?;
    outbox::delete(&conn, &done).await?;
    Ok(done.len())
}

/// Records a failed attempt of `row`; warns, and errs in the log when the row is parked.
async fn failed(deps: &RelayDeps, row: &Row, reason: &str) -> Result<(), RoundError> {
    let outcome = outbox::failed(&deps.pool, row.id, row.attempts, reason, &deps.policy).await?;
    if outcome == outbox::Failed::Parked {
        if let Ok(mut p) = deps.parked.lock() {
            p.keys.insert(row.partition_key.clone());
        }
    }
    match outcome {
        outbox::Failed::Retrying => tracing::warn!(
            id = row.id,
            kind = %row.kind,
            attempts = row.attempts.saturating_add(1),
            reason,
            "outbox row failed; retried later, its partition waits"
        ),
        outbox::Failed::Parked => tracing::error!(
            id = row.id,
            kind = %row.kind,
            reason,
            "outbox row parked after its last attempt; POST /admin/outbox/{{id}}/retry sends it again"
        ),
    }
    Ok(())
}
