//! Acquirers' transaction files (`api.md` files for acquirers, TK10/TK11): the upload (plain or
//! PGP, checked before anything is stored, plain content encrypted on its way to disk), its
//! report, its outcomes as CSV; and the award periods the matcher uses (admin).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::admin::Admins;
use super::errors::{ApiError, Family};
use super::identity::Caller;
use super::lists::{Acquirers, ListReaders};
use super::state::{HandlerTimeout, TransactionsHandle};
use super::uploads::{
    accepted, caller_abi, not_found, readable_by, receive_file, Accepted, UploadTarget,
};
use crate::actors::transaction_matcher::explain::Explanation;
use crate::actors::transaction_matcher::judge::LEARNT;
use crate::actors::transaction_matcher::{
    AddAwardPeriod, Explain, FileReport, GetFileReport, GetOutcomes, ListAwardPeriods, RegisterFile,
};
use crate::config::Role;
use crate::db::transactions::periods::AddPeriodError;
use crate::domain::matching::AwardPeriod;
use crate::domain::UploadKind;

/// Outcome lines fetched per page of the CSV stream.
const OUTCOMES_PAGE: i64 = 10_000;

/// Uploads a TRNLOG file (plain or PGP-encrypted): 202 once it is safely on disk (encrypted);
/// matched in the background. The same file (name and SHA-256) again → the first upload's id.
#[utoipa::path(post, path = "/transactions", tag = "transactions",
    responses((status = 202, body = Accepted), (status = 422, body = super::errors::ErrorBody),
              (status = 503, body = super::errors::ErrorBody)))]
pub async fn upload(
    caller: Caller<Acquirers>,
    req: HttpRequest,
    payload: web::Payload,
    handle: web::Data<TransactionsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let abi = caller_abi(&caller)?;
    let target = UploadTarget {
        store: &handle.store,
        max_bytes: handle.max_bytes,
        seal_to: Some(handle.seal_to.clone()),
    };
    let (stored, name) =
        receive_file(&req, payload, &target, UploadKind::Transactions, &abi).await?;
    let filename = name.name.clone();
    let registered = handle
        .matcher
        .send(RegisterFile { stored, name })
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?;
    Ok(accepted(
        caller.name(),
        "transaction file",
        registered,
        filename,
    ))
}

/// Reversals in a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReversalCounts {
    /// Correlated with a whole payment.
    pub total: u64,
    /// Correlated with part of a payment.
    pub partial: u64,
    /// Waiting for a payment (reason 20).
    pub uncorrelated: u64,
}

/// A transaction file's report (`api.md`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionsReport {
    /// The upload id.
    #[schema(value_type = String)]
    pub id: Uuid,
    /// The file name as sent.
    pub filename: String,
    /// `RECEIVED`, `PROCESSING`, `DONE` or `REJECTED`.
    pub state: String,
    /// Records read.
    pub rows: u64,
    /// Rewardable payments.
    pub accepted: u64,
    /// Discarded records by reason code.
    pub discarded: BTreeMap<String, u64>,
    /// Reversals by correlation.
    pub reversals: ReversalCounts,
    /// Token↔PAR associations learnt.
    pub learnt: u64,
    /// Processing time, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Why the file was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<FileReport> for TransactionsReport {
    fn from(report: FileReport) -> Self {
        let r = report.record;
        let mut out = TransactionsReport {
            id: r.id,
            filename: r.filename,
            state: r.state.as_str().to_owned(),
            rows: r.progress.rows,
            accepted: 0,
            discarded: BTreeMap::new(),
            reversals: ReversalCounts {
                total: 0,
                partial: 0,
                uncorrelated: 0,
            },
            learnt: r.progress.discarded.get(LEARNT).copied().unwrap_or(0),
            duration_ms: r
                .started_at
                .zip(r.finished_at)
                .map(|(s, f)| (f - s).num_milliseconds()),
            error: r.error,
        };
        for (outcome, reason, n) in report.counts {
            let n = u64::try_from(n).unwrap_or(0);
            match (outcome.as_str(), reason) {
                ("ACCEPTED", _) => out.accepted += n,
                ("REVERSAL_TOTAL", _) => out.reversals.total += n,
                ("REVERSAL_PARTIAL", _) => out.reversals.partial += n,
                ("REVERSAL_UNCORRELATED", _) => out.reversals.uncorrelated += n,
                (_, Some(code)) => *out.discarded.entry(code).or_insert(0) += n,
                (other, None) => *out.discarded.entry(other.to_owned()).or_insert(0) += n,
            }
        }
        out
    }
}

