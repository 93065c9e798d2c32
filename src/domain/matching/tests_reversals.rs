//! Reversal correlation: total, partial, cumulative partials, over the payment, ambiguity.

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::transactions::{HashKey, Operation, Record};

const H: HashKey = HashKey([7; 32]);

fn payment(id: u32, amount: u64, cid: Option<&str>, minute: u32) -> Payment<u32> {
    Payment {
        id,
        hash: H,
        abi: "36081".into(),
        acquirer_id: "acq".into(),
        period: "1".into(),
        correlation_id: cid.map(str::to_owned),
        amount,
        merchant_id: "m".into(),
        terminal_id: "t".into(),
        at: Utc
            .with_ymd_and_hms(2020, 6, 10, 12, minute, 0)
            .unwrap()
            .fixed_offset(),
        reversed: 0,
        kind: MatchKind::Hpan,
    }
}

fn reversal(amount: u64, cid: Option<&str>) -> Record {
    Record {
        operation: Operation::Reversal,
        circuit: 1,
        hash: H,
        at: Utc
            .with_ymd_and_hms(2020, 6, 11, 9, 0, 0)
            .unwrap()
            .fixed_offset(),
        id_trx_acquirer: "r".into(),
        id_trx_issuer: String::new(),
        correlation_id: cid.map(str::to_owned),
        amount,
        acquirer_id: "acq".into(),
        merchant_id: "m".into(),
        terminal_id: "t".into(),
        bin: "402360".into(),
        mcc: "4900".into(),
        par: None,
    }
}

fn run(payments: &mut [Payment<u32>], r: &Record) -> Correlation {
    let c = correlate(r, "36081", "1", payments);
    if let Some(i) = c.payment() {
        apply(&mut payments[i], r.amount);
    }
    c
}

#[test]
fn a_total_reversal_by_amount_takes_the_oldest_unreversed_payment() {
    let mut ps = vec![
        payment(1, 500, None, 30),
        payment(2, 500, None, 10),
        payment(3, 700, None, 0),
    ];
    assert_eq!(run(&mut ps, &reversal(500, None)), Correlation::Total(1));
    assert_eq!(run(&mut ps, &reversal(500, None)), Correlation::Total(0));
    assert_eq!(
        run(&mut ps, &reversal(500, None)),
        Correlation::None,
        "both reversed already"
    );
    // Without a correlation id a smaller amount never correlates.
    assert_eq!(run(&mut ps, &reversal(300, None)), Correlation::None);
}

#[test]
fn partial_reversals_add_up_to_the_payment_and_no_further() {
    let mut ps = vec![payment(1, 1000, Some("c1"), 0)];
    assert_eq!(
        run(&mut ps, &reversal(300, Some("c1"))),
        Correlation::Partial(0)
    );
    assert_eq!(
        run(&mut ps, &reversal(700, Some("c1"))),
        Correlation::Partial(0)
    );
    assert_eq!(ps[0].reversed, 1000);
    assert_eq!(
        run(&mut ps, &reversal(1, Some("c1"))),
        Correlation::None,
        "over the payment"
    );
    let mut whole = vec![payment(1, 1000, Some("c1"), 0)];
    assert_eq!(
        run(&mut whole, &reversal(1000, Some("c1"))),
        Correlation::Total(0)
    );
    assert_eq!(
        run(&mut whole, &reversal(1000, Some("c1"))),
        Correlation::None,
        "reversed twice"
    );
    let mut small = vec![payment(1, 1000, Some("c1"), 0)];
    assert_eq!(
        run(&mut small, &reversal(1001, Some("c1"))),
        Correlation::None,
        "more than paid"
    );
    assert_eq!(
        run(&mut small, &reversal(u64::MAX, Some("c1"))),
        Correlation::None
    );
}

#[test]
fn a_correlation_id_must_name_exactly_one_payment() {
    let mut ps = vec![payment(1, 100, Some("c"), 0), payment(2, 100, Some("c"), 1)];
    assert_eq!(run(&mut ps, &reversal(100, Some("c"))), Correlation::None);
    let mut none = vec![payment(1, 100, Some("x"), 0), payment(2, 100, None, 1)];
    // With an id, equal amounts do not help.
    assert_eq!(run(&mut none, &reversal(100, Some("c"))), Correlation::None);
}

#[test]
fn only_the_same_instrument_acquirer_and_period_count() {
    let mut other_hash = payment(1, 100, None, 0);
    other_hash.hash = HashKey([8; 32]);
    let mut other_acq = payment(2, 100, None, 0);
    other_acq.acquirer_id = "else".into();
    let mut other_period = payment(3, 100, None, 0);
    other_period.period = "2".into();
    let mut other_abi = payment(4, 100, None, 0);
    other_abi.abi = "99999".into();
    let mut other_terminal = payment(5, 100, None, 0);
    other_terminal.terminal_id = "t2".into();
    let mut ps = vec![
        other_hash,
        other_acq,
        other_period,
        other_abi,
        other_terminal,
    ];
    assert_eq!(run(&mut ps, &reversal(100, None)), Correlation::None);
    assert!(Correlation::None.outcome() == Outcome::ReversalUncorrelated);
}
