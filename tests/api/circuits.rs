//! The circuits end to end: admin-forced BIN refreshes (and the ones refused, R5), PAR cycles
//! through the simulator over real TLS, consent gating, deletions, 429s, outages and the limiter.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use tkm::circuits::simulator::data;
use tkm::config::Settings;
use tkm::db::bin_ranges;
use tkm::domain::{BinRange, Circuit};

use crate::broker::{channel, encrypt, publish, wait_for_topology};
use crate::helpers::{
    client, eventually, spawn_app, spawn_app_with, tax_code, test_settings, TestApp, CANARY_SALT,
};

fn sha(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{value}{CANARY_SALT}")))
}

/// Calls the app's simulator (`/sim/*`, no client certificate).
async fn sim(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let base = app.simulator_url.clone().expect("simulator mode");
    let req = client(None).request(method, format!("{base}{path}"));
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("simulator answers");
    let bytes = res.body().limit(16 << 20).await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Waits for a job to end and returns it.
async fn job_end(app: &TestApp, id: &str) -> Value {
    eventually(Duration::from_secs(60), || async {
        let r = app
            .call(
                "admin",
                Method::GET,
                &format!("/admin/jobs/{id}"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let state = r.json["state"].as_str().unwrap_or_default().to_string();
        (state == "SUCCEEDED" || state == "FAILED").then_some(r.json)
    })
    .await
    .expect("the job ends")
}

async fn refresh_bins(app: &TestApp, query: &str) -> Value {
    let r = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/bin-ranges/refresh{query}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    job_end(app, r.json["jobId"].as_str().unwrap()).await
}

/// Starts a PAR cycle once none runs (a running cycle answers its own job id, and may have
/// queued its lookups before the test's cards existed), and waits for its end.
async fn refresh_pars(app: &TestApp, query: &str) -> Value {
    let id = refresh_pars_started(app, query).await;
    job_end(app, &id).await
}

async fn status(app: &TestApp) -> Value {
    let r = app
        .call("admin", Method::GET, "/admin/status", &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn consent(app: &TestApp, tc: &str, consent: &str) {
    let r = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", tc), ("Client-Id", "t")],
            Some(json!({"consent": consent})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Publishes card events (PAN, no PAR) for `tc` and waits until the cards are stored.
async fn enrol(app: &TestApp, tc: &str, pans: &[(String, &str)]) {
    let (_c, ch) = channel().await;
    for (i, (pan, circuit)) in pans.iter().enumerate() {
        let event = json!({"taxCode": tc, "pan": pan, "circuit": circuit,
            "timestamp": "2026-11-23 10:15:00:0000", "tokens": []});
        let body = encrypt(app, &serde_json::to_vec(&event).unwrap());
        publish(
            &ch,
            &app.settings.rabbitmq.card_events_queue,
            &body,
            &format!("e-{i}-{pan}"),
        )
        .await;
    }
    let want = pans.len() as i64;
    let stored = eventually(Duration::from_secs(20), || async {
        let n: i64 = app
            .pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM card", &[])
            .await
            .unwrap()
            .get(0);
        (n >= want).then_some(())
    })
    .await;
    assert!(stored.is_some(), "cards stored");
}

async fn par_of_card(app: &TestApp, pan: &str) -> Option<String> {
    let r = app
        .call(
            "platform",
            Method::GET,
            "/cards",
            &[("hpan", &sha(pan))],
            None,
        )
        .await;
    r.json["par"].as_str().map(str::to_string)
}

/// A PAN of `circuit` (prefix) that has a PAR in the simulator from the start, or not.
fn pan(prefix: &str, len: usize, has_par: bool, share: f64) -> String {
    loop {
        let mut p = prefix.to_string();
        while p.len() < len {
            p.push(char::from(b'0' + rand::random::<u8>() % 10));
        }
        if data::waits_for_token(&p, share).unwrap() != has_par {
            return p;
        }
    }
}

#[actix_web::test]
async fn an_admin_refreshes_bin_ranges_and_sees_them_in_the_status() {
    let app = spawn_app().await;
    let sim_settings = &app.settings.circuits.simulator;

    let end = refresh_bins(&app, "").await;
    assert_eq!(end["state"], "SUCCEEDED", "{end}");
    assert_eq!(end["done"], 3);
    let s = status(&app).await;
    assert_eq!(
        s["circuits"]["VISA"]["binRanges"],
        sim_settings.visa_ranges as i64
    );
    assert_eq!(
        s["circuits"]["MASTERCARD"]["binRanges"],
        sim_settings.other_ranges as i64
    );
    assert_eq!(
        s["circuits"]["AMEX"]["binRanges"],
        sim_settings.other_ranges as i64
    );
    assert!(s["circuits"]["VISA"]["lastBinRefresh"].is_string());
    assert_eq!(s["actors"]["par-resolver"]["alive"], true);
    assert_eq!(s["actors"]["circuit-poller:AMEX"]["alive"], true);
    assert!(s["outbox"]["backlog"].is_number());

    // Stored with the circuit's columns and the audit columns.
    let row = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT length(min_bound), token, created_by FROM bin_range WHERE circuit = 'VISA' LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i32>(0) >= 6);
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), "circuit-poller:VISA");

    let jobs = app
        .call("admin", Method::GET, "/admin/jobs", &[], None)
        .await;
    assert!(
        jobs.json
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == end["id"] && j["kind"] == "bin-refresh"),
        "{}",
        jobs.text
    );

    // Only admins; bad queries and unknown jobs named.
    let r = app
        .call("io", Method::POST, "/admin/bin-ranges/refresh", &[], None)
        .await;
    r.assert_error(403, 9403);
    let r = app
        .call(
            "admin",
            Method::POST,
            "/admin/bin-ranges/refresh?circuit=DINERS",
            &[],
            None,
        )
        .await;
    r.assert_error(400, 4000);
    let r = app
        .call(
            "admin",
            Method::GET,
            &format!("/admin/jobs/{}", uuid::Uuid::new_v4()),
            &[],
            None,
        )
        .await;
    r.assert_error(404, 4001);
}

#[actix_web::test]
async fn a_failing_or_shrunken_refresh_keeps_the_previous_ranges() {
    let app = spawn_app().await;
    assert_eq!(
        refresh_bins(&app, "?circuit=VISA").await["state"],
        "SUCCEEDED"
    );
    let before = bin_ranges::count(&app.pool, Circuit::Visa).await.unwrap();

    // An outage: the refresh fails, nothing changes, the failure is reported.
    let (code, _) = sim(
        &app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "VISA", "outageSecs": 60})),
    )
    .await;
    assert_eq!(code, 200);
    let end = refresh_bins(&app, "?circuit=VISA").await;
    assert_eq!(end["state"], "FAILED");
    assert!(end["error"].as_str().unwrap().contains("VISA"), "{end}");
    assert_eq!(
        bin_ranges::count(&app.pool, Circuit::Visa).await.unwrap(),
        before
    );
    assert!(status(&app).await["circuits"]["VISA"]["lastBinError"].is_string());

    // Garbage answers: the same.
    sim(&app, Method::POST, "/sim/reset", None).await;
    sim(
        &app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "VISA", "malformedRate": 1.0})),
    )
    .await;
    assert_eq!(refresh_bins(&app, "?circuit=VISA").await["state"], "FAILED");
    assert_eq!(
        bin_ranges::count(&app.pool, Circuit::Visa).await.unwrap(),
        before
    );
    sim(&app, Method::POST, "/sim/reset", None).await;

    // A set far smaller than the current one is refused unless forced.
    let many: Vec<BinRange> = (0..1000)
        .map(|i| {
            BinRange::parse(
                Circuit::Amex,
                &format!("{}00", 3400000 + i),
                &format!("{}99", 3400000 + i),
                None,
                None,
            )
            .unwrap()
        })
        .collect();
    bin_ranges::replace(&app.pool, Circuit::Amex, &many, 0.5, true, "test")
        .await
        .unwrap()
        .unwrap();
    let end = refresh_bins(&app, "?circuit=AMEX").await;
    assert_eq!(end["state"], "FAILED");
    assert!(end["error"].as_str().unwrap().contains("below"), "{end}");
    assert_eq!(
        bin_ranges::count(&app.pool, Circuit::Amex).await.unwrap(),
        1000
    );
    assert_eq!(
        refresh_bins(&app, "?circuit=AMEX&force=true").await["state"],
        "SUCCEEDED"
    );
    assert_eq!(
        bin_ranges::count(&app.pool, Circuit::Amex).await.unwrap(),
        app.settings.circuits.simulator.other_ranges as i64
    );
}

