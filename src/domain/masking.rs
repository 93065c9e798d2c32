//! Masking card numbers in text tkm passes on but does not own (a dead letter's body and
//! headers): every run of 12 or more ASCII digits keeps its first 6 and becomes `…`.

/// The shortest digit run that may be a card number (PANs have 12–19 digits; longer runs may
/// hold one too, so they are masked as well).
const MIN_RUN: usize = 12;
/// Digits kept at the start of a masked run (a BIN says which bank, never which card).
const KEEP: usize = 6;

/// `input` with every run of ≥ 12 ASCII digits replaced by its first 6 digits and `…`; every
/// other byte is kept as it is (binary input stays binary).
pub fn mask_card_numbers(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let run = input.get(i..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        });
        if run >= MIN_RUN {
            out.extend_from_slice(input.get(i..i + KEEP).unwrap_or_default());
            out.extend_from_slice("…".as_bytes());
            i += run;
        } else if run > 0 {
            out.extend_from_slice(input.get(i..i + run).unwrap_or_default());
            i += run;
        } else {
            out.extend_from_slice(input.get(i..=i).unwrap_or_default());
            i += 1;
        }
    }
    out
}

/// [`mask_card_numbers`] for text.
pub fn mask_card_numbers_str(input: &str) -> String {
    String::from_utf8_lossy(&mask_card_numbers(input.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_twelve_or_more_digits_keep_six_and_become_an_ellipsis() {
        let cases = [
            (r#"{"pan":"4111111111111111"}"#, r#"{"pan":"411111…"}"#),
            ("x 123456789012 y", "x 123456… y"),
            ("12345678901 is short", "12345678901 is short"),
            ("1234567890123456789012345", "123456…"),
            ("a4111111111111111b5555555555554444", "a411111…b555555…"),
            ("", ""),
            ("2026-12-04 10:15:00:0000", "2026-12-04 10:15:00:0000"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_card_numbers_str(input), want, "{input}");
        }
    }

    #[test]
    fn binary_bytes_are_kept() {
        let input = [0xff, b'1', 0x00, 0x80];
        assert_eq!(mask_card_numbers(&input), input.to_vec());
        let mut with_run = vec![0xfe];
        with_run.extend_from_slice(b"5555555555554444");
        with_run.push(0x01);
        let masked = mask_card_numbers(&with_run);
        assert!(!masked.windows(16).any(|w| w == b"5555555555554444"));
        assert_eq!(masked.first(), Some(&0xfe));
        assert_eq!(masked.last(), Some(&0x01));
    }
}