/// Finds an upload the caller may read: an acquirer only its own ABI's (others 404 4001).
async fn readable(
    caller: &Caller<ListReaders>,
    id: &str,
    handle: &TransactionsHandle,
    timeout: &HandlerTimeout,
) -> Result<FileReport, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let found = handle
        .matcher
        .send(GetFileReport { id })
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?
        .ok_or_else(not_found)?;
    readable_by(caller, &found.record.abi)?;
    Ok(found)
}

/// A file's state and counts; an acquirer sees only its own ABI's files (others 404 4001).
#[utoipa::path(get, path = "/transactions/{id}", tag = "transactions",
    params(("id" = String, Path, description = "the upload id")),
    responses((status = 200, body = TransactionsReport), (status = 404, body = super::errors::ErrorBody)))]
pub async fn report(
    caller: Caller<ListReaders>,
    path: web::Path<String>,
    handle: web::Data<TransactionsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let found = readable(&caller, &path.into_inner(), &handle, &timeout).await?;
    Ok(HttpResponse::Ok().json(TransactionsReport::from(found)))
}

/// Every record's outcome, one CSV line each in line order, streamed:
/// `line;id_trx_acquirer;outcome;reason;match;detail`.
#[utoipa::path(get, path = "/transactions/{id}/outcomes", tag = "transactions",
    params(("id" = String, Path, description = "the upload id")),
    responses((status = 200, content_type = "text/csv", description = "the outcomes"),
              (status = 404, body = super::errors::ErrorBody)))]
pub async fn outcomes(
    caller: Caller<ListReaders>,
    path: web::Path<String>,
    handle: web::Data<TransactionsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let found = readable(&caller, &path.into_inner(), &handle, &timeout).await?;
    let (id, matcher, wait) = (found.record.id, handle.matcher.clone(), timeout.0);
    let pages = futures_util::stream::try_unfold(Some(0i64), move |after| {
        let matcher = matcher.clone();
        async move {
            let Some(after) = after else { return Ok(None) };
            let page = matcher
                .send(GetOutcomes {
                    id,
                    after,
                    limit: OUTCOMES_PAGE,
                })
                .timeout(wait)
                .await
                .map_err(ApiError::from)?
                .map_err(ApiError::unavailable)?;
            if page.is_empty() {
                return Ok(None);
            }
            let last = page.last().map(|o| o.line);
            let full = page.len() as i64 == OUTCOMES_PAGE;
            let mut text = String::with_capacity(page.len() * 48);
            for o in &page {
                text.push_str(&format!(
                    "{};{};{};{};{};{}\n",
                    o.line,
                    o.id_trx_acquirer.as_deref().unwrap_or(""),
                    o.outcome,
                    o.reason.as_deref().unwrap_or(""),
                    o.kind,
                    o.detail.as_deref().unwrap_or("")
                ));
            }
            Ok::<_, ApiError>(Some((Bytes::from(text), last.filter(|_| full))))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .streaming(futures_util::TryStreamExt::map_err(
            pages,
            actix_web::Error::from,
        )))
}

/// Why one record got its outcome: the decision computed again from the stored facts (roles
/// `platform`, `admin`, and the owning acquirer; others 404 4001).
#[utoipa::path(get, path = "/transactions/{id}/outcomes/{line}/explain", tag = "transactions",
    params(("id" = String, Path, description = "the upload id"), ("line" = i64, Path, description = "the record's line")),
    responses((status = 200, body = Explanation), (status = 404, body = super::errors::ErrorBody)))]
