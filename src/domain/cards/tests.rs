//! Scenarios of the card registry rules and what they publish, without a database.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::model::Snapshot;
use super::rules::{apply, Limits, Outcome};
use super::updates::{reconcile, Outgoing};
use crate::domain::{
    CardCommand, CardDeletion, CardEvent, CardRef, Circuit, Consent, ConsentState, Hpan, Htoken,
    Pan, Par, Source, Sourced, TaxCode, TokenPan, TokenRef,
};

const LIMITS: Limits = Limits {
    max_learnt_tokens_per_par: 2,
};

/// SHA-256 of the value followed by the salt, as the ecosystem hashes (`data.md`), computed
/// here rather than with the crypto layer.
fn digest(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(
        Sha256::new()
            .chain_update(value)
            .chain_update("testSalt")
            .finalize(),
    )
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 15, 0).unwrap()
}

fn tax() -> TaxCode {
    TaxCode::parse("KBVCPX27A11F205A").unwrap()
}

fn other_tax() -> TaxCode {
    TaxCode::parse("RSSMRA85T10A562S").unwrap()
}

fn card() -> CardRef {
    let pan = Pan::parse("5255000012340001").unwrap();
    CardRef {
        hpan: Hpan::parse(&digest(pan.expose())).unwrap(),
        pan: Some(pan),
    }
}

fn token(n: u8) -> TokenRef {
    let t = TokenPan::parse(&format!("52559900000000{n:02}")).unwrap();
    TokenRef {
        htoken: Htoken::parse(&digest(t.expose())).unwrap(),
        token: Some(t),
        deleted: false,
    }
}

fn par() -> Par {
    Par::parse("5001a1b2c3d4e5f6a7b8c9d0e1f2a").unwrap()
}

fn other_par() -> Par {
    Par::parse("5001ffffffffffffffffffffffff0").unwrap()
}

fn cmd(event: CardEvent, source: Source) -> Sourced {
    Sourced {
        command: CardCommand::Event(event),
        source,
        by: "test".into(),
        origin: None,
    }
}

fn enrol(tax: TaxCode, par: Option<Par>, tokens: Vec<TokenRef>, at: DateTime<Utc>) -> Sourced {
    cmd(
        CardEvent::Enrolment {
            tax_code: tax,
            card: card(),
            par,
            circuit: Circuit::Mastercard,
            tokens,
            timestamp: Some(at),
        },
        Source::Issuer,
    )
}

fn delete(tax: TaxCode, at: DateTime<Utc>) -> Sourced {
    Sourced {
        command: CardCommand::Delete(CardDeletion {
            tax_code: tax,
            hpan: card().hpan,
            timestamp: Some(at),
        }),
        source: Source::Issuer,
        by: "test".into(),
        origin: None,
    }
}

fn consenting(snap: &mut Snapshot, who: TaxCode) {
    snap.consents
        .insert(who, ConsentState::uniform(Consent::Allow));
}

/// Applies the commands to `snap`, then reconciles, as one batch would.
fn batch(snap: &mut Snapshot, cmds: &[Sourced]) -> (Vec<Outcome>, Vec<Outgoing>) {
    snap.remember_before();
    let outcomes = cmds.iter().map(|c| apply(snap, c, now(), LIMITS)).collect();
    let out = reconcile(snap, now());
    // The next batch starts from what this one left, as after a commit.
    snap.before.clear();
    for c in snap.cards.values_mut() {
        c.dirty = false;
    }
    (outcomes, out)
}

fn json_of(o: &Outgoing) -> serde_json::Value {
    serde_json::to_value(&o.message).unwrap()
}

#[test]
fn an_enrolment_with_par_and_token_of_a_consenting_citizen_publishes_the_fixture_update() {
    let mut snap = Snapshot::default();
    consenting(&mut snap, tax());
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 9, 15, 0).unwrap();
    let (outcomes, out) = batch(&mut snap, &[enrol(tax(), Some(par()), vec![token(17)], at)]);
    assert_eq!(outcomes, vec![Outcome::Applied]);
    assert_eq!(out.len(), 1);
    let m = json_of(&out[0]);
    assert_eq!(
        m,
        json!({"taxCode": "KBVCPX27A11F205A", "timestamp": "2026-11-23 10:15:00:0000",
            "cards": [{"hpan": "1bf5dc4a1958aecc4bcc44ea4e2adf9f39877efcbe154ef8ac9f72fcb940e170",
                "action": "INSERT_UPDATE", "par": "5001a1b2c3d4e5f6a7b8c9d0e1f2a",
                "htokens": [{"htoken": "d10fff74f17a607d0d9341193b6fe3812ed82f515bfb368e08cd366c3649e822",
                    "haction": "INSERT_UPDATE"}]}]})
    );
    let c = &snap.cards[&card().hpan];
    assert!(c.active && c.new_pan.is_some());
    assert_eq!(c.last4.as_deref(), Some("0001"));
}

