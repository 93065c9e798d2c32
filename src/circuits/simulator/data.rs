//! The simulator's deterministic account data: the PAR of any account, which Visa/Amex PANs wait for
//! a first token before they get one, and Luhn-valid token PANs inside a range prefix.

use rand::Rng;

use crate::circuits::protocol::{amex_mac, ProtocolError};
use crate::domain::Circuit;

/// Fixed key of the PAR derivation: the same account has the same PAR in every run.
const PAR_KEY: &[u8] = b"tkm-simulator-par-v1";
/// Fixed key of the "no PAR until a token exists" selection.
const NO_PAR_KEY: &[u8] = b"tkm-simulator-no-par-v1";
/// Characters of Visa/Amex PARs after the prefix.
const ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// HMAC-SHA256 of `data` under `key`, raw bytes.
fn keyed(key: &[u8], data: &str) -> Result<Vec<u8>, ProtocolError> {
    use base64::Engine as _;
    let b64 = amex_mac::hmac_b64(key, data.as_bytes())?;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ProtocolError::Crypto("HMAC"))
}

/// The BIN controller prefix of a circuit's PARs.
pub fn par_prefix(circuit: Circuit) -> &'static str {
    match circuit {
        Circuit::Visa => "V001",
        Circuit::Mastercard => "5001",
        Circuit::Amex => "A001",
    }
}

/// The PAR the simulator gives `digits` on `circuit`: prefix + 25 characters of a keyed hash of
/// the digits (`[0-9A-Z]` for Visa/Amex, lower-case hex for Mastercard), 29 characters in all.
pub fn par_of(circuit: Circuit, digits: &str) -> Result<String, ProtocolError> {
    let mac = keyed(PAR_KEY, digits)?;
    let tail: String = match circuit {
        Circuit::Mastercard => hex::encode(&mac).chars().take(25).collect(),
        Circuit::Visa | Circuit::Amex => mac
            .iter()
            .take(25)
            .map(|b| char::from(ALNUM[usize::from(*b) % ALNUM.len()]))
            .collect(),
    };
    Ok(format!("{}{tail}", par_prefix(circuit)))
}

/// A stable creation date (`yyyy-MM-dd`) for a PAR, between 2019 and 2024.
pub fn creation_date(par: &str) -> String {
    let sum: u32 = par.bytes().map(u32::from).sum();
    let base = chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap_or_default();
    let date = base + chrono::Days::new(u64::from(sum % 2000));
    date.format("%Y-%m-%d").to_string()
}

/// Whether a Visa/Amex account belongs to the `share` (0–1) that has no PAR until a token exists.
pub fn waits_for_token(digits: &str, share: f64) -> Result<bool, ProtocolError> {
    if share <= 0.0 {
        return Ok(false);
    }
    let mac = keyed(NO_PAR_KEY, digits)?;
    let mut head = [0u8; 4];
    for (slot, byte) in head.iter_mut().zip(&mac) {
        *slot = *byte;
    }
    let fraction = f64::from(u32::from_be_bytes(head)) / 4_294_967_296.0;
    Ok(fraction < share)
}

/// The circuit of a card number by its first digits (4 Visa, 5/2 Mastercard, 34/37 Amex).
pub fn circuit_of_pan(pan: &str) -> Option<Circuit> {
    if pan.starts_with("34") || pan.starts_with("37") {
        Some(Circuit::Amex)
    } else if pan.starts_with('4') {
        Some(Circuit::Visa)
    } else if pan.starts_with('5') || pan.starts_with('2') {
        Some(Circuit::Mastercard)
    } else {
        None
    }
}

