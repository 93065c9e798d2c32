//! The card registry's merge rules (`data.md`): shapes, trust-ranked associations, conflicts,
//! link ordering by event timestamp, additive tokens with explicit deletions, deletion.
//!
//! Each command is checked for conflicts before anything changes, so a refused command leaves the
//! snapshot as it was.

use chrono::{DateTime, Utc};

use super::model::{last4, CardRow, Conflict, LinkRow, Reassociation, Snapshot, TokenRow};
use crate::domain::{
    CardCommand, CardDeletion, CardEvent, CardRef, Circuit, Hpan, Par, Source, Sourced, TaxCode,
    TokenRef,
};

/// Limits of the rules.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most provisional (token-list, transaction) tokens per PAR.
    pub max_learnt_tokens_per_par: usize,
}

/// What became of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (possibly with no visible change: idempotent redelivery).
    Applied,
    /// Older than the link's last change: ignored (counted).
    Stale,
    /// A deletion for an unknown card or link: acknowledged and counted.
    UnknownLink,
    /// A deletion of a link already closed.
    NoLiveLink,
    /// Refused: a PAR other than the one a more (or equally) trusted source gave.
    ParConflict,
    /// A redelivery of a message already applied (same queue and `message_id`): ignored.
    Duplicate,
    /// A provisional source's tokens that are all attached to that PAR already (nothing new,
    /// not even a clear token PAN).
    AlreadyKnown,
    /// A provisional source's tokens, none attached: the PAR has
    /// `cards.max_learnt_tokens_per_par` provisional tokens already.
    TokenLimit,
}

/// Where the tokens of an event go.
#[derive(Clone, Debug)]
enum Target {
    Par(Par),
    Card(Hpan),
    Unattached,
}

/// Applies one command to the snapshot.
pub fn apply(snap: &mut Snapshot, cmd: &Sourced, now: DateTime<Utc>, limits: Limits) -> Outcome {
    match &cmd.command {
        CardCommand::Delete(d) => delete(snap, d, now),
        CardCommand::Event(e) => {
            if is_stale(snap, e, now) {
                return Outcome::Stale;
            }
            if conflicts(snap, e, cmd.source) {
                return Outcome::ParConflict;
            }
            event(snap, e, cmd.source, now, limits)
        }
    }
}

/// An enrolment older than its link's last change is ignored, so a delete followed by a
/// re-enrolment is never applied as re-enrolment then delete.
fn is_stale(snap: &Snapshot, e: &CardEvent, now: DateTime<Utc>) -> bool {
    let CardEvent::Enrolment {
        tax_code,
        card,
        timestamp,
        ..
    } = e
    else {
        return false;
    };
    let ts = timestamp.unwrap_or(now);
    snap.links
        .get(&card.hpan)
        .and_then(|ls| ls.iter().find(|l| l.tax_code == *tax_code))
        .is_some_and(|l| ts < l.changed_at)
}

/// Records the conflicts `e` would cause; true when there is any (then nothing is applied).
fn conflicts(snap: &mut Snapshot, e: &CardEvent, source: Source) -> bool {
    let mut found = Vec::new();
    let card = e.card().and_then(|c| snap.cards.get(&c.hpan));
    if let (Some(card), Some(par)) = (card, e.par()) {
        if let Some((current, cur_src)) = &card.par {
            // Same account, or a more trusted source replacing a provisional PAR: no conflict.
            let replaces = cur_src.is_provisional() && source > *cur_src;
            if !(current.same_account(par) || replaces) {
                found.push(Conflict {
                    subject: "card",
                    key: card.hpan.to_string(),
                    current: current.to_string(),
                    claimed: par.to_string(),
                    source,
                });
            }
        }
    }
    let target_par = e
        .par()
        .cloned()
        .or_else(|| card.and_then(|c| c.par.as_ref().map(|(p, _)| p.clone())));
    for t in e.tokens().iter().filter(|t| !t.deleted) {
        let Some(row) = snap.tokens.get(&t.htoken) else {
            continue;
        };
        if row.deleted {
            continue;
        }
        let clash = match (&target_par, &row.par, e.card(), &row.card) {
            (Some(p), Some(cur), _, _) => {
                (!cur.same_account(p)).then(|| (cur.to_string(), p.to_string()))
            }
            (None, None, Some(c), Some(cur)) => {
                (*cur != c.hpan).then(|| (cur.to_string(), c.hpan.to_string()))
            }
            _ => None,
        };
        if let Some((current, claimed)) = clash {
            if source <= row.source {
                found.push(Conflict {
                    subject: "token",
                    key: t.htoken.to_string(),
                    current,
                    claimed,
                    source,
                });
            }
        }
    }
    let any = !found.is_empty();
    snap.conflicts.extend(found);
    any
}

