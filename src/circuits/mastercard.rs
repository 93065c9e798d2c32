//! MASTERCARD: PAR lookup (OAuth 1.0a RSA-SHA256 over the encrypted body, field-level
//! encryption both ways, errors inside 200 bodies) and the paged BIN lookup.

use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{json, nonce, CallKind, Transport};
use super::protocol::{fle, oauth1};
use super::spec::{ClientSpec, Credentials};
use super::{
    one_at_a_time, outcome_of, Account, CallError, CircuitClient, ParOutcome, RawBinRange,
};
use crate::domain::Circuit;

const BIN_PAGE: usize = 500;
const MAX_BIN_PAGES: usize = 1000;

/// The MASTERCARD client.
pub struct MastercardClient {
    spec: ClientSpec,
    http: Transport,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    encrypted_payload: fle::Envelope,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Decrypted {
    encrypted_data: ParData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParData {
    #[serde(default)]
    payment_account_reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinPage {
    current_page_number: usize,
    total_pages: usize,
    #[serde(default)]
    items: Vec<Value>,
}

/// Mastercard's error body, which may come with a 200.
fn body_error(body: &[u8]) -> Option<CallError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let errors = value.get("Errors")?.get("Error")?;
    let first = errors.as_array().and_then(|a| a.first()).unwrap_or(errors);
    let code = first
        .get("ReasonCode")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN");
    // Only the reason code is kept: descriptions are free text from outside.
    Some(CallError::Refused(format!("MASTERCARD {code}")))
}

impl MastercardClient {
    /// A client for `spec` (Mastercard credentials required).
    pub fn new(spec: ClientSpec, http: Transport) -> Result<Self, CallError> {
        match spec.credentials {
            Credentials::Mastercard { .. } => Ok(MastercardClient { spec, http }),
            _ => Err(CallError::Transport(
                "MASTERCARD client needs MASTERCARD credentials".into(),
            )),
        }
    }

    /// Signs and sends; a 200 whose body is an error is an error.
    async fn signed_post(
        &self,
        kind: CallKind,
        url: &str,
        body: Vec<u8>,
    ) -> Result<actix_web::web::Bytes, CallError> {
        let Credentials::Mastercard {
            consumer_key,
            signing_key,
            ..
        } = &self.spec.credentials
        else {
            return Err(CallError::Transport("MASTERCARD credentials".into()));
        };
        let header = oauth1::authorization_header(
            "POST",
            url,
            &body,
            consumer_key,
            &nonce()?,
            chrono::Utc::now().timestamp(),
            signing_key,
        )
        .map_err(|e| CallError::Transport(format!("OAuth: {e}")))?;
        let reply = self
            .http
            .post(kind, url, &[("authorization", header)], body)
            .await?;
        match body_error(&reply.body) {
            Some(error) => Err(error),
            None => Ok(reply.body),
        }
    }

    async fn lookup_one(&self, account: &Account) -> Result<ParOutcome, CallError> {
        let Credentials::Mastercard {
            circuit_public,
            own_private,
            own_fingerprint,
            ..
        } = &self.spec.credentials
        else {
            return Err(CallError::Transport("MASTERCARD credentials".into()));
        };
        let valid_until = (chrono::Utc::now() + chrono::Duration::minutes(5))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let payload = zeroize::Zeroizing::new(
            serde_json::to_vec(&json!({
                "encryptedData": {
                    "accountNumber": account.expose(),
                    "dataValidUntilTimestamp": valid_until,
                }
            }))
            .map_err(|_| CallError::Malformed("request".into()))?,
        );
        let envelope = fle::encrypt_field(&payload, circuit_public)
            .map_err(|e| CallError::Transport(format!("encryption: {e}")))?;
        let body = serde_json::to_vec(&json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "encryptedPayload": envelope,
        }))
        .map_err(|_| CallError::Malformed("request".into()))?;
        let url = format!(
            "{}/par/paymentaccountreference/1/0/getPaymentAccountReference",
            self.spec.base_url
        );
        let reply = self.signed_post(CallKind::Par, &url, body).await?;
        let answer: Answer = json(&reply, "MASTERCARD answer")?;
        let plain = fle::decrypt_field(&answer.encrypted_payload, own_private, own_fingerprint)
            .map_err(|e| CallError::Malformed(format!("MASTERCARD answer encryption: {e}")))?;
        let decrypted: Decrypted = json(&plain, "MASTERCARD decrypted answer")?;
        outcome_of(
            decrypted
                .encrypted_data
                .payment_account_reference
                .as_deref(),
            "MASTERCARD paymentAccountReference",
        )
    }

    async fn bins(&self) -> Result<Vec<RawBinRange>, CallError> {
        let (field, value) = self
            .spec
            .token_flag
            .clone()
            .unwrap_or_else(|| ("tokenFlag".into(), "Y".into()));
        let mut ranges = Vec::new();
        for page in 1..=MAX_BIN_PAGES {
            let url = format!(
                "{}/bin-resources/bin-ranges?page={page}&size={BIN_PAGE}",
                self.spec.base_url
            );
            let reply = self
                .signed_post(CallKind::Bins, &url, b"{}".to_vec())
                .await?;
            let parsed: BinPage = json(&reply, "MASTERCARD BIN page")?;
            for item in &parsed.items {
                if item.get(&field).and_then(Value::as_str) != Some(value.as_str()) {
                    continue;
                }
                let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
                let (Some(min), Some(max)) = (text("lowAccountRange"), text("highAccountRange"))
                else {
                    return Err(CallError::Malformed(
                        "MASTERCARD BIN item without bounds".into(),
                    ));
                };
                ranges.push(RawBinRange {
                    min,
                    max,
                    issuer_bin: text("binNum"),
                    issuer_name: text("customerName"),
                });
            }
            if parsed.current_page_number >= parsed.total_pages {
                return Ok(ranges);
            }
        }
        Err(CallError::Malformed(
            "MASTERCARD BIN listing does not end".into(),
        ))
    }
}

impl CircuitClient for MastercardClient {
    fn circuit(&self) -> Circuit {
        Circuit::Mastercard
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
