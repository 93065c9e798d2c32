//! ConsentRegistry: owns citizens' consent and its history, with a cache never stale after a write.

mod cache;
mod handlers;
mod listener;
pub mod messages;
pub mod rules;
pub mod status;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Supervised};
use deadpool_postgres::Pool;

use cache::ConsentCache;

/// How long committed changes wait to be announced together.
const ANNOUNCE_DELAY: Duration = Duration::from_millis(5);

/// The actor. Reads go through the cache; writes go to PostgreSQL and then refresh the cache.
pub struct ConsentRegistry {
    pool: Pool,
    pg: tokio_postgres::Config,
    cache: ConsentCache,
    mailbox_capacity: usize,
    inflight: crate::actors::inflight::InFlight,
    listener: Option<actix::SpawnHandle>,
    /// `TAXCODE:version` of committed changes not yet announced to other replicas.
    unannounced: Vec<String>,
    announce_scheduled: bool,
}

/// Settings of the registry.
#[derive(Clone, Copy, Debug)]
pub struct RegistryLimits {
    /// Citizens in the cache.
    pub cache_capacity: usize,
    /// Cache TTL.
    pub cache_ttl: Duration,
    /// Mailbox bound, and bound on the requests in flight to the database.
    pub mailbox_capacity: usize,
}

impl ConsentRegistry {
    /// Builds the registry; `pg` opens its dedicated LISTEN connection for other replicas' changes.
    /// Work that reaches the database is bounded by `inflight`.
    pub fn new(
        pool: Pool,
        pg: tokio_postgres::Config,
        limits: RegistryLimits,
        inflight: crate::actors::inflight::InFlight,
    ) -> Self {
        Self {
            pool,
            pg,
            cache: ConsentCache::new(limits.cache_capacity, limits.cache_ttl),
            mailbox_capacity: limits.mailbox_capacity,
            inflight,
            listener: None,
            unannounced: Vec::new(),
            announce_scheduled: false,
        }
    }

    /// Queues the announcement of a committed change; changes are announced in batches a few
    /// milliseconds apart (one NOTIFY statement per batch).
    fn announce(&mut self, ctx: &mut Context<Self>, tax: &str, version: i64) {
        self.unannounced.push(format!("{tax}:{version}"));
        if self.announce_scheduled {
            return;
        }
        self.announce_scheduled = true;
        ctx.run_later(ANNOUNCE_DELAY, |act, ctx| {
            act.announce_scheduled = false;
            let batch = std::mem::take(&mut act.unannounced);
            let pool = act.pool.clone();
            ctx.spawn(actix::fut::wrap_future(async move {
                if let Err(e) = crate::db::consent::notify_changes(&pool, &batch).await {
                    // Replicas that missed it re-read the citizen within the cache TTL (and
                    // flush everything when their listener reconnects).
                    tracing::warn!(error = ?e, changes = batch.len(), "cannot announce consent changes");
                }
            }));
        });
    }

    /// The registry's name in status reports and metrics.
    pub const NAME: &'static str = "consent-registry";
}

impl Actor for ConsentRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        let handle = ctx.spawn(actix::fut::wrap_future(listener::listen(
            Arc::new(self.pg.clone()),
            ctx.address(),
        )));
        self.listener = Some(handle);
    }
}

impl Supervised for ConsentRegistry {
    fn restarting(&mut self, ctx: &mut Self::Context) {
        // Whatever made it stop, the cache may be behind the database: start cold.
        self.cache.clear();
        if let Some(h) = self.listener.take() {
            ctx.cancel_future(h);
        }
    }
}
