//! Everything one circuit client needs, resolved from configuration (live) or from the simulator's
//! generated keys: `Send`, so it crosses into the arbiter where the (`!Send`) client is built.
//! In `live` mode every credential is read and parsed at start-up ([`live_specs`]), so a wrong or
//! unreadable one stops tkm naming its configuration key before anything is served.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;
use secrecy::{ExposeSecret, SecretString};

use super::protocol::{self, fle, private_key_from_pem, public_key_from_pem};
use crate::config::{
    read_secret_file, BinSource, CircuitSettings, CircuitsMode, CircuitsSettings, ConfigError,
};
use crate::domain::Circuit;

/// TLS towards the circuit.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// Trust roots (system roots when `None`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The TLS files of a [`TlsSpec`], read and parsed.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Trusted besides the system roots.
    pub roots: Vec<X509>,
    /// Client certificate chain (leaf first) and the leaf's key.
    pub identity: Option<(X509, Vec<X509>, PKey<Private>)>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.as_ref().map(|_| "***"))
            .finish()
    }
}

impl TlsMaterial {
    /// Reads and parses `tls`'s files; errors name them by `key(…)` (`ca_file`,
    /// `client_cert_file`, `client_key_file`). A client key must match its certificate.
    pub fn load(tls: &TlsSpec, key: &dyn Fn(&str) -> String) -> Result<Self, ConfigError> {
        let certificates = |name: &str, path: &Path| -> Result<Vec<X509>, ConfigError> {
            let pem = read_file(key(name), path)?;
            match X509::stack_from_pem(&pem) {
                Ok(certs) if !certs.is_empty() => Ok(certs),
                _ => Err(invalid(key(name), "is not a PEM certificate")),
            }
        };
        let roots = match &tls.ca_file {
            Some(path) => certificates("ca_file", path)?,
            None => Vec::new(),
        };
        let identity = match &tls.client_cert {
            None => None,
            Some((cert, private)) => {
                let mut chain = certificates("client_cert_file", cert)?.into_iter();
                let leaf = chain
                    .next()
                    .ok_or_else(|| invalid(key("client_cert_file"), "has no certificate"))?;
                let pem = read_file(key("client_key_file"), private)?;
                let private = private_key_from_pem(&pem)
                    .map_err(|e| invalid(key("client_key_file"), e.to_string()))?;
                let matches = leaf
                    .public_key()
                    .is_ok_and(|public| public.public_eq(&private));
                if !matches {
                    return Err(invalid(
                        key("client_key_file"),
                        format!("is not the key of {}", key("client_cert_file")),
                    ));
                }
                Some((leaf, chain.collect(), private))
            }
        };
        Ok(TlsMaterial { roots, identity })
    }
}

/// Per-protocol credentials.
#[derive(Clone)]
pub enum Credentials {
    /// Basic + keyId + JWE.
    Visa {
        /// Basic user.
        user: String,
        /// Basic password.
        password: SecretString,
        /// `keyId` header and JWE `kid`.
        key_id: String,
        /// `clientId` in the request.
        client_id: String,
        /// Requests are encrypted to this key.
        circuit_public: PKey<Public>,
        /// Answers are encrypted to this key.
        own_private: PKey<Private>,
    },
    /// OAuth 1.0a + field-level encryption.
    Mastercard {
        /// OAuth consumer key.
        consumer_key: String,
        /// OAuth signing key.
        signing_key: PKey<Private>,
        /// Requests are encrypted to this key.
        circuit_public: PKey<Public>,
        /// Answers are encrypted to this key.
        own_private: PKey<Private>,
        /// Fingerprint of `own_private`'s public half (answers must name it).
        own_fingerprint: String,
    },
    /// MAC header.
    Amex {
        /// `x-amex-api-key` and MAC id.
        api_key: String,
        /// HMAC secret.
        secret: SecretString,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and secrets never reach a log line.
        let name = match self {
            Credentials::Visa { .. } => "Visa",
            Credentials::Mastercard { .. } => "Mastercard",
            Credentials::Amex { .. } => "Amex",
        };
        write!(f, "Credentials::{name}(***)")
    }
}

/// One circuit client's full specification.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// The circuit.
    pub circuit: Circuit,
    /// Base URL, no trailing slash.
    pub base_url: String,
    /// TLS.
    pub tls: TlsSpec,
    /// `tls`'s files, when already read and parsed (`live` mode, at start-up); the client reads
    /// them itself otherwise.
    pub tls_material: Option<TlsMaterial>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total call timeout.
    pub timeout: Duration,
    /// Credentials.
    pub credentials: Credentials,
    /// PANs per PAR call.
    pub batch_size: usize,
    /// BIN range source.
    pub bin_source: BinSource,
    /// File source: URL or path.
    pub bin_file: Option<String>,
    /// File source: expected SHA-256.
    pub bin_file_sha256: Option<String>,
    /// Mastercard BIN lookup token marker.
    pub token_flag: Option<(String, String)>,
    /// The longest wait a `429`'s `Retry-After` may ask for (`circuits.max_retry_after_secs`).
    pub max_retry_after: Duration,
}

