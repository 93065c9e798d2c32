//! JobRunner: owns the stored jobs (`/admin/jobs`) and runs them — BIN refreshes through the
//! circuit pollers, PAR cycles through the resolver — whoever asks: an operator through the API,
//! or an actor's own timer. A job of the same kind and scope that runs already is joined; a
//! routine PAR cycle asked for while one runs is coalesced into one run after it; a routine run
//! that finds nothing to do leaves no job behind. It also beats for this process's jobs, so a
//! crashed process's jobs end `FAILED` (interrupted) on any replica.

mod messages;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, ResponseFuture,
    Supervised, WrapFuture,
};
use deadpool_postgres::Pool;
use uuid::Uuid;

pub use messages::{Executors, GetJob, JobError, ListJobs, Retention, StartJob};

use crate::actors::circuit_poller::RefreshBinRanges;
use crate::actors::list_builder::BuildLists;
use crate::actors::par_resolver::RunCycle;
use crate::db::jobs;
use crate::domain::{JobKind, JobRequest, Trigger};

/// Finished jobs are kept this long for `/admin/jobs`.
const RETENTION_DAYS: i32 = 30;
/// How soon a routine PAR cycle that found another replica's cycle running asks again: what
/// woke it (a card this replica stored) is served once that cycle ends — or, when that
/// replica died, once its job is found interrupted ([`jobs::STALE_AFTER_SECS`]).
const JOINED_ELSEWHERE_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// The retention job's first run after start-up, then once a day (a routine run that erases
/// nothing leaves no job behind).
const RETENTION_FIRST: std::time::Duration = std::time::Duration::from_secs(600);
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A job this runner runs, whether routine asks arrived meanwhile, whether an operator joined it
/// (then it is kept even when it finds nothing to do: they follow its id), and, for a PAR cycle,
/// whether it must scan (an operator's refresh joining a routine cycle asks for the scan the
/// routine cycle would not do — the cycle scans before it ends).
struct Running {
    id: Uuid,
    again: bool,
    keep: Arc<AtomicBool>,
    scan: Arc<AtomicBool>,
}

/// The actor.
pub struct JobRunner {
    pool: Pool,
    /// This runner's identity in the `job` table (its heartbeats keep its jobs alive).
    owner: uuid::Uuid,
    executors: Option<Executors>,
    running: HashMap<(JobKind, String), Running>,
    /// A routine PAR cycle found another replica's cycle running and will ask again.
    cycle_retry: bool,
}

impl JobRunner {
    /// The name in status reports.
    pub const NAME: &'static str = "job-runner";

    /// A runner over the `job` table.
    pub fn new(pool: Pool) -> Self {
        JobRunner {
            pool,
            owner: jobs::new_owner(),
            executors: None,
            running: HashMap::new(),
            cycle_retry: false,
        }
    }

    /// Requests that coalesce: PAR cycles whatever their scope (one cycle at a time), BIN
    /// refreshes and list builds per scope (builds of one list are serialised by its lock).
    fn slot(request: &JobRequest) -> (JobKind, String) {
        match request {
            JobRequest::ParCycle { .. } => (JobKind::ParCycle, "*".to_owned()),
            JobRequest::BinRefresh { .. }
            | JobRequest::ListBuild { .. }
            | JobRequest::Retention => (request.kind(), request.scope()),
        }
    }

