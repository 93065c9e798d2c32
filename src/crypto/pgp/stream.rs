//! Streamed decryption of large files (acquirers' token lists and transaction files): the
//! plaintext comes out as it is decrypted, with its size capped, and the MDC is checked when the
//! end is reached — so a caller must read to the end and treat nothing as final before that.

use std::io::{self, BufRead, Read};

use pgp::composed::Message;
use pgp::types::Seipdv1ReadMode;

use super::decrypt::{open_literal, Failure, RsaEngine};
use super::{PgpError, PgpKey};

/// Why a [`PlainStream`] read failed: carried inside the `io::Error` it returns.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Tampered, truncated or otherwise undecryptable data (one outcome for every cause).
    #[error("the PGP message cannot be decrypted")]
    Undecryptable,
    /// The plaintext grew past the cap (a compression bomb, or a file out of proportion).
    #[error("the decrypted content is larger than {0} bytes")]
    TooLarge(u64),
}

impl StreamError {
    /// The stream failure an `io::Error` from [`PlainStream`] carries, if it is one (other
    /// errors come from the underlying file).
    pub fn of(e: &io::Error) -> Option<&StreamError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<StreamError>())
    }
}

/// The literal data of an encrypted message, read as it is decrypted.
pub struct PlainStream<'a> {
    message: Message<'a>,
    read: u64,
    max: u64,
}

impl std::fmt::Debug for PlainStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PlainStream {{ read: {}, max: {} }}",
            self.read, self.max
        )
    }
}

impl PlainStream<'_> {
    /// Plaintext bytes released so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl Read for PlainStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.message.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                tracing::debug!(cause = %e, "PGP stream undecryptable");
                return Err(io::Error::other(StreamError::Undecryptable));
            }
        };
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.max {
            return Err(io::Error::other(StreamError::TooLarge(self.max)));
        }
        Ok(n)
    }
}

impl PgpKey {
    /// Opens `input` (armored or binary) for streamed decryption, releasing at most
    /// `max_plaintext` bytes. Opening fails with [`PgpError::Undecryptable`] for a message not
    /// for this key; reads fail with a [`StreamError`] inside the `io::Error`, the MDC check
    /// included, which happens at the end. CPU-bound: use it from a blocking thread.
    pub fn decrypt_stream<'a, R>(
        &self,
        input: R,
        max_plaintext: u64,
    ) -> Result<PlainStream<'a>, PgpError>
    where
        R: BufRead + std::fmt::Debug + Send + 'a,
    {
        match open_literal(
            self.inner(),
            input,
            Seipdv1ReadMode::Streaming,
            RsaEngine::OpenSsl,
        ) {
            Ok(message) => Ok(PlainStream {
                message,
                read: 0,
                max: max_plaintext,
            }),
            Err(Failure::TooLarge) => Err(PgpError::TooLarge),
            Err(Failure::Bad(cause)) => {
                tracing::debug!(key = %self.fingerprint(), %cause, "PGP stream undecryptable");
                Err(PgpError::Undecryptable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::pgp::test_support::{bouncycastle, curve, rsa2048};

    fn read_all(mut s: impl Read) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn a_stream_yields_the_plaintext_and_caps_it() {
        for t in [curve(), rsa2048()] {
            let plain = b"4000123412341234;01;V0010013618215513423458701234\n".repeat(2000);
            let message = t.public.encrypt(&plain, false).expect("encrypts");
            let s = t
                .key
                .decrypt_stream(io::Cursor::new(message.clone()), 1 << 20)
                .expect("opens");
            assert_eq!(read_all(s).expect("reads"), plain);
            let s = t
                .key
                .decrypt_stream(io::Cursor::new(message), 1000)
                .expect("opens");
            let e = read_all(s).expect_err("capped");
            assert!(matches!(
                StreamError::of(&e),
                Some(StreamError::TooLarge(1000))
            ));
        }
    }

    #[test]
    fn armored_and_bouncycastle_messages_stream() {
        let t = curve();
        let message = t.public.encrypt(b"a;b\n", true).expect("encrypts");
        let s = t
            .key
            .decrypt_stream(io::Cursor::new(message), 100)
            .expect("opens");
        assert_eq!(read_all(s).expect("reads"), b"a;b\n");
        let (key, message, plain) = bouncycastle();
        let s = key
            .decrypt_stream(io::Cursor::new(message.clone()), 1000)
            .expect("opens");
        assert_eq!(read_all(s).expect("reads"), *plain);
    }

    #[test]
    fn a_tampered_stream_fails_by_the_end() {
        let t = curve();
        let plain = b"x".repeat(100_000);
        let mut message = t.public.encrypt(&plain, false).expect("encrypts");
        let at = message.len() - 10;
        if let Some(b) = message.get_mut(at) {
            *b ^= 1;
        }
        let failed = match t.key.decrypt_stream(io::Cursor::new(message), 1 << 20) {
            Err(_) => true,
            Ok(s) => read_all(s)
                .err()
                .is_some_and(|e| matches!(StreamError::of(&e), Some(StreamError::Undecryptable))),
        };
        assert!(failed);
    }
}
