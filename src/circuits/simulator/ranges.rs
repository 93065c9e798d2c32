//! The simulator's BIN ranges, the same in every run: each circuit's token ranges (served by its
//! API and its CSV file) and, mixed into the API answers, a few card ("C"/"N") ranges.

use crate::domain::Circuit;

/// One BIN range row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRow {
    /// The digits every account in the range starts with.
    pub prefix: String,
    /// Lower bound (prefix padded with `0`).
    pub min: String,
    /// Upper bound (prefix padded with `9`).
    pub max: String,
    /// Issuer BIN (the prefix's first 6 digits).
    pub issuer_bin: String,
    /// Issuer name.
    pub issuer_name: String,
    /// A token range (else a card range).
    pub token: bool,
}

/// One circuit's ranges.
#[derive(Debug, Clone, Default)]
pub struct CircuitRanges {
    /// Every row in API order: token rows with a card row after every 9.
    pub rows: Vec<RangeRow>,
}

impl CircuitRanges {
    /// The token ranges only, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &RangeRow> {
        self.rows.iter().filter(|r| r.token)
    }

    /// The token range holding `digits`, if any.
    pub fn token_range_of(&self, digits: &str) -> Option<&RangeRow> {
        self.tokens().find(|r| digits.starts_with(&r.prefix))
    }

    /// The CSV file of the token ranges: `min;max;issuerBin` lines, no header.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut out = crate::csv_dialect::writer().from_writer(Vec::new());
        for r in self.tokens() {
            out.write_record([&r.min, &r.max, &r.issuer_bin])?;
        }
        out.into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// SplitMix64: a tiny deterministic sequence, so ranges never depend on a library's RNG.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The layout of one circuit's ranges.
struct Layout {
    /// Bound width in digits.
    width: usize,
    /// First 10-digit prefix of each block of token ranges (ranges are split evenly over blocks).
    token_starts: &'static [u64],
    /// First 10-digit prefix of the card ranges.
    card_start: u64,
    /// Prefixes stay below this (keeps the circuit's leading digits).
    limit: u64,
    seed: u64,
}

fn layout(circuit: Circuit) -> Layout {
    match circuit {
        Circuit::Visa => Layout {
            width: 21,
            token_starts: &[4_895_370_000],
            card_start: 4_100_000_000,
            limit: 5_000_000_000,
            seed: 0x5649_5341,
        },
        Circuit::Mastercard => Layout {
            width: 16,
            token_starts: &[5_204_730_000],
            card_start: 5_100_000_000,
            limit: 6_000_000_000,
            seed: 0x4d43,
        },
        Circuit::Amex => Layout {
            width: 15,
            token_starts: &[3_400_000_000, 3_700_000_000],
            card_start: 3_750_000_000,
            limit: 3_800_000_000,
            seed: 0x414d_4558,
        },
    }
}

fn row(prefix: String, width: usize, token: bool, name_index: u64, circuit: Circuit) -> RangeRow {
    RangeRow {
        min: format!("{prefix:0<width$}"),
        max: format!("{prefix:9<width$}"),
        issuer_bin: prefix.chars().take(6).collect(),
        issuer_name: format!("SIM {} ISSUER {:02}", circuit.as_str(), name_index % 50),
        prefix,
        token,
    }
}

/// The most token ranges a circuit serves (keeps every prefix inside its circuit's digits).
pub const MAX_RANGES: usize = 500_000;

