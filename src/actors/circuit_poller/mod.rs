//! CircuitPoller: one per circuit, owns that circuit's token BIN ranges and their daily refresh
//! (and admin-forced ones). A refresh fetches the complete set, validates it with [`rules`] and
//! replaces the stored set in one transaction; any failure changes nothing and is recorded.

pub mod rules;

use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised};
use deadpool_postgres::Pool;

use crate::circuits::spec::ClientSpec;
use crate::circuits::{factory, CallError, CircuitClient};
use crate::config::BinRefreshSettings;
use crate::db::bin_ranges;
use crate::domain::Circuit;
use crate::metrics::Metrics;
use crate::retry::{self, Retryable};

/// Why a refresh changed nothing (the previous ranges stay).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The circuit client could not be built.
    #[error("circuit client unavailable")]
    NoClient,
    /// The circuit did not give the set.
    #[error("fetch failed: {0}")]
    Fetch(#[from] CallError),
    /// The set is malformed.
    #[error("set refused: {0}")]
    Refused(#[from] rules::SetError),
    /// The set is much smaller than the current one (and not forced).
    #[error(
        "set refused: {got} ranges is below {min_ratio} of the current {current} (force to accept)"
    )]
    Shrunken {
        /// Ranges received.
        got: usize,
        /// Ranges stored.
        current: i64,
        /// The configured ratio.
        min_ratio: f64,
    },
    /// The database failed.
    #[error("cannot store: {0}")]
    Db(#[from] crate::db::DbError),
}

/// Request: refresh now. Answers the number of ranges stored, or why nothing changed.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, RefreshError>")]
pub struct RefreshBinRanges {
    /// Accept a set much smaller than the current one.
    pub forced: bool,
    /// A scheduled refresh: the scheduled time it stands for. Replicas take turns, and one that
    /// finds a refresh done at or after that time (by another replica) does not ask again.
    /// `None` (an operator's request): always ask.
    pub due: Option<chrono::DateTime<chrono::Utc>>,
}

/// Request: the circuit's stored ranges and the state of its last refresh.
#[derive(Debug, Message)]
#[rtype(result = "Result<bin_ranges::RefreshState, crate::db::DbError>")]
pub struct GetBinState;

/// The poller.
pub struct CircuitPoller {
    circuit: Circuit,
    spec: ClientSpec,
    client: Option<Rc<dyn CircuitClient>>,
    pool: Pool,
    metrics: Metrics,
    settings: BinRefreshSettings,
    refresh_at: chrono::NaiveTime,
    /// One refresh at a time; a second request waits and then refreshes again.
    busy: Rc<tokio::sync::Mutex<()>>,
}

impl CircuitPoller {
    /// A poller for `spec.circuit`, refreshing daily at `refresh_at` (Europe/Rome).
    pub fn new(
        spec: ClientSpec,
        pool: Pool,
        metrics: Metrics,
        settings: BinRefreshSettings,
        refresh_at: chrono::NaiveTime,
    ) -> Self {
        CircuitPoller {
            circuit: spec.circuit,
            spec,
            client: None,
            pool,
            metrics,
            settings,
            refresh_at,
            busy: Rc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Its name in status reports and audit columns.
    pub fn name(circuit: Circuit) -> &'static str {
        match circuit {
            Circuit::Visa => "circuit-poller:VISA",
            Circuit::Mastercard => "circuit-poller:MASTERCARD",
            Circuit::Amex => "circuit-poller:AMEX",
        }
    }

    fn schedule_next(&self, ctx: &mut Context<Self>) {
        let now = chrono::Utc::now();
        let wait = crate::domain::daily::until_next(now, self.refresh_at);
        // The slot is fixed now: a timer firing a little early still stands for today's.
        let slot = now + chrono::Duration::from_std(wait).unwrap_or_default();
        tracing::info!(circuit = %self.circuit, in_secs = wait.as_secs(), "next BIN range refresh scheduled");
        ctx.run_later(wait, move |act, ctx| {
            ctx.address().do_send(RefreshBinRanges {
                forced: false,
                due: Some(slot),
            });
            act.schedule_next(ctx);
        });
    }
}

impl Actor for CircuitPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match factory::build(self.spec.clone(), self.metrics.clone(), 2) {
            Ok(client) => self.client = Some(Rc::from(client)),
            Err(e) => {
                tracing::error!(circuit = %self.circuit, error = %e, "cannot build the circuit client; BIN refreshes fail")
            }
        }
        if self.settings.on_start {
            // A first start, or a scheduled refresh missed while no replica ran.
            let slot = crate::domain::daily::last_at_or_before(chrono::Utc::now(), self.refresh_at);
            ctx.address().do_send(RefreshBinRanges {
                forced: false,
                due: Some(slot),
            });
        }
        self.schedule_next(ctx);
    }
}

impl Supervised for CircuitPoller {}

/// The wait before another try after `error`, given the policy's `backoff` (`None`: give up).
/// Transient errors wait the backoff ([`retry::bin_fetch`]: 1 s, 2 s, 4 s…); a `429` waits its
/// `Retry-After` (the transport capped it at `circuits.max_retry_after_secs`) or that backoff
/// when it gave none; other errors are final.
fn retry_wait(error: &CallError, backoff: Option<Duration>) -> Option<Duration> {
    let backoff = backoff?;
    match error {
        CallError::RateLimited { retry_after } => Some(retry_after.unwrap_or(backoff)),
        e if e.is_transient() => Some(backoff),
        _ => None,
    }
}

