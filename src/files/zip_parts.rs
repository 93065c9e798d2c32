//! Writing a sorted list as single-entry ZIP parts of at most N lines each, hashing the ZIP bytes
//! with SHA-256 on their way to disk (no second read), and reading the lines of such parts back.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// How a list's parts are named and compressed.
pub struct PartPlan {
    /// `(zip file name, entry name)` of part `n`.
    pub names: Box<dyn Fn(usize) -> (String, String) + Send>,
    /// Lines per part at most.
    pub max_rows: u64,
    /// Deflate level.
    pub level: i64,
    /// The time stamped on the entries.
    pub stamp: chrono::NaiveDateTime,
}

/// A finished file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenPart {
    /// Its number, from 0.
    pub part: usize,
    /// The ZIP file's name in the generation's directory.
    pub file_name: String,
    /// Lines in its entry (an empty list's single empty line counts 0).
    pub rows: u64,
    /// Size of the ZIP file.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the ZIP bytes.
    pub sha256: String,
}

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Zip = ZipWriter<zip::write::StreamWriter<Hashing<BufWriter<File>>>>;

struct OpenPart {
    zip: Zip,
    part: usize,
    file_name: String,
    rows: u64,
    /// Lines not yet compressed: the deflater and the hashes get large slices, not a call per
    /// 65-byte line (which cost more than the compression itself).
    pending: Vec<u8>,
}

/// How much text is gathered before it is compressed and hashed.
const PENDING: usize = 256 * 1024;

/// Writes lines (already sorted, without their newline) into parts in `dir`, and hashes the
/// list's content (every part's lines, LF-terminated, in order) as a client rebuilds it.
pub struct PartWriter {
    dir: PathBuf,
    plan: PartPlan,
    open: Option<OpenPart>,
    done: Vec<WrittenPart>,
    content: Sha256,
}

/// A finished list: its parts and the SHA-256 of its content.
#[derive(Clone, Debug)]
pub struct WrittenList {
    /// The parts, in order.
    pub parts: Vec<WrittenPart>,
    /// Lowercase hex SHA-256 of the lines of all parts, LF-terminated (what `unzip -p` of each
    /// part in turn prints).
    pub content_sha256: String,
}

fn zip_error(e: zip::result::ZipError) -> io::Error {
    io::Error::other(e)
}

impl PartWriter {
    /// A writer into `dir` (which exists).
    pub fn new(dir: &Path, plan: PartPlan) -> Self {
        PartWriter {
            dir: dir.to_path_buf(),
            plan,
            open: None,
            done: Vec::new(),
            content: Sha256::new(),
        }
    }

    fn start(&mut self, part: usize) -> io::Result<OpenPart> {
        let (file_name, entry) = (self.plan.names)(part);
        let file = File::create(self.dir.join(&file_name))?;
        let sink = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut zip = ZipWriter::new_stream(sink);
        let s = self.plan.stamp;
        use chrono::{Datelike, Timelike};
        let stamp = zip::DateTime::from_date_and_time(
            u16::try_from(s.year()).unwrap_or(1980),
            u8::try_from(s.month()).unwrap_or(1),
            u8::try_from(s.day()).unwrap_or(1),
            u8::try_from(s.hour()).unwrap_or(0),
            u8::try_from(s.minute()).unwrap_or(0),
            u8::try_from(s.second()).unwrap_or(0),
        )
        .unwrap_or_default();
        // Entries past 4 GiB need ZIP64 headers; a part of at most max_rows short lines rarely
        // does, and unzip tools older than ZIP64 read the others.
        let large = self.plan.max_rows.saturating_mul(128) >= u64::from(u32::MAX);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(self.plan.level))
            .last_modified_time(stamp)
            .large_file(large);
        zip.start_file(entry, options).map_err(zip_error)?;
        Ok(OpenPart {
            zip,
            part,
            file_name,
            rows: 0,
            pending: Vec::with_capacity(PENDING + 128),
        })
    }

    /// Compresses and hashes the gathered lines of the open part.
    fn drain(content: &mut Sha256, open: &mut OpenPart) -> io::Result<()> {
        if !open.pending.is_empty() {
            open.zip.write_all(&open.pending)?;
            content.update(&open.pending);
            open.pending.clear();
        }
        Ok(())
    }

    fn close(&mut self, mut open: OpenPart) -> io::Result<()> {
        Self::drain(&mut self.content, &mut open)?;
        let stream = open.zip.finish().map_err(zip_error)?;
        let mut sink = stream.into_inner();
        sink.flush()?;
        let file = sink
            .inner
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Durable before the generation is published.
        file.sync_all()?;
        self.done.push(WrittenPart {
            part: open.part,
            file_name: open.file_name,
            rows: open.rows,
            bytes: sink.bytes,
            sha256: hex::encode(sink.hasher.finalize()),
        });
        Ok(())
    }

    /// Appends one line.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        let full = self
            .open
            .as_ref()
            .is_some_and(|o| o.rows >= self.plan.max_rows);
        if full {
            if let Some(open) = self.open.take() {
                self.close(open)?;
            }
        }
        if self.open.is_none() {
            let next = self.done.len();
            self.open = Some(self.start(next)?);
        }
        if let Some(open) = self.open.as_mut() {
            open.pending.extend_from_slice(line);
            open.pending.push(b'\n');
            open.rows += 1;
            if open.pending.len() >= PENDING {
                Self::drain(&mut self.content, open)?;
            }
        }
        Ok(())
    }

    /// Closes the last part; an empty list is one part holding one empty line.
    pub fn finish(mut self) -> io::Result<WrittenList> {
        match self.open.take() {
            Some(open) => self.close(open)?,
            None if self.done.is_empty() => {
                let mut open = self.start(0)?;
                open.pending.push(b'\n');
                self.close(open)?;
            }
            None => {}
        }
        Ok(WrittenList {
            parts: self.done,
            content_sha256: hex::encode(self.content.finalize()),
        })
    }
}

