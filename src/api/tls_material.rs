//! What the TLS files hold, read in one go: a digest to notice changes, the client CAs, and the
//! CRLs' `nextUpdate` and signatures, checked before anything is put in force.

use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::x509::{X509Crl, X509Name, X509};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::tls::TlsError;
use crate::config::ServerSettings;

/// The TLS files of `[server]`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `server.cert_file`.
    pub cert: PathBuf,
    /// `server.key_file`.
    pub key: PathBuf,
    /// `server.client_ca_file`.
    pub ca: PathBuf,
    /// `server.crl_file`.
    pub crl: Option<PathBuf>,
}

impl TlsFiles {
    /// The paths configured in `[server]`.
    pub fn of(s: &ServerSettings) -> Self {
        Self {
            cert: s.cert_file.clone(),
            key: s.key_file.clone(),
            ca: s.client_ca_file.clone(),
            crl: s.crl_file.clone(),
        }
    }
}

/// The files' content at one moment.
pub struct Inspection {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
    cas: Vec<X509>,
    digest: [u8; 32],
    crl_next_update: Option<i64>,
}

impl Inspection {
    /// Reads every file; fails naming the setting of an unreadable or malformed one, and of a
    /// CRL whose signature does not verify with the client CA of its issuer.
    pub fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let mut digest = Sha256::new();
        let mut read = |key: &'static str, path: &Path| -> Result<Vec<u8>, TlsError> {
            let bytes = std::fs::read(path).map_err(|e| material(key, path, e.to_string()))?;
            digest.update(key.as_bytes());
            digest.update((bytes.len() as u64).to_be_bytes());
            digest.update(&bytes);
            Ok(bytes)
        };
        let cert = read("server.cert_file", &files.cert)?;
        let key = Zeroizing::new(read("server.key_file", &files.key)?);
        let ca_pem = read("server.client_ca_file", &files.ca)?;
        let crl_pem = match &files.crl {
            Some(path) => {
                // OpenSSL loads the CRL by path, which must be UTF-8 without NUL.
                if path.to_str().is_none_or(|p| p.contains('\0')) {
                    return Err(material("server.crl_file", path, "not a UTF-8 path"));
                }
                Some((path, read("server.crl_file", path)?))
            }
            None => None,
        };
        let cas = X509::stack_from_pem(&ca_pem)
            .map_err(|e| material("server.client_ca_file", &files.ca, e.to_string()))?;
        if cas.is_empty() {
            return Err(material(
                "server.client_ca_file",
                &files.ca,
                "no certificate in the file",
            ));
        }
        let crl_next_update = match &crl_pem {
            Some((path, pem)) => earliest_next_update(path, pem, &cas)?,
            None => None,
        };
        Ok(Self {
            cert,
            key,
            cas,
            digest: digest.finalize().into(),
            crl_next_update,
        })
    }

    /// SHA-256 over every file's content (compared, never shown).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The earliest `nextUpdate` of the CRLs (Unix seconds); None without a CRL, or when no CRL
    /// names one.
    pub fn crl_next_update(&self) -> Option<i64> {
        self.crl_next_update
    }

    pub(super) fn cert_pem(&self) -> &[u8] {
        &self.cert
    }

    pub(super) fn key_pem(&self) -> &[u8] {
        &self.key
    }

    pub(super) fn cas(&self) -> &[X509] {
        &self.cas
    }

    pub(super) fn ca_names(&self) -> Result<Vec<X509Name>, openssl::error::ErrorStack> {
        self.cas
            .iter()
            .map(|c| c.subject_name().to_owned())
            .collect()
    }
}

fn material(key: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Material {
        key,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Parses every PEM CRL of the file (OpenSSL loads them all), checks the signature of each
/// whose issuer is a configured client CA, and returns the earliest `nextUpdate`.
fn earliest_next_update(path: &Path, pem: &[u8], cas: &[X509]) -> Result<Option<i64>, TlsError> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    const END: &[u8] = b"-----END X509 CRL-----";
    let bad = |reason: String| material("server.crl_file", path, reason);
    let mut earliest: Option<i64> = None;
    let (mut rest, mut count) = (pem, 0usize);
    while let Some(start) = find(rest, BEGIN) {
        let block = &rest[start..];
        let end = find(block, END)
            .map(|e| e + END.len())
            .ok_or_else(|| bad("unterminated PEM block".into()))?;
        let crl = X509Crl::from_pem(&block[..end]).map_err(|e| bad(e.to_string()))?;
        rest = &block[end..];
        count += 1;
        let mut issuers = cas
            .iter()
            .filter(|ca| {
                ca.subject_name()
                    .try_cmp(crl.issuer_name())
                    .is_ok_and(|o| o.is_eq())
            })
            .peekable();
        if issuers.peek().is_some()
            && !issuers.any(|ca| {
                ca.public_key()
                    .and_then(|k| crl.verify(&k))
                    .unwrap_or(false)
            })
        {
            return Err(bad(format!(
                "CRL number {count} is not signed by its issuer in server.client_ca_file"
            )));
        }
        if let Some(next) = crl.next_update() {
            let next = unix_secs(next).map_err(|e| bad(e.to_string()))?;
            earliest = Some(earliest.map_or(next, |e| e.min(next)));
        }
    }
    if count == 0 {
        return Err(bad("no PEM CRL in the file".into()));
    }
    Ok(earliest)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn unix_secs(t: &Asn1TimeRef) -> Result<i64, openssl::error::ErrorStack> {
    let d = Asn1Time::from_unix(0)?.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_become_unix_seconds() {
        for t in [0, 1, 86_399, 86_400, 1_700_000_000, 4_102_444_800] {
            let asn1 = Asn1Time::from_unix(t).unwrap();
            assert_eq!(unix_secs(&asn1).unwrap(), t);
        }
    }

    #[test]
    fn a_crl_file_without_a_crl_is_refused_naming_the_key() {
        let e = earliest_next_update(Path::new("/x.crl"), b"garbage", &[]).unwrap_err();
        assert!(e.to_string().starts_with("server.crl_file"), "{e}");
        let e = earliest_next_update(
            Path::new("/x.crl"),
            b"-----BEGIN X509 CRL-----\nAAAA\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
    }
}
