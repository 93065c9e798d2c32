//! `/admin` (role `admin`): force a BIN range refresh or a PAR cycle, follow jobs, and see the
//! status of actors, circuits, outbox and broker.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::errors::{ApiError, ErrorBody, Family};
use super::identity::{Caller, Roles};
pub use super::state::AdminDeps;
use super::state::HandlerTimeout;
use crate::actors::broker::GetOutboxState;
use crate::actors::circuit_poller::GetBinState;
use crate::actors::job_runner::{GetJob, ListJobs, StartJob};
use crate::actors::par_resolver::GetResolverStatus;
use crate::actors::Ping;
use crate::config::Role;
use crate::db::jobs;
use crate::domain::{Circuit, JobRequest, Trigger};

const F: Family = Family::Files;

/// Operators.
pub struct Admins;
impl Roles for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// `{"jobId"}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobAccepted {
    /// The job to follow at `/admin/jobs/{id}`.
    #[schema(value_type = String)]
    pub job_id: Uuid,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: Uuid,
    /// `bin-refresh`, `par-refresh`, …
    pub kind: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub state: String,
    /// Units done.
    pub done: i64,
    /// Units in all, when known.
    pub total: Option<i64>,
    /// ISO-8601.
    pub started_at: Option<String>,
    /// ISO-8601.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

fn iso(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl From<jobs::Job> for JobView {
    fn from(j: jobs::Job) -> Self {
        JobView {
            id: j.id,
            kind: j.kind,
            state: j.state,
            done: j.done,
            total: j.total,
            started_at: iso(j.started_at),
            finished_at: iso(j.finished_at),
            error: j.error,
        }
    }
}

/// Query of the refresh endpoints.
#[derive(Debug, Deserialize)]
pub struct RefreshQuery {
    circuit: Option<String>,
    force: Option<bool>,
    limit: Option<u64>,
}

fn parse_circuit(raw: &Option<String>) -> Result<Option<Circuit>, ApiError> {
    raw.as_deref()
        .map(|c| {
            Circuit::from_json_name(c).map_err(|_| {
                ApiError::validation(F, "query circuit must be VISA, MASTERCARD or AMEX")
            })
        })
        .transpose()
}

fn query(raw: &str) -> Result<RefreshQuery, ApiError> {
    serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::validation(F, format!("query is invalid: {e}")))
}

/// Refreshes the token BIN ranges now (all circuits by default).
#[utoipa::path(post, path = "/admin/bin-ranges/refresh", tag = "admin",
    params(("circuit" = Option<String>, Query, description = "VISA, MASTERCARD or AMEX"),
           ("force" = Option<bool>, Query, description = "accept a set much smaller than the current one")),
    responses((status = 202, body = JobAccepted), (status = 400, body = ErrorBody)))]
pub async fn refresh_bin_ranges(
    caller: Caller<Admins>,
    req: actix_web::HttpRequest,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let q = query(req.query_string())?;
    let request = JobRequest::BinRefresh {
        circuit: parse_circuit(&q.circuit)?,
        forced: q.force.unwrap_or(false),
    };
    start(&deps, &timeout, request, &caller).await
}

/// Asks the job runner to start (or join) a job; answers 202 with its id.
async fn start(
    deps: &AdminDeps,
    timeout: &HandlerTimeout,
    request: JobRequest,
    caller: &Caller<Admins>,
) -> Result<HttpResponse, ApiError> {
    let id = deps
        .jobs
        .send(StartJob {
            request,
            trigger: Trigger::Admin(caller.name().to_owned()),
        })
        .timeout(timeout.0)
        .await??;
    Ok(HttpResponse::Accepted().json(JobAccepted { job_id: id }))
}

/// Runs the retention job now (it also runs daily): the ciphertexts of cards and tokens inactive
/// for `vault.inactive_retention_days` and the outcomes older than `matching.retention_days` are
/// erased; the job's `done` counts them.
#[utoipa::path(post, path = "/admin/retention", tag = "admin",
    responses((status = 202, body = JobAccepted)))]
pub async fn run_retention(
    caller: Caller<Admins>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    start(&deps, &timeout, JobRequest::Retention, &caller).await
}

/// Runs a PAR cycle now.
#[utoipa::path(post, path = "/admin/par/refresh", tag = "admin",
    params(("circuit" = Option<String>, Query, description = "VISA, MASTERCARD or AMEX"),
           ("limit" = Option<u64>, Query, description = "at most this many lookups per circuit")),
    responses((status = 202, body = JobAccepted), (status = 400, body = ErrorBody)))]
pub async fn refresh_pars(
    caller: Caller<Admins>,
    req: actix_web::HttpRequest,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let q = query(req.query_string())?;
    let circuit = parse_circuit(&q.circuit)?;
    if q.limit == Some(0) {
        return Err(ApiError::validation(F, "query limit must be positive"));
    }
    let request = JobRequest::ParCycle {
        circuit,
        limit: q.limit,
        scan: true,
    };
    start(&deps, &timeout, request, &caller).await
}

