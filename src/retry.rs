//! The one retry policy of tkm: every loop that tries again — broker and LISTEN reconnects, the
//! consumer's pause while the database is away, lost lock races, circuit calls, relay leadership —
//! waits as a named [`Policy`] of this module says, run by `backon` (`Retryable::retry`).
//!
//! A policy doubles its wait from `first` up to `max`, for a number of retries or explicitly
//! forever; jittered policies draw each wait between half and all of its nominal value, so `max`
//! stays a true maximum and replicas that failed together do not retry together. Loops that must
//! also end at shutdown sleep with [`UntilShutdown`] and check [`stopping`] before each try. This
//! module depends on nothing of tkm, so every layer may use it. (The outbox's per-row delays are a
//! schedule written to the database, not a loop: `db::outbox::RetryPolicy`.)

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use backon::Retryable;
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;

/// How a loop waits between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    first: Duration,
    max: Duration,
    /// `None`: forever.
    retries: Option<usize>,
    jitter: bool,
}

/// `max`, or `first` when `max` is smaller (a cap below the first wait would make it spin).
const fn at_least(max: Duration, first: Duration) -> Duration {
    if max.as_nanos() < first.as_nanos() {
        first
    } else {
        max
    }
}

impl Policy {
    /// Tries again forever (reconnects): waits `first`, doubled after each failure up to `max`.
    pub const fn forever(first: Duration, max: Duration) -> Self {
        Policy {
            first,
            max: at_least(max, first),
            retries: None,
            jitter: false,
        }
    }

    /// At most `retries` more tries after the first one, waiting as [`Policy::forever`].
    pub const fn retries(retries: usize, first: Duration, max: Duration) -> Self {
        Policy {
            first,
            max: at_least(max, first),
            retries: Some(retries),
            jitter: false,
        }
    }

    /// The same, each wait drawn between half and all of its nominal value.
    pub const fn jittered(self) -> Self {
        Policy {
            jitter: true,
            ..self
        }
    }

    /// The `backon` builder of this policy, for `op.retry(policy.builder())`.
    pub fn builder(&self) -> ExponentialBuilder {
        let b = ExponentialBuilder::new().with_factor(2.0);
        let b = if self.jitter {
            // backon adds 0–100 % of the nominal wait: halving it first gives 50–100 %. The seed
            // comes from `rand`, so processes started together never draw the same waits.
            b.with_min_delay(self.first / 2)
                .with_max_delay(self.max / 2)
                .with_jitter()
                .with_jitter_seed(rand::random())
        } else {
            b.with_min_delay(self.first).with_max_delay(self.max)
        };
        match self.retries {
            Some(n) => b.with_max_times(n),
            None => b.without_max_times(),
        }
    }

    /// The waits in order; the iterator ends after the last retry (never for `forever`).
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        self.builder().build()
    }
}

/// The bridge's reconnects to the broker: 200 ms doubling up to `rabbitmq.reconnect_max_ms`,
/// jittered, forever (until shutdown).
pub const fn broker_reconnect(max: Duration) -> Policy {
    Policy::forever(Duration::from_millis(200), max).jittered()
}

/// A consumer's pause while the database (or the card registry) is unavailable, its batch
/// unacked: 100 ms doubling up to 5 s, forever (until shutdown).
pub const DATABASE_UNAVAILABLE: Policy =
    Policy::forever(Duration::from_millis(100), Duration::from_secs(5));

/// The consent registry's LISTEN connection: 200 ms doubling up to 10 s, forever (until the
/// registry stops).
pub const CONSENT_LISTENER: Policy =
    Policy::forever(Duration::from_millis(200), Duration::from_secs(10));

/// A card batch that lost a deadlock or serialization race: tried again at once, 3 times.
pub const LOST_LOCK_RACE: Policy = Policy::retries(3, Duration::ZERO, Duration::ZERO);

/// A replica that is not the outbox relay's leader asks again every 2 s, forever (until shutdown).
pub const RELAY_LEADERSHIP: Policy =
    Policy::forever(Duration::from_secs(2), Duration::from_secs(2));

/// One PAR call (`par_resolver.retry_attempts`, `retry_backoff_ms`): at most `retries` retries,
/// `first` doubling up to 1024 × `first`, jittered.
pub fn par_call(retries: u32, first: Duration) -> Policy {
    let retries = usize::try_from(retries).unwrap_or(usize::MAX);
    Policy::retries(retries, first, first.saturating_mul(1024)).jittered()
}

/// One BIN range fetch (`bin_refresh.attempts` tries in all): 1 s doubling up to 32 s.
pub fn bin_fetch(attempts: u32) -> Policy {
    let retries = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    Policy::retries(retries, Duration::from_secs(1), Duration::from_secs(32))
}

