//! The simulator's Amex endpoint: batched PARs under the MAC header, with every refusal.

use super::*;

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

pub(super) async fn amex_call(sim: &Sim, pans: &[&str]) -> Reply {
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
pub(super) fn assert_amex_error(reply: &Reply, status: u16, code: &str) {
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
