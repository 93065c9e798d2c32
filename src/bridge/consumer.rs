//! Consumers of the inbound card queues: deliveries are batched, decoded (PGP on the blocking
//! pool), applied by the CardRegistry in one transaction, and acked only after it committed.
//! Bad input is dead-lettered; while the database is unavailable the batch stays unacked and the
//! consumer takes nothing more (so redeliveries never burn the broker's delivery limit).

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::{Channel, Connection};
use tokio::sync::watch;

use super::dead_letter::{dead_letter, DeadLetterStore};
use super::wire::{self, Rejection, PAR_CONFLICT, TOO_LARGE, UNDECRYPTABLE};
use crate::actors::card_registry::messages::{ApplyCommands, CardError};
use crate::actors::card_registry::CardRegistry;
use crate::config::RabbitSettings;
use crate::crypto::pgp::{PgpError, PgpKey};
use crate::crypto::Hasher;
use crate::domain::cards::Outcome;
use crate::domain::{CardCommand, MessageOrigin, Source, Sourced};
use crate::metrics::Metrics;
use crate::retry::{self, Retryable};

/// What the consumers need.
pub struct ConsumerDeps {
    /// Names and tuning.
    pub settings: RabbitSettings,
    /// Where commands go.
    pub registry: Addr<CardRegistry>,
    /// tkm's key, for card events.
    pub pgp: PgpKey,
    /// The HPAN hasher.
    pub hasher: Hasher,
    /// Counters.
    pub metrics: Metrics,
    /// Where dead letters' originals are recorded.
    pub pool: deadpool_postgres::Pool,
    /// Seals dead letters' originals.
    pub ring: Arc<crate::crypto::KeyRing>,
    /// Matches `tkm-transactions` messages.
    pub matcher: Addr<crate::actors::transaction_matcher::TransactionMatcher>,
}

/// Which inbound queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// `tkm-read-token-par-pan`: PGP-encrypted card events.
    CardEvents,
    /// `tkm-delete-card`: plain JSON deletions.
    CardDeletions,
}

impl Inbound {
    fn queue(self, s: &RabbitSettings) -> &str {
        match self {
            Inbound::CardEvents => &s.card_events_queue,
            Inbound::CardDeletions => &s.card_deletions_queue,
        }
    }
}

