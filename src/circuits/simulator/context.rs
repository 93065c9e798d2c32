//! What every simulator worker shares: the keys (with their public halves worked out once), the
//! fixed ranges, and the mutable [`State`] behind a mutex held only for plain bookkeeping.

use std::sync::{Mutex, MutexGuard, PoisonError};

use openssl::pkey::{PKey, Public};

use super::data;
use super::faults::Faults;
use super::keys::SimulatorKeys;
use super::ranges::{self, CircuitRanges};
use super::state::State;
use crate::circuits::protocol::{self, fle, ProtocolError};
use crate::config::SimulatorSettings;
use crate::domain::Circuit;

/// The shared simulator.
pub struct Sim {
    /// Keys and secrets.
    pub keys: SimulatorKeys,
    /// Visa answers are encrypted to this (tkm's key).
    pub visa_client_public: PKey<Public>,
    /// Mastercard OAuth signatures verify with this.
    pub mc_signing_public: PKey<Public>,
    /// Mastercard answers are encrypted to this (tkm's key).
    pub mc_client_public: PKey<Public>,
    /// Requests must name the simulator's Mastercard key by this fingerprint.
    pub mc_circuit_fingerprint: String,
    /// Share of Visa/Amex PANs without a PAR until a token exists.
    pub no_par_share: f64,
    /// Faults at start and after a reset.
    pub default_faults: Faults,
    visa: CircuitRanges,
    mastercard: CircuitRanges,
    amex: CircuitRanges,
    state: Mutex<State>,
}

impl Sim {
    /// Prepares keys and data.
    pub fn new(settings: &SimulatorSettings, keys: SimulatorKeys) -> Result<Self, ProtocolError> {
        let default_faults = Faults::contract(settings.contract_rate);
        Ok(Sim {
            visa_client_public: protocol::public_of(&keys.visa_client)?,
            mc_signing_public: protocol::public_of(&keys.mc_signing)?,
            mc_client_public: protocol::public_of(&keys.mc_client)?,
            mc_circuit_fingerprint: fle::fingerprint(&protocol::public_of(&keys.mc_circuit)?)?,
            keys,
            no_par_share: settings.no_par_share,
            visa: ranges::build(Circuit::Visa, settings.visa_ranges),
            mastercard: ranges::build(Circuit::Mastercard, settings.other_ranges),
            amex: ranges::build(Circuit::Amex, settings.other_ranges),
            state: Mutex::new(State::new(&default_faults)),
            default_faults,
        })
    }

    /// The state; a poisoned lock is still usable (the state is plain counters and maps).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One circuit's ranges.
    pub fn ranges(&self, circuit: Circuit) -> &CircuitRanges {
        match circuit {
            Circuit::Visa => &self.visa,
            Circuit::Mastercard => &self.mastercard,
            Circuit::Amex => &self.amex,
        }
    }

    /// The PAR `circuit` answers for `account` (a card or token PAN); `None` = no PAR yet.
    pub fn resolve_par(
        &self,
        circuit: Circuit,
        account: &str,
    ) -> Result<Option<String>, ProtocolError> {
        let (card, tokenized) = {
            let state = self.lock();
            (state.card_of(account), state.is_tokenized(account))
        };
        if let Some(card) = card {
            return data::par_of(circuit, &card).map(Some);
        }
        let always = circuit == Circuit::Mastercard
            || tokenized
            || self.ranges(circuit).token_range_of(account).is_some();
        if !always && data::waits_for_token(account, self.no_par_share)? {
            return Ok(None);
        }
        data::par_of(circuit, account).map(Some)
    }
}
