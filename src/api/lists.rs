//! The published lists for acquirers (`api.md` files, `files.md` TK8): one-shot links
//! (`LinksResponse` and 302 redirects, deltas between generations), the download that consumes a
//! link and streams the file, the salt, and the operators' "build now".

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;

use super::admin::{Admins, JobAccepted};
use super::dates::legacy;
use super::errors::{ApiError, ErrorBody, Family};
use super::identity::{Caller, Roles};
use super::state::{AdminDeps, HandlerTimeout, ListsHandle};
use crate::actors::job_runner::StartJob;
use crate::actors::list_builder::{Download, GetSalt, IssueLinks, LinkSet, LinkTarget, Redeem};
use crate::config::Role;
use crate::domain::lists::ListKind;
use crate::domain::{JobRequest, Trigger};

const F: Family = Family::Files;

/// Acquirers and the platform (the lists).
pub struct ListReaders;
impl Roles for ListReaders {
    const ROLES: &'static [Role] = &[Role::Acquirer, Role::Platform];
}

/// Acquirers only (the salt).
pub struct Acquirers;
impl Roles for Acquirers {
    const ROLES: &'static [Role] = &[Role::Acquirer];
}

/// Links to every file of a list's newest generation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinksResponse {
    /// One-shot absolute URLs, one per file, in part order.
    pub file_links: Vec<String>,
    /// How many.
    pub number_of_files: usize,
    /// `dd/MM/yyyy HH:mm:ss` (Europe/Rome): when the links stop working.
    pub available_until: String,
    /// `dd/MM/yyyy HH:mm:ss` (Europe/Rome): when the generation was built.
    pub generation_date: String,
    /// Seconds until the links expire.
    pub expired_in: i64,
}

fn download_url(lists: &ListsHandle, token: &str) -> String {
    format!("{}/download/{token}", lists.public_url)
}

fn header_value(v: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(v).map_err(ApiError::internal)
}

async fn issue(
    lists: &ListsHandle,
    timeout: &HandlerTimeout,
    kind: ListKind,
    target: LinkTarget,
    client: &str,
) -> Result<LinkSet, ApiError> {
    Ok(lists
        .builder
        .send(IssueLinks {
            kind,
            target,
            client: client.to_owned(),
        })
        .timeout(timeout.0)
        .await??)
}

async fn links(
    caller: Caller<ListReaders>,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
    kind: ListKind,
) -> Result<HttpResponse, ApiError> {
    let set = issue(&lists, &timeout, kind, LinkTarget::AllParts, caller.name()).await?;
    let body = LinksResponse {
        file_links: set
            .links
            .iter()
            .map(|l| download_url(&lists, &l.token))
            .collect(),
        number_of_files: set.links.len(),
        available_until: legacy(set.expires_at),
        generation_date: legacy(set.created_at),
        expired_in: (set.expires_at - chrono::Utc::now()).num_seconds().max(0),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("x-ms-meta-generation", set.generation.to_string()))
        .insert_header((
            "x-ms-meta-content-sha256",
            header_value(&set.content_sha256)?,
        ))
        .insert_header(no_store())
        .json(body))
}

fn no_store() -> (header::HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// Links to today's token BIN range files.
#[utoipa::path(get, path = "/bin-ranges/links", tag = "lists",
    responses((status = 200, body = LinksResponse), (status = 404, body = ErrorBody)))]
pub async fn bin_range_links(
    caller: Caller<ListReaders>,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    links(caller, lists, timeout, ListKind::BinRanges).await
}

/// Links to today's known HPAN/HTOKEN files.
#[utoipa::path(get, path = "/known-hashes/links", tag = "lists",
    responses((status = 200, body = LinksResponse), (status = 404, body = ErrorBody)))]
pub async fn known_hash_links(
    caller: Caller<ListReaders>,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    links(caller, lists, timeout, ListKind::KnownHashes).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartQuery {
    file_part: Option<String>,
    file_part_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeltaQuery {
    since: Option<String>,
}

fn part_of(req: &HttpRequest) -> Result<usize, ApiError> {
    let q: PartQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::validation(F, "query is invalid"))?;
    match q.file_part.or(q.file_part_id) {
        None => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::validation(F, "query filePart must be a part number from 0")),
    }
}

/// A 302 to a one-shot link, with the file's checksum and the generation's headers.
fn redirect(
    lists: &ListsHandle,
    set: &LinkSet,
    next: Option<usize>,
) -> Result<HttpResponse, ApiError> {
    let link = set
        .links
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no link minted")))?;
    let mut answer = HttpResponse::Found();
    answer
        .insert_header((
            header::LOCATION,
            header_value(&download_url(lists, &link.token))?,
        ))
        .insert_header(("x-ms-meta-sha256", header_value(&link.sha256)?))
        .insert_header(("x-ms-meta-generation", set.generation.to_string()))
        .insert_header((
            "x-ms-meta-content-sha256",
            header_value(&set.content_sha256)?,
        ))
        .insert_header((
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(set.created_at.into()))?,
        ))
        .insert_header(no_store());
    if let Some(n) = next {
        answer.insert_header(("x-ms-meta-nextFile", n.to_string()));
    }
    Ok(answer.finish())
}

