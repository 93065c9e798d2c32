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

// ---------------------------------------------------------------------------------------------
// Visa

fn visa_headers(keys: &SimulatorKeys) -> Vec<(String, String)> {
    let basic = STANDARD.encode(format!("{}:{}", keys.visa_user, keys.visa_password));
    vec![
        ("Authorization".into(), format!("Basic {basic}")),
        ("keyId".into(), keys.visa_key_id.clone()),
    ]
}

fn visa_jwe(keys: &SimulatorKeys, pan: &str, kid: &str, iat: i64) -> String {
    let plain = json!({
        "clientId": keys.visa_client_id,
        "correlatnId": uuid::Uuid::new_v4().to_string(),
        "primaryAccount": pan,
    });
    let circuit = SimulatorKeys::public(&keys.visa_circuit).unwrap();
    jwe::encrypt(&serde_json::to_vec(&plain).unwrap(), &circuit, kid, iat).unwrap()
}

fn visa_body(keys: &SimulatorKeys, pan: &str) -> Vec<u8> {
    let enc = visa_jwe(keys, pan, &keys.visa_key_id, now_ms());
    serde_json::to_vec(&json!({ "encData": enc })).unwrap()
}

/// The decrypted answer of a 200.
fn visa_open(keys: &SimulatorKeys, reply: &Reply) -> Value {
    assert_status(reply, 200);
    let (header, plain) =
        jwe::decrypt(reply.json["encData"].as_str().unwrap(), &keys.visa_client).unwrap();
    assert_eq!(header.kid, "tkm-sim-response");
    assert!((now_ms() - header.iat).abs() < 60_000);
    serde_json::from_slice(&plain).unwrap()
}

