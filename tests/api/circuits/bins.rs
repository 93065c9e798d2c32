//! Token BIN ranges end to end: admin-forced refreshes, the status, refused and failed refreshes (R5).

use super::*;

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
    assert_eq!(s["circuitsMode"], "simulator", "the mode is shown");

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
