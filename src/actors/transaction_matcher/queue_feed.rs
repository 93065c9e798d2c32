//! The `tkm-transactions` feed (`messages.md`): a message's records are matched as an upload of
//! kind `transaction-message` named by its `message_id`, through the same queue and passes as a
//! file (one upload at a time, so a message never races a file for the same payments); the
//! bridge acks once the answer says its outcomes are committed. A redelivered message finds its
//! finished upload and is answered at once, nothing decided twice.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Context, Handler, Message, MessageResult, ResponseFuture};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::TransactionMatcher;
use crate::db::uploads::{self, NewUpload, Registered, UploadState};
use crate::db::DbError;
use crate::domain::{Abi, UploadKind};
use crate::files::trnlog::Row;

/// Who registers messages (audit columns).
const BY: &str = "bridge";

/// Request (from the bridge): match one message's records; answers once they are decided and
/// committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<MessageMatched, MessageError>")]
pub struct MatchMessage {
    /// The upload's name: the `message_id` (or the body's SHA-256 when it has none, or one longer
    /// than a name may be).
    pub name: String,
    /// Lowercase hex SHA-256 of the body.
    pub sha256: String,
    /// The body's size.
    pub bytes: u64,
    /// The message's acquirer (`messages.md`: its first element's valid `acquirerCode`).
    pub abi: Abi,
    /// Every element's record or first bad field, lines from 1.
    pub rows: Vec<Row>,
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageMatched {
    /// Matched now: its upload.
    Matched(Uuid),
    /// Matched before (a redelivery): its upload.
    Redelivered(Uuid),
}

/// Why a message is not matched yet (the bridge leaves it unacked and tries again).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The run stopped before the message's end.
    #[error("matching interrupted: {0}")]
    Interrupted(String),
    /// Another process is matching it.
    #[error("another process is matching this message")]
    Busy,
    /// The matcher is not running.
    #[error("transaction matcher unavailable")]
    Unavailable,
}

/// What a queued message waits with.
pub(super) struct Pending {
    /// Its rows, until its run ends.
    pub(super) rows: Arc<Vec<Row>>,
    /// The bridge's answer channels (a redelivery during the run adds one).
    waiters: Vec<oneshot::Sender<Result<MessageMatched, MessageError>>>,
}

/// The messages queued or being matched, by upload.
pub(super) type PendingMessages = HashMap<Uuid, Pending>;

/// Answers every waiter of message `id` (its run ended).
pub(super) fn answer(
    pending: &mut PendingMessages,
    id: Uuid,
    result: impl Fn() -> Result<MessageMatched, MessageError>,
) {
    if let Some(p) = pending.remove(&id) {
        for w in p.waiters {
            let _ = w.send(result());
        }
    }
}

/// Internal: queue a registered, unfinished message with its rows.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<Result<MessageMatched, MessageError>>")]
struct QueueMessage {
    id: Uuid,
    rows: Vec<Row>,
}

impl Handler<QueueMessage> for TransactionMatcher {
    type Result = MessageResult<QueueMessage>;

    fn handle(&mut self, msg: QueueMessage, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let rows = msg.rows;
        self.messages
            .entry(msg.id)
            .or_insert_with(|| Pending {
                rows: Arc::new(rows),
                waiters: Vec::new(),
            })
            .waiters
            .push(tx);
        self.enqueue(msg.id, ctx);
        MessageResult(rx)
    }
}

impl Handler<MatchMessage> for TransactionMatcher {
    type Result = ResponseFuture<Result<MessageMatched, MessageError>>;

    fn handle(&mut self, msg: MatchMessage, ctx: &mut Context<Self>) -> Self::Result {
        let pool = self.deps.pool.clone();
        let me = actix::AsyncContext::address(ctx);
        Box::pin(async move {
            let new = NewUpload {
                id: Uuid::new_v4(),
                kind: UploadKind::TransactionMessage,
                abi: msg.abi,
                filename: msg.name,
                sha256: msg.sha256,
                bytes: msg.bytes,
            };
            let id = match uploads::register(&pool, &new, BY).await? {
                Registered::New(id) | Registered::Existing(id) => id,
            };
            let finished = uploads::get(&pool, id)
                .await?
                .is_some_and(|r| matches!(r.state, UploadState::Done | UploadState::Rejected));
            if finished {
                return Ok(MessageMatched::Redelivered(id));
            }
            let answer = me
                .send(QueueMessage { id, rows: msg.rows })
                .await
                .map_err(|_| MessageError::Unavailable)?;
            answer.await.map_err(|_| MessageError::Unavailable)?
        })
    }
}
