//! TokenListIngestor: the acquirers' token lists (`files.md` Token list, TK9). It hands out the
//! public key acquirers encrypt to, registers uploads stored by the API (a file sent again is
//! answered with the first one's id), processes them one at a time and resumes unfinished ones
//! after a restart.

mod batches;
pub mod ingest;

use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised,
    WrapFuture,
};
use uuid::Uuid;

use crate::actors::upload_queue::{
    register_stored, resume_unfinished, UploadQueue, UploadWorker, RETRY_AFTER,
};
use crate::db::uploads::{self, Registered, UploadRecord};
use crate::db::DbError;
use crate::domain::{UploadKind, UploadName};
use crate::files::uploads::StoredFile;
use ingest::{Ended, IngestDeps};

/// Request: tkm's armored public key for acquirers' files.
#[derive(Debug, Message)]
#[rtype(result = "Arc<str>")]
pub struct GetPublicKey;

/// Request: register a token list stored under its random id and queue it; answers the id
/// the client gets (the first upload's when the same file was sent before).
#[derive(Debug, Message)]
#[rtype(result = "Result<Registered, DbError>")]
pub struct Register {
    /// The file on disk.
    pub stored: StoredFile,
    /// Its validated name.
    pub name: UploadName,
}

/// Request: an upload's report (`None`: unknown).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<UploadReport>, DbError>")]
pub struct GetReport {
    /// The upload.
    pub id: Uuid,
}

/// An upload with its first discarded lines.
#[derive(Debug, Clone)]
pub struct UploadReport {
    /// The record.
    pub record: UploadRecord,
    /// The first [`REPORTED_DISCARDS`] discarded lines: `(line, reason, field)`.
    pub discards: Vec<(u64, String, Option<String>)>,
}

/// Discarded lines listed in a report (the counts cover all of them).
pub const REPORTED_DISCARDS: i64 = 1000;

/// The actor.
pub struct TokenListIngestor {
    public_key: Arc<str>,
    deps: IngestDeps,
    queue: UploadQueue,
}

impl TokenListIngestor {
    /// The name in status reports.
    pub const NAME: &'static str = "token-list-ingestor";

    /// An ingestor handing out `public_key` (armored, checked at start-up to be the public
    /// half of tkm's secret key) and processing uploads with `deps`.
    pub fn new(public_key: Arc<str>, deps: IngestDeps) -> Self {
        TokenListIngestor {
            public_key,
            deps,
            queue: UploadQueue::default(),
        }
    }

    fn enqueue(&mut self, id: Uuid, ctx: &mut Context<Self>) {
        self.queue.push(id);
        self.next(ctx);
    }

    /// Starts the next queued upload unless one is being processed.
    fn next(&mut self, ctx: &mut Context<Self>) {
        let Some(id) = self.queue.start_next() else {
            return;
        };
        let deps = self.deps.clone();
        let work = async move { ingest::ingest(&deps, id, Arc::new(|_, _| {})).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            act.queue.done();
            match result {
                Ok(Ended::Finished(r)) => tracing::info!(
                    upload = %id,
                    state = r.state.as_str(),
                    rows = r.progress.rows,
                    accepted = r.progress.accepted,
                    "token list processed"
                ),
                Ok(Ended::Busy) => tracing::info!(upload = %id, "token list processed elsewhere"),
                Ok(Ended::Unknown) => tracing::warn!(upload = %id, "no such token list"),
                Err(e) => {
                    tracing::warn!(upload = %id, error = %e, "token list processing interrupted; resuming later");
                    ctx.run_later(RETRY_AFTER, move |act, ctx| act.enqueue(id, ctx));
                }
            }
            act.next(ctx);
        }));
    }
}

impl UploadWorker for TokenListIngestor {
    const KIND: UploadKind = UploadKind::TokenList;

    fn pool(&self) -> deadpool_postgres::Pool {
        self.deps.pool.clone()
    }

    fn enqueue(&mut self, id: Uuid, ctx: &mut Context<Self>) {
        TokenListIngestor::enqueue(self, id, ctx);
    }
}

impl Actor for TokenListIngestor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.queue.done();
        resume_unfinished(self, ctx);
    }
}

impl Supervised for TokenListIngestor {}

impl Handler<GetPublicKey> for TokenListIngestor {
    type Result = actix::MessageResult<GetPublicKey>;

    fn handle(&mut self, _: GetPublicKey, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.public_key.clone())
    }
}

impl Handler<Register> for TokenListIngestor {
    type Result = actix::ResponseActFuture<Self, Result<Registered, DbError>>;

    fn handle(&mut self, msg: Register, _: &mut Self::Context) -> Self::Result {
        let (pool, store) = (self.deps.pool.clone(), self.deps.store.clone());
        let work = async move {
            register_stored(&pool, &store, UploadKind::TokenList, &msg.stored, &msg.name).await
        };
        Box::pin(work.into_actor(self).map(|registered, act, ctx| {
            if let Ok(Registered::New(id)) = &registered {
                act.enqueue(*id, ctx);
            }
            registered
        }))
    }
}

impl Handler<GetReport> for TokenListIngestor {
    type Result = ResponseFuture<Result<Option<UploadReport>, DbError>>;

    fn handle(&mut self, msg: GetReport, _: &mut Self::Context) -> Self::Result {
        let pool = self.deps.pool.clone();
        Box::pin(async move {
            let Some(record) = uploads::get(&pool, msg.id).await? else {
                return Ok(None);
            };
            if record.kind != UploadKind::TokenList {
                return Ok(None);
            }
            let discards = uploads::discards(&pool, msg.id, REPORTED_DISCARDS).await?;
            Ok(Some(UploadReport { record, discards }))
        })
    }
}

impl Handler<crate::actors::Ping> for TokenListIngestor {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: 16,
            in_flight: self.queue.len(),
        })
    }
}
