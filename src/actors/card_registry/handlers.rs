//! The registry's handlers: each hands its work to the batch module and reports.

use actix::{Handler, ResponseFuture};

use super::messages::{
    ApplyCommands, ApplyUploadRows, BatchReport, CardError, CardView, ConsentChanged, GetCard,
};
use super::CardRegistry;
use crate::actors::{ActorHealth, Ping};
use crate::db::cards::{apply_batch, apply_upload_batch, reconcile_citizens, view, UploadStep};
use crate::domain::truncated;

impl Handler<ApplyCommands> for CardRegistry {
    type Result = ResponseFuture<Result<BatchReport, CardError>>;

    fn handle(&mut self, msg: ApplyCommands, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(async { Err(CardError::Overloaded) });
        };
        let (pool, ring, limits, metrics) = (
            self.pool.clone(),
            self.ring.clone(),
            self.limits,
            self.metrics.clone(),
        );
        let relay = self.relay_wakeup.clone();
        let resolver = self.resolver_wakeup.clone();
        Box::pin(async move {
            let _ticket = ticket;
            let report = apply_batch(&pool, &ring, limits, &msg.commands, &msg.by).await?;
            after_batch(&report, &metrics, &relay, &resolver);
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
        let (pool, ring, limits, metrics) = (
            self.pool.clone(),
            self.ring.clone(),
            self.limits,
            self.metrics.clone(),
        );
        let relay = self.relay_wakeup.clone();
        let resolver = self.resolver_wakeup.clone();
        Box::pin(async move {
            let _ticket = ticket;
            let step = UploadStep {
                upload: msg.upload,
                account: msg.account.as_ref(),
            };
            let report =
                apply_upload_batch(&pool, &ring, limits, &msg.commands, &msg.by, &step).await?;
            after_batch(&report, &metrics, &relay, &resolver);
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
