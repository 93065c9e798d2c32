//! VISA: PAR inquiry (mutual TLS, Basic, `keyId`, JWE both ways) and the BIN attribute service.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::http::{json, now_ms, CallKind, Transport};
use super::protocol::jwe;
use super::spec::{ClientSpec, Credentials};
use super::{
    one_at_a_time, outcome_of, Account, CallError, CircuitClient, ParOutcome, RawBinRange,
};
use crate::domain::Circuit;

/// Rows asked per BIN page (the service's maximum).
const BIN_PAGE: usize = 500;
/// A BIN listing longer than this many pages is refused (a circuit looping on us).
const MAX_BIN_PAGES: usize = 1000;

/// The VISA client.
pub struct VisaClient {
    spec: ClientSpec,
    http: Transport,
}

#[derive(Deserialize)]
struct EncData {
    #[serde(rename = "encData")]
    enc_data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParAnswer {
    #[serde(default)]
    payment_account_reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinPage {
    response_status: BinStatus,
    #[serde(default)]
    response_data: Vec<BinRow>,
    #[serde(default)]
    are_next_offset_records_available: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinStatus {
    status_code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinRow {
    bin_range_min_num: String,
    bin_range_max_num: String,
    #[serde(default)]
    bin_range_payment_account_type: Option<String>,
    #[serde(default)]
    issuer_bin: Option<String>,
    #[serde(default)]
    issuer_name: Option<String>,
}

impl VisaClient {
    /// A client for `spec` (Visa credentials required).
    pub fn new(spec: ClientSpec, http: Transport) -> Result<Self, CallError> {
        match spec.credentials {
            Credentials::Visa { .. } => Ok(VisaClient { spec, http }),
            _ => Err(CallError::Transport(
                "VISA client needs VISA credentials".into(),
            )),
        }
    }

    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        let Credentials::Visa {
            user,
            password,
            key_id,
            ..
        } = &self.spec.credentials
        else {
            return Vec::new();
        };
        let basic = STANDARD.encode(format!("{user}:{}", password.expose_secret()));
        vec![
            ("authorization", format!("Basic {basic}")),
            ("keyId", key_id.clone()),
        ]
    }

    async fn lookup_one(&self, account: &Account) -> Result<ParOutcome, CallError> {
        let Credentials::Visa {
            key_id,
            client_id,
            circuit_public,
            own_private,
            ..
        } = &self.spec.credentials
        else {
            return Err(CallError::Transport("VISA credentials".into()));
        };
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&json!({
                "clientId": client_id,
                "correlatnId": uuid::Uuid::new_v4().to_string(),
                "primaryAccount": account.expose(),
            }))
            .map_err(|_| CallError::Malformed("request".into()))?,
        );
        let enc = jwe::encrypt(&plain, circuit_public, key_id, now_ms())
            .map_err(|e| CallError::Transport(format!("JWE: {e}")))?;
        let body = serde_json::to_vec(&json!({ "encData": enc }))
            .map_err(|_| CallError::Malformed("request".into()))?;
        let url = format!("{}/par/v1/inquiry", self.spec.base_url);
        let reply = self
            .http
            .post(CallKind::Par, &url, &self.auth_headers(), body)
            .await?;
        let wrapper: EncData = json(&reply.body, "VISA answer")?;
        let (_, plain) = jwe::decrypt(&wrapper.enc_data, own_private)
            .map_err(|e| CallError::Malformed(format!("VISA answer JWE: {e}")))?;
        let answer: ParAnswer = json(&plain, "VISA decrypted answer")?;
        outcome_of(
            answer.payment_account_reference.as_deref(),
            "VISA paymentAccountReference",
        )
    }

    async fn bins(&self) -> Result<Vec<RawBinRange>, CallError> {
        let url = format!("{}/v1/binRangeDetails", self.spec.base_url);
        let mut index = 0usize;
        let mut ranges = Vec::new();
        for _ in 0..MAX_BIN_PAGES {
            let body = serde_json::to_vec(&json!({
                "requestHeader": {
                    "requestTS": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    "requestMessageID": uuid::Uuid::new_v4().to_string(),
                },
                "requestData": {
                    "binRangeSearchIndex": index.to_string(),
                    "binRangeCount": BIN_PAGE.to_string(),
                    "paymentAccountType": "T",
                },
            }))
            .map_err(|_| CallError::Malformed("request".into()))?;
            let reply = self
                .http
                .post(CallKind::Bins, &url, &self.auth_headers(), body)
                .await?;
            let page: BinPage = json(&reply.body, "VISA BIN page")?;
            if page.response_status.status_code != "CDI000" {
                return Err(CallError::Refused(format!(
                    "VISA BIN status {}",
                    page.response_status.status_code
                )));
            }
            let received = page.response_data.len();
            ranges.extend(
                page.response_data
                    .into_iter()
                    .filter(|row| row.bin_range_payment_account_type.as_deref() == Some("T"))
                    .map(|row| RawBinRange {
                        min: row.bin_range_min_num,
                        max: row.bin_range_max_num,
                        issuer_bin: row.issuer_bin,
                        issuer_name: row.issuer_name,
                    }),
            );
            if page.are_next_offset_records_available.as_deref() != Some("Y") {
                return Ok(ranges);
            }
            if received == 0 {
                return Err(CallError::Malformed(
                    "VISA BIN page empty but more announced".into(),
                ));
            }
            index += received;
        }
        Err(CallError::Malformed("VISA BIN listing does not end".into()))
    }
}

impl CircuitClient for VisaClient {
    fn circuit(&self) -> Circuit {
        Circuit::Visa
    }

    fn max_batch(&self) -> usize {
        1
    }

    fn lookup_pars<'a>(
        &'a self,
        accounts: &'a [Account],
    ) -> LocalBoxFuture<'a, Result<Vec<ParOutcome>, CallError>> {
        Box::pin(one_at_a_time(accounts, |a| self.lookup_one(a)))
    }

    fn fetch_bin_ranges(&self) -> LocalBoxFuture<'_, Result<Vec<RawBinRange>, CallError>> {
        Box::pin(super::bin_file::from_source(&self.spec, &self.http, || {
            self.bins()
        }))
    }
}
