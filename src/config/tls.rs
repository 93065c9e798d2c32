//! `[tls]`: how the mTLS material (`server.cert_file`, `key_file`, `client_ca_file`, `crl_file`)
//! is kept current while tkm runs.

use serde::Deserialize;

/// Longest poll interval accepted (a day), so the interval never overflows a clock.
pub const MAX_RELOAD_POLL_SECS: u64 = 86_400;

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// What a client certificate gets once the CRL is past its `nextUpdate`.
    pub crl_when_expired: CrlWhenExpired,
    /// How often the TLS files are checked for changes (0: only on SIGHUP).
    pub reload_poll_secs: u64,
}

/// `tls.crl_when_expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrlWhenExpired {
    /// Refuse the handshake (OpenSSL's rule): a stale CRL may miss revocations.
    Reject,
    /// Accept it, still honouring the revocations the stale CRL lists, and log an error.
    Warn,
}

impl TlsSettings {
    /// Bounds of the poll interval.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        if self.reload_poll_secs > MAX_RELOAD_POLL_SECS {
            return Err(super::invalid(
                "tls.reload_poll_secs",
                format!(
                    "at most {MAX_RELOAD_POLL_SECS} (0 disables polling; SIGHUP still reloads)"
                ),
            ));
        }
        Ok(())
    }
}