/// Calls `each` with every non-empty line of the parts, in order (each part's single entry).
pub fn read_lines(
    parts: &[PathBuf],
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut count = 0u64;
    for path in parts {
        let mut archive = zip::ZipArchive::new(File::open(path)?).map_err(zip_error)?;
        let entry = archive.by_index(0).map_err(zip_error)?;
        let mut reader = BufReader::with_capacity(1 << 16, entry);
        let mut line = Vec::with_capacity(80);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if !line.is_empty() {
                each(&line)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// The non-empty lines of the parts as an iterator (for merging two lists): a thread reads and
/// decompresses ahead, handing over batches of lines through a bounded channel.
pub fn lines(parts: Vec<PathBuf>) -> impl Iterator<Item = io::Result<Vec<u8>>> {
    const BATCH: usize = 4096;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<Vec<u8>>>>(4);
    std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let read = read_lines(&parts, |line| {
            batch.push(line.to_vec());
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                // A closed channel: the reader stopped early; stop too.
                tx.send(Ok(full))
                    .map_err(|_| io::Error::other("reader gone"))?;
            }
            Ok(())
        });
        let last = match read {
            Ok(_) => Ok(batch),
            Err(e) => Err(e),
        };
        let _ = tx.send(last);
    });
    rx.into_iter().flat_map(|batch| match batch {
        Ok(lines) => lines.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(e)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::lines::LineSplitter;

    fn plan(max_rows: u64) -> PartPlan {
        PartPlan {
            names: Box::new(|n| (format!("list_{n}.zip"), "list.csv".to_owned())),
            max_rows,
            level: 6,
            stamp: chrono::NaiveDate::from_ymd_opt(2026, 12, 4)
                .and_then(|d| d.and_hms_opt(1, 0, 0))
                .unwrap_or_default(),
        }
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("tkm-zip-parts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines_cut_anywhere_are_split_into_parts_and_read_back() {
        let d = dir();
        let mut w = PartWriter::new(&d, plan(2));
        let mut s = LineSplitter::new();
        let mut sink = |l: &[u8]| w.line(l);
        for chunk in [&b"a1\nb"[..], b"2\nc3", b"\nd4\ne5"] {
            s.feed(chunk, &mut sink).unwrap();
        }
        s.end(&mut sink).unwrap();
        let list = w.finish().unwrap();
        let parts = list.parts;
        assert_eq!(
            list.content_sha256,
            hex::encode(Sha256::digest(b"a1\nb2\nc3\nd4\ne5\n"))
        );
        assert_eq!(s.lines, 5);
        assert_eq!(
            parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        for p in &parts {
            let bytes = std::fs::read(d.join(&p.file_name)).unwrap();
            assert_eq!(p.bytes, bytes.len() as u64);
            assert_eq!(p.sha256, hex::encode(Sha256::digest(&bytes)));
        }
        let paths: Vec<PathBuf> = parts.iter().map(|p| d.join(&p.file_name)).collect();
        let mut back = Vec::new();
        read_lines(&paths, |l| {
            back.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(back, ["a1", "b2", "c3", "d4", "e5"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_empty_list_is_one_file_with_one_empty_line() {
        let d = dir();
        let list = PartWriter::new(&d, plan(10)).finish().unwrap();
        assert_eq!(list.content_sha256, hex::encode(Sha256::digest(b"\n")));
        let parts = list.parts;
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].rows, 0);
        let mut archive =
            zip::ZipArchive::new(File::open(d.join(&parts[0].file_name)).unwrap()).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_index(0).unwrap(), &mut text).unwrap();
        assert_eq!(text, "\n");
        assert_eq!(archive.len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
