//! The `tkm-transactions` consumer (`messages.md`): each message's records are matched by the
//! TransactionMatcher as one upload named by its `message_id`, and the message is acked only once
//! its outcomes are committed. A message that is not JSON, not records, or too large is
//! dead-lettered; one with a clear PAN in `hpan` too, its body replaced by its SHA-256 first (so
//! the card number reaches neither the dead-letter queue nor the sealed original). While the
//! database is unavailable the message stays unacked and the consumer waits.

use std::sync::Arc;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::{Channel, Connection};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::channels;
use super::consumer::ConsumerDeps;
use super::dead_letter::{dead_letter, dead_letter_replaced, DeadLetterStore};
use super::wire::{Rejection, INVALID_FIELD, NOT_JSON, TOO_LARGE};
use crate::actors::transaction_matcher::queue_feed::{MatchMessage, MessageError, MessageMatched};
use crate::domain::transactions::{parse_message, MessageRefusal};
use crate::domain::Abi;
use crate::files::trnlog::Row;
use crate::retry::{self, Retryable};

/// Most deliveries taken ahead (each is matched on its own, in order).
const PREFETCH: u16 = 16;

/// The longest upload name: a longer `message_id` is replaced by the body's SHA-256.
const MAX_NAME: usize = 64;

/// Consumes `tkm-transactions` until shutdown (`Ok`) or a broker failure (`Err`: the bridge
/// reconnects).
pub async fn run(
    conn: &Connection,
    deps: Arc<ConsumerDeps>,
    mut shutdown: watch::Receiver<bool>,
) -> lapin::Result<()> {
    let queue = deps.settings.transactions_queue.clone();
    let mut consuming = channels::consume(conn, &queue, PREFETCH).await?;
    let confirms = channels::confirming(conn).await?;
    loop {
        let delivery = tokio::select! {
            d = consuming.next() => d?,
            _ = shutdown.changed() => break,
        };
        if !process(&deps, &queue, &confirms, delivery, &shutdown).await {
            break;
        }
    }
    // What is unacked goes back to the queue when the channel closes.
    consuming.close(Some(confirms)).await;
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Handles one delivery; `false` when shutdown came while it waited (left unacked).
async fn process(
    deps: &ConsumerDeps,
    queue: &str,
    confirms: &Channel,
    delivery: Delivery,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let count = |outcome: &str, reason: &str| {
        deps.metrics
            .messages_consumed
            .with_label_values(&[queue, outcome, reason])
            .inc();
    };
    let sha256 = sha256_hex(&delivery.data);
    // (why, whether the body holds a card number)
    let parsed = if delivery.data.len() > deps.settings.max_transaction_message_bytes {
        let why = Rejection {
            code: TOO_LARGE,
            reason: "message is larger than the limit".into(),
        };
        Err((why, false))
    } else {
        parse_message(&delivery.data).map_err(|refusal| {
            let why = Rejection {
                code: match refusal {
                    MessageRefusal::NotJson => NOT_JSON,
                    MessageRefusal::NotRecords | MessageRefusal::ClearPan => INVALID_FIELD,
                },
                reason: refusal.to_string(),
            };
            (why, refusal == MessageRefusal::ClearPan)
        })
    };
    let message = match parsed {
        Ok(m) => m,
        Err((rejection, card_number)) => {
            tracing::info!(code = rejection.code, reason = %rejection.reason, "dead-lettering a transaction message");
            let store = DeadLetterStore {
                pool: &deps.pool,
                ring: &deps.ring,
            };
            let dlx = deps.settings.dead_letter_exchange.as_str();
            let sent = if card_number {
                // The card number must not travel on: the body becomes its SHA-256.
                let replacement = sha256.as_bytes();
                dead_letter_replaced(
                    confirms,
                    &store,
                    dlx,
                    queue,
                    &delivery,
                    &rejection,
                    replacement,
                )
                .await
            } else {
                dead_letter(confirms, &store, dlx, queue, &delivery, &rejection).await
            };
            if sent {
                count("dead-lettered", rejection.code);
            } else {
                count("requeued", rejection.code);
            }
            return true;
        }
    };
    let name = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .filter(|id| !id.is_empty() && id.len() <= MAX_NAME)
        .unwrap_or_else(|| sha256.clone());
    let abi = message.abi.unwrap_or_else(Abi::unknown);
    let rows: Vec<Row> = message
        .rows
        .into_iter()
        .map(|(line, parsed)| Row {
            line,
            parsed,
            clear: None,
        })
        .collect();
    let bytes = u64::try_from(delivery.data.len()).unwrap_or(u64::MAX);
    let attempt = || async {
        if retry::stopping(shutdown) {
            return Err(None);
        }
        let request = MatchMessage {
            name: name.clone(),
            sha256: sha256.clone(),
            bytes,
            abi: abi.clone(),
            rows: rows.clone(),
        };
        match deps.matcher.send(request).await {
            Ok(Ok(matched)) => Ok(matched),
            Ok(Err(e)) => Err(Some(e)),
            Err(_) => Err(Some(MessageError::Unavailable)),
        }
    };
    let matched = attempt
        .retry(retry::DATABASE_UNAVAILABLE.builder())
        .sleep(retry::UntilShutdown::new(shutdown.clone()))
        .when(|e| e.is_some())
        .notify(|e, wait| {
            if let Some(e) = e {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "transaction message not matched yet; left unacked");
            }
        })
        .await;
    match matched {
        Ok(m) => {
            match m {
                MessageMatched::Matched(_) => count("applied", ""),
                MessageMatched::Redelivered(_) => count("ignored", "DUPLICATE"),
            }
            if let Err(e) = delivery.ack(BasicAckOptions { multiple: false }).await {
                tracing::warn!(error = ?e, "ack failed after commit; the redelivery will find the message matched");
            }
            true
        }
        // Shutdown while waiting: left unacked for redelivery.
        Err(_) => false,
    }
}
