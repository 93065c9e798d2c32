//! The simulator's Mastercard endpoints: PAR over OAuth 1.0a and field-level encryption, BIN pages, with every refusal.

use super::*;

pub(super) struct McCall {
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

pub(super) fn mc_call(sim: &Sim, pan: &str) -> McCall {
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

pub(super) async fn mc_send(sim: &Sim, path: &str, call: McCall) -> Reply {
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
