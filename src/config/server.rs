//! `[server]` and `[[clients]]`: listeners, TLS, limits, and client certificates → roles.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// mTLS API listener.
    pub bind: SocketAddr,
    /// Plain-HTTP ops listener (health, metrics, OpenAPI).
    pub ops_bind: SocketAddr,
    /// Base of absolute URLs tkm hands out.
    pub public_url: String,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Server private key (PEM).
    pub key_file: PathBuf,
    /// CA(s) whose client certificates are accepted (PEM).
    pub client_ca_file: PathBuf,
    /// Optional CRL (PEM) checked for client certificates.
    #[serde(default)]
    pub crl_file: Option<PathBuf>,
    /// Largest JSON body.
    pub json_limit_bytes: usize,
    /// Time a handler waits for an actor before answering 503.
    pub handler_timeout_ms: u64,
    /// Keep-alive of idle connections.
    pub keep_alive_secs: u64,
    /// Grace period for in-flight requests on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Concurrent connections per worker.
    pub max_connections: usize,
}

/// Client roles (`api.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The citizen app backend.
    Io,
    /// Card issuers.
    Issuer,
    /// Acquirers.
    Acquirer,
    /// Centro Stella services.
    Platform,
    /// Operators.
    Admin,
}

impl Role {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Io => "io",
            Role::Issuer => "issuer",
            Role::Acquirer => "acquirer",
            Role::Platform => "platform",
            Role::Admin => "admin",
        }
    }
}

/// One `[[clients]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Identity used in logs and audit columns.
    pub name: String,
    /// What the client may call.
    pub role: Role,
    /// SHA-256 fingerprint of the certificate (hex, `:` separators allowed).
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
    /// Subject DN (RFC 2253), matched together with `issuer`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Issuer DN (RFC 2253), matched together with `subject`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// ABI of an acquirer (required for role `acquirer`).
    #[serde(default)]
    pub abi: Option<String>,
    /// Value the `Ocp-Apim-Subscription-Key` header must carry, when set.
    #[serde(default)]
    pub subscription_key: Option<SecretString>,
}
