//! What the two upload actors (token lists, transaction files) share: registering a stored file
//! (a file sent again is answered with the first upload's id and its copy removed) and the queue
//! of uploads processed one at a time.

use std::collections::VecDeque;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::db::uploads::{self, NewUpload, Registered};
use crate::db::DbError;
use crate::domain::{UploadKind, UploadName};
use crate::files::uploads::{StoredFile, UploadStore};

/// Registers a file the API stored under its random id.
pub async fn register_stored(
    pool: &Pool,
    store: &UploadStore,
    kind: UploadKind,
    stored: &StoredFile,
    name: &UploadName,
) -> Result<Registered, DbError> {
    let new = NewUpload {
        id: stored.id,
        kind,
        abi: name.abi.clone(),
        filename: name.name.clone(),
        sha256: stored.sha256.clone(),
        bytes: stored.bytes,
    };
    let registered = uploads::register(pool, &new, "api").await;
    match &registered {
        // The same file again: the first upload stands, this copy goes.
        Ok(Registered::Existing(_)) | Err(_) => store.remove(new.id),
        Ok(Registered::New(_)) => {}
    }
    registered
}

/// Uploads waiting, and whether one is being processed.
#[derive(Debug, Default)]
pub struct UploadQueue {
    queue: VecDeque<Uuid>,
    busy: bool,
}

impl UploadQueue {
    /// Queues `id` unless it is queued already.
    pub fn push(&mut self, id: Uuid) {
        if !self.queue.contains(&id) {
            self.queue.push_back(id);
        }
    }

    /// The next upload to process, unless one is being processed (it is then marked busy).
    pub fn start_next(&mut self) -> Option<Uuid> {
        if self.busy {
            return None;
        }
        let id = self.queue.pop_front()?;
        self.busy = true;
        Some(id)
    }

    /// The upload being processed ended.
    pub fn done(&mut self) {
        self.busy = false;
    }

    /// Uploads queued or being processed.
    pub fn len(&self) -> usize {
        self.queue.len() + usize::from(self.busy)
    }

    /// Nothing queued or being processed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Wait before resuming an upload whose processing failed for a passing cause (or before asking
/// again for the unfinished ones while the database is away).
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// An actor processing the uploads of one kind from an [`UploadQueue`].
pub trait UploadWorker: Actor<Context = Context<Self>> {
    /// The uploads it processes.
    const KIND: UploadKind;
    /// Its database.
    fn pool(&self) -> Pool;
    /// Queues an upload and starts the next one when idle.
    fn enqueue(&mut self, id: Uuid, ctx: &mut Context<Self>);
}

/// Queues the uploads of `A::KIND` an earlier process left unfinished (asked again every
/// [`RETRY_AFTER`] while the database is away).
pub fn resume_unfinished<A: UploadWorker>(act: &mut A, ctx: &mut Context<A>) {
    let pool = act.pool();
    let work = async move { uploads::unfinished(&pool, A::KIND).await };
    ctx.spawn(work.into_actor(act).map(|found, act, ctx| match found {
        Ok(ids) => {
            if !ids.is_empty() {
                tracing::info!(uploads = ids.len(), kind = ?A::KIND, "resuming unfinished uploads");
            }
            for id in ids {
                act.enqueue(id, ctx);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, kind = ?A::KIND, "cannot read unfinished uploads; trying again");
            ctx.run_later(RETRY_AFTER, |act, ctx| resume_unfinished(act, ctx));
        }
    }));
}
