//! ParResolver: asks the circuits for the PARs of eligible cards and tokens. The coordinator
//! queues what is owed (key-set paging) and runs cycles over one [`lane::Lane`] per circuit, each
//! with its client, its rate gate and its workers on an arbiter of its own.

pub mod gate;
pub mod lane;
pub mod outcome;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised, WrapFuture,
};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::actors::job_runner::{JobRunner, StartJob};
use crate::config::ParResolverSettings;
use crate::db::{jobs, par_lookups};
use crate::domain::{Circuit, JobRequest, Trigger};
use lane::{GetLaneStatus, Lane, LaneStatus, RunRound};

/// Request (from the job runner): run cycle `job` — queue what is owed (when `scan`), then run
/// every lane's round; answers the number of lookups asked.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, ResolverError>")]
pub struct RunCycle {
    /// The job it runs as (progress).
    pub job: Uuid,
    /// Only this circuit (all by default).
    pub circuit: Option<Circuit>,
    /// At most this many lookups per circuit.
    pub limit: Option<u64>,
    /// Queue every lookup owed first (a step of the eligibility sweep); may be set while the
    /// cycle runs (an operator's refresh joined it): the cycle then scans and runs again.
    pub scan: Arc<AtomicBool>,
}

/// Why a cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// Some lanes failed their round.
    #[error("{0}")]
    Lanes(LaneFailures),
}

/// The lanes that failed a round, each with why.
#[derive(Debug)]
pub struct LaneFailures(pub Vec<(Circuit, lane::LaneError)>);

impl std::fmt::Display for LaneFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(c, e)| format!("{c}: {e}")).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Request: per circuit, its lane's gate state (enabled circuits), today's lookups and the
/// lookups still owed.
#[derive(Debug, Message)]
#[rtype(result = "Result<BTreeMap<Circuit, CircuitLookups>, crate::db::DbError>")]
pub struct GetResolverStatus;

/// One circuit's lookups as `/admin/status` shows them.
#[derive(Debug, Clone, Copy)]
pub struct CircuitLookups {
    /// The lane's gate state (`None`: the circuit is not enabled).
    pub lane: Option<LaneStatus>,
    /// Lookups made today (Europe/Rome day).
    pub today: i64,
    /// Lookups still owed, per lane, and the age of the oldest card lookup.
    pub pending: par_lookups::Pending,
}

/// The coordinator.
pub struct ParResolver {
    pool: Pool,
    lanes: Vec<(Circuit, actix::Addr<Lane>)>,
    settings: ParResolverSettings,
    wakeup: Arc<tokio::sync::Notify>,
    jobs: actix::Addr<JobRunner>,
    metrics: crate::metrics::Metrics,
    /// Cycles and status reads in flight.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// When a cycle last scanned the cards and tokens for lookups owed (a safety net: card
    /// batches and consent changes queue their lookups themselves).
    last_scan: Option<std::time::Instant>,
}

impl ParResolver {
    /// The name in status reports.
    pub const NAME: &'static str = "par-resolver";

    /// A coordinator over `lanes`, woken by `wakeup` (batches and consent changes that queued
    /// lookups); its cycles run as jobs of `jobs`.
    pub fn new(
        pool: Pool,
        lanes: Vec<(Circuit, actix::Addr<Lane>)>,
        settings: ParResolverSettings,
        wakeup: Arc<tokio::sync::Notify>,
        jobs: actix::Addr<JobRunner>,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        ParResolver {
            pool,
            lanes,
            settings,
            wakeup,
            jobs,
            metrics,
            in_flight: Arc::default(),
            last_scan: None,
        }
    }

    /// Asks the job runner for a cycle (it joins or coalesces with a running one).
    fn ask_cycle(&self, ctx: &mut Context<Self>, trigger: Trigger, scan: bool) {
        let request = self.jobs.send(StartJob {
            request: JobRequest::ParCycle {
                circuit: None,
                limit: None,
                scan,
            },
            trigger,
        });
        ctx.spawn(
            async move {
                match request.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot start a PAR cycle"),
                    Err(e) => tracing::warn!(error = %e, "job runner unavailable"),
                }
            }
            .into_actor(self),
        );
    }
}

