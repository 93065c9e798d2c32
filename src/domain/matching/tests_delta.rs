//! A kept snapshot caught up with what changed since its load (`delta.rs`): re-enrolled and new
//! cards, a deleted token, a card that moved to another PAR, a consent given since.

use chrono_tz::Europe::Rome;

use super::snapshot::DELTA_BIT;
use super::tests::{day, judge, noon, par, record, PROCESSED};
use super::*;
use crate::domain::transactions::HashKey;
use crate::domain::{Consent, ConsentState, Par};

const CARD: HashKey = HashKey([11; 32]);
const TOKEN: HashKey = HashKey([12; 32]);
const GONE_TOKEN: HashKey = HashKey([13; 32]);
const NEW_CARD: HashKey = HashKey([14; 32]);
const MOVER: HashKey = HashKey([15; 32]);
const CITIZEN: &str = "RSSMRA80A01H501U";

fn other_par(n: u8) -> Par {
    Par::parse(&format!("V00100138161803989472836522{n:02}")).unwrap()
}

fn allow(b: &mut SnapshotBuilder, version: i64, allowed: bool) {
    let c = if allowed {
        Consent::Allow
    } else {
        Consent::Deny
    };
    b.consent(
        CITIZEN,
        version,
        noon(day("2019-12-01")),
        &ConsentState::uniform(c),
    )
    .unwrap();
}

/// Loaded: CARD on PAR, its link closed on 2020-03-01; TOKEN and GONE_TOKEN on PAR; MOVER the
/// only card of PAR 1; the citizen denies.
fn base() -> Snapshot {
    let mut b = SnapshotBuilder::new(Rome);
    let p = par();
    b.card(1, CARD, Some(&p)).unwrap();
    b.card(2, MOVER, Some(&other_par(1))).unwrap();
    b.token(TOKEN, Some(&p)).unwrap();
    b.token(GONE_TOKEN, Some(&p)).unwrap();
    b.interval(
        1,
        CITIZEN,
        noon(day("2020-01-01")),
        Some(noon(day("2020-03-01"))),
    )
    .unwrap();
    b.interval(2, CITIZEN, noon(day("2020-01-01")), None)
        .unwrap();
    allow(&mut b, 1, false);
    b.build()
}

/// Read again since: CARD re-enrolled on 2020-05-01, NEW_CARD enrolled, GONE_TOKEN deleted,
/// MOVER moved to PAR 2, the citizen allows (version 2).
fn changes() -> (Snapshot, Vec<HashKey>) {
    let mut b = SnapshotBuilder::new(Rome);
    let p = par();
    b.card(1, CARD, Some(&p)).unwrap();
    b.card(2, MOVER, Some(&other_par(2))).unwrap();
    b.card(3, NEW_CARD, None).unwrap();
    b.token(TOKEN, Some(&p)).unwrap();
    for (card, from, to) in [
        (1, "2020-01-01", Some("2020-03-01")),
        (1, "2020-05-01", None),
        (2, "2020-01-01", None),
        (3, "2020-05-01", None),
    ] {
        b.interval(card, CITIZEN, noon(day(from)), to.map(|t| noon(day(t))))
            .unwrap();
    }
    allow(&mut b, 1, false);
    b.consent(
        CITIZEN,
        2,
        noon(day("2020-04-01")),
        &ConsentState::uniform(Consent::Allow),
    )
    .unwrap();
    (b.build(), vec![CARD, GONE_TOKEN, NEW_CARD, MOVER])
}

fn outcome(snap: &Snapshot, hash: HashKey, par: Option<Par>) -> (Outcome, MatchKind) {
    let d = judge(
        snap,
        DateRule::Design,
        &record(hash, day("2020-06-15"), par),
        day(PROCESSED),
    );
    (d.outcome, d.kind)
}

#[test]
fn a_caught_up_snapshot_decides_as_a_fresh_load_would() {
    let mut snap = base();
    // A full load now would read exactly the changes: they hold every instrument here.
    let (fresh, changed) = changes();
    let before = [
        outcome(&snap, CARD, None),
        outcome(&snap, NEW_CARD, None),
        outcome(&snap, TOKEN, None),
        outcome(&snap, GONE_TOKEN, None),
        outcome(&snap, HashKey([99; 32]), Some(other_par(1))),
    ];
    assert_eq!(
        before,
        [
            (Outcome::Discarded(Reason::NotActive), MatchKind::Hpan),
            (Outcome::Discarded(Reason::NotEnrolled), MatchKind::None),
            (Outcome::Discarded(Reason::NotActive), MatchKind::Htoken),
            (Outcome::Discarded(Reason::NotActive), MatchKind::Htoken),
            (Outcome::Discarded(Reason::NoConsent), MatchKind::Par),
        ]
    );

    // The PARs the changed hashes had are read again with them.
    let old = snap.pars_of(&changed);
    assert_eq!(old, [par(), par(), other_par(1)]);
    let (again, _) = changes();
    snap.catch_up(again, changed.clone(), &old);
    assert_eq!(snap.changed(), 4);

    for (hash, par) in [
        (CARD, None),
        (NEW_CARD, None),
        (TOKEN, None),
        (GONE_TOKEN, None),
        (GONE_TOKEN, Some(par())),
        (HashKey([99; 32]), Some(other_par(1))),
        (HashKey([99; 32]), Some(other_par(2))),
        (MOVER, None),
    ] {
        assert_eq!(
            outcome(&snap, hash, par.clone()),
            outcome(&fresh, hash, par),
            "{hash:?}"
        );
    }
    assert_eq!(
        outcome(&snap, TOKEN, None),
        (Outcome::Accepted, MatchKind::Htoken),
        "the token's PAR is read from the changes: its card is live again, with consent"
    );
    assert_eq!(
        outcome(&snap, GONE_TOKEN, None),
        (Outcome::Discarded(Reason::NotEnrolled), MatchKind::None),
        "a deleted token is no longer known"
    );
    assert_eq!(
        outcome(&snap, HashKey([99; 32]), Some(other_par(1))),
        (Outcome::Discarded(Reason::NotEnrolled), MatchKind::None),
        "the PAR its only card left holds nothing"
    );
}

#[test]
fn a_layer_replaced_by_the_next_catch_up_keeps_indexes_of_its_own() {
    let mut snap = base();
    let (changes, changed) = changes();
    let old = snap.pars_of(&changed);
    snap.catch_up(changes, changed, &old);
    let Found::Card(c) = snap.find(&NEW_CARD, None) else {
        panic!("the new card is found");
    };
    assert_ne!(c & DELTA_BIT, 0, "an index of the layer");
    assert_eq!(snap.card_db_id(c), Some(3));
    assert_eq!(snap.links(c).count(), 1);
    // A catch-up that finds nothing changed leaves the base alone.
    snap.catch_up(Snapshot::default(), Vec::new(), &[]);
    assert_eq!(snap.find(&NEW_CARD, None), Found::Nothing);
    assert_eq!(snap.card_db_id(c), None, "an index of a layer that is gone");
    assert!(matches!(snap.find(&CARD, None), Found::Card(i) if i & DELTA_BIT == 0));
}