#[actix_web::test]
async fn a_consenting_citizens_card_gets_its_par_and_a_card_update_is_published() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let (visa, mastercard, amex) = (
        pan("4", 16, true, share),
        pan("5", 16, true, share),
        pan("37", 15, true, share),
    );
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    enrol(
        &app,
        &tc,
        &[
            (visa.clone(), "VISA"),
            (mastercard.clone(), "MASTERCARD"),
            (amex.clone(), "AMEX"),
        ],
    )
    .await;

    // New cards of a consenting citizen are asked at once, without an admin call.
    let asked = eventually(Duration::from_secs(20), || async {
        par_of_card(&app, &amex).await.map(|_| ())
    })
    .await;
    assert!(asked.is_some(), "the card gets its PAR by itself");
    // An admin cycle finds nothing left to ask.
    let end = refresh_pars(&app, "").await;
    assert_eq!(end["state"], "SUCCEEDED", "{end}");
    assert_eq!(
        par_of_card(&app, &visa).await,
        Some(data::par_of(Circuit::Visa, &visa).unwrap())
    );
    assert_eq!(
        par_of_card(&app, &mastercard).await,
        Some(data::par_of(Circuit::Mastercard, &mastercard).unwrap())
    );
    assert_eq!(
        par_of_card(&app, &amex).await,
        Some(data::par_of(Circuit::Amex, &amex).unwrap())
    );

    // The update is published with the PAR.
    let (_c, ch) = channel().await;
    let par = data::par_of(Circuit::Visa, &visa).unwrap();
    let found = eventually(Duration::from_secs(20), || async {
        let m = crate::broker::next(
            &ch,
            &app.settings.rabbitmq.card_updates_queue,
            Duration::from_millis(500),
        )
        .await?;
        let u: Value = serde_json::from_slice(&m.delivery.data).ok()?;
        u["cards"]
            .as_array()?
            .iter()
            .any(|c| {
                c["hpan"] == sha(&visa).as_str()
                    && c["par"] == par.as_str()
                    && c["action"] == "INSERT_UPDATE"
            })
            .then_some(())
    })
    .await;
    assert!(found.is_some(), "a card update with the PAR");

    let s = status(&app).await;
    assert!(s["circuits"]["VISA"]["lookupsToday"].as_i64().unwrap() >= 1);
    assert_eq!(s["circuits"]["VISA"]["backlog"], 0);
}

