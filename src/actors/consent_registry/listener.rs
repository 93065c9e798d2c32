//! LISTEN for other replicas' consent changes and invalidate the cache; reconnects by itself.

use std::convert::Infallible;
use std::sync::Arc;

use actix::Addr;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::messages::{FlushCache, Invalidate};
use super::ConsentRegistry;
use crate::db::consent::NOTIFY_CHANNEL;
use crate::db::PgFailure;
use crate::retry::{self, Retryable};

/// PostgreSQL errors leave this module in their loggable form (no DETAIL).
fn pg_failure(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::Error::new(PgFailure::of(&e))
}

/// Runs until the actor stops: connect, LISTEN, flush (notifications may have been missed while
/// disconnected), forward every notification; on loss, back off ([`retry::CONSENT_LISTENER`])
/// and start again.
pub async fn listen(pg: Arc<tokio_postgres::Config>, addr: Addr<ConsentRegistry>) {
    let session = || listen_once(&pg, &addr);
    // A session only ever ends with an error; retried for as long as the registry runs.
    let stopped = session
        .retry(retry::CONSENT_LISTENER.builder())
        .when(|_| addr.connected())
        .notify(|e, wait| {
            tracing::warn!(error = ?e, retry_in_ms = wait.as_millis() as u64, "consent change listener lost its connection; retrying");
        })
        .await;
    let Err(e) = stopped;
    tracing::debug!(error = ?e, "consent change listener stopped with its registry");
}

async fn listen_once(
    pg: &tokio_postgres::Config,
    addr: &Addr<ConsentRegistry>,
) -> anyhow::Result<Infallible> {
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