/// True once shutdown was asked for, or can no longer be (its sender is gone).
pub fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// A `backon` sleeper (`.sleep(UntilShutdown::new(rx))`) whose waits end as soon as shutdown is
/// asked for; the retried operation then sees [`stopping`] and ends the loop.
#[derive(Debug, Clone)]
pub struct UntilShutdown(watch::Receiver<bool>);

impl UntilShutdown {
    /// Waits that end early on `shutdown`.
    pub fn new(shutdown: watch::Receiver<bool>) -> Self {
        UntilShutdown(shutdown)
    }
}

impl backon::Sleeper for UntilShutdown {
    type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn sleep(&self, wait: Duration) -> Self::Sleep {
        let mut shutdown = self.0.clone();
        Box::pin(async move {
            if stopping(&shutdown) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let waits: Vec<u128> = DATABASE_UNAVAILABLE.delays().take(9).map(ms).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        let waits: Vec<u128> = CONSENT_LISTENER.delays().take(8).map(ms).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        let waits: Vec<u128> = RELAY_LEADERSHIP.delays().take(3).map(ms).collect();
        assert_eq!(waits, [2000, 2000, 2000]);
    }

    #[test]
    fn forever_never_ends_and_retries_end_after_their_count() {
        assert_eq!(DATABASE_UNAVAILABLE.delays().take(10_000).count(), 10_000);
        let immediate: Vec<Duration> = LOST_LOCK_RACE.delays().collect();
        assert_eq!(immediate, [Duration::ZERO; 3]);
        let bins: Vec<u128> = bin_fetch(3).delays().map(ms).collect();
        assert_eq!(bins, [1000, 2000]);
        assert_eq!(bin_fetch(1).delays().count(), 0);
        assert_eq!(bin_fetch(0).delays().count(), 0);
        let bins: Vec<u128> = bin_fetch(9).delays().map(ms).collect();
        assert_eq!(bins, [1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000]);
    }

    #[test]
    fn jittered_waits_are_half_to_all_of_the_nominal_one() {
        let base = Duration::from_millis(100);
        for _ in 0..50 {
            let waits: Vec<u128> = par_call(12, base).delays().map(ms).collect();
            assert_eq!(waits.len(), 12);
            for (i, wait) in waits.iter().enumerate() {
                let full = 100u128 << i.min(10);
                assert!(*wait >= full / 2 && *wait <= full, "retry {i}: {wait} ms");
            }
        }
        let max = Duration::from_secs(10);
        for wait in broker_reconnect(max).delays().take(40) {
            assert!(wait <= max, "{wait:?}");
        }
        let late: Vec<Duration> = broker_reconnect(max).delays().skip(20).take(5).collect();
        assert!(late.iter().all(|w| *w >= max / 2), "{late:?}");
    }

    #[test]
    fn absurd_values_neither_panic_nor_spin() {
        // A huge configured base is a huge wait, not a panic.
        for wait in par_call(11, Duration::MAX).delays() {
            assert!(wait >= Duration::MAX / 4);
        }
        // A cap below the first wait is the first wait.
        let waits: Vec<Duration> = broker_reconnect(Duration::ZERO).delays().take(5).collect();
        assert!(
            waits.iter().all(|w| *w >= Duration::from_millis(100)),
            "{waits:?}"
        );
        assert!(par_call(u32::MAX, Duration::ZERO).delays().take(3).count() == 3);
    }

    #[actix_rt::test]
    async fn a_shutdown_cuts_a_wait_short() {
        let (tx, rx) = watch::channel(false);
        let sleeper = UntilShutdown::new(rx.clone());
        let started = std::time::Instant::now();
        let wait = backon::Sleeper::sleep(&sleeper, Duration::from_secs(60));
        let _ = tx.send(true);
        wait.await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(stopping(&rx));
        // Already stopping: no wait at all; a gone sender counts as a shutdown.
        backon::Sleeper::sleep(&sleeper, Duration::from_secs(60)).await;
        let (tx, rx) = watch::channel(false);
        assert!(!stopping(&rx));
        drop(tx);
        assert!(stopping(&rx));
        let started = std::time::Instant::now();
        backon::Sleeper::sleep(&UntilShutdown::new(rx), Duration::from_secs(60)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[actix_rt::test]
    async fn retryable_runs_until_success_or_the_last_retry() {
        let tries = std::cell::Cell::new(0u32);
        let op = || async {
            tries.set(tries.get() + 1);
            if tries.get() < 3 {
                Err("again")
            } else {
                Ok(tries.get())
            }
        };
        assert_eq!(op.retry(LOST_LOCK_RACE.builder()).await, Ok(3));
        tries.set(0);
        let never = || async {
            tries.set(tries.get() + 1);
            Err::<(), _>("no")
        };
        assert_eq!(never.retry(LOST_LOCK_RACE.builder()).await, Err("no"));
        assert_eq!(tries.get(), 4, "one try and three retries");
    }
}
