//! TransactionMatcher (`matching.md`, TK11): registers transaction files stored by the API (a
//! file sent again is answered with the first one's id), matches them one at a time against the
//! enrolment snapshot, resumes unfinished ones after a restart, and answers reports, outcome
//! pages and the award periods.

pub mod explain;
pub mod instruments;
pub mod judge;
pub mod learn;
#[cfg(test)]
mod learn_tests;
pub mod queue_feed;
pub mod run;

use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised,
    WrapFuture,
};
use uuid::Uuid;

use crate::actors::upload_queue::{
    register_stored, resume_unfinished, UploadQueue, UploadWorker, RETRY_AFTER,
};
use crate::db::transactions::periods::{self, AddPeriodError};
use crate::db::transactions::reads::{self, StoredOutcome};
use crate::db::uploads::{self, Registered, UploadRecord};
use crate::db::DbError;
use crate::domain::matching::AwardPeriod;
use crate::domain::{UploadKind, UploadName};
use crate::files::uploads::{StoredFile, UploadStore};
use queue_feed::{MessageError, MessageMatched, PendingMessages};
use run::{match_file, Ended, MatchDeps, RowSource};

/// Request: register a transaction file stored under its random id and queue it; answers the
/// id the client gets (the first upload's when the same file was sent before).
#[derive(Debug, Message)]
#[rtype(result = "Result<Registered, DbError>")]
pub struct RegisterFile {
    /// The file on disk.
    pub stored: StoredFile,
    /// Its validated name.
    pub name: UploadName,
}

/// Request: a file's report (`None`: unknown).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<FileReport>, DbError>")]
pub struct GetFileReport {
    /// The upload.
    pub id: Uuid,
}

/// A file with its outcome counts.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The upload.
    pub record: UploadRecord,
    /// `(outcome, reason, count)`.
    pub counts: Vec<(String, Option<String>, i64)>,
}

/// Request: the outcomes of a file after `after`, at most `limit` (the CSV stream pages).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<StoredOutcome>, DbError>")]
pub struct GetOutcomes {
    /// The upload.
    pub id: Uuid,
    /// The last line already sent.
    pub after: i64,
    /// Page size.
    pub limit: i64,
}

/// Request: why line `line` of a file got its outcome (`None`: no such file or line).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<(FileReport, explain::Explanation)>, DbError>")]
pub struct Explain {
    /// The upload.
    pub id: Uuid,
    /// The line.
    pub line: i64,
}

/// Request: add an award period.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AddPeriodError>")]
pub struct AddAwardPeriod(pub AwardPeriod);

/// Request: every award period.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<AwardPeriod>, DbError>")]
pub struct ListAwardPeriods;

/// The actor.
pub struct TransactionMatcher {
    deps: MatchDeps,
    store: UploadStore,
    queue: UploadQueue,
    /// `tkm-transactions` messages queued or being matched, with their rows.
    messages: PendingMessages,
}

impl TransactionMatcher {
    /// The name in status reports.
    pub const NAME: &'static str = "transaction-matcher";

    /// A matcher reading stored files from `store`.
    pub fn new(deps: MatchDeps, store: UploadStore) -> Self {
        Self {
            deps,
            store,
            queue: UploadQueue::default(),
            messages: PendingMessages::new(),
        }
    }

    fn enqueue(&mut self, id: Uuid, ctx: &mut Context<Self>) {
        self.queue.push(id);
        self.next(ctx);
    }

    fn next(&mut self, ctx: &mut Context<Self>) {
        let Some(id) = self.queue.start_next() else {
            return;
        };
        let message = self.messages.get(&id).map(|m| m.rows.clone());
        let source = match &message {
            Some(rows) => RowSource::Message(rows.clone()),
            None => RowSource::File(self.store.path(id)),
        };
        let deps = self.deps.clone();
        let work = async move { match_file(&deps, id, source, Arc::new(|_| {})).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            act.queue.done();
            if message.is_some() {
                // A message is retried by its redelivery, never from here.
                queue_feed::answer(&mut act.messages, id, || match &result {
                    Ok(Ended::Finished(_)) => Ok(MessageMatched::Matched(id)),
                    Ok(Ended::Busy) => Err(MessageError::Busy),
                    Ok(Ended::Unknown) => Err(MessageError::Unavailable),
                    Err(e) => Err(MessageError::Interrupted(e.to_string())),
                });
                if let Err(e) = &result {
                    tracing::warn!(upload = %id, error = %e, "transaction message interrupted; left to its redelivery");
                }
                act.next(ctx);
                return;
            }
            match result {
                Ok(Ended::Finished(r)) => {
                    tracing::info!(upload = %id, state = r.state.as_str(), rows = r.progress.rows, "transaction file matched");
                    // Its outcomes are stored: the file itself is not kept.
                    act.store.remove(id);
                }
                Ok(Ended::Busy) => tracing::info!(upload = %id, "transaction file matched elsewhere"),
                Ok(Ended::Unknown) => tracing::warn!(upload = %id, "no such transaction file"),
                Err(e) => {
                    tracing::warn!(upload = %id, error = %e, "transaction matching interrupted; resuming later");
                    ctx.run_later(RETRY_AFTER, move |act, ctx| act.enqueue(id, ctx));
                }
            }
            act.next(ctx);
        }));
    }
}