/// The latest jobs, newest first.
#[utoipa::path(get, path = "/admin/jobs", tag = "admin",
    responses((status = 200, body = [JobView])))]
pub async fn list_jobs(
    _caller: Caller<Admins>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let list = deps
        .jobs
        .send(ListJobs { limit: 100 })
        .timeout(timeout.0)
        .await??;
    let views: Vec<JobView> = list.into_iter().map(JobView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// One job.
#[utoipa::path(get, path = "/admin/jobs/{id}", tag = "admin",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    _caller: Caller<Admins>,
    path: web::Path<String>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, 4001, "no such job");
    let id = Uuid::parse_str(&path.into_inner()).map_err(|_| not_found())?;
    let job = deps
        .jobs
        .send(GetJob { id })
        .timeout(timeout.0)
        .await??
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(JobView::from(job)))
}

/// One circuit in `/admin/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitStatus {
    /// Token BIN ranges stored.
    pub bin_ranges: i64,
    /// Last successful refresh (ISO-8601).
    pub last_bin_refresh: Option<String>,
    /// Why the last refresh failed, if it did.
    pub last_bin_error: Option<String>,
    /// Lookups made today (Europe/Rome day).
    pub lookups_today: i64,
    /// Lookups still owed (both lanes).
    pub backlog: i64,
    /// Card lookups still owed (consenting citizens' cards without PAR).
    pub pending_cards: i64,
    /// Token checks still owed.
    pub pending_tokens: i64,
    /// Seconds the oldest pending card lookup has waited.
    pub oldest_card_lookup_secs: i64,
    /// The rate allowed now (halved after a 429).
    pub rate_per_second: Option<u32>,
    /// Paused by a 429 or the breaker.
    pub paused: bool,
    /// Seconds the pause still lasts (0 when running).
    pub paused_secs: u64,
}

/// The operators' overview.
#[utoipa::path(get, path = "/admin/status", tag = "admin",
    responses((status = 200, description = "actors, circuits, outbox and broker")))]
pub async fn status(
    _caller: Caller<Admins>,
    deps: web::Data<AdminDeps>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let mut actors = BTreeMap::new();
    for (name, actor) in &deps.actors {
        let health = actor.send(Ping).timeout(timeout.0).await.ok();
        actors.insert(
            *name,
            serde_json::json!({
                "alive": health.is_some(),
                "mailbox": health.as_ref().map(|h| h.in_flight),
                "capacity": health.map(|h| h.mailbox_capacity),
            }),
        );
    }
    let lookups = deps
        .resolver
        .send(GetResolverStatus)
        .timeout(timeout.0)
        .await??;
    let mut circuits = BTreeMap::new();
    for circuit in Circuit::ALL {
        let bins = match deps.pollers.iter().find(|(c, _)| *c == circuit) {
            Some((_, poller)) => poller.send(GetBinState).timeout(timeout.0).await??,
            None => Default::default(),
        };
        let l = lookups.get(&circuit);
        let lane = l.and_then(|l| l.lane);
        circuits.insert(
            circuit.as_str(),
            CircuitStatus {
                bin_ranges: bins.ranges,
                last_bin_refresh: iso(bins.last_success),
                last_bin_error: bins.last_error,
                lookups_today: l.map_or(0, |l| l.today),
                backlog: l.map_or(0, |l| l.pending.cards + l.pending.tokens),
                pending_cards: l.map_or(0, |l| l.pending.cards),
                pending_tokens: l.map_or(0, |l| l.pending.tokens),
                oldest_card_lookup_secs: l.map_or(0, |l| l.pending.oldest_card_secs),
                rate_per_second: lane.map(|l| l.rate_per_second),
                paused: lane.is_some_and(|l| l.paused_secs > 0),
                paused_secs: lane.map_or(0, |l| l.paused_secs),
            },
        );
    }
    let outbox = deps
        .broker
        .outbox
        .send(GetOutboxState)
        .timeout(timeout.0)
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "actors": actors,
        "circuits": circuits,
        "circuitsMode": deps.circuits_mode.as_str(),
        "outbox": { "backlog": outbox.backlog, "parked": outbox.parked },
        "broker": { "connected": deps.broker.status.connected() },
    })))
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/admin/bin-ranges/refresh", "POST").route(web::post().to(refresh_bin_ranges)),
    )
    .service(resource("/admin/par/refresh", "POST").route(web::post().to(refresh_pars)))
    .service(resource("/admin/retention", "POST").route(web::post().to(run_retention)))
    .service(resource("/admin/jobs", "GET").route(web::get().to(list_jobs)))
    .service(resource("/admin/jobs/{id}", "GET").route(web::get().to(get_job)))
    .service(resource("/admin/status", "GET").route(web::get().to(status)));
}
