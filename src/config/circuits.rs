//! `[circuits]`: simulator or live mode, and per circuit its endpoint, rate, BIN source and
//! credentials (secrets and keys as files).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::{invalid, readable, ConfigError};
use crate::domain::Circuit;

/// Who answers tkm's circuit calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CircuitsMode {
    /// The built-in simulator, started in-process with generated keys (never in production).
    Simulator,
    /// The real circuits, with the configured credentials.
    Live,
}

impl CircuitsMode {
    /// `simulator` or `live`, as configured and as `/admin/status` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitsMode::Simulator => "simulator",
            CircuitsMode::Live => "live",
        }
    }

    /// Why a build without the cargo feature `simulator` (the production build) refuses
    /// `circuits.mode = "simulator"`.
    pub const SIMULATOR_NOT_BUILT: &'static str =
        "\"simulator\" needs the circuit simulator, which this build leaves out (cargo feature \
         `simulator`): set circuits.mode = \"live\", or build tkm with `--features simulator` \
         for development (scripts/run.sh does)";
}

/// Where a circuit's token BIN ranges come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinSource {
    /// The circuit's API (Visa BIN attribute service, Mastercard BIN lookup).
    Api,
    /// A CSV of `min;max[;…]` rows at an HTTPS URL or a path (`bin_file`).
    File,
}

/// Where a `file` BIN source is read from (`bin_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinFileLocation {
    /// Downloaded (`https://…`; `live` mode refuses any other scheme).
    Url(Url),
    /// A file the operator placed.
    Path(PathBuf),
}

impl BinFileLocation {
    /// A value with a scheme (`https://…`) is a URL, anything else a path.
    pub fn parse(value: &str) -> Result<Self, url::ParseError> {
        match Url::parse(value) {
            Ok(url) => Ok(BinFileLocation::Url(url)),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                Ok(BinFileLocation::Path(PathBuf::from(value)))
            }
            Err(e) => Err(e),
        }
    }
}

/// `[circuits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitsSettings {
    /// `simulator` (default for local runs) or `live`.
    pub mode: CircuitsMode,
    /// TCP+TLS connect timeout of circuit calls.
    pub connect_timeout_ms: u64,
    /// Total timeout of one circuit call.
    pub timeout_ms: u64,
    /// The longest pause a `429`'s `Retry-After` (or the backoff after `429`s without one) may
    /// impose on a circuit.
    pub max_retry_after_secs: u64,
    /// How many replicas share each circuit's contract rate: each takes `rate_per_second /
    /// replicas` and `burst / replicas` (rounded down, at least 1). PAR cycles already run on one
    /// replica at a time (an elected job); the split also holds the contract when cycles
    /// overlap (a replica that stalled past its heartbeats and resumed).
    #[serde(default = "one")]
    pub replicas: u32,
    /// The in-process simulator (simulator mode only).
    pub simulator: SimulatorSettings,
    /// VISA.
    pub visa: CircuitSettings,
    /// MASTERCARD.
    pub mastercard: CircuitSettings,
    /// AMEX.
    pub amex: CircuitSettings,
}

impl CircuitsSettings {
    /// One circuit's settings.
    pub fn get(&self, circuit: Circuit) -> &CircuitSettings {
        match circuit {
            Circuit::Visa => &self.visa,
            Circuit::Mastercard => &self.mastercard,
            Circuit::Amex => &self.amex,
        }
    }
}

/// `[circuits.simulator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Listener of the simulator (TLS).
    pub bind: SocketAddr,
    /// Its server certificate (PEM).
    pub cert_file: PathBuf,
    /// Its server key (PEM).
    pub key_file: PathBuf,
    /// CA of the client certificates it accepts for Visa (PEM); also the CA tkm trusts it with.
    pub ca_file: PathBuf,
    /// tkm's client certificate towards the simulator's Visa endpoints.
    pub client_cert_file: PathBuf,
    /// Its key.
    pub client_key_file: PathBuf,
    /// Share (0–1) of Visa/Amex PANs with no PAR until a token exists.
    pub no_par_share: f64,
    /// Number of Visa token BIN ranges served.
    pub visa_ranges: usize,
    /// Number of Mastercard and Amex token BIN ranges served.
    pub other_ranges: usize,
    /// Calls per second per circuit above which the simulator answers 429 (0 = none).
    pub contract_rate: u32,
    /// Where the simulator's generated keys are kept across runs (fresh keys each start when
    /// absent).
    #[serde(default)]
    pub keys_dir: Option<PathBuf>,
    /// Use the simulator another process runs at this URL (`https://host:port`, with the same
    /// `keys_dir`) instead of starting one: replicas on one machine share one simulator.
    #[serde(default)]
    pub attach_url: Option<Url>,
}