#[actix_web::test]
async fn a_newly_consenting_citizens_cards_are_asked_at_once_and_denied_ones_never() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let (allowing, denying) = (tax_code(), tax_code());
    let (card, other) = (pan("4", 16, true, share), pan("4", 16, true, share));
    consent(&app, &denying, "Deny").await;
    enrol(&app, &denying, &[(other.clone(), "VISA")]).await;
    enrol(&app, &allowing, &[(card.clone(), "VISA")]).await;
    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    assert_eq!(
        par_of_card(&app, &card).await,
        None,
        "no consent yet: not asked"
    );

    // The consent alone starts a cycle: no admin call.
    consent(&app, &allowing, "Allow").await;
    let par = eventually(Duration::from_secs(20), || par_of_card(&app, &card)).await;
    assert_eq!(par, Some(data::par_of(Circuit::Visa, &card).unwrap()));
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    assert_eq!(
        stats["circuits"]["VISA"]["units"], 1,
        "the denying citizen's card is never asked: {stats}"
    );
}

#[actix_web::test]
async fn deleted_cards_are_never_asked_and_no_par_yet_is_asked_again_later() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    let (deleted, waiting) = (pan("4", 16, true, share), pan("4", 16, false, share));
    // Enrolled before the consent (not owed yet), one deleted, then the consent queues the rest.
    enrol(
        &app,
        &tc,
        &[(deleted.clone(), "VISA"), (waiting.clone(), "VISA")],
    )
    .await;
    let r = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[("Tax-Code", &tc), ("hpan", &sha(&deleted))],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    consent(&app, &tc, "Allow").await;

    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    assert_eq!(
        stats["circuits"]["VISA"]["units"], 1,
        "only the live card: {stats}"
    );
    assert_eq!(par_of_card(&app, &waiting).await, None);
    let conn = app.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT reasks, last_outcome, next_at > now() + interval '1 hour' FROM par_lookup",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("not-yet"));
    assert!(row.get::<_, bool>(2), "asked again after reask_after");

    // A token appears; once the lookup is due again, the PAR comes.
    let (code, _) = sim(
        &app,
        Method::POST,
        "/sim/tokens",
        Some(json!({"pan": waiting, "count": 1})),
    )
    .await;
    assert_eq!(code, 200);
    conn.execute("UPDATE par_lookup SET next_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    assert_eq!(
        par_of_card(&app, &waiting).await,
        Some(data::par_of(Circuit::Visa, &waiting).unwrap())
    );
}

