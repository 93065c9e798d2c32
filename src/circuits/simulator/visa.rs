//! Visa: `POST /par/v1/inquiry` (mutual TLS, Basic, `keyId`, JWE both ways) and
//! `POST /v1/binRangeDetails` (the BIN attribute service, paged by index).

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::context::Sim;
use super::data;
use super::faults::Injected;
use super::gate;
use super::replies::{malformed, Refusal};
use super::request::{fresh_ms, header, now_ms};
use super::server::ClientCert;
use super::state::Kind;
use crate::circuits::protocol::jwe;
use crate::domain::Circuit;

/// `kid` of the simulator's answers.
pub const RESPONSE_KID: &str = "tkm-sim-response";
/// Most rows one BIN page holds.
pub const MAX_BIN_ROWS: usize = 500;

const NO_CERT: Refusal = Refusal::unauthorized("TLS", "4011", "client certificate required");
const BAD_BASIC: Refusal = Refusal::unauthorized("Auth", "4012", "invalid credentials");
const BAD_KEY_ID: Refusal = Refusal::unauthorized("Auth", "4013", "unknown keyId");
const BAD_BODY: Refusal = Refusal::bad_request("Request", "4001", "invalid request body");
const BAD_KID: Refusal = Refusal::bad_request("Encryption", "4002", "JWE kid does not match keyId");
const BAD_JWE: Refusal = Refusal::bad_request("Encryption", "4003", "JWE cannot be decrypted");
const STALE: Refusal = Refusal::bad_request("Encryption", "4004", "JWE iat is not fresh");
const BAD_INQUIRY: Refusal = Refusal::bad_request("Request", "4005", "invalid inquiry");

#[derive(Deserialize)]
struct Encrypted {
    #[serde(rename = "encData")]
    enc_data: String,
}

/// The inquiry; `clientId` and `correlatnId` must be there but are not used.
#[derive(Deserialize)]
struct Inquiry {
    #[serde(rename = "clientId")]
    _client_id: String,
    #[serde(rename = "correlatnId")]
    _correlatn_id: String,
    #[serde(rename = "primaryAccount")]
    primary_account: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_account_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_account_reference_creation_date: Option<String>,
    primary_account: String,
}

/// Client certificate, Basic credentials and `keyId`, as Visa's gateway checks them.
fn check_access(req: &HttpRequest, sim: &Sim) -> Result<(), Refusal> {
    if !req.conn_data::<ClientCert>().is_some_and(|c| c.0) {
        return Err(NO_CERT);
    }
    let basic = header(req, "authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .ok_or(BAD_BASIC)?;
    let expected = format!("{}:{}", sim.keys.visa_user, sim.keys.visa_password);
    if basic.len() != expected.len() || !openssl::memcmp::eq(&basic, expected.as_bytes()) {
        return Err(BAD_BASIC);
    }
    if header(req, "keyId") != Some(sim.keys.visa_key_id.as_str()) {
        return Err(BAD_KEY_ID);
    }
    Ok(())
}

/// The decrypted, checked account number of an inquiry.
fn open_inquiry(req: &HttpRequest, body: &[u8], sim: &Sim) -> Result<String, Refusal> {
    check_access(req, sim)?;
    let encrypted: Encrypted = serde_json::from_slice(body).map_err(|_| BAD_BODY)?;
    let (jwe_header, plain) =
        jwe::decrypt(&encrypted.enc_data, &sim.keys.visa_circuit).map_err(|_| BAD_JWE)?;
    if jwe_header.kid != sim.keys.visa_key_id {
        return Err(BAD_KID);
    }
    if !fresh_ms(jwe_header.iat) {
        return Err(STALE);
    }
    let inquiry: Inquiry = serde_json::from_slice(&plain).map_err(|_| BAD_INQUIRY)?;
    if !data::is_account(&inquiry.primary_account) {
        return Err(BAD_INQUIRY);
    }
    Ok(inquiry.primary_account)
}

/// `POST /par/v1/inquiry`.
pub async fn par(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    const C: Circuit = Circuit::Visa;
    if let Err(f) = gate::arrive(&sim, C, Kind::Par) {
        return f.into_response(C);
    }
    let account = match open_inquiry(&req, &body, &sim) {
        Ok(a) => a,
        Err(refusal) => return gate::refuse(&sim, C, refusal),
    };
    match gate::admit(&sim, C, Kind::Par, 1).await {
        Err(f) => return f.into_response(C),
        Ok(Injected::Malformed) => return malformed(),
        Ok(_) => {}
    }
    let internal = || Refusal::failure(C, actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let Ok(par) = sim.resolve_par(C, &account) else {
        return internal().into_response(C);
    };
    let answer = Answer {
        payment_account_reference_creation_date: par.as_deref().map(data::creation_date),
        payment_account_reference: par,
        primary_account: account,
    };
    let sealed = serde_json::to_vec(&answer).ok().and_then(|plain| {
        jwe::encrypt(&plain, &sim.visa_client_public, RESPONSE_KID, now_ms()).ok()
    });
    match sealed {
        Some(enc) => HttpResponse::Ok().json(json!({ "encData": enc })),
        None => internal().into_response(C),
    }
}

/// A number sent as a JSON string (as Visa does) or a JSON number.
fn number(value: &serde_json::Value) -> Option<usize> {
    match value {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        _ => None,
    }
}

/// `(binRangeSearchIndex, binRangeCount)` of a BIN page request.
fn page_of(body: &[u8]) -> Option<(usize, usize)> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    request
        .get("requestHeader")?
        .get("requestMessageID")?
        .as_str()?;
    let data = request.get("requestData")?;
    let index = number(data.get("binRangeSearchIndex")?)?;
    let count = number(data.get("binRangeCount")?)?;
    (count > 0).then_some((index, count.min(MAX_BIN_ROWS)))
}

/// `POST /v1/binRangeDetails`.
pub async fn bins(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    const C: Circuit = Circuit::Visa;
    if let Err(f) = gate::arrive(&sim, C, Kind::Bins) {
        return f.into_response(C);
    }
    let page = check_access(&req, &sim).and_then(|()| page_of(&body).ok_or(BAD_BODY));
    let (index, count) = match page {
        Ok(p) => p,
        Err(refusal) => return gate::refuse(&sim, C, refusal),
    };
    match gate::admit(&sim, C, Kind::Bins, 0).await {
        Err(f) => return f.into_response(C),
        Ok(Injected::Malformed) => return malformed(),
        Ok(_) => {}
    }
    let rows = &sim.ranges(C).rows;
    let page: Vec<serde_json::Value> = rows
        .iter()
        .skip(index)
        .take(count)
        .map(|r| {
            json!({
                "binRangeMinNum": r.min,
                "binRangeMaxNum": r.max,
                "binRangePaymentAccountType": if r.token { "T" } else { "C" },
                "issuerBin": r.issuer_bin,
                "issuerName": r.issuer_name,
            })
        })
        .collect();
    let more = index.saturating_add(count) < rows.len();
    HttpResponse::Ok().json(json!({
        "responseStatus": {"statusCode": "CDI000", "statusDescription": "Success"},
        "responseData": page,
        "areNextOffsetRecordsAvailable": if more { "Y" } else { "N" },
    }))
}
