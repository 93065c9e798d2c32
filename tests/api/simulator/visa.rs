//! The simulator's Visa endpoints: PAR inquiry (mTLS, Basic, keyId, JWE) and BIN pages, with every refusal.

use super::*;

pub(super) fn visa_headers(keys: &SimulatorKeys) -> Vec<(String, String)> {
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

pub(super) fn visa_body(keys: &SimulatorKeys, pan: &str) -> Vec<u8> {
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
pub(super) fn assert_visa_error(reply: &Reply, status: u16, code: &str) {
    assert_status(reply, status);
    let s = &reply.json["responseStatus"];
    assert_eq!(s["status"], status, "body: {}", reply.text);
    assert_eq!(s["code"], code, "body: {}", reply.text);
    assert_eq!(s["severity"], "ERROR");
    assert!(s["message"].as_str().is_some_and(|m| !m.is_empty()));
}

pub(super) async fn visa_inquiry(sim: &Sim, pan: &str) -> Value {
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
    let rows = csv_rows(&csv.text);
    let mins: Vec<&str> = rows.iter().map(|f| f[0].as_str()).collect();
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
