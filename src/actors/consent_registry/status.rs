//! Status of a consent at any instant, from the timeline of committed changes (TK3).

use chrono::{DateTime, Utc};

use crate::domain::{Change, Consent, ConsentState, Hpan, Service};

/// The status of a service (optionally for one card) at an instant, and since when it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Whether the consent is active.
    pub active: bool,
    /// Start of the run of changes with this status; `None` when never active up to then.
    pub since: Option<DateTime<Utc>>,
}

/// Whether `state` makes `service` active (for `hpan` when given).
fn active_in(state: &ConsentState, service: Service, hpan: Option<&Hpan>) -> bool {
    match hpan {
        Some(h) => state.card_service(h, service) == Consent::Allow,
        None => state.service_active(service),
    }
}

/// The status at `at` over `changes` (ascending by `at`). `complete` says whether `changes` starts
/// with the citizen's first change: before it the citizen had given nothing (inactive, no
/// `since`). `None` when the answer lies before the changes given (ask the whole timeline).
pub fn status_at(
    changes: &[Change],
    complete: bool,
    service: Service,
    hpan: Option<&Hpan>,
    at: DateTime<Utc>,
) -> Option<Status> {
    let upto = changes.partition_point(|c| c.at <= at);
    let Some(last) = upto.checked_sub(1) else {
        return complete.then_some(Status {
            active: false,
            since: None,
        });
    };
    let active = active_in(&changes[last].state, service, hpan);
    let mut start = last;
    while start > 0 && active_in(&changes[start - 1].state, service, hpan) == active {
        start -= 1;
    }
    if start == 0 && !complete {
        return None;
    }
    let since = if !active && start == 0 {
        None
    } else {
        Some(changes[start].at)
    };
    Some(Status { active, since })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, h, 0, 0).unwrap()
    }

    fn hpan() -> Hpan {
        Hpan::parse(&"a".repeat(64)).unwrap()
    }

    fn timeline() -> Vec<Change> {
        let deny = ConsentState::uniform(Consent::Deny);
        let allow = ConsentState::uniform(Consent::Allow);
        let mut card = ConsentState::uniform(Consent::Deny);
        card.cards
            .entry(hpan())
            .or_default()
            .insert(Service::Bpd, Consent::Allow);
        vec![
            Change {
                at: t(1),
                state: deny.clone(),
            },
            Change {
                at: t(2),
                state: allow.clone(),
            },
            Change {
                at: t(3),
                state: allow,
            },
            Change {
                at: t(4),
                state: deny,
            },
            Change {
                at: t(5),
                state: card,
            },
        ]
    }

    fn st(tl: &[Change], s: Service, h: Option<&Hpan>, at: DateTime<Utc>) -> Status {
        status_at(tl, true, s, h, at).unwrap()
    }

    #[test]
    fn before_the_first_change_is_inactive_without_since() {
        let s = st(&timeline(), Service::Bpd, None, t(0));
        assert_eq!(
            s,
            Status {
                active: false,
                since: None
            }
        );
    }

    #[test]
    fn inactive_from_creation_has_no_since() {
        let s = st(&timeline(), Service::Bpd, None, t(1));
        assert_eq!(
            s,
            Status {
                active: false,
                since: None
            }
        );
    }

    #[test]
    fn since_is_the_start_of_the_run() {
        let tl = timeline();
        assert_eq!(
            st(&tl, Service::Bpd, None, t(3)),
            Status {
                active: true,
                since: Some(t(2))
            }
        );
        assert_eq!(
            st(&tl, Service::Fa, None, t(4)),
            Status {
                active: false,
                since: Some(t(4))
            }
        );
    }

    #[test]
    fn card_overrides_and_citizen_view() {
        let tl = timeline();
        assert!(st(&tl, Service::Bpd, None, t(6)).active, "some card allows");
        assert!(st(&tl, Service::Bpd, Some(&hpan()), t(6)).active);
        assert!(!st(&tl, Service::Fa, Some(&hpan()), t(6)).active);
        let other = Hpan::parse(&"b".repeat(64)).unwrap();
        assert!(!st(&tl, Service::Bpd, Some(&other), t(6)).active);
        assert_eq!(st(&tl, Service::Bpd, Some(&hpan()), t(6)).since, Some(t(5)));
    }

    #[test]
    fn a_partial_timeline_answers_only_what_it_can() {
        let tl = timeline();
        let recent = &tl[2..];
        assert_eq!(
            status_at(recent, false, Service::Fa, None, t(4)),
            Some(Status {
                active: false,
                since: Some(t(4))
            }),
            "the run starts inside the window"
        );
        assert_eq!(
            status_at(recent, false, Service::Bpd, None, t(3)),
            None,
            "the run may start before the window"
        );
        assert_eq!(
            status_at(recent, false, Service::Bpd, None, t(2)),
            None,
            "before the window"
        );
    }
}
