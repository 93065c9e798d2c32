//! The registry's handlers: each hands its work to the batch module and reports.

use actix::{Handler, ResponseFuture};

use super::messages::{
    ApplyCommands, ApplyUploadRows, BatchReport, CardError, CardView, ConsentChanged, GetCard,
    Outcome,
};
use super::CardRegistry;
use crate::actors::{ActorHealth, Ping};
use crate::db::cards::{apply_batch, apply_upload_batch, reconcile_citizens, view, UploadStep};
use crate::domain::truncated;

/// What a batch's future takes from the registry: its connections, keys, limits, metrics and
/// the wake-ups of those its commits give work to.
struct BatchDeps {
    pool: deadpool_postgres::Pool,
    ring: std::sync::Arc<crate::crypto::KeyRing>,
    limits: crate::domain::cards::Limits,
    metrics: crate::metrics::Metrics,
    relay: std::sync::Arc<tokio::sync::Notify>,
    resolver: std::sync::Arc<tokio::sync::Notify>,
}

impl CardRegistry {
    fn batch_deps(&self) -> BatchDeps {
        BatchDeps {
            pool: self.pool.clone(),
            ring: self.ring.clone(),
            limits: self.limits,
            metrics: self.metrics.clone(),
            relay: self.relay_wakeup.clone(),
            resolver: self.resolver_wakeup.clone(),
        }
    }
}

impl Handler<ApplyCommands> for CardRegistry {
    type Result = ResponseFuture<Result<BatchReport, CardError>>;

    fn handle(&mut self, msg: ApplyCommands, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(async { Err(CardError::Overloaded) });
        };
        let d = self.batch_deps();
        Box::pin(async move {
            let _ticket = ticket;
            let report = apply_batch(&d.pool, &d.ring, d.limits, &msg.commands, &msg.by).await?;
            after_batch(&report, &d.metrics, &d.relay, &d.resolver);
            Ok(report)
        })
    }
}

impl Handler<ApplyUploadRows> for CardRegistry {
    type Result = ResponseFuture<Result<BatchReport, CardError>>;

    fn handle(&mut self, msg: ApplyUploadRows, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(async { Err(CardError::Overloaded) });
        };
        let d = self.batch_deps();
        Box::pin(async move {
            let _ticket = ticket;
            let step = UploadStep {
                upload: msg.upload,
                account: msg.account.as_ref(),
                gate: msg.gate.as_deref(),
            };
            let report =
                apply_upload_batch(&d.pool, &d.ring, d.limits, &msg.commands, &msg.by, &step)
                    .await?;
            after_batch(&report, &d.metrics, &d.relay, &d.resolver);
            // New provisional tokens are owed a check: the resolver's cycle sweeps them in.
            if report
                .outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Applied))
            {
                d.resolver.notify_one();
            }
            Ok(report)
        })
    }
}

/// Wakes who has work from a committed batch, and counts and logs its conflicts.
fn after_batch(
    report: &BatchReport,
    metrics: &crate::metrics::Metrics,
    relay: &tokio::sync::Notify,
    resolver: &tokio::sync::Notify,
) {
    if report.lookups_queued > 0 {
        resolver.notify_one();
    }
    for source in &report.conflicts {
        metrics
            .par_conflicts
            .with_label_values(&[source.as_str()])
            .inc();
    }
    // A more trusted source replaced an association: counted with the conflicts, kept in
    // history (association_event), published by the batch; logged by hashes only.
    for moved in &report.replaced {
        metrics
            .par_conflicts
            .with_label_values(&[moved.source.as_str()])
            .inc();
        tracing::info!(
            subject = moved.subject,
            key = %truncated(&moved.key),
            from = %moved.from.as_deref().map(truncated).unwrap_or_default(),
            to = %truncated(&moved.to),
            source = moved.source.as_str(),
            "PAR association replaced by a more trusted source"
        );
    }
    if report.updates > 0 {
        relay.notify_one();
    }
}

impl Handler<ConsentChanged> for CardRegistry {
    type Result = ResponseFuture<Result<usize, CardError>>;

    fn handle(&mut self, msg: ConsentChanged, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(async { Err(CardError::Overloaded) });
        };
        let (pool, ring) = (self.pool.clone(), self.ring.clone());
        let resolver = self.resolver_wakeup.clone();
        Box::pin(async move {
            let _ticket = ticket;
            let published = reconcile_citizens(
                &pool,
                &ring,
                &msg.tax_codes,
                &msg.outbox_ids,
                "card-registry",
            )
            .await?;
            resolver.notify_one();
            Ok(published)
        })
    }
}

impl Handler<GetCard> for CardRegistry {
    type Result = ResponseFuture<Result<Option<CardView>, CardError>>;

    fn handle(&mut self, msg: GetCard, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(async { Err(CardError::Overloaded) });
        };
        let pool = self.pool.clone();
        Box::pin(async move {
            let _ticket = ticket;
            Ok(view(&pool, &msg.hpan).await?)
        })
    }
}

impl Handler<crate::actors::Crash> for CardRegistry {
    type Result = ();

    #[allow(clippy::panic)] // The point of the message: proving that a panic stops the process.
    fn handle(&mut self, _: crate::actors::Crash, _: &mut Self::Context) {
        panic!("crash requested (drill)");
    }
}

impl Handler<Ping> for CardRegistry {
    type Result = actix::MessageResult<Ping>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(ActorHealth {
            name: Self::NAME,
            mailbox_capacity: self.inflight.capacity(),
            in_flight: self.inflight.current(),
        })
    }
}
