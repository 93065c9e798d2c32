//! Counts the messages the broker dead-letters itself (delivery limit reached) from tkm's audit
//! copy of the dead-letter exchange: they carry `x-death` and none of tkm's own error headers.
//! tkm's own dead letters are counted where they are made.

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::types::AMQPValue;
use lapin::Connection;
use tokio::sync::watch;

use crate::config::RabbitSettings;
use crate::metrics::Metrics;

/// The queue a broker-made dead letter came from (first `x-death` entry), if it is one.
fn broker_dead_lettered(d: &Delivery) -> Option<String> {
    let headers = d.properties.headers().as_ref()?;
    if headers.inner().contains_key("x-tkm-error-code") {
        return None;
    }
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("queue") {
        Some(AMQPValue::LongString(q)) => Some(String::from_utf8_lossy(q.as_bytes()).into_owned()),
        _ => Some("unknown".to_owned()),
    }
}

/// Consumes the audit queue until shutdown (`Ok`) or a broker failure (`Err`).
pub async fn run(
    conn: &Connection,
    settings: &RabbitSettings,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> lapin::Result<()> {
    let mut consuming =
        super::channels::consume(conn, &settings.dead_letter_audit_queue, 256).await?;
    loop {
        let next = tokio::select! {
            d = consuming.consumer.next() => d,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(delivery) = next else {
            return Ok(());
        };
        let delivery = delivery?;
        if let Some(queue) = broker_dead_lettered(&delivery) {
            tracing::warn!(%queue, "the broker dead-lettered a message (delivery limit)");
            metrics
                .messages_consumed
                .with_label_values(&[queue.as_str(), "dead-lettered", "DELIVERY_LIMIT"])
                .inc();
        }
        delivery.ack(BasicAckOptions { multiple: false }).await?;
    }
}