async fn full_list(
    caller: Caller<ListReaders>,
    req: HttpRequest,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
    kind: ListKind,
) -> Result<HttpResponse, ApiError> {
    let part = part_of(&req)?;
    let set = issue(
        &lists,
        &timeout,
        kind,
        LinkTarget::Part(part),
        caller.name(),
    )
    .await?;
    let next = part.checked_add(1).filter(|n| *n < set.parts);
    redirect(&lists, &set, next)
}

async fn delta(
    caller: Caller<ListReaders>,
    req: HttpRequest,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
    kind: ListKind,
) -> Result<HttpResponse, ApiError> {
    let q: DeltaQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::validation(F, "query is invalid"))?;
    let since = q
        .since
        .ok_or_else(|| ApiError::validation(F, "query since is required: a generation"))?
        .parse::<i64>()
        .map_err(|_| ApiError::validation(F, "query since must be a generation number"))?;
    let set = issue(
        &lists,
        &timeout,
        kind,
        LinkTarget::DeltaSince(since),
        caller.name(),
    )
    .await?;
    redirect(&lists, &set, None)
}

/// 302 to a one-shot link to part `filePart` (from 0) of the enrolled HPAN+HTOKEN list.
#[utoipa::path(get, path = "/rtd/payment-instrument-manager/hashed-pans", tag = "lists",
    params(("filePart" = Option<u32>, Query, description = "part number from 0 (alias filePartId)")),
    responses((status = 302, description = "Location: the one-shot link; x-ms-meta-sha256, x-ms-meta-generation, x-ms-meta-nextFile, Last-Modified"),
              (status = 404, body = ErrorBody)))]
pub async fn hashed_pans(
    caller: Caller<ListReaders>,
    req: HttpRequest,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    full_list(caller, req, lists, timeout, ListKind::Hpans).await
}

/// 302 to a one-shot link to part `filePart` of the PAR list.
#[utoipa::path(get, path = "/rtd/payment-instrument-manager/par-list", tag = "lists",
    params(("filePart" = Option<u32>, Query, description = "part number from 0 (alias filePartId)")),
    responses((status = 302, description = "Location: the one-shot link"), (status = 404, body = ErrorBody)))]
pub async fn par_list(
    caller: Caller<ListReaders>,
    req: HttpRequest,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    full_list(caller, req, lists, timeout, ListKind::Pars).await
}

/// 302 to a one-shot link to the delta (`+value`/`-value` lines) from generation `since` to the
/// newest enrolled HPAN+HTOKEN list; 404 4001 when `since` is unknown or past retention.
#[utoipa::path(get, path = "/rtd/payment-instrument-manager/hashed-pans/delta", tag = "lists",
    params(("since" = i64, Query, description = "the generation the client holds (x-ms-meta-generation)")),
    responses((status = 302, description = "Location: the one-shot link"), (status = 404, body = ErrorBody)))]
pub async fn hashed_pans_delta(
    caller: Caller<ListReaders>,
    req: HttpRequest,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    delta(caller, req, lists, timeout, ListKind::Hpans).await
}

/// The same for the PAR list.
#[utoipa::path(get, path = "/rtd/payment-instrument-manager/par-list/delta", tag = "lists",
    params(("since" = i64, Query, description = "the generation the client holds")),
    responses((status = 302, description = "Location: the one-shot link"), (status = 404, body = ErrorBody)))]
pub async fn par_list_delta(
    caller: Caller<ListReaders>,
    req: HttpRequest,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    delta(caller, req, lists, timeout, ListKind::Pars).await
}

/// Streams a file in 64 KiB chunks (never read whole into memory).
fn file_body(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((web::Bytes::from(buf), file)))
    })
}

