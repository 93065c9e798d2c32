//! The circuit simulator over real TLS: each protocol accepted, and every refusal the real circuit makes.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use awc::http::header::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tkm::circuits::protocol::{self, amex_mac, fle, jwe, oauth1};
use tkm::circuits::simulator::{data, Simulator, SimulatorKeys};
use tkm::config::SimulatorSettings;
use tkm::domain::{BinRange, Circuit};

use crate::helpers::{certs, connector, root};

const VISA_PAR: &str = "/par/v1/inquiry";
const VISA_BINS: &str = "/v1/binRangeDetails";
const MC_PAR: &str = "/par/paymentaccountreference/1/0/getPaymentAccountReference";
const MC_BINS: &str = "/bin-resources/bin-ranges";
const AMEX_PAR: &str = "/payments/digital/v2/product_account_reference";
const NO_PAR_SHARE: f64 = 0.2;

// ---------------------------------------------------------------------------------------------
// Harness

/// The rows of a `;`-separated file, read with tkm's CSV dialect.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    tkm::csv_dialect::reader()
        .from_reader(text.as_bytes())
        .into_records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn keys() -> SimulatorKeys {
    static KEYS: OnceLock<SimulatorKeys> = OnceLock::new();
    KEYS.get_or_init(|| SimulatorKeys::generate().unwrap())
        .clone()
}

fn ensure_certs() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new(root().join("certs/gen-dev-certs.sh"))
            .status()
            .unwrap();
        assert!(status.success());
    });
}

fn settings() -> SimulatorSettings {
    ensure_certs();
    let all = tkm::config::Settings::from_layers(Some(&root().join("config/dev.toml"))).unwrap();
    let mut s = all.circuits.simulator;
    s.bind = "127.0.0.1:0".parse().unwrap();
    s.cert_file = certs().join("server.crt");
    s.key_file = certs().join("server.key");
    s.ca_file = certs().join("ca.crt");
    s.client_cert_file = certs().join("circuit-client.crt");
    s.client_key_file = certs().join("circuit-client.key");
    s.no_par_share = NO_PAR_SHARE;
    s.visa_ranges = 3000;
    s.other_ranges = 200;
    s.contract_rate = 0;
    s
}

struct Sim {
    sim: Simulator,
    keys: SimulatorKeys,
    /// Presents tkm's circuit client certificate.
    cert: awc::Client,
    /// Presents none.
    bare: awc::Client,
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    json: Value,
    text: String,
}

fn awc_client(cert: Option<&str>) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().openssl(connector(cert, &certs().join("ca.crt"))))
        .timeout(Duration::from_secs(20))
        .finish()
}

async fn start_with(settings: SimulatorSettings) -> Sim {
    let keys = keys();
    let sim = Simulator::start(&settings, keys.clone()).await.unwrap();
    Sim {
        sim,
        keys,
        cert: awc_client(Some("circuit-client")),
        bare: awc_client(None),
    }
}

async fn start() -> Sim {
    start_with(settings()).await
}

async fn read<S>(mut res: awc::ClientResponse<S>) -> Reply
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let bytes = res.body().limit(16 * 1024 * 1024).await.unwrap();
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    fn port(&self) -> u16 {
        self.sim.addr().port()
    }

    async fn post_with(
        &self,
        client: &awc::Client,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = client
            .post(self.url(path))
            .insert_header(("content-type", "application/json"));
        for (k, v) in headers {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        read(req.send_body(body).await.unwrap()).await
    }

    async fn post(&self, path: &str, headers: &[(String, String)], body: Vec<u8>) -> Reply {
        self.post_with(&self.cert, path, headers, body).await
    }

    async fn admin(&self, path: &str, body: Value) -> Reply {
        self.post_with(&self.bare, path, &[], serde_json::to_vec(&body).unwrap())
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        read(self.bare.get(self.url(path)).send().await.unwrap()).await
    }

    async fn stats(&self, circuit: &str) -> Value {
        self.get("/sim/stats").await.json["circuits"][circuit].clone()
    }
}

#[track_caller]
fn assert_status(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The first account of `prefix` + a counter that (does not) wait for a token.
fn account(prefix: &str, len: usize, waits: bool) -> String {
    (0u32..)
        .map(|i| {
            let body = format!("{prefix}{i:0>width$}", width = len - prefix.len() - 1);
            format!("{body}{}", data::luhn_check_digit(&body))
        })
        .find(|pan| data::waits_for_token(pan, NO_PAR_SHARE).unwrap() == waits)
        .unwrap()
}

mod admin;
mod amex;
mod mastercard;
mod visa;
