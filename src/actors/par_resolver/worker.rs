//! One circuit's round of lookups: lease due lookups page by page, ask the circuit through the
//! gate with retries, and settle the answers in batches (PARs through the CardRegistry).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use deadpool_postgres::Pool;
use futures_util::{stream, StreamExt};
use tokio::sync::mpsc;

use super::gate::{acquire, Gate, TokenShare};
use super::outcome::{command_for, BY};
use crate::actors::card_registry::messages::ApplyCommands;
use crate::actors::card_registry::CardRegistry;
use crate::circuits::{Account, CallError, CircuitClient, ParOutcome};
use crate::config::ParResolverSettings;
use crate::crypto::KeyRing;
use crate::db::par_lookups::{self, Lane, Lease, SealedAccount, Settlements};
use crate::domain::{Circuit, Par};
use crate::metrics::Metrics;
use crate::retry::{self, Retryable};

/// Answers settled per transaction.
const SETTLE_BATCH: usize = 512;

/// What a lane's workers share.
pub struct Deps {
    /// The circuit.
    pub circuit: Circuit,
    /// PostgreSQL.
    pub pool: Pool,
    /// Opens stored PANs and token PANs, only to put them in the circuit's protected request.
    pub ring: Arc<KeyRing>,
    /// Where found PARs go.
    pub registry: Addr<CardRegistry>,
    /// Tuning.
    pub settings: ParResolverSettings,
    /// Metrics.
    pub metrics: Metrics,
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoundReport {
    /// Lookups leased.
    pub leased: u64,
    /// PARs found and applied.
    pub found: u64,
    /// "No PAR yet" answers.
    pub not_yet: u64,
    /// Lookups left for a later cycle after failures.
    pub failed: u64,
}

enum Answer {
    Found(Lease, Par),
    NotYet(Lease),
    Failed(Lease, &'static str),
    Called(usize),
}

/// Why a call's leases were not answered.
enum Failure {
    /// The circuit failed (retried when transient or a `429`).
    Call(CallError),
    /// It answered another number of outcomes than it was asked for.
    Malformed,
}

fn outcome_label(e: &CallError) -> &'static str {
    match e {
        CallError::Timeout => "timeout",
        CallError::Transport(_) => "transport",
        CallError::Server(_) => "server_error",
        CallError::RateLimited { .. } => "rate_limited",
        CallError::Refused(_) => "refused",
        CallError::Malformed(_) => "malformed",
    }
}

fn open(ring: &KeyRing, lease: &Lease) -> Option<Account> {
    match &lease.account {
        SealedAccount::Pan(sealed, hpan) => ring.open_pan(sealed, hpan).ok().map(Account::Card),
        SealedAccount::Token(sealed, htoken) => {
            ring.open_token(sealed, htoken).ok().map(Account::Token)
        }
    }
}

/// Asks the circuit about one call's worth of leases. Answers go to the round's settler, which
/// outlives every sender (the round drops its sender only after all asks ended), so a send
/// cannot fail; were it to, the lease would simply expire and the lookup be asked again.
async fn ask(
    deps: &Deps,
    lane: Lane,
    client: &dyn CircuitClient,
    gate: &RefCell<Gate>,
    chunk: Vec<Lease>,
    answers: &mpsc::UnboundedSender<Answer>,
) {
    let mut leases = Vec::with_capacity(chunk.len());
    let mut accounts = Vec::with_capacity(chunk.len());
    for lease in chunk {
        match open(&deps.ring, &lease) {
            Some(account) => {
                accounts.push(account);
                leases.push(lease);
            }
            None => {
                tracing::error!(circuit = %deps.circuit, "a stored card number cannot be opened with the vault key ring");
                let _ = answers.send(Answer::Failed(lease, "vault"));
            }
        }
    }
    if accounts.is_empty() {
        return;
    }
    let s = &deps.settings;
    // `retry_attempts` bounds the tries on transient errors and the retries after `429`s (whose
    // pauses the gate imposes on every worker of the circuit, so they add no wait of their own).
    let policy = retry::par_call(s.retry_attempts, Duration::from_millis(s.retry_backoff_ms));
    let tries = Cell::new(0u32);
    let call = || async {
        let waited = acquire(gate, accounts.len()).await;
        deps.metrics
            .circuit_limiter_wait
            .with_label_values(&[deps.circuit.as_str()])
            .observe(waited.as_secs_f64());
        deps.metrics
            .par_lookups
            .with_label_values(&[deps.circuit.as_str(), lane.as_str()])
            .inc_by(accounts.len() as u64);
        let _ = answers.send(Answer::Called(accounts.len()));
        tries.set(tries.get().saturating_add(1));
        match client.lookup_pars(&accounts).await {
            Ok(outcomes) if outcomes.len() == leases.len() => {
                gate.borrow_mut().succeeded();
                Ok(outcomes)
            }
            Ok(_) => Err(Failure::Malformed),
            Err(CallError::RateLimited { retry_after }) => {
                // The transport already capped it; the gate backs off when it gave none.
                let wait = gate.borrow_mut().rate_limited(retry_after, Instant::now());
                tracing::warn!(circuit = %deps.circuit, wait_secs = wait.as_secs(), retry_after_given = retry_after.is_some(), "circuit answered 429: pausing and halving the rate");
                Err(Failure::Call(CallError::RateLimited { retry_after }))
            }
            Err(e) => Err(Failure::Call(e)),
        }
    };
    let answered = call
        .retry(policy.builder())
        .when(|f| matches!(f, Failure::Call(e) if e.is_transient() || matches!(e, CallError::RateLimited { .. })))
        .adjust(|f, wait| match f {
            Failure::Call(CallError::RateLimited { .. }) => wait.map(|_| Duration::ZERO),
            _ if tries.get() >= s.retry_attempts => None,
            _ => wait,
        })
        .await;
    let failure = match answered {
        Ok(outcomes) => {
            for (lease, outcome) in leases.into_iter().zip(outcomes) {
                let _ = answers.send(match outcome {
                    ParOutcome::Found(par) => Answer::Found(lease, par),
                    ParOutcome::NotYet => Answer::NotYet(lease),
                });
            }
            return;
        }
        Err(Failure::Malformed) => "malformed",
        Err(Failure::Call(e)) => outcome_label(&e),
    };
    if gate.borrow_mut().failed(Instant::now()) {
        tracing::warn!(circuit = %deps.circuit, pause_secs = s.breaker_pause_secs, "circuit keeps failing: breaker open");
    }
    for lease in leases {
        let _ = answers.send(Answer::Failed(lease, failure));
    }
}

/// Applies and settles answers in batches until every sender is gone.
async fn settle(deps: &Deps, mut answers: mpsc::UnboundedReceiver<Answer>) -> RoundReport {
    let mut report = RoundReport::default();
    let mut buffer = Vec::with_capacity(SETTLE_BATCH);
    while answers.recv_many(&mut buffer, SETTLE_BATCH).await > 0 {
        let mut settled = Settlements::default();
        let mut found = Vec::new();
        let mut calls = 0usize;
        for answer in buffer.drain(..) {
            match answer {
                Answer::Found(lease, par) => found.push((lease, par)),
                Answer::NotYet(lease) => settled.not_yet.push(lease.key),
                Answer::Failed(lease, why) => settled.failed.push((lease.key, why.to_string())),
                Answer::Called(units) => calls += units,
            }
        }
        if !found.is_empty() {
            let commands = found
                .iter()
                .map(|(lease, par)| command_for(lease, par.clone()))
                .collect();
            let applied = deps
                .registry
                .send(ApplyCommands {
                    commands,
                    by: BY.to_string(),
                })
                .await;
            match applied {
                Ok(Ok(_)) => settled.found.extend(found.into_iter().map(|(l, _)| l.key)),
                Ok(Err(e)) => {
                    tracing::warn!(circuit = %deps.circuit, error = %e, "found PARs not applied; asked again next cycle");
                    settled
                        .failed
                        .extend(found.into_iter().map(|(l, _)| (l.key, "registry".into())));
                }
                Err(e) => {
                    tracing::warn!(circuit = %deps.circuit, error = %e, "card registry unreachable; asked again next cycle");
                    settled
                        .failed
                        .extend(found.into_iter().map(|(l, _)| (l.key, "registry".into())));
                }
            }
        }
        report.found += settled.found.len() as u64;
        report.not_yet += settled.not_yet.len() as u64;
        report.failed += settled.failed.len() as u64;
        if calls > 0 {
            if let Err(e) = par_lookups::count_calls(&deps.pool, deps.circuit, calls as i64).await {
                tracing::warn!(circuit = %deps.circuit, error = %e, "cannot count today's lookups");
            }
        }
        if settled.is_empty() {
            continue;
        }
        let s = &deps.settings;
        // An unsettled lookup is not lost: its lease expires and a later cycle asks again.
        if let Err(e) = par_lookups::settle_batch(
            &deps.pool,
            &settled,
            s.reask_after(),
            s.max_reasks,
            Duration::from_secs(s.retry_after_secs),
        )
        .await
        {
            tracing::warn!(circuit = %deps.circuit, error = %e, "cannot settle answers; their leases will expire");
        }
    }
    report
}

/// How often a lane with nothing due looks again while the other lane still works (a consenting
/// citizen's new card is asked within about this, whatever the token backlog).
const POLL: Duration = Duration::from_secs(1);

/// Calls' worth of leases a lane's worker takes per page.
const PAGES_AHEAD: usize = 4;

/// What the two lanes of a round share.
struct Round {
    deps: Rc<Deps>,
    limit: Option<u64>,
    leased: Cell<u64>,
    lease_error: RefCell<Option<crate::db::DbError>>,
    /// Each lane's last lease came back empty (cards, tokens).
    cards_idle: Cell<bool>,
    tokens_idle: Cell<bool>,
    /// Both lanes found nothing at once, the limit was reached or the database failed: every
    /// lane ends.
    over: Cell<bool>,
}

impl Round {
    /// A lane's idle flag and the other lane's.
    fn idle(&self, lane: Lane) -> (&Cell<bool>, &Cell<bool>) {
        match lane {
            Lane::Cards => (&self.cards_idle, &self.tokens_idle),
            Lane::Tokens => (&self.tokens_idle, &self.cards_idle),
        }
    }

