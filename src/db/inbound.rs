//! The inbound messages already applied (`inbound_message`), by queue and `message_id`: claimed
//! in the applying transaction (a redelivery finds its claim), forgotten after the retention.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};

use super::DbError;
use crate::domain::MessageOrigin;

/// Claims `origins` in the applying transaction: answers those not applied before (each
/// once, however often it appears). One statement that reads and writes the same index entries,
/// whatever the table's size.
pub async fn claim(
    client: &impl GenericClient,
    origins: &[&MessageOrigin],
    by: &str,
) -> Result<HashSet<MessageOrigin>, DbError> {
    if origins.is_empty() {
        return Ok(HashSet::new());
    }
    let queues: Vec<&str> = origins.iter().map(|o| o.queue.as_str()).collect();
    let ids: Vec<&str> = origins.iter().map(|o| o.message_id.as_str()).collect();
    let rows = client
        .query(
            "INSERT INTO inbound_message (queue, message_id, created_by, updated_by) \
             SELECT q, m, $3, $3 FROM unnest($1::text[], $2::text[]) AS k(q, m) \
             ON CONFLICT DO NOTHING RETURNING queue, message_id",
            &[&queues, &ids, &by],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(MessageOrigin {
                queue: r.try_get(0)?,
                message_id: r.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)
}

/// Releases claims of messages that were refused (not applied), in the same transaction.
pub async fn release(
    client: &impl GenericClient,
    origins: &[&MessageOrigin],
) -> Result<(), DbError> {
    if origins.is_empty() {
        return Ok(());
    }
    // Rare (a refused message): one index lookup each.
    for o in origins {
        client
            .execute(
                "DELETE FROM inbound_message WHERE queue = $1 AND message_id = $2",
                &[&o.queue, &o.message_id],
            )
            .await?;
    }
    Ok(())
}

/// Forgets the messages applied longer than `retention` ago; returns how many.
pub async fn forget_older_than(pool: &Pool, retention: Duration) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "DELETE FROM inbound_message WHERE created_at < now() - make_interval(secs => $1)",
            &[&retention.as_secs_f64()],
        )
        .await?)
}
