//! Row rules of `files.md` (TRNLOG), one field at a time.

use super::*;
use crate::domain::Abi;

const HASH: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const PAR: &str = "V0010013816180398947283651111";

fn abi() -> Abi {
    Abi::parse("36081").unwrap()
}

fn base() -> Vec<String> {
    [
        "36081",
        "00",
        "01",
        HASH,
        "2020-08-06T12:19:16.000+00:00",
        "id-1",
        "iss",
        "",
        "1250",
        "978",
        "09509",
        "merchant",
        "terminal",
        "40236010",
        "4900",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn parse(fields: &[String]) -> Result<ParsedRow, Invalid> {
    let bytes: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
    parse_row(&bytes, &abi())
}

fn field_of(fields: Vec<String>) -> &'static str {
    parse(&fields).expect_err("should be invalid").field
}

fn with(i: usize, value: &str) -> Vec<String> {
    let mut f = base();
    f[i] = value.to_owned();
    f
}

#[test]
fn fifteen_sixteen_and_nineteen_fields() {
    let r = parse(&base()).unwrap().record;
    assert_eq!(r.operation, Operation::Payment);
    assert_eq!(r.amount, 1250);
    assert_eq!(r.hash, HashKey::from_hex(HASH).unwrap());
    assert!(r.par.is_none() && r.correlation_id.is_none());

    let mut f16 = base();
    f16.push(PAR.into());
    assert_eq!(parse(&f16).unwrap().record.par.unwrap().as_str(), PAR);
    let mut f16_empty = base();
    f16_empty.push(String::new());
    assert!(parse(&f16_empty).unwrap().record.par.is_none());

    let mut f19 = base();
    f19.extend([
        "fc123456".into(),
        "12345678901".into(),
        "00".into(),
        PAR.into(),
    ]);
    assert_eq!(parse(&f19).unwrap().record.par.unwrap().as_str(), PAR);

    for n in [14, 17, 18, 20] {
        let mut f = base();
        f.resize(n, String::new());
        assert_eq!(field_of(f), "fields", "{n} fields");
    }
}

#[test]
fn each_field_rule_names_its_field() {
    let cases: &[(usize, &str, &str)] = &[
        (0, "", "codice_acquirer"),
        (0, "36082", "codice_acquirer"),
        (0, "360810000000000000000", "codice_acquirer"),
        (1, "04", "tipo_operazione"),
        (1, "0", "tipo_operazione"),
        (2, "1", "tipo_circuito"),
        (2, "ab", "tipo_circuito"),
        (3, "pan1", "hash_pan"),
        (3, &HASH[1..], "hash_pan"),
        (3, "12345678901", "hash_pan"),
        (4, "2020-08-06 12:19:16", "date_time"),
        (4, "2020-08-06T12:19:16", "date_time"),
        (5, "", "id_trx_acquirer"),
        (5, "  ", "id_trx_acquirer"),
        (8, "-1", "total_amount"),
        (8, "", "total_amount"),
        (8, "100000000000", "total_amount"),
        (8, "12.50", "total_amount"),
        (9, "840", "currency"),
        (10, "", "acquirer_id"),
        (11, "", "merchant_id"),
        (12, "", "terminal_id"),
        (13, "1234567", "bank_identification_number"),
        (13, "12345a", "bank_identification_number"),
        (14, "", "MCC"),
        (14, "123456", "MCC"),
    ];
    for (i, value, field) in cases {
        assert_eq!(
            field_of(with(*i, value)),
            *field,
            "column {} = {value:?}",
            i + 1
        );
    }
    let long = "x".repeat(256);
    for (i, field) in [
        (5, "id_trx_acquirer"),
        (6, "id_trx_issuer"),
        (7, "correlation_id"),
        (10, "acquirer_id"),
    ] {
        assert_eq!(field_of(with(i, &long)), field);
    }
    let mut bad_par = base();
    bad_par.push("par2".into());
    assert_eq!(field_of(bad_par), "PAR");
}

#[test]
fn the_first_failing_field_is_named_with_the_id_when_readable() {
    let mut f = with(3, "pan1");
    f[8] = "x".into();
    let err = parse(&f).unwrap_err();
    assert_eq!(
        err,
        Invalid {
            field: "hash_pan",
            id_trx_acquirer: Some("id-1".into())
        }
    );
    let err = parse(&with(5, "")).unwrap_err();
    assert_eq!(err.id_trx_acquirer, None);
    let bytes: Vec<&[u8]> = vec![b"36081", b"\xff\xfe"];
    assert_eq!(parse_row(&bytes, &abi()).unwrap_err().field, "fields");
    let mut raw: Vec<Vec<u8>> = base().into_iter().map(String::into_bytes).collect();
    raw[11] = vec![0xff, 0x41];
    let refs: Vec<&[u8]> = raw.iter().map(|v| v.as_slice()).collect();
    assert_eq!(parse_row(&refs, &abi()).unwrap_err().field, "merchant_id");
}

#[test]
fn values_at_their_limits_are_accepted() {
    for (i, value) in [
        (4, "2020-08-06T12:19:16Z"),
        (4, "2020-08-06T12:19:16+02:00"),
        (8, "0"),
        (8, "99999999999"),
        (9, ""),
        (13, "402360"),
        (14, "1"),
    ] {
        assert!(
            parse(&with(i, value)).is_ok(),
            "column {} = {value:?}",
            i + 1
        );
    }
    for code in ["00", "01", "02", "03"] {
        assert!(parse(&with(1, code)).is_ok());
    }
    let upper = HASH.to_ascii_uppercase();
    assert_eq!(
        parse(&with(3, &upper)).unwrap().record.hash,
        HashKey::from_hex(HASH).unwrap()
    );
}

#[test]
fn a_clear_pan_is_handed_over_for_hashing_and_never_printed() {
    let parsed = parse(&with(3, "4111111111111111")).unwrap();
    let clear = parsed
        .clear
        .as_ref()
        .expect("clear number kept for hashing");
    assert_eq!(clear.expose(), "4111111111111111");
    assert_eq!(parsed.record.hash, HashKey([0; 32]));
    assert!(!format!("{parsed:?}").contains("4111111111111111"));
}

#[test]
fn the_legacy_nineteen_column_fixture_is_read_field_by_field() {
    // A copy of ../shared/fixtures/legacy-trnlog (the legacy platform's own test input).
    let text = include_str!("../../../tests/fixtures/legacy-trnlog/trx-list-input-19-columns.csv");
    let mut rows = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&[u8]> = line.split(';').map(str::as_bytes).collect();
        assert_eq!(fields.len(), 19);
        // The fixture's column 4 holds placeholders ("pan1"), not hashes: the first bad field.
        assert_eq!(parse_row(&fields, &abi()).unwrap_err().field, "hash_pan");
        // With a real hash, the 19-column layout parses (PAR in column 19 when long enough).
        let mut fixed: Vec<&[u8]> = fields.clone();
        fixed[3] = HASH.as_bytes();
        fixed[18] = b"";
        let r = parse_row(&fixed, &abi()).unwrap().record;
        assert_eq!(r.acquirer_id, "09509");
        rows += 1;
    }
    assert_eq!(rows, 3);
}

#[test]
fn duplicate_keys_see_the_instant_not_the_offset() {
    let a = parse(&with(4, "2020-08-06T12:19:16.000+00:00"))
        .unwrap()
        .record;
    let b = parse(&with(4, "2020-08-06T14:19:16+02:00")).unwrap().record;
    let c = parse(&with(4, "2020-08-06T12:19:17Z")).unwrap().record;
    assert_eq!(DupKey::of(&abi(), &a), DupKey::of(&abi(), &b));
    assert_ne!(DupKey::of(&abi(), &a), DupKey::of(&abi(), &c));
    assert_eq!(
        DupKey::of(&abi(), &a).0[..2],
        DupKey::of(&abi(), &c).0[..2],
        "one day, one key prefix"
    );
    let other_day = parse(&with(4, "2020-08-07T12:19:16Z")).unwrap().record;
    assert_ne!(
        DupKey::of(&abi(), &a).0[..2],
        DupKey::of(&abi(), &other_day).0[..2]
    );
    let rev = parse(&with(1, "01")).unwrap().record;
    assert_ne!(DupKey::of(&abi(), &a), DupKey::of(&abi(), &rev));
}
