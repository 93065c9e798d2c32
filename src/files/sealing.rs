//! Plain uploads (transaction files may arrive unencrypted and hold clear PANs) are encrypted to
//! tkm's own OpenPGP key while they stream in, so no clear byte ever reaches the disk: the chunks
//! go through a channel to a blocking thread that writes one PGP message into the part file.

use std::io::{self, Read, Write};

use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::crypto::pgp::PgpPublicKey;

/// Chunks waiting for the encrypting thread (each at most one network read).
const QUEUED_CHUNKS: usize = 8;

/// A `Read` over chunks sent from async code; each chunk is zeroized once read.
struct ChannelReader {
    rx: mpsc::Receiver<Zeroizing<Vec<u8>>>,
    current: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let rest = self.current.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or(&mut [])
            .copy_from_slice(rest.get(..n).unwrap_or(&[]));
        self.pos += n;
        Ok(n)
    }
}

/// Encrypts what is sent to it into `out`.
pub struct Sealer {
    tx: Option<mpsc::Sender<Zeroizing<Vec<u8>>>>,
    done: tokio::task::JoinHandle<io::Result<()>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// Starts encrypting to `key` into `out` (fsynced when done).
    pub fn start(key: PgpPublicKey, out: std::fs::File) -> Self {
        let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
        let reader = ChannelReader {
            rx,
            current: Zeroizing::new(Vec::new()),
            pos: 0,
        };
        let done = tokio::task::spawn_blocking(move || {
            let mut w = io::BufWriter::with_capacity(256 * 1024, out);
            key.encrypt_stream(reader, &mut w)
                .map_err(io::Error::other)?;
            w.flush()?;
            w.get_ref().sync_all()
        });
        Self { tx: Some(tx), done }
    }

    /// Sends a chunk; fails when the thread stopped (its error comes from [`Sealer::finish`]).
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("sealer finished"))?;
        tx.send(Zeroizing::new(chunk.to_vec()))
            .await
            .map_err(|_| io::Error::other("the encrypting thread stopped"))
    }

    /// Ends the message and waits until it is written and synced.
    pub async fn finish(mut self) -> io::Result<()> {
        self.tx.take();
        (&mut self.done).await.map_err(io::Error::other)?
    }
}
