//! P6's limit measured in the same run: how many PAR lookups per second one core can protect
//! and read with each circuit's protocol, counting both sides (tkm's client and the circuit,
//! here the simulator on the same machine), without HTTP.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::circuits::protocol::{self, amex_mac, fle, jwe, oauth1, ProtocolError};

fn per_second(
    budget: Duration,
    mut one: impl FnMut() -> Result<(), ProtocolError>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget {
        one()?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Lookups per second on one core, per circuit.
pub fn run(budget: Duration) -> anyhow::Result<BTreeMap<&'static str, f64>> {
    let (circuit_key, client_key) = (protocol::generate_rsa(2048)?, protocol::generate_rsa(2048)?);
    let (circuit_pub, client_pub) = (
        protocol::public_of(&circuit_key)?,
        protocol::public_of(&client_key)?,
    );
    let request = br#"{"clientId":"c","correlatnId":"00000000-0000-0000-0000-000000000000","primaryAccount":"4000000000000002"}"#;
    let answer = br#"{"paymentAccountReference":"V0010000000000000000000000000","primaryAccount":"4000000000000002"}"#;
    let mut rates = BTreeMap::new();

    rates.insert(
        "VISA",
        per_second(budget, || {
            let sent = jwe::encrypt(request, &circuit_pub, "k", 0)?;
            jwe::decrypt(&sent, &circuit_key)?;
            let back = jwe::encrypt(answer, &client_pub, "k", 0)?;
            jwe::decrypt(&back, &client_key)?;
            Ok(())
        })?,
    );

    let (circuit_fp, client_fp) = (
        fle::fingerprint(&circuit_pub)?,
        fle::fingerprint(&client_pub)?,
    );
    let signing_pub = client_pub.clone();
    rates.insert(
        "MASTERCARD",
        per_second(budget, || {
            let sent = fle::encrypt_field(request, &circuit_pub)?;
            let body = serde_json::to_vec(&sent).map_err(|_| ProtocolError::Crypto("json"))?;
            let url =
                "https://127.0.0.1:8543/par/paymentaccountreference/1/0/getPaymentAccountReference";
            let header =
                oauth1::authorization_header("POST", url, &body, "ck", "n", 0, &client_key)?;
            let parsed = oauth1::parse_authorization(&header)?;
            oauth1::verify(&parsed, "POST", url, &body, &signing_pub)?;
            fle::decrypt_field(&sent, &circuit_key, &circuit_fp)?;
            let back = fle::encrypt_field(answer, &client_pub)?;
            fle::decrypt_field(&back, &client_key, &client_fp)?;
            Ok(())
        })?,
    );

    rates.insert(
        "AMEX",
        per_second(budget, || {
            let input = amex_mac::MacInput {
                ts: 0,
                nonce: "n",
                method: "POST",
                path: "/payments/digital/v2/product_account_reference",
                host: "127.0.0.1",
                port: 8543,
            };
            let body = br#"["370000000000002"]"#;
            let header = amex_mac::authorization_header("k", b"secret", &input, body)?;
            let parsed = amex_mac::parse_authorization(&header)?;
            amex_mac::verify(&parsed, b"secret", &input, body)?;
            Ok(())
        })?,
    );
    Ok(rates)
}
