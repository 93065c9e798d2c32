//! Lines out of streams of chunks (as `COPY … TO STDOUT` sends them) and the merge of sorted
//! streams into one sorted sequence.

use std::io;

/// Splits a stream of byte chunks (as `COPY … TO STDOUT` sends them: whole or cut lines) into
/// lines, counting them.
pub struct LineSplitter {
    carry: Vec<u8>,
    /// Lines passed on so far.
    pub lines: u64,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        LineSplitter {
            carry: Vec::new(),
            lines: 0,
        }
    }

    /// Feeds a chunk; every complete line goes to `out`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(i);
            if self.carry.is_empty() {
                out(line)?;
            } else {
                self.carry.extend_from_slice(line);
                out(&self.carry)?;
                self.carry.clear();
            }
            self.lines += 1;
            rest = &tail[1..];
        }
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    /// The end of the stream: a last line without newline is passed on too.
    pub fn end(&mut self, out: &mut impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        if !self.carry.is_empty() {
            out(&self.carry)?;
            self.carry.clear();
            self.lines += 1;
        }
        Ok(())
    }
}

/// The lines of one stream of chunks (a `COPY … TO STDOUT`), pulled on demand by a blocking
/// thread.
pub struct ChunkLines {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    split: LineSplitter,
    ready: std::collections::VecDeque<Vec<u8>>,
    done: bool,
}

impl ChunkLines {
    /// Lines of the chunks `rx` receives.
    pub fn new(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        ChunkLines {
            rx,
            split: LineSplitter::new(),
            ready: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// The next line; `None` once the stream has ended.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.done {
                return Ok(None);
            }
            let ready = &mut self.ready;
            let mut push = |l: &[u8]| {
                ready.push_back(l.to_vec());
                Ok(())
            };
            match self.rx.blocking_recv() {
                Some(chunk) => self.split.feed(&chunk, &mut push)?,
                None => {
                    self.split.end(&mut push)?;
                    self.done = true;
                }
            }
        }
    }
}

/// Merges ascending streams of lines into one ascending sequence, calling `each` per line.
pub fn merge(
    mut sources: Vec<ChunkLines>,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut heads = Vec::with_capacity(sources.len());
    for s in sources.iter_mut() {
        heads.push(s.next_line()?);
    }
    loop {
        let mut pick: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some(line) = head {
                let smaller = match pick.and_then(|p| heads[p].as_ref()) {
                    Some(best) => line < best,
                    None => true,
                };
                if smaller {
                    pick = Some(i);
                }
            }
        }
        let Some(i) = pick else {
            return Ok(());
        };
        if let Some(line) = heads[i].take() {
            each(&line)?;
        }
        heads[i] = sources[i].next_line()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_streams_merge_into_one_sorted_sequence() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut sources = Vec::new();
        for chunks in [vec!["a1\nc", "3\ne5\n"], vec!["b2\nd4"], vec![]] {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            rt.block_on(async {
                for c in chunks {
                    tx.send(bytes::Bytes::from(c)).await.unwrap();
                }
            });
            drop(tx);
            sources.push(ChunkLines::new(rx));
        }
        let mut out = Vec::new();
        merge(sources, |l| {
            out.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(out, ["a1", "b2", "c3", "d4", "e5"]);
    }
}
