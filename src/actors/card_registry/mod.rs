//! CardRegistry: owns cards, PARs, tokens, citizen↔card links and the card updates they cause.
//! The actor is thin: a batch is one transaction of `db::cards` applying the plain rules of
//! `domain::cards`; the actor wakes the relay and the resolver after it and counts conflicts.

mod handlers;
pub mod messages;

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Supervised};
use deadpool_postgres::Pool;

use crate::crypto::KeyRing;
use crate::metrics::Metrics;

/// Who the registry wakes after a commit.
pub struct Wakeups {
    /// The outbox relay (card updates were written).
    pub relay: Arc<tokio::sync::Notify>,
    /// The PAR resolver (lookups were queued).
    pub resolver: Arc<tokio::sync::Notify>,
}

/// The actor.
pub struct CardRegistry {
    pool: Pool,
    ring: Arc<KeyRing>,
    limits: crate::domain::cards::Limits,
    metrics: Metrics,
    mailbox_capacity: usize,
    inflight: crate::actors::inflight::InFlight,
    /// Woken when card updates were written, so the relay publishes them at once.
    relay_wakeup: Arc<tokio::sync::Notify>,
    /// Woken when batches or consent changes queued PAR lookups, so the resolver asks at once.
    resolver_wakeup: Arc<tokio::sync::Notify>,
    /// How long applied messages' ids are remembered (redeliveries are recognised meanwhile).
    dedup_retention: std::time::Duration,
}

impl CardRegistry {
    /// The registry's name in status reports and metrics.
    pub const NAME: &'static str = "card-registry";

    /// Builds the registry.
    pub fn new(
        pool: Pool,
        ring: Arc<KeyRing>,
        limits: crate::domain::cards::Limits,
        metrics: Metrics,
        mailbox_capacity: usize,
        wakeups: Wakeups,
        dedup_retention: std::time::Duration,
    ) -> Self {
        Self {
            pool,
            ring,
            limits,
            inflight: crate::actors::inflight::InFlight::new(
                mailbox_capacity,
                metrics.actor_mailbox.with_label_values(&[Self::NAME]),
            ),
            metrics,
            mailbox_capacity,
            relay_wakeup: wakeups.relay,
            resolver_wakeup: wakeups.resolver,
            dedup_retention,
        }
    }
}

impl Actor for CardRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        // Forget applied messages' ids past the retention, hourly (and once at start).
        ctx.run_later(std::time::Duration::from_secs(5), |act, ctx| {
            act.forget(ctx)
        });
        ctx.run_interval(std::time::Duration::from_secs(3600), |act, ctx| {
            act.forget(ctx)
        });
    }
}

impl CardRegistry {
    fn forget(&mut self, ctx: &mut Context<Self>) {
        let (pool, retention) = (self.pool.clone(), self.dedup_retention);
        ctx.spawn(actix::fut::wrap_future(async move {
            match crate::db::inbound::forget_older_than(&pool, retention).await {
                Ok(n) if n > 0 => tracing::debug!(forgotten = n, "old inbound message ids dropped"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "cannot drop old inbound message ids"),
            }
        }));
    }
}

impl Supervised for CardRegistry {}
