//! The RabbitMQ bridge: declares the topology, consumes the inbound queues into CardRegistry
//! commands (and transaction records into the TransactionMatcher), relays the outbox, and reconnects by itself after broker restarts or network cuts.

mod audit;
mod channels;
pub mod consumer;
pub mod dead_letter;
pub mod relay;
pub mod replay;
mod topology;
pub mod transactions;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, ResponseFuture};
use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::actors::broker::{
    BrokerError, BrokerStatus, GetOutboxState, ListDeadLetters, ListParked, OutboxState,
    ReplayDeadLetter, RetryParked, Shutdown,
};
use crate::actors::{ActorHealth, Ping};
use crate::db::dead_letters::DeadLetter;
use crate::db::outbox::Parked;
use crate::retry::{self, Retryable};
use consumer::{ConsumerDeps, Inbound};
use relay::RelayDeps;

/// The bridge actor: owns the connection loop.
pub struct Bridge {
    consumers: Arc<ConsumerDeps>,
    relay: Arc<RelayDeps>,
    status: Arc<BrokerStatus>,
    shutdown: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    stopped_tx: Option<watch::Sender<bool>>,
}

impl Bridge {
    /// The bridge's name in status reports.
    pub const NAME: &'static str = "bridge";

    /// Builds the bridge (it connects when started).
    pub fn new(
        consumers: Arc<ConsumerDeps>,
        relay: Arc<RelayDeps>,
        status: Arc<BrokerStatus>,
    ) -> Self {
        let (shutdown, _) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        Self {
            consumers,
            relay,
            status,
            shutdown,
            stopped,
            stopped_tx: Some(stopped_tx),
        }
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        // Dead letters' sealed originals are kept for their retention only.
        ctx.run_interval(Duration::from_secs(3600), |act, ctx| {
            let deps = act.consumers.clone();
            ctx.spawn(actix::fut::wrap_future(async move {
                let days = u64::from(deps.settings.dead_letter_retention_days);
                let retention = Duration::from_secs(days.saturating_mul(86_400));
                if let Err(e) =
                    crate::db::dead_letters::forget_older_than(&deps.pool, retention).await
                {
                    tracing::warn!(error = ?e, "cannot drop old dead letters");
                }
            }));
        });
        let (consumers, relay, status) = (
            self.consumers.clone(),
            self.relay.clone(),
            self.status.clone(),
        );
        let shutdown = self.shutdown.subscribe();
        let stopped = self.stopped_tx.take();
        let connection = actix::fut::wrap_future(async move {
            supervise(consumers, relay, status, shutdown).await;
            if let Some(s) = stopped {
                let _ = s.send(true);
            }
        });
        // The connection loop only ends at shutdown; if it ever ends otherwise, the actor
        // stops and its supervisor starts it again with a new loop.
        ctx.spawn(
            connection.map(|_, act: &mut Self, ctx: &mut Context<Self>| {
                if !*act.shutdown.borrow() {
                    tracing::error!("the broker connection loop ended; restarting the bridge");
                    ctx.stop();
                }
            }),
        );
    }
}

impl actix::Supervised for Bridge {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // A new connection loop starts in `started`, with a stop signal of its own.
        let (stopped_tx, stopped) = watch::channel(false);
        self.stopped = stopped;
        self.stopped_tx = Some(stopped_tx);
    }
}

/// Connects, runs the consumers and the relay, and reconnects forever
/// ([`retry::broker_reconnect`]) whenever the connection fails, until shutdown.
async fn supervise(
    consumers: Arc<ConsumerDeps>,
    relay: Arc<RelayDeps>,
    status: Arc<BrokerStatus>,
    shutdown: watch::Receiver<bool>,
) {
    let policy =
        retry::broker_reconnect(Duration::from_millis(consumers.settings.reconnect_max_ms));
    let session = || async {
        // Also after a wait that shutdown cut short.
        if retry::stopping(&shutdown) {
            return Ok(());
        }
        let ended = connect_and_run(&consumers, &relay, &status, shutdown.clone()).await;
        status.set(false);
        ended
    };
    // Forever: it ends with `Ok`, at shutdown, only.
    let _ = session
        .retry(policy.builder())
        .sleep(retry::UntilShutdown::new(shutdown.clone()))
        .notify(|e, wait| {
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "broker connection lost");
        })
        .await;
}

