//! Mastercard: `POST /par/paymentaccountreference/1/0/getPaymentAccountReference` (OAuth 1.0a
//! signed, field-level encrypted both ways) and `POST /bin-resources/bin-ranges` (paged).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::context::Sim;
use super::data;
use super::faults::Injected;
use super::gate;
use super::replies::{error_in_body, malformed, Refusal};
use super::request::{self, header, now_secs};
use super::state::Kind;
use crate::circuits::protocol::{fle, oauth1, ProtocolError};
use crate::domain::Circuit;

const C: Circuit = Circuit::Mastercard;
/// Largest page of the BIN lookup.
pub const MAX_PAGE_SIZE: usize = 5000;
/// Page size when the query gives none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

const BAD_AUTH: Refusal = Refusal::unauthorized(
    "OAuth",
    "INVALID_AUTHORIZATION",
    "missing or malformed OAuth header",
);
const BAD_CONSUMER: Refusal =
    Refusal::unauthorized("OAuth", "INVALID_CONSUMER_KEY", "unknown consumer key");
const STALE: Refusal =
    Refusal::unauthorized("OAuth", "EXPIRED_TIMESTAMP", "oauth_timestamp is not fresh");
const BAD_BODY_HASH: Refusal = Refusal::unauthorized(
    "OAuth",
    "INVALID_BODY_HASH",
    "oauth_body_hash does not match the body",
);
const BAD_SIGNATURE: Refusal = Refusal::unauthorized(
    "OAuth",
    "INVALID_SIGNATURE",
    "oauth_signature does not verify",
);
const REUSED: Refusal =
    Refusal::unauthorized("OAuth", "NONCE_REUSED", "oauth_nonce was already used");
const BAD_REQUEST: Refusal = Refusal::bad_request("Request", "INVALID_REQUEST", "invalid request");
const BAD_ENCRYPTION: Refusal = Refusal::bad_request(
    "Encryption",
    "DECRYPTION_ERROR",
    "encryptedPayload cannot be decrypted",
);
const BAD_ACCOUNT: Refusal = Refusal::bad_request(
    "Request",
    "INVALID_ACCOUNT_NUMBER",
    "invalid account number",
);