/// `[circuits.visa]`, `[circuits.mastercard]`, `[circuits.amex]`. Credential keys only apply to
/// the circuit whose protocol uses them; `live` mode checks the ones it needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitSettings {
    /// A disabled circuit is never called (its ranges and lookups stay as they are).
    pub enabled: bool,
    /// Base URL of the circuit's API (`live` mode: `https://`).
    pub base_url: Url,
    /// Contract rate, calls (PANs) per second.
    pub rate_per_second: u32,
    /// Calls allowed at once above the rate.
    pub burst: u32,
    /// The share of the rate token checks may use while card lookups wait (0..=1; they take
    /// what card lookups leave unused).
    #[serde(default = "default_token_share")]
    pub token_share: f64,
    /// PANs per PAR call (Amex takes batches; others 1).
    pub batch_size: usize,
    /// `api` or `file`.
    pub bin_source: BinSource,
    /// URL (`https://…`) or path of the BIN range CSV for the `file` source.
    #[serde(default)]
    pub bin_file: Option<String>,
    /// Expected SHA-256 (hex) of that file.
    #[serde(default)]
    pub bin_file_sha256: Option<String>,
    /// Daily refresh time, `HH:MM` in Europe/Rome.
    pub bin_refresh_at: String,
    /// Mastercard BIN lookup: the field whose value marks a token range.
    #[serde(default)]
    pub token_flag_field: Option<String>,
    /// … and that value.
    #[serde(default)]
    pub token_flag_value: Option<String>,
    /// CA(s) tkm trusts the circuit's server with (system roots when absent).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (Visa mutual TLS).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its key.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Visa: Basic user.
    #[serde(default)]
    pub user: Option<String>,
    /// Visa: Basic password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Visa: `keyId` header and JWE `kid`.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Visa: `clientId` inside the request.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Visa, Mastercard: the circuit's public key or certificate that requests are encrypted to.
    #[serde(default)]
    pub circuit_public_key_file: Option<PathBuf>,
    /// Visa, Mastercard: tkm's private key that answers are encrypted to.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Mastercard: OAuth consumer key.
    #[serde(default)]
    pub consumer_key: Option<String>,
    /// Mastercard: OAuth signing key (PEM).
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Amex: `x-amex-api-key` and MAC id.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Amex: the MAC secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
}

impl CircuitSettings {
    /// The daily refresh time.
    pub fn refresh_time(&self) -> Option<chrono::NaiveTime> {
        chrono::NaiveTime::parse_from_str(&self.bin_refresh_at, "%H:%M").ok()
    }
}

/// The largest `circuits.max_retry_after_secs`: a day.
pub const MAX_RETRY_AFTER_SECS: u64 = 24 * 3600;

fn one() -> u32 {
    1
}

/// A circuit's rate and burst for one of `replicas` replicas: an equal share, rounded down so
/// that together they never exceed the contract, at least 1.
pub fn replica_share(rate: u32, burst: u32, replicas: u32) -> (u32, u32) {
    let n = replicas.max(1);
    ((rate / n).max(1), (burst / n).max(1))
}

fn default_token_share() -> f64 {
    0.2
}

