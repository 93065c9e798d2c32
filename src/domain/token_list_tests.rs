use super::*;

const PAR: &str = "V0010013618215513423458701234";

fn ranges(list: &[(Circuit, &str, &str)]) -> TokenRanges {
    let ranges: Vec<BinRange> = list
        .iter()
        .map(|(c, lo, hi)| BinRange::parse(*c, lo, hi, None, None).expect("range"))
        .collect();
    TokenRanges::new(&ranges)
}

fn reason(line: &str, r: &TokenRanges) -> Discarded {
    parse_row(line, r).expect_err("discarded")
}

#[test]
fn three_field_rows_keep_token_circuit_and_par() {
    let r = ranges(&[(Circuit::Visa, "400012", "400013")]);
    let row = parse_row(&format!("4000123412341234;01;{PAR}"), &r).expect("kept");
    assert_eq!(row.circuit, Circuit::Visa);
    assert_eq!(row.token.expose(), "4000123412341234");
    assert_eq!(row.par.as_str(), PAR);
}

#[test]
fn two_field_rows_take_the_circuit_of_the_range() {
    let r = ranges(&[
        (Circuit::Visa, "400012", "400013"),
        (Circuit::Amex, "370000", "379999"),
    ]);
    let row = parse_row(&format!("371234567890123;{PAR}"), &r).expect("kept");
    assert_eq!(row.circuit, Circuit::Amex);
    assert_eq!(
        reason(&format!("5255990000000017;{PAR}"), &r),
        Discarded::because(Discard::UnknownCircuit)
    );
}

#[test]
fn every_discard_reason_is_named() {
    let r = ranges(&[(Circuit::Visa, "400012", "400013")]);
    assert_eq!(
        reason(&format!("6011000000000004;05;{PAR}"), &r),
        Discarded::because(Discard::UnsupportedCircuit)
    );
    assert_eq!(
        reason(&format!("6011000000000004;00;{PAR}"), &r),
        Discarded::because(Discard::UnsupportedCircuit)
    );
    assert_eq!(
        reason(&format!("4100000000000000;01;{PAR}"), &r),
        Discarded::because(Discard::NotInTokenBinRange)
    );
    assert_eq!(
        reason(&format!("3712345678901;03;{PAR}"), &r),
        Discarded::because(Discard::NotInTokenBinRange)
    );
    assert_eq!(reason("4000123412341234;01", &r).field, Some("par"));
    assert_eq!(reason("a;b;c;d", &r), Discarded::invalid("fields"));
    assert_eq!(
        reason(&format!("40001234;01;{PAR}"), &r).field,
        Some("token_pan")
    );
    assert_eq!(
        reason(&format!("4000123412341234;1;{PAR}"), &r).field,
        Some("circuit")
    );
    assert_eq!(
        reason(&format!("4000123412341234;x1;{PAR}"), &r).field,
        Some("circuit")
    );
    assert_eq!(reason("4000123412341234;01;SHORT", &r).field, Some("par"));
    assert_eq!(reason("", &r), Discarded::invalid("fields"));
}

#[test]
fn mastercard_is_exempt_from_the_range_check() {
    let r = ranges(&[]);
    let row = parse_row(&format!("5255990000000017;02;{PAR}"), &r).expect("kept");
    assert_eq!(row.circuit, Circuit::Mastercard);
}

#[test]
fn range_edges_are_numeric_after_padding() {
    // A token equal to a bound's prefix: as a lower bound the bound's tail pads with 0, so the
    // token (padded with 0) equals it; as an upper bound the token pads with 9 past the bound.
    let r = ranges(&[(Circuit::Visa, "4000123412341234000", "4000123412341234999")]);
    assert!(r.holds(Circuit::Visa, "4000123412341234"));
    let r = ranges(&[(Circuit::Visa, "4000123412341234001", "4000123412341234999")]);
    assert!(!r.holds(Circuit::Visa, "4000123412341234"));
    let r = ranges(&[(Circuit::Visa, "4000123412341233000", "4000123412341234000")]);
    assert!(!r.holds(Circuit::Visa, "4000123412341234"));
    // 21-digit bounds against a 16-digit token.
    let r = ranges(&[(
        Circuit::Visa,
        "400012341234123400000",
        "400012341234123499999",
    )]);
    assert!(r.holds(Circuit::Visa, "4000123412341234"));
    assert!(!r.holds(Circuit::Visa, "4000123412341235"));
    // Bounds shorter than the token: the bound pads (0 below, 9 above).
    let r = ranges(&[(Circuit::Visa, "400012", "400012")]);
    assert!(r.holds(Circuit::Visa, "4000120000000000"));
    assert!(r.holds(Circuit::Visa, "4000129999999999"));
    assert!(!r.holds(Circuit::Visa, "4000130000000000"));
    assert!(!r.holds(Circuit::Visa, "4000119999999999"));
    // min = max, full length.
    let r = ranges(&[(Circuit::Visa, "4000123412341234", "4000123412341234")]);
    assert!(r.holds(Circuit::Visa, "4000123412341234"));
    assert!(!r.holds(Circuit::Visa, "4000123412341235"));
    assert!(!r.holds(Circuit::Visa, "4000123412341233"));
    // Never a string comparison: "41" < "400012" as strings, not as padded numbers.
    let r = ranges(&[(Circuit::Visa, "400000", "409999")]);
    assert!(!r.holds(Circuit::Visa, "410000000000"));
    assert!(r.holds(Circuit::Visa, "400000000000"));
}

#[test]
fn overlapping_and_nested_ranges_are_all_searched() {
    let r = ranges(&[
        (Circuit::Visa, "400000", "499999"),
        (Circuit::Visa, "410000", "410001"),
        (Circuit::Visa, "420000", "420001"),
        (Circuit::Amex, "370000", "370000"),
    ]);
    // Inside the wide range only, past two narrow ones that start below it.
    assert!(r.holds(Circuit::Visa, "4300000000000000"));
    assert!(r.holds(Circuit::Visa, "4100005000000000"));
    assert!(!r.holds(Circuit::Visa, "5000000000000000"));
    assert!(!r.holds(Circuit::Amex, "4300000000000000"));
    assert_eq!(r.circuit_of("3700001234567"), Some(Circuit::Amex));
    assert_eq!(r.len(), 4);
}

#[test]
fn the_range_index_agrees_with_bin_range_contains() {
    let bounds = [
        ("400000", "400999"),
        ("4000009", "40000099"),
        ("4000123412341234", "4000123412341299"),
        ("400012341234123400000", "400012341234123400009"),
        ("499999", "499999"),
    ];
    let list: Vec<BinRange> = bounds
        .iter()
        .map(|(lo, hi)| BinRange::parse(Circuit::Visa, lo, hi, None, None).expect("range"))
        .collect();
    let index = TokenRanges::new(&list);
    let tokens = [
        "400000000000",
        "4000009000000",
        "4000008999999",
        "4000123412341234",
        "4000123412341300",
        "400012341234123",
        "4999990000000000",
        "4999999999999999999",
        "4010000000000000",
    ];
    for t in tokens {
        let expected = list.iter().any(|r| r.contains(t));
        assert_eq!(index.holds(Circuit::Visa, t), expected, "token {t}");
    }
}

#[test]
fn reasons_round_trip_their_names() {
    for d in Discard::ALL {
        assert_eq!(Discard::from_name(d.as_str()), Some(d));
    }
    assert_eq!(Discard::from_name("nope"), None);
}