    /// Runs job `id` in the background; records its end and starts a coalesced run after it.
    fn spawn(
        &mut self,
        ctx: &mut Context<Self>,
        id: Uuid,
        request: JobRequest,
        keep: Arc<AtomicBool>,
        scan: Arc<AtomicBool>,
    ) {
        let Some(executors) = &self.executors else {
            return;
        };
        let pool = self.pool.clone();
        let work = run(executors, id, request.clone(), pool.clone(), scan);
        let slot = Self::slot(&request);
        let fut = async move {
            let outcome = work.await;
            if let Err(e) = &outcome {
                tracing::warn!(job = %id, kind = request.kind().as_str(), error = %e, "job failed");
            }
            if !keep.load(Ordering::Relaxed) && matches!(outcome, Ok(0)) {
                if let Err(e) = jobs::discard(&pool, id).await {
                    tracing::warn!(job = %id, error = %e, "cannot discard an empty routine job");
                }
                return;
            }
            let result = outcome.as_ref().map(|_| ()).map_err(String::as_str);
            if let Err(e) = jobs::finish(&pool, id, result).await {
                tracing::warn!(job = %id, error = %e, "cannot record the end of a job");
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |_, act, ctx| {
            if act.running.remove(&slot).is_some_and(|r| r.again) {
                let next = StartJob {
                    request: JobRequest::ParCycle {
                        circuit: None,
                        limit: None,
                        scan: false,
                    },
                    trigger: Trigger::WakeUp,
                };
                ctx.notify(next);
            }
        }));
    }
}

/// Runs a job to its end: the number of units done (a routine run with 0 leaves no job), or why
/// it failed (stored with the job).
fn run(
    executors: &Executors,
    id: Uuid,
    request: JobRequest,
    pool: Pool,
    scan_wanted: Arc<AtomicBool>,
) -> futures_util::future::BoxFuture<'static, Result<i64, String>> {
    match request {
        JobRequest::BinRefresh { circuit, forced } => {
            let targets: Vec<_> = executors
                .pollers
                .iter()
                .filter(|(c, _)| circuit.is_none_or(|only| only == *c))
                .cloned()
                .collect();
            Box::pin(async move {
                let total = i64::try_from(targets.len()).unwrap_or(i64::MAX);
                // Progress is informative: a failed update must not fail the job.
                let _ = jobs::progress(&pool, id, 0, Some(total)).await;
                let mut errors = Vec::new();
                let mut done = 0i64;
                for (circuit, poller) in targets {
                    match poller.send(RefreshBinRanges { forced, due: None }).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => errors.push(format!("{circuit}: {e}")),
                        Err(e) => errors.push(format!("{circuit}: poller unavailable ({e})")),
                    }
                    done += 1;
                    let _ = jobs::progress(&pool, id, done, None).await;
                }
                if errors.is_empty() {
                    Ok(done)
                } else {
                    Err(errors.join("; "))
                }
            })
        }
        JobRequest::ListBuild { kinds } => {
            let lists = executors.lists.clone();
            Box::pin(async move {
                match lists
                    .send(BuildLists {
                        kinds,
                        job: Some(id),
                    })
                    .await
                {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("list builder unavailable ({e})")),
                }
            })
        }
        JobRequest::Retention => {
            let policy = executors.retention;
            Box::pin(async move { retention(&pool, id, policy).await })
        }
        JobRequest::ParCycle { circuit, limit, .. } => {
            let resolver = executors.resolver.clone();
            Box::pin(async move {
                match resolver
                    .send(RunCycle {
                        job: id,
                        circuit,
                        limit,
                        scan: scan_wanted,
                    })
                    .await
                {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("resolver unavailable ({e})")),
                }
            })
        }
    }
}

impl Actor for JobRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Beats for this process's jobs, ends those of processes that stopped, prunes old ones.
        ctx.spawn(jobs::keeper(self.pool.clone(), self.owner, RETENTION_DAYS).into_actor(self));
    }
}

impl Supervised for JobRunner {}

impl Handler<Executors> for JobRunner {
    type Result = ();

    fn handle(&mut self, msg: Executors, ctx: &mut Self::Context) {
        if self.executors.is_none() {
            let routine = |_: &mut Self, ctx: &mut Context<Self>| {
                ctx.notify(StartJob {
                    request: JobRequest::Retention,
                    trigger: Trigger::Schedule,
                });
            };
            ctx.run_later(RETENTION_FIRST, move |act, ctx| {
                routine(act, ctx);
                ctx.run_interval(RETENTION_EVERY, routine);
            });
        }
        self.executors = Some(msg);
    }
}