/// The file behind a one-shot link; the first request consumes the link.
#[utoipa::path(get, path = "/download/{token}", tag = "lists",
    params(("token" = String, Path, description = "the one-shot token")),
    responses((status = 200, content_type = "application/zip", description = "the file; Checksum-Sha256, x-ms-meta-sha256, Last-Modified, Content-Length"),
              (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn download(
    caller: Caller<ListReaders>,
    path: web::Path<String>,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let Download {
        path: file_path,
        file_name,
        bytes,
        sha256,
        created_at,
    } = lists
        .builder
        .send(Redeem {
            token: path.into_inner(),
            client: caller.name().to_owned(),
        })
        .timeout(timeout.0)
        .await??;
    let file = tokio::fs::File::open(&file_path).await.map_err(|e| {
        tracing::error!(file = %file_name, error = %e, "a published list file is missing");
        ApiError::new(
            StatusCode::GONE,
            4002,
            "the file is no longer available: ask for a new link",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header(("Checksum-Sha256", header_value(&sha256)?))
        .insert_header(("x-ms-meta-sha256", header_value(&sha256)?))
        .insert_header((
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(created_at.into()))?,
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            header_value(&format!("attachment; filename=\"{file_name}\""))?,
        ))
        .insert_header(no_store())
        .no_chunking(bytes)
        .streaming(file_body(file)))
}

/// The salt acquirers hash PANs with (the access is logged, never the value).
#[utoipa::path(get, path = "/rtd/payment-instrument-manager/salt", tag = "lists",
    responses((status = 200, content_type = "text/plain", description = "the salt")))]
pub async fn salt(
    caller: Caller<Acquirers>,
    lists: web::Data<ListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    use secrecy::ExposeSecret as _;
    let salt = lists
        .builder
        .send(GetSalt {
            client: caller.name().to_owned(),
        })
        .timeout(timeout.0)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(no_store())
        .body(salt.expose_secret().to_owned()))
}

/// Builds the lists now (`kinds`: `hpans,pars,bin-ranges,known-hashes`; all by default).
#[utoipa::path(post, path = "/admin/lists/generate", tag = "admin",
    params(("kinds" = Option<String>, Query, description = "comma-separated: hpans, pars, bin-ranges, known-hashes")),
    responses((status = 202, body = JobAccepted), (status = 400, body = ErrorBody)))]
pub async fn generate(
    caller: Caller<Admins>,
    req: HttpRequest,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    struct Q {
        kinds: Option<String>,
    }
    let q: Q = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::validation(F, "query is invalid"))?;
    let kinds = parse_kinds(q.kinds.as_deref())?;
    let id = deps
        .jobs
        .send(StartJob {
            request: JobRequest::ListBuild { kinds },
            trigger: Trigger::Admin(caller.name().to_owned()),
        })
        .timeout(timeout.0)
        .await??;
    Ok(HttpResponse::Accepted().json(JobAccepted { job_id: id }))
}

/// The legacy name of [`generate`].
#[utoipa::path(post, path = "/rtd/payment-instrument-manager/generate-active-lists", tag = "admin",
    params(("kinds" = Option<String>, Query, description = "comma-separated: hpans, pars, bin-ranges, known-hashes")),
    responses((status = 202, body = JobAccepted), (status = 400, body = ErrorBody)))]
pub async fn generate_alias(
    caller: Caller<Admins>,
    req: HttpRequest,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    generate(caller, req, deps, timeout).await
}

/// `kinds=` as lists in build order, without repeats; every list when absent.
pub fn parse_kinds(raw: Option<&str>) -> Result<Vec<ListKind>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(ListKind::ALL.to_vec());
    };
    let mut wanted = Vec::new();
    for item in raw.split(',') {
        let kind = ListKind::parse(item).ok_or_else(|| {
            ApiError::validation(
                F,
                "query kinds must list hpans, pars, bin-ranges or known-hashes",
            )
        })?;
        wanted.push(kind);
    }
    Ok(ListKind::ALL
        .into_iter()
        .filter(|k| wanted.contains(k))
        .collect())
}

/// The list routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    const PIM: &str = "/rtd/payment-instrument-manager";
    cfg.service(resource("/bin-ranges/links", "GET").route(web::get().to(bin_range_links)))
        .service(resource("/known-hashes/links", "GET").route(web::get().to(known_hash_links)))
        .service(resource(&format!("{PIM}/hashed-pans"), "GET").route(web::get().to(hashed_pans)))
        .service(
            resource(&format!("{PIM}/hashed-pans/delta"), "GET")
                .route(web::get().to(hashed_pans_delta)),
        )
        .service(resource(&format!("{PIM}/par-list"), "GET").route(web::get().to(par_list)))
        .service(
            resource(&format!("{PIM}/par-list/delta"), "GET").route(web::get().to(par_list_delta)),
        )
        .service(resource(&format!("{PIM}/salt"), "GET").route(web::get().to(salt)))
        .service(resource("/download/{token}", "GET").route(web::get().to(download)))
        .service(resource("/admin/lists/generate", "POST").route(web::post().to(generate)))
        .service(
            resource(&format!("{PIM}/generate-active-lists"), "POST")
                .route(web::post().to(generate_alias)),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_build_order_and_refuse_unknown_names() {
        assert_eq!(parse_kinds(None).unwrap(), ListKind::ALL.to_vec());
        assert_eq!(
            parse_kinds(Some("known-hashes,hpans,hpans")).unwrap(),
            vec![ListKind::Hpans, ListKind::KnownHashes]
        );
        assert_eq!(parse_kinds(Some("pans")).unwrap_err().code(), 4000);
    }
}
