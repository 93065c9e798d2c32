//! Inbound queue payloads (card events, deletions) parsed into domain commands, or refused with
//! the dead-letter code and a reason that holds no card data or tax code.

use serde::Deserialize;

use crate::crypto::Hasher;
use crate::domain::{
    parse_event_timestamp, CardDeletion, CardEvent, CardRef, Circuit, Hpan, Htoken, Pan, Par,
    TaxCode, TokenPan, TokenRef,
};

/// Why a message is dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The `x-tkm-error-code` header.
    pub code: &'static str,
    /// The `x-tkm-error` header: names the field, never a value.
    pub reason: String,
}

impl Rejection {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(INVALID_FIELD, format!("{field} {why}"))
    }
}

/// `UNDECRYPTABLE`: one code for every PGP failure (the queue is no decryption oracle).
pub const UNDECRYPTABLE: &str = "UNDECRYPTABLE";
/// `TOO_LARGE`.
pub const TOO_LARGE: &str = "TOO_LARGE";
/// `NOT_JSON`.
pub const NOT_JSON: &str = "NOT_JSON";
/// `INVALID_FIELD`: the message fails validation (the reason names the field).
pub const INVALID_FIELD: &str = "INVALID_FIELD";
/// `PAR_CONFLICT`.
pub const PAR_CONFLICT: &str = "PAR_CONFLICT";

/// A card event as producers send it. Card numbers are borrowed from the (zeroized) plaintext
/// rather than copied; they never need JSON escapes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CardEventDto<'a> {
    #[serde(default)]
    tax_code: Option<String>,
    #[serde(default, borrow)]
    pan: Option<&'a str>,
    #[serde(default)]
    hpan: Option<String>,
    #[serde(default)]
    par: Option<String>,
    #[serde(default)]
    circuit: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default, borrow)]
    tokens: Option<Vec<TokenDto<'a>>>,
}

#[derive(Deserialize)]
struct TokenDto<'a> {
    #[serde(default, borrow)]
    token: Option<&'a str>,
    #[serde(default, alias = "hToken")]
    htoken: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
}

/// `""` counts as absent.
fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

