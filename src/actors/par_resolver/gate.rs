//! One circuit's gate: the contract rate limiter (GCRA, `governor`) every call of every worker
//! passes, a `429` slow-down (a pause for the circuit's `Retry-After` — or a backoff doubling over
//! consecutive `429`s without one — never beyond `circuits.max_retry_after_secs`, then half the
//! rate restored linearly over a minute), and a breaker that pauses the circuit after consecutive
//! failures. No pause can overflow the clock, whatever the circuit sent.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::circuits::retry_after;

/// How long the rate takes to come back to the contract rate after a `429` pause.
const RESTORE: Duration = Duration::from_secs(60);

/// The rate the circuit may be called at `now`, given the end of the last `429` pause: half the
/// contract rate until `resume`, then rising linearly back to it over [`RESTORE`].
pub fn slowed_rate(contract: u32, resume: Instant, now: Instant) -> u32 {
    let half = (contract / 2).max(1);
    if now < resume {
        return half;
    }
    let elapsed = now.duration_since(resume).as_secs_f64();
    if elapsed >= RESTORE.as_secs_f64() {
        return contract;
    }
    let share = elapsed / RESTORE.as_secs_f64();
    let rate = f64::from(half) + f64::from(contract - half) * share;
    (rate.floor() as u32).clamp(half, contract)
}

/// How a circuit's `429`s pause it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pauses {
    /// The wait after a `429` without a usable `Retry-After`, doubled on each consecutive one
    /// (`par_resolver.default_retry_after_secs`).
    pub default_retry_after: Duration,
    /// The longest pause a `429` may impose (`circuits.max_retry_after_secs`).
    pub max_retry_after: Duration,
}

/// `now + wait`, or the latest instant before it the clock can hold (never panics).
fn later(now: Instant, wait: Duration) -> Instant {
    let mut wait = wait;
    loop {
        if let Some(at) = now.checked_add(wait) {
            return at;
        }
        wait /= 2;
    }
}