#[test]
fn without_consent_nothing_is_published_until_consent_arrives() {
    let mut snap = Snapshot::default();
    let (_, out) = batch(
        &mut snap,
        &[enrol(tax(), Some(par()), vec![token(17), token(18)], now())],
    );
    assert!(out.is_empty());
    consenting(&mut snap, tax());
    let (_, out) = batch(&mut snap, &[]);
    assert_eq!(out.len(), 1);
    let m = json_of(&out[0]);
    assert_eq!(m["cards"][0]["action"], "INSERT_UPDATE");
    assert_eq!(
        m["cards"][0]["htokens"].as_array().unwrap().len(),
        2,
        "all live tokens"
    );
    snap.consents
        .insert(tax(), ConsentState::uniform(Consent::Deny));
    let (_, out) = batch(&mut snap, &[]);
    let m = json_of(&out[0]);
    assert_eq!(m["cards"][0]["action"], "REVOKE");
    assert_eq!(
        m["taxCode"], "KBVCPX27A11F205A",
        "the card still has a live link"
    );
    assert_eq!(m["cards"][0]["htokens"], serde_json::Value::Null);
}

#[test]
fn a_card_without_par_publishes_nothing_and_its_tokens_move_to_the_par_when_found() {
    let mut snap = Snapshot::default();
    consenting(&mut snap, tax());
    let (_, out) = batch(&mut snap, &[enrol(tax(), None, vec![token(1)], now())]);
    assert!(out.is_empty(), "no PAR, nothing to tell");
    assert_eq!(snap.tokens[&token(1).htoken].card, Some(card().hpan));
    let found = cmd(
        CardEvent::CardPar {
            card: CardRef {
                hpan: card().hpan,
                pan: None,
            },
            par: par(),
            circuit: Circuit::Mastercard,
            tokens: vec![],
        },
        Source::Circuit,
    );
    let (outcomes, out) = batch(&mut snap, &[found]);
    assert_eq!(outcomes, vec![Outcome::Applied]);
    let t = &snap.tokens[&token(1).htoken];
    assert_eq!((t.par.clone(), t.card.clone()), (Some(par()), None));
    let m = json_of(&out[0]);
    assert_eq!(
        m["cards"][0]["htokens"][0]["htoken"],
        token(1).htoken.as_str()
    );
}

#[test]
fn a_different_par_from_an_equally_trusted_source_is_a_conflict_and_changes_nothing() {
    let mut snap = Snapshot::default();
    batch(&mut snap, &[enrol(tax(), Some(par()), vec![], now())]);
    let later = now() + Duration::seconds(1);
    let (outcomes, out) = batch(
        &mut snap,
        &[enrol(tax(), Some(other_par()), vec![token(2)], later)],
    );
    assert_eq!(outcomes, vec![Outcome::ParConflict]);
    assert!(out.is_empty());
    assert_eq!(snap.cards[&card().hpan].par, Some((par(), Source::Issuer)));
    assert!(
        !snap.tokens.contains_key(&token(2).htoken),
        "nothing of a refused event applies"
    );
    assert_eq!(snap.conflicts.len(), 1);
    assert_eq!(snap.conflicts[0].source, Source::Issuer);
}

#[test]
fn a_case_difference_is_the_same_par_and_a_more_trusted_source_confirms_it() {
    let mut snap = Snapshot::default();
    batch(&mut snap, &[enrol(tax(), Some(par()), vec![], now())]);
    let upper = Par::parse(&par().as_str().to_uppercase()).unwrap();
    let confirm = cmd(
        CardEvent::CardPar {
            card: CardRef {
                hpan: card().hpan,
                pan: None,
            },
            par: upper.clone(),
            circuit: Circuit::Mastercard,
            tokens: vec![],
        },
        Source::Circuit,
    );
    let (outcomes, _) = batch(&mut snap, &[confirm]);
    assert_eq!(outcomes, vec![Outcome::Applied]);
    assert_eq!(snap.cards[&card().hpan].par, Some((upper, Source::Circuit)));
    assert!(snap.conflicts.is_empty());
}

