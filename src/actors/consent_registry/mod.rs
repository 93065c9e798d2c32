//! ConsentRegistry: owns citizens' consent and its history, with a cache never stale after a write.

mod cache;
mod handlers;
mod listener;
pub mod messages;
pub mod rules;
pub mod status;
pub mod views;

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Supervised};
use deadpool_postgres::Pool;

use cache::ConsentCache;

/// The actor. Reads go through the cache; writes go to PostgreSQL and then refresh the cache.
pub struct ConsentRegistry {
    pool: Pool,
    pg: tokio_postgres::Config,
    cache: ConsentCache,
    mailbox_capacity: usize,
    listener: Option<actix::SpawnHandle>,
}

impl ConsentRegistry {
    /// Builds the registry; `pg` opens its dedicated LISTEN connection for other replicas' changes.
    pub fn new(
        pool: Pool,
        pg: tokio_postgres::Config,
        cache_capacity: usize,
        mailbox_capacity: usize,
    ) -> Self {
        Self {
            pool,
            pg,
            cache: ConsentCache::new(cache_capacity),
            mailbox_capacity,
            listener: None,
        }
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
