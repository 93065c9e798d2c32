//! The simulator's mutable state, shared by its workers behind one mutex: faults, statistics and
//! seen nonces per circuit, and the tokens generated so far. Plain data and arithmetic, no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::faults::Faults;
use crate::domain::Circuit;

/// How long a nonce is remembered (longer than the 5-minute freshness window).
pub const NONCE_MEMORY_SECS: i64 = 600;
/// How many seconds of the per-second histogram are kept.
const HISTOGRAM_SECS: i64 = 3600;

/// Calls per endpoint kind.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Calls {
    /// PAR lookups.
    pub par: u64,
    /// BIN range pages.
    pub bins: u64,
    /// Downloads of the BIN range file (`/sim/bin-files/{circuit}`, the `file` source).
    pub bin_files: u64,
}

/// The kind of a circuit endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PAR lookup.
    Par,
    /// BIN range page.
    Bins,
}

/// One circuit's statistics (`GET /sim/stats`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Every request that reached an endpoint.
    pub calls: Calls,
    /// PANs asked in PAR calls that passed the checks (an Amex batch counts each PAN).
    pub units: u64,
    /// Units per wall-clock unix second (the last hour).
    pub per_second: BTreeMap<i64, u64>,
    /// The largest value of `per_second` ever seen.
    pub max_per_second: u64,
    /// 429 answers.
    pub too_many_requests: u64,
    /// Authentication and protocol refusals (401/400).
    pub refused: u64,
    /// Injected failures (outage, 503, timeout, malformed, error in body).
    pub errors: u64,
}

impl Stats {
    /// Adds `units` in second `now`; returns that second's total.
    pub fn add_units(&mut self, now: i64, units: u64) -> u64 {
        self.units += units;
        let slot = self.per_second.entry(now).or_insert(0);
        *slot += units;
        let total = *slot;
        self.max_per_second = self.max_per_second.max(total);
        if self.per_second.len() > 1 {
            self.per_second = self.per_second.split_off(&(now - HISTOGRAM_SECS));
        }
        total
    }
}

/// One circuit's part of the state.
#[derive(Debug, Clone, Default)]
pub struct CircuitState {
    /// Configured faults.
    pub faults: Faults,
    /// End of the current outage window.
    pub outage_until: Option<Instant>,
    /// Statistics.
    pub stats: Stats,
    /// Nonces seen, with the unix second they were seen.
    nonces: HashMap<String, i64>,
    last_prune: i64,
}

impl CircuitState {
    /// Starts with `faults`.
    pub fn new(faults: Faults) -> Self {
        CircuitState {
            faults,
            ..CircuitState::default()
        }
    }

    /// Records a nonce; false when it was already seen.
    pub fn fresh_nonce(&mut self, nonce: &str, now: i64) -> bool {
        if now - self.last_prune > 60 {
            self.nonces
                .retain(|_, seen| now - *seen <= NONCE_MEMORY_SECS);
            self.last_prune = now;
        }
        match self.nonces.entry(nonce.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        }
    }

    /// Forgets faults (back to `faults`), statistics and nonces.
    pub fn reset(&mut self, faults: Faults) {
        *self = CircuitState::new(faults);
    }
}

/// Everything mutable.
#[derive(Debug, Default)]
pub struct State {
    visa: CircuitState,
    mastercard: CircuitState,
    amex: CircuitState,
    /// Token PAN → its card's PAN.
    tokens: HashMap<String, String>,
    /// Card PANs that have at least one token (their PAR exists from then on).
    tokenized: HashSet<String>,
}

impl State {
    /// Every circuit starts with `faults`.
    pub fn new(faults: &Faults) -> Self {
        State {
            visa: CircuitState::new(faults.clone()),
            mastercard: CircuitState::new(faults.clone()),
            amex: CircuitState::new(faults.clone()),
            ..State::default()
        }
    }

    /// One circuit's state.
    pub fn circuit(&mut self, circuit: Circuit) -> &mut CircuitState {
        match circuit {
            Circuit::Visa => &mut self.visa,
            Circuit::Mastercard => &mut self.mastercard,
            Circuit::Amex => &mut self.amex,
        }
    }

    /// Remembers tokens of `pan`.
    pub fn add_tokens(&mut self, pan: &str, tokens: &[String]) {
        for token in tokens {
            self.tokens.insert(token.clone(), pan.to_owned());
        }
        self.tokenized.insert(pan.to_owned());
    }

    /// Whether `token` is already taken.
    pub fn has_token(&self, token: &str) -> bool {
        self.tokens.contains_key(token)
    }

    /// The card PAN of a generated token.
    pub fn card_of(&self, token: &str) -> Option<String> {
        self.tokens.get(token).cloned()
    }

    /// Whether `pan` has a generated token.
    pub fn is_tokenized(&self, pan: &str) -> bool {
        self.tokenized.contains(pan)
    }

    /// Statistics of every circuit.
    pub fn stats(&self) -> BTreeMap<&'static str, Stats> {
        [
            (Circuit::Visa, &self.visa),
            (Circuit::Mastercard, &self.mastercard),
            (Circuit::Amex, &self.amex),
        ]
        .into_iter()
        .map(|(c, s)| (c.as_str(), s.stats.clone()))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_counted_per_second_with_the_maximum() {
        let mut s = Stats::default();
        assert_eq!(s.add_units(100, 1), 1);
        assert_eq!(s.add_units(100, 3), 4);
        assert_eq!(s.add_units(101, 1), 1);
        assert_eq!(s.units, 5);
        assert_eq!(s.max_per_second, 4);
        assert_eq!(s.per_second.get(&100), Some(&4));
        s.add_units(100 + HISTOGRAM_SECS + 1, 1);
        assert!(!s.per_second.contains_key(&100));
    }

    #[test]
    fn a_nonce_is_accepted_once_and_forgotten_after_its_memory() {
        let mut c = CircuitState::default();
        assert!(c.fresh_nonce("n", 1000));
        assert!(!c.fresh_nonce("n", 1001));
        assert!(!c.fresh_nonce("n", 1000 + NONCE_MEMORY_SECS));
        assert!(c.fresh_nonce("n", 1000 + NONCE_MEMORY_SECS + 100));
    }
}
