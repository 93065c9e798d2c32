//! `[database]`, `[vault]`, `[hashing]`, `[pgp]`: where data lives and the keys that protect it.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user@host:port/db` (a password here is allowed but `password_file` is better).
    pub url: SecretString,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Pool size.
    pub pool_size: usize,
    /// How long a request waits for a pooled connection before 503.
    pub wait_timeout_ms: u64,
    /// Connection establishment timeout.
    pub connect_timeout_ms: u64,
}

/// `[vault]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// Id of the key new values are sealed under.
    pub active_key: String,
    /// Days after which an inactive card's ciphertext is erased.
    pub inactive_retention_days: u32,
    /// The ring.
    pub keys: Vec<VaultKeySettings>,
}

/// One vault key: base64 of 32 bytes, from a file or an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultKeySettings {
    /// Key id stored beside every ciphertext.
    pub id: String,
    /// File holding the base64 key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the base64 key.
    #[serde(default)]
    pub key_env: Option<String>,
}

/// `[hashing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashingSettings {
    /// File holding the salt (a trailing newline is not part of it).
    #[serde(default)]
    pub salt_file: Option<PathBuf>,
    /// The salt itself (e.g. from `TKM__HASHING__SALT`); wins over `salt_file`.
    #[serde(default)]
    pub salt: Option<SecretString>,
}

/// `[pgp]`: tkm's OpenPGP key pair. The same key serves card events and acquirer files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgpSettings {
    /// tkm's armored secret key.
    pub private_key_file: PathBuf,
    /// File holding the key's passphrase (absent: the key is not protected).
    #[serde(default)]
    pub passphrase_file: Option<PathBuf>,
    /// The armored public key others encrypt to.
    pub public_key_file: PathBuf,
}
