//! `/sim/*`: seeding and inspecting the simulator (BIN files, tokens, faults, reset, stats). No
//! client certificate needed; errors are `{"error": "<text>"}`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde_json::json;

use super::context::Sim;
use super::data;
use super::faults::Faults;
use crate::domain::Circuit;

/// The longest outage window (`outageSecs` beyond it is this).
const MAX_OUTAGE_SECS: u64 = 366 * 24 * 3600;

/// Most tokens one `/sim/tokens` call makes.
pub const MAX_TOKENS: usize = 100;

fn bad(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

fn bad_request(message: &str) -> HttpResponse {
    bad(actix_web::http::StatusCode::BAD_REQUEST, message)
}

/// The circuit of a path segment (`visa`, `mastercard`, `amex`).
fn circuit_of_segment(name: &str) -> Option<Circuit> {
    Circuit::ALL
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(name))
}

/// `GET /sim/bin-files/{circuit}`: the token ranges as `min;max;issuerBin` lines.
pub async fn bin_file(name: web::Path<String>, sim: web::Data<Sim>) -> HttpResponse {
    let Some(circuit) = circuit_of_segment(&name) else {
        return bad(actix_web::http::StatusCode::NOT_FOUND, "unknown circuit");
    };
    sim.lock().circuit(circuit).stats.calls.bin_files += 1;
    match sim.ranges(circuit).csv() {
        Ok(file) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(file),
        Err(_) => bad(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot write the BIN file",
        ),
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    pan: String,
    count: usize,
}

/// `POST /sim/tokens {"pan", "count"}` → `{"tokens", "circuit", "par"}`.
pub async fn tokens(body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<TokenRequest>(&body) else {
        return bad_request("the body must be {\"pan\", \"count\"}");
    };
    if !data::is_account(&request.pan) {
        return bad_request("pan must be 12 to 19 digits");
    }
    if !(1..=MAX_TOKENS).contains(&request.count) {
        return bad_request("count must be 1 to 100");
    }
    let Some(circuit) = data::circuit_of_pan(&request.pan) else {
        return bad_request("no simulated circuit for this pan");
    };
    let prefixes: Vec<&str> = sim
        .ranges(circuit)
        .tokens()
        .map(|r| r.prefix.as_str())
        .collect();
    let len = data::token_length(circuit);
    let mut made: Vec<String> = Vec::with_capacity(request.count);
    let mut seen = HashSet::new();
    // Bounded: a full prefix space would otherwise spin.
    for _ in 0..request.count.saturating_mul(50) {
        if made.len() == request.count {
            break;
        }
        let Some(prefix) = prefixes.choose(&mut rand::thread_rng()) else {
            break;
        };
        let token = data::token_in(prefix, len, &mut rand::thread_rng());
        if token != request.pan && seen.insert(token.clone()) && !sim.lock().has_token(&token) {
            made.push(token);
        }
    }
    if made.len() < request.count {
        return bad(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "could not make enough distinct tokens",
        );
    }
    sim.lock().add_tokens(&request.pan, &made);
    let Ok(par) = data::par_of(circuit, &request.pan) else {
        return bad(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "PAR derivation failed",
        );
    };
    HttpResponse::Ok().json(json!({
        "tokens": made,
        "circuit": circuit.as_str(),
        "par": par,
    }))
}

#[derive(Deserialize)]
struct FaultRequest {
    circuit: String,
    #[serde(flatten)]
    faults: Faults,
}

fn faults_reply(circuit: Circuit, faults: &Faults, outage_until: Option<Instant>) -> HttpResponse {
    let remaining = outage_until
        .map(|end| {
            end.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil()
        })
        .unwrap_or(0.0);
    let mut shown = serde_json::to_value(faults).unwrap_or_else(|_| json!({}));
    shown["circuit"] = json!(circuit.as_str());
    shown["outageSecs"] = json!(remaining);
    HttpResponse::Ok().json(shown)
}

/// `POST /sim/faults`: replaces one circuit's faults (missing fields are 0).
pub async fn faults(body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<FaultRequest>(&body) else {
        return bad_request("the body must be {\"circuit\", …faults}");
    };
    let Ok(circuit) = Circuit::from_json_name(&request.circuit) else {
        return bad_request("circuit must be VISA, MASTERCARD or AMEX");
    };
    if let Err(reason) = request.faults.validate() {
        return bad_request(reason);
    }
    // Any `outageSecs` is accepted; beyond a year it is a year (no Instant overflow).
    let outage = Duration::from_secs(request.faults.outage_secs.min(MAX_OUTAGE_SECS));
    let outage_until = (request.faults.outage_secs > 0)
        .then(|| Instant::now().checked_add(outage))
        .flatten();
    {
        let mut state = sim.lock();
        let c = state.circuit(circuit);
        c.faults = request.faults.clone();
        c.outage_until = outage_until;
    }
    tracing::info!(circuit = circuit.as_str(), "simulator faults set");
    faults_reply(circuit, &request.faults, outage_until)
}

/// `POST /sim/reset`: faults back to the start-up configuration, statistics and nonces cleared;
/// tokens stay.
pub async fn reset(sim: web::Data<Sim>) -> HttpResponse {
    {
        let mut state = sim.lock();
        for circuit in Circuit::ALL {
            state.circuit(circuit).reset(sim.default_faults.clone());
        }
    }
    HttpResponse::Ok().json(json!({ "reset": true }))
}

/// `GET /sim/stats`.
pub async fn stats(sim: web::Data<Sim>) -> HttpResponse {
    let stats = sim.lock().stats();
    HttpResponse::Ok().json(json!({ "circuits": stats }))
}