/// Fetches with `attempts` tries on transient errors and `429`s.
async fn fetch(
    client: &dyn CircuitClient,
    attempts: u32,
) -> Result<Vec<crate::circuits::RawBinRange>, CallError> {
    (|| client.fetch_bin_ranges())
        .retry(retry::bin_fetch(attempts).builder())
        .adjust(retry_wait)
        .await
}

impl Handler<RefreshBinRanges> for CircuitPoller {
    type Result = ResponseFuture<Result<usize, RefreshError>>;

    fn handle(&mut self, msg: RefreshBinRanges, _: &mut Self::Context) -> Self::Result {
        let (circuit, pool, metrics, settings, busy) = (
            self.circuit,
            self.pool.clone(),
            self.metrics.clone(),
            self.settings.clone(),
            self.busy.clone(),
        );
        let client = self.client.clone();
        Box::pin(async move {
            let _one_at_a_time = busy.lock().await;
            let by = CircuitPoller::name(circuit);
            let _turn = match msg.due {
                Some(slot) => match bin_ranges::take_turn(&pool, circuit, slot).await? {
                    Some(turn) => Some(turn),
                    None => return refreshed_elsewhere(&pool, circuit, &metrics).await,
                },
                None => None,
            };
            let outcome = async {
                let client = client.ok_or(RefreshError::NoClient)?;
                let raws = fetch(client.as_ref(), settings.attempts).await?;
                let ranges = rules::validate_set(circuit, &raws)?;
                match bin_ranges::replace(
                    &pool,
                    circuit,
                    &ranges,
                    settings.min_ratio,
                    msg.forced,
                    by,
                )
                .await?
                {
                    Ok(()) => Ok(ranges.len()),
                    Err(current) => Err(RefreshError::Shrunken {
                        got: ranges.len(),
                        current,
                        min_ratio: settings.min_ratio,
                    }),
                }
            }
            .await;
            match &outcome {
                Ok(n) => {
                    tracing::info!(circuit = %circuit, ranges = n, "BIN ranges refreshed");
                    metrics
                        .bin_ranges
                        .with_label_values(&[circuit.as_str()])
                        .set(*n as i64);
                    metrics
                        .bin_refresh_timestamp
                        .with_label_values(&[circuit.as_str()])
                        .set(chrono::Utc::now().timestamp());
                }
                Err(e) => {
                    tracing::warn!(circuit = %circuit, error = %e, "BIN range refresh failed; the previous ranges stay");
                    let why = e.to_string();
                    if let Err(db) = bin_ranges::record_failure(&pool, circuit, &why, by).await {
                        tracing::warn!(circuit = %circuit, error = %db, "cannot record the failed refresh");
                    }
                }
            }
            outcome
        })
    }
}

/// A scheduled refresh another replica has done: nothing to ask; this replica's gauges show the
/// stored set (the refresh-age alert reads any replica).
async fn refreshed_elsewhere(
    pool: &Pool,
    circuit: Circuit,
    metrics: &Metrics,
) -> Result<usize, RefreshError> {
    let conn = pool.get().await.map_err(crate::db::DbError::from)?;
    let state = bin_ranges::state(&conn, circuit).await?;
    tracing::info!(circuit = %circuit, ranges = state.ranges, "BIN ranges already refreshed by another replica");
    metrics
        .bin_ranges
        .with_label_values(&[circuit.as_str()])
        .set(state.ranges);
    if let Some(at) = state.last_success {
        metrics
            .bin_refresh_timestamp
            .with_label_values(&[circuit.as_str()])
            .set(at.timestamp());
    }
    Ok(usize::try_from(state.ranges).unwrap_or(0))
}

impl Handler<GetBinState> for CircuitPoller {
    type Result = ResponseFuture<Result<bin_ranges::RefreshState, crate::db::DbError>>;

    fn handle(&mut self, _: GetBinState, _: &mut Self::Context) -> Self::Result {
        let (pool, circuit) = (self.pool.clone(), self.circuit);
        Box::pin(async move {
            let conn = pool.get().await?;
            bin_ranges::state(&conn, circuit).await
        })
    }
}

impl Handler<crate::actors::Ping> for CircuitPoller {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: "circuit-poller",
            mailbox_capacity: 16,
            // One refresh at a time; others wait for it.
            in_flight: usize::from(self.busy.try_lock().is_err()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_fetches_retry_transient_errors_and_429s_only() {
        let secs = |s| Some(Duration::from_secs(s));
        // Three attempts: two waits, then the policy gives up (`None`).
        let mut waits = retry::bin_fetch(3).delays();
        let (first, second, third) = (waits.next(), waits.next(), waits.next());
        assert_eq!((first, second, third), (secs(1), secs(2), None));
        assert_eq!(retry_wait(&CallError::Timeout, first), secs(1));
        assert_eq!(retry_wait(&CallError::Server(503), second), secs(2));
        assert_eq!(retry_wait(&CallError::Server(503), third), None);
        let limited = |s: Option<u64>| CallError::RateLimited {
            retry_after: s.map(Duration::from_secs),
        };
        assert_eq!(retry_wait(&limited(Some(30)), first), secs(30));
        assert_eq!(retry_wait(&limited(None), second), secs(2));
        assert_eq!(retry_wait(&limited(Some(30)), third), None);
        assert_eq!(
            retry_wait(&CallError::Refused("HTTP 403".into()), first),
            None
        );
        assert_eq!(retry_wait(&CallError::Malformed("x".into()), first), None);
    }
}
