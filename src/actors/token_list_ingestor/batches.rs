//! One batch of a token list's rows: turned into "PAR + token" commands, sent to the card
//! registry (which records the batch as done in the same transaction), accounted by reason, and
//! sent again when it reached the database before the batch ahead of it had committed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use uuid::Uuid;

use super::ingest::{IngestDeps, IngestError};
use crate::actors::card_registry::messages::{ApplyUploadRows, CardError, Outcome};
use crate::crypto::Hasher;
use crate::db::uploads::{self, BatchGate, BatchProgress, DiscardedLine, GateSignals};
use crate::db::DbError;
use crate::domain::token_list::{Discard, Discarded};
use crate::domain::{CardCommand, CardEvent, Source, Sourced, TokenRef};
use crate::files::token_list::Batch;

/// A batch ready to apply: the kept rows as commands and every row's line and fate.
pub(super) struct Prepared {
    commands: Vec<Sourced>,
    /// `(line, None)` for a kept row (its command is the next one), `(line, Some(discard))`.
    fates: Vec<(u64, Option<Discarded>)>,
    after_line: u64,
    last_line: u64,
}

impl Prepared {
    /// The batch placed after line `after_line` (the previous batch's last).
    pub(super) fn after(mut self, after_line: u64) -> Self {
        self.after_line = after_line;
        self
    }
}

/// Checks done, rows hashed: the commands of a batch.
pub(super) fn prepare(batch: Batch, hasher: &Hasher, by: &str) -> Prepared {
    let mut commands = Vec::with_capacity(batch.rows.len());
    let mut fates = Vec::with_capacity(batch.rows.len());
    for (line, row) in batch.rows {
        match row {
            Ok(row) => {
                let htoken = hasher.htoken(&row.token);
                commands.push(Sourced {
                    command: CardCommand::Event(CardEvent::ParTokens {
                        par: row.par,
                        circuit: row.circuit,
                        tokens: vec![TokenRef {
                            htoken,
                            token: Some(row.token),
                            deleted: false,
                        }],
                    }),
                    source: Source::TokenList,
                    by: by.to_owned(),
                    origin: None,
                });
                fates.push((line, None));
            }
            Err(d) => fates.push((line, Some(d))),
        }
    }
    Prepared {
        commands,
        fates,
        after_line: 0,
        last_line: batch.last_line,
    }
}

/// The counters of a batch whose kept rows had `outcomes`, and its discarded lines.
fn account(p: &Prepared, outcomes: &[Outcome]) -> BatchProgress {
    let mut batch = BatchProgress {
        after_line: p.after_line,
        last_line: p.last_line,
        ..BatchProgress::default()
    };
    let mut outcomes = outcomes.iter();
    let discard = |b: &mut BatchProgress, line: u64, reason: Discard, field| {
        *b.discarded.entry(reason.as_str().to_owned()).or_insert(0) += 1;
        b.lines.push(DiscardedLine {
            line,
            reason: reason.as_str(),
            field,
        });
    };
    for (line, fate) in &p.fates {
        batch.rows = batch.rows.saturating_add(1);
        match fate {
            Some(d) => discard(&mut batch, *line, d.reason, d.field),
            None => match outcomes.next() {
                Some(Outcome::ParConflict) => {
                    discard(&mut batch, *line, Discard::ParConflict, None)
                }
                Some(Outcome::AlreadyKnown | Outcome::Duplicate) => {
                    discard(&mut batch, *line, Discard::AlreadyKnown, None)
                }
                Some(Outcome::TokenLimit) => {
                    discard(&mut batch, *line, Discard::ParTokenLimit, None)
                }
                _ => batch.accepted = batch.accepted.saturating_add(1),
            },
        }
    }
    batch
}

type Landing = Pin<Box<dyn Future<Output = Result<BatchProgress, IngestError>>>>;

/// A batch on its way to the database.
pub(super) struct Flight {
    prepared: Arc<Prepared>,
    /// Spawned, so that it runs while the batch ahead of it is awaited (a future that is not
    /// polled would not even send its message).
    landing: actix_rt::task::JoinHandle<Result<BatchProgress, IngestError>>,
}

impl Flight {
    /// Sends the batch behind the one whose signals are `ahead` (if that one is in flight);
    /// answers the batch and the signals for the batch behind it.
    pub(super) fn start(
        deps: &IngestDeps,
        id: Uuid,
        by: &str,
        prepared: Prepared,
        ahead: Option<GateSignals>,
    ) -> (Self, GateSignals) {
        let prepared = Arc::new(prepared);
        let (done, done_rx) = tokio::sync::watch::channel(false);
        let (gate, signals) = BatchGate::new(ahead, done_rx);
        let landing = send(deps, id, by, prepared.clone(), Some(Arc::new(gate)));
        let landing = actix_rt::spawn(async move {
            let landed = landing.await;
            done.send_replace(true);
            landed
        });
        (Flight { prepared, landing }, signals)
    }

    /// The batch's last line.
    pub(super) fn last_line(&self) -> u64 {
        self.prepared.last_line
    }

    /// Waits for the batch; one that reached the database before the batch ahead of it had
    /// committed is sent again (the batch ahead has landed by now).
    pub(super) async fn land(
        self,
        deps: &IngestDeps,
        id: Uuid,
        by: &str,
    ) -> Result<BatchProgress, IngestError> {
        let landed = self.landing.await.unwrap_or(Err(IngestError::Lost));
        match landed {
            Err(e) if out_of_order(&e) => send(deps, id, by, self.prepared, None).await,
            other => other,
        }
    }
}

/// Whether the batch failed only because the batch ahead of it had not committed.
fn out_of_order(e: &IngestError) -> bool {
    match e {
        IngestError::Db(e) => uploads::is_out_of_order(e),
        IngestError::Registry(CardError::Unavailable(e)) => e
            .chain()
            .any(|c| c.downcast_ref::<uploads::OutOfOrder>().is_some()),
        _ => false,
    }
}

fn send(
    deps: &IngestDeps,
    id: Uuid,
    by: &str,
    prepared: Arc<Prepared>,
    gate: Option<Arc<BatchGate>>,
) -> Landing {
    let (pool, registry, by) = (deps.pool.clone(), deps.registry.clone(), by.to_owned());
    Box::pin(async move {
        if prepared.commands.is_empty() {
            // Only discards or comments: no card work, the progress alone.
            let batch = account(&prepared, &[]);
            if let Some(gate) = &gate {
                gate.locked();
                gate.wait_ahead_committed().await?;
            }
            let mut conn = pool.get().await.map_err(DbError::from)?;
            let tx = conn.transaction().await.map_err(DbError::from)?;
            uploads::record_progress(&tx, id, &batch, &by).await?;
            tx.commit().await.map_err(DbError::from)?;
            return Ok(batch);
        }
        let p = prepared.clone();
        let report = registry
            .send(ApplyUploadRows {
                commands: prepared.commands.clone(),
                by,
                upload: id,
                account: Arc::new(move |outcomes: &[Outcome]| account(&p, outcomes)),
                gate,
            })
            .await??;
        Ok(account(&prepared, &report.outcomes))
    })
}