/// Checks the OAuth 1.0a signature of the request as received, then records its nonce.
fn check_oauth(req: &HttpRequest, body: &[u8], sim: &Sim) -> Result<(), Refusal> {
    let signed = header(req, "authorization")
        .and_then(|h| oauth1::parse_authorization(h).ok())
        .ok_or(BAD_AUTH)?;
    if signed.params.consumer_key != sim.keys.mc_consumer_key {
        return Err(BAD_CONSUMER);
    }
    if !request::fresh_ms(signed.params.timestamp.saturating_mul(1000)) {
        return Err(STALE);
    }
    let host = request::host(req).ok_or(BAD_REQUEST)?;
    let url = format!("https://{host}{}", request::path_and_query(req));
    oauth1::verify_as_gateway(
        &signed,
        req.method().as_str(),
        &url,
        body,
        &sim.mc_signing_public,
    )
    .map_err(|e| match e {
        ProtocolError::Invalid("oauth_body_hash") => BAD_BODY_HASH,
        _ => BAD_SIGNATURE,
    })?;
    if !sim
        .lock()
        .circuit(C)
        .fresh_nonce(&signed.params.nonce, now_secs())
    {
        return Err(REUSED);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParRequest {
    request_id: String,
    encrypted_payload: fle::Envelope,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "encryptedData")]
    data: AccountData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountData {
    account_number: String,
    #[serde(default)]
    data_valid_until_timestamp: Option<serde_json::Value>,
}

/// The request id, the account number and the validity to echo.
fn open_request(
    req: &HttpRequest,
    body: &[u8],
    sim: &Sim,
) -> Result<(String, String, serde_json::Value), Refusal> {
    check_oauth(req, body, sim)?;
    let request: ParRequest = serde_json::from_slice(body).map_err(|_| BAD_REQUEST)?;
    let plain = fle::decrypt_field(
        &request.encrypted_payload,
        &sim.keys.mc_circuit,
        &sim.mc_circuit_fingerprint,
    )
    .map_err(|_| BAD_ENCRYPTION)?;
    let payload: Payload = serde_json::from_slice(&plain).map_err(|_| BAD_REQUEST)?;
    if !data::is_account(&payload.data.account_number) {
        return Err(BAD_ACCOUNT);
    }
    let valid_until = payload
        .data
        .data_valid_until_timestamp
        .unwrap_or_else(|| json!((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()));
    Ok((request.request_id, payload.data.account_number, valid_until))
}

/// `POST /par/paymentaccountreference/1/0/getPaymentAccountReference`.
pub async fn par(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    if let Err(f) = gate::arrive(&sim, C, Kind::Par) {
        return f.into_response(C);
    }
    let (request_id, account, valid_until) = match open_request(&req, &body, &sim) {
        Ok(opened) => opened,
        Err(refusal) => return gate::refuse(&sim, C, refusal),
    };
    match gate::admit(&sim, C, Kind::Par, 1).await {
        Err(f) => return f.into_response(C),
        Ok(Injected::Malformed) => return malformed(),
        Ok(Injected::ErrorInBody) => return error_in_body(),
        Ok(_) => {}
    }
    let sealed = sim.resolve_par(C, &account).ok().flatten().and_then(|par| {
        let plain = json!({"encryptedData": {
            "paymentAccountReference": par,
            "dataValidUntilTimestamp": valid_until,
        }});
        let bytes = serde_json::to_vec(&plain).ok()?;
        fle::encrypt_field(&bytes, &sim.mc_client_public).ok()
    });
    match sealed {
        Some(envelope) => HttpResponse::Ok().json(json!({
            "responseId": request_id,
            "encryptedPayload": envelope,
        })),
        None => {
            Refusal::failure(C, actix_web::http::StatusCode::INTERNAL_SERVER_ERROR).into_response(C)
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
    size: Option<String>,
}

/// `(page, size)` from the query: page from 1, size 1..=[`MAX_PAGE_SIZE`].
fn page_of(query: &str) -> Option<(usize, usize)> {
    let q: PageQuery = serde_urlencoded::from_str(query).ok()?;
    let page = q.page.map_or(Some(1), |p| p.parse().ok())?;
    let size = q.size.map_or(Some(DEFAULT_PAGE_SIZE), |s| s.parse().ok())?;
    (page >= 1 && (1..=MAX_PAGE_SIZE).contains(&size)).then_some((page, size))
}

/// `POST /bin-resources/bin-ranges?page=N&size=M`.
pub async fn bins(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    if let Err(f) = gate::arrive(&sim, C, Kind::Bins) {
        return f.into_response(C);
    }
    let checked = check_oauth(&req, &body, &sim)
        .and_then(|()| page_of(req.query_string()).ok_or(BAD_REQUEST));
    let (page, size) = match checked {
        Ok(p) => p,
        Err(refusal) => return gate::refuse(&sim, C, refusal),
    };
    match gate::admit(&sim, C, Kind::Bins, 0).await {
        Err(f) => return f.into_response(C),
        Ok(Injected::Malformed) => return malformed(),
        Ok(Injected::ErrorInBody) => return error_in_body(),
        Ok(_) => {}
    }
    let rows = &sim.ranges(C).rows;
    let items: Vec<serde_json::Value> = rows
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|r| {
            json!({
                "lowAccountRange": r.min,
                "highAccountRange": r.max,
                "binNum": r.issuer_bin,
                "customerName": r.issuer_name,
                "tokenFlag": if r.token { "Y" } else { "N" },
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "currentPageNumber": page,
        "totalPages": rows.len().div_ceil(size),
        "totalItems": rows.len(),
        "items": items,
    }))
}