#[test]
fn a_provisional_token_association_is_replaced_by_a_more_trusted_source_never_the_reverse() {
    let mut snap = Snapshot::default();
    let listed = cmd(
        CardEvent::ParTokens {
            par: other_par(),
            circuit: Circuit::Visa,
            tokens: vec![token(3)],
        },
        Source::TokenList,
    );
    batch(&mut snap, std::slice::from_ref(&listed));
    let issuer = cmd(
        CardEvent::ParTokens {
            par: par(),
            circuit: Circuit::Visa,
            tokens: vec![token(3)],
        },
        Source::Issuer,
    );
    let (outcomes, _) = batch(&mut snap, &[issuer]);
    assert_eq!(outcomes, vec![Outcome::Applied]);
    assert_eq!(snap.tokens[&token(3).htoken].par, Some(par()));
    assert_eq!(snap.reassociations.len(), 1);
    let (outcomes, _) = batch(&mut snap, &[listed]);
    assert_eq!(
        outcomes,
        vec![Outcome::ParConflict],
        "a lower-trust claim never overrides"
    );
    assert_eq!(snap.tokens[&token(3).htoken].par, Some(par()));
}

#[test]
fn lists_never_delete_tokens_an_explicit_issuer_deletion_does() {
    let mut snap = Snapshot::default();
    consenting(&mut snap, tax());
    batch(
        &mut snap,
        &[enrol(tax(), Some(par()), vec![token(4), token(5)], now())],
    );
    let t1 = now() + Duration::seconds(1);
    let (_, out) = batch(&mut snap, &[enrol(tax(), Some(par()), vec![], t1)]);
    assert!(out.is_empty(), "an empty list changes nothing");
    let gone = TokenRef {
        deleted: true,
        ..token(4)
    };
    let listed = cmd(
        CardEvent::ParTokens {
            par: par(),
            circuit: Circuit::Mastercard,
            tokens: vec![gone.clone()],
        },
        Source::TokenList,
    );
    let (_, out) = batch(&mut snap, &[listed]);
    assert!(
        out.is_empty() && !snap.tokens[&token(4).htoken].deleted,
        "a list cannot delete"
    );
    let t2 = now() + Duration::seconds(2);
    let (_, out) = batch(&mut snap, &[enrol(tax(), Some(par()), vec![gone], t2)]);
    let m = json_of(&out[0]);
    assert_eq!(
        m["cards"][0]["htokens"],
        json!([{"htoken": token(4).htoken.as_str(), "haction": "DELETE"}])
    );
}

#[test]
fn deletion_closes_the_link_revokes_with_null_tax_code_and_a_stale_enrolment_is_ignored() {
    let mut snap = Snapshot::default();
    consenting(&mut snap, tax());
    let t0 = now();
    batch(&mut snap, &[enrol(tax(), Some(par()), vec![token(6)], t0)]);
    let t2 = t0 + Duration::seconds(2);
    let (outcomes, out) = batch(&mut snap, &[delete(tax(), t2)]);
    assert_eq!(outcomes, vec![Outcome::Applied]);
    let m = json_of(&out[0]);
    assert_eq!(m["taxCode"], serde_json::Value::Null);
    assert_eq!(m["cards"][0]["action"], "REVOKE");
    assert!(!snap.cards[&card().hpan].active);
    assert_eq!(
        out[0].partition_key,
        tax().to_string(),
        "ordered with the citizen's messages"
    );

    let t1 = t0 + Duration::seconds(1);
    let (outcomes, out) = batch(&mut snap, &[enrol(tax(), Some(par()), vec![], t1)]);
    assert_eq!(
        outcomes,
        vec![Outcome::Stale],
        "an older re-enrolment never undoes the delete"
    );
    assert!(out.is_empty());

    let t3 = t0 + Duration::seconds(3);
    let (outcomes, out) = batch(&mut snap, &[enrol(tax(), None, vec![], t3)]);
    assert_eq!(outcomes, vec![Outcome::Applied]);
    let m = json_of(&out[0]);
    assert_eq!(m["cards"][0]["action"], "INSERT_UPDATE", "re-activated");
    assert_eq!(
        m["cards"][0]["htokens"][0]["htoken"],
        token(6).htoken.as_str(),
        "with its PAR's tokens"
    );
    let link = &snap.links[&card().hpan][0];
    assert!(link.live && link.opened_intervals.contains(&t3));
}

