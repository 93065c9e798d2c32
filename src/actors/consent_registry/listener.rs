//! LISTEN for other replicas' consent changes and invalidate the cache; reconnects by itself.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::messages::{FlushCache, Invalidate};
use super::ConsentRegistry;
use crate::db::consent::NOTIFY_CHANNEL;
use crate::db::PgFailure;

/// PostgreSQL errors leave this module in their loggable form (no DETAIL).
fn pg_failure(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::Error::new(PgFailure::of(&e))
}

/// Runs until the actor stops: connect, LISTEN, flush (notifications may have been missed while
/// disconnected), forward every notification; on loss, back off and start again.
pub async fn listen(pg: Arc<tokio_postgres::Config>, addr: Addr<ConsentRegistry>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match listen_once(&pg, &addr).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = ?e, "consent change listener lost its connection; retrying");
            }
        }
        if !addr.connected() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    pg: &tokio_postgres::Config,
    addr: &Addr<ConsentRegistry>,
) -> anyhow::Result<()> {
    let (client, mut connection) = pg.connect(NoTls).await.map_err(pg_failure)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %PgFailure::of(&e), "consent listener connection failed");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await
        .map_err(pg_failure)?;
    addr.send(FlushCache).await?;
    while let Some(payload) = rx.recv().await {
        let Some((tax_code, version)) = payload.rsplit_once(':') else {
            continue;
        };
        let Ok(version) = version.parse::<i64>() else {
            continue;
        };
        addr.send(Invalidate {
            tax_code: tax_code.to_owned(),
            version,
        })
        .await?;
    }
    pump.abort();
    anyhow::bail!("notification stream ended")
}
