//! ParResolver: asks the circuits for the PARs of eligible cards and tokens. The coordinator
//! queues what is owed (key-set paging) and runs cycles over one [`lane::Lane`] per circuit, each
//! with its client, its rate gate and its workers on an arbiter of its own.

pub mod gate;
pub mod lane;
pub mod outcome;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture,
    ResponseFuture, Supervised, WrapFuture,
};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::config::ParResolverSettings;
use crate::db::{jobs, par_lookups};
use crate::domain::Circuit;
use lane::{GetLaneStatus, Lane, LaneStatus, RunRound};

/// The job kind of a cycle.
pub const JOB_KIND: &str = "par-refresh";

/// Request: run a cycle now; answers the job id (the running cycle's if one runs).
#[derive(Debug, Message)]
#[rtype(result = "Result<Uuid, String>")]
pub struct ResolveNow {
    /// Only this circuit (all by default).
    pub circuit: Option<Circuit>,
    /// At most this many lookups per circuit.
    pub limit: Option<u64>,
    /// Who asked (audit).
    pub by: String,
}

/// Request: every lane's gate state.
#[derive(Debug, Message)]
#[rtype(result = "BTreeMap<Circuit, LaneStatus>")]
pub struct GetResolverStatus;

/// The coordinator.
pub struct ParResolver {
    pool: Pool,
    lanes: Vec<(Circuit, actix::Addr<Lane>)>,
    settings: ParResolverSettings,
    wakeup: Arc<tokio::sync::Notify>,
    running: Option<Uuid>,
    again: bool,
    /// When a cycle last scanned the cards and tokens for lookups owed (a safety net: card
    /// batches and consent changes queue their lookups themselves).
    last_scan: Option<std::time::Instant>,
}

impl ParResolver {
    /// The name in status reports.
    pub const NAME: &'static str = "par-resolver";

    /// A coordinator over `lanes`, woken by `wakeup` (consent changes that queued lookups).
    pub fn new(
        pool: Pool,
        lanes: Vec<(Circuit, actix::Addr<Lane>)>,
        settings: ParResolverSettings,
        wakeup: Arc<tokio::sync::Notify>,
    ) -> Self {
        ParResolver {
            pool,
            lanes,
            settings,
            wakeup,
            running: None,
            again: false,
            last_scan: None,
        }
    }

    /// Starts a cycle unless one runs; answers the job id. `scan`: queue every lookup owed first.
    fn start_cycle(
        &mut self,
        circuit: Option<Circuit>,
        limit: Option<u64>,
        by: String,
        scan: bool,
    ) -> ResponseActFuture<Self, Result<Uuid, String>> {
        if let Some(id) = self.running {
            return Box::pin(actix::fut::ready(Ok(id)));
        }
        let pool = self.pool.clone();
        let scope = circuit.map_or("ALL", Circuit::as_str).to_string();
        // Scheduled and wake-up cycles that find nothing to ask leave no job behind.
        let routine = by == "schedule" || by == "wake-up";
        let fut = async move { jobs::start(&pool, JOB_KIND, &scope, &by).await };
        Box::pin(fut.into_actor(self).map(move |started, act, ctx| {
            let (id, created) = started.map_err(|e| e.to_string())?;
            if created && act.running.is_none() {
                act.running = Some(id);
                if scan {
                    act.last_scan = Some(std::time::Instant::now());
                }
                act.spawn_cycle(ctx, id, circuit, limit, scan, routine);
            }
            Ok(id)
        }))
    }

    fn spawn_cycle(
        &mut self,
        ctx: &mut Context<Self>,
        id: Uuid,
        circuit: Option<Circuit>,
        limit: Option<u64>,
        scan: bool,
        routine: bool,
    ) {
        let lanes: Vec<_> = self
            .lanes
            .iter()
            .filter(|(c, _)| circuit.is_none_or(|only| only == *c))
            .cloned()
            .collect();
        let (pool, settings) = (self.pool.clone(), self.settings.clone());
        let fut = async move {
            let outcome = cycle(&pool, &settings, &lanes, id, limit, scan).await;
            if let Err(e) = &outcome {
                tracing::warn!(job = %id, error = %e, "PAR cycle failed");
            }
            if routine && outcome == Ok(0) {
                if let Err(e) = jobs::discard(&pool, id).await {
                    tracing::warn!(job = %id, error = %e, "cannot discard an empty PAR cycle");
                }
                return;
            }
            let result = outcome.as_ref().map(|_| ()).map_err(String::as_str);
            if let Err(e) = jobs::finish(&pool, id, result).await {
                tracing::warn!(job = %id, error = %e, "cannot record the end of a PAR cycle");
            }
        };
        ctx.spawn(fut.into_actor(self).map(|_, act, ctx| {
            act.running = None;
            if std::mem::take(&mut act.again) {
                ctx.spawn(
                    act.start_cycle(None, None, "wake-up".into(), false)
                        .map(|_, _, _| ()),
                );
            }
        }));
    }
}

