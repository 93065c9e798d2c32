//! Dead-lettering bad input: the original message is sealed with the vault key and recorded
//! (for `POST /admin/dead-letters/{id}/replay`), then a copy goes to the DLX with
//! `x-tkm-error-code`/`x-tkm-error` and every card number in its body and headers masked,
//! confirmed by the broker before the original is acked; if either step fails, the original is
//! requeued. Nothing is dropped silently, and no clear card number reaches the dead-letter queue.

use base64::Engine as _;
use deadpool_postgres::Pool;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Channel;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::wire::Rejection;
use crate::crypto::KeyRing;
use crate::db::dead_letters::{self, NewDeadLetter};
use crate::domain::{mask_card_numbers, mask_card_numbers_str};

/// Where dead letters' originals are kept.
pub struct DeadLetterStore<'a> {
    /// The database.
    pub pool: &'a Pool,
    /// The vault key ring that seals them.
    pub ring: &'a KeyRing,
}

/// What is sealed of a dead-lettered message: enough to publish it again as it was.
#[derive(Debug, Serialize, Deserialize)]
pub struct Original {
    /// The body, base64.
    pub body: String,
    /// `message_id`.
    pub message_id: Option<String>,
    /// `timestamp` (seconds).
    pub timestamp: Option<u64>,
    /// `content_type`.
    pub content_type: Option<String>,
}

impl Original {
    fn of(delivery: &Delivery, body: &[u8]) -> Self {
        let p = &delivery.properties;
        Original {
            body: base64::engine::general_purpose::STANDARD.encode(body),
            message_id: p.message_id().as_ref().map(|m| m.to_string()),
            timestamp: *p.timestamp(),
            content_type: p.content_type().as_ref().map(|c| c.to_string()),
        }
    }
}

/// The AAD context of a dead letter's seal.
pub fn seal_context(id: Uuid) -> String {
    format!("dead-letter:{id}")
}

/// Headers with every card number in their text values masked.
fn masked_headers(headers: &FieldTable) -> FieldTable {
    let mut out = FieldTable::default();
    for (name, value) in headers.inner() {
        let value = match value {
            AMQPValue::LongString(s) => {
                AMQPValue::LongString(LongString::from(mask_card_numbers(s.as_bytes())))
            }
            AMQPValue::ShortString(s) => {
                AMQPValue::LongString(LongString::from(mask_card_numbers_str(s.as_str())))
            }
            AMQPValue::ByteArray(b) => AMQPValue::ByteArray(mask_card_numbers(b.as_slice()).into()),
            other => other.clone(),
        };
        out.insert(name.clone(), value);
    }
    out
}

/// Seals and records the original, then publishes the masked copy to the DLX and acks the
/// original (or requeues it when a step fails). Returns whether it reached the dead-letter queue.
pub async fn dead_letter(
    confirm_channel: &Channel,
    store: &DeadLetterStore<'_>,
    exchange: &str,
    queue: &str,
    delivery: &Delivery,
    why: &Rejection,
) -> bool {
    let body = mask_card_numbers(&delivery.data);
    let letter = Letter {
        delivery,
        original: &delivery.data,
        body: &body,
    };
    send(confirm_channel, store, exchange, queue, letter, why).await
}

/// [`dead_letter`] for a message whose body must not travel on at all (a transaction record with
/// a clear PAN): `replacement` stands for it in the sealed original and in the copy.
pub async fn dead_letter_replaced(
    confirm_channel: &Channel,
    store: &DeadLetterStore<'_>,
    exchange: &str,
    queue: &str,
    delivery: &Delivery,
    why: &Rejection,
    replacement: &[u8],
) -> bool {
    let letter = Letter {
        delivery,
        original: replacement,
        body: replacement,
    };
    send(confirm_channel, store, exchange, queue, letter, why).await
}

/// A delivery to dead-letter: what is sealed as its original body, what the copy carries.
struct Letter<'a> {
    delivery: &'a Delivery,
    original: &'a [u8],
    body: &'a [u8],
}

async fn send(
    confirm_channel: &Channel,
    store: &DeadLetterStore<'_>,
    exchange: &str,
    queue: &str,
    letter: Letter<'_>,
    why: &Rejection,
) -> bool {
    let delivery = letter.delivery;
    let id = Uuid::new_v4();
    // The message_id is the producer's identifier, kept as it is (consumers de-duplicate by it).
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string());
    let recorded = async {
        let original = serde_json::to_vec(&Original::of(delivery, letter.original))
            .map_err(|e| anyhow::anyhow!("cannot encode the original: {e}"))?;
        let sealed = store
            .ring
            .seal_blob(&original, &seal_context(id))
            .map_err(|e| anyhow::anyhow!("cannot seal the original: {e}"))?;
        let letter = NewDeadLetter {
            id,
            queue,
            message_id: message_id.as_deref(),
            code: why.code,
            reason: &why.reason,
            sealed: &sealed,
        };
        dead_letters::store(store.pool, &letter, "bridge").await?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = ?e, code = why.code, "cannot record a dead letter; requeueing the message");
        requeue(delivery).await;
        return false;
    }
    let mut headers = masked_headers(&delivery.properties.headers().clone().unwrap_or_default());
    for (name, value) in [
        ("x-tkm-error-code", why.code.to_owned()),
        ("x-tkm-error", why.reason.clone()),
        ("x-tkm-queue", queue.to_owned()),
        ("x-tkm-dead-letter-id", id.to_string()),
    ] {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    let properties = delivery.properties.clone().with_headers(headers);
    let body = letter.body;
    let published = async {
        let confirm = confirm_channel
            .basic_publish(
                exchange.into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                properties,
            )
            .await?
            .await?;
        // A mandatory message nobody could route comes back inside an Ack.
        Ok::<bool, lapin::Error>(confirm.is_ack() && confirm.take_message().is_none())
    }
    .await;
    match published {
        Ok(true) => {
            if let Err(e) = delivery.ack(BasicAckOptions { multiple: false }).await {
                tracing::warn!(error = ?e, "dead-lettered message could not be acked; it will be redelivered");
            }
            true
        }
        outcome => {
            tracing::warn!(
                ?outcome,
                code = why.code,
                "dead-letter publish failed; requeueing the message"
            );
            requeue(delivery).await;
            false
        }
    }
}

async fn requeue(delivery: &Delivery) {
    let _ = delivery
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_masked_and_other_values_kept() {
        let mut h = FieldTable::default();
        h.insert(
            "note".into(),
            AMQPValue::LongString(LongString::from("card 4111111111111111 here")),
        );
        h.insert("count".into(), AMQPValue::LongInt(7));
        let m = masked_headers(&h);
        assert_eq!(
            m.inner().get("note"),
            Some(&AMQPValue::LongString(LongString::from(
                "card 411111… here"
            )))
        );
        assert_eq!(m.inner().get("count"), Some(&AMQPValue::LongInt(7)));
    }
}