fn wait_of(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

fn per_second(rate: u32, burst: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// A circuit's gate (used from the resolver's arbiter only).
pub struct Gate {
    contract_rate: u32,
    contract: DefaultDirectRateLimiter,
    /// After a `429`: the end of the pause and the slower limiter in force, with its rate.
    slowdown: Option<(Instant, u32, DefaultDirectRateLimiter)>,
    paused_until: Option<Instant>,
    failures: u32,
    breaker_failures: u32,
    breaker_pause: Duration,
    pauses: Pauses,
    /// `429`s since the last successful call, each counted once per pause.
    streak: u32,
    /// Workers take their turn at the limiter in arrival order (a fair lock): polled sleepers
    /// woken at the same tick would otherwise let the same workers win every time and starve a
    /// lane.
    queue: Rc<tokio::sync::Mutex<()>>,
}

impl Gate {
    /// A gate at `rate` calls per second with `burst`.
    pub fn new(
        rate: u32,
        burst: u32,
        breaker_failures: u32,
        breaker_pause: Duration,
        pauses: Pauses,
    ) -> Self {
        Self {
            contract_rate: rate.max(1),
            contract: per_second(rate, burst),
            slowdown: None,
            paused_until: None,
            failures: 0,
            breaker_failures: breaker_failures.max(1),
            breaker_pause,
            pauses,
            streak: 0,
            queue: Rc::default(),
        }
    }

    /// The rate in force now (calls per second).
    pub fn current_rate(&self, now: Instant) -> u32 {
        match &self.slowdown {
            Some((resume, _, _)) => slowed_rate(self.contract_rate, *resume, now),
            None => self.contract_rate,
        }
    }

    /// When the circuit is paused (a `429`'s `Retry-After` or an open breaker), until when.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }

    /// How long to wait before the next unit may go: the pause, then the slowed limiter, then
    /// the contract limiter. `None`: take it now (the unit is consumed).
    pub fn try_take(&mut self, now: Instant) -> Option<Duration> {
        if let Some(until) = self.paused_until(now) {
            return Some(until.saturating_duration_since(now));
        }
        let rate = self.current_rate(now);
        if rate >= self.contract_rate {
            self.slowdown = None;
        }
        if let Some((_, limiter_rate, limiter)) = &mut self.slowdown {
            if *limiter_rate != rate {
                *limiter = per_second(rate, 1);
                *limiter_rate = rate;
            }
            if let Err(not_until) = limiter.check() {
                return Some(wait_of(&not_until));
            }
        }
        self.contract
            .check()
            .err()
            .map(|not_until| wait_of(&not_until))
    }

    /// A `429`: pause for its `retry_after` (`None`: absent or unusable, the backoff), at most
    /// the cap from `now` and never shortening a pause in force; then run at half the rate and
    /// restore it linearly. Returns the pause from `now`.
    pub fn rate_limited(&mut self, retry_after: Option<Duration>, now: Instant) -> Duration {
        // The 429s of calls already in flight when the circuit paused answer the same overload:
        // only the first one after a pause counts as one more.
        if self.paused_until(now).is_none() {
            self.streak = self.streak.saturating_add(1);
        }
        let cap = self.pauses.max_retry_after;
        let wait = match retry_after {
            Some(wait) => wait.min(cap),
            None => retry_after::backoff(self.pauses.default_retry_after, self.streak, cap),
        };
        let resume = later(now, wait).max(self.paused_until.unwrap_or(now));
        self.paused_until = Some(resume);
        let half = (self.contract_rate / 2).max(1);
        self.slowdown = Some((resume, half, per_second(half, 1)));
        resume.saturating_duration_since(now)
    }

    /// A failed call (after its retries). Returns true when this opened the breaker.
    pub fn failed(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.breaker_failures {
            self.failures = 0;
            let end = later(now, self.breaker_pause);
            self.paused_until = Some(end.max(self.paused_until.unwrap_or(now)));
            return true;
        }
        false
    }

    /// A successful call: closes the breaker's count and resets the `429` backoff.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.streak = 0;
    }
}

/// The share of a circuit's rate its token checks may use while card lookups wait (`data.md`,
/// operations: "share of the rate for token checks"): a limiter at that rate, or none at all.
pub struct TokenShare {
    share: f64,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl TokenShare {
    /// `share` (0..=1) of `rate` calls per second; at least one per second when the share is
    /// above 0, so a small rate still verifies its tokens.
    pub fn new(rate: u32, share: f64) -> Self {
        let share = share.clamp(0.0, 1.0);
        let limiter = (share > 0.0).then(|| {
            let per = (f64::from(rate) * share).floor().max(1.0);
            per_second(per as u32, 1)
        });
        TokenShare { share, limiter }
    }

    /// The configured share.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// `None`: a token check may go now (and took its unit); else how long to wait.
    pub fn try_take(&mut self) -> Option<Duration> {
        match &self.limiter {
            Some(l) => l.check().err().map(|n| wait_of(&n)),
            // A share of 0: no token check while cards wait.
            None => Some(Duration::from_millis(100)),
        }
    }
}

/// Waits until `units` may go through the gate shared by a circuit's workers, then takes them
/// (a batch call takes one unit per account). Returns how long it waited.
pub async fn acquire(gate: &RefCell<Gate>, units: usize) -> Duration {
    let start = Instant::now();
    let queue = gate.borrow().queue.clone();
    let _turn = queue.lock().await;
    for _ in 0..units.max(1) {
        loop {
            let wait = gate.borrow_mut().try_take(Instant::now());
            match wait {
                // At least a millisecond, so a zero wait from rounding never spins.
                Some(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
                None => break,
            }
        }
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSES: Pauses = Pauses {
        default_retry_after: Duration::from_secs(60),
        max_retry_after: Duration::from_secs(3600),
    };

    #[test]
    fn the_rate_halves_then_comes_back_linearly() {
        let t0 = Instant::now();
        let resume = t0 + Duration::from_secs(30);
        assert_eq!(slowed_rate(100, resume, t0), 50);
        assert_eq!(slowed_rate(100, resume, resume), 50);
        assert_eq!(
            slowed_rate(100, resume, resume + Duration::from_secs(30)),
            75
        );
        assert_eq!(
            slowed_rate(100, resume, resume + Duration::from_secs(60)),
            100
        );
        assert_eq!(slowed_rate(1, resume, t0), 1);
    }

    #[test]
    fn the_contract_rate_is_never_exceeded_in_any_second() {
        // 20/s with a burst of 5: over 3 s of trying as fast as possible, at most 20·3 + 5.
        let mut gate = Gate::new(20, 5, 3, Duration::from_secs(1), PAUSES);
        let start = Instant::now();
        let mut taken = Vec::new();
        while start.elapsed() < Duration::from_secs(3) {
            match gate.try_take(Instant::now()) {
                None => taken.push(start.elapsed()),
                Some(wait) => std::thread::sleep(wait.min(Duration::from_millis(5))),
            }
        }
        assert!(taken.len() <= 20 * 3 + 5, "{} calls", taken.len());
        assert!(taken.len() >= 20 * 3 - 5, "{} calls", taken.len());
        for w in 0..3 {
            let in_window = taken
                .iter()
                .filter(|t| t.as_secs_f64() >= w as f64 && t.as_secs_f64() < w as f64 + 1.0)
                .count();
            assert!(in_window <= 20 + 5, "window {w}: {in_window}");
        }
    }

    #[test]
    fn a_429_pauses_then_slows_down() {
        let mut gate = Gate::new(10, 1, 3, Duration::from_secs(1), PAUSES);
        let now = Instant::now();
        assert_eq!(
            gate.rate_limited(Some(Duration::from_secs(2)), now),
            Duration::from_secs(2)
        );
        assert!(gate
            .try_take(now)
            .is_some_and(|w| w > Duration::from_millis(1900)));
        assert_eq!(gate.current_rate(now + Duration::from_secs(2)), 5);
        assert_eq!(gate.current_rate(now + Duration::from_secs(62)), 10);
    }

    #[test]
    fn the_token_share_is_a_fraction_of_the_rate_and_at_least_one_per_second() {
        let mut share = TokenShare::new(10, 0.2);
        assert!(share.try_take().is_none(), "the first goes at once");
        assert!(
            share
                .try_take()
                .is_some_and(|w| w > Duration::from_millis(400)),
            "2/s"
        );
        let mut small = TokenShare::new(2, 0.2);
        assert!(small.try_take().is_none(), "floored to 1/s, never 0");
        assert!(
            TokenShare::new(10, 0.0).try_take().is_some(),
            "no share: wait for the cards"
        );
    }

    #[test]
    fn consecutive_failures_open_the_breaker() {
        let mut gate = Gate::new(10, 1, 3, Duration::from_secs(5), PAUSES);
        let now = Instant::now();
        assert!(!gate.failed(now));
        assert!(!gate.failed(now));
        gate.succeeded();
        assert!(!gate.failed(now));
        assert!(!gate.failed(now));
        assert!(gate.failed(now));
        assert!(gate.paused_until(now).is_some());
        assert!(gate.paused_until(now + Duration::from_secs(6)).is_none());
    }

    #[test]
    fn no_retry_after_pauses_beyond_the_cap_or_panics() {
        let mut gate = Gate::new(10, 1, 3, Duration::from_secs(5), PAUSES);
        let now = Instant::now();
        let hour = PAUSES.max_retry_after;
        assert_eq!(gate.rate_limited(Some(Duration::MAX), now), hour);
        let until = gate.paused_until(now);
        assert!(until.is_some_and(|u| u <= now + hour), "{until:?}");
        // A later, shorter 429 does not cut the pause short; nothing goes past the cap.
        let soon = now + Duration::from_secs(10);
        assert_eq!(
            gate.rate_limited(Some(Duration::from_secs(1)), soon),
            hour - Duration::from_secs(10)
        );
        assert!(gate.try_take(soon).is_some_and(|w| w <= hour));
        // A breaker pause no clock can hold neither panics.
        let mut gate = Gate::new(10, 1, 1, Duration::MAX, PAUSES);
        assert!(gate.failed(now));
        assert!(gate.paused_until(now).is_some());
    }

    #[test]
    fn repeated_429s_without_retry_after_back_off_until_a_success() {
        let mut gate = Gate::new(10, 1, 3, Duration::from_secs(5), PAUSES);
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let wait = gate.rate_limited(None, now);
            waits.push(wait.as_secs());
            // The 429s of calls that were in flight meanwhile do not double it again.
            assert_eq!(gate.rate_limited(None, now), wait);
            now += wait;
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        // A usable Retry-After is honoured as given, and keeps the streak.
        assert_eq!(
            gate.rate_limited(Some(Duration::from_secs(7)), now),
            Duration::from_secs(7)
        );
        now += Duration::from_secs(7);
        assert_eq!(gate.rate_limited(None, now), PAUSES.max_retry_after);
        // A success resets the backoff.
        gate.succeeded();
        now += PAUSES.max_retry_after;
        assert_eq!(gate.rate_limited(None, now), Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn workers_take_turns_at_the_gate_in_arrival_order() {
        // Three workers calling as fast as the gate lets them, each asking again at once: each
        // gets its third of the rate, none is starved by the others winning every wake-up.
        let gate = Rc::new(RefCell::new(Gate::new(
            40,
            1,
            3,
            Duration::from_secs(1),
            PAUSES,
        )));
        let counts = Rc::new(RefCell::new([0u32; 3]));
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let start = Instant::now();
                let workers: Vec<_> = (0..3)
                    .map(|i| {
                        let (gate, counts) = (gate.clone(), counts.clone());
                        tokio::task::spawn_local(async move {
                            while start.elapsed() < Duration::from_millis(1500) {
                                acquire(&gate, 1).await;
                                counts.borrow_mut()[i] += 1;
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.await.unwrap();
                }
            })
            .await;
        let counts = *counts.borrow();
        let total: u32 = counts.iter().sum();
        assert!(total >= 30, "{counts:?}");
        for n in counts {
            assert!(n * 4 >= total, "an unfair share: {counts:?}");
        }
    }
}
