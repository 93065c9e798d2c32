//! A `tkm-transactions` message (`messages.md`): a JSON object or array of objects with a TRNLOG
//! row's fields by name, each element parsed exactly as a file row. The message's acquirer is the
//! first element's valid `acquirerCode` (elements naming another get `11` on `codice_acquirer`,
//! as a file row of another ABI would); elements are numbered from 1, like a file's lines.

use serde_json::Value;

use super::record::{parse_row, Invalid, Record};
use crate::domain::{Abi, TokenPan};

/// The JSON names of a TRNLOG row's 16 fields, in column order.
const FIELDS: [(&str, &str); 16] = [
    ("acquirerCode", "codice_acquirer"),
    ("operationType", "tipo_operazione"),
    ("circuitType", "tipo_circuito"),
    ("hpan", "hash_pan"),
    ("trxDate", "date_time"),
    ("idTrxAcquirer", "id_trx_acquirer"),
    ("idTrxIssuer", "id_trx_issuer"),
    ("correlationId", "correlation_id"),
    ("amount", "total_amount"),
    ("amountCurrency", "currency"),
    ("acquirerId", "acquirer_id"),
    ("merchantId", "merchant_id"),
    ("terminalId", "terminal_id"),
    ("bin", "bank_identification_number"),
    ("mcc", "MCC"),
    ("par", "PAR"),
];

/// A parsed message: its acquirer and every element's record or first bad field, by line.
#[derive(Debug, Clone)]
pub struct Message {
    /// The first element's valid `acquirerCode`, if any.
    pub abi: Option<Abi>,
    /// `(line, record)`, lines from 1 in array order.
    pub rows: Vec<(u64, Result<Record, Invalid>)>,
}

/// Why a whole message is refused (dead-lettered) rather than matched element by element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageRefusal {
    /// Not JSON at all.
    #[error("body is not JSON")]
    NotJson,
    /// JSON, but neither an object nor an array.
    #[error("body must be a JSON object or an array of objects")]
    NotRecords,
    /// An element's `hpan` is a clear card number: the body must not travel on (it is replaced
    /// by its SHA-256 before dead-lettering).
    #[error("hpan must be a 64-hex hash, never a card number")]
    ClearPan,
}

/// Parses a message body.
pub fn parse_message(body: &[u8]) -> Result<Message, MessageRefusal> {
    let value: Value = serde_json::from_slice(body).map_err(|_| MessageRefusal::NotJson)?;
    let elements = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(MessageRefusal::NotRecords),
    };
    if elements.iter().any(holds_clear_pan) {
        return Err(MessageRefusal::ClearPan);
    }
    let abi = elements.iter().find_map(|e| {
        e.get("acquirerCode")
            .and_then(Value::as_str)
            .and_then(|a| Abi::parse(a).ok())
    });
    let rows = elements
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
            (line, element(e, abi.as_ref()))
        })
        .collect();
    Ok(Message { abi, rows })
}

fn holds_clear_pan(element: &Value) -> bool {
    element
        .get("hpan")
        .and_then(Value::as_str)
        .is_some_and(|h| TokenPan::parse(h).is_ok())
}

