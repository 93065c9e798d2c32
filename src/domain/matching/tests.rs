//! The checks of `matching.md`: the design table under both date rules, precedence, token and PAR
//! matches with consent history, award period edges and grace.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Rome;

use super::*;
use crate::domain::transactions::{HashKey, Operation, Record};
use crate::domain::{Consent, ConsentState, Hpan, Par, Service};

const HPAN: HashKey = HashKey([1; 32]);
const HTOKEN: HashKey = HashKey([2; 32]);
const UNKNOWN: HashKey = HashKey([3; 32]);
const HTOKEN_NO_PAR: HashKey = HashKey([4; 32]);

pub(super) fn par() -> Par {
    Par::parse("V0010013816180398947283651111").unwrap()
}

pub(super) fn day(d: &str) -> NaiveDate {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
}

fn plus(d: NaiveDate, n: i64) -> NaiveDate {
    if n >= 0 {
        d.checked_add_days(Days::new(n as u64)).unwrap()
    } else {
        d.checked_sub_days(Days::new((-n) as u64)).unwrap()
    }
}

/// Noon in Rome of a day, as an instant.
pub(super) fn noon(d: NaiveDate) -> DateTime<Utc> {
    Rome.from_local_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

pub(super) fn record(hash: HashKey, on: NaiveDate, par: Option<Par>) -> Record {
    Record {
        operation: Operation::Payment,
        circuit: 1,
        hash,
        at: noon(on).fixed_offset(),
        id_trx_acquirer: "id".into(),
        id_trx_issuer: String::new(),
        correlation_id: None,
        amount: 100,
        acquirer_id: "acq".into(),
        merchant_id: "m".into(),
        terminal_id: "t".into(),
        bin: "402360".into(),
        mcc: "4900".into(),
        par,
    }
}

fn periods() -> AwardPeriods {
    AwardPeriods::new(vec![AwardPeriod {
        id: "1".into(),
        start: day("2020-01-01"),
        end: day("2020-12-31"),
        grace_days: 30,
    }])
    .unwrap()
}

/// A card (HPAN, with the PAR when `with_par`) linked over `[opened, closed)`; HTOKEN on the PAR;
/// its citizen's consent history `consents` (instant, BPD allowed).
fn snapshot(
    opened: NaiveDate,
    closed: Option<NaiveDate>,
    with_par: bool,
    consents: &[(DateTime<Utc>, bool)],
) -> Snapshot {
    let mut b = SnapshotBuilder::new(Rome);
    let p = par();
    b.card(10, HPAN, with_par.then_some(&p)).unwrap();
    b.token(HTOKEN, with_par.then_some(&p)).unwrap();
    b.token(HTOKEN_NO_PAR, None).unwrap();
    b.interval(10, "RSSMRA80A01H501U", noon(opened), closed.map(noon))
        .unwrap();
    for (v, (at, allowed)) in consents.iter().enumerate() {
        let consent = if *allowed {
            Consent::Allow
        } else {
            Consent::Deny
        };
        b.consent(
            "RSSMRA80A01H501U",
            v as i64 + 1,
            *at,
            &ConsentState::uniform(consent),
        )
        .unwrap();
    }
    b.build()
}

pub(super) fn judge(
    snap: &Snapshot,
    rule: DateRule,
    rec: &Record,
    processing: NaiveDate,
) -> Decision {
    let periods = periods();
    let rules = Rules {
        snapshot: snap,
        periods: &periods,
        rule,
        service: Service::Bpd,
        zone: Rome,
    };
    rules.payment(rec, processing)
}

pub(super) const PROCESSED: &str = "2021-01-10";

#[test]
fn the_design_table_under_both_date_rules() {
    let att = day("2020-06-10");
    // (case, dDIS − dATT, dTR − dATT, design accepts, bpd accepts)
    let table: &[(&str, Option<i64>, i64, bool, bool)] = &[
        ("I", None, 0, true, false),
        ("II", None, -1, false, false),
        ("III", None, 5, true, true),
        ("IV", Some(0), 0, false, false),
        ("V", Some(0), 3, false, false),
        ("VI", Some(0), -2, false, false),
        ("VII", Some(4), 6, false, false),
        ("VIII", Some(4), 2, true, true),
        ("VIII at dATT", Some(4), 0, true, false),
        ("bpd's dTR = dDIS", Some(4), 4, false, true),
    ];
    for (case, dis, tr, design, bpd) in table {
        let snap = snapshot(att, dis.map(|n| plus(att, n)), false, &[]);
        let rec = record(HPAN, plus(att, *tr), None);
        for (rule, accepted) in [(DateRule::Design, design), (DateRule::Bpd, bpd)] {
            let d = judge(&snap, rule, &rec, day(PROCESSED));
            let want = if *accepted {
                Outcome::Accepted
            } else {
                Outcome::Discarded(Reason::NotActive)
            };
            assert_eq!(d.outcome, want, "case {case} under {rule:?}");
            assert_eq!(d.kind, MatchKind::Hpan);
        }
    }
}

#[test]
fn days_are_taken_in_the_zone_not_in_utc() {
    // Enrolled at 00:30 Rome on 10 June (22:30 UTC on the 9th); a payment at 23:30 UTC on the 9th
    // is 01:30 on the 10th in Rome: the same day, accepted under the design rule.
    let opened = Rome
        .with_ymd_and_hms(2020, 6, 10, 0, 30, 0)
        .unwrap()
        .with_timezone(&Utc);
    let mut b = SnapshotBuilder::new(Rome);
    b.card(1, HPAN, None).unwrap();
    b.interval(1, "RSSMRA80A01H501U", opened, None).unwrap();
    let snap = b.build();
    let mut rec = record(HPAN, day("2020-06-10"), None);
    rec.at = Utc
        .with_ymd_and_hms(2020, 6, 9, 23, 30, 0)
        .unwrap()
        .fixed_offset();
    assert_eq!(
        judge(&snap, DateRule::Design, &rec, day(PROCESSED)).outcome,
        Outcome::Accepted
    );
}

#[test]
fn reasons_come_in_the_order_of_the_checks() {
    let att = day("2020-06-10");
    let snap = snapshot(att, None, true, &[]);
    let outside = day("2019-06-10");
    // Unknown instrument outside every period and before enrolment: 10 wins.
    let d = judge(
        &snap,
        DateRule::Design,
        &record(UNKNOWN, outside, None),
        day(PROCESSED),
    );
    assert_eq!(
        (d.outcome, d.check, d.kind),
        (
            Outcome::Discarded(Reason::NotEnrolled),
            Check::Instrument,
            MatchKind::None
        )
    );
    // A known HTOKEN with no PAR yet is not enrolled either.
    let d = judge(
        &snap,
        DateRule::Design,
        &record(HTOKEN_NO_PAR, att, None),
        day(PROCESSED),
    );
    assert_eq!(d.outcome, Outcome::Discarded(Reason::NotEnrolled));
    // Known, outside the period and not active: 02 wins over 01.
    let d = judge(
        &snap,
        DateRule::Design,
        &record(HPAN, outside, None),
        day(PROCESSED),
    );
    assert_eq!(
        (d.outcome, d.check),
        (Outcome::Discarded(Reason::OutsidePeriod), Check::Period)
    );
    // A token, not active and without consent: 01 wins over 03.
    let d = judge(
        &snap,
        DateRule::Design,
        &record(HTOKEN, plus(att, -1), None),
        day(PROCESSED),
    );
    assert_eq!(
        (d.outcome, d.check),
        (Outcome::Discarded(Reason::NotActive), Check::Active)
    );
    // Active without consent: 03.
    let d = judge(
        &snap,
        DateRule::Design,
        &record(HTOKEN, att, None),
        day(PROCESSED),
    );
    assert_eq!(
        (d.outcome, d.check),
        (Outcome::Discarded(Reason::NoConsent), Check::Consent)
    );
    // An HPAN match needs no consent.
    let d = judge(
        &snap,
        DateRule::Design,
        &record(HPAN, att, None),
        day(PROCESSED),
    );
    assert_eq!(d.outcome, Outcome::Accepted);
}

#[test]
fn token_and_par_matches_read_the_consent_at_the_transaction_date() {
    let att = day("2020-06-10");
    let granted = noon(plus(att, 3));
    let snap = snapshot(
        att,
        None,
        true,
        &[(noon(plus(att, -30)), false), (granted, true)],
    );
    for (hash, kind) in [(HTOKEN, MatchKind::Htoken), (UNKNOWN, MatchKind::Par)] {
        let before = judge(
            &snap,
            DateRule::Design,
            &record(hash, plus(att, 1), Some(par())),
            day(PROCESSED),
        );
        assert_eq!(
            (before.outcome, before.kind),
            (Outcome::Discarded(Reason::NoConsent), kind)
        );
        assert_eq!(
            before.consent.unwrap().entry.unwrap().0,
            1,
            "the entry in force is version 1"
        );
        let after = judge(
            &snap,
            DateRule::Design,
            &record(hash, plus(att, 5), Some(par())),
            day(PROCESSED),
        );
        assert_eq!((after.outcome, after.kind), (Outcome::Accepted, kind));
        assert_eq!(after.consent.unwrap().entry, Some((2, granted)));
        assert_eq!(after.card, Some(0));
    }
}

#[test]
fn a_card_override_beats_the_citizen_level_consent() {
    let att = day("2020-06-10");
    let mut state = ConsentState::uniform(Consent::Allow);
    let hpan = Hpan::parse(&HPAN.to_hex()).unwrap();
    state
        .cards
        .insert(hpan, [(Service::Bpd, Consent::Deny)].into_iter().collect());
    let mut b = SnapshotBuilder::new(Rome);
    let p = par();
    b.card(10, HPAN, Some(&p)).unwrap();
    b.token(HTOKEN, Some(&p)).unwrap();
    b.interval(10, "RSSMRA80A01H501U", noon(att), None).unwrap();
    b.consent("RSSMRA80A01H501U", 1, noon(plus(att, -1)), &state)
        .unwrap();
    let snap = b.build();
    let d = judge(
        &snap,
        DateRule::Design,
        &record(HTOKEN, att, None),
        day(PROCESSED),
    );
    assert_eq!(d.outcome, Outcome::Discarded(Reason::NoConsent));
}

#[test]
fn case_two_learns_the_token_whatever_the_outcome_and_case_one_learns_nothing() {
    let att = day("2020-06-10");
    let snap = snapshot(att, None, true, &[(noon(plus(att, -1)), true)]);
    let accepted = judge(
        &snap,
        DateRule::Design,
        &record(UNKNOWN, att, Some(par())),
        day(PROCESSED),
    );
    assert_eq!(
        (accepted.outcome, accepted.learn),
        (Outcome::Accepted, Some(0))
    );
    let early = judge(
        &snap,
        DateRule::Design,
        &record(UNKNOWN, plus(att, -1), Some(par())),
        day(PROCESSED),
    );
    assert_eq!(
        (early.outcome, early.learn),
        (Outcome::Discarded(Reason::NotActive), Some(0))
    );
    // Case 1: a known HPAN whose card has no PAR; the record's PAR is not taken.
    let no_par = snapshot(att, None, false, &[]);
    let d = judge(
        &no_par,
        DateRule::Design,
        &record(HPAN, att, Some(par())),
        day(PROCESSED),
    );
    assert_eq!(
        (d.outcome, d.kind, d.learn, d.par),
        (Outcome::Accepted, MatchKind::Hpan, None, None)
    );
}

#[test]
fn award_period_edges_and_grace() {
    let snap = snapshot(day("2019-01-01"), None, false, &[]);
    let grace_end = day("2021-01-30");
    let cases = [
        ("2020-01-01", PROCESSED, true),
        ("2020-12-31", PROCESSED, true),
        ("2019-12-31", PROCESSED, false),
        ("2021-01-01", PROCESSED, false),
        ("2020-12-31", "2021-01-30", true),
        ("2020-12-31", "2021-01-31", false),
    ];
    assert_eq!(periods().all()[0].last_processing_day(), grace_end);
    for (tr, processed, inside) in cases {
        let d = judge(
            &snap,
            DateRule::Design,
            &record(HPAN, day(tr), None),
            day(processed),
        );
        let want = if inside {
            Outcome::Accepted
        } else {
            Outcome::Discarded(Reason::OutsidePeriod)
        };
        assert_eq!(d.outcome, want, "dTR {tr} processed {processed}");
        assert_eq!(d.period, inside.then_some(0));
    }
}

#[test]
fn periods_must_not_overlap_or_run_backwards() {
    let p = |id: &str, s, e| AwardPeriod {
        id: id.into(),
        start: day(s),
        end: day(e),
        grace_days: 30,
    };
    assert_eq!(
        AwardPeriods::new(vec![
            p("1", "2020-01-01", "2020-06-30"),
            p("2", "2020-06-30", "2020-12-31")
        ]),
        Err(PeriodError::Overlap("1".into(), "2".into()))
    );
    assert_eq!(
        AwardPeriods::new(vec![p("1", "2020-02-01", "2020-01-01")]),
        Err(PeriodError::Reversed("1".into()))
    );
    assert_eq!(
        AwardPeriods::new(vec![
            p("1", "2020-01-01", "2020-01-31"),
            p("1", "2020-02-01", "2020-02-28")
        ]),
        Err(PeriodError::DuplicateId("1".into()))
    );
    assert_eq!(
        AwardPeriods::new(vec![p("", "2020-01-01", "2020-01-02")]),
        Err(PeriodError::BadId)
    );
    assert_eq!(
        AwardPeriods::new(vec![p(&"x".repeat(65), "2020-01-01", "2020-01-02")]),
        Err(PeriodError::BadId)
    );
    let ok = AwardPeriods::new(vec![
        p("2", "2020-07-01", "2020-12-31"),
        p("1", "2020-01-01", "2020-06-30"),
    ])
    .unwrap();
    assert_eq!(
        ok.all().iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["1", "2"]
    );
}

#[test]
fn outcome_names_and_codes_round_trip() {
    for r in Reason::ALL {
        assert_eq!(Reason::from_code(r.code()), Some(r));
        let o = Outcome::Discarded(r);
        assert_eq!(
            Outcome::from_parts(o.name(), o.reason().map(Reason::code)),
            Some(o)
        );
    }
    for o in [
        Outcome::Accepted,
        Outcome::ReversalTotal,
        Outcome::ReversalPartial,
        Outcome::ReversalUncorrelated,
    ] {
        assert_eq!(
            Outcome::from_parts(o.name(), o.reason().map(Reason::code)),
            Some(o)
        );
    }
    for k in [
        MatchKind::Hpan,
        MatchKind::Htoken,
        MatchKind::Par,
        MatchKind::None,
    ] {
        assert_eq!(MatchKind::from_name(k.name()), Some(k));
    }
}
