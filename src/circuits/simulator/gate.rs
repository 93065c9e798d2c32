//! The path every circuit call takes around its own checks: counted on arrival, refused during an
//! outage, counted when refused, then units against the contract rate and the fault roll.
//!
//! Order: outage (503) → the circuit's checks (401/400, counted `refused`) → units and contract
//! rate, or the `tooManyRequestsRate` roll (429 with the configured `Retry-After`) → error (503) / timeout (60 s, then 504) / latency → the answer, which the handler
//! replaces by garbage (`malformed`) or, Mastercard only, by an error inside a 200.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::context::Sim;
use super::faults::{roll, Injected};
use super::replies::Refusal;
use super::request::now_secs;
use super::state::Kind;
use crate::domain::Circuit;

/// How long the `timeout` fault holds an answer.
pub const HOLD: Duration = Duration::from_secs(60);

/// Counts the call; during an outage answers 503 (counted as an injected error).
pub fn arrive(sim: &Sim, circuit: Circuit, kind: Kind) -> Result<(), Refusal> {
    let in_outage = {
        let mut state = sim.lock();
        let c = state.circuit(circuit);
        match kind {
            Kind::Par => c.stats.calls.par += 1,
            Kind::Bins => c.stats.calls.bins += 1,
        }
        let out = c.outage_until.is_some_and(|end| Instant::now() < end);
        if out {
            c.stats.errors += 1;
        }
        out
    };
    if in_outage {
        return Err(Refusal::failure(circuit, StatusCode::SERVICE_UNAVAILABLE));
    }
    Ok(())
}

/// Counts a refusal and renders it.
pub fn refuse(sim: &Sim, circuit: Circuit, refusal: Refusal) -> HttpResponse {
    sim.lock().circuit(circuit).stats.refused += 1;
    tracing::debug!(
        circuit = circuit.as_str(),
        code = refusal.code,
        "simulator refused a call"
    );
    refusal.into_response(circuit)
}

/// Counts `units` (PAR calls), applies the contract rate and the faults. `Ok` tells the handler
/// whether to spoil its answer ([`Injected::Malformed`], [`Injected::ErrorInBody`]).
pub async fn admit(
    sim: &Sim,
    circuit: Circuit,
    kind: Kind,
    units: u64,
) -> Result<Injected, Refusal> {
    let (faults, limited) = {
        let mut state = sim.lock();
        let c = state.circuit(circuit);
        let over = if kind == Kind::Par {
            let total = c.stats.add_units(now_secs(), units);
            let rate = u64::from(c.faults.contract_rate);
            rate > 0 && total > rate
        } else {
            false
        };
        let limited = over || c.faults.roll_too_many(&mut rand::thread_rng());
        if limited {
            c.stats.too_many_requests += 1;
        }
        (c.faults.clone(), limited)
    };
    if limited {
        return Err(Refusal::too_many_requests(circuit, faults.retry_after));
    }
    let injected = roll(
        &faults,
        circuit == Circuit::Mastercard,
        &mut rand::thread_rng(),
    );
    if injected != Injected::Nothing {
        sim.lock().circuit(circuit).stats.errors += 1;
    }
    if faults.latency_ms > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    match injected {
        Injected::Error => Err(Refusal::failure(circuit, StatusCode::SERVICE_UNAVAILABLE)),
        Injected::Timeout => {
            actix_web::rt::time::sleep(HOLD).await;
            Err(Refusal::failure(circuit, StatusCode::GATEWAY_TIMEOUT))
        }
        other => Ok(other),
    }
}
