//! The consent state machine: how a request changes a citizen's state, legacy-compatible.

use crate::domain::{Consent, ConsentChange, ConsentState, Summary};

/// Why a change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// 1005: the same summary is asked again.
    #[error("consent is already of the requested type")]
    AlreadySet,
    /// 1002: a card override asked for while the summary is `Allow`.
    #[error("a card consent cannot be given while the citizen allows every service")]
    NotConsistent,
    /// 1004: withdrawal for a citizen tkm does not know.
    #[error("citizen not found")]
    CitizenNotFound,
}

/// Applies `change` to the current state (`None`: unknown citizen) and returns the new state.
pub fn apply(
    current: Option<&ConsentState>,
    change: &ConsentChange,
) -> Result<ConsentState, RuleError> {
    let base = current.cloned().unwrap_or_default();
    match change {
        ConsentChange::All(consent) => {
            if let Some(cur) = current {
                if cur.summary(&[]) == Summary::from(*consent) {
                    return Err(RuleError::AlreadySet);
                }
            }
            Ok(ConsentState::uniform(*consent))
        }
        ConsentChange::Services(consent, services) => {
            let mut next = base;
            for s in services {
                next.services.insert(*s, *consent);
                for overrides in next.cards.values_mut() {
                    overrides.remove(s);
                }
            }
            next.cards.retain(|_, o| !o.is_empty());
            Ok(next)
        }
        ConsentChange::Card(consent, hpan, services) => {
            if current.is_some_and(|c| c.summary(&[]) == Summary::Allow) {
                return Err(RuleError::NotConsistent);
            }
            let mut next = base;
            let overrides = next.cards.entry(hpan.clone()).or_default();
            for s in services {
                overrides.insert(*s, *consent);
            }
            Ok(next)
        }
        ConsentChange::WithdrawAll => match current {
            None => Err(RuleError::CitizenNotFound),
            Some(_) => Ok(ConsentState::uniform(Consent::Deny)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Hpan, Service};
    use std::collections::BTreeSet;

    fn hpan(c: &str) -> Hpan {
        Hpan::parse(&c.repeat(64)).unwrap()
    }

    fn set(s: &[Service]) -> BTreeSet<Service> {
        s.iter().copied().collect()
    }

    #[test]
    fn first_deny_creates_a_denying_citizen() {
        let next = apply(None, &ConsentChange::All(Consent::Deny)).unwrap();
        assert_eq!(next, ConsentState::uniform(Consent::Deny));
    }

    #[test]
    fn the_same_summary_again_is_already_set() {
        let allow = ConsentState::uniform(Consent::Allow);
        assert_eq!(
            apply(Some(&allow), &ConsentChange::All(Consent::Allow)),
            Err(RuleError::AlreadySet)
        );
        let deny = ConsentState::uniform(Consent::Deny);
        assert_eq!(
            apply(Some(&deny), &ConsentChange::All(Consent::Deny)),
            Err(RuleError::AlreadySet)
        );
    }

    #[test]
    fn a_global_change_from_partial_clears_overrides() {
        let mut partial = ConsentState::uniform(Consent::Deny);
        partial
            .cards
            .entry(hpan("a"))
            .or_default()
            .insert(Service::Bpd, Consent::Allow);
        let next = apply(Some(&partial), &ConsentChange::All(Consent::Deny)).unwrap();
        assert!(next.cards.is_empty());
        assert_eq!(next.summary(&[]), Summary::Deny);
    }

    #[test]
    fn per_service_change_sets_those_services_and_clears_their_overrides() {
        let mut cur = ConsentState::uniform(Consent::Deny);
        let card = cur.cards.entry(hpan("a")).or_default();
        card.insert(Service::Bpd, Consent::Allow);
        card.insert(Service::Fa, Consent::Allow);
        let next = apply(
            Some(&cur),
            &ConsentChange::Services(Consent::Allow, set(&[Service::Fa])),
        )
        .unwrap();
        assert_eq!(next.service(Service::Fa), Consent::Allow);
        assert_eq!(next.service(Service::Bpd), Consent::Deny);
        assert_eq!(next.cards[&hpan("a")].get(&Service::Fa), None);
        assert_eq!(next.cards[&hpan("a")][&Service::Bpd], Consent::Allow);

        let withdrawn = apply(
            Some(&next),
            &ConsentChange::Services(Consent::Deny, set(&[Service::Bpd])),
        )
        .unwrap();
        assert!(
            withdrawn.cards.is_empty(),
            "empty override maps are dropped"
        );
    }

    #[test]
    fn a_card_override_is_refused_from_allow() {
        let allow = ConsentState::uniform(Consent::Allow);
        assert_eq!(
            apply(
                Some(&allow),
                &ConsentChange::Card(Consent::Deny, hpan("a"), set(&Service::ALL))
            ),
            Err(RuleError::NotConsistent)
        );
    }

    #[test]
    fn a_card_override_from_deny_or_for_a_new_citizen() {
        let next = apply(
            None,
            &ConsentChange::Card(Consent::Allow, hpan("a"), set(&[Service::Bpd])),
        )
        .unwrap();
        assert_eq!(next.summary(&[]), Summary::Partial);
        assert_eq!(next.card_service(&hpan("a"), Service::Bpd), Consent::Allow);
        assert_eq!(next.card_service(&hpan("a"), Service::Fa), Consent::Deny);
        assert_eq!(next.card_service(&hpan("b"), Service::Bpd), Consent::Deny);
    }

    #[test]
    fn withdraw_all_needs_a_known_citizen_and_always_succeeds_then() {
        assert_eq!(
            apply(None, &ConsentChange::WithdrawAll),
            Err(RuleError::CitizenNotFound)
        );
        let deny = ConsentState::uniform(Consent::Deny);
        assert_eq!(
            apply(Some(&deny), &ConsentChange::WithdrawAll),
            Ok(ConsentState::uniform(Consent::Deny))
        );
    }
}