#[track_caller]
fn assert_visa_error(reply: &Reply, status: u16, code: &str) {
    assert_status(reply, status);
    let s = &reply.json["responseStatus"];
    assert_eq!(s["status"], status, "body: {}", reply.text);
    assert_eq!(s["code"], code, "body: {}", reply.text);
    assert_eq!(s["severity"], "ERROR");
    assert!(s["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn visa_inquiry(sim: &Sim, pan: &str) -> Value {
    let reply = sim
        .post(
            VISA_PAR,
            &visa_headers(&sim.keys),
            visa_body(&sim.keys, pan),
        )
        .await;
    visa_open(&sim.keys, &reply)
}

#[actix_web::test]
async fn visa_answers_the_deterministic_par_encrypted_to_tkm() {
    let sim = start().await;
    let pan = account("4111", 16, false);
    let answer = visa_inquiry(&sim, &pan).await;
    let par = answer["paymentAccountReference"].as_str().unwrap();
    assert_eq!(par, data::par_of(Circuit::Visa, &pan).unwrap());
    assert!(par.starts_with("V001") && par.len() == 29);
    assert_eq!(answer["primaryAccount"], pan.as_str());
    let date = answer["paymentAccountReferenceCreationDate"]
        .as_str()
        .unwrap();
    assert!(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok());
    // Stable: asked again, the same PAR.
    assert_eq!(
        visa_inquiry(&sim, &pan).await["paymentAccountReference"],
        par
    );
}

#[actix_web::test]
async fn visa_refuses_a_call_without_client_certificate() {
    let sim = start().await;
    let pan = account("4111", 16, false);
    let reply = sim
        .post_with(
            &sim.bare,
            VISA_PAR,
            &visa_headers(&sim.keys),
            visa_body(&sim.keys, &pan),
        )
        .await;
    assert_visa_error(&reply, 401, "4011");
    assert!(!reply.text.contains(&pan));
    assert_eq!(sim.stats("VISA").await["refused"], 1);
}

#[actix_web::test]
async fn visa_refuses_a_wrong_basic_password() {
    let sim = start().await;
    let mut headers = visa_headers(&sim.keys);
    let basic = STANDARD.encode(format!("{}:wrong", sim.keys.visa_user));
    headers[0].1 = format!("Basic {basic}");
    let reply = sim
        .post(
            VISA_PAR,
            &headers,
            visa_body(&sim.keys, &account("4111", 16, false)),
        )
        .await;
    assert_visa_error(&reply, 401, "4012");
}

#[actix_web::test]
async fn visa_refuses_a_wrong_key_id_header() {
    let sim = start().await;
    let mut headers = visa_headers(&sim.keys);
    headers[1].1 = "another-key".into();
    let reply = sim
        .post(
            VISA_PAR,
            &headers,
            visa_body(&sim.keys, &account("4111", 16, false)),
        )
        .await;
    assert_visa_error(&reply, 401, "4013");
}

#[actix_web::test]
async fn visa_refuses_a_jwe_whose_kid_is_not_the_key_id() {
    let sim = start().await;
    let enc = visa_jwe(
        &sim.keys,
        &account("4111", 16, false),
        "another-kid",
        now_ms(),
    );
    let body = serde_json::to_vec(&json!({ "encData": enc })).unwrap();
    let reply = sim.post(VISA_PAR, &visa_headers(&sim.keys), body).await;
    assert_visa_error(&reply, 400, "4002");
}

#[actix_web::test]
async fn visa_refuses_a_tampered_jwe() {
    let sim = start().await;
    let enc = visa_jwe(
        &sim.keys,
        &account("4111", 16, false),
        &sim.keys.visa_key_id,
        now_ms(),
    );
    let mut parts: Vec<String> = enc.split('.').map(str::to_owned).collect();
    let flipped = if parts[3].starts_with('A') { "B" } else { "A" };
    parts[3].replace_range(0..1, flipped);
    let body = serde_json::to_vec(&json!({ "encData": parts.join(".") })).unwrap();
    let reply = sim.post(VISA_PAR, &visa_headers(&sim.keys), body).await;
    assert_visa_error(&reply, 400, "4003");
}

#[actix_web::test]
async fn visa_refuses_a_stale_iat() {
    let sim = start().await;
    let stale = now_ms() - 6 * 60 * 1000;
    let enc = visa_jwe(
        &sim.keys,
        &account("4111", 16, false),
        &sim.keys.visa_key_id,
        stale,
    );
    let body = serde_json::to_vec(&json!({ "encData": enc })).unwrap();
    let reply = sim.post(VISA_PAR, &visa_headers(&sim.keys), body).await;
    assert_visa_error(&reply, 400, "4004");
    // And one from the future.
    let future = now_ms() + 6 * 60 * 1000;
    let enc = visa_jwe(
        &sim.keys,
        &account("4111", 16, false),
        &sim.keys.visa_key_id,
        future,
    );
    let body = serde_json::to_vec(&json!({ "encData": enc })).unwrap();
    let reply = sim.post(VISA_PAR, &visa_headers(&sim.keys), body).await;
    assert_visa_error(&reply, 400, "4004");
}

#[actix_web::test]
async fn visa_refuses_a_body_that_is_not_a_jwe() {
    let sim = start().await;
    let reply = sim
        .post(
            VISA_PAR,
            &visa_headers(&sim.keys),
            b"{\"encData\": 1}".to_vec(),
        )
        .await;
    assert_visa_error(&reply, 400, "4001");
}

/// Reads every Visa BIN page; returns (rows, pages).
async fn visa_pages(sim: &Sim) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let body = json!({
            "requestHeader": {"requestTS": chrono::Utc::now().to_rfc3339(), "requestMessageID": uuid::Uuid::new_v4().to_string()},
            "requestData": {"binRangeSearchIndex": rows.len().to_string(), "binRangeCount": "500", "paymentAccountType": "T"},
        });
        let reply = sim
            .post(
                VISA_BINS,
                &visa_headers(&sim.keys),
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        assert_status(&reply, 200);
        assert_eq!(reply.json["responseStatus"]["statusCode"], "CDI000");
        let page = reply.json["responseData"].as_array().unwrap().clone();
        assert!(page.len() <= 500);
        pages += 1;
        rows.extend(page);
        match reply.json["areNextOffsetRecordsAvailable"]
            .as_str()
            .unwrap()
        {
            "Y" => continue,
            "N" => return (rows, pages),
            other => panic!("areNextOffsetRecordsAvailable {other}"),
        }
    }
}

#[actix_web::test]
async fn visa_bin_ranges_page_by_index_with_card_rows_mixed_in() {
    let sim = start().await;
    let (rows, pages) = visa_pages(&sim).await;
    let tokens: Vec<&Value> = rows
        .iter()
        .filter(|r| r["binRangePaymentAccountType"] == "T")
        .collect();
    assert_eq!(tokens.len(), 3000);
    assert!(rows.iter().any(|r| r["binRangePaymentAccountType"] == "C"));
    assert_eq!(pages, rows.len().div_ceil(500));
    for r in &tokens {
        let (min, max) = (
            r["binRangeMinNum"].as_str().unwrap(),
            r["binRangeMaxNum"].as_str().unwrap(),
        );
        assert_eq!(min.len(), 21);
        assert!(BinRange::parse(
            Circuit::Visa,
            min,
            max,
            r["issuerBin"].as_str(),
            r["issuerName"].as_str()
        )
        .is_ok());
    }
    // The same set the CSV file lists.
    let csv = sim.get("/sim/bin-files/visa").await;
    let mins: Vec<&str> = csv
        .text
        .lines()
        .map(|l| l.split(';').next().unwrap())
        .collect();
    let api_mins: Vec<&str> = tokens
        .iter()
        .map(|r| r["binRangeMinNum"].as_str().unwrap())
        .collect();
    assert_eq!(mins, api_mins);
    // The BIN service needs the client certificate too.
    let reply = sim
        .post_with(
            &sim.bare,
            VISA_BINS,
            &visa_headers(&sim.keys),
            b"{}".to_vec(),
        )
        .await;
    assert_visa_error(&reply, 401, "4011");
    assert_eq!(sim.stats("VISA").await["calls"]["bins"], pages + 1);
}

// ---------------------------------------------------------------------------------------------
// Mastercard

struct McCall {
    body: Vec<u8>,
    authorization: String,
}

fn mc_body(keys: &SimulatorKeys, pan: &str) -> Vec<u8> {
    let payload = json!({"encryptedData": {"accountNumber": pan, "dataValidUntilTimestamp": "2030-01-01T00:00:00Z"}});
    let circuit = SimulatorKeys::public(&keys.mc_circuit).unwrap();
    let envelope = fle::encrypt_field(&serde_json::to_vec(&payload).unwrap(), &circuit).unwrap();
    serde_json::to_vec(
        &json!({"requestId": uuid::Uuid::new_v4().to_string(), "encryptedPayload": envelope}),
    )
    .unwrap()
}

fn mc_sign(
    sim: &Sim,
    path: &str,
    body: Vec<u8>,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    ts: i64,
    nonce: &str,
) -> McCall {
    let url = sim.url(path);
    let authorization = oauth1::authorization_header(
        "POST",
        &url,
        &body,
        &sim.keys.mc_consumer_key,
        nonce,
        ts,
        key,
    )
    .unwrap();
    McCall {
        body,
        authorization,
    }
}

fn mc_call(sim: &Sim, pan: &str) -> McCall {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    mc_sign(
        sim,
        MC_PAR,
        mc_body(&sim.keys, pan),
        &sim.keys.mc_signing,
        now_ms() / 1000,
        &nonce,
    )
}

async fn mc_send(sim: &Sim, path: &str, call: McCall) -> Reply {
    let headers = vec![("Authorization".to_owned(), call.authorization)];
    sim.post_with(&sim.bare, path, &headers, call.body).await
}

#[track_caller]
fn assert_mc_error(reply: &Reply, status: u16, code: &str) {
    assert_status(reply, status);
    let e = &reply.json["Errors"]["Error"][0];
    assert_eq!(e["ReasonCode"], code, "body: {}", reply.text);
    assert!(e["Source"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(e["Description"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(e["Recoverable"].is_boolean());
}

#[actix_web::test]
async fn mastercard_answers_the_deterministic_par_encrypted_to_tkm() {
    let sim = start().await;
    let pan = "5555555555554444";
    let reply = mc_send(&sim, MC_PAR, mc_call(&sim, pan)).await;
    assert_status(&reply, 200);
    assert!(reply.json["responseId"].as_str().is_some());
    let envelope: fle::Envelope =
        serde_json::from_value(reply.json["encryptedPayload"].clone()).unwrap();
    let own = protocol::public_of(&sim.keys.mc_client).unwrap();
    let plain = fle::decrypt_field(
        &envelope,
        &sim.keys.mc_client,
        &fle::fingerprint(&own).unwrap(),
    )
    .unwrap();
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    let par = payload["encryptedData"]["paymentAccountReference"]
        .as_str()
        .unwrap();
    assert_eq!(par, data::par_of(Circuit::Mastercard, pan).unwrap());
    assert!(par.starts_with("5001") && par.len() == 29);
    assert_eq!(
        payload["encryptedData"]["dataValidUntilTimestamp"],
        "2030-01-01T00:00:00Z"
    );
    assert!(!reply.text.contains(pan));
}

#[actix_web::test]
async fn mastercard_refuses_a_signature_by_another_key() {
    let sim = start().await;
    let stranger = protocol::generate_rsa(2048).unwrap();
    let call = mc_sign(
        &sim,
        MC_PAR,
        mc_body(&sim.keys, "5555555555554444"),
        &stranger,
        now_ms() / 1000,
        "n-stranger",
    );
    assert_mc_error(&mc_send(&sim, MC_PAR, call).await, 401, "INVALID_SIGNATURE");
}

#[actix_web::test]
async fn mastercard_refuses_a_body_changed_after_signing() {
    let sim = start().await;
    let mut call = mc_call(&sim, "5555555555554444");
    let mut body: Value = serde_json::from_slice(&call.body).unwrap();
    body["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    call.body = serde_json::to_vec(&body).unwrap();
    assert_mc_error(&mc_send(&sim, MC_PAR, call).await, 401, "INVALID_BODY_HASH");
}

#[actix_web::test]
async fn mastercard_refuses_a_stale_timestamp() {
    let sim = start().await;
    let ts = now_ms() / 1000 - 6 * 60;
    let call = mc_sign(
        &sim,
        MC_PAR,
        mc_body(&sim.keys, "5555555555554444"),
        &sim.keys.mc_signing,
        ts,
        "n-stale",
    );
    assert_mc_error(&mc_send(&sim, MC_PAR, call).await, 401, "EXPIRED_TIMESTAMP");
}

#[actix_web::test]
async fn mastercard_refuses_a_reused_nonce() {
    let sim = start().await;
    let ts = now_ms() / 1000;
    let body = mc_body(&sim.keys, "5555555555554444");
    let first = mc_sign(
        &sim,
        MC_PAR,
        body.clone(),
        &sim.keys.mc_signing,
        ts,
        "n-once",
    );
    assert_status(&mc_send(&sim, MC_PAR, first).await, 200);
    let again = mc_sign(&sim, MC_PAR, body, &sim.keys.mc_signing, ts, "n-once");
    assert_mc_error(&mc_send(&sim, MC_PAR, again).await, 401, "NONCE_REUSED");
    let stats = sim.stats("MASTERCARD").await;
    assert_eq!(stats["calls"]["par"], 2);
    assert_eq!(stats["refused"], 1);
    assert_eq!(stats["units"], 1);
}

#[actix_web::test]
async fn mastercard_error_in_body_comes_with_200() {
    let sim = start().await;
    let set = sim
        .admin(
            "/sim/faults",
            json!({"circuit": "MASTERCARD", "errorInBodyRate": 1.0}),
        )
        .await;
    assert_status(&set, 200);
    assert_eq!(set.json["errorInBodyRate"], 1.0);
    assert_eq!(set.json["circuit"], "MASTERCARD");
    assert_mc_error(
        &mc_send(&sim, MC_PAR, mc_call(&sim, "5555555555554444")).await,
        200,
        "SYSTEM_ERROR",
    );
    assert_eq!(sim.stats("MASTERCARD").await["errors"], 1);
}

#[actix_web::test]
async fn mastercard_bin_ranges_page_from_one() {
    let sim = start().await;
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let path = format!("{MC_BINS}?page={page}&size=50");
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let call = mc_sign(
            &sim,
            &path,
            b"{}".to_vec(),
            &sim.keys.mc_signing,
            now_ms() / 1000,
            &nonce,
        );
        let reply = mc_send(&sim, &path, call).await;
        assert_status(&reply, 200);
        assert_eq!(reply.json["currentPageNumber"], page);
        let total_pages = reply.json["totalPages"].as_u64().unwrap();
        let total_items = reply.json["totalItems"].as_u64().unwrap();
        assert_eq!(total_pages, total_items.div_ceil(50));
        let got = reply.json["items"].as_array().unwrap();
        assert!(got.len() <= 50);
        items.extend(got.iter().cloned());
        if page >= total_pages {
            assert_eq!(items.len() as u64, total_items);
            break;
        }
        page += 1;
    }
    let tokens: Vec<&Value> = items.iter().filter(|i| i["tokenFlag"] == "Y").collect();
    assert_eq!(tokens.len(), 200);
    assert!(items.iter().any(|i| i["tokenFlag"] == "N"));
    for t in tokens {
        let low = t["lowAccountRange"].as_str().unwrap();
        assert!(low.len() == 16 && low.starts_with('5'));
        assert!(t["binNum"].as_str().is_some() && t["customerName"].as_str().is_some());
    }
    // Unsigned: refused.
    let reply = sim
        .post_with(
            &sim.bare,
            &format!("{MC_BINS}?page=1&size=50"),
            &[],
            b"{}".to_vec(),
        )
        .await;
    assert_mc_error(&reply, 401, "INVALID_AUTHORIZATION");
}

// ---------------------------------------------------------------------------------------------
// Amex

fn amex_sign(sim: &Sim, body: &[u8], secret: &[u8], ts: i64, nonce: &str) -> String {
    let input = amex_mac::MacInput {
        ts,
        nonce,
        method: "POST",
        path: AMEX_PAR,
        host: "127.0.0.1",
        port: sim.port(),
    };
    amex_mac::authorization_header(&sim.keys.amex_api_key, secret, &input, body).unwrap()
}

async fn amex_send(sim: &Sim, api_key: &str, authorization: String, body: Vec<u8>) -> Reply {
    let headers = vec![
        ("x-amex-api-key".to_owned(), api_key.to_owned()),
        (
            "x-amex-request-id".to_owned(),
            uuid::Uuid::new_v4().to_string(),
        ),
        ("Authorization".to_owned(), authorization),
    ];
    sim.post_with(&sim.bare, AMEX_PAR, &headers, body).await
}

async fn amex_call(sim: &Sim, pans: &[&str]) -> Reply {
    let body = serde_json::to_vec(&pans).unwrap();
    let nonce = uuid::Uuid::new_v4().to_string();
    let auth = amex_sign(
        sim,
        &body,
        sim.keys.amex_secret.as_bytes(),
        now_ms(),
        &nonce,
    );
    amex_send(sim, &sim.keys.amex_api_key, auth, body).await
}

#[track_caller]
fn assert_amex_error(reply: &Reply, status: u16, code: &str) {
    assert_status(reply, status);
    assert_eq!(reply.json["error_code"], code, "body: {}", reply.text);
    assert!(reply.json["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[actix_web::test]
async fn amex_answers_a_batch_with_pars_and_no_par_entries() {
    let sim = start().await;
    let with = account("3712", 15, false);
    let without = account("3712", 15, true);
    let reply = amex_call(&sim, &[&with, &without]).await;
    assert_status(&reply, 200);
    let entries = reply.json.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["input"], with.as_str());
    assert_eq!(entries[0]["success"], true);
    assert_eq!(
        entries[0]["par"],
        data::par_of(Circuit::Amex, &with).unwrap()
    );
    assert!(entries[0]["par"].as_str().unwrap().starts_with("A001"));
    assert_eq!(entries[1]["input"], without.as_str());
    assert_eq!(entries[1]["success"], false);
    assert!(entries[1].get("par").is_none());
    assert_eq!(sim.stats("AMEX").await["units"], 2);
}

#[actix_web::test]
async fn amex_refuses_a_wrong_secret() {
    let sim = start().await;
    let body = serde_json::to_vec(&["371200000000001"]).unwrap();
    let auth = amex_sign(&sim, &body, b"not-the-secret", now_ms(), "n-wrong");
    assert_amex_error(
        &amex_send(&sim, &sim.keys.amex_api_key, auth, body).await,
        401,
        "INVALID_BODYHASH",
    );
}

#[actix_web::test]
async fn amex_refuses_a_mac_made_with_another_secret() {
    let sim = start().await;
    let body = serde_json::to_vec(&["371200000000001"]).unwrap();
    let ts = now_ms();
    let input = amex_mac::MacInput {
        ts,
        nonce: "n-mac",
        method: "POST",
        path: AMEX_PAR,
        host: "127.0.0.1",
        port: sim.port(),
    };
    let bodyhash = amex_mac::hmac_b64(sim.keys.amex_secret.as_bytes(), &body).unwrap();
    let mac = amex_mac::hmac_b64(
        b"not-the-secret",
        amex_mac::signing_string(&input, &bodyhash).as_bytes(),
    )
    .unwrap();
    let auth = format!(
        "MAC id=\"{}\",ts=\"{ts}\",nonce=\"n-mac\",bodyhash=\"{bodyhash}\",mac=\"{mac}\"",
        sim.keys.amex_api_key
    );
    assert_amex_error(
        &amex_send(&sim, &sim.keys.amex_api_key, auth, body).await,
        401,
        "INVALID_MAC",
    );
}

#[actix_web::test]
async fn amex_refuses_a_body_changed_after_signing() {
    let sim = start().await;
    let body = serde_json::to_vec(&["371200000000001"]).unwrap();
    let auth = amex_sign(
        &sim,
        &body,
        sim.keys.amex_secret.as_bytes(),
        now_ms(),
        "n-tamper",
    );
    let tampered = serde_json::to_vec(&["371200000000002"]).unwrap();
    assert_amex_error(
        &amex_send(&sim, &sim.keys.amex_api_key, auth, tampered).await,
        401,
        "INVALID_BODYHASH",
    );
}

#[actix_web::test]
async fn amex_refuses_a_stale_ts() {
    let sim = start().await;
    let body = serde_json::to_vec(&["371200000000001"]).unwrap();
    let auth = amex_sign(
        &sim,
        &body,
        sim.keys.amex_secret.as_bytes(),
        now_ms() - 6 * 60 * 1000,
        "n-stale",
    );
    assert_amex_error(
        &amex_send(&sim, &sim.keys.amex_api_key, auth, body).await,
        401,
        "EXPIRED_TIMESTAMP",
    );
}

#[actix_web::test]
async fn amex_refuses_a_reused_nonce() {
    let sim = start().await;
    let body = serde_json::to_vec(&["371200000000001"]).unwrap();
    let ts = now_ms();
    let auth = amex_sign(&sim, &body, sim.keys.amex_secret.as_bytes(), ts, "n-once");
    assert_status(
        &amex_send(&sim, &sim.keys.amex_api_key, auth.clone(), body.clone()).await,
        200,
    );
    assert_amex_error(
        &amex_send(&sim, &sim.keys.amex_api_key, auth, body).await,
        401,
        "NONCE_REUSED",
    );
}

#[actix_web::test]
async fn amex_refuses_a_wrong_api_key() {
    let sim = start().await;
    let body = serde_json::to_vec(&["371200000000001"]).unwrap();
    let auth = amex_sign(
        &sim,
        &body,
        sim.keys.amex_secret.as_bytes(),
        now_ms(),
        "n-key",
    );
    assert_amex_error(
        &amex_send(&sim, "another-api-key", auth, body).await,
        401,
        "INVALID_API_KEY",
    );
}

#[actix_web::test]
async fn amex_refuses_empty_and_oversized_batches() {
    let sim = start().await;
    let eleven: Vec<String> = (0..11).map(|i| format!("3712000000000{i:02}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    assert_amex_error(&amex_call(&sim, &eleven).await, 400, "INVALID_REQUEST");
    assert_amex_error(&amex_call(&sim, &[]).await, 400, "INVALID_REQUEST");
    assert_eq!(sim.stats("AMEX").await["refused"], 2);
}

// ---------------------------------------------------------------------------------------------
// Tokens, faults, stats

#[actix_web::test]
async fn a_token_gives_a_no_par_pan_its_par_and_answers_the_same_par() {
    let sim = start().await;
    let pan = account("4539", 16, true);
    let before = visa_inquiry(&sim, &pan).await;
    assert!(before.get("paymentAccountReference").is_none(), "{before}");
    assert_eq!(before["primaryAccount"], pan.as_str());

    let reply = sim
        .admin("/sim/tokens", json!({"pan": pan, "count": 3}))
        .await;
    assert_status(&reply, 200);
    let tokens: Vec<String> = serde_json::from_value(reply.json["tokens"].clone()).unwrap();
    assert_eq!(tokens.len(), 3);

    let csv = sim.get("/sim/bin-files/visa").await;
    assert_status(&csv, 200);
    assert!(csv
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let ranges: Vec<BinRange> = csv
        .text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            assert_eq!(f.len(), 3, "{l}");
            BinRange::parse(Circuit::Visa, f[0], f[1], Some(f[2]), None).unwrap()
        })
        .collect();
    assert_eq!(ranges.len(), 3000);

    let par = data::par_of(Circuit::Visa, &pan).unwrap();
    assert_eq!(reply.json["par"], par.as_str());
    for token in &tokens {
        assert_eq!(token.len(), 16);
        assert!(token.starts_with('4'));
        assert!(data::luhn_valid(token));
        assert!(
            ranges.iter().any(|r| r.contains(token)),
            "token outside every range"
        );
        assert_eq!(
            visa_inquiry(&sim, token).await["paymentAccountReference"],
            par.as_str()
        );
    }
    assert_eq!(
        visa_inquiry(&sim, &pan).await["paymentAccountReference"],
        par.as_str()
    );
}

#[actix_web::test]
async fn amex_tokens_are_15_digits_and_give_the_card_its_par() {
    let sim = start().await;
    let pan = account("3787", 15, true);
    assert_eq!(amex_call(&sim, &[&pan]).await.json[0]["success"], false);
    let reply = sim
        .admin("/sim/tokens", json!({"pan": pan, "count": 2}))
        .await;
    assert_status(&reply, 200);
    let tokens: Vec<String> = serde_json::from_value(reply.json["tokens"].clone()).unwrap();
    let csv = sim.get("/sim/bin-files/amex").await.text;
    for token in &tokens {
        assert_eq!(token.len(), 15);
        assert!(token.starts_with("34") || token.starts_with("37"));
        assert!(data::luhn_valid(token));
        assert!(csv.lines().any(|l| {
            let f: Vec<&str> = l.split(';').collect();
            BinRange::parse(Circuit::Amex, f[0], f[1], None, None)
                .unwrap()
                .contains(token)
        }));
    }
    let after = amex_call(&sim, &[&pan, &tokens[0]]).await;
    let par = data::par_of(Circuit::Amex, &pan).unwrap();
    assert_eq!(after.json[0]["par"], par.as_str());
    assert_eq!(after.json[1]["par"], par.as_str());
}

#[actix_web::test]
async fn sim_tokens_refuses_bad_requests() {
    let sim = start().await;
    for body in [
        json!({"pan": "4111111111111111", "count": 0}),
        json!({"pan": "4111111111111111", "count": 101}),
        json!({"pan": "6011111111111117", "count": 1}),
        json!({"pan": "41111", "count": 1}),
        json!({"count": 1}),
    ] {
        let reply = sim.admin("/sim/tokens", body.clone()).await;
        assert_status(&reply, 400);
        assert!(reply.json["error"].as_str().is_some(), "{body}");
    }
    assert_status(&sim.get("/sim/bin-files/discover").await, 404);
}

#[actix_web::test]
async fn the_contract_rate_answers_429_with_retry_after() {
    // Configured at start: 1 unit per second for every circuit.
    let mut configured = settings();
    configured.contract_rate = 1;
    let sim = start_with(configured).await;
    let pan = account("4111", 16, false);
    let mut limited = 0;
    for _ in 0..5 {
        let reply = sim
            .post(
                VISA_PAR,
                &visa_headers(&sim.keys),
                visa_body(&sim.keys, &pan),
            )
            .await;
        if reply.status == 429 {
            assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
            assert_visa_error(&reply, 429, "9429");
            limited += 1;
        } else {
            assert_status(&reply, 200);
        }
    }
    assert!(limited >= 2, "{limited} of 5 calls limited");
    assert_eq!(sim.stats("VISA").await["tooManyRequests"], limited);

    // Set by /sim/faults: an Amex batch of 3 PANs is 3 units.
    let set = sim
        .admin("/sim/faults", json!({"circuit": "AMEX", "contractRate": 2}))
        .await;
    assert_status(&set, 200);
    assert_eq!(set.json["contractRate"], 2);
    assert_eq!(set.json["errorRate"], 0.0);
    let reply = amex_call(
        &sim,
        &["371200000000001", "371200000000002", "371200000000003"],
    )
    .await;
    assert_amex_error(&reply, 429, "TOO_MANY_REQUESTS");
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
}

#[actix_web::test]
async fn an_outage_answers_503_until_reset() {
    let sim = start().await;
    let set = sim
        .admin("/sim/faults", json!({"circuit": "VISA", "outageSecs": 60}))
        .await;
    assert_status(&set, 200);
    assert!(set.json["outageSecs"].as_f64().unwrap() > 50.0);
    let pan = account("4111", 16, false);
    let reply = sim
        .post(
            VISA_PAR,
            &visa_headers(&sim.keys),
            visa_body(&sim.keys, &pan),
        )
        .await;
    assert_visa_error(&reply, 503, "9503");
    // Even an unauthenticated call: the circuit is down.
    let reply = sim
        .post_with(&sim.bare, VISA_PAR, &[], b"{}".to_vec())
        .await;
    assert_status(&reply, 503);
    // Other circuits are up.
    assert_status(
        &mc_send(&sim, MC_PAR, mc_call(&sim, "5555555555554444")).await,
        200,
    );
    assert_eq!(sim.stats("VISA").await["errors"], 2);

    assert_status(&sim.admin("/sim/reset", json!({})).await, 200);
    let stats = sim.stats("VISA").await;
    assert_eq!(stats["errors"], 0);
    assert_eq!(stats["calls"]["par"], 0);
    assert_status(
        &sim.post(
            VISA_PAR,
            &visa_headers(&sim.keys),
            visa_body(&sim.keys, &pan),
        )
        .await,
        200,
    );
}

#[actix_web::test]
async fn injected_errors_and_malformed_bodies() {
    let sim = start().await;
    sim.admin("/sim/faults", json!({"circuit": "AMEX", "errorRate": 1}))
        .await;
    assert_amex_error(
        &amex_call(&sim, &["371200000000001"]).await,
        503,
        "SERVICE_UNAVAILABLE",
    );
    sim.admin(
        "/sim/faults",
        json!({"circuit": "AMEX", "malformedRate": 1, "latencyMs": 200}),
    )
    .await;
    let started = std::time::Instant::now();
    let reply = amex_call(&sim, &["371200000000001"]).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_status(&reply, 200);
    assert_eq!(reply.json, Value::Null, "not JSON: {}", reply.text);
    assert_eq!(sim.stats("AMEX").await["errors"], 2);
    let bad = sim
        .admin("/sim/faults", json!({"circuit": "AMEX", "errorRate": 2}))
        .await;
    assert_status(&bad, 400);
    let bad = sim
        .admin("/sim/faults", json!({"circuit": "DISCOVER"}))
        .await;
    assert_status(&bad, 400);
}

#[actix_web::test]
async fn stats_count_units_per_second() {
    let sim = start().await;
    let pan = account("4111", 16, false);
    visa_inquiry(&sim, &pan).await;
    visa_inquiry(&sim, &pan).await;
    assert_status(
        &amex_call(
            &sim,
            &["371200000000001", "371200000000002", "371200000000003"],
        )
        .await,
        200,
    );

    let visa = sim.stats("VISA").await;
    assert_eq!(visa["calls"]["par"], 2);
    assert_eq!(visa["units"], 2);
    let per_second = visa["perSecond"].as_object().unwrap();
    let sum: u64 = per_second.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum, 2);
    let now = chrono::Utc::now().timestamp();
    for second in per_second.keys() {
        let second: i64 = second.parse().unwrap();
        assert!((now - 60..=now).contains(&second));
    }
    assert!((1..=2).contains(&visa["maxPerSecond"].as_u64().unwrap()));

    let amex = sim.stats("AMEX").await;
    assert_eq!(amex["calls"]["par"], 1);
    assert_eq!(amex["units"], 3);
    assert_eq!(amex["maxPerSecond"], 3);
    assert_eq!(
        amex["perSecond"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap(),
        3
    );
    assert_eq!(amex["tooManyRequests"], 0);
    assert_eq!(amex["refused"], 0);
    assert_eq!(sim.stats("MASTERCARD").await["units"], 0);
}

#[actix_web::test]
async fn the_keys_dir_keeps_the_same_credentials_across_starts() {
    let dir = root().join(format!(
        "target/test-secrets/sim-keys-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let first = SimulatorKeys::load_or_generate(&dir).unwrap();
    let second = SimulatorKeys::load_or_generate(&dir).unwrap();
    assert_eq!(first.visa_password, second.visa_password);
    assert!(first.visa_circuit.public_eq(&second.visa_circuit));
    assert!(dir.join("credentials.toml").exists());
    let sim = Simulator::start(&settings(), second).await.unwrap();
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    sim.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
