//! The settings tree: embedded defaults → config file → `TKM__…` environment, validated at start-up.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod circuits;
mod components;
mod lists;
mod matching;
mod resolver;
mod secrets;
mod server;
mod stores;
mod tls;
pub use circuits::{replica_share, BinFileLocation};
pub use circuits::{BinSource, CircuitSettings, CircuitsMode, CircuitsSettings, SimulatorSettings};
pub use components::{
    CardSettings, ConsentSettings, OutboxSettings, RabbitSettings, TelemetrySettings,
};
pub use lists::{ListsSettings, StorageSettings, UploadsSettings};
pub use matching::{MatchingSettings, PeriodSetting};
pub use resolver::{BinRefreshSettings, ParResolverSettings};
pub use secrets::{normalise_fingerprint, read_secret_file, VaultKeyMaterial};
pub use server::{ClientSettings, Role, ServerSettings};
pub use stores::{DatabaseSettings, HashingSettings, PgpSettings, VaultKeySettings, VaultSettings};
pub use tls::{CrlWhenExpired, TlsSettings};

const DEFAULTS: &str = include_str!("../config/default.toml");

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layers could not be read or merged.
    #[error("cannot load configuration: {0}")]
    Load(String),
    /// A key has a value of the wrong type or shape.
    #[error("invalid configuration at `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Every setting of tkm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A development installation (`config/dev.toml`, `scripts/run.sh`): the only place the
    /// built-in circuit simulator may answer for the circuits.
    #[serde(default)]
    pub dev: bool,
    /// Listeners, TLS and limits.
    pub server: ServerSettings,
    /// Client certificates → identities and roles.
    pub clients: Vec<ClientSettings>,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// The PAN vault key ring.
    pub vault: VaultSettings,
    /// The HPAN salt.
    pub hashing: HashingSettings,
    /// tkm's OpenPGP key (card events, `pgpPan`, acquirer files).
    pub pgp: PgpSettings,
    /// The consent registry.
    pub consent: ConsentSettings,
    /// The card registry.
    pub cards: CardSettings,
    /// RabbitMQ: topology names and consumer/relay tuning.
    pub rabbitmq: RabbitSettings,
    /// The outbox relay's retries of failing rows.
    pub outbox: OutboxSettings,
    /// Acceptance of new token BIN range sets.
    pub bin_refresh: BinRefreshSettings,
    /// The PAR resolver.
    pub par_resolver: ParResolverSettings,
    /// The circuits: simulator or live, endpoints, rates, credentials.
    pub circuits: CircuitsSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// Reloading of the mTLS material and the CRL's expiry.
    pub tls: TlsSettings,
    /// Where files live.
    pub storage: StorageSettings,
    /// The published lists.
    pub lists: ListsSettings,
    /// Acquirers' uploads.
    pub uploads: UploadsSettings,
    /// Transaction matching.
    pub matching: MatchingSettings,
}

