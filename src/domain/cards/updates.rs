//! What the platform is told (`card.update`): after a batch, each citizen↔card link is compared
//! with what was last published for it, and the differences become one message per citizen.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::Snapshot;
use crate::domain::{
    format_update_timestamp, next_update_timestamp, Consent, ConsentState, Hpan, Htoken, Service,
    TaxCode,
};

/// `INSERT_UPDATE` or `REVOKE`, for a card; `INSERT_UPDATE` or `DELETE`, for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// The card (or token) is enrolled, or changed.
    InsertUpdate,
    /// The card is no longer enrolled for the citizen.
    Revoke,
    /// The token left the card.
    Delete,
}

/// One token of a card update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenUpdate {
    /// The HTOKEN.
    pub htoken: String,
    /// What happened to it.
    pub haction: Action,
    /// Its enrolment date when it differs from the message's `timestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// One card of a card update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardUpdateEntry {
    /// The HPAN.
    pub hpan: String,
    /// What happened to it.
    pub action: Action,
    /// Its PAR (as stored).
    pub par: String,
    /// The tokens that changed; `null` on `REVOKE`.
    pub htokens: Option<Vec<TokenUpdate>>,
}

/// The `card.update` message (`messages.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardUpdate {
    /// The citizen; `null` only for the `REVOKE` of a card with no live link left.
    pub tax_code: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss:SSSS`, Europe/Rome, strictly increasing per card.
    pub timestamp: String,
    /// The affected cards.
    pub cards: Vec<CardUpdateEntry>,
}

/// A message ready for the outbox, with the key that orders it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Messages with the same key are published in order (the citizen's tax code).
    pub partition_key: String,
    /// The message.
    pub message: CardUpdate,
}

/// Whether a citizen's consent covers a card for at least one service.
pub fn has_consent(state: Option<&ConsentState>, hpan: &Hpan) -> bool {
    state.is_some_and(|s| {
        Service::ALL
            .iter()
            .any(|svc| s.card_service(hpan, *svc) == Consent::Allow)
    })
}

/// Compares every link of the snapshot with what was published for it, marks the links, advances
/// the cards' update timestamps, and returns the messages to publish.
pub fn reconcile(snap: &mut Snapshot, now: DateTime<Utc>) -> Vec<Outgoing> {
    // (partition, taxCode in the message) → entries, and the cards they touch.
    let mut grouped: BTreeMap<(String, Option<String>), Vec<CardUpdateEntry>> = BTreeMap::new();
    let hpans: Vec<Hpan> = snap.links.keys().cloned().collect();
    for hpan in hpans {
        let Some(card) = snap.cards.get(&hpan) else {
            continue;
        };
        let par = card.par.as_ref().map(|(p, _)| p.to_string());
        let par_key = card.par_key();
        let active = card.active;
        let after_tokens = snap.visible_tokens(&hpan);
        let (before_par, before_tokens) = snap.before.get(&hpan).cloned().unwrap_or_default();
        let since_of = |h: &Htoken| snap.tokens.get(h).and_then(|t| t.since);
        let desired_for =
            |tax: &TaxCode| active && par.is_some() && has_consent(snap.consents.get(tax), &hpan);
        let mut decisions = Vec::new();
        for link in snap.links.get(&hpan).map(Vec::as_slice).unwrap_or_default() {
            let desired = link.live && desired_for(&link.tax_code);
            decisions.push((link.tax_code.clone(), link.published, desired));
        }
        let mut flips = Vec::new();
        for (tax, was, desired) in decisions {
            let Some(par) = par.clone() else {
                // A published card always has a PAR; without one there is nothing to say.
                continue;
            };
            let entry = match (was, desired) {
                (false, true) => Some(CardUpdateEntry {
                    hpan: hpan.to_string(),
                    action: Action::InsertUpdate,
                    par,
                    htokens: Some(token_list(&after_tokens, &BTreeSet::new(), &since_of)),
                }),
                (true, false) => Some(CardUpdateEntry {
                    hpan: hpan.to_string(),
                    action: Action::Revoke,
                    par,
                    htokens: None,
                }),
                (true, true) => {
                    let removed = if before_par == par_key {
                        before_tokens.difference(&after_tokens).cloned().collect()
                    } else {
                        before_tokens.clone()
                    };
                    let added: BTreeSet<Htoken> = if before_par == par_key {
                        after_tokens.difference(&before_tokens).cloned().collect()
                    } else {
                        after_tokens.clone()
                    };
                    let par_changed = before_par != par_key;
                    (par_changed || !added.is_empty() || !removed.is_empty()).then(|| {
                        CardUpdateEntry {
                            hpan: hpan.to_string(),
                            action: Action::InsertUpdate,
                            par,
                            htokens: Some(token_list(&added, &removed, &since_of)),
                        }
                    })
                }
                (false, false) => None,
            };
            if was != desired {
                flips.push((tax.clone(), desired));
            }
            if let Some(e) = entry {
                let message_tax = if e.action == Action::Revoke && !active {
                    None
                } else {
                    Some(tax.to_string())
                };
                grouped
                    .entry((tax.to_string(), message_tax))
                    .or_default()
                    .push(e);
            }
        }
        for (tax, desired) in flips {
            if let Some(l) = snap.link_mut(&hpan, &tax) {
                l.published = desired;
                l.dirty = true;
            }
        }
    }
    grouped
        .into_iter()
        .map(|((partition_key, tax_code), cards)| {
            let ts = message_timestamp(snap, &cards, now);
            let since_fmt = |e: CardUpdateEntry| CardUpdateEntry {
                htokens: e.htokens.map(|ts_list| {
                    ts_list
                        .into_iter()
                        .map(|t| TokenUpdate {
                            since: t.since.filter(|s| *s != format_update_timestamp(ts)),
                            ..t
                        })
                        .collect()
                }),
                ..e
            };
            Outgoing {
                partition_key,
                message: CardUpdate {
                    tax_code,
                    timestamp: format_update_timestamp(ts),
                    cards: cards.into_iter().map(since_fmt).collect(),
                },
            }
        })
        .collect()
}

fn token_list(
    added: &BTreeSet<Htoken>,
    removed: &BTreeSet<Htoken>,
    since_of: &dyn Fn(&Htoken) -> Option<DateTime<Utc>>,
) -> Vec<TokenUpdate> {
    added
        .iter()
        .map(|h| TokenUpdate {
            htoken: h.to_string(),
            haction: Action::InsertUpdate,
            since: since_of(h).map(format_update_timestamp),
        })
        .chain(removed.iter().map(|h| TokenUpdate {
            htoken: h.to_string(),
            haction: Action::Delete,
            since: None,
        }))
        .collect()
}

/// The message's timestamp: after every one of its cards' previous updates (strictly increasing
/// per card), and recorded on those cards.
fn message_timestamp(
    snap: &mut Snapshot,
    cards: &[CardUpdateEntry],
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut ts = next_update_timestamp(None, now);
    for e in cards {
        if let Some(c) = crate::domain::Hpan::parse(&e.hpan)
            .ok()
            .and_then(|h| snap.cards.get(&h))
        {
            ts = ts.max(next_update_timestamp(c.last_update_ts, now));
        }
    }
    for e in cards {
        if let Some(c) = crate::domain::Hpan::parse(&e.hpan)
            .ok()
            .and_then(|h| snap.cards.get_mut(&h))
        {
            c.last_update_ts = Some(ts);
            c.dirty = true;
        }
    }
    ts
}
