//! The channels a consumer works with: its own (prefetch, manual acknowledgements, a unique
//! consumer tag) and, for dead-lettering, one with publisher confirms; and their orderly close.

use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

/// A consumer on its channel.
pub(super) struct Consuming {
    channel: Channel,
    tag: String,
    /// The deliveries.
    pub(super) consumer: Consumer,
}

/// Consumes `queue` with manual acknowledgements (acked once what a delivery caused is
/// committed) and at most `prefetch` deliveries unacked.
pub(super) async fn consume(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
) -> lapin::Result<Consuming> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await?;
    let tag = format!("tkm-{queue}-{}", uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions {
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
            },
            FieldTable::default(),
        )
        .await?;
    Ok(Consuming {
        channel,
        tag,
        consumer,
    })
}

/// A channel whose publishes the broker confirms (dead letters).
pub(super) async fn confirming(conn: &Connection) -> lapin::Result<Channel> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions { nowait: false })
        .await?;
    Ok(channel)
}

impl Consuming {
    /// Stops taking deliveries and closes the channels; what is unacked goes back to the queue.
    pub(super) async fn close(self, confirms: Option<Channel>) {
        let _ = self
            .channel
            .basic_cancel(
                self.tag.as_str().into(),
                BasicCancelOptions { nowait: false },
            )
            .await;
        if let Some(c) = confirms {
            let _ = c.close(200, "tkm shutting down".into()).await;
        }
        let _ = self.channel.close(200, "tkm shutting down".into()).await;
    }

    /// The next delivery; `Err` when the consumer ended (the connection closed).
    pub(super) async fn next(&mut self) -> lapin::Result<Delivery> {
        use futures_util::StreamExt;
        match self.consumer.next().await {
            Some(d) => d,
            None => Err(lapin::Error::from(
                lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
            )),
        }
    }
}