/// How often the pending lookups are counted for the metric.
const PENDING_EVERY: Duration = Duration::from_secs(15);

/// Sweep pages per scanning cycle (of `par_resolver.enqueue_page` candidates each).
const SWEEP_PAGES_PER_CYCLE: usize = 20;

/// One cycle: queue what is owed (when `scan`), then run every lane's round, reporting progress
/// on the job. A scan asked for while the rounds ran (an operator's refresh joined this cycle)
/// is done before the cycle ends, with rounds for what it queued.
async fn cycle(
    pool: &Pool,
    settings: &ParResolverSettings,
    lanes: &[(Circuit, actix::Addr<Lane>)],
    job: Uuid,
    limit: Option<u64>,
    scan: &AtomicBool,
) -> Result<i64, ResolverError> {
    let mut scanned = false;
    let mut asked = 0i64;
    loop {
        if scan.load(Ordering::Relaxed) {
            sweep_step(pool, settings).await?;
            scanned = true;
        }
        asked = asked.saturating_add(rounds(pool, lanes, job, limit, asked).await?);
        if scanned || !scan.load(Ordering::Relaxed) {
            return Ok(asked);
        }
    }
}

/// Queues what is owed: the sweep goes on from where the last one stopped, a bounded number of
/// pages a cycle.
async fn sweep_step(pool: &Pool, settings: &ParResolverSettings) -> Result<(), ResolverError> {
    for _ in 0..SWEEP_PAGES_PER_CYCLE {
        let (_, wrapped) = par_lookups::sweep(pool, settings.enqueue_page).await?;
        if wrapped {
            break;
        }
    }
    Ok(())
}

/// Every lane's round over what is queued; the lookups asked (the job's progress counts on from
/// `before`, the lookups of the cycle's earlier rounds).
async fn rounds(
    pool: &Pool,
    lanes: &[(Circuit, actix::Addr<Lane>)],
    job: Uuid,
    limit: Option<u64>,
    before: i64,
) -> Result<i64, ResolverError> {
    let mut total = 0i64;
    for (circuit, _) in lanes {
        let owed = par_lookups::backlog(pool, *circuit).await?;
        total += limit.map_or(owed, |l| owed.min(l as i64));
    }
    // Progress is informative: a failed update must not fail the cycle.
    let _ = jobs::progress(pool, job, before, Some(before.saturating_add(total))).await;
    let progress = Arc::new(AtomicU64::new(0));
    let rounds = futures_util::future::join_all(lanes.iter().map(|(circuit, lane)| {
        let request = lane.send(RunRound {
            limit,
            progress: progress.clone(),
        });
        async move {
            match request.await {
                Ok(Ok(report)) => {
                    tracing::info!(circuit = %circuit, leased = report.leased, found = report.found, not_yet = report.not_yet, failed = report.failed, "PAR round done");
                    Ok(())
                }
                Ok(Err(e)) => Err((*circuit, e)),
                Err(_) => Err((*circuit, lane::LaneError::Unavailable)),
            }
        }
    }));
    tokio::pin!(rounds);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let results = loop {
        tokio::select! {
            results = &mut rounds => break results,
            _ = ticker.tick() => {
                let done = progress.load(Ordering::Relaxed) as i64;
                let _ = jobs::progress(pool, job, before.saturating_add(done), None).await;
            }
        }
    };
    let done = progress.load(Ordering::Relaxed) as i64;
    let _ = jobs::progress(
        pool,
        job,
        before.saturating_add(done),
        Some(before.saturating_add(total.max(done))),
    )
    .await;
    let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(total.max(done))
    } else {
        Err(ResolverError::Lanes(LaneFailures(errors)))
    }
}