/// One element as a file row of `abi` would be parsed; a field of the wrong JSON type fails as
/// that field (unless an earlier column fails first, as in a file).
fn element(e: &Value, abi: Option<&Abi>) -> Result<Record, Invalid> {
    let id = e
        .get("idTrxAcquirer")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.len() <= 255)
        .map(str::to_owned);
    let fail = |field| Invalid {
        field,
        id_trx_acquirer: id.clone(),
    };
    let Value::Object(map) = e else {
        return Err(fail("fields"));
    };
    let mut texts: Vec<String> = Vec::with_capacity(FIELDS.len());
    let mut wrong_type = None;
    for (i, (name, _)) in FIELDS.iter().enumerate() {
        let text = match map.get(*name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                wrong_type.get_or_insert(i);
                String::new()
            }
        };
        texts.push(text);
    }
    let Some(abi) = abi else {
        return Err(fail("codice_acquirer"));
    };
    let fields: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let column = |field: &str| FIELDS.iter().position(|(_, f)| *f == field);
    match (parse_row(&fields, abi), wrong_type) {
        (Err(invalid), Some(w)) if column(invalid.field).is_none_or(|c| c > w) => {
            Err(fail(FIELDS.get(w).map_or("fields", |(_, f)| *f)))
        }
        (Err(invalid), _) => Err(invalid),
        (Ok(_), Some(w)) => Err(fail(FIELDS.get(w).map_or("fields", |(_, f)| *f))),
        (Ok(parsed), None) => Ok(parsed.record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        serde_json::json!({
            "acquirerCode": "12345", "operationType": "00", "circuitType": "01",
            "hpan": "ab".repeat(32), "trxDate": "2026-11-20T10:00:00.000+01:00",
            "idTrxAcquirer": "T1", "idTrxIssuer": "", "correlationId": null, "amount": 1250,
            "amountCurrency": "978", "acquirerId": "A1", "merchantId": "M1", "terminalId": "P1",
            "bin": "401234", "mcc": "5411", "par": "V0010000000000000000000000001"
        })
    }

    fn parse(v: &Value) -> Result<Message, MessageRefusal> {
        parse_message(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn an_object_is_one_record_on_line_one_and_an_array_numbers_from_one() {
        let one = parse(&valid()).unwrap();
        assert_eq!(one.abi.as_ref().map(Abi::as_str), Some("12345"));
        assert_eq!(one.rows.len(), 1);
        let (line, record) = &one.rows[0];
        assert_eq!(*line, 1);
        let record = record.as_ref().unwrap();
        assert_eq!(record.amount, 1250);
        assert_eq!(record.id_trx_acquirer, "T1");
        assert!(record.correlation_id.is_none());
        assert_eq!(
            record.par.as_ref().map(|p| p.as_str()),
            Some("V0010000000000000000000000001")
        );
        let many = parse(&Value::Array(vec![valid(), valid()])).unwrap();
        assert_eq!(
            many.rows.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn each_bad_element_names_its_first_bad_field_and_the_rest_go_on() {
        let mut other_abi = valid();
        other_abi["acquirerCode"] = "99999".into();
        let mut bad_amount = valid();
        bad_amount["amount"] = (-5).into();
        let mut wrong_type = valid();
        wrong_type["merchantId"] = serde_json::json!({"x": 1});
        let mut earlier_fails_first = wrong_type.clone();
        earlier_fails_first["operationType"] = "07".into();
        let m = parse(&serde_json::json!([
            valid(),
            other_abi,
            bad_amount,
            wrong_type,
            earlier_fails_first,
            "not an object"
        ]))
        .unwrap();
        let fields: Vec<_> = m
            .rows
            .iter()
            .map(|(_, r)| r.as_ref().err().map(|e| e.field))
            .collect();
        assert_eq!(
            fields,
            [
                None,
                Some("codice_acquirer"),
                Some("total_amount"),
                Some("merchant_id"),
                Some("tipo_operazione"),
                Some("fields")
            ]
        );
        let (_, second) = &m.rows[1];
        assert_eq!(
            second
                .as_ref()
                .err()
                .and_then(|e| e.id_trx_acquirer.clone()),
            Some("T1".to_owned())
        );
    }

    #[test]
    fn a_message_without_a_valid_acquirer_makes_every_element_invalid_on_it() {
        let mut v = valid();
        v["acquirerCode"] = "toolongcode".into();
        let m = parse(&v).unwrap();
        assert!(m.abi.is_none());
        assert_eq!(
            m.rows[0].1.as_ref().err().map(|e| e.field),
            Some("codice_acquirer")
        );
    }

    #[test]
    fn whole_message_refusals() {
        assert_eq!(
            parse_message(b"{not json").err(),
            Some(MessageRefusal::NotJson)
        );
        assert_eq!(parse_message(b"42").err(), Some(MessageRefusal::NotRecords));
        let mut clear = valid();
        clear["hpan"] = "4111111111111111".into();
        assert_eq!(
            parse(&serde_json::json!([valid(), clear])).err(),
            Some(MessageRefusal::ClearPan)
        );
        assert!(parse(&serde_json::json!([])).unwrap().rows.is_empty());
    }
}
