//! Dead-lettering bad input: the original body and properties (same `message_id`) go to the DLX
//! with `x-tkm-error-code`/`x-tkm-error`, confirmed by the broker before the original is acked;
//! if that publish fails, the original is requeued. Nothing is dropped silently.

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, LongString};
use lapin::Channel;

use super::wire::Rejection;

/// Publishes `delivery` to the DLX with the reason, then acks it (or requeues it on failure).
/// Returns whether the message reached the dead-letter queue.
pub async fn dead_letter(
    confirm_channel: &Channel,
    exchange: &str,
    queue: &str,
    delivery: &Delivery,
    why: &Rejection,
) -> bool {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-tkm-error-code".into(),
        AMQPValue::LongString(LongString::from(why.code)),
    );
    headers.insert(
        "x-tkm-error".into(),
        AMQPValue::LongString(LongString::from(why.reason.as_str())),
    );
    headers.insert(
        "x-tkm-queue".into(),
        AMQPValue::LongString(LongString::from(queue)),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    let published = async {
        let confirm = confirm_channel
            .basic_publish(
                exchange.into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &delivery.data,
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
            let _ = delivery
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await;
            false
        }
    }
}
