//! The circuits under load and faults: the contract rate, 429s, outages, and card data on every path.

use super::*;

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
        // The simulator counts a call when it handles it: one call of jitter between tkm's
        // admission and that count is tolerated, a limiter twice as fast is not.
        let max = max_per_second(&stats, circuit);
        assert!(
            max <= 5 + 1 + 1,
            "{circuit}: {max} calls in one second (rate 5, burst 1)"
        );
        // 15 calls at 5/s with a burst of 1 take at least 2.8 s: they span at least 3 seconds.
        let seconds: Vec<u64> = stats["circuits"][circuit]["perSecond"]
            .as_object()
            .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default();
        let span = seconds.iter().max().unwrap_or(&0) - seconds.iter().min().unwrap_or(&0);
        assert!(span >= 2, "{circuit}: 15 calls within {} s", span + 1);
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
