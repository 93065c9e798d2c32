//! Acquirers' uploads on disk: streamed in under a random id (never the client's name) with
//! their SHA-256 and a size limit, fsynced, then renamed into place; a cut-off or refused upload
//! leaves nothing behind. What lands on disk is always encrypted (`data.md`): PGP content as
//! received, and plain content — where the kind allows it (transaction files) — encrypted to
//! tkm's own key on its way in (`files::sealing`).

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::sealing::Sealer;
use crate::crypto::pgp::PgpPublicKey;

/// Why an upload is not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Over `uploads.max_bytes`.
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// The content is not an OpenPGP message.
    #[error("the file must be PGP-encrypted to tkm's public key")]
    NotPgp,
    /// Empty.
    #[error("the file is empty")]
    Empty,
    /// No space left on the storage volume.
    #[error("no space left on the storage volume")]
    DiskFull,
    /// Any other I/O failure.
    #[error("storage I/O failed")]
    Io(#[source] io::Error),
}

fn io_error(e: io::Error) -> UploadError {
    // ENOSPC (28) and EDQUOT (122): the volume or the quota is full.
    if e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122)) {
        UploadError::DiskFull
    } else {
        UploadError::Io(e)
    }
}

/// The bytes a PGP message starts with: a binary packet header (bit 7 set) or ASCII armor.
/// `None` while too few bytes arrived to tell.
pub fn looks_like_pgp(prefix: &[u8]) -> Option<bool> {
    const ARMOR: &[u8] = b"-----BEGIN PGP MESSAGE-----";
    let start = prefix.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = prefix.get(start..)?;
    let first = *head.first()?;
    if first & 0x80 != 0 {
        return Some(true);
    }
    if head.len() < ARMOR.len() {
        return if ARMOR.starts_with(head) {
            None
        } else {
            Some(false)
        };
    }
    Some(head.starts_with(ARMOR))
}

/// Where uploads live: `<storage.dir>/uploads/<id>.pgp`.
#[derive(Clone, Debug)]
pub struct UploadStore {
    dir: PathBuf,
}

/// A file stored and renamed into place.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// Its id (and name on disk).
    pub id: Uuid,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

impl UploadStore {
    /// The store under `storage_dir`.
    pub fn new(storage_dir: &Path) -> Self {
        UploadStore {
            dir: storage_dir.join("uploads"),
        }
    }

    /// Creates the directory and removes what a crash left half-written.
    pub fn prepare(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "part") {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// The stored file of an upload.
    pub fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.pgp"))
    }

    /// Starts receiving a PGP file of at most `max_bytes`.
    pub async fn receive(&self, max_bytes: u64) -> Result<Incoming, UploadError> {
        self.receive_with(max_bytes, None).await
    }

    /// Starts receiving a file of at most `max_bytes`; plain content is accepted when `seal_to`
    /// is given, and encrypted to that key as it streams in.
    pub async fn receive_with(
        &self,
        max_bytes: u64,
        seal_to: Option<PgpPublicKey>,
    ) -> Result<Incoming, UploadError> {
        let id = Uuid::new_v4();
        let part = self.dir.join(format!("{id}.part"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
            .await
            .map_err(io_error)?;
        Ok(Incoming {
            id,
            part: Some(part),
            target: self.path(id),
            dir: self.dir.clone(),
            out: BufWriter::with_capacity(256 * 1024, file),
            sha: Sha256::new(),
            bytes: 0,
            max_bytes,
            prefix: Zeroizing::new(Vec::new()),
            checked: false,
            seal_to,
            sealer: None,
        })
    }

    /// Stores a local file (the operators' command line) like an upload.
    pub async fn copy_in(
        &self,
        from: &Path,
        max_bytes: u64,
        seal_to: Option<PgpPublicKey>,
    ) -> Result<StoredFile, UploadError> {
        use tokio::io::AsyncReadExt;
        let mut source = tokio::fs::File::open(from).await.map_err(UploadError::Io)?;
        let mut incoming = self.receive_with(max_bytes, seal_to).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = source.read(&mut buf).await.map_err(UploadError::Io)?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            incoming.write(chunk).await?;
        }
        incoming.finish().await
    }

    /// Removes an upload's file (after it was processed, or a duplicate's copy).
    pub fn remove(&self, id: Uuid) {
        if let Err(e) = std::fs::remove_file(self.path(id)) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(upload = %id, error = %e, "cannot remove an upload's file");
            }
        }
    }
}

/// A file being received: written under `<id>.part`, removed unless finished.
pub struct Incoming {
    id: Uuid,
    part: Option<PathBuf>,
    target: PathBuf,
    dir: PathBuf,
    out: BufWriter<tokio::fs::File>,
    sha: Sha256,
    bytes: u64,
    max_bytes: u64,
    /// The first bytes, held back until they show a PGP message.
    prefix: Zeroizing<Vec<u8>>,
    checked: bool,
    /// The key plain content is encrypted to, when plain content is accepted.
    seal_to: Option<PgpPublicKey>,
    /// Encrypting plain content into the part file.
    sealer: Option<Sealer>,
}

