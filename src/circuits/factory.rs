//! Builds each circuit's client from its spec, on the thread that will use it.

use super::amex::AmexClient;
use super::http::Transport;
use super::mastercard::MastercardClient;
use super::spec::ClientSpec;
use super::visa::VisaClient;
use super::{CallError, CircuitClient};
use crate::domain::Circuit;
use crate::metrics::Metrics;

/// The client of `spec.circuit`, with a connection pool of `pool`.
pub fn build(
    spec: ClientSpec,
    metrics: Metrics,
    pool: usize,
) -> Result<Box<dyn CircuitClient>, CallError> {
    let http = Transport::new(&spec, metrics, pool)?;
    Ok(match spec.circuit {
        Circuit::Visa => Box::new(VisaClient::new(spec, http)?),
        Circuit::Mastercard => Box::new(MastercardClient::new(spec, http)?),
        Circuit::Amex => Box::new(AmexClient::new(spec, http)?),
    })
}
