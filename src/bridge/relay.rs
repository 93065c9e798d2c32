//! The outbox relay: turns `consent.changed` rows into card updates (through the CardRegistry)
//! and publishes `card.update` rows to `tkm.out` — persistent, mandatory, with pipelined
//! publisher confirms — deleting a row only after its confirm. One row per partition key per
//! round keeps each citizen's messages in order even when a publish fails. One replica relays at
//! a time (PostgreSQL advisory lock).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection};
use tokio::sync::{watch, Notify};
use tokio_postgres::NoTls;

use crate::actors::card_registry::messages::ConsentChanged;
use crate::actors::card_registry::CardRegistry;
use crate::config::RabbitSettings;
use crate::domain::TaxCode;
use crate::metrics::Metrics;

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
}

/// Advisory lock held by the replica that relays ("tkm-rela").
pub const RELAY_LOCK: i64 = 0x746b_6d2d_7265_6c61;

/// Relays until shutdown (`Ok`) or a broker failure (`Err`: the bridge reconnects).
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
        // Become the relaying replica (the lock lives as long as this connection).
        let leader = tokio::select! {
            l = take_leadership(&deps.pg) => l,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some((lock_client, lock_conn)) = leader else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                _ = shutdown.changed() => return Ok(()),
            }
        };
        let mut last_backlog = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if lock_conn.is_finished() || lock_client.is_closed() {
                tracing::warn!("relay lost its leadership connection; re-electing");
                break;
            }
            let full = match round(&ch, &deps).await {
                Ok(full) => full,
                Err(RoundError::Broker(e)) => return Err(e),
                Err(RoundError::Other(e)) => {
                    tracing::warn!(error = ?e, "outbox relay round failed; retrying");
                    false
                }
            };
            if last_backlog.elapsed() > Duration::from_secs(5) {
                last_backlog = std::time::Instant::now();
                if let Ok(conn) = deps.pool.get().await {
                    if let Ok(row) = conn.query_one("SELECT count(*) FROM outbox", &[]).await {
                        deps.metrics.outbox_backlog.set(row.get::<_, i64>(0));
                    }
                }
            }
            if !full {
                tokio::select! {
                    _ = deps.wakeup.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

async fn take_leadership(
    pg: &tokio_postgres::Config,
) -> Option<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (client, connection) = pg.connect(NoTls).await.ok()?;
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK])
        .await
        .ok()?
        .get(0);
    if got {
        Some((client, handle))
    } else {
        handle.abort();
        None
    }
}

enum RoundError {
    Broker(lapin::Error),
    Other(anyhow::Error),
}

impl From<tokio_postgres::Error> for RoundError {
    fn from(e: tokio_postgres::Error) -> Self {
        RoundError::Other(e.into())
    }
}

/// One round: consent changes, then one batch of card updates. True when the batch was full.
async fn round(ch: &lapin::Channel, deps: &RelayDeps) -> Result<bool, RoundError> {
    let conn = deps
        .pool
        .get()
        .await
        .map_err(|e| RoundError::Other(e.into()))?;
    let changes = conn
        .query(
            "SELECT id, payload->>'taxCode' FROM outbox WHERE kind = 'consent.changed' ORDER BY id LIMIT 500",
            &[],
        )
        .await?;
    if !changes.is_empty() {
        let ids: Vec<i64> = changes.iter().map(|r| r.get(0)).collect();
        let mut taxes: Vec<TaxCode> = changes
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(1))
            .filter_map(|t| TaxCode::parse(&t).ok())
            .collect();
        taxes.sort();
        taxes.dedup();
        match deps
            .registry
            .send(ConsentChanged {
                tax_codes: taxes,
                outbox_ids: ids,
            })
            .await
        {
            Ok(Ok(_)) => {}
            other => {
                return Err(RoundError::Other(anyhow::anyhow!(
                    "consent changes not applied: {other:?}"
                )))
            }
        }
    }
    let limit = i64::try_from(deps.settings.relay_batch * 2).unwrap_or(i64::MAX);
    let rows = conn
        .query(
            "SELECT id, partition_key, payload::text, created_at FROM outbox \
             WHERE kind = 'card.update' ORDER BY id LIMIT $1",
            &[&limit],
        )
        .await?;
    let mut seen = HashSet::new();
    let mut picked = Vec::new();
    for r in &rows {
        let key: String = r.get(1);
        if picked.len() < deps.settings.relay_batch && seen.insert(key) {
            picked.push((
                r.get::<_, i64>(0),
                r.get::<_, String>(2),
                r.get::<_, DateTime<Utc>>(3),
            ));
        }
    }
    if picked.is_empty() {
        return Ok(false);
    }
    let mut pending = Vec::with_capacity(picked.len());
    for (id, payload, created) in &picked {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(id.to_string().into())
            .with_timestamp(u64::try_from(created.timestamp()).unwrap_or(0))
            .with_delivery_mode(2);
        let confirm = ch
            .basic_publish(
                deps.settings.out_exchange.as_str().into(),
                "card.update".into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                payload.as_bytes(),
                props,
            )
            .await
            .map_err(RoundError::Broker)?;
        pending.push((*id, *created, confirm));
    }
    let mut done = Vec::with_capacity(pending.len());
    for (id, created, confirm) in pending {
        let confirmation = confirm.await.map_err(RoundError::Broker)?;
        let acked = confirmation.is_ack();
        // A mandatory message nobody could route comes back inside an Ack: a failure too.
        if acked && confirmation.take_message().is_none() {
            done.push(id);
            let age = (Utc::now() - created).num_milliseconds().max(0);
            deps.metrics.outbox_publish.observe(age as f64 / 1000.0);
        } else {
            tracing::warn!(
                id,
                acked,
                "card update not routed or nacked; kept in the outbox"
            );
        }
    }
    conn.execute("DELETE FROM outbox WHERE id = ANY($1)", &[&done])
        .await?;
    Ok(rows.len() >= deps.settings.relay_batch)
}
