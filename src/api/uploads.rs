//! What the upload endpoints share (`files.md` uploads): the multipart field `file` streamed to
//! the store, with the name, the ABI and the declared size checked before a byte is written.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::TryStreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::errors::ApiError;
use crate::crypto::pgp::PgpPublicKey;
use crate::domain::{UploadKind, UploadName};
use crate::files::uploads::{StoredFile, UploadError, UploadStore};

/// Where an upload goes and what it may be.
#[derive(Debug)]
pub struct UploadTarget<'a> {
    /// The store.
    pub store: &'a UploadStore,
    /// `uploads.max_bytes`.
    pub max_bytes: u64,
    /// Plain content is accepted (and encrypted to this key on its way in).
    pub seal_to: Option<PgpPublicKey>,
}

/// 422 4003: the file is refused before anything is stored.
pub fn refused(message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, 4003, message)
}

/// 404 4001: no such upload (or another acquirer's).
pub fn not_found() -> ApiError {
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

/// The answer to an accepted upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The upload id (the first upload's for a file sent again).
    #[schema(value_type = String)]
    pub id: Uuid,
    /// The file name as sent.
    pub filename: String,
}

/// The longest an upload's body may go without a byte: a client that stalls is cut off, and a
/// malformed body that the multipart reader would wait on forever (`fuzz/findings`) is answered.
const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the multipart body could not be read (both are answered alike: cut off or malformed).
#[derive(Debug)]
enum Unread<E> {
    /// The reader failed.
    Failed(E),
    /// No data for [`IDLE`].
    Stalled,
}

/// The next item of the multipart body within [`IDLE`], a stalled read as an error.
async fn within<T, E>(
    next: impl std::future::Future<Output = Result<Option<T>, E>>,
) -> Result<Option<T>, Unread<E>> {
    match tokio::time::timeout(IDLE, next).await {
        Ok(r) => r.map_err(Unread::Failed),
        Err(_) => Err(Unread::Stalled),
    }
}

/// Receives the multipart field `file` into the store: the name, the ABI and the declared size
/// are checked before a byte is written; a cut-off or refused upload leaves nothing behind.
pub async fn receive_file(
    req: &HttpRequest,
    payload: web::Payload,
    handle: &UploadTarget<'_>,
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
    while let Some(mut field) = within(multipart.try_next()).await.map_err(cut)? {
        if field.name() != Some("file") {
            // Other fields are read and ignored.
            while within(field.try_next()).await.map_err(cut)?.is_some() {}
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
            .receive_with(handle.max_bytes, handle.seal_to.clone())
            .await
            .map_err(stored_error)?;
        while let Some(chunk) = within(field.try_next()).await.map_err(cut)? {
            incoming.write(&chunk).await.map_err(stored_error)?;
        }
        received = Some((incoming.finish().await.map_err(stored_error)?, name));
    }
    received.ok_or_else(|| refused("the multipart field file is missing"))
}

/// The calling acquirer's ABI (403 when its client entry has none).
pub fn caller_abi<R: super::identity::Roles>(
    caller: &super::identity::Caller<R>,
) -> Result<crate::domain::Abi, ApiError> {
    caller
        .identity
        .abi
        .clone()
        .ok_or_else(|| ApiError::forbidden("the client has no ABI configured"))
}

/// 202 with the id the client gets (the first upload's for a file sent again), logged.
pub fn accepted(
    client: &str,
    what: &'static str,
    registered: crate::db::uploads::Registered,
    filename: String,
) -> actix_web::HttpResponse {
    use crate::db::uploads::Registered;
    let (id, duplicate) = match registered {
        Registered::New(id) => (id, false),
        Registered::Existing(id) => (id, true),
    };
    tracing::info!(client, upload = %id, duplicate, "{what} received");
    actix_web::HttpResponse::Accepted().json(Accepted { id, filename })
}

/// An acquirer sees only its own ABI's uploads: another's is answered like an unknown one (404
/// 4001); other roles see every upload.
pub fn readable_by<R: super::identity::Roles>(
    caller: &super::identity::Caller<R>,
    abi: &str,
) -> Result<(), ApiError> {
    let own = caller.identity.abi.as_ref().map(|a| a.as_str()) == Some(abi);
    if caller.role() == crate::config::Role::Acquirer && !own {
        return Err(not_found());
    }
    Ok(())
}
