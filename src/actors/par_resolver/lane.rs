//! One circuit's lane: the actor that owns the circuit's client (built on its own arbiter, so the
//! circuits' crypto runs on different threads) and gate, and runs rounds of lookups.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Context, Handler, Message, ResponseActFuture, Supervised, WrapFuture,
};

use super::gate::{Gate, Pauses, TokenShare};
use super::worker::{round, Deps, RoundReport};
use crate::circuits::spec::ClientSpec;
use crate::circuits::{factory, CircuitClient};

/// Why a lane's round failed.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    /// The circuit client could not be built (its credentials or TLS set-up).
    #[error("circuit client unavailable")]
    NoClient,
    /// The lane's actor did not answer.
    #[error("lane unavailable")]
    Unavailable,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// Request: run a round now (one at a time per lane; a second waits for the first).
#[derive(Message)]
#[rtype(result = "Result<RoundReport, LaneError>")]
pub struct RunRound {
    /// At most this many lookups.
    pub limit: Option<u64>,
    /// Lookups answered so far (for job progress).
    pub progress: Arc<AtomicU64>,
}

/// Request: the lane's gate state.
#[derive(Message)]
#[rtype(result = "LaneStatus")]
pub struct GetLaneStatus;

/// The gate state `/admin/status` shows.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LaneStatus {
    /// Calls per second allowed now.
    pub rate_per_second: u32,
    /// Seconds the circuit stays paused (429 or breaker), 0 when running.
    pub paused_secs: u64,
}

/// The lane actor.
pub struct Lane {
    deps: Rc<Deps>,
    spec: ClientSpec,
    client: Option<Rc<dyn CircuitClient>>,
    gate: Rc<RefCell<Gate>>,
    token_share: Rc<RefCell<TokenShare>>,
    busy: Rc<tokio::sync::Mutex<()>>,
}

impl Lane {
    /// A lane for `spec.circuit` at `rate`/`burst` calls per second, token checks held to
    /// `token_share` of the rate while card lookups wait.
    pub fn new(deps: Deps, spec: ClientSpec, rate: u32, burst: u32, token_share: f64) -> Self {
        let s = &deps.settings;
        let gate = Gate::new(
            rate,
            burst,
            s.breaker_failures,
            Duration::from_secs(s.breaker_pause_secs),
            Pauses {
                default_retry_after: Duration::from_secs(s.default_retry_after_secs),
                max_retry_after: spec.max_retry_after,
            },
        );
        Lane {
            deps: Rc::new(deps),
            spec,
            client: None,
            gate: Rc::new(RefCell::new(gate)),
            token_share: Rc::new(RefCell::new(TokenShare::new(rate, token_share))),
            busy: Rc::new(tokio::sync::Mutex::new(())),
        }
    }
}

impl Actor for Lane {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let pool = self.deps.settings.concurrency;
        match factory::build(self.spec.clone(), self.deps.metrics.clone(), pool) {
            Ok(client) => self.client = Some(Rc::from(client)),
            Err(e) => {
                tracing::error!(circuit = %self.deps.circuit, error = %e, "cannot build the circuit client; its lookups wait")
            }
        }
    }
}

impl Supervised for Lane {}

impl Handler<RunRound> for Lane {
    type Result = ResponseActFuture<Self, Result<RoundReport, LaneError>>;

    fn handle(&mut self, msg: RunRound, _: &mut Self::Context) -> Self::Result {
        let Some(client) = self.client.clone() else {
            return Box::pin(actix::fut::ready(Err(LaneError::NoClient)));
        };
        let (deps, gate, busy) = (self.deps.clone(), self.gate.clone(), self.busy.clone());
        let share = self.token_share.clone();
        let fut = async move {
            let _one_at_a_time = busy.lock().await;
            Ok(round(deps, client, gate, share, msg.limit, msg.progress).await?)
        };
        Box::pin(fut.into_actor(self).map(|result, _, _| result))
    }
}

impl Handler<GetLaneStatus> for Lane {
    type Result = actix::MessageResult<GetLaneStatus>;

    fn handle(&mut self, _: GetLaneStatus, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let gate = self.gate.borrow();
        actix::MessageResult(LaneStatus {
            rate_per_second: gate.current_rate(now),
            paused_secs: gate.paused_until(now).map_or(0, |until| {
                until.saturating_duration_since(now).as_secs().max(1)
            }),
        })
    }
}
