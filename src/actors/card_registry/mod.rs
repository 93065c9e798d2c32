//! CardRegistry: owns cards, PARs, tokens, citizen↔card links and the outbox of card updates.
//! The actor is thin: batches are applied by `batch` with the plain rules of `rules` and
//! `publish` over the slice of the registry `model` holds.

pub mod batch;
mod handlers;
pub mod messages;
pub mod model;
pub mod publish;
pub mod rules;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use actix::{Actor, Context, Supervised};
use deadpool_postgres::Pool;

use crate::crypto::KeyRing;
use crate::metrics::Metrics;

/// The actor.
pub struct CardRegistry {
    pool: Pool,
    ring: Arc<KeyRing>,
    limits: rules::Limits,
    metrics: Metrics,
    mailbox_capacity: usize,
    /// Woken when card updates were written, so the relay publishes them at once.
    relay_wakeup: Arc<tokio::sync::Notify>,
    /// Woken when consent changes queued PAR lookups, so the resolver asks at once.
    resolver_wakeup: Arc<tokio::sync::Notify>,
}

impl CardRegistry {
    /// The registry's name in status reports and metrics.
    pub const NAME: &'static str = "card-registry";

    /// Builds the registry.
    pub fn new(
        pool: Pool,
        ring: Arc<KeyRing>,
        limits: rules::Limits,
        metrics: Metrics,
        mailbox_capacity: usize,
        relay_wakeup: Arc<tokio::sync::Notify>,
        resolver_wakeup: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            pool,
            ring,
            limits,
            metrics,
            mailbox_capacity,
            relay_wakeup,
            resolver_wakeup,
        }
    }
}

impl Actor for CardRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Supervised for CardRegistry {}