/// Settings with a slow contract rate and quick retries, for the fault tests.
async fn fault_settings(rate: u32) -> Settings {
    let mut s = test_settings().await;
    for c in [
        &mut s.circuits.visa,
        &mut s.circuits.mastercard,
        &mut s.circuits.amex,
    ] {
        c.rate_per_second = rate;
        c.burst = 1;
    }
    s.circuits.amex.batch_size = 1;
    s.par_resolver.retry_after_secs = 1;
    s.par_resolver.retry_backoff_ms = 20;
    s.par_resolver.default_retry_after_secs = 1;
    s
}

fn max_per_second(stats: &Value, circuit: &str) -> u64 {
    stats["circuits"][circuit]["perSecond"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).max().unwrap_or(0))
        .unwrap_or(0)
}

#[actix_web::test]
async fn the_limiter_keeps_every_circuit_under_its_contract_rate() {
    let app = spawn_app_with(fault_settings(5).await).await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let cards: Vec<(String, &str)> = (0..15)
        .map(|_| (pan("5", 16, true, share), "MASTERCARD"))
        .chain((0..15).map(|_| (pan("4", 16, true, share), "VISA")))
        .collect();
    enrol(&app, &tc, &cards).await;
    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    for circuit in ["VISA", "MASTERCARD"] {
        assert_eq!(stats["circuits"][circuit]["units"], 15, "{stats}");
        let max = max_per_second(&stats, circuit);
        assert!(
            max <= 5 + 1,
            "{circuit}: {max} calls in one second (rate 5, burst 1)"
        );
    }
    for (pan, _) in &cards {
        assert!(par_of_card(&app, pan).await.is_some());
    }
}