#[test]
fn deletions_of_unknown_or_closed_links_are_acknowledged() {
    let mut snap = Snapshot::default();
    let (outcomes, _) = batch(&mut snap, &[delete(tax(), now())]);
    assert_eq!(outcomes, vec![Outcome::UnknownLink]);
    batch(&mut snap, &[enrol(tax(), None, vec![], now())]);
    let later = now() + Duration::seconds(1);
    let (outcomes, _) = batch(
        &mut snap,
        &[
            delete(tax(), later),
            delete(tax(), later),
            delete(other_tax(), later),
        ],
    );
    assert_eq!(
        outcomes,
        vec![Outcome::Applied, Outcome::NoLiveLink, Outcome::UnknownLink]
    );
}

#[test]
fn a_co_holder_leaving_revokes_for_that_citizen_only() {
    let mut snap = Snapshot::default();
    consenting(&mut snap, tax());
    consenting(&mut snap, other_tax());
    batch(
        &mut snap,
        &[
            enrol(tax(), Some(par()), vec![], now()),
            enrol(other_tax(), None, vec![], now()),
        ],
    );
    let (_, out) = batch(
        &mut snap,
        &[delete(other_tax(), now() + Duration::seconds(1))],
    );
    assert_eq!(out.len(), 1);
    let m = json_of(&out[0]);
    assert_eq!(m["taxCode"], other_tax().as_str());
    assert_eq!(m["cards"][0]["action"], "REVOKE");
    assert!(snap.cards[&card().hpan].active);
}

#[test]
fn update_timestamps_strictly_increase_per_card() {
    let mut snap = Snapshot::default();
    consenting(&mut snap, tax());
    let (_, a) = batch(
        &mut snap,
        &[enrol(tax(), Some(par()), vec![token(7)], now())],
    );
    let (_, b) = batch(
        &mut snap,
        &[enrol(tax(), Some(par()), vec![token(8)], now())],
    );
    let (ta, tb) = (
        json_of(&a[0])["timestamp"].clone(),
        json_of(&b[0])["timestamp"].clone(),
    );
    assert_eq!(ta, "2026-11-23 10:15:00:0000");
    assert_eq!(tb, "2026-11-23 10:15:00:0001", "same clock, one tick later");
}

#[test]
fn provisional_tokens_per_par_are_capped() {
    let mut snap = Snapshot::default();
    let listed = cmd(
        CardEvent::ParTokens {
            par: par(),
            circuit: Circuit::Visa,
            tokens: vec![token(9), token(10), token(11)],
        },
        Source::TokenList,
    );
    batch(&mut snap, &[listed]);
    let kept: Vec<&Htoken> = snap.tokens.keys().collect();
    assert_eq!(kept.len(), 2, "max_learnt_tokens_per_par = 2");
    let issuer = cmd(
        CardEvent::ParTokens {
            par: par(),
            circuit: Circuit::Visa,
            tokens: vec![token(12)],
        },
        Source::Issuer,
    );
    batch(&mut snap, &[issuer]);
    assert!(
        snap.tokens.contains_key(&token(12).htoken),
        "trusted tokens are not capped"
    );
}

#[test]
fn tokens_only_stay_unattached_and_redelivery_changes_nothing() {
    let mut snap = Snapshot::default();
    let only = cmd(
        CardEvent::Tokens {
            circuit: Circuit::Visa,
            tokens: vec![token(13)],
        },
        Source::Issuer,
    );
    batch(&mut snap, std::slice::from_ref(&only));
    let t = &snap.tokens[&token(13).htoken];
    assert!(t.par.is_none() && t.card.is_none() && t.has_clear);
    for t in snap.tokens.values_mut() {
        t.dirty = false;
    }
    batch(&mut snap, &[only]);
    assert!(!snap.tokens[&token(13).htoken].dirty, "idempotent");
    let _ = Hpan::parse(&"0".repeat(64)).unwrap();
}

#[path = "tests_listed.rs"]
mod listed;
