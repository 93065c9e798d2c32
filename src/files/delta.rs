//! The delta between two generations of a sorted list: `+value` for what appeared, `-value` for
//! what went, in value order — applied to the older list it gives the newer one exactly.

use std::cmp::Ordering;
use std::io;
use std::iter::Peekable;

use super::zip_parts::{PartWriter, WrittenPart};

/// Writes the delta from an older list while the newer one is being written: each new line is
/// merged against the older list's lines (ascending, duplicate-free, read by a reader ahead), so
/// the new list is never read back. Lines are `+value` (new) and `-value` (gone), in value order.
pub struct StreamingDelta<I: Iterator<Item = io::Result<Vec<u8>>>> {
    old: Peekable<I>,
    out: PartWriter,
    line: Vec<u8>,
}

impl<I: Iterator<Item = io::Result<Vec<u8>>>> StreamingDelta<I> {
    /// A delta from the lines of `old`, written to `out`.
    pub fn new(old: I, out: PartWriter) -> Self {
        StreamingDelta {
            old: old.peekable(),
            out,
            line: Vec::with_capacity(80),
        }
    }

    fn emit(&mut self, sign: u8, value: &[u8]) -> io::Result<()> {
        self.line.clear();
        self.line.push(sign);
        self.line.extend_from_slice(value);
        self.out.line(&self.line)
    }

    fn next_old(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.old.next().transpose()
    }

    /// The next line of the new list (ascending).
    pub fn next_new(&mut self, value: &[u8]) -> io::Result<()> {
        loop {
            let order = match self.old.peek() {
                None => return self.emit(b'+', value),
                Some(Err(_)) => {
                    return match self.old.next() {
                        Some(Err(e)) => Err(e),
                        _ => Err(io::Error::other("the older list could not be read")),
                    }
                }
                Some(Ok(old)) => old.as_slice().cmp(value),
            };
            match order {
                Ordering::Less => {
                    if let Some(gone) = self.next_old()? {
                        self.emit(b'-', &gone)?;
                    }
                }
                Ordering::Equal => {
                    self.next_old()?;
                    return Ok(());
                }
                Ordering::Greater => return self.emit(b'+', value),
            }
        }
    }

    /// The end of the new list: what is left of the old one is gone. Returns the delta file.
    pub fn finish(mut self) -> io::Result<WrittenPart> {
        while let Some(gone) = self.next_old()? {
            self.emit(b'-', &gone)?;
        }
        self.out
            .finish()?
            .parts
            .pop()
            .ok_or_else(|| io::Error::other("no delta file written"))
    }
}

/// Applies a delta (`+v`/`-v` lines) to an ascending list; the result is ascending (for tests
/// and for clients that rebuild a list).
pub fn apply(old: &[&str], delta: &[&str]) -> Vec<String> {
    let mut set: std::collections::BTreeSet<String> = old.iter().map(|s| (*s).to_owned()).collect();
    for line in delta {
        if let Some(v) = line.strip_prefix('+') {
            set.insert(v.to_owned());
        } else if let Some(v) = line.strip_prefix('-') {
            set.remove(v);
        }
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::files::zip_parts::{read_lines, PartPlan};

    fn plan() -> PartPlan {
        PartPlan {
            names: Box::new(|_| ("delta.zip".to_owned(), "delta.csv".to_owned())),
            max_rows: u64::MAX,
            level: 1,
            stamp: chrono::NaiveDateTime::default(),
        }
    }

    fn run(old: &[&str], new: &[&str]) -> Vec<String> {
        let dir: PathBuf = std::env::temp_dir().join(format!("tkm-delta-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let old_lines: Vec<io::Result<Vec<u8>>> =
            old.iter().map(|s| Ok(s.as_bytes().to_vec())).collect();
        let mut d = StreamingDelta::new(old_lines.into_iter(), PartWriter::new(&dir, plan()));
        for v in new {
            d.next_new(v.as_bytes()).unwrap();
        }
        let file = d.finish().unwrap();
        let mut out = Vec::new();
        read_lines(&[dir.join(&file.file_name)], |l| {
            out.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(file.rows as usize, out.len());
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn the_delta_turns_the_old_list_into_the_new_one() {
        let old = ["a1", "b2", "c3", "e5"];
        let new = ["a1", "c3", "d4", "e5", "f6"];
        let d = run(&old, &new);
        assert_eq!(d, ["-b2", "+d4", "+f6"]);
        let ds: Vec<&str> = d.iter().map(String::as_str).collect();
        assert_eq!(apply(&old, &ds), new);
        assert!(run(&new, &new).is_empty());
        assert_eq!(run(&[], &["x"]), ["+x"]);
        assert_eq!(run(&["x"], &[]), ["-x"]);
        assert_eq!(run(&["a", "b"], &["c", "d"]), ["-a", "-b", "+c", "+d"]);
    }
}