impl Settings {
    /// Loads defaults, then `file` (or `TKM_CONFIG`), then `TKM__…` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let settings = Self::from_layers(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Loads and merges the layers without the cross-field validation (tests adjust, then
    /// call [`Settings::validate`]).
    pub fn from_layers(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env_file = std::env::var_os("TKM_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(f) = &file {
            if !f.exists() {
                return Err(ConfigError::Load(format!(
                    "configuration file {} does not exist",
                    f.display()
                )));
            }
            builder = builder.add_source(config::File::from(f.as_path()));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("TKM")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        serde_path_to_error::deserialize(merged)
            .map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))
    }

    /// Cross-field rules and the readability of every referenced file; fails naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // First: whatever else is wrong, a build without the simulator cannot run this at all.
        if self.circuits.mode == CircuitsMode::Simulator && !cfg!(feature = "simulator") {
            return Err(invalid("circuits.mode", CircuitsMode::SIMULATOR_NOT_BUILT));
        }
        let s = &self.server;
        for (key, path) in [
            ("server.cert_file", &s.cert_file),
            ("server.key_file", &s.key_file),
            ("server.client_ca_file", &s.client_ca_file),
        ] {
            readable(key, path)?;
        }
        if let Some(crl) = &s.crl_file {
            readable("server.crl_file", crl)?;
        }
        self.tls.validate()?;
        if !(s.public_url.starts_with("https://") || s.public_url.starts_with("http://")) {
            return Err(invalid(
                "server.public_url",
                "must be an absolute http(s) URL",
            ));
        }
        if s.json_limit_bytes == 0 || s.handler_timeout_ms == 0 {
            return Err(invalid("server", "limits and timeouts must be positive"));
        }
        self.validate_clients()?;
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if let Some(p) = &self.database.password_file {
            readable("database.password_file", p)?;
        }
        self.validate_vault()?;
        self.bin_refresh.validate()?;
        self.par_resolver.validate()?;
        self.lists.validate()?;
        self.uploads.validate()?;
        self.matching.validate()?;
        circuits::validate(&self.circuits)?;
        if self.circuits.mode == CircuitsMode::Simulator && !self.dev {
            return Err(invalid(
                "circuits.mode",
                "\"simulator\" is for development only: set circuits.mode = \"live\" with the \
                 circuits' credentials, or dev = true on a development machine (config/dev.toml)",
            ));
        }
        if self.hashing.salt.is_none() {
            match &self.hashing.salt_file {
                Some(p) => readable("hashing.salt_file", p)?,
                None => return Err(invalid("hashing", "set salt_file or salt")),
            }
        }
        // An empty salt would publish plain SHA-256 of card numbers: refuse to start.
        self.salt()?;
        readable("pgp.private_key_file", &self.pgp.private_key_file)?;
        readable("pgp.public_key_file", &self.pgp.public_key_file)?;
        if let Some(p) = &self.pgp.passphrase_file {
            readable("pgp.passphrase_file", p)?;
        }
        let r = &self.rabbitmq;
        if r.prefetch == 0
            || r.batch_size == 0
            || r.relay_batch == 0
            || r.max_message_bytes == 0
            || r.max_transaction_message_bytes == 0
        {
            return Err(invalid(
                "rabbitmq",
                "prefetch, batch_size, relay_batch, max_message_bytes and max_transaction_message_bytes must be positive",
            ));
        }
        let o = &self.outbox;
        if o.max_attempts == 0 || o.retry_base_ms == 0 || o.retry_max_ms < o.retry_base_ms {
            return Err(invalid(
                "outbox",
                "max_attempts and retry_base_ms must be positive, retry_max_ms ≥ retry_base_ms",
            ));
        }
        if r.dedup_retention_hours == 0 || r.dead_letter_retention_days == 0 {
            return Err(invalid(
                "rabbitmq",
                "dedup_retention_hours and dead_letter_retention_days must be positive",
            ));
        }
        if self.cards.mailbox_capacity == 0 {
            return Err(invalid("cards.mailbox_capacity", "must be positive"));
        }
        if self.consent.cache_capacity == 0 || self.consent.mailbox_capacity == 0 {
            return Err(invalid("consent", "capacities must be positive"));
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let key = format!("clients[{i}]");
            if c.name.trim().is_empty() || !names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    "must be non-empty and unique",
                ));
            }
            let by_fp = c.fingerprint_sha256.is_some();
            let by_dn = c.subject.is_some() && c.issuer.is_some();
            if !by_fp && !by_dn {
                return Err(invalid(
                    key,
                    "match by fingerprint_sha256, or by subject and issuer (never by CN alone)",
                ));
            }
            if c.subject.is_some() != c.issuer.is_some() {
                return Err(invalid(key, "subject and issuer go together"));
            }
            if let Some(fp) = &c.fingerprint_sha256 {
                if normalise_fingerprint(fp).is_none() {
                    return Err(invalid(
                        format!("{key}.fingerprint_sha256"),
                        "must be 64 hex characters (colons allowed)",
                    ));
                }
            }
            match (&c.role, &c.abi) {
                (Role::Acquirer, None) => {
                    return Err(invalid(format!("{key}.abi"), "required for role acquirer"))
                }
                (_, Some(abi)) if crate::domain::Abi::parse(abi).is_err() => {
                    return Err(invalid(format!("{key}.abi"), "must be 5 alphanumerics"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_vault(&self) -> Result<(), ConfigError> {
        let v = &self.vault;
        if !v.keys.iter().any(|k| k.id == v.active_key) {
            return Err(invalid(
                "vault.active_key",
                "must be the id of a key in vault.keys",
            ));
        }
        for (i, k) in v.keys.iter().enumerate() {
            let key = format!("vault.keys[{i}]");
            match (&k.key_file, &k.key_env) {
                (Some(p), None) => readable(&format!("{key}.key_file"), p)?,
                (None, Some(var)) => {
                    if std::env::var_os(var).is_none() {
                        return Err(invalid(
                            format!("{key}.key_env"),
                            format!("{var} is not set"),
                        ));
                    }
                }
                _ => return Err(invalid(key, "set exactly one of key_file or key_env")),
            }
        }
        Ok(())
    }
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    fs::metadata(path)
        .map(|_| ())
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a config layer whose file paths all point at readable files of the crate.
    fn layer(extra: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("tkm-config-{}.toml", uuid::Uuid::new_v4()));
        let readable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let base = format!(
            "[server]\ncert_file = \"{readable}\"\nkey_file = \"{readable}\"\nclient_ca_file = \"{readable}\"\n\
             [hashing]\nsalt_file = \"{readable}\"\n\
             [pgp]\nprivate_key_file = \"{readable}\"\npublic_key_file = \"{readable}\"\npassphrase_file = \"{readable}\"\n[vault]\nkeys = [{{ id = \"dev1\", key_file = \"{readable}\" }}]\n"
        );
        // A build without the simulator refuses the default simulator mode: live, no circuit.
        let mode = if cfg!(feature = "simulator") {
            ""
        } else {
            "circuits.mode = \"live\"\ncircuits.visa.enabled = false\n\
             circuits.mastercard.enabled = false\ncircuits.amex.enabled = false\n"
        };
        std::fs::write(&path, format!("dev = true\n{mode}{base}{extra}")).unwrap();
        path
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            ConfigError::Load(m) => panic!("expected an invalid key, got {m}"),
        }
    }

    #[test]
    fn defaults_with_readable_files_are_valid() {
        let s = Settings::load(Some(&layer(""))).unwrap();
        assert_eq!(s.server.bind.port(), 8443);
        assert_eq!(s.server.ops_bind.port(), 9090);
        assert_eq!(s.server.json_limit_bytes, 65536);
        assert!(s.clients.is_empty(), "no client is mapped by default");
    }

    #[test]
    fn the_simulator_answers_only_on_a_development_installation() {
        let mut s = Settings::from_layers(Some(&layer(""))).unwrap();
        s.circuits.mode = CircuitsMode::Simulator;
        s.dev = false;
        assert_eq!(key_of(s.validate().unwrap_err()), "circuits.mode");
        s.dev = true;
        #[cfg(feature = "simulator")]
        s.validate().unwrap();
        // Without the simulator compiled in, not even a development installation may ask for it.
        #[cfg(not(feature = "simulator"))]
        {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("circuits.mode") && e.contains("feature"), "{e}");
        }
    }

    #[test]
    fn an_empty_salt_refuses_start_up() {
        let mut s = Settings::from_layers(Some(&layer(""))).unwrap();
        let empty = std::env::temp_dir().join(format!("tkm-salt-{}", uuid::Uuid::new_v4()));
        std::fs::write(&empty, "\n").unwrap();
        s.hashing.salt_file = Some(empty);
        assert_eq!(key_of(s.validate().unwrap_err()), "hashing.salt_file");
        s.hashing.salt = Some(secrecy::SecretString::from(String::new()));
        assert_eq!(key_of(s.validate().unwrap_err()), "hashing.salt");
    }

    #[test]
    fn a_missing_secret_file_names_its_key() {
        let mut s = Settings::from_layers(Some(&layer(""))).unwrap();
        s.hashing.salt_file = Some(PathBuf::from("/nonexistent/salt"));
        assert_eq!(key_of(s.validate().unwrap_err()), "hashing.salt_file");
    }

    #[test]
    fn an_unknown_or_mistyped_key_is_named() {
        let e = Settings::load(Some(&layer("[database]\npool_size = \"many\"\n"))).unwrap_err();
        assert_eq!(key_of(e), "database.pool_size");
        let e = Settings::load(Some(&layer("[consent]\ncache_size = 3\n"))).unwrap_err();
        assert!(key_of(e).starts_with("consent"));
    }

    #[test]
    fn clients_are_never_matched_by_subject_alone_and_acquirers_need_an_abi() {
        let e = Settings::load(Some(&layer(
            "[[clients]]\nname = \"a\"\nrole = \"io\"\nsubject = \"CN=a\"\n",
        )))
        .unwrap_err();
        assert_eq!(key_of(e), "clients[0]");
        let e = Settings::load(Some(&layer(
            "[[clients]]\nname = \"b\"\nrole = \"acquirer\"\nfingerprint_sha256 = \"{}\"\n"
                .replace("{}", &"ab".repeat(32))
                .as_str(),
        )))
        .unwrap_err();
        assert_eq!(key_of(e), "clients[0].abi");
    }

    #[test]
    fn the_active_vault_key_must_be_in_the_ring() {
        let mut s = Settings::from_layers(Some(&layer(""))).unwrap();
        s.vault.active_key = "nope".into();
        assert_eq!(key_of(s.validate().unwrap_err()), "vault.active_key");
    }

    #[test]
    fn secret_files_lose_one_trailing_newline_only() {
        use secrecy::ExposeSecret;
        let p = std::env::temp_dir().join(format!("tkm-salt-{}", uuid::Uuid::new_v4()));
        std::fs::write(&p, "salt \n\n").unwrap();
        assert_eq!(
            read_secret_file("k", &p).unwrap().expose_secret(),
            "salt \n"
        );
    }

    #[test]
    fn fingerprints_accept_colons_and_any_case() {
        let fp = "AB:".repeat(31) + "AB";
        assert_eq!(normalise_fingerprint(&fp), Some("ab".repeat(32)));
        assert_eq!(normalise_fingerprint("abc"), None);
    }

    #[test]
    fn tls_reload_defaults_and_bounds() {
        let s = Settings::load(Some(&layer(""))).unwrap();
        assert_eq!(s.tls.crl_when_expired, CrlWhenExpired::Reject);
        assert_eq!(s.tls.reload_poll_secs, 30);
        let s = Settings::load(Some(&layer(
            "[tls]\ncrl_when_expired = \"warn\"\nreload_poll_secs = 0\n",
        )))
        .unwrap();
        assert_eq!(s.tls.crl_when_expired, CrlWhenExpired::Warn);
        let e = Settings::load(Some(&layer("[tls]\nreload_poll_secs = 86401\n"))).unwrap_err();
        assert_eq!(key_of(e), "tls.reload_poll_secs");
        let e = Settings::load(Some(&layer("[tls]\ncrl_when_expired = \"ignore\"\n"))).unwrap_err();
        assert_eq!(key_of(e), "tls.crl_when_expired");
    }
}