    /// Card lookups are due or in flight: token checks are held to their share.
    fn cards_busy(&self) -> bool {
        !self.cards_idle.get() && !self.over.get()
    }

    /// The next page of one lane's leases, chunked by what one call may carry; `None` when the
    /// lane is done. A lane with nothing due keeps looking while the other one works, so work
    /// queued mid-round (a newly consenting citizen's cards, a token list) is taken within
    /// [`POLL`]; the round ends when both lanes find nothing, at the limit, or on a database
    /// error (kept for the report).
    async fn next_page(
        &self,
        lane: Lane,
        workers: usize,
        max_batch: usize,
    ) -> Option<Vec<Vec<Lease>>> {
        let s = &self.deps.settings;
        let (me, other) = self.idle(lane);
        // A few calls per worker at a time: a page leased far ahead of the lane's rate (token
        // checks at their share) would outlive its lease and be asked twice.
        let ahead = (workers
            .saturating_mul(max_batch)
            .saturating_mul(PAGES_AHEAD)) as u64;
        loop {
            let room = self
                .limit
                .map_or(u64::MAX, |l| l.saturating_sub(self.leased.get()));
            let page = (s.batch_size as u64).min(room).min(ahead.max(1));
            if page == 0 || self.over.get() || self.lease_error.borrow().is_some() {
                self.over.set(true);
                return None;
            }
            let lease_for = Duration::from_secs(s.lease_secs);
            let page = i64::try_from(page).unwrap_or(i64::MAX);
            match par_lookups::lease(&self.deps.pool, self.deps.circuit, lane, page, lease_for)
                .await
            {
                Ok(leases) if !leases.is_empty() => {
                    me.set(false);
                    self.leased
                        .set(self.leased.get().saturating_add(leases.len() as u64));
                    return Some(leases.chunks(max_batch).map(<[Lease]>::to_vec).collect());
                }
                Ok(_) => {
                    me.set(true);
                    if other.get() {
                        self.over.set(true);
                        return None;
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    *self.lease_error.borrow_mut() = Some(e);
                    self.over.set(true);
                    return None;
                }
            }
        }
    }
}

/// Runs one round for the lane's circuit: card lookups and token checks side by side until
/// nothing is due or `limit` lookups were leased. Every call passes the circuit's gate; while
/// card lookups wait, token checks also pass `token_share` (their share of the rate), so the
/// token backlog never delays a card. `progress` counts lookups answered as they settle.
pub async fn round(
    deps: Rc<Deps>,
    client: Rc<dyn CircuitClient>,
    gate: Rc<RefCell<Gate>>,
    token_share: Rc<RefCell<TokenShare>>,
    limit: Option<u64>,
    progress: Arc<AtomicU64>,
) -> Result<RoundReport, crate::db::DbError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let settler = {
        let deps = deps.clone();
        actix_rt::spawn(async move { settle(&deps, rx).await })
    };
    let state = Rc::new(Round {
        deps: deps.clone(),
        limit,
        leased: Cell::new(0),
        lease_error: RefCell::new(None),
        cards_idle: Cell::new(false),
        tokens_idle: Cell::new(false),
        over: Cell::new(false),
    });
    let max_batch = client.max_batch().max(1);
    let pages = |lane: Lane, workers: usize| {
        let state = state.clone();
        stream::unfold((), move |()| {
            let state = state.clone();
            async move {
                let page = state.next_page(lane, workers, max_batch).await?;
                Some((stream::iter(page), ()))
            }
        })
        .flatten()
    };
    let ask_all = |lane: Lane, concurrency: usize| {
        let (deps, client, gate, share, tx, progress, state) = (
            deps.clone(),
            client.clone(),
            gate.clone(),
            token_share.clone(),
            tx.clone(),
            progress.clone(),
            state.clone(),
        );
        pages(lane, concurrency).for_each_concurrent(concurrency, move |chunk| {
            let (deps, client, gate, share, tx, progress, state) = (
                deps.clone(),
                client.clone(),
                gate.clone(),
                share.clone(),
                tx.clone(),
                progress.clone(),
                state.clone(),
            );
            async move {
                let n = chunk.len() as u64;
                if lane == Lane::Tokens {
                    share_wait(&share, &state, chunk.len()).await;
                }
                ask(&deps, lane, client.as_ref(), &gate, chunk, &tx).await;
                progress.fetch_add(n, Ordering::Relaxed);
            }
        })
    };
    let s = &deps.settings;
    // Token checks never hold more than their share of the workers, so a card always finds one.
    let token_workers = ((s.concurrency as f64) * token_share.borrow().share())
        .ceil()
        .max(1.0) as usize;
    let cards = ask_all(Lane::Cards, s.concurrency);
    let tokens = ask_all(Lane::Tokens, token_workers.min(s.concurrency));
    futures_util::future::join(cards, tokens).await;
    drop(tx);
    let mut report = settler
        .await
        .map_err(|e| crate::db::DbError::Unexpected(anyhow::anyhow!("settler stopped: {e}")))?;
    report.leased = state.leased.get();
    if let Some(e) = state.lease_error.borrow_mut().take() {
        return Err(e);
    }
    Ok(report)
}

/// Waits until `units` token checks may go: at once while no card lookup waits, else at the
/// token share's rate (not at all with a share of 0 until the cards are done).
async fn share_wait(share: &RefCell<TokenShare>, round: &Round, units: usize) {
    for _ in 0..units.max(1) {
        loop {
            if !round.cards_busy() {
                break;
            }
            let wait = share.borrow_mut().try_take();
            match wait {
                None => break,
                Some(wait) => tokio::time::sleep(wait.clamp(Duration::from_millis(1), POLL)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_retries_double_with_jitter() {
        let base = Duration::from_millis(100);
        let waits: Vec<u64> = retry::par_call(4, base)
            .delays()
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits.len(), 4);
        for (i, d) in waits.into_iter().enumerate() {
            let full = 100u64 << i;
            assert!(d >= full / 2 && d <= full, "retry {}: {d} ms", i + 1);
        }
        // A huge base is a huge backoff, not a panic.
        let huge = retry::par_call(11, Duration::MAX).delays().last();
        assert!(huge.is_some_and(|d| d >= Duration::MAX / 4));
    }
}
