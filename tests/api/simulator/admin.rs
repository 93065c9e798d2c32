//! The simulator's `/sim/*` endpoints: tokens, fault injection, statistics, kept keys.

use super::amex::{amex_call, assert_amex_error};
use super::mastercard::{mc_call, mc_send};
use super::visa::{assert_visa_error, visa_body, visa_headers, visa_inquiry};
use super::*;

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
    let ranges: Vec<BinRange> = csv_rows(&csv.text)
        .iter()
        .map(|f| {
            assert_eq!(f.len(), 3, "{f:?}");
            BinRange::parse(Circuit::Visa, &f[0], &f[1], Some(&f[2]), None).unwrap()
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
        assert!(csv_rows(&csv).iter().any(|f| {
            BinRange::parse(Circuit::Amex, &f[0], &f[1], None, None)
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
async fn any_retry_after_can_be_injected_into_429s() {
    let sim = start().await;
    let pan = account("4111", 16, false);
    for value in [
        "18446744073709551615",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "-5",
        "abc",
    ] {
        let set = sim
            .admin(
                "/sim/faults",
                json!({"circuit": "VISA", "tooManyRequestsRate": 1, "retryAfter": value}),
            )
            .await;
        assert_status(&set, 200);
        assert_eq!(set.json["retryAfter"], value);
        let reply = sim
            .post(
                VISA_PAR,
                &visa_headers(&sim.keys),
                visa_body(&sim.keys, &pan),
            )
            .await;
        assert_visa_error(&reply, 429, "9429");
        assert_eq!(reply.headers.get("retry-after").unwrap(), value);
    }
    assert_eq!(sim.stats("VISA").await["tooManyRequests"], 4);
    // Without `retryAfter` the header is 1.
    sim.admin(
        "/sim/faults",
        json!({"circuit": "AMEX", "tooManyRequestsRate": 1}),
    )
    .await;
    let reply = amex_call(&sim, &["371200000000001"]).await;
    assert_amex_error(&reply, 429, "TOO_MANY_REQUESTS");
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    // A value no header can carry is refused.
    let bad = sim
        .admin(
            "/sim/faults",
            json!({"circuit": "VISA", "tooManyRequestsRate": 1, "retryAfter": "1\r\nX: y"}),
        )
        .await;
    assert_status(&bad, 400);
    // An absurd outage is a long one, not a crash.
    let set = sim
        .admin(
            "/sim/faults",
            json!({"circuit": "VISA", "outageSecs": u64::MAX}),
        )
        .await;
    assert_status(&set, 200);
    assert!(set.json["outageSecs"].as_f64().unwrap() > 1e6);
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
