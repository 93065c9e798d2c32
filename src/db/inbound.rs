//! The inbound messages already applied (`inbound_message`), by queue and `message_id`: looked up
//! and remembered in the applying transaction, forgotten after the retention.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};

use super::DbError;
use crate::domain::MessageOrigin;

/// Which of `origins` were applied before.
pub async fn applied(
    client: &impl GenericClient,
    origins: &[&MessageOrigin],
) -> Result<HashSet<MessageOrigin>, DbError> {
    if origins.is_empty() {
        return Ok(HashSet::new());
    }
    let queues: Vec<&str> = origins.iter().map(|o| o.queue.as_str()).collect();
    let ids: Vec<&str> = origins.iter().map(|o| o.message_id.as_str()).collect();
    let rows = client
        .query(
            "SELECT m.queue, m.message_id FROM inbound_message m \
             JOIN unnest($1::text[], $2::text[]) AS k(queue, message_id) \
             ON m.queue = k.queue AND m.message_id = k.message_id",
            &[&queues, &ids],
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

/// Remembers `origins` as applied, in the applying transaction.
pub async fn remember(
    client: &impl GenericClient,
    origins: &[&MessageOrigin],
    by: &str,
) -> Result<(), DbError> {
    if origins.is_empty() {
        return Ok(());
    }
    let queues: Vec<&str> = origins.iter().map(|o| o.queue.as_str()).collect();
    let ids: Vec<&str> = origins.iter().map(|o| o.message_id.as_str()).collect();
    client
        .execute(
            "INSERT INTO inbound_message (queue, message_id, created_by, updated_by) \
             SELECT q, m, $3, $3 FROM unnest($1::text[], $2::text[]) AS k(q, m) \
             ON CONFLICT DO NOTHING",
            &[&queues, &ids, &by],
        )
        .await?;
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