/// Checks `[circuits]`; `live` mode needs every credential of the enabled circuits.
pub fn validate(c: &CircuitsSettings) -> Result<(), ConfigError> {
    if c.timeout_ms == 0 || c.connect_timeout_ms == 0 {
        return Err(invalid("circuits.timeout_ms", "timeouts must be positive"));
    }
    if !(1..=MAX_RETRY_AFTER_SECS).contains(&c.max_retry_after_secs) {
        return Err(invalid(
            "circuits.max_retry_after_secs",
            "must be 1 to 86400 (a day)",
        ));
    }
    if !(0.0..=1.0).contains(&c.simulator.no_par_share) {
        return Err(invalid(
            "circuits.simulator.no_par_share",
            "must be within 0..1",
        ));
    }
    if c.replicas == 0 {
        return Err(invalid("circuits.replicas", "must be at least 1"));
    }
    if c.simulator
        .attach_url
        .as_ref()
        .is_some_and(|u| u.scheme() != "https")
    {
        return Err(invalid(
            "circuits.simulator.attach_url",
            "must be an https:// URL (the simulator speaks TLS)",
        ));
    }
    for circuit in Circuit::ALL {
        let s = c.get(circuit);
        let key = |k: &str| format!("circuits.{}.{k}", circuit.as_str().to_ascii_lowercase());
        if s.rate_per_second == 0 {
            return Err(invalid(key("rate_per_second"), "must be at least 1"));
        }
        if s.rate_per_second < c.replicas {
            return Err(invalid(
                key("rate_per_second"),
                "must be at least circuits.replicas (each replica takes an equal share)",
            ));
        }
        if !(0.0..=1.0).contains(&s.token_share) {
            return Err(invalid(key("token_share"), "must be within 0..1"));
        }
        if s.batch_size == 0 || (circuit != Circuit::Amex && s.batch_size != 1) {
            return Err(invalid(
                key("batch_size"),
                "must be 1 (only AMEX takes batches)",
            ));
        }
        if s.refresh_time().is_none() {
            return Err(invalid(key("bin_refresh_at"), "must be HH:MM"));
        }
        if s.bin_source == BinSource::Api && circuit == Circuit::Amex {
            return Err(invalid(key("bin_source"), "AMEX has only the file source"));
        }
        if c.mode == CircuitsMode::Simulator || !s.enabled {
            continue;
        }
        let url = &s.base_url;
        if url.scheme() != "https" || url.host_str().is_none() {
            return Err(invalid(key("base_url"), "must be an https:// URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(key("base_url"), "must have no query or fragment"));
        }
        if s.bin_source == BinSource::File && s.bin_file.is_none() {
            return Err(invalid(key("bin_file"), "required for the file source"));
        }
        // A path is a file the operator placed; a URL must be authenticated and private.
        if let Some(file) = &s.bin_file {
            match BinFileLocation::parse(file) {
                Ok(BinFileLocation::Path(_)) => {}
                Ok(BinFileLocation::Url(u)) if u.scheme() == "https" && u.host_str().is_some() => {}
                Ok(BinFileLocation::Url(_)) => {
                    return Err(invalid(
                        key("bin_file"),
                        "must be an https:// URL or a path",
                    ))
                }
                Err(e) => return Err(invalid(key("bin_file"), format!("bad URL: {e}"))),
            }
        }
        let required: &[(&str, bool)] = match circuit {
            Circuit::Visa => &[
                ("user", s.user.is_some()),
                ("key_id", s.key_id.is_some()),
                ("client_id", s.client_id.is_some()),
            ],
            Circuit::Mastercard => &[("consumer_key", s.consumer_key.is_some())],
            Circuit::Amex => &[("api_key", s.api_key.is_some())],
        };
        for (name, present) in required {
            if !present {
                return Err(invalid(key(name), "required in live mode"));
            }
        }
        let files: Vec<(&str, &Option<PathBuf>)> = match circuit {
            Circuit::Visa => vec![
                ("password_file", &s.password_file),
                ("client_cert_file", &s.client_cert_file),
                ("client_key_file", &s.client_key_file),
                ("circuit_public_key_file", &s.circuit_public_key_file),
                ("private_key_file", &s.private_key_file),
            ],
            Circuit::Mastercard => vec![
                ("signing_key_file", &s.signing_key_file),
                ("circuit_public_key_file", &s.circuit_public_key_file),
                ("private_key_file", &s.private_key_file),
            ],
            Circuit::Amex => vec![("client_secret_file", &s.client_secret_file)],
        };
        for (name, path) in files {
            match path {
                Some(p) => readable(&key(name), p)?,
                None => return Err(invalid(key(name), "required in live mode")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "circuits_tests.rs"]
mod tests;
