//! The RabbitMQ topology of `messages.md`, declared idempotently at every (re)connection.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::config::RabbitSettings;

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Arguments of a durable work queue: quorum (with an explicit delivery limit) where configured,
/// and, for inbound queues, dead-lettering to the DLX.
fn queue_args(s: &RabbitSettings, dead_letter: bool) -> FieldTable {
    let mut pairs = Vec::new();
    if s.quorum_queues {
        pairs.push(("x-queue-type", text("quorum")));
        pairs.push((
            "x-delivery-limit",
            AMQPValue::LongLongInt(i64::from(s.delivery_limit)),
        ));
    }
    if let Some(ms) = s.queue_expires_ms {
        pairs.push((
            "x-expires",
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        ));
    }
    if dead_letter {
        pairs.push(("x-dead-letter-exchange", text(&s.dead_letter_exchange)));
        if s.quorum_queues {
            // At-least-once dead-lettering needs reject-publish overflow (RabbitMQ ≥ 3.10).
            pairs.push(("x-dead-letter-strategy", text("at-least-once")));
            pairs.push(("x-overflow", text("reject-publish")));
        }
    }
    args(&pairs)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        nowait: false,
    }
}

/// Declares exchanges, queues and bindings. Re-declaring with other arguments fails with
/// PRECONDITION_FAILED: the error names the queue, and the operator must reconcile it.
pub async fn declare(ch: &Channel, s: &RabbitSettings) -> lapin::Result<()> {
    let exchange_opts = ExchangeDeclareOptions {
        passive: false,
        durable: true,
        auto_delete: false,
        internal: false,
        nowait: false,
    };
    ch.exchange_declare(
        s.out_exchange.as_str().into(),
        ExchangeKind::Topic,
        exchange_opts,
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        s.dead_letter_exchange.as_str().into(),
        ExchangeKind::Fanout,
        exchange_opts,
        FieldTable::default(),
    )
    .await?;
    for q in [
        &s.card_events_queue,
        &s.card_deletions_queue,
        &s.transactions_queue,
    ] {
        ch.queue_declare(q.as_str().into(), durable(), queue_args(s, true))
            .await?;
    }
    for (q, key) in [
        (&s.card_updates_queue, "card.update"),
        (&s.outcomes_queue, "transaction.outcome"),
    ] {
        ch.queue_declare(q.as_str().into(), durable(), queue_args(s, false))
            .await?;
        ch.queue_bind(
            q.as_str().into(),
            s.out_exchange.as_str().into(),
            key.into(),
            QueueBindOptions { nowait: false },
            FieldTable::default(),
        )
        .await?;
    }
    let mut dlq_args = FieldTable::default();
    if s.quorum_queues {
        dlq_args.insert("x-queue-type".into(), text("quorum"));
    }
    if let Some(ms) = s.queue_expires_ms {
        dlq_args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
    ch.queue_declare(s.dead_letter_queue.as_str().into(), durable(), dlq_args)
        .await?;
    ch.queue_bind(
        s.dead_letter_queue.as_str().into(),
        s.dead_letter_exchange.as_str().into(),
        "".into(),
        QueueBindOptions { nowait: false },
        FieldTable::default(),
    )
    .await?;
    // The audit copy is tkm's alone and consumed at once: a small classic queue that drops its
    // oldest copies rather than grow while tkm is away.
    let mut audit_args = FieldTable::default();
    audit_args.insert("x-max-length".into(), AMQPValue::LongLongInt(100_000));
    if let Some(ms) = s.queue_expires_ms {
        audit_args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
    ch.queue_declare(
        s.dead_letter_audit_queue.as_str().into(),
        durable(),
        audit_args,
    )
    .await?;
    ch.queue_bind(
        s.dead_letter_audit_queue.as_str().into(),
        s.dead_letter_exchange.as_str().into(),
        "".into(),
        QueueBindOptions { nowait: false },
        FieldTable::default(),
    )
    .await?;
    Ok(())
}