#[actix_web::test]
async fn a_429_slows_the_circuit_down_and_an_outage_loses_nothing_while_others_go_on() {
    let app = spawn_app_with(fault_settings(20).await).await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let visa: Vec<String> = (0..12).map(|_| pan("4", 16, true, share)).collect();
    let mastercard: Vec<String> = (0..5).map(|_| pan("5", 16, true, share)).collect();
    let cards: Vec<(String, &str)> = visa
        .iter()
        .map(|p| (p.clone(), "VISA"))
        .chain(mastercard.iter().map(|p| (p.clone(), "MASTERCARD")))
        .collect();
    // Visa's contract is 3/s while tkm is configured at 20/s: the simulator answers 429.
    sim(
        &app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "VISA", "contractRate": 3})),
    )
    .await;
    // Mastercard is down.
    sim(
        &app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "MASTERCARD", "outageSecs": 3600})),
    )
    .await;
    enrol(&app, &tc, &cards).await;

    let end = refresh_pars(&app, "").await;
    assert_eq!(end["state"], "SUCCEEDED", "{end}");
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    assert!(
        stats["circuits"]["VISA"]["tooManyRequests"]
            .as_u64()
            .unwrap()
            >= 1,
        "{stats}"
    );
    for p in &visa {
        assert!(
            par_of_card(&app, p).await.is_some(),
            "every Visa lookup ends with its PAR"
        );
    }
    for p in &mastercard {
        assert_eq!(par_of_card(&app, p).await, None);
    }
    let failed: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM par_lookup WHERE circuit = 'MASTERCARD' AND state = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 5, "the outage loses no lookup");

    // The outage ends: the next cycle finds them.
    sim(&app, Method::POST, "/sim/reset", None).await;
    // Due again after retry_after_secs (1 s): cycles are retried until then.
    let done = eventually(Duration::from_secs(60), || async {
        refresh_pars(&app, "?circuit=MASTERCARD").await;
        let mut all = true;
        for p in &mastercard {
            all &= par_of_card(&app, p).await.is_some();
        }
        all.then_some(())
    })
    .await;
    assert!(done.is_some(), "found after the outage");
}

