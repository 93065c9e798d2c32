//! AMEX: batched PAR lookup signed with the `Authorization: MAC` header; BIN ranges by file.

use futures_util::future::LocalBoxFuture;
use secrecy::ExposeSecret;
use serde::Deserialize;
use url::Url;

use super::http::{json, nonce, now_ms, CallKind, Transport};
use super::protocol::amex_mac::{self, MacInput};
use super::spec::{ClientSpec, Credentials};
use super::{outcome_of, Account, CallError, CircuitClient, ParOutcome, RawBinRange};
use crate::domain::Circuit;

const PATH: &str = "/payments/digital/v2/product_account_reference";

/// The AMEX client.
pub struct AmexClient {
    spec: ClientSpec,
    http: Transport,
    host: String,
    port: u16,
}

#[derive(Deserialize)]
struct Entry {
    input: String,
    #[serde(default)]
    par: Option<String>,
    #[serde(default)]
    success: bool,
}

/// Host (lower case) and port of an `https://host[:port]/…` base URL, as the MAC covers them.
fn host_port(base_url: &str) -> Result<(String, u16), CallError> {
    let url = Url::parse(base_url).map_err(|_| CallError::Transport("AMEX base URL".into()))?;
    if url.scheme() != "https" {
        return Err(CallError::Transport("AMEX base URL must be https".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| CallError::Transport("AMEX base URL host".into()))?;
    Ok((host.to_owned(), url.port_or_known_default().unwrap_or(443)))
}

impl AmexClient {
    /// A client for `spec` (Amex credentials required).
    pub fn new(spec: ClientSpec, http: Transport) -> Result<Self, CallError> {
        if !matches!(spec.credentials, Credentials::Amex { .. }) {
            return Err(CallError::Transport(
                "AMEX client needs AMEX credentials".into(),
            ));
        }
        let (host, port) = host_port(&spec.base_url)?;
        Ok(AmexClient {
            spec,
            http,
            host,
            port,
        })
    }

    async fn lookup(&self, accounts: &[Account]) -> Result<Vec<ParOutcome>, CallError> {
        let Credentials::Amex { api_key, secret } = &self.spec.credentials else {
            return Err(CallError::Transport("AMEX credentials".into()));
        };
        let numbers: Vec<&str> = accounts.iter().map(Account::expose).collect();
        let body = zeroize::Zeroizing::new(
            serde_json::to_vec(&numbers).map_err(|_| CallError::Malformed("request".into()))?,
        );
        let nonce = nonce()?;
        let input = MacInput {
            ts: now_ms(),
            nonce: &nonce,
            method: "POST",
            path: PATH,
            host: &self.host,
            port: self.port,
        };
        let authorization = amex_mac::authorization_header(
            api_key,
            secret.expose_secret().as_bytes(),
            &input,
            &body,
        )
        .map_err(|e| CallError::Transport(format!("MAC: {e}")))?;
        let headers = [
            ("x-amex-api-key", api_key.clone()),
            ("x-amex-request-id", uuid::Uuid::new_v4().to_string()),
            ("authorization", authorization),
        ];
        let url = format!("{}{PATH}", self.spec.base_url);
        let reply = self
            .http
            .post(CallKind::Par, &url, &headers, body.to_vec())
            .await?;
        let entries: Vec<Entry> = json(&reply.body, "AMEX answer")?;
        // Answers are matched by their `input`, not by position.
        accounts
            .iter()
            .map(|account| {
                let entry = entries
                    .iter()
                    .find(|e| e.input == account.expose())
                    .ok_or_else(|| CallError::Malformed("AMEX answer misses an input".into()))?;
                // `"success": false` (no `par`) is Amex's "no PAR yet".
                let par = entry.par.as_deref().filter(|_| entry.success);
                outcome_of(par, "AMEX par")
            })
            .collect()
    }
}

impl CircuitClient for AmexClient {
    fn circuit(&self) -> Circuit {
        Circuit::Amex
    }

    fn max_batch(&self) -> usize {
        self.spec.batch_size.max(1)
    }

    fn lookup_pars<'a>(
        &'a self,
        accounts: &'a [Account],
    ) -> LocalBoxFuture<'a, Result<Vec<ParOutcome>, CallError>> {
        Box::pin(self.lookup(accounts))
    }

    fn fetch_bin_ranges(&self) -> LocalBoxFuture<'_, Result<Vec<RawBinRange>, CallError>> {
        Box::pin(super::bin_file::fetch(&self.spec, &self.http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_base_urls() -> Result<(), CallError> {
        assert_eq!(
            host_port("https://Api.Amex.com")?,
            ("api.amex.com".into(), 443)
        );
        assert_eq!(
            host_port("https://127.0.0.1:8543/x")?,
            ("127.0.0.1".into(), 8543)
        );
        assert_eq!(
            host_port("https://API.amex.com:443/base/")?,
            ("api.amex.com".into(), 443)
        );
        assert!(host_port("http://x").is_err());
        assert!(host_port("https://").is_err());
        assert!(host_port("api.amex.com:443").is_err());
        Ok(())
    }
}