/// Builds `count` token ranges of `circuit` (capped at [`MAX_RANGES`]), non-overlapping, with
/// 9- and 10-digit prefixes, and a card range after every 9 token ranges.
pub fn build(circuit: Circuit, count: usize) -> CircuitRanges {
    let l = layout(circuit);
    let count = count.min(MAX_RANGES);
    let mut seq = Sequence(l.seed);
    let mut rows = Vec::with_capacity(count + count / 9 + 1);
    let blocks = l.token_starts.len();
    let mut card_cursor = l.card_start;
    let mut made = 0usize;
    for (b, start) in l.token_starts.iter().enumerate() {
        // Ranges of this block: an even share, the last block takes the rest.
        let share = if b + 1 == blocks {
            count - made
        } else {
            count / blocks
        };
        let mut cursor = *start;
        for _ in 0..share {
            let r = seq.next();
            cursor += r % 40;
            let prefix = if (r >> 32).is_multiple_of(4) {
                // A 9-digit prefix covers ten 10-digit ones: start it on a multiple of 10.
                cursor = cursor.next_multiple_of(10);
                let p = cursor / 10;
                cursor += 10;
                p.to_string()
            } else {
                let p = cursor;
                cursor += 1;
                p.to_string()
            };
            if cursor >= l.limit {
                break;
            }
            rows.push(row(prefix, l.width, true, r >> 40, circuit));
            made += 1;
            if made.is_multiple_of(9) {
                card_cursor += 1 + (r >> 16) % 5;
                rows.push(row(
                    card_cursor.to_string(),
                    l.width,
                    false,
                    r >> 48,
                    circuit,
                ));
            }
        }
    }
    CircuitRanges { rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BinRange;

    #[test]
    fn visa_ranges_are_21_digits_non_overlapping_and_stable() {
        let ranges = build(Circuit::Visa, 3000);
        assert_eq!(ranges.tokens().count(), 3000);
        assert!(ranges.rows.iter().any(|r| !r.token));
        let again = build(Circuit::Visa, 3000);
        assert_eq!(ranges.rows, again.rows);
        let mut bounds: Vec<(String, String)> = ranges
            .rows
            .iter()
            .map(|r| {
                assert_eq!(r.min.len(), 21);
                assert_eq!(r.max.len(), 21);
                assert!(r.min.starts_with('4'));
                assert!((9..=10).contains(&r.prefix.len()));
                assert!(BinRange::parse(Circuit::Visa, &r.min, &r.max, None, None).is_ok());
                (r.min.clone(), r.max.clone())
            })
            .collect();
        bounds.sort();
        for pair in bounds.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{pair:?} overlap");
        }
    }

    #[test]
    fn mastercard_and_amex_bounds_have_their_widths_and_digits() {
        let mc = build(Circuit::Mastercard, 200);
        assert_eq!(mc.tokens().count(), 200);
        assert!(mc
            .rows
            .iter()
            .all(|r| r.min.len() == 16 && r.max.len() == 16 && r.min.starts_with('5')));
        let amex = build(Circuit::Amex, 200);
        assert_eq!(amex.tokens().count(), 200);
        assert!(amex
            .rows
            .iter()
            .all(|r| r.min.len() == 15 && (r.min.starts_with("34") || r.min.starts_with("37"))));
        assert!(amex.tokens().any(|r| r.min.starts_with("34")));
        assert!(amex.tokens().any(|r| r.min.starts_with("37")));
    }

    #[test]
    fn generated_tokens_lie_in_their_range_by_the_padded_compare() {
        let mut rng = rand::thread_rng();
        for circuit in Circuit::ALL {
            let ranges = build(circuit, 300);
            for r in ranges.tokens() {
                let parsed = BinRange::parse(circuit, &r.min, &r.max, None, None);
                assert!(parsed.is_ok(), "{circuit:?} {} does not validate", r.min);
                let Ok(range) = parsed else { continue };
                let token = crate::circuits::simulator::data::token_in(
                    &r.prefix,
                    crate::circuits::simulator::data::token_length(circuit),
                    &mut rng,
                );
                assert!(range.contains(&token), "{circuit:?} {} {token}", r.min);
                assert_eq!(ranges.token_range_of(&token), Some(r));
            }
        }
    }

    #[test]
    fn the_csv_lists_token_ranges_only() {
        let ranges = build(Circuit::Amex, 20);
        let csv = ranges.csv().unwrap_or_default();
        let rows: Vec<csv::StringRecord> = crate::csv_dialect::reader()
            .from_reader(&csv[..])
            .into_records()
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(rows.len(), 20);
        assert!(rows.iter().all(|r| r.len() == 3));
        let parsed = crate::circuits::bin_file::parse(Circuit::Amex, &csv).unwrap_or_default();
        assert_eq!(parsed.len(), 20);
    }
}
