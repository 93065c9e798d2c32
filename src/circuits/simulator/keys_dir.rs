//! [`SimulatorKeys`] kept in a directory for the standalone simulator, so tkm can be configured
//! against it once: private keys as PEM (mode 0600), the public halves beside them, the secrets in
//! `credentials.toml` and, for `*_file` settings, `visa-password.txt` and `amex-secret.txt`.

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use openssl::pkey::{PKey, Private};
use serde::Deserialize;

use super::keys::SimulatorKeys;
use crate::circuits::protocol;

const CREDENTIALS: &str = "credentials.toml";

/// The key files: (file stem, accessor).
type KeyField = (&'static str, fn(&SimulatorKeys) -> &PKey<Private>);
const KEY_FILES: [KeyField; 5] = [
    ("visa-circuit", |k| &k.visa_circuit),
    ("visa-client", |k| &k.visa_client),
    ("mc-signing", |k| &k.mc_signing),
    ("mc-circuit", |k| &k.mc_circuit),
    ("mc-client", |k| &k.mc_client),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    visa_user: String,
    visa_password: String,
    visa_key_id: String,
    visa_client_id: String,
    mc_consumer_key: String,
    amex_api_key: String,
    amex_secret: String,
}

/// Writes `path` atomically (a temporary file renamed over it): a reader in another process
/// sees the old file or the new one, never half of one.
fn write_file(path: &Path, text: &[u8], mode: u32) -> anyhow::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A TOML basic string.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl SimulatorKeys {
    /// Reads the keys kept in `dir`, or generates them and writes them there when `dir` has no
    /// `credentials.toml` yet.
    pub fn load_or_generate(dir: &Path) -> anyhow::Result<SimulatorKeys> {
        // Callers in one process (parallel tests) take turns: the first writes, the others read.
        static TURN: Mutex<()> = Mutex::new(());
        let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        if dir.join(CREDENTIALS).exists() {
            Self::load(dir)
        } else {
            let keys = SimulatorKeys::generate()?;
            keys.save(dir)?;
            Ok(keys)
        }
    }

    fn load(dir: &Path) -> anyhow::Result<SimulatorKeys> {
        let path = dir.join(CREDENTIALS);
        let c: Credentials = config::Config::builder()
            .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let key = |stem: &str| -> anyhow::Result<PKey<Private>> {
            let file = dir.join(format!("{stem}.key.pem"));
            let pem =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            protocol::private_key_from_pem(&pem).with_context(|| format!("{}", file.display()))
        };
        Ok(SimulatorKeys {
            visa_user: c.visa_user,
            visa_password: c.visa_password,
            visa_key_id: c.visa_key_id,
            visa_client_id: c.visa_client_id,
            visa_circuit: key("visa-circuit")?,
            visa_client: key("visa-client")?,
            mc_consumer_key: c.mc_consumer_key,
            mc_signing: key("mc-signing")?,
            mc_circuit: key("mc-circuit")?,
            mc_client: key("mc-client")?,
            amex_api_key: c.amex_api_key,
            amex_secret: c.amex_secret,
        })
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (stem, field) in KEY_FILES {
            let key = field(self);
            write_file(
                &dir.join(format!("{stem}.key.pem")),
                &key.private_key_to_pem_pkcs8()?,
                0o600,
            )?;
            write_file(
                &dir.join(format!("{stem}.pub.pem")),
                &key.public_key_to_pem()?,
                0o644,
            )?;
        }
        write_file(
            &dir.join("visa-password.txt"),
            self.visa_password.as_bytes(),
            0o600,
        )?;
        write_file(
            &dir.join("amex-secret.txt"),
            self.amex_secret.as_bytes(),
            0o600,
        )?;
        let fields = [
            ("visa_user", &self.visa_user),
            ("visa_password", &self.visa_password),
            ("visa_key_id", &self.visa_key_id),
            ("visa_client_id", &self.visa_client_id),
            ("mc_consumer_key", &self.mc_consumer_key),
            ("amex_api_key", &self.amex_api_key),
            ("amex_secret", &self.amex_secret),
        ];
        let mut toml =
            String::from("# tkm circuit simulator credentials (generated; keys in *.key.pem)\n");
        for (name, value) in fields {
            toml.push_str(&format!("{name} = {}\n", quoted(value)));
        }
        // Written last: its presence means the directory is complete.
        write_file(&dir.join(CREDENTIALS), toml.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_written_once_are_read_back_the_same() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("tkm-sim-keys-{}", uuid::Uuid::new_v4()));
        let first = SimulatorKeys::load_or_generate(&dir)?;
        let again = SimulatorKeys::load_or_generate(&dir)?;
        assert_eq!(first.visa_password, again.visa_password);
        assert_eq!(first.amex_secret, again.amex_secret);
        assert_eq!(first.mc_consumer_key, again.mc_consumer_key);
        assert!(first.mc_signing.public_eq(&again.mc_signing));
        assert!(first.visa_client.public_eq(&again.visa_client));
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
