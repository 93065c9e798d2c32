//! Acquirers' token lists (`api.md` files for acquirers, TK9): the public key they encrypt to,
//! the upload (streamed to disk, checked before anything is stored) and its report.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::errors::ApiError;
use super::identity::Caller;
use super::lists::{Acquirers, ListReaders};
use super::state::{HandlerTimeout, TokenListsHandle};
use super::uploads::{
    accepted, caller_abi, not_found, readable_by, receive_file, Accepted, UploadTarget,
};
use crate::actors::token_list_ingestor::ingest::counts_by_reason;
use crate::actors::token_list_ingestor::{GetPublicKey, GetReport, Register};
use crate::domain::UploadKind;

/// tkm's armored OpenPGP public key: acquirers encrypt their token lists to it.
#[utoipa::path(get, path = "/token-list/public-key", tag = "token-lists",
    responses((status = 200, content_type = "text/plain", description = "the armored public key")))]
pub async fn public_key(
    _caller: Caller<Acquirers>,
    handle: web::Data<TokenListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let key = handle
        .ingestor
        .send(GetPublicKey)
        .timeout(timeout.0)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(key.to_string()))
}

/// Uploads a PGP-encrypted token list: 202 once it is safely on disk; processed in the
/// background. The same file (name and SHA-256) again → 202 with the first upload's id.
#[utoipa::path(post, path = "/token-list", tag = "token-lists",
    responses((status = 202, body = Accepted), (status = 422, body = super::errors::ErrorBody),
              (status = 503, body = super::errors::ErrorBody)))]
pub async fn upload(
    caller: Caller<Acquirers>,
    req: HttpRequest,
    payload: web::Payload,
    handle: web::Data<TokenListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let abi = caller_abi(&caller)?;
    let target = UploadTarget {
        store: &handle.store,
        max_bytes: handle.max_bytes,
        seal_to: None,
    };
    let (stored, name) = receive_file(&req, payload, &target, UploadKind::TokenList, &abi).await?;
    let filename = name.name.clone();
    let registered = handle
        .ingestor
        .send(Register { stored, name })
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?;
    Ok(accepted(caller.name(), "token list", registered, filename))
}

/// A discarded row in a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscardedRow {
    /// Its 1-based physical line.
    pub line: u64,
    /// The reason.
    pub reason: String,
    /// The failing field, for `INVALID_RECORD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An upload's report (`api.md`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenListReport {
    /// The upload id.
    #[schema(value_type = String)]
    pub id: Uuid,
    /// The file name as sent.
    pub filename: String,
    /// `RECEIVED`, `PROCESSING`, `DONE` or `REJECTED`.
    pub state: String,
    /// Data rows read.
    pub rows: u64,
    /// Rows applied.
    pub accepted: u64,
    /// Discarded rows by reason.
    pub discarded: BTreeMap<String, u64>,
    /// The first 1000 discarded rows, by line.
    pub discarded_rows: Vec<DiscardedRow>,
    /// Why the file was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An upload's state and counts; an acquirer sees only its own ABI's uploads (others 404 4001).
#[utoipa::path(get, path = "/token-list/{id}", tag = "token-lists",
    params(("id" = String, Path, description = "the upload id")),
    responses((status = 200, body = TokenListReport), (status = 404, body = super::errors::ErrorBody)))]
pub async fn report(
    caller: Caller<ListReaders>,
    path: web::Path<String>,
    handle: web::Data<TokenListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path.into_inner()).map_err(|_| not_found())?;
    let found = handle
        .ingestor
        .send(GetReport { id })
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?
        .ok_or_else(not_found)?;
    let r = found.record;
    readable_by(&caller, &r.abi)?;
    Ok(HttpResponse::Ok().json(TokenListReport {
        id: r.id,
        filename: r.filename,
        state: r.state.as_str().to_owned(),
        rows: r.progress.rows,
        accepted: r.progress.accepted,
        discarded: counts_by_reason(&r.progress),
        discarded_rows: found
            .discards
            .into_iter()
            .map(|(line, reason, field)| DiscardedRow {
                line,
                reason,
                field,
            })
            .collect(),
        error: r.error,
    }))
}

/// The token-list routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/token-list/public-key", "GET").route(web::get().to(public_key)))
        .service(super::resource("/token-list", "POST").route(web::post().to(upload)))
        .service(super::resource("/token-list/{id}", "GET").route(web::get().to(report)));
}