impl Incoming {
    /// Appends a chunk; refuses a file over the limit or not PGP.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.bytes = self.bytes.saturating_add(chunk.len() as u64);
        if self.bytes > self.max_bytes {
            return Err(UploadError::TooLarge(self.max_bytes));
        }
        self.sha.update(chunk);
        if !self.checked {
            self.prefix.extend_from_slice(chunk);
            match (looks_like_pgp(&self.prefix), self.seal_to.take()) {
                (None, key) if self.prefix.len() < 4096 => {
                    self.seal_to = key;
                    return Ok(());
                }
                (Some(true), _) => {
                    self.checked = true;
                    let held = std::mem::take(&mut self.prefix);
                    return self.out.write_all(&held).await.map_err(io_error);
                }
                (_, Some(key)) => {
                    self.checked = true;
                    let file = self.out.get_ref().try_clone().await.map_err(io_error)?;
                    let file = file.into_std().await;
                    let mut sealer = Sealer::start(key, file);
                    let held = std::mem::take(&mut self.prefix);
                    sealer.write(&held).await.map_err(io_error)?;
                    self.sealer = Some(sealer);
                    return Ok(());
                }
                (_, None) => return Err(UploadError::NotPgp),
            }
        }
        match &mut self.sealer {
            Some(sealer) => sealer.write(chunk).await.map_err(io_error),
            None => self.out.write_all(chunk).await.map_err(io_error),
        }
    }

    /// Flushes, fsyncs and renames the file into place.
    pub async fn finish(mut self) -> Result<StoredFile, UploadError> {
        if self.bytes == 0 {
            return Err(UploadError::Empty);
        }
        if !self.checked {
            // A short file, all of it held: plain when the kind allows it.
            let Some(key) = self.seal_to.take() else {
                return Err(UploadError::NotPgp);
            };
            if looks_like_pgp(&self.prefix) == Some(true) {
                let held = std::mem::take(&mut self.prefix);
                self.out.write_all(&held).await.map_err(io_error)?;
            } else {
                let file = self.out.get_ref().try_clone().await.map_err(io_error)?;
                let mut sealer = Sealer::start(key, file.into_std().await);
                let held = std::mem::take(&mut self.prefix);
                sealer.write(&held).await.map_err(io_error)?;
                self.sealer = Some(sealer);
            }
            self.checked = true;
        }
        if let Some(sealer) = self.sealer.take() {
            sealer.finish().await.map_err(io_error)?;
        }
        self.out.flush().await.map_err(io_error)?;
        self.out.get_ref().sync_all().await.map_err(io_error)?;
        let part = self.part.clone().unwrap_or_default();
        tokio::fs::rename(&part, &self.target)
            .await
            .map_err(io_error)?;
        self.part = None;
        // The rename is durable once the directory is synced.
        let dir = self.dir.clone();
        let synced = tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
            .await
            .map_err(|e| UploadError::Io(io::Error::other(e)))?;
        synced.map_err(io_error)?;
        Ok(StoredFile {
            id: self.id,
            sha256: hex::encode(self.sha.clone().finalize()),
            bytes: self.bytes,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // A refused or cut-off upload leaves nothing behind.
        if let Some(part) = self.part.take() {
            let _ = std::fs::remove_file(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgp_content_is_recognised_from_its_first_bytes() {
        assert_eq!(looks_like_pgp(b""), None);
        assert_eq!(looks_like_pgp(&[0x85, 0x01]), Some(true));
        assert_eq!(
            looks_like_pgp(b"\n-----BEGIN PGP MESSAGE-----\n"),
            Some(true)
        );
        assert_eq!(looks_like_pgp(b"-----BEGIN PGP"), None);
        assert_eq!(looks_like_pgp(b"4000123412341234;01;V001"), Some(false));
        assert_eq!(
            looks_like_pgp(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"),
            Some(false)
        );
    }

    #[test]
    fn a_full_volume_or_quota_is_disk_full() {
        for errno in [28, 122] {
            let e = io_error(io::Error::from_raw_os_error(errno));
            assert!(matches!(e, UploadError::DiskFull), "errno {errno}");
        }
        assert!(matches!(
            io_error(io::Error::from_raw_os_error(13)),
            UploadError::Io(_)
        ));
    }

    #[tokio::test]
    async fn a_refused_upload_leaves_nothing_and_a_finished_one_is_in_place() {
        let dir = std::env::temp_dir().join(format!("tkm-upload-test-{}", Uuid::new_v4()));
        let store = UploadStore::new(&dir);
        store.prepare().expect("dir");
        let mut big = store.receive(10).await.expect("receive");
        assert!(matches!(
            big.write(&[0x85; 11]).await,
            Err(UploadError::TooLarge(10))
        ));
        drop(big);
        let mut plain = store.receive(1000).await.expect("receive");
        assert!(matches!(
            plain.write(b"4000;01;x\n").await,
            Err(UploadError::NotPgp)
        ));
        drop(plain);
        assert_eq!(
            std::fs::read_dir(dir.join("uploads")).expect("dir").count(),
            0
        );
        let mut ok = store.receive(1000).await.expect("receive");
        ok.write(&[0x85, 1, 2]).await.expect("write");
        ok.write(&[3]).await.expect("write");
        let stored = ok.finish().await.expect("finish");
        assert_eq!(stored.bytes, 4);
        assert_eq!(
            std::fs::read(store.path(stored.id)).expect("read"),
            vec![0x85, 1, 2, 3]
        );
        assert_eq!(stored.sha256, hex::encode(Sha256::digest([0x85, 1, 2, 3])));
        let _ = std::fs::remove_dir_all(dir);
    }
}