pub async fn explain(
    caller: Caller<Explainers>,
    path: web::Path<(String, String)>,
    handle: web::Data<TransactionsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let (id, line) = path.into_inner();
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let line: i64 = line.parse().map_err(|_| not_found())?;
    let (file, explanation) = handle
        .matcher
        .send(Explain { id, line })
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?
        .ok_or_else(not_found)?;
    readable_by(&caller, &file.record.abi)?;
    Ok(HttpResponse::Ok().json(explanation))
}

/// Who may read a decision's explanation.
pub struct Explainers;
impl super::identity::Roles for Explainers {
    const ROLES: &'static [Role] = &[Role::Platform, Role::Admin, Role::Acquirer];
}

/// Adds an award period: 201; 400 4000 for a bad field or an overlap; 409 for an existing id.
#[utoipa::path(post, path = "/admin/award-periods", tag = "admin",
    request_body = AwardPeriodBody,
    responses((status = 201, body = AwardPeriodBody), (status = 400, body = super::errors::ErrorBody),
              (status = 409, body = super::errors::ErrorBody)))]
pub async fn add_period(
    caller: Caller<Admins>,
    body: web::Bytes,
    handle: web::Data<TransactionsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let bad = |m: String| ApiError::validation(Family::Files, m);
    let period: AwardPeriod = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "the award period is not valid JSON of the documented shape: {e}"
        ))
    })?;
    period.check().map_err(|e| bad(e.to_string()))?;
    let added = handle
        .matcher
        .send(AddAwardPeriod(period.clone()))
        .timeout(timeout.0)
        .await?;
    match added {
        Ok(()) => {
            tracing::info!(client = caller.name(), period = %period.id, "award period added");
            Ok(HttpResponse::Created().json(AwardPeriodBody::from(period)))
        }
        Err(AddPeriodError::Overlaps) => Err(bad("the award period overlaps another".into())),
        Err(AddPeriodError::Exists) => Err(ApiError::new(
            StatusCode::CONFLICT,
            4000,
            "an award period with this id exists",
        )),
        Err(AddPeriodError::Db(e)) => Err(ApiError::unavailable(e)),
    }
}

/// An award period on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwardPeriodBody {
    /// Its id (1 to 64 characters).
    pub id: String,
    /// First day, `yyyy-MM-dd`.
    pub start: String,
    /// Last day, `yyyy-MM-dd`.
    pub end: String,
    /// Days after `end` its transactions are still accepted.
    pub grace_days: u32,
}

impl From<AwardPeriod> for AwardPeriodBody {
    fn from(p: AwardPeriod) -> Self {
        Self {
            id: p.id,
            start: p.start.to_string(),
            end: p.end.to_string(),
            grace_days: p.grace_days,
        }
    }
}

/// Every award period, by start.
#[utoipa::path(get, path = "/admin/award-periods", tag = "admin",
    responses((status = 200, body = Vec<AwardPeriodBody>)))]
pub async fn list_periods(
    _caller: Caller<Admins>,
    handle: web::Data<TransactionsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let periods = handle
        .matcher
        .send(ListAwardPeriods)
        .timeout(timeout.0)
        .await?
        .map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(
        periods
            .into_iter()
            .map(AwardPeriodBody::from)
            .collect::<Vec<_>>(),
    ))
}

/// The transaction routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/transactions", "POST").route(web::post().to(upload)))
        .service(super::resource("/transactions/{id}", "GET").route(web::get().to(report)))
        .service(
            super::resource("/transactions/{id}/outcomes", "GET").route(web::get().to(outcomes)),
        )
        .service(
            super::resource("/transactions/{id}/outcomes/{line}/explain", "GET")
                .route(web::get().to(explain)),
        )
        .service(
            super::resource("/admin/award-periods", "GET, POST")
                .route(web::get().to(list_periods))
                .route(web::post().to(add_period)),
        );
}
