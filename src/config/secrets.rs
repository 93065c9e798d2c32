//! Secrets from files or the environment: the salt, the vault keys, and how their files are
//! read; certificate fingerprints as `[[clients]]` gives them.

use std::fs;
use std::path::Path;

use secrecy::SecretString;

use super::{invalid, ConfigError, Settings};

/// Reads a secret file, dropping one trailing newline (`\n` or `\r\n`).
pub fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let raw = fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let trimmed = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw);
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Lower-case hex of a SHA-256 fingerprint given as hex with optional `:` separators.
pub fn normalise_fingerprint(input: &str) -> Option<String> {
    let hex: String = input.chars().filter(|c| *c != ':').collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// A vault key as configured: its id and its 32 bytes (zeroized on drop).
pub type VaultKeyMaterial = (String, zeroize::Zeroizing<[u8; 32]>);

impl Settings {
    /// The HPAN salt (file or value), refused when empty: an empty salt would publish plain
    /// SHA-256 of card numbers.
    pub fn salt(&self) -> Result<SecretString, ConfigError> {
        use secrecy::ExposeSecret as _;
        let (salt, key) = match (&self.hashing.salt, &self.hashing.salt_file) {
            (Some(s), _) => (s.clone(), "hashing.salt"),
            (None, Some(p)) => (
                read_secret_file("hashing.salt_file", p)?,
                "hashing.salt_file",
            ),
            (None, None) => return Err(invalid("hashing", "set salt_file or salt")),
        };
        if salt.expose_secret().is_empty() {
            return Err(invalid(key, "the salt is empty"));
        }
        Ok(salt)
    }

    /// Every configured vault key as `(id, 32 bytes)`, read and decoded (the crypto layer builds
    /// the key ring from them).
    pub fn vault_keys(&self) -> Result<Vec<VaultKeyMaterial>, ConfigError> {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let mut keys = Vec::new();
        for (i, k) in self.vault.keys.iter().enumerate() {
            let key = format!("vault.keys[{i}]");
            let encoded =
                match (&k.key_file, &k.key_env) {
                    (Some(p), _) => read_secret_file(&format!("{key}.key_file"), p)?,
                    (None, Some(var)) => SecretString::from(std::env::var(var).map_err(|_| {
                        invalid(format!("{key}.key_env"), format!("{var} is not set"))
                    })?),
                    (None, None) => return Err(invalid(key, "set key_file or key_env")),
                };
            let bytes = zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.expose_secret().trim())
                    .map_err(|_| invalid(key.clone(), "key is not base64"))?,
            );
            let mut material = zeroize::Zeroizing::new([0u8; 32]);
            if bytes.len() != material.len() {
                return Err(invalid(key, "key must be 32 bytes"));
            }
            material.copy_from_slice(&bytes);
            keys.push((k.id.clone(), material));
        }
        Ok(keys)
    }
}
