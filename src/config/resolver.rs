//! `[bin_refresh]` and `[par_resolver]`: how BIN ranges are accepted and PARs are asked for.

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[bin_refresh]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinRefreshSettings {
    /// A new set smaller than this share of the current one is refused unless forced.
    pub min_ratio: f64,
    /// Attempts of one refresh's fetch before it fails (transient errors and `429`s only).
    pub attempts: u32,
    /// At start-up, refresh a circuit whose ranges no refresh has replaced since its last
    /// scheduled time (a first start, or a refresh missed while no replica ran).
    #[serde(default = "yes")]
    pub on_start: bool,
}

fn yes() -> bool {
    true
}

/// `[par_resolver]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParResolverSettings {
    /// Seconds between cycles (a consent change or an admin request starts one at once).
    pub interval_secs: u64,
    /// Lookups leased per round and circuit.
    pub batch_size: usize,
    /// Calls in flight per circuit (the limiter, not this, sets the rate).
    pub concurrency: usize,
    /// How long a leased lookup stays reserved to its worker.
    pub lease_secs: u64,
    /// Attempts of one call on timeouts, 5xx and transport errors.
    pub retry_attempts: u32,
    /// First backoff between attempts (doubled each time, with jitter).
    pub retry_backoff_ms: u64,
    /// A failed lookup is due again after this long.
    pub retry_after_secs: u64,
    /// "No PAR yet" answers are asked again after this long.
    pub reask_after_hours: u64,
    /// … at most this many times.
    pub max_reasks: i32,
    /// Consecutive failed calls that open a circuit's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker pauses the circuit.
    pub breaker_pause_secs: u64,
    /// Wait after a `429` without a usable `Retry-After`, doubled on each consecutive one until a
    /// call succeeds (at most `circuits.max_retry_after_secs`).
    pub default_retry_after_secs: u64,
    /// Rows per page when queueing eligible cards and tokens.
    pub enqueue_page: i64,
    /// Hours between the scheduled cycles' full scans for lookups owed (card batches and
    /// consent changes queue theirs at once; start-up and admin cycles always scan).
    pub full_scan_hours: u64,
    /// Bound of the resolver's mailbox.
    pub mailbox_capacity: usize,
}

impl ParResolverSettings {
    /// "No PAR yet" wait.
    pub fn reask_after(&self) -> Duration {
        Duration::from_secs(self.reask_after_hours * 3600)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_size == 0 || self.concurrency == 0 || self.enqueue_page <= 0 {
            return Err(invalid(
                "par_resolver",
                "batch_size, concurrency and enqueue_page must be positive",
            ));
        }
        if self.lease_secs == 0 || self.interval_secs == 0 {
            return Err(invalid(
                "par_resolver",
                "lease_secs and interval_secs must be positive",
            ));
        }
        if self.retry_attempts == 0 || self.breaker_failures == 0 {
            return Err(invalid(
                "par_resolver",
                "retry_attempts and breaker_failures must be at least 1",
            ));
        }
        if self.max_reasks < 0 {
            return Err(invalid("par_resolver.max_reasks", "must not be negative"));
        }
        Ok(())
    }
}

impl BinRefreshSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.min_ratio) {
            return Err(invalid("bin_refresh.min_ratio", "must be between 0 and 1"));
        }
        if self.attempts == 0 {
            return Err(invalid("bin_refresh.attempts", "must be at least 1"));
        }
        Ok(())
    }
}
