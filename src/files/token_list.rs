//! Reading a decrypted token list (`files.md`): physical lines numbered from 1, LF or CRLF,
//! `#` comments and blank lines skipped, each row checked into a kept row or a discard, handed
//! out in batches; a resumed file skips the lines already committed without parsing them.

use std::io::{self, BufRead};

use super::physical::{Physical, PhysicalLines};

use crate::domain::token_list::{parse_row, Discarded, TokenListRow, TokenRanges};

/// Physical lines longer than this are invalid records (no row is that long); the rest of such
/// a line is skipped without being held in memory.
const MAX_LINE: usize = 4096;

/// One batch of rows, with the last physical line it covers (comments included).
#[derive(Debug, Default)]
pub struct Batch {
    /// `(line, row or discard)` in file order.
    pub rows: Vec<(u64, Result<TokenListRow, Discarded>)>,
    /// The last physical line read into this batch.
    pub last_line: u64,
}

/// A token list's lines, read from a decrypted stream.
pub struct TokenListReader<R> {
    lines: PhysicalLines<R>,
    done: bool,
}

/// What one physical line is.
enum Line<'a> {
    Skip,
    Row(&'a str),
    Unreadable(&'static str),
}

impl<R: BufRead> TokenListReader<R> {
    /// A reader at line 0.
    pub fn new(input: R) -> Self {
        TokenListReader {
            lines: PhysicalLines::new(input, MAX_LINE),
            done: false,
        }
    }

    /// The physical lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.lines.line()
    }

    fn classify(&self) -> Line<'_> {
        match self.lines.current() {
            Physical::Skip => Line::Skip,
            Physical::Overlong => Line::Unreadable("line"),
            Physical::Row(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Line::Row(text),
                Err(_) => Line::Unreadable("encoding"),
            },
        }
    }

    /// The next batch of at most `max_rows` rows, skipping the lines up to `resume_after`
    /// unparsed; `None` once the stream is exhausted.
    pub fn next_batch(
        &mut self,
        max_rows: usize,
        ranges: &TokenRanges,
        resume_after: u64,
    ) -> io::Result<Option<Batch>> {
        if self.done {
            return Ok(None);
        }
        let mut batch = Batch::default();
        let mut any = false;
        while batch.rows.len() < max_rows {
            if !self.lines.advance()? {
                self.done = true;
                break;
            }
            any = true;
            let line = self.lines.line();
            batch.last_line = line;
            if line <= resume_after {
                continue;
            }
            let row = match self.classify() {
                Line::Skip => continue,
                Line::Row(text) => parse_row(text, ranges),
                Line::Unreadable(field) => Err(Discarded {
                    reason: crate::domain::token_list::Discard::InvalidRecord,
                    field: Some(field),
                }),
            };
            batch.rows.push((line, row));
        }
        Ok(any.then_some(batch))
    }

    /// Reads to the end (the MDC check of a PGP stream happens there), counting data rows.
    pub fn count_rows(&mut self) -> io::Result<u64> {
        let mut rows: u64 = 0;
        while self.lines.advance()? {
            if !matches!(self.lines.current(), Physical::Skip) {
                rows = rows.saturating_add(1);
            }
        }
        self.done = true;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token_list::Discard;
    use crate::domain::{BinRange, Circuit};

    const PAR: &str = "V0010013618215513423458701234";

    fn ranges() -> TokenRanges {
        let r = BinRange::parse(Circuit::Visa, "400012", "400013", None, None).expect("range");
        TokenRanges::new(&[r])
    }

    fn text() -> String {
        format!("#sha256sum:abc\r\n4000123412341234;01;{PAR}\r\n\r\nbad\n4000123412341235;01;{PAR}")
    }

    #[test]
    fn lines_are_numbered_physically_and_comments_skipped() {
        let text = text();
        let mut r = TokenListReader::new(text.as_bytes());
        let batch = r.next_batch(10, &ranges(), 0).expect("io").expect("batch");
        let lines: Vec<u64> = batch.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 4, 5]);
        assert_eq!(batch.last_line, 5);
        assert!(batch.rows[0].1.is_ok() && batch.rows[2].1.is_ok());
        assert_eq!(
            batch.rows[1].1.as_ref().expect_err("bad").reason,
            Discard::InvalidRecord
        );
        assert!(r.next_batch(10, &ranges(), 0).expect("io").is_none());
        assert_eq!(
            TokenListReader::new(text.as_bytes())
                .count_rows()
                .expect("io"),
            3
        );
    }

    #[test]
    fn batches_split_and_resume_after_a_committed_line() {
        let text = text();
        let mut r = TokenListReader::new(text.as_bytes());
        let first = r.next_batch(1, &ranges(), 0).expect("io").expect("batch");
        assert_eq!((first.rows.len(), first.last_line), (1, 2));
        let mut resumed = TokenListReader::new(text.as_bytes());
        let rest = resumed
            .next_batch(10, &ranges(), 4)
            .expect("io")
            .expect("batch");
        let lines: Vec<u64> = rest.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![5]);
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_invalid_records_naming_why() {
        let mut text = vec![b'9'; 10_000];
        text.extend_from_slice(b"\n\xff\xfe;01;x\n");
        text.extend_from_slice(format!("4000123412341234;01;{PAR}\n").as_bytes());
        let mut r = TokenListReader::new(text.as_slice());
        let batch = r.next_batch(10, &ranges(), 0).expect("io").expect("batch");
        let fields: Vec<Option<&str>> = batch
            .rows
            .iter()
            .map(|(_, row)| row.as_ref().err().and_then(|d| d.field))
            .collect();
        assert_eq!(fields, vec![Some("line"), Some("encoding"), None]);
        assert_eq!(batch.last_line, 3);
    }
}
