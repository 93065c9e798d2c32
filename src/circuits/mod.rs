//! Circuit clients (VISA, MASTERCARD, AMEX): PAR lookups and token BIN ranges behind one trait.
//!
//! `protocol/` holds the pure message protection of each circuit (JWE, field-level encryption,
//! OAuth 1.0a, the Amex MAC) shared by the clients and by the `simulator/`, which speaks the same
//! protocols and verifies them.

pub mod amex;
pub mod bin_file;
pub mod factory;
pub mod http;
pub mod mastercard;
pub mod protocol;
pub mod retry_after;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod spec;
pub mod visa;

use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::domain::{Circuit, Pan, Par, TokenPan};

/// An account number a circuit is asked about: a card's PAN or a token PAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// A card number.
    Card(Pan),
    /// A token PAN.
    Token(TokenPan),
}

impl Account {
    /// The clear digits, to put inside the circuit's protected request only.
    pub fn expose(&self) -> &str {
        match self {
            Account::Card(pan) => pan.expose(),
            Account::Token(token) => token.expose(),
        }
    }
}

/// What a circuit answered for one account number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParOutcome {
    /// The account's PAR.
    Found(Par),
    /// A normal answer: the circuit has no PAR for it yet (Visa/Amex before the first token).
    NotYet,
}

/// A token BIN range as the circuit sent it, before validation (`bin_ranges::validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBinRange {
    /// Lower bound, digits.
    pub min: String,
    /// Upper bound, digits.
    pub max: String,
    /// The issuer BIN, where the circuit gives it.
    pub issuer_bin: Option<String>,
    /// The issuer's name, where the circuit gives it.
    pub issuer_name: Option<String>,
}

/// Why a call failed. Never carries card data: reasons are fixed texts or the circuit's codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Connection, TLS or I/O failure.
    #[error("transport: {0}")]
    Transport(String),
    /// A 5xx answer.
    #[error("server error {0}")]
    Server(u16),
    /// 429: slow down; wait `Retry-After` when given.
    #[error("rate limited")]
    RateLimited {
        /// The circuit's `Retry-After`, already at most `circuits.max_retry_after_secs`
        /// (`None` when absent or unusable).
        retry_after: Option<Duration>,
    },
    /// The circuit refused the request (4xx other than 429, or an error inside a 200 body).
    #[error("refused: {0}")]
    Refused(String),
    /// The answer could not be read (bad JSON, bad protection, missing field).
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl CallError {
    /// Worth retrying within the same cycle (with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CallError::Timeout | CallError::Transport(_) | CallError::Server(_)
        )
    }
}

/// What a circuit's PAR field means: absent or empty is "no PAR yet"; `field` names it in errors.
pub(crate) fn outcome_of(par: Option<&str>, field: &str) -> Result<ParOutcome, CallError> {
    match par.filter(|p| !p.is_empty()) {
        None => Ok(ParOutcome::NotYet),
        Some(par) => Par::parse_from_circuit(par)
            .map(ParOutcome::Found)
            .map_err(|_| CallError::Malformed(field.to_string())),
    }
}

/// Asks `accounts` one call each, in order (circuits without batches).
pub(crate) async fn one_at_a_time<'a, F, Fut>(
    accounts: &'a [Account],
    ask: F,
) -> Result<Vec<ParOutcome>, CallError>
where
    F: Fn(&'a Account) -> Fut,
    Fut: std::future::Future<Output = Result<ParOutcome, CallError>>,
{
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        out.push(ask(account).await?);
    }
    Ok(out)
}

/// One circuit's client: the same code for `live` and `simulator` modes.
pub trait CircuitClient {
    /// Which circuit this client talks to.
    fn circuit(&self) -> Circuit;

    /// The most account numbers one PAR call may carry (1 unless the circuit takes batches).
    fn max_batch(&self) -> usize;

    /// Asks the PARs of `accounts`; one outcome per account, in order.
    fn lookup_pars<'a>(
        &'a self,
        accounts: &'a [Account],
    ) -> LocalBoxFuture<'a, Result<Vec<ParOutcome>, CallError>>;

    /// Fetches the circuit's complete current set of token BIN ranges.
    fn fetch_bin_ranges(&self) -> LocalBoxFuture<'_, Result<Vec<RawBinRange>, CallError>>;
}
