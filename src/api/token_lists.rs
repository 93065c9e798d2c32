//! Acquirers' token lists (`api.md` files for acquirers, TK9): the public key they encrypt to,
//! the upload (streamed to disk, checked before anything is stored) and its report.

use std::collections::BTreeMap;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::errors::ApiError;
use super::identity::Caller;
use super::lists::{Acquirers, ListReaders};
use super::state::{HandlerTimeout, TokenListsHandle};
use crate::actors::token_list_ingestor::ingest::counts_by_reason;
use crate::actors::token_list_ingestor::{GetPublicKey, GetReport, Register};
use crate::config::Role;
use crate::db::uploads::Registered;
use crate::domain::{UploadKind, UploadName};
use crate::files::uploads::{StoredFile, UploadError};

/// 422 4003: the file is refused before anything is stored.
fn refused(message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, 4003, message)
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 4001, "no such upload")
}

fn stored_error(e: UploadError) -> ApiError {
    match e {
        UploadError::DiskFull => ApiError::unavailable(e),
        UploadError::Io(_) => ApiError::unavailable(e),
        UploadError::TooLarge(_) | UploadError::NotPgp | UploadError::Empty => {
            refused(e.to_string())
        }
    }
}

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

/// The answer to an accepted upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The upload id (the first upload's for a file sent again).
    #[schema(value_type = String)]
    pub id: Uuid,
    /// The file name as sent.
    pub filename: String,
}

/// Receives the multipart field `file` into the store: the name, the ABI and the declared size
/// are checked before a byte is written; a cut-off or refused upload leaves nothing behind.
pub async fn receive_file(
    req: &HttpRequest,
    payload: web::Payload,
    handle: &TokenListsHandle,
    kind: UploadKind,
    abi: &crate::domain::Abi,
) -> Result<(StoredFile, UploadName), ApiError> {
    // The multipart framing adds a few hundred bytes to the file.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > handle.max_bytes.saturating_add(64 * 1024)) {
        return Err(refused(format!(
            "the file is larger than {} bytes",
            handle.max_bytes
        )));
    }
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut received = None;
    let cut = |_| {
        ApiError::validation(
            super::errors::Family::Files,
            "the multipart body could not be read (cut off or malformed)",
        )
    };
    while let Some(mut field) = multipart.try_next().await.map_err(cut)? {
        if field.name() != Some("file") {
            // Other fields are read and ignored.
            while field.try_next().await.map_err(cut)?.is_some() {}
            continue;
        }
        if received.is_some() {
            return Err(refused("one file per upload: the field file appears twice"));
        }
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned)
            .ok_or_else(|| refused("the field file must carry a filename"))?;
        let name = UploadName::parse(kind, &filename).map_err(|e| refused(e.0))?;
        if name.abi != *abi {
            return Err(refused("the ABI in the file name is not the client's"));
        }
        let mut incoming = handle
            .store
            .receive(handle.max_bytes)
            .await
            .map_err(stored_error)?;
        while let Some(chunk) = field.try_next().await.map_err(cut)? {
            incoming.write(&chunk).await.map_err(stored_error)?;
        }
        received = Some((incoming.finish().await.map_err(stored_error)?, name));
    }
    received.ok_or_else(|| refused("the multipart field file is missing"))
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
    let abi = caller
        .identity
        .abi
        .clone()
        .ok_or_else(|| ApiError::forbidden("the client has no ABI configured"))?;
    let (stored, name) = receive_file(&req, payload, &handle, UploadKind::TokenList, &abi).await?;
    let filename = name.name.clone();
    let registered = handle
        .ingestor
        .send(Register { stored, name })
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?;
    let id = match registered {
        Registered::New(id) | Registered::Existing(id) => id,
    };
    tracing::info!(client = caller.name(), upload = %id, duplicate = matches!(registered, Registered::Existing(_)), "token list received");
    Ok(HttpResponse::Accepted().json(Accepted { id, filename }))
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
    if caller.role() == Role::Acquirer
        && caller.identity.abi.as_ref().map(|a| a.as_str()) != Some(r.abi.as_str())
    {
        return Err(not_found());
    }
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
