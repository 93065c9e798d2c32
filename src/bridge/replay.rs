//! Replaying a dead letter: its sealed original is opened and published again to the queue it
//! came from, as it was (body, `message_id`, `timestamp`, content type), marked
//! `x-tkm-replay-of`; the consumer then applies it like any message (a replay of a message that
//! was applied meanwhile is recognised by its `message_id`).

use base64::Engine as _;
use deadpool_postgres::Pool;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::dead_letter::{seal_context, Original};
use crate::actors::broker::BrokerError;
use crate::config::RabbitSettings;
use crate::crypto::KeyRing;
use crate::db::dead_letters;

/// Publishes dead letter `id` again to its queue; records the replay as `by`.
pub async fn replay(
    settings: &RabbitSettings,
    pool: &Pool,
    ring: &KeyRing,
    id: Uuid,
    by: &str,
) -> Result<(), BrokerError> {
    let letter = dead_letters::get(pool, id)
        .await?
        .ok_or(BrokerError::NotFound)?;
    let plain = ring
        .open_blob(&letter.sealed, &seal_context(id))
        .map_err(|_| BrokerError::Sealed)?;
    let original: Original = serde_json::from_slice(&plain).map_err(|_| BrokerError::Sealed)?;
    let body = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(original.body.as_bytes())
            .map_err(|_| BrokerError::Sealed)?,
    );
    let mut headers = FieldTable::default();
    headers.insert(
        "x-tkm-replay-of".into(),
        AMQPValue::LongString(LongString::from(id.to_string())),
    );
    let mut props = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2);
    if let Some(m) = original.message_id {
        props = props.with_message_id(m.into());
    }
    if let Some(t) = original.timestamp {
        props = props.with_timestamp(t);
    }
    if let Some(c) = original.content_type {
        props = props.with_content_type(c.into());
    }
    let broker = |e: lapin::Error| BrokerError::Broker(e.to_string());
    let conn = Connection::connect(
        settings.url.expose_secret(),
        ConnectionProperties::default().with_connection_name("tkm-replay".into()),
    )
    .await
    .map_err(broker)?;
    let published = async {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions { nowait: false })
            .await?;
        let confirm = ch
            .basic_publish(
                "".into(),
                letter.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &body,
                props,
            )
            .await?
            .await?;
        Ok::<bool, lapin::Error>(confirm.is_ack() && confirm.take_message().is_none())
    }
    .await;
    let _ = conn.close(200, "replayed".into()).await;
    match published.map_err(broker)? {
        true => {}
        false => {
            return Err(BrokerError::Broker(format!(
                "queue {} did not take the message",
                letter.queue
            )))
        }
    }
    dead_letters::replayed(pool, id, by).await?;
    tracing::info!(%id, queue = %letter.queue, by, "dead letter replayed");
    Ok(())
}
