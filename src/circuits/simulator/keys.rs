//! The credentials both sides of the simulator share: generated per run (simulator mode) or kept
//! in a directory (`tkm simulate-circuits --keys-dir`), never used in live mode.

use std::path::PathBuf;

use openssl::pkey::{PKey, Private, Public};
use secrecy::SecretString;

use crate::circuits::protocol::{self, fle, ProtocolError};
use crate::circuits::spec::{common, ClientSpec, Credentials, TlsSpec};
use crate::config::CircuitsSettings;
use crate::domain::Circuit;

/// Keys and secrets of a simulator run.
#[derive(Clone)]
pub struct SimulatorKeys {
    /// Visa Basic user.
    pub visa_user: String,
    /// Visa Basic password.
    pub visa_password: String,
    /// Visa `keyId`/`kid` of the simulator's encryption key.
    pub visa_key_id: String,
    /// Visa `clientId`.
    pub visa_client_id: String,
    /// The simulator's Visa key: requests are encrypted to its public half.
    pub visa_circuit: PKey<Private>,
    /// tkm's Visa key: answers are encrypted to its public half.
    pub visa_client: PKey<Private>,
    /// Mastercard OAuth consumer key.
    pub mc_consumer_key: String,
    /// tkm's OAuth signing key (the simulator verifies with its public half).
    pub mc_signing: PKey<Private>,
    /// The simulator's Mastercard encryption key.
    pub mc_circuit: PKey<Private>,
    /// tkm's Mastercard encryption key.
    pub mc_client: PKey<Private>,
    /// Amex API key (also the MAC id).
    pub amex_api_key: String,
    /// Amex MAC secret.
    pub amex_secret: String,
}

impl std::fmt::Debug for SimulatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimulatorKeys(***)")
    }
}

fn random_text() -> Result<String, ProtocolError> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).map_err(|_| ProtocolError::Crypto("random"))?;
    Ok(hex::encode(bytes))
}

impl SimulatorKeys {
    /// Fresh keys (RSA-2048) and random secrets.
    pub fn generate() -> Result<Self, ProtocolError> {
        Ok(SimulatorKeys {
            visa_user: format!("sim-{}", &random_text()?[..8]),
            visa_password: random_text()?,
            visa_key_id: format!("sim-kid-{}", &random_text()?[..8]),
            visa_client_id: "tkm-sim-client".into(),
            visa_circuit: protocol::generate_rsa(2048)?,
            visa_client: protocol::generate_rsa(2048)?,
            mc_consumer_key: format!("sim-ck-{}", random_text()?),
            mc_signing: protocol::generate_rsa(2048)?,
            mc_circuit: protocol::generate_rsa(2048)?,
            mc_client: protocol::generate_rsa(2048)?,
            amex_api_key: format!("sim-amex-{}", &random_text()?[..8]),
            amex_secret: random_text()?,
        })
    }

    /// The public half of a key.
    pub fn public(key: &PKey<Private>) -> Result<PKey<Public>, ProtocolError> {
        protocol::public_of(key)
    }

    /// tkm's client spec for `circuit` against a simulator at `base_url`.
    pub fn client_spec(
        &self,
        settings: &CircuitsSettings,
        circuit: Circuit,
        base_url: &str,
    ) -> Result<ClientSpec, ProtocolError> {
        let sim = &settings.simulator;
        let credentials = match circuit {
            Circuit::Visa => Credentials::Visa {
                user: self.visa_user.clone(),
                password: SecretString::from(self.visa_password.clone()),
                key_id: self.visa_key_id.clone(),
                client_id: self.visa_client_id.clone(),
                circuit_public: protocol::public_of(&self.visa_circuit)?,
                own_private: self.visa_client.clone(),
            },
            Circuit::Mastercard => Credentials::Mastercard {
                consumer_key: self.mc_consumer_key.clone(),
                signing_key: self.mc_signing.clone(),
                circuit_public: protocol::public_of(&self.mc_circuit)?,
                own_private: self.mc_client.clone(),
                own_fingerprint: fle::fingerprint(&protocol::public_of(&self.mc_client)?)?,
            },
            Circuit::Amex => Credentials::Amex {
                api_key: self.amex_api_key.clone(),
                secret: SecretString::from(self.amex_secret.clone()),
            },
        };
        let client_cert = (circuit == Circuit::Visa)
            .then(|| (sim.client_cert_file.clone(), sim.client_key_file.clone()));
        let tls = TlsSpec {
            ca_file: Some(PathBuf::from(&sim.ca_file)),
            client_cert,
        };
        let mut spec = common(
            settings,
            settings.get(circuit),
            circuit,
            base_url.to_string(),
            tls,
            credentials,
        );
        // The simulator serves every BIN source itself: Visa by API, the others by file URL.
        if spec.bin_source == crate::config::BinSource::File {
            spec.bin_file = Some(format!(
                "{}/sim/bin-files/{}",
                spec.base_url,
                circuit.as_str().to_ascii_lowercase()
            ));
            spec.bin_file_sha256 = None;
        }
        Ok(spec)
    }
}