fn json_error(e: &serde_json::Error) -> Rejection {
    if e.is_syntax() || e.is_eof() {
        Rejection::new(NOT_JSON, "body is not JSON")
    } else {
        // serde's message may quote a value: keep only its position.
        Rejection::invalid(
            "body",
            format!(
                "does not have the expected shape (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    }
}

/// Parses a decrypted card event.
pub fn card_event(plaintext: &[u8], hasher: &Hasher) -> Result<CardEvent, Rejection> {
    let dto: CardEventDto<'_> = serde_json::from_slice(plaintext).map_err(|e| json_error(&e))?;
    let circuit = match present(dto.circuit.as_deref()) {
        None => return Err(Rejection::invalid("circuit", "is missing")),
        Some(c) => Circuit::from_json_name(c).map_err(|_| {
            Rejection::new(
                "UNSUPPORTED_CIRCUIT",
                "circuit is not VISA, MASTERCARD or AMEX",
            )
        })?,
    };
    let tax_code = present(dto.tax_code.as_deref())
        .map(|t| TaxCode::parse(t).map_err(|e| Rejection::invalid("taxCode", e)))
        .transpose()?;
    let card = card_ref(present(dto.pan), present(dto.hpan.as_deref()), hasher)?;
    let par = present(dto.par.as_deref())
        .map(|p| Par::parse(p).map_err(|e| Rejection::invalid("par", e)))
        .transpose()?;
    let timestamp = present(dto.timestamp.as_deref())
        .map(|t| parse_event_timestamp(t).map_err(|e| Rejection::invalid("timestamp", e)))
        .transpose()?;
    let mut tokens = Vec::new();
    for (i, t) in dto.tokens.unwrap_or_default().iter().enumerate() {
        tokens.push(token_ref(t, i, hasher)?);
    }
    let event =
        match (tax_code, card, par) {
            (Some(tax_code), Some(card), par) => CardEvent::Enrolment {
                tax_code,
                card,
                par,
                circuit,
                tokens,
                timestamp,
            },
            (None, Some(card), Some(par)) => CardEvent::CardPar {
                card,
                par,
                circuit,
                tokens,
            },
            (None, None, Some(par)) if !tokens.is_empty() => CardEvent::ParTokens {
                par,
                circuit,
                tokens,
            },
            (None, None, None) if !tokens.is_empty() => CardEvent::Tokens { circuit, tokens },
            _ => return Err(Rejection::new(
                "INCONSISTENT_MESSAGE",
                "the combination of taxCode, pan/hpan, par and tokens matches no card event shape",
            )),
        };
    Ok(event)
}

fn card_ref(
    pan: Option<&str>,
    hpan: Option<&str>,
    hasher: &Hasher,
) -> Result<Option<CardRef>, Rejection> {
    let pan = pan
        .map(|p| Pan::parse(p).map_err(|e| Rejection::invalid("pan", e)))
        .transpose()?;
    let given = hpan
        .map(|h| Hpan::parse(h).map_err(|e| Rejection::invalid("hpan", e)))
        .transpose()?;
    Ok(match (pan, given) {
        (Some(pan), given) => {
            let hpan = hasher.hpan(&pan);
            if given.is_some_and(|g| g != hpan) {
                return Err(Rejection::new(
                    "HASH_MISMATCH",
                    "hpan is not the hash of pan",
                ));
            }
            Some(CardRef {
                hpan,
                pan: Some(pan),
            })
        }
        (None, Some(hpan)) => Some(CardRef { hpan, pan: None }),
        (None, None) => None,
    })
}

fn token_ref(t: &TokenDto<'_>, i: usize, hasher: &Hasher) -> Result<TokenRef, Rejection> {
    let field = |name: &str| format!("tokens[{i}].{name}");
    let token = present(t.token)
        .map(|p| TokenPan::parse(p).map_err(|e| Rejection::invalid(&field("token"), e)))
        .transpose()?;
    let given = present(t.htoken.as_deref())
        .map(|h| Htoken::parse(h).map_err(|e| Rejection::invalid(&field("htoken"), e)))
        .transpose()?;
    let htoken = match (&token, given) {
        (Some(tp), given) => {
            let h = hasher.htoken(tp);
            if given.is_some_and(|g| g != h) {
                return Err(Rejection::new(
                    "HASH_MISMATCH",
                    format!("{} is not the hash of its token", field("htoken")),
                ));
            }
            h
        }
        (None, Some(h)) => h,
        (None, None) => return Err(Rejection::invalid(&field("token"), "or htoken is required")),
    };
    Ok(TokenRef {
        htoken,
        token,
        deleted: t.deleted.unwrap_or(false),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletionDto {
    #[serde(default)]
    tax_code: Option<String>,
    #[serde(default)]
    hpan: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

/// Parses a card deletion (plain JSON).
pub fn deletion(body: &[u8]) -> Result<CardDeletion, Rejection> {
    let dto: DeletionDto = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let tax_code = present(dto.tax_code.as_deref())
        .ok_or_else(|| Rejection::invalid("taxCode", "is missing"))
        .and_then(|t| TaxCode::parse(t).map_err(|e| Rejection::invalid("taxCode", e)))?;
    let hpan = present(dto.hpan.as_deref())
        .ok_or_else(|| Rejection::invalid("hpan", "is missing"))
        .and_then(|h| Hpan::parse(h).map_err(|e| Rejection::invalid("hpan", e)))?;
    let timestamp = present(dto.timestamp.as_deref())
        .map(|t| parse_event_timestamp(t).map_err(|e| Rejection::invalid("timestamp", e)))
        .transpose()?;
    Ok(CardDeletion {
        tax_code,
        hpan,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> Hasher {
        Hasher::new(secrecy::SecretString::from("testSalt".to_owned()))
    }

    const FIXTURE: &str = include_str!("../../../shared/fixtures/examples/card-event.json");

    #[test]
    fn the_fixture_event_is_an_enrolment_with_par_and_token() {
        let e = card_event(FIXTURE.as_bytes(), &hasher()).unwrap();
        let CardEvent::Enrolment {
            card,
            par,
            tokens,
            timestamp,
            circuit,
            ..
        } = e
        else {
            panic!("wrong shape");
        };
        assert_eq!(
            card.hpan.as_str(),
            "1bf5dc4a1958aecc4bcc44ea4e2adf9f39877efcbe154ef8ac9f72fcb940e170"
        );
        assert_eq!(par.unwrap().as_str(), "5001a1b2c3d4e5f6a7b8c9d0e1f2a");
        assert_eq!(
            tokens[0].htoken.as_str(),
            "d10fff74f17a607d0d9341193b6fe3812ed82f515bfb368e08cd366c3649e822"
        );
        assert_eq!(circuit, Circuit::Mastercard);
        assert!(timestamp.is_some());
    }

    #[test]
    fn shapes_follow_the_table() {
        let h = "a".repeat(64);
        let t = format!(r#"[{{"hToken": "{h}"}}]"#);
        let par = "V0010013816180398947762450";
        let cases = [
            (
                format!(r#"{{"hpan": "{h}", "par": "{par}", "circuit": "VISA"}}"#),
                "CardPar",
            ),
            (
                format!(r#"{{"par": "{par}", "circuit": "VPAY", "tokens": {t}}}"#),
                "ParTokens",
            ),
            (format!(r#"{{"circuit": "AMEX", "tokens": {t}}}"#), "Tokens"),
        ];
        for (json, shape) in cases {
            let e = card_event(json.as_bytes(), &hasher()).unwrap();
            assert!(format!("{e:?}").starts_with(shape), "{shape}: {e:?}");
        }
        for json in [
            r#"{"circuit": "VISA"}"#.to_owned(),
            format!(r#"{{"par": "{par}", "circuit": "VISA", "tokens": []}}"#),
            format!(r#"{{"hpan": "{h}", "circuit": "VISA"}}"#),
        ] {
            assert_eq!(
                card_event(json.as_bytes(), &hasher()).unwrap_err().code,
                "INCONSISTENT_MESSAGE",
                "{json}"
            );
        }
    }

    #[test]
    fn bad_input_gets_its_code_and_never_echoes_card_data() {
        let pan = "4999991234567897";
        let cases = [
            (
                format!(
                    r#"{{"taxCode": "KBVCPX27A11F205A", "pan": "{pan}", "circuit": "DINERS"}}"#
                ),
                "UNSUPPORTED_CIRCUIT",
            ),
            (
                format!(
                    r#"{{"taxCode": "KBVCPX27A11F205A", "pan": "{pan}", "hpan": "{}", "circuit": "VISA"}}"#,
                    "b".repeat(64)
                ),
                "HASH_MISMATCH",
            ),
            (
                format!(r#"{{"taxCode": "KBVCPX27A11F205A", "pan": "{pan}x", "circuit": "VISA"}}"#),
                "INVALID_FIELD",
            ),
            (
                format!(r#"{{"taxCode": "NOTACODE", "pan": "{pan}", "circuit": "VISA"}}"#),
                "INVALID_FIELD",
            ),
            (
                format!(r#"{{"pan": {pan}, "circuit": "VISA"}}"#),
                "INVALID_FIELD",
            ),
            (format!(r#"{{"pan": "{pan}""#), NOT_JSON),
            (
                format!(
                    r#"{{"circuit": "VISA", "tokens": [{{"token": "{pan}", "htoken": "{}"}}]}}"#,
                    "c".repeat(64)
                ),
                "HASH_MISMATCH",
            ),
            (
                r#"{"circuit": "VISA", "tokens": [{}]}"#.to_owned(),
                "INVALID_FIELD",
            ),
        ];
        for (json, code) in cases {
            let r = card_event(json.as_bytes(), &hasher()).unwrap_err();
            assert_eq!(r.code, code, "{json}");
            assert!(
                !r.reason.contains(pan) && !r.reason.contains("KBVCPX"),
                "{}",
                r.reason
            );
        }
    }

    #[test]
    fn empty_strings_count_as_absent_and_unknown_fields_are_ignored() {
        let json = format!(
            r#"{{"taxCode": "", "hpan": "{}", "par": "V0010013816180398947762450", "circuit": "VISA", "tokens": [{{"token": "", "htoken": "{}"}}], "extra": 1}}"#,
            "a".repeat(64),
            "d".repeat(64)
        );
        assert!(matches!(
            card_event(json.as_bytes(), &hasher()).unwrap(),
            CardEvent::CardPar { .. }
        ));
    }

    #[test]
    fn the_fixture_deletion_parses_with_its_legacy_timestamp() {
        let d = deletion(include_bytes!(
            "../../../shared/fixtures/examples/card-deletion.json"
        ))
        .unwrap();
        assert_eq!(d.tax_code.as_str(), "KBVCPX27A11F205A");
        assert_eq!(
            d.timestamp.unwrap().to_rfc3339(),
            "2026-11-24T08:00:00+00:00"
        );
        assert_eq!(
            deletion(br#"{"hpan": "x"}"#).unwrap_err().reason,
            "taxCode is missing"
        );
    }
}