#[actix_web::test]
async fn card_numbers_never_reach_logs_metrics_jobs_or_the_queue_on_the_circuit_paths() {
    let app = spawn_app_with(fault_settings(50).await).await;
    wait_for_topology(&app).await;
    let canaries = [
        ("4999990000111125", "VISA"),
        ("5999990000111125", "MASTERCARD"),
        ("379999000011112", "AMEX"),
    ];
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    // Every circuit fails in its own way first: garbage, an error inside a 200, a 5xx.
    for (circuit, fault) in [
        ("VISA", "malformedRate"),
        ("MASTERCARD", "errorInBodyRate"),
        ("AMEX", "errorRate"),
    ] {
        let (code, _) = sim(
            &app,
            Method::POST,
            "/sim/faults",
            Some(json!({"circuit": circuit, fault: 1.0})),
        )
        .await;
        assert_eq!(code, 200);
    }
    let cards: Vec<(String, &str)> = canaries.iter().map(|(p, c)| (p.to_string(), *c)).collect();
    enrol(&app, &tc, &cards).await;
    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    let conn = app.pool.get().await.unwrap();
    let outcomes: Vec<String> = conn
        .query("SELECT last_outcome FROM par_lookup ORDER BY circuit", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect();
    assert_eq!(
        outcomes,
        ["server_error", "refused", "malformed"],
        "AMEX, MASTERCARD, VISA"
    );

    // The circuits recover; the lookups are asked again and answered.
    sim(&app, Method::POST, "/sim/reset", None).await;
    conn.execute("UPDATE par_lookup SET next_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");

    let mut seen = vec![
        String::from_utf8_lossy(&crate::helpers::captured_logs().lock().unwrap()).into_owned(),
    ];
    let mut metrics = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    seen.push(String::from_utf8_lossy(&metrics.body().limit(8 << 20).await.unwrap()).into_owned());
    seen.push(
        app.call("admin", Method::GET, "/admin/jobs", &[], None)
            .await
            .text,
    );
    seen.push(status(&app).await.to_string());
    let (_c, ch) = channel().await;
    while let Some(m) = crate::broker::next(
        &ch,
        &app.settings.rabbitmq.card_updates_queue,
        Duration::from_millis(500),
    )
    .await
    {
        seen.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    assert!(
        seen[1].contains("tkm_circuit_calls_total"),
        "circuit calls are counted"
    );
    for (pan, _) in canaries {
        assert!(
            par_of_card(&app, pan).await.is_some(),
            "answered after recovery"
        );
        for text in &seen {
            assert!(
                !text.contains(&pan[..12]),
                "a card number leaked: {}",
                &text[..text.len().min(200)]
            );
        }
    }
}

#[actix_web::test]
async fn a_circuit_par_that_differs_from_the_stored_one_is_a_conflict_never_an_overwrite() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    let card = pan("4", 16, true, share);
    // The circuit answers slowly; meanwhile the issuer sends the card with another PAR.
    sim(
        &app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "VISA", "latencyMs": 2000})),
    )
    .await;
    consent(&app, &tc, "Allow").await;
    enrol(&app, &tc, &[(card.clone(), "VISA")]).await;
    let asked = eventually(Duration::from_secs(20), || async {
        let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
        (stats["circuits"]["VISA"]["units"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    assert!(asked.is_some(), "the lookup is in flight");
    let issuer_par = "V0019999999999999999999999999";
    let (_c, ch) = channel().await;
    let event = json!({"taxCode": tc, "pan": card, "circuit": "VISA", "par": issuer_par,
        "timestamp": "2026-11-23 10:16:00:0000", "tokens": []});
    publish(
        &ch,
        &app.settings.rabbitmq.card_events_queue,
        &encrypt(&app, &serde_json::to_vec(&event).unwrap()),
        "issuer-par",
    )
    .await;
    let stored = eventually(Duration::from_secs(20), || async {
        (par_of_card(&app, &card).await.as_deref() == Some(issuer_par)).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the issuer's PAR is stored");

    wait_idle(&app).await;
    assert_eq!(
        par_of_card(&app, &card).await.as_deref(),
        Some(issuer_par),
        "never overwritten"
    );
    let mut metrics = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics =
        String::from_utf8_lossy(&metrics.body().limit(8 << 20).await.unwrap()).into_owned();
    assert!(
        metrics.contains(r#"tkm_par_conflicts_total{source="circuit"} 1"#),
        "counted as a conflict"
    );
    let owed: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM par_lookup", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owed, 0, "answered: not asked again");
}

/// Starts a PAR cycle (once none runs) and returns its job id without waiting for it.
async fn refresh_pars_started(app: &TestApp, query: &str) -> String {
    wait_idle(app).await;
    let r = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/par/refresh{query}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.json["jobId"].as_str().unwrap().to_string()
}

/// Waits until no PAR cycle runs.
async fn wait_idle(app: &TestApp) {
    let idle = eventually(Duration::from_secs(60), || async {
        let r = app
            .call("admin", Method::GET, "/admin/jobs", &[], None)
            .await;
        let running = r.json.as_array()?.iter().any(|j| {
            j["kind"] == "par-refresh" && (j["state"] == "RUNNING" || j["state"] == "QUEUED")
        });
        (!running).then_some(())
    })
    .await;
    assert!(idle.is_some(), "running PAR cycles end");
}

#[actix_web::test]
async fn the_mastercard_bin_lookup_api_source_keeps_only_token_ranges() {
    let mut settings = test_settings().await;
    let mc = &mut settings.circuits.mastercard;
    mc.bin_source = tkm::config::BinSource::Api;
    mc.token_flag_field = Some("tokenFlag".into());
    mc.token_flag_value = Some("Y".into());
    let app = spawn_app_with(settings).await;
    let end = refresh_bins(&app, "?circuit=MASTERCARD").await;
    assert_eq!(end["state"], "SUCCEEDED", "{end}");
    assert_eq!(
        bin_ranges::count(&app.pool, Circuit::Mastercard)
            .await
            .unwrap(),
        app.settings.circuits.simulator.other_ranges as i64
    );
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    assert_eq!(
        stats["circuits"]["MASTERCARD"]["calls"]["bins"], 1,
        "one signed page: {stats}"
    );
}
