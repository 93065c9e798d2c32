//! Physical lines of an acquirer's file (`files.md`): numbered from 1, LF or CRLF, `#` comments
//! and blank lines told apart from rows, overlong lines cut off without being held in memory.
//! The buffer is zeroized: rows may hold clear card numbers.

use std::io::{self, BufRead, Read};

use zeroize::Zeroizing;

/// What the current physical line is.
#[derive(Debug)]
pub enum Physical<'a> {
    /// A comment or a blank line.
    Skip,
    /// A data row, without its line ending.
    Row(&'a [u8]),
    /// Longer than the limit: the row is invalid (`line`).
    Overlong,
}

/// Reads physical lines one at a time.
pub struct PhysicalLines<R> {
    input: R,
    line: u64,
    max: usize,
    buf: Zeroizing<Vec<u8>>,
}

impl<R> std::fmt::Debug for PhysicalLines<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhysicalLines {{ line: {} }}", self.line)
    }
}

impl<R: BufRead> PhysicalLines<R> {
    /// A reader at line 0; lines longer than `max` bytes are [`Physical::Overlong`].
    pub fn new(input: R, max: usize) -> Self {
        Self {
            input,
            line: 0,
            max,
            buf: Zeroizing::new(Vec::with_capacity(512)),
        }
    }

    /// The number of the current line (0 before the first).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Moves to the next physical line; false at the end of the stream.
    pub fn advance(&mut self) -> io::Result<bool> {
        self.buf.clear();
        let limit = u64::try_from(self.max)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let n = Read::take(&mut self.input, limit).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        if self.buf.last() != Some(&b'\n') && self.buf.len() > self.max {
            // Skip the rest of an overlong line.
            let mut sink = Zeroizing::new(Vec::new());
            loop {
                sink.clear();
                let m = Read::take(&mut self.input, limit).read_until(b'\n', &mut sink)?;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        self.line = self.line.saturating_add(1);
        Ok(true)
    }

    /// What the current line is.
    pub fn current(&self) -> Physical<'_> {
        if self.buf.len() > self.max {
            return Physical::Overlong;
        }
        let bytes = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.first() == Some(&b'#') {
            Physical::Skip
        } else {
            Physical::Row(bytes)
        }
    }
}