/// Consumes one queue until shutdown (`Ok`) or a broker failure (`Err`: the bridge reconnects).
pub async fn run(
    conn: &Connection,
    deps: Arc<ConsumerDeps>,
    inbound: Inbound,
    mut shutdown: watch::Receiver<bool>,
) -> lapin::Result<()> {
    let s = &deps.settings;
    let queue = inbound.queue(s).to_owned();
    // Manual acknowledgements: acked after the database commit.
    let mut consuming = super::channels::consume(conn, &queue, s.prefetch).await?;
    let confirms = super::channels::confirming(conn).await?;
    // Two stages joined by a one-slot channel: the next batch is received and decoded while the
    // current one is applied and acknowledged, in order.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Decoded>(1);
    let receiving = {
        let (deps, mut shutdown) = (deps.clone(), shutdown.clone());
        let consumer = &mut consuming.consumer;
        async move {
            let wait = Duration::from_millis(deps.settings.batch_wait_ms);
            loop {
                let first = tokio::select! {
                    d = consumer.next() => d,
                    _ = shutdown.changed() => return Ok(()),
                };
                let Some(first) = first else {
                    return Err(lapin::Error::from(
                        lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                    ));
                };
                let mut batch = vec![first?];
                let deadline = tokio::time::Instant::now() + wait;
                while batch.len() < deps.settings.batch_size {
                    match tokio::time::timeout_at(deadline, consumer.next()).await {
                        Ok(Some(d)) => batch.push(d?),
                        Ok(None) | Err(_) => break,
                    }
                }
                let decoded = decode(&deps, inbound, &batch).await;
                if ready_tx.send((batch, decoded)).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    let applying = async {
        while let Some((batch, decoded)) = ready_rx.recv().await {
            process(
                &deps,
                inbound,
                &queue,
                &confirms,
                batch,
                decoded,
                &mut shutdown,
            )
            .await;
        }
        Ok::<(), lapin::Error>(())
    };
    tokio::try_join!(receiving, applying)?;
    // Stop taking deliveries; what is unacked goes back to the queue when the channel closes.
    consuming.close(Some(confirms)).await;
    Ok(())
}

fn decode_event(
    body: &[u8],
    pgp: &PgpKey,
    hasher: &Hasher,
    max: usize,
) -> Result<CardCommand, Rejection> {
    if body.len() > max {
        return Err(Rejection {
            code: TOO_LARGE,
            reason: "message is larger than the limit".into(),
        });
    }
    let plain = pgp.decrypt(body, max).map_err(|e| match e {
        PgpError::TooLarge => Rejection {
            code: TOO_LARGE,
            reason: "decompressed message is larger than the limit".into(),
        },
        _ => Rejection {
            code: UNDECRYPTABLE,
            reason: "message cannot be decrypted with tkm's key".into(),
        },
    })?;
    wire::card_event(&plain, hasher).map(CardCommand::Event)
}

/// A received batch and what each delivery decoded to.
type Decoded = (Vec<Delivery>, Vec<Result<CardCommand, Rejection>>);

async fn decode(
    deps: &Arc<ConsumerDeps>,
    inbound: Inbound,
    batch: &[Delivery],
) -> Vec<Result<CardCommand, Rejection>> {
    match inbound {
        Inbound::CardDeletions => batch
            .iter()
            .map(|d| wire::deletion(&d.data).map(CardCommand::Delete))
            .collect(),
        Inbound::CardEvents => {
            // PGP is CPU work: never on the bridge's arbiter, and spread over the cores.
            let parts = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(batch.len().div_ceil(16))
                .max(1);
            let per = batch.len().div_ceil(parts);
            let jobs: Vec<_> = batch
                .chunks(per)
                .map(|chunk| {
                    let bodies: Vec<Vec<u8>> = chunk.iter().map(|d| d.data.clone()).collect();
                    let deps = deps.clone();
                    tokio::task::spawn_blocking(move || {
                        let max = deps.settings.max_message_bytes;
                        bodies
                            .iter()
                            .map(|b| decode_event(b, &deps.pgp, &deps.hasher, max))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(batch.len());
            for (job, chunk) in futures_util::future::join_all(jobs)
                .await
                .into_iter()
                .zip(batch.chunks(per))
            {
                match job {
                    Ok(decoded) => out.extend(decoded),
                    Err(_) => out.extend(chunk.iter().map(|_| {
                        Err(Rejection {
                            code: UNDECRYPTABLE,
                            reason: "decoder failed".into(),
                        })
                    })),
                }
            }
            out
        }
    }
}

/// Applies the decoded commands, waiting (unacked, [`retry::DATABASE_UNAVAILABLE`]) while the
/// database is unavailable. `None`: shutdown while waiting. Commands that fail unexpectedly are
/// retried one by one.
async fn apply(
    deps: &ConsumerDeps,
    commands: Vec<Sourced>,
    shutdown: &watch::Receiver<bool>,
) -> Option<Vec<Result<Outcome, ()>>> {
    let tries = std::cell::Cell::new(0u32);
    let attempt = || async {
        tries.set(tries.get().saturating_add(1));
        // The first try always runs (the batch was received); a later one not after shutdown.
        if tries.get() > 1 && retry::stopping(shutdown) {
            return Err(Paused::Shutdown);
        }
        let msg = ApplyCommands {
            commands: commands.clone(),
            by: "bridge".into(),
        };
        match deps.registry.send(msg).await {
            Ok(Ok(report)) => Ok(report.outcomes.into_iter().map(Ok).collect()),
            Ok(Err(CardError::Unexpected(e))) => {
                tracing::error!(error = ?e, commands = commands.len(), "card batch failed; applying one by one");
                // `None`: the database became unavailable meanwhile; pause like below.
                one_by_one(deps, &commands).await.ok_or(Paused::Unavailable)
            }
            Ok(Err(CardError::Unavailable(e))) => {
                tracing::warn!(error = ?e, "database unavailable: consumer paused with the batch unacked");
                Err(Paused::Unavailable)
            }
            Ok(Err(CardError::Overloaded)) => {
                tracing::debug!("card registry overloaded: consumer paused with the batch unacked");
                Err(Paused::Unavailable)
            }
            Err(e) => {
                tracing::warn!(error = %e, "card registry unavailable: consumer paused with the batch unacked");
                Err(Paused::Unavailable)
            }
        }
    };
    attempt
        .retry(retry::DATABASE_UNAVAILABLE.builder())
        .sleep(retry::UntilShutdown::new(shutdown.clone()))
        .when(|p| *p == Paused::Unavailable)
        .await
        .ok()
}

/// Why [`apply`] has not applied a batch yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paused {
    /// The database or the card registry is unavailable: wait and try again.
    Unavailable,
    /// Shutdown came while waiting: leave the batch unacked.
    Shutdown,
}

/// Applies commands one by one after a batch failed, so one bad command cannot hold back the
/// others. `None` when the database is unavailable (the batch stays unacked and is retried).
async fn one_by_one(deps: &ConsumerDeps, commands: &[Sourced]) -> Option<Vec<Result<Outcome, ()>>> {
    let mut out = Vec::with_capacity(commands.len());
    for c in commands {
        let one = ApplyCommands {
            commands: vec![c.clone()],
            by: "bridge".into(),
        };
        out.push(match deps.registry.send(one).await {
            Ok(Ok(mut r)) => r.outcomes.pop().ok_or(()),
            Ok(Err(CardError::Unexpected(_))) => Err(()),
            Ok(Err(CardError::Unavailable(_) | CardError::Overloaded)) | Err(_) => return None,
        });
    }
    Some(out)
}

/// A decoded command with its origin: the message's queue and `message_id` (a redelivery is
/// recognised), and its `timestamp` property standing in for a body without one.
fn sourced(queue: &str, delivery: &Delivery, command: CardCommand) -> Sourced {
    let p = &delivery.properties;
    let command = match p
        .timestamp()
        .and_then(|secs| i64::try_from(secs).ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
    {
        Some(at) => command.with_default_timestamp(at),
        None => command,
    };
    Sourced {
        command,
        source: Source::Issuer,
        by: "bridge".into(),
        origin: p
            .message_id()
            .as_ref()
            .map(|id| id.as_str())
            .filter(|id| !id.is_empty())
            .map(|id| MessageOrigin {
                queue: queue.to_owned(),
                message_id: id.to_owned(),
            }),
    }
}

async fn process(
    deps: &Arc<ConsumerDeps>,
    inbound: Inbound,
    queue: &str,
    confirms: &Channel,
    batch: Vec<Delivery>,
    decoded: Vec<Result<CardCommand, Rejection>>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let t0 = std::time::Instant::now();
    let _ = inbound;
    let commands: Vec<Sourced> = batch
        .iter()
        .zip(&decoded)
        .filter_map(|(d, c)| Some((d, c.as_ref().ok()?)))
        .map(|(delivery, c)| sourced(queue, delivery, c.clone()))
        .collect();
    let mut outcomes = if commands.is_empty() {
        Vec::new().into_iter()
    } else {
        match apply(deps, commands, shutdown).await {
            Some(o) => o.into_iter(),
            // Shutting down: leave the batch unacked for redelivery.
            None => return,
        }
    };
    let t_apply = t0.elapsed();
    let dlx = deps.settings.dead_letter_exchange.as_str();
    let count = |outcome: &str, reason: &str| {
        deps.metrics
            .messages_consumed
            .with_label_values(&[queue, outcome, reason])
            .inc();
    };
    // Exceptions (dead letters, requeues) are settled one by one first; then one cumulative ack
    // up to the last applied delivery settles the rest of the batch.
    let mut last_ack: Option<&Delivery> = None;
    for (delivery, decoded) in batch.iter().zip(decoded) {
        let result = match decoded {
            Err(rejection) => Err(rejection),
            Ok(_) => match outcomes.next() {
                Some(Ok(Outcome::ParConflict)) => Err(Rejection {
                    code: PAR_CONFLICT,
                    reason: "the PAR differs from the one a trusted source gave".into(),
                }),
                Some(Ok(o)) => Ok(o),
                Some(Err(())) | None => {
                    count("requeued", "ERROR");
                    let _ = delivery
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        })
                        .await;
                    continue;
                }
            },
        };
        match result {
            Ok(outcome) => {
                let (kind, reason) = match outcome {
                    Outcome::Applied => ("applied", ""),
                    Outcome::Duplicate => ("ignored", "DUPLICATE"),
                    Outcome::Stale => ("ignored", "STALE"),
                    Outcome::UnknownLink => ("ignored", "UNKNOWN_LINK"),
                    Outcome::NoLiveLink => ("ignored", "NO_LIVE_LINK"),
                    Outcome::ParConflict => ("ignored", PAR_CONFLICT),
                    Outcome::AlreadyKnown => ("ignored", "ALREADY_KNOWN"),
                    Outcome::TokenLimit => ("ignored", "PAR_TOKEN_LIMIT"),
                };
                count(kind, reason);
                last_ack = Some(delivery);
            }
            Err(rejection) => {
                tracing::info!(code = rejection.code, reason = %rejection.reason, "dead-lettering a message");
                let store = DeadLetterStore {
                    pool: &deps.pool,
                    ring: &deps.ring,
                };
                if dead_letter(confirms, &store, dlx, queue, delivery, &rejection).await {
                    count("dead-lettered", rejection.code);
                } else {
                    count("requeued", rejection.code);
                }
            }
        }
    }
    if let Some(d) = last_ack {
        if let Err(e) = d.ack(BasicAckOptions { multiple: true }).await {
            tracing::warn!(error = ?e, "ack failed after commit; the batch will be redelivered and applied again (idempotent)");
        }
    }
    tracing::debug!(
        queue,
        messages = batch.len(),
        apply_ms = t_apply.as_millis() as u64,
        ack_ms = (t0.elapsed() - t_apply).as_millis() as u64,
        "batch done"
    );
}