/// The retention job: erases the ciphertexts of inactive cards and deleted tokens, then the
/// outcomes past retention; its units are the rows erased.
async fn retention(pool: &Pool, id: Uuid, policy: Retention) -> Result<i64, String> {
    let now = chrono::Utc::now();
    let days = |d: u32| chrono::Duration::days(i64::from(d));
    let (cards, tokens) =
        crate::db::cards::retention::erase_inactive(pool, now - days(policy.ciphertext_days))
            .await
            .map_err(|e| e.to_string())?;
    let today = now.with_timezone(&policy.zone).date_naive();
    let cutoff_day = today - days(policy.outcome_days);
    let outcomes = crate::db::transactions::retention::erase_old(
        pool,
        cutoff_day,
        now - days(policy.outcome_days),
    )
    .await
    .map_err(|e| e.to_string())?;
    let total =
        i64::try_from(cards.saturating_add(tokens).saturating_add(outcomes)).unwrap_or(i64::MAX);
    let _ = jobs::progress(pool, id, total, Some(total)).await;
    tracing::info!(
        cards,
        tokens,
        outcomes,
        "retention: ciphertexts and outcomes erased"
    );
    Ok(total)
}

impl Handler<StartJob> for JobRunner {
    // One start at a time: the check for a running job and its creation are not interleaved.
    type Result = AtomicResponse<Self, Result<Uuid, JobError>>;

    fn handle(&mut self, msg: StartJob, _: &mut Self::Context) -> Self::Result {
        let StartJob { request, trigger } = msg;
        let done = |r| AtomicResponse::new(Box::pin(actix::fut::ready(r)));
        let Some(executors) = &self.executors else {
            return done(Err(JobError::Starting));
        };
        if let JobRequest::BinRefresh {
            circuit: Some(c), ..
        } = &request
        {
            if !executors.pollers.iter().any(|(p, _)| p == c) {
                return done(Err(JobError::DisabledCircuit(*c)));
            }
        }
        let slot = Self::slot(&request);
        if let Some(running) = self.running.get_mut(&slot) {
            running.again |= trigger.is_routine() && slot.0 == JobKind::ParCycle;
            if !trigger.is_routine() {
                running.keep.store(true, Ordering::Relaxed);
            }
            if matches!(request, JobRequest::ParCycle { scan: true, .. }) {
                running.scan.store(true, Ordering::Relaxed);
            }
            return done(Ok(running.id));
        }
        let (pool, owner) = (self.pool.clone(), self.owner);
        let (kind, scope, by) = (request.kind(), request.scope(), trigger.by().to_owned());
        let fut = async move { jobs::start(&pool, owner, kind.as_str(), &scope, &by).await };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(
            move |started, act, ctx| {
                let (id, created) = started?;
                // Created: this process runs it; otherwise another replica does.
                if created {
                    let keep = Arc::new(AtomicBool::new(!trigger.is_routine()));
                    let wants_scan = matches!(request, JobRequest::ParCycle { scan: true, .. });
                    let scan = Arc::new(AtomicBool::new(wants_scan));
                    let running = Running {
                        id,
                        again: false,
                        keep: keep.clone(),
                        scan: scan.clone(),
                    };
                    act.running.insert(slot, running);
                    act.spawn(ctx, id, request, keep, scan);
                } else if slot.0 == JobKind::ParCycle && trigger.is_routine() && !act.cycle_retry {
                    act.cycle_retry = true;
                    ctx.run_later(JOINED_ELSEWHERE_RETRY, move |act, ctx| {
                        act.cycle_retry = false;
                        ctx.notify(StartJob { request, trigger });
                    });
                }
                Ok(id)
            },
        )))
    }
}

impl Handler<ListJobs> for JobRunner {
    type Result = ResponseFuture<Result<Vec<jobs::Job>, JobError>>;

    fn handle(&mut self, msg: ListJobs, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { Ok(jobs::recent(&pool, msg.limit).await?) })
    }
}

impl Handler<GetJob> for JobRunner {
    type Result = ResponseFuture<Result<Option<jobs::Job>, JobError>>;

    fn handle(&mut self, msg: GetJob, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { Ok(jobs::get(&pool, msg.id).await?) })
    }
}

impl Handler<crate::actors::Ping> for JobRunner {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: 16,
            in_flight: self.running.len(),
        })
    }
}
