//! What the API shows of a citizen's consent: summary, last update, card details.

use chrono::{DateTime, Utc};

use super::messages::ConsentError;
use crate::db::consent::CitizenConsent;
use crate::domain::{Consent, Hpan, Service, Summary};

/// The consent of a citizen (or one of their cards) as `ConsentResponse` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentView {
    /// `Allow`, `Deny` or `Partial`.
    pub summary: Summary,
    /// When the consent last changed.
    pub last_update: DateTime<Utc>,
    /// Per-card detail, only for `Partial`.
    pub details: Vec<CardConsent>,
}

/// The consent that applies to one card, per service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardConsent {
    /// The card.
    pub hpan: Hpan,
    /// Consent per service.
    pub services: Vec<(Service, Consent)>,
}

/// Builds the view of `citizen`, for one card when `hpan` is given (404 1003 when the citizen has
/// no such card), over `services` (all when empty).
pub fn consent_view(
    citizen: &CitizenConsent,
    hpan: Option<&Hpan>,
    services: &[Service],
) -> Result<ConsentView, ConsentError> {
    let (Some(state), Some(last_update)) = (citizen.current(), citizen.last_update()) else {
        return Err(ConsentError::CitizenNotFound);
    };
    let services: Vec<Service> = if services.is_empty() {
        Service::ALL.to_vec()
    } else {
        services.to_vec()
    };
    let cards: Vec<&Hpan> = match hpan {
        Some(h) if state.cards.contains_key(h) => vec![h],
        Some(_) => return Err(ConsentError::HpanNotFound),
        None => state.cards.keys().collect(),
    };
    let summary = match hpan {
        Some(h) => state.card_summary(h, &services),
        None => state.summary(&services),
    };
    let details = if summary == Summary::Partial {
        cards
            .into_iter()
            .map(|h| CardConsent {
                hpan: h.clone(),
                services: services
                    .iter()
                    .map(|s| (*s, state.card_service(h, *s)))
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ConsentView {
        summary,
        last_update,
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Change, ConsentState};
    use chrono::TimeZone;

    fn hpan(c: &str) -> Hpan {
        Hpan::parse(&c.repeat(64)).unwrap()
    }

    fn citizen(state: ConsentState) -> CitizenConsent {
        CitizenConsent {
            version: 1,
            changes: vec![Change {
                at: Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
                state,
            }],
            complete: true,
        }
    }

    #[test]
    fn partial_lists_card_details() {
        let mut s = ConsentState::uniform(Consent::Deny);
        s.cards
            .entry(hpan("a"))
            .or_default()
            .insert(Service::Bpd, Consent::Allow);
        let v = consent_view(&citizen(s), None, &[]).unwrap();
        assert_eq!(v.summary, Summary::Partial);
        assert_eq!(
            v.details,
            vec![CardConsent {
                hpan: hpan("a"),
                services: vec![(Service::Bpd, Consent::Allow), (Service::Fa, Consent::Deny)],
            }]
        );
    }

    #[test]
    fn uniform_summaries_have_no_details() {
        let v = consent_view(&citizen(ConsentState::uniform(Consent::Allow)), None, &[]).unwrap();
        assert_eq!(v.summary, Summary::Allow);
        assert!(v.details.is_empty());
    }

    #[test]
    fn one_card_and_unknown_cards() {
        let mut s = ConsentState::uniform(Consent::Deny);
        s.cards
            .entry(hpan("a"))
            .or_default()
            .insert(Service::Fa, Consent::Allow);
        let c = citizen(s);
        let v = consent_view(&c, Some(&hpan("a")), &[Service::Fa]).unwrap();
        assert_eq!(v.summary, Summary::Allow);
        assert!(matches!(
            consent_view(&c, Some(&hpan("b")), &[]),
            Err(ConsentError::HpanNotFound)
        ));
    }
}
