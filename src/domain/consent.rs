//! Consent values: a citizen's per-service consent and card overrides, its summary, and the
//! timeline of committed changes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use super::{Hpan, Service};

/// One consent value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Consent {
    /// The citizen allows the use.
    Allow,
    /// The citizen denies it (the default).
    Deny,
}

/// The summary of a citizen's (or a card's) consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Summary {
    /// Every service allowed, no override denying.
    Allow,
    /// Every service denied, no override allowing.
    Deny,
    /// Anything in between.
    Partial,
}

impl From<Consent> for Summary {
    fn from(c: Consent) -> Self {
        match c {
            Consent::Allow => Summary::Allow,
            Consent::Deny => Summary::Deny,
        }
    }
}

/// Per-service consent of a citizen plus card overrides (HPAN × service). Serialised into the
/// history as `{"services": {"BPD": "Allow", …}, "cards": {"<hpan>": {"FA": "Deny"}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// Citizen-level consent per service; a missing service is `Deny`.
    pub services: BTreeMap<Service, Consent>,
    /// Card overrides.
    #[serde(default)]
    pub cards: BTreeMap<Hpan, BTreeMap<Service, Consent>>,
}

impl Default for ConsentState {
    fn default() -> Self {
        Self::uniform(Consent::Deny)
    }
}

impl ConsentState {
    /// Every service set to `consent`, no override.
    pub fn uniform(consent: Consent) -> Self {
        Self {
            services: Service::ALL.iter().map(|s| (*s, consent)).collect(),
            cards: BTreeMap::new(),
        }
    }

    /// Citizen-level consent for a service.
    pub fn service(&self, s: Service) -> Consent {
        self.services.get(&s).copied().unwrap_or(Consent::Deny)
    }

    /// The consent that applies to a card for a service: its override, else the citizen's.
    pub fn card_service(&self, hpan: &Hpan, s: Service) -> Consent {
        self.cards
            .get(hpan)
            .and_then(|o| o.get(&s))
            .copied()
            .unwrap_or_else(|| self.service(s))
    }

    /// The summary over `services` (all when empty): `Allow` when each is allowed and no override
    /// denies it, `Deny` when each is denied and no override allows it, `Partial` otherwise.
    pub fn summary(&self, services: &[Service]) -> Summary {
        let services = if services.is_empty() {
            &Service::ALL[..]
        } else {
            services
        };
        let values = services.iter().flat_map(|s| {
            std::iter::once(self.service(*s))
                .chain(self.cards.values().filter_map(move |o| o.get(s).copied()))
        });
        uniform_summary(values)
    }

    /// The summary of one card over `services` (all when empty).
    pub fn card_summary(&self, hpan: &Hpan, services: &[Service]) -> Summary {
        let services = if services.is_empty() {
            &Service::ALL[..]
        } else {
            services
        };
        uniform_summary(services.iter().map(|s| self.card_service(hpan, *s)))
    }

    /// Whether the citizen-level view of a service is active: the citizen allows it or some card
    /// override does (`GET /consent/status` without `hpan`).
    pub fn service_active(&self, s: Service) -> bool {
        self.service(s) == Consent::Allow
            || self
                .cards
                .values()
                .any(|o| o.get(&s) == Some(&Consent::Allow))
    }
}

fn uniform_summary(mut values: impl Iterator<Item = Consent>) -> Summary {
    let Some(first) = values.next() else {
        return Summary::Deny;
    };
    if values.all(|v| v == first) {
        first.into()
    } else {
        Summary::Partial
    }
}

/// A consent change a client asks for (already validated at the edge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentChange {
    /// No `hpan`, no `services`: every service at citizen level, overrides cleared.
    All(Consent),
    /// `services` without `hpan`: those services at citizen level, their overrides cleared.
    Services(Consent, BTreeSet<Service>),
    /// `hpan` (with `services`, or all): a card override.
    Card(Consent, Hpan, BTreeSet<Service>),
    /// `DELETE /consent`: every service `Deny`, overrides cleared.
    WithdrawAll,
}

/// One committed change: the instant and the state from then on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// When the change took effect (commit order, strictly increasing per citizen).
    pub at: DateTime<Utc>,
    /// The state from `at` on.
    pub state: ConsentState,
}

/// The next change instant: strictly after the previous one, so history stays ordered even if
/// the clock steps back. Truncated to microseconds (PostgreSQL's precision), so what the cache
/// holds equals what the database returns.
pub fn next_instant(previous: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    let now = truncate_micros(now);
    match previous {
        Some(p) if p >= now => p + chrono::Duration::microseconds(1),
        _ => now,
    }
}

/// Drops sub-microsecond precision.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpan(c: &str) -> Hpan {
        Hpan::parse(&c.repeat(64)).unwrap()
    }

    #[test]
    fn default_is_deny_everywhere() {
        let s = ConsentState::default();
        assert_eq!(s.summary(&[]), Summary::Deny);
        assert!(!s.service_active(Service::Bpd));
    }

    #[test]
    fn summary_follows_the_spec() {
        let mut s = ConsentState::uniform(Consent::Allow);
        assert_eq!(s.summary(&[]), Summary::Allow);
        s.cards
            .entry(hpan("a"))
            .or_default()
            .insert(Service::Fa, Consent::Deny);
        assert_eq!(s.summary(&[]), Summary::Partial, "an override denies");
        assert_eq!(
            s.summary(&[Service::Bpd]),
            Summary::Allow,
            "restricted to BPD"
        );

        let mut d = ConsentState::uniform(Consent::Deny);
        d.cards
            .entry(hpan("b"))
            .or_default()
            .insert(Service::Bpd, Consent::Allow);
        assert_eq!(d.summary(&[]), Summary::Partial, "an override allows");
        assert!(d.service_active(Service::Bpd));
        assert!(!d.service_active(Service::Fa));
        assert_eq!(d.card_summary(&hpan("b"), &[]), Summary::Partial);
        assert_eq!(d.card_summary(&hpan("b"), &[Service::Bpd]), Summary::Allow);
        assert_eq!(d.card_summary(&hpan("c"), &[]), Summary::Deny);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = ConsentState::uniform(Consent::Deny);
        s.services.insert(Service::Bpd, Consent::Allow);
        s.cards
            .entry(hpan("d"))
            .or_default()
            .insert(Service::Fa, Consent::Allow);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["services"]["BPD"], "Allow");
        assert_eq!(json["cards"]["d".repeat(64)]["FA"], "Allow");
        let back: ConsentState = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn next_instant_is_strictly_increasing() {
        use chrono::TimeZone;
        let t = |h| Utc.with_ymd_and_hms(2026, 11, 1, h, 0, 0).unwrap();
        assert_eq!(next_instant(None, t(1)), t(1));
        assert_eq!(next_instant(Some(t(0)), t(1)), t(1));
        assert_eq!(
            next_instant(Some(t(2)), t(1)),
            t(2) + chrono::Duration::microseconds(1)
        );
    }
}
