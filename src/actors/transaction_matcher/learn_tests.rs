//! What a decision teaches: case 2 (source `transaction`), TK10 part 2 (a clear token in a token
//! BIN range, Mastercard exempt, source `token-list`), and nothing otherwise.

use chrono::{TimeZone, Utc};
use chrono_tz::Europe::Rome;

use super::learn::lesson;
use crate::domain::matching::{
    AwardPeriods, Check, DateRule, Decision, MatchKind, Outcome, Reason, Rules, SnapshotBuilder,
};
use crate::domain::token_list::TokenRanges;
use crate::domain::transactions::{HashKey, Operation, Record};
use crate::domain::{BinRange, CardCommand, CardEvent, Circuit, Par, Service, Source, TokenPan};

const KNOWN_PAR: &str = "V0010013816180398947283651111";
const OTHER_PAR: &str = "50010000000000000000000000002";

fn record(circuit: u8, par: Option<&str>) -> Record {
    Record {
        operation: Operation::Payment,
        circuit,
        hash: HashKey([9; 32]),
        at: Utc
            .with_ymd_and_hms(2026, 11, 1, 10, 0, 0)
            .unwrap()
            .fixed_offset(),
        id_trx_acquirer: "t".into(),
        id_trx_issuer: String::new(),
        correlation_id: None,
        amount: 1,
        acquirer_id: "a".into(),
        merchant_id: "m".into(),
        terminal_id: "t".into(),
        bin: "402360".into(),
        mcc: "4900".into(),
        par: par.map(|p| Par::parse(p).unwrap()),
    }
}

fn ranges() -> TokenRanges {
    TokenRanges::new(&[BinRange::parse(Circuit::Visa, "400012", "400013", None, None).unwrap()])
}

fn source_and_par(s: &crate::domain::Sourced) -> (Source, String, bool) {
    match &s.command {
        CardCommand::Event(CardEvent::ParTokens { par, tokens, .. }) => {
            (s.source, par.as_str().to_owned(), tokens[0].token.is_some())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn case_two_teaches_the_hash_as_a_token_of_the_known_par() {
    let mut b = SnapshotBuilder::new(Rome);
    b.card(1, HashKey([1; 32]), Some(&Par::parse(KNOWN_PAR).unwrap()))
        .unwrap();
    let snap = b.build();
    let periods = AwardPeriods::default();
    let rules = Rules {
        snapshot: &snap,
        periods: &periods,
        rule: DateRule::Design,
        service: Service::Bpd,
        zone: Rome,
    };
    let r = record(1, Some(KNOWN_PAR));
    let d = rules.payment(&r, r.at.date_naive());
    assert_eq!((d.kind, d.learn), (MatchKind::Par, Some(0)));
    let l = lesson(&snap, &ranges(), &r, None, &d).expect("a lesson");
    assert_eq!(
        source_and_par(&l),
        (Source::Transaction, KNOWN_PAR.to_owned(), false)
    );
    // An unsupported circuit code teaches nothing.
    assert!(lesson(&snap, &ranges(), &record(4, Some(KNOWN_PAR)), None, &d).is_none());
}

#[test]
fn an_unmatched_clear_token_in_range_feeds_the_token_intake() {
    let snap = SnapshotBuilder::new(Rome).build();
    let nothing = Decision {
        kind: MatchKind::None,
        ..Decision::early(Outcome::Discarded(Reason::NotEnrolled), Check::Instrument)
    };
    let visa_in = TokenPan::parse("4000125555555555").unwrap();
    let visa_out = TokenPan::parse("4111111111111111").unwrap();
    let mc = TokenPan::parse("5412345678901234").unwrap();
    let l = lesson(
        &snap,
        &ranges(),
        &record(1, Some(OTHER_PAR)),
        Some(&visa_in),
        &nothing,
    )
    .expect("in range");
    assert_eq!(
        source_and_par(&l),
        (Source::TokenList, OTHER_PAR.to_owned(), true)
    );
    assert!(
        lesson(
            &snap,
            &ranges(),
            &record(1, Some(OTHER_PAR)),
            Some(&visa_out),
            &nothing
        )
        .is_none(),
        "out of range"
    );
    assert!(
        lesson(
            &snap,
            &ranges(),
            &record(2, Some(OTHER_PAR)),
            Some(&mc),
            &nothing
        )
        .is_some(),
        "Mastercard is exempt"
    );
    assert!(
        lesson(&snap, &ranges(), &record(1, None), Some(&visa_in), &nothing).is_none(),
        "no PAR"
    );
    assert!(
        lesson(
            &snap,
            &ranges(),
            &record(1, Some(OTHER_PAR)),
            None,
            &nothing
        )
        .is_none(),
        "no clear token"
    );
    let matched = Decision {
        kind: MatchKind::Hpan,
        ..Decision::early(Outcome::Accepted, Check::Passed)
    };
    assert!(
        lesson(
            &snap,
            &ranges(),
            &record(1, Some(OTHER_PAR)),
            Some(&visa_in),
            &matched
        )
        .is_none(),
        "matched"
    );
}