impl Actor for ParResolver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.mailbox_capacity);
        // The queue per lane, for `tkm_par_lookups_pending`.
        ctx.run_interval(PENDING_EVERY, |act, ctx| {
            let (pool, metrics) = (act.pool.clone(), act.metrics.clone());
            let lanes = act.lanes.clone();
            ctx.spawn(
                async move {
                    // How long each circuit stays paused, for `tkm_circuit_paused_seconds`.
                    for (circuit, lane) in &lanes {
                        if let Ok(status) = lane.send(GetLaneStatus).await {
                            let paused = i64::try_from(status.paused_secs).unwrap_or(i64::MAX);
                            metrics
                                .circuit_paused
                                .with_label_values(&[circuit.as_str()])
                                .set(paused);
                        }
                    }
                    for circuit in Circuit::ALL {
                        match par_lookups::pending(&pool, circuit).await {
                            Ok(p) => {
                                let gauge = &metrics.par_lookups_pending;
                                gauge
                                    .with_label_values(&[circuit.as_str(), "card"])
                                    .set(p.cards);
                                gauge
                                    .with_label_values(&[circuit.as_str(), "token"])
                                    .set(p.tokens);
                            }
                            Err(e) => tracing::debug!(error = ?e, "cannot count pending lookups"),
                        }
                    }
                }
                .into_actor(act),
            );
        });
        ctx.run_interval(
            Duration::from_secs(self.settings.interval_secs),
            |act, ctx| {
                let full = Duration::from_secs(act.settings.full_scan_hours.saturating_mul(3600));
                let scan = act.last_scan.is_none_or(|at| at.elapsed() >= full);
                act.ask_cycle(ctx, Trigger::Schedule, scan);
            },
        );
        // A card batch or consent change queued lookups: a cycle now, or right after the
        // running one (the job runner coalesces).
        let (wakeup, addr) = (self.wakeup.clone(), ctx.address());
        ctx.spawn(
            async move {
                loop {
                    wakeup.notified().await;
                    if addr.send(Wake).await.is_err() {
                        break;
                    }
                }
            }
            .into_actor(self),
        );
        // The first cycle queues whatever was left owed before a restart.
        self.ask_cycle(ctx, Trigger::StartUp, true);
    }
}

impl Supervised for ParResolver {}

#[derive(Message)]
#[rtype(result = "()")]
struct Wake;

impl Handler<Wake> for ParResolver {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.ask_cycle(ctx, Trigger::WakeUp, false);
    }
}

impl Handler<RunCycle> for ParResolver {
    type Result = ResponseFuture<Result<i64, ResolverError>>;

    fn handle(&mut self, msg: RunCycle, _: &mut Self::Context) -> Self::Result {
        let lanes: Vec<_> = self
            .lanes
            .iter()
            .filter(|(c, _)| msg.circuit.is_none_or(|only| only == *c))
            .cloned()
            .collect();
        if msg.scan.load(Ordering::Relaxed) {
            self.last_scan = Some(std::time::Instant::now());
        }
        let (pool, settings) = (self.pool.clone(), self.settings.clone());
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let result = cycle(&pool, &settings, &lanes, msg.job, msg.limit, &msg.scan).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            result
        })
    }
}

impl Handler<GetResolverStatus> for ParResolver {
    type Result = ResponseFuture<Result<BTreeMap<Circuit, CircuitLookups>, crate::db::DbError>>;

    fn handle(&mut self, _: GetResolverStatus, _: &mut Self::Context) -> Self::Result {
        let (lanes, pool) = (self.lanes.clone(), self.pool.clone());
        Box::pin(async move {
            let mut out = BTreeMap::new();
            for circuit in Circuit::ALL {
                let lane = match lanes.iter().find(|(c, _)| *c == circuit) {
                    Some((_, lane)) => lane.send(GetLaneStatus).await.ok(),
                    None => None,
                };
                let lookups = CircuitLookups {
                    lane,
                    today: par_lookups::calls_today(&pool, circuit).await?,
                    pending: par_lookups::pending(&pool, circuit).await?,
                };
                out.insert(circuit, lookups);
            }
            Ok(out)
        })
    }
}

impl Handler<crate::actors::Ping> for ParResolver {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: self.settings.mailbox_capacity,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        })
    }
}