fn event(
    snap: &mut Snapshot,
    e: &CardEvent,
    source: Source,
    now: DateTime<Utc>,
    limits: Limits,
) -> Outcome {
    match e {
        CardEvent::Enrolment {
            tax_code,
            card,
            par,
            circuit,
            tokens,
            timestamp,
        } => {
            let ts = timestamp.unwrap_or(now);
            upsert_card(snap, card, *circuit);
            if let Some(p) = par {
                set_card_par(snap, &card.hpan, p, source);
            }
            open_link(snap, &card.hpan, tax_code, ts);
            let target = card_target(snap, &card.hpan);
            add_tokens(snap, tokens, &target, *circuit, source, limits);
        }
        CardEvent::CardPar {
            card,
            par,
            circuit,
            tokens,
        } => {
            upsert_card(snap, card, *circuit);
            set_card_par(snap, &card.hpan, par, source);
            let target = card_target(snap, &card.hpan);
            add_tokens(snap, tokens, &target, *circuit, source, limits);
        }
        CardEvent::ParTokens {
            par,
            circuit,
            tokens,
        } => {
            let live = tokens.iter().filter(|t| !t.deleted).count();
            if source.is_provisional() && live > 0 && all_known(snap, par, tokens) {
                return Outcome::AlreadyKnown;
            }
            let target = Target::Par(par.clone());
            let capped = add_tokens(snap, tokens, &target, *circuit, source, limits);
            if live > 0 && capped == live {
                return Outcome::TokenLimit;
            }
        }
        CardEvent::Tokens { circuit, tokens } => {
            add_tokens(snap, tokens, &Target::Unattached, *circuit, source, limits);
        }
    }
    Outcome::Applied
}

/// Every token is live on `par` already, with its clear PAN when the event brings one.
fn all_known(snap: &Snapshot, par: &Par, tokens: &[TokenRef]) -> bool {
    let key = par.key();
    tokens.iter().filter(|t| !t.deleted).all(|t| {
        snap.tokens.get(&t.htoken).is_some_and(|r| {
            !r.deleted
                && r.par_key().as_deref() == Some(key.as_str())
                && (r.has_clear || t.token.is_none())
        })
    })
}

fn card_target(snap: &Snapshot, hpan: &Hpan) -> Target {
    match snap.cards.get(hpan).and_then(|c| c.par.as_ref()) {
        Some((p, _)) => Target::Par(p.clone()),
        None => Target::Card(hpan.clone()),
    }
}

fn upsert_card(snap: &mut Snapshot, card: &CardRef, circuit: Circuit) {
    let row = snap
        .cards
        .entry(card.hpan.clone())
        .or_insert_with(|| CardRow {
            id: None,
            hpan: card.hpan.clone(),
            new_pan: None,
            last4: None,
            circuit,
            par: None,
            active: false,
            last_update_ts: None,
            dirty: true,
        });
    if let (Some(pan), None) = (&card.pan, &row.last4) {
        row.last4 = Some(last4(pan.expose()));
        row.new_pan = Some(pan.clone());
        row.dirty = true;
    }
}

/// Sets, confirms or (from a more trusted source than a provisional one) replaces a card's PAR;
/// conflicts were refused before. Tokens waiting on the card move to its PAR.
fn set_card_par(snap: &mut Snapshot, hpan: &Hpan, par: &Par, source: Source) {
    let Some(card) = snap.cards.get_mut(hpan) else {
        return;
    };
    let changed = match &card.par {
        None => true,
        Some((cur, cur_src)) if cur.same_account(par) => {
            if source > *cur_src {
                card.par = Some((par.clone(), source));
                card.dirty = true;
            }
            false
        }
        Some(_) => true,
    };
    if !changed {
        return;
    }
    if let Some((old, _)) = &card.par {
        snap.reassociations.push(Reassociation {
            subject: "card",
            key: hpan.to_string(),
            from: Some(old.to_string()),
            to: par.to_string(),
            source,
        });
    }
    card.par = Some((par.clone(), source));
    card.dirty = true;
    for t in snap.tokens.values_mut() {
        if t.par.is_none() && t.card.as_ref() == Some(hpan) {
            t.par = Some(par.clone());
            t.card = None;
            t.dirty = true;
            snap.provisional_by_par = None;
        }
    }
}

fn open_link(snap: &mut Snapshot, hpan: &Hpan, tax: &TaxCode, ts: DateTime<Utc>) {
    if let Some(l) = snap.link_mut(hpan, tax) {
        if !l.live {
            l.live = true;
            l.opened_at = ts;
            l.closed_at = None;
            l.opened_intervals.push(ts);
        }
        if ts > l.changed_at {
            l.changed_at = ts;
        }
        l.dirty = true;
    } else {
        snap.links.entry(hpan.clone()).or_default().push(LinkRow {
            hpan: hpan.clone(),
            tax_code: tax.clone(),
            live: true,
            opened_at: ts,
            closed_at: None,
            changed_at: ts,
            published: false,
            new: true,
            dirty: true,
            opened_intervals: vec![ts],
            closed_intervals: Vec::new(),
        });
    }
    if let Some(card) = snap.cards.get_mut(hpan) {
        if !card.active {
            card.active = true;
            card.dirty = true;
        }
    }
}

