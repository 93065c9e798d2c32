//! `/admin/outbox` and `/admin/dead-letters` (role `admin`): the messages that could not go
//! out or come in — parked outbox rows and dead letters — and the retries operators make.

use actix_web::{web, HttpResponse};
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::Admins;
use super::errors::ApiError;
use super::identity::Caller;
use super::state::{AdminDeps, HandlerTimeout};
use crate::actors::broker::{ListDeadLetters, ListParked, ReplayDeadLetter, RetryParked};

fn not_found(what: &'static str) -> ApiError {
    ApiError::new(actix_web::http::StatusCode::NOT_FOUND, 4001, what)
}

/// A parked outbox row (no payload: it holds card hashes and a tax code).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParkedView {
    /// The row id (the `message_id` it is published with).
    pub id: i64,
    /// `card.update`, `consent.changed`, …
    pub kind: String,
    /// Attempts made.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// ISO-8601.
    pub parked_at: String,
    /// ISO-8601: when the change that caused it committed.
    pub created_at: String,
}

/// The parked outbox rows, oldest first (at most 1 000).
#[utoipa::path(get, path = "/admin/outbox/parked", tag = "admin",
    responses((status = 200, description = "parked rows", body = [ParkedView])))]
pub async fn list_parked(
    _caller: Caller<Admins>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let rows = deps
        .broker
        .parked
        .send(ListParked { limit: 1000 })
        .timeout(timeout.0)
        .await??;
    let views: Vec<ParkedView> = rows
        .into_iter()
        .map(|p| ParkedView {
            id: p.id,
            kind: p.kind,
            attempts: p.attempts,
            last_error: p.last_error,
            parked_at: p.parked_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            created_at: p.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Sends a parked outbox row again (its attempts start over); 404 4001 when no such parked row.
#[utoipa::path(post, path = "/admin/outbox/{id}/retry", tag = "admin",
    params(("id" = i64, Path, description = "the parked row")),
    responses((status = 202, description = "queued for the relay"),
              (status = 404, description = "no such parked row")))]
pub async fn retry_parked(
    caller: Caller<Admins>,
    path: web::Path<String>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .into_inner()
        .parse()
        .map_err(|_| not_found("no such parked outbox row"))?;
    deps.broker
        .retry
        .send(RetryParked {
            id,
            by: caller.name().to_owned(),
        })
        .timeout(timeout.0)
        .await??;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "retried": true })))
}

/// A dead letter (its original is sealed; only its reason is shown).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    /// Its id (the `x-tkm-dead-letter-id` header of the copy in the dead-letter queue).
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    /// Its `message_id`.
    pub message_id: Option<String>,
    /// `UNDECRYPTABLE`, `INVALID_FIELD`, …
    pub code: String,
    /// What was wrong (names a field, never a value).
    pub reason: String,
    /// ISO-8601.
    pub created_at: String,
    /// Replays so far.
    pub replays: i32,
    /// ISO-8601 of the last replay.
    pub replayed_at: Option<String>,
}

/// The newest dead letters (at most 1 000).
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin",
    responses((status = 200, description = "dead letters, newest first", body = [DeadLetterView])))]
pub async fn list_dead_letters(
    _caller: Caller<Admins>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let letters = deps
        .broker
        .dead_letters
        .send(ListDeadLetters { limit: 1000 })
        .timeout(timeout.0)
        .await??;
    let iso = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let views: Vec<DeadLetterView> = letters
        .into_iter()
        .map(|l| DeadLetterView {
            id: l.id.to_string(),
            queue: l.queue,
            message_id: l.message_id,
            code: l.code,
            reason: l.reason,
            created_at: iso(l.created_at),
            replays: l.replays,
            replayed_at: l.replayed_at.map(iso),
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Publishes a dead letter's original again to its queue (once its cause is fixed); 404 4001
/// for an unknown one, 503 9503 while the broker is unreachable.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/replay", tag = "admin",
    params(("id" = String, Path, description = "the dead letter")),
    responses((status = 202, description = "published to its queue"),
              (status = 404, description = "no such dead letter")))]
pub async fn replay_dead_letter(
    caller: Caller<Admins>,
    path: web::Path<String>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let id =
        uuid::Uuid::parse_str(&path.into_inner()).map_err(|_| not_found("no such dead letter"))?;
    deps.broker
        .replay
        .send(ReplayDeadLetter {
            id,
            by: caller.name().to_owned(),
        })
        .timeout(timeout.0)
        .await??;
    Ok(
        HttpResponse::Accepted()
            .json(serde_json::json!({ "id": id.to_string(), "replayed": true })),
    )
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/admin/outbox/parked", "GET").route(web::get().to(list_parked)))
        .service(resource("/admin/outbox/{id}/retry", "POST").route(web::post().to(retry_parked)))
        .service(resource("/admin/dead-letters", "GET").route(web::get().to(list_dead_letters)))
        .service(
            resource("/admin/dead-letters/{id}/replay", "POST")
                .route(web::post().to(replay_dead_letter)),
        );
}