fn read_file(key: String, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Invalid {
        key,
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

fn invalid(key: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

fn need<T>(value: &Option<T>, key: String) -> Result<&T, ConfigError> {
    value.as_ref().ok_or(ConfigError::Invalid {
        key,
        reason: "required in live mode".into(),
    })
}

/// A configured identifier (user, key id, consumer key…): present and not blank.
fn identifier(value: &Option<String>, key: String) -> Result<String, ConfigError> {
    let value = need(value, key.clone())?;
    if value.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(value.clone())
}

/// A secret file's content: readable and not empty.
fn secret(path: &Option<PathBuf>, key: String) -> Result<SecretString, ConfigError> {
    let secret = read_secret_file(&key, need(path, key.clone())?)?;
    if secret.expose_secret().is_empty() {
        return Err(invalid(key, "is empty"));
    }
    Ok(secret)
}

/// The live specs of every enabled circuit, every credential read and parsed now; `None` in
/// simulator mode. Called first thing at start-up.
pub fn live_specs(all: &CircuitsSettings) -> Result<Option<Vec<ClientSpec>>, ConfigError> {
    if all.mode != CircuitsMode::Live {
        return Ok(None);
    }
    Circuit::ALL
        .into_iter()
        .filter(|circuit| all.get(*circuit).enabled)
        .map(|circuit| live_spec(all, circuit))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Builds the live spec of `circuit` from configuration (keys read and parsed now).
pub fn live_spec(all: &CircuitsSettings, circuit: Circuit) -> Result<ClientSpec, ConfigError> {
    let s = all.get(circuit);
    let prefix = format!("circuits.{}", circuit.as_str().to_ascii_lowercase());
    let key = |k: &str| format!("{prefix}.{k}");
    let private = |k: &str, p: &Option<PathBuf>| -> Result<PKey<Private>, ConfigError> {
        let pem = read_file(key(k), need(p, key(k))?)?;
        private_key_from_pem(&pem).map_err(|e| ConfigError::Invalid {
            key: key(k),
            reason: e.to_string(),
        })
    };
    let public = |k: &str, p: &Option<PathBuf>| -> Result<PKey<Public>, ConfigError> {
        let pem = read_file(key(k), need(p, key(k))?)?;
        public_key_from_pem(&pem).map_err(|e| ConfigError::Invalid {
            key: key(k),
            reason: e.to_string(),
        })
    };
    let credentials = match circuit {
        Circuit::Visa => Credentials::Visa {
            user: identifier(&s.user, key("user"))?,
            password: secret(&s.password_file, key("password_file"))?,
            key_id: identifier(&s.key_id, key("key_id"))?,
            client_id: identifier(&s.client_id, key("client_id"))?,
            circuit_public: public("circuit_public_key_file", &s.circuit_public_key_file)?,
            own_private: private("private_key_file", &s.private_key_file)?,
        },
        Circuit::Mastercard => {
            let own_private = private("private_key_file", &s.private_key_file)?;
            let own_fingerprint = protocol::public_of(&own_private)
                .and_then(|p| fle::fingerprint(&p))
                .map_err(|e| ConfigError::Invalid {
                    key: key("private_key_file"),
                    reason: e.to_string(),
                })?;
            Credentials::Mastercard {
                consumer_key: identifier(&s.consumer_key, key("consumer_key"))?,
                signing_key: private("signing_key_file", &s.signing_key_file)?,
                circuit_public: public("circuit_public_key_file", &s.circuit_public_key_file)?,
                own_private,
                own_fingerprint,
            }
        }
        Circuit::Amex => Credentials::Amex {
            api_key: identifier(&s.api_key, key("api_key"))?,
            secret: secret(&s.client_secret_file, key("client_secret_file"))?,
        },
    };
    let client_cert = match (&s.client_cert_file, &s.client_key_file) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) if circuit == Circuit::Visa => {
            return Err(invalid(key("client_cert_file"), "required in live mode"))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                key("client_key_file"),
                "required with client_cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                key("client_cert_file"),
                "required with client_key_file",
            ))
        }
    };
    let tls = TlsSpec {
        ca_file: s.ca_file.clone(),
        client_cert,
    };
    let tls_material = TlsMaterial::load(&tls, &key)?;
    let mut spec = common(all, s, circuit, s.base_url.to_string(), tls, credentials);
    spec.tls_material = Some(tls_material);
    Ok(spec)
}

/// The parts every spec shares, from the circuit's settings.
pub fn common(
    all: &CircuitsSettings,
    s: &CircuitSettings,
    circuit: Circuit,
    base_url: String,
    tls: TlsSpec,
    credentials: Credentials,
) -> ClientSpec {
    ClientSpec {
        circuit,
        base_url: base_url.trim_end_matches('/').to_string(),
        tls,
        tls_material: None,
        connect_timeout: Duration::from_millis(all.connect_timeout_ms),
        timeout: Duration::from_millis(all.timeout_ms),
        credentials,
        batch_size: s.batch_size,
        bin_source: s.bin_source,
        bin_file: s.bin_file.clone(),
        bin_file_sha256: s.bin_file_sha256.clone(),
        token_flag: s.token_flag_field.clone().zip(s.token_flag_value.clone()),
        max_retry_after: Duration::from_secs(all.max_retry_after_secs),
    }
}

#[cfg(test)]
mod tests;