async fn connect_and_run(
    consumers: &Arc<ConsumerDeps>,
    relay: &Arc<RelayDeps>,
    status: &BrokerStatus,
    shutdown: watch::Receiver<bool>,
) -> lapin::Result<()> {
    let s = &consumers.settings;
    let props = ConnectionProperties::default().with_connection_name("tkm".into());
    tracing::debug!("connecting to the broker");
    let conn = Connection::connect(s.url.expose_secret(), props).await?;
    tracing::debug!("broker connection open; declaring the topology");
    let setup = conn.create_channel().await?;
    topology::declare(&setup, s).await?;
    status.set(true);
    tracing::info!("broker connected; topology declared");
    // At shutdown the consumers stop taking deliveries and finish their batch in flight; only
    // then is the relay told to drain, so the card updates of that batch go out before exit.
    let (drain_tx, drain) = watch::channel(false);
    let inbound = async {
        let consumed = tokio::try_join!(
            consumer::run(
                &conn,
                consumers.clone(),
                Inbound::CardEvents,
                shutdown.clone()
            ),
            consumer::run(
                &conn,
                consumers.clone(),
                Inbound::CardDeletions,
                shutdown.clone()
            ),
            transactions::run(&conn, consumers.clone(), shutdown.clone()),
        );
        let _ = drain_tx.send(true);
        consumed
    };
    let result = tokio::try_join!(
        inbound,
        relay::run(&conn, relay.clone(), drain),
        audit::run(&conn, s, &consumers.metrics, shutdown.clone()),
    );
    status.set(false);
    let _ = conn.close(200, "tkm shutting down".into()).await;
    result.map(|_| ())
}

impl Handler<Shutdown> for Bridge {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        let _ = self.shutdown.send(true);
        let mut stopped = self.stopped.clone();
        Box::pin(async move {
            let _ = tokio::time::timeout(msg.timeout, stopped.wait_for(|s| *s)).await;
        })
    }
}

impl Handler<ReplayDeadLetter> for Bridge {
    type Result = ResponseFuture<Result<(), BrokerError>>;

    fn handle(&mut self, msg: ReplayDeadLetter, _: &mut Self::Context) -> Self::Result {
        let deps = self.consumers.clone();
        Box::pin(async move {
            replay::replay(&deps.settings, &deps.pool, &deps.ring, msg.id, &msg.by).await
        })
    }
}

impl Handler<ListDeadLetters> for Bridge {
    type Result = ResponseFuture<Result<Vec<DeadLetter>, BrokerError>>;

    fn handle(&mut self, msg: ListDeadLetters, _: &mut Self::Context) -> Self::Result {
        let pool = self.consumers.pool.clone();
        Box::pin(async move { Ok(crate::db::dead_letters::list(&pool, msg.limit).await?) })
    }
}

impl Handler<ListParked> for Bridge {
    type Result = ResponseFuture<Result<Vec<Parked>, BrokerError>>;

    fn handle(&mut self, msg: ListParked, _: &mut Self::Context) -> Self::Result {
        let pool = self.consumers.pool.clone();
        Box::pin(async move { Ok(crate::db::outbox::parked(&pool, msg.limit).await?) })
    }
}

impl Handler<RetryParked> for Bridge {
    type Result = ResponseFuture<Result<(), BrokerError>>;

    fn handle(&mut self, msg: RetryParked, _: &mut Self::Context) -> Self::Result {
        let (pool, relay) = (self.consumers.pool.clone(), self.relay.clone());
        let wakeup = relay.wakeup.clone();
        Box::pin(async move {
            if !crate::db::outbox::retry(&pool, msg.id, &msg.by).await? {
                return Err(BrokerError::NotFound);
            }
            tracing::info!(id = msg.id, by = %msg.by, "parked outbox row retried");
            if let Ok(mut p) = relay.parked.lock() {
                p.invalidate();
            }
            wakeup.notify_one();
            Ok(())
        })
    }
}

impl Handler<GetOutboxState> for Bridge {
    type Result = ResponseFuture<Result<OutboxState, BrokerError>>;

    fn handle(&mut self, _: GetOutboxState, _: &mut Self::Context) -> Self::Result {
        let pool = self.consumers.pool.clone();
        Box::pin(async move {
            let conn = pool.get().await.map_err(crate::db::DbError::from)?;
            let (backlog, parked) = crate::db::outbox::backlog(&conn).await?;
            Ok(OutboxState { backlog, parked })
        })
    }
}

impl Handler<Ping> for Bridge {
    type Result = actix::MessageResult<Ping>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(ActorHealth {
            name: Self::NAME,
            mailbox_capacity: 16,
            // Its consumers and relay run outside the mailbox; admin requests are rare.
            in_flight: 0,
        })
    }
}
