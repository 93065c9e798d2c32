//! `/admin/outbox` and `/admin/dead-letters` (role `admin`): the messages that could not go
//! out or come in — parked outbox rows and dead letters — and the retries operators make.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::{AdminDeps, Admins};
use super::errors::ApiError;
use super::identity::Caller;
use crate::db::{outbox, DbError};

fn db_error(e: DbError) -> ApiError {
    match e {
        DbError::Unavailable(e) => ApiError::unavailable(e),
        DbError::Unexpected(e) => ApiError::internal(e),
    }
}

fn not_found(what: &'static str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 4001, what)
}

/// What the queue admin endpoints reach beyond [`AdminDeps`].
#[derive(Clone)]
pub struct QueueAdminDeps {
    /// Wakes the relay after a parked row is retried.
    pub relay_wakeup: Arc<tokio::sync::Notify>,
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
) -> Result<HttpResponse, ApiError> {
    let rows = outbox::parked(&deps.pool, 1000).await.map_err(db_error)?;
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
    queues: web::Data<QueueAdminDeps>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .into_inner()
        .parse()
        .map_err(|_| not_found("no such parked outbox row"))?;
    if !outbox::retry(&deps.pool, id, caller.name())
        .await
        .map_err(db_error)?
    {
        return Err(not_found("no such parked outbox row"));
    }
    tracing::info!(id, by = caller.name(), "parked outbox row retried");
    queues.relay_wakeup.notify_one();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "retried": true })))
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/admin/outbox/parked", "GET").route(web::get().to(list_parked)))
        .service(resource("/admin/outbox/{id}/retry", "POST").route(web::post().to(retry_parked)));
}