/// One cycle: queue what is owed (when `scan`), then run every lane's round, reporting progress
/// on the job.
async fn cycle(
    pool: &Pool,
    settings: &ParResolverSettings,
    lanes: &[(Circuit, actix::Addr<Lane>)],
    job: Uuid,
    limit: Option<u64>,
    scan: bool,
) -> Result<i64, String> {
    let (mut after_card, mut after_token) = if scan {
        (Some(0), Some(0))
    } else {
        (None, None)
    };
    while after_card.is_some() || after_token.is_some() {
        let (_, card, token) =
            par_lookups::enqueue_page(pool, after_card, after_token, settings.enqueue_page)
                .await
                .map_err(|e| e.to_string())?;
        (after_card, after_token) = (card, token);
    }
    let mut total = 0i64;
    for (circuit, _) in lanes {
        let owed = par_lookups::backlog(pool, *circuit)
            .await
            .map_err(|e| e.to_string())?;
        total += limit.map_or(owed, |l| owed.min(l as i64));
    }
    // Progress is informative: a failed update must not fail the cycle.
    let _ = jobs::progress(pool, job, 0, Some(total)).await;
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
                Ok(Err(e)) => Err(format!("{circuit}: {e}")),
                Err(e) => Err(format!("{circuit}: lane unavailable ({e})")),
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
                let _ = jobs::progress(pool, job, done, None).await;
            }
        }
    };
    let done = progress.load(Ordering::Relaxed) as i64;
    let _ = jobs::progress(pool, job, done, Some(total.max(done))).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(total.max(done))
    } else {
        Err(errors.join("; "))
    }
}

impl Actor for ParResolver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.mailbox_capacity);
        ctx.run_interval(
            Duration::from_secs(self.settings.interval_secs),
            |act, ctx| {
                let full = Duration::from_secs(act.settings.full_scan_hours * 3600);
                let scan = act.last_scan.is_none_or(|at| at.elapsed() >= full);
                ctx.spawn(
                    act.start_cycle(None, None, "schedule".into(), scan)
                        .map(|_, _, _| ()),
                );
            },
        );
        // A consent change queued lookups: a cycle now, or right after the running one.
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
        ctx.spawn(act_start(self));
    }
}

fn act_start(act: &mut ParResolver) -> ResponseActFuture<ParResolver, ()> {
    Box::pin(
        act.start_cycle(None, None, "start-up".into(), true)
            .map(|_, _, _| ()),
    )
}

impl Supervised for ParResolver {}

#[derive(Message)]
#[rtype(result = "()")]
struct Wake;

impl Handler<Wake> for ParResolver {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Wake, _: &mut Self::Context) -> Self::Result {
        if self.running.is_some() {
            self.again = true;
            return Box::pin(actix::fut::ready(()));
        }
        Box::pin(
            self.start_cycle(None, None, "wake-up".into(), false)
                .map(|_, _, _| ()),
        )
    }
}

impl Handler<ResolveNow> for ParResolver {
    type Result = ResponseActFuture<Self, Result<Uuid, String>>;

    fn handle(&mut self, msg: ResolveNow, _: &mut Self::Context) -> Self::Result {
        self.start_cycle(msg.circuit, msg.limit, msg.by, true)
    }
}

impl Handler<GetResolverStatus> for ParResolver {
    type Result = ResponseFuture<BTreeMap<Circuit, LaneStatus>>;

    fn handle(&mut self, _: GetResolverStatus, _: &mut Self::Context) -> Self::Result {
        let lanes = self.lanes.clone();
        Box::pin(async move {
            let mut out = BTreeMap::new();
            for (circuit, lane) in lanes {
                if let Ok(status) = lane.send(GetLaneStatus).await {
                    out.insert(circuit, status);
                }
            }
            out
        })
    }
}

impl Handler<crate::actors::Ping> for ParResolver {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: self.settings.mailbox_capacity,
        })
    }
}
