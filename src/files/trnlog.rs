//! Reads a TRNLOG file (`files.md`): plain or PGP-encrypted, `;`-separated, 15/16/19 fields, `#`
//! comments, LF or CRLF; rows come out in batches with their 1-based physical line, already
//! parsed into records (a clear PAN in column 4 hashed on reading, never kept: the line buffer
//! is zeroized).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::crypto::pgp::{PgpKey, StreamError};
use crate::crypto::Hasher;
use crate::domain::transactions::{parse_row, HashKey, Invalid, Record};
use crate::domain::{Abi, TokenPan};
use crate::files::physical::{Physical, PhysicalLines};
use crate::files::uploads::looks_like_pgp;

/// A row as read: its line and its record, or why it is invalid.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based physical line.
    pub line: u64,
    /// The record, or the first bad field.
    pub parsed: Result<Record, Invalid>,
    /// A clear token PAN of column 4, kept (in memory only) when the record has a PAR: it may
    /// feed the token intake (TK10 part 2).
    pub clear: Option<TokenPan>,
}

/// Why a file cannot be read at all (the upload is rejected with this).
#[derive(Debug, thiserror::Error)]
pub enum TrnlogError {
    /// The file cannot be opened or read.
    #[error("the stored file cannot be read")]
    Io(#[from] std::io::Error),
    /// PGP content that does not decrypt with tkm's key, or a damaged message.
    #[error("the file cannot be decrypted with tkm's key or is damaged")]
    Undecryptable,
    /// The decrypted content passed `uploads.max_ratio` times the upload.
    #[error("the decompressed content is larger than uploads.max_ratio times the upload")]
    TooLarge,
}

/// No valid row comes near this (19 fields, six of at most 255 characters); longer lines are
/// invalid rows, cut off without being held.
const MAX_LINE: usize = 8192;

/// Streams the rows of one file.
pub struct TrnlogReader {
    lines: PhysicalLines<BufReader<Box<dyn Read + Send>>>,
    abi: Abi,
    hasher: Hasher,
}

impl std::fmt::Debug for TrnlogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrnlogReader")
            .field("abi", &self.abi)
            .finish_non_exhaustive()
    }
}

impl TrnlogReader {
    /// Opens `path` (PGP content is decrypted with `pgp`, its plaintext capped at `max_plain`).
    pub fn open(
        path: &Path,
        pgp: &PgpKey,
        max_plain: u64,
        abi: Abi,
        hasher: Hasher,
    ) -> Result<Self, TrnlogError> {
        let mut file = BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
        let encrypted = looks_like_pgp(file.fill_buf()?).unwrap_or(false);
        let input: Box<dyn Read + Send> = if encrypted {
            let plain = pgp
                .decrypt_stream(file, max_plain)
                .map_err(|_| TrnlogError::Undecryptable)?;
            Box::new(plain)
        } else {
            Box::new(file)
        };
        Ok(Self::from_reader(input, abi, hasher))
    }

    /// Reads rows from any stream.
    pub fn from_reader(input: Box<dyn Read + Send>, abi: Abi, hasher: Hasher) -> Self {
        let lines = PhysicalLines::new(BufReader::with_capacity(256 * 1024, input), MAX_LINE);
        Self { lines, abi, hasher }
    }

    /// Up to `max` rows after line `after` (lines at or before it are skipped unparsed: a
    /// resumed file). An empty batch means the end of the file.
    pub fn next_batch(&mut self, max: usize, after: u64) -> Result<Vec<Row>, TrnlogError> {
        let mut out = Vec::with_capacity(max.min(65_536));
        while out.len() < max {
            if !self.lines.advance().map_err(classify)? {
                break;
            }
            let line = self.lines.line();
            if line <= after {
                continue;
            }
            let mut kept = None;
            let parsed = match self.lines.current() {
                Physical::Skip => continue,
                Physical::Overlong => Err(Invalid {
                    field: "line",
                    id_trx_acquirer: None,
                }),
                Physical::Row(bytes) => {
                    let fields: Vec<&[u8]> = bytes.split(|b| *b == b';').collect();
                    parse_row(&fields, &self.abi).map(|mut p| {
                        if let Some(clear) = p.clear.take() {
                            let hashed = self.hasher.htoken(&clear);
                            p.record.hash =
                                HashKey::from_hex(hashed.as_str()).unwrap_or(HashKey([0; 32]));
                            if p.record.par.is_some() {
                                kept = Some(clear);
                            }
                        }
                        p.record
                    })
                }
            };
            out.push(Row {
                line,
                parsed,
                clear: kept,
            });
        }
        Ok(out)
    }
}

fn classify(e: std::io::Error) -> TrnlogError {
    // The PGP stream reports a bad message, a broken MDC or the size cap inside an io::Error.
    match StreamError::of(&e) {
        Some(StreamError::TooLarge(_)) => TrnlogError::TooLarge,
        Some(StreamError::Undecryptable) => TrnlogError::Undecryptable,
        None => TrnlogError::Io(e),
    }
}