/// Whether `value` is an account number the circuits accept: 12–19 ASCII digits.
pub fn is_account(value: &str) -> bool {
    (12..=19).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

/// Token PAN length on a circuit (Amex 15, others 16).
pub fn token_length(circuit: Circuit) -> usize {
    match circuit {
        Circuit::Amex => 15,
        Circuit::Visa | Circuit::Mastercard => 16,
    }
}

fn digit_value(b: u8) -> u32 {
    u32::from(b.wrapping_sub(b'0'))
}

/// The Luhn check digit to append to `body` (ASCII digits).
pub fn luhn_check_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = digit_value(b);
            if i % 2 == 0 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    char::from_digit((10 - sum % 10) % 10, 10).unwrap_or('0')
}

/// Whether `digits` passes the Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    match digits.split_at_checked(digits.len().saturating_sub(1)) {
        Some((body, check)) if !body.is_empty() => check.starts_with(luhn_check_digit(body)),
        _ => false,
    }
}

/// A random Luhn-valid token PAN of `len` digits starting with `prefix`.
pub fn token_in(prefix: &str, len: usize, rng: &mut impl Rng) -> String {
    let mut body = prefix.to_owned();
    while body.len() + 1 < len {
        body.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    let check = luhn_check_digit(&body);
    body.push(check);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pars_are_29_characters_stable_and_shaped_per_circuit() -> Result<(), ProtocolError> {
        let visa = par_of(Circuit::Visa, "4111111111111111")?;
        assert_eq!(visa.len(), 29);
        assert!(visa.starts_with("V001"));
        assert!(visa[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert_eq!(visa, par_of(Circuit::Visa, "4111111111111111")?);
        assert_ne!(visa, par_of(Circuit::Visa, "4111111111111112")?);

        let mc = par_of(Circuit::Mastercard, "5555555555554444")?;
        assert_eq!(mc.len(), 29);
        assert!(mc.starts_with("5001"));
        assert!(mc[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

        let amex = par_of(Circuit::Amex, "378282246310005")?;
        assert_eq!(amex.len(), 29);
        assert!(amex.starts_with("A001"));
        assert!(crate::domain::Par::parse_from_circuit(&amex).is_ok());
        Ok(())
    }

    #[test]
    fn the_no_par_share_is_stable_and_roughly_the_share() -> Result<(), ProtocolError> {
        let mut waiting = 0;
        for i in 0..2000u32 {
            let pan = format!("4000000000{i:06}");
            let first = waits_for_token(&pan, 0.2)?;
            assert_eq!(first, waits_for_token(&pan, 0.2)?);
            if first {
                waiting += 1;
            }
        }
        assert!((300..500).contains(&waiting), "{waiting} of 2000");
        assert!(!waits_for_token("4000000000000000", 0.0)?);
        assert!(waits_for_token("4000000000000000", 1.0)?);
        Ok(())
    }

    #[test]
    fn luhn_digits_match_known_cards() {
        assert_eq!(luhn_check_digit("411111111111111"), '1');
        assert_eq!(luhn_check_digit("555555555555444"), '4');
        assert_eq!(luhn_check_digit("37828224631000"), '5');
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("4"));
    }

    #[test]
    fn tokens_have_the_prefix_the_length_and_luhn() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let token = token_in("489537000", 16, &mut rng);
            assert_eq!(token.len(), 16);
            assert!(token.starts_with("489537000"));
            assert!(luhn_valid(&token));
        }
        assert_eq!(token_in("3712345678", 15, &mut rng).len(), 15);
    }

    #[test]
    fn circuits_by_first_digits() {
        assert_eq!(circuit_of_pan("4111"), Some(Circuit::Visa));
        assert_eq!(circuit_of_pan("5555"), Some(Circuit::Mastercard));
        assert_eq!(circuit_of_pan("2221"), Some(Circuit::Mastercard));
        assert_eq!(circuit_of_pan("3400"), Some(Circuit::Amex));
        assert_eq!(circuit_of_pan("3700"), Some(Circuit::Amex));
        assert_eq!(circuit_of_pan("3600"), None);
        assert_eq!(circuit_of_pan("6011"), None);
    }
}
