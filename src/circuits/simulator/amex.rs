//! Amex: `POST /payments/digital/v2/product_account_reference`, a batch of PANs behind the
//! `x-amex-api-key` header and the `Authorization: MAC` header.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::context::Sim;
use super::data;
use super::faults::Injected;
use super::gate;
use super::replies::{malformed, Refusal};
use super::request::{self, header, now_secs};
use super::state::Kind;
use crate::circuits::protocol::{amex_mac, ProtocolError};
use crate::domain::Circuit;

const C: Circuit = Circuit::Amex;
/// Most PANs one call may carry.
pub const MAX_BATCH: usize = 10;

const BAD_API_KEY: Refusal = Refusal::unauthorized("Auth", "INVALID_API_KEY", "unknown api key");
const NO_REQUEST_ID: Refusal = Refusal::bad_request(
    "Request",
    "MISSING_REQUEST_ID",
    "x-amex-request-id is required",
);
const BAD_AUTH: Refusal = Refusal::unauthorized(
    "Auth",
    "INVALID_AUTHORIZATION",
    "missing or malformed MAC header",
);
const STALE: Refusal = Refusal::unauthorized("Auth", "EXPIRED_TIMESTAMP", "ts is not fresh");
const BAD_BODY_HASH: Refusal = Refusal::unauthorized(
    "Auth",
    "INVALID_BODYHASH",
    "bodyhash does not match the body",
);
const BAD_MAC: Refusal = Refusal::unauthorized("Auth", "INVALID_MAC", "mac does not verify");
const REUSED: Refusal = Refusal::unauthorized("Auth", "NONCE_REUSED", "nonce was already used");
const BAD_REQUEST: Refusal = Refusal::bad_request(
    "Request",
    "INVALID_REQUEST",
    "the body must be a list of 1 to 10 account numbers",
);

/// Checks the API key, request id and MAC, then records the nonce.
fn check_mac(req: &HttpRequest, body: &[u8], sim: &Sim) -> Result<(), Refusal> {
    let api_key = sim.keys.amex_api_key.as_str();
    if header(req, "x-amex-api-key") != Some(api_key) {
        return Err(BAD_API_KEY);
    }
    if header(req, "x-amex-request-id").is_none_or(|id| id.trim().is_empty()) {
        return Err(NO_REQUEST_ID);
    }
    let mac = header(req, "authorization")
        .and_then(|h| amex_mac::parse_authorization(h).ok())
        .ok_or(BAD_AUTH)?;
    if mac.id != api_key {
        return Err(BAD_API_KEY);
    }
    if !request::fresh_ms(mac.ts) {
        return Err(STALE);
    }
    let host = request::host(req).ok_or(BAD_AUTH)?;
    let (host, port) = request::host_and_port(&host).ok_or(BAD_AUTH)?;
    let path = request::path_and_query(req);
    let input = amex_mac::MacInput {
        ts: mac.ts,
        nonce: &mac.nonce,
        method: req.method().as_str(),
        path: &path,
        host: &host,
        port,
    };
    amex_mac::verify(&mac, sim.keys.amex_secret.as_bytes(), &input, body).map_err(|e| match e {
        ProtocolError::Invalid("bodyhash") => BAD_BODY_HASH,
        _ => BAD_MAC,
    })?;
    if !sim.lock().circuit(C).fresh_nonce(&mac.nonce, now_secs()) {
        return Err(REUSED);
    }
    Ok(())
}

/// The checked batch.
fn open_batch(req: &HttpRequest, body: &[u8], sim: &Sim) -> Result<Vec<String>, Refusal> {
    check_mac(req, body, sim)?;
    let batch: Vec<String> = serde_json::from_slice(body).map_err(|_| BAD_REQUEST)?;
    if batch.is_empty() || batch.len() > MAX_BATCH || !batch.iter().all(|p| data::is_account(p)) {
        return Err(BAD_REQUEST);
    }
    Ok(batch)
}

/// `POST /payments/digital/v2/product_account_reference`.
pub async fn par(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    if let Err(f) = gate::arrive(&sim, C, Kind::Par) {
        return f.into_response(C);
    }
    let batch = match open_batch(&req, &body, &sim) {
        Ok(b) => b,
        Err(refusal) => return gate::refuse(&sim, C, refusal),
    };
    let units = u64::try_from(batch.len()).unwrap_or(u64::MAX);
    match gate::admit(&sim, C, Kind::Par, units).await {
        Err(f) => return f.into_response(C),
        Ok(Injected::Malformed) => return malformed(),
        Ok(_) => {}
    }
    let mut answers = Vec::with_capacity(batch.len());
    for input in batch {
        match sim.resolve_par(C, &input) {
            Ok(Some(par)) => answers.push(json!({"input": input, "par": par, "success": true})),
            Ok(None) => answers.push(json!({"input": input, "success": false})),
            Err(_) => {
                return Refusal::failure(C, actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response(C)
            }
        }
    }
    HttpResponse::Ok().json(answers)
}