impl UploadWorker for TransactionMatcher {
    const KIND: UploadKind = UploadKind::Transactions;

    fn pool(&self) -> deadpool_postgres::Pool {
        self.deps.pool.clone()
    }

    fn enqueue(&mut self, id: Uuid, ctx: &mut Context<Self>) {
        TransactionMatcher::enqueue(self, id, ctx);
    }
}

impl Actor for TransactionMatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.queue.done();
        resume_unfinished(self, ctx);
    }
}

impl Supervised for TransactionMatcher {}

impl Handler<RegisterFile> for TransactionMatcher {
    type Result = actix::ResponseActFuture<Self, Result<Registered, DbError>>;

    fn handle(&mut self, msg: RegisterFile, _: &mut Self::Context) -> Self::Result {
        let (pool, store) = (self.deps.pool.clone(), self.store.clone());
        let work = async move {
            register_stored(
                &pool,
                &store,
                UploadKind::Transactions,
                &msg.stored,
                &msg.name,
            )
            .await
        };
        Box::pin(work.into_actor(self).map(|registered, act, ctx| {
            if let Ok(Registered::New(id)) = &registered {
                act.enqueue(*id, ctx);
            }
            registered
        }))
    }
}

impl Handler<GetFileReport> for TransactionMatcher {
    type Result = ResponseFuture<Result<Option<FileReport>, DbError>>;

    fn handle(&mut self, msg: GetFileReport, _: &mut Self::Context) -> Self::Result {
        let pool = self.deps.pool.clone();
        Box::pin(async move {
            let Some(record) = uploads::get(&pool, msg.id).await? else {
                return Ok(None);
            };
            if !matches!(
                record.kind,
                UploadKind::Transactions | UploadKind::TransactionMessage
            ) {
                return Ok(None);
            }
            let counts = reads::counts(&pool, msg.id).await?;
            Ok(Some(FileReport { record, counts }))
        })
    }
}

impl Handler<GetOutcomes> for TransactionMatcher {
    type Result = ResponseFuture<Result<Vec<StoredOutcome>, DbError>>;

    fn handle(&mut self, msg: GetOutcomes, _: &mut Self::Context) -> Self::Result {
        let pool = self.deps.pool.clone();
        Box::pin(async move { reads::outcomes_page(&pool, msg.id, msg.after, msg.limit).await })
    }
}

impl Handler<Explain> for TransactionMatcher {
    type Result = ResponseFuture<Result<Option<(FileReport, explain::Explanation)>, DbError>>;

    fn handle(&mut self, msg: Explain, _: &mut Self::Context) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(async move {
            let Some(record) = uploads::get(&deps.pool, msg.id).await? else {
                return Ok(None);
            };
            if !matches!(
                record.kind,
                UploadKind::Transactions | UploadKind::TransactionMessage
            ) {
                return Ok(None);
            }
            let Ok(abi) = crate::domain::Abi::parse(&record.abi) else {
                return Ok(None);
            };
            // The file's snapshot was taken when its processing started.
            let as_of = record.started_at.unwrap_or_else(chrono::Utc::now);
            let found = explain::explain_line(&deps, &abi, msg.id, msg.line, as_of).await?;
            Ok(found.map(|e| {
                (
                    FileReport {
                        record,
                        counts: Vec::new(),
                    },
                    e,
                )
            }))
        })
    }
}

impl Handler<AddAwardPeriod> for TransactionMatcher {
    type Result = ResponseFuture<Result<(), AddPeriodError>>;

    fn handle(&mut self, msg: AddAwardPeriod, _: &mut Self::Context) -> Self::Result {
        let pool = self.deps.pool.clone();
        Box::pin(async move { periods::add(&pool, &msg.0, "api").await })
    }
}

impl Handler<ListAwardPeriods> for TransactionMatcher {
    type Result = ResponseFuture<Result<Vec<AwardPeriod>, DbError>>;

    fn handle(&mut self, _: ListAwardPeriods, _: &mut Self::Context) -> Self::Result {
        let pool = self.deps.pool.clone();
        Box::pin(async move { periods::list(&pool).await })
    }
}

impl Handler<crate::actors::Ping> for TransactionMatcher {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: 16,
            in_flight: self.queue.len(),
        })
    }
}