fn add_tokens(
    snap: &mut Snapshot,
    tokens: &[TokenRef],
    target: &Target,
    circuit: Circuit,
    source: Source,
    limits: Limits,
) -> usize {
    let mut capped = 0;
    for t in tokens {
        if t.deleted {
            // Only an issuer-ranked source removes a token; lists never do.
            if source >= Source::Issuer {
                if let Some(row) = snap.tokens.get_mut(&t.htoken) {
                    if !row.deleted {
                        row.deleted = true;
                        row.source = source;
                        row.dirty = true;
                        snap.provisional_by_par = None;
                    }
                }
            }
            continue;
        }
        if source.is_provisional() {
            if let Target::Par(p) = target {
                let known = snap
                    .tokens
                    .get(&t.htoken)
                    .is_some_and(|r| !r.deleted && r.par_key() == Some(p.key()));
                if !known
                    && snap.provisional_tokens_of(&p.key()) >= limits.max_learnt_tokens_per_par
                {
                    capped += 1;
                    continue;
                }
            }
        }
        let is_new = !snap.tokens.contains_key(&t.htoken);
        // Any change to a known token may move it between PARs or sources: count again.
        if !is_new {
            snap.provisional_by_par = None;
        }
        let row = snap
            .tokens
            .entry(t.htoken.clone())
            .or_insert_with(|| TokenRow {
                id: None,
                htoken: t.htoken.clone(),
                new_token: None,
                has_clear: false,
                last4: None,
                circuit: Some(circuit),
                par: None,
                card: None,
                source,
                deleted: false,
                since: None,
                dirty: true,
            });
        if row.deleted {
            if source < row.source {
                continue;
            }
            row.deleted = false;
            row.source = source;
            row.dirty = true;
        }
        if let (Some(clear), false) = (&t.token, row.has_clear) {
            row.new_token = Some(clear.clone());
            row.has_clear = true;
            row.last4 = Some(last4(clear.expose()));
            row.dirty = true;
        }
        if row.circuit.is_none() {
            row.circuit = Some(circuit);
            row.dirty = true;
        }
        attach(row, target, source, &mut snap.reassociations);
        if is_new && source.is_provisional() {
            if let Some(key) = row.par_key() {
                snap.count_provisional(key);
            }
        }
    }
    capped
}

/// Attaches a token to the target, moving it when the source outranks the current one
/// (conflicts were refused before).
fn attach(row: &mut TokenRow, target: &Target, source: Source, moved: &mut Vec<Reassociation>) {
    match target {
        Target::Par(p) => match &row.par {
            Some(cur) if cur.same_account(p) => {
                if source > row.source {
                    row.source = source;
                    row.par = Some(p.clone());
                    row.dirty = true;
                }
            }
            cur => {
                if let Some(old) = cur {
                    moved.push(Reassociation {
                        subject: "token",
                        key: row.htoken.to_string(),
                        from: Some(old.to_string()),
                        to: p.to_string(),
                        source,
                    });
                }
                row.par = Some(p.clone());
                row.card = None;
                row.source = source;
                row.dirty = true;
            }
        },
        Target::Card(h) => {
            if row.par.is_none() && row.card.as_ref() != Some(h) {
                row.card = Some(h.clone());
                row.source = source;
                row.dirty = true;
            } else if row.par.is_none() && source > row.source {
                row.source = source;
                row.dirty = true;
            }
        }
        Target::Unattached => {}
    }
}

fn delete(snap: &mut Snapshot, d: &CardDeletion, now: DateTime<Utc>) -> Outcome {
    let ts = d.timestamp.unwrap_or(now);
    if !snap.cards.contains_key(&d.hpan) {
        return Outcome::UnknownLink;
    }
    let Some(link) = snap.link_mut(&d.hpan, &d.tax_code) else {
        return Outcome::UnknownLink;
    };
    if ts < link.changed_at {
        return Outcome::Stale;
    }
    if !link.live {
        return Outcome::NoLiveLink;
    }
    link.live = false;
    link.closed_at = Some(ts);
    link.changed_at = ts;
    link.closed_intervals.push(ts);
    link.dirty = true;
    if !snap.has_live_link(&d.hpan) {
        if let Some(card) = snap.cards.get_mut(&d.hpan) {
            card.active = false;
            card.dirty = true;
        }
    }
    Outcome::Applied
}
