//! PAR lookups end to end: consent gating, immediate asking, deletions, re-asks, conflicts.

use super::*;
use crate::broker::next;

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

#[actix_web::test]
async fn an_issuer_token_of_a_card_without_consent_never_reaches_the_circuit() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let (denying, allowing) = (tax_code(), tax_code());
    consent(&app, &denying, "Deny").await;
    consent(&app, &allowing, "Allow").await;
    let (_c, ch) = channel().await;
    let queue = &app.settings.rabbitmq.card_events_queue;
    // Issuer events: a card with its PAR and a clear token (a provisional association the
    // resolver verifies), one per citizen; and tokens of a PAR that no card has.
    let events = [
        json!({"taxCode": denying, "pan": pan("4", 16, true, share), "circuit": "VISA",
               "par": "V0010000000000000000000000001",
               "tokens": [{"token": pan("4", 16, true, share)}]}),
        json!({"taxCode": allowing, "pan": pan("4", 16, true, share), "circuit": "VISA",
               "par": "V0010000000000000000000000002",
               "tokens": [{"token": pan("4", 16, true, share)}]}),
        json!({"par": "V0010000000000000000000000003", "circuit": "VISA",
               "tokens": [{"token": pan("4", 16, true, share)}]}),
    ];
    for (i, e) in events.iter().enumerate() {
        let body = encrypt(&app, &serde_json::to_vec(e).unwrap());
        publish(&ch, queue, &body, &format!("tok-{i}")).await;
    }
    let stored = eventually(Duration::from_secs(20), || async {
        let n: i64 = app
            .pool
            .get()
            .await
            .ok()?
            .query_one("SELECT count(*) FROM token", &[])
            .await
            .ok()?
            .get(0);
        (n == 3).then_some(())
    })
    .await;
    assert!(stored.is_some(), "tokens stored");

    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    assert_eq!(
        stats["circuits"]["VISA"]["units"], 2,
        "the consenting citizen's token and the token of a PAR no card has, never the \
         denying citizen's: {stats}"
    );
    let asked: Vec<String> = app
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT t.par FROM token t JOIN par_lookup p ON p.subject = 'token' \
             AND p.subject_id = t.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !asked.contains(&"V0010000000000000000000000001".to_owned()),
        "the denying citizen's token is not even queued: {asked:?}"
    );
}

#[actix_web::test]
async fn a_token_moved_by_the_circuit_is_logged_counted_kept_in_history_and_published() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let (card, token) = (pan("4", 16, true, share), pan("4", 16, true, share));
    let issuer_par = "V0010000000000000000000000077";
    let (_c, ch) = channel().await;
    let r = &app.settings.rabbitmq;
    let event = json!({"taxCode": tc, "pan": card, "circuit": "VISA", "par": issuer_par,
        "tokens": [{"token": token}]});
    publish(
        &ch,
        &r.card_events_queue,
        &encrypt(&app, &serde_json::to_vec(&event).unwrap()),
        "moved-1",
    )
    .await;
    next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("the enrolment's update");

    // The circuit says the token belongs to another account: the issuer's association moves.
    assert_eq!(refresh_pars(&app, "").await["state"], "SUCCEEDED");
    let circuit_par = data::par_of(Circuit::Visa, &token).unwrap();
    let update = next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("the move is published");
    let u: Value = serde_json::from_slice(&update.delivery.data).unwrap();
    assert_eq!(
        u["cards"][0]["htokens"],
        json!([{"htoken": sha(&token), "haction": "DELETE"}]),
        "{u}"
    );
    let conn = app.pool.get().await.unwrap();
    let history = conn
        .query_one(
            "SELECT subject, kind, from_par, to_par, source FROM association_event \
             WHERE key = $1",
            &[&sha(&token)],
        )
        .await
        .unwrap();
    assert_eq!(history.get::<_, String>(0), "token");
    assert_eq!(history.get::<_, String>(1), "moved");
    assert_eq!(
        history.get::<_, Option<String>>(2).as_deref(),
        Some(issuer_par)
    );
    assert_eq!(history.get::<_, String>(3), circuit_par);
    assert_eq!(history.get::<_, String>(4), "circuit");
    let mut metrics = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics =
        String::from_utf8_lossy(&metrics.body().limit(8 << 20).await.unwrap()).into_owned();
    assert!(
        metrics.contains(r#"tkm_par_conflicts_total{source="circuit"} 1"#),
        "counted"
    );
    let logs =
        String::from_utf8_lossy(&crate::helpers::captured_logs().lock().unwrap()).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("replaced by a more trusted source") && l.contains(&sha(&token)[..6]))
        .expect("the move is logged");
    assert!(
        !line.contains(&sha(&token)),
        "hashes only truncated: {line}"
    );
    assert!(
        !line.contains(issuer_par) && !line.contains(&circuit_par),
        "{line}"
    );
}

/// An operator's refresh that joins a routine cycle still running (one that does not scan) gets
/// the scan it asked for: a token only the sweep queues is checked within that same job. (It was
/// not: the joined job ended `SUCCEEDED` without scanning, and the token waited for the next
/// scheduled scan.)
#[actix_web::test]
async fn a_refresh_joining_a_running_routine_cycle_still_scans() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    // The circuit answers slowly, so the routine cycle the first card starts is still running.
    sim(
        &app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "VISA", "latencyMs": 6000})),
    )
    .await;
    enrol(&app, &tc, &[(pan("4", 16, true, share), "VISA")]).await;
    let asked = eventually(Duration::from_secs(20), || async {
        let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
        (stats["circuits"]["VISA"]["units"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    assert!(asked.is_some(), "the routine cycle's lookup is in flight");
    let running = app
        .call("admin", Method::GET, "/admin/jobs", &[], None)
        .await
        .json
        .as_array()
        .and_then(|jobs| {
            jobs.iter()
                .find(|j| j["kind"] == "par-refresh" && j["state"] == "RUNNING")
                .map(|j| j["id"].as_str().unwrap_or_default().to_owned())
        })
        .expect("a routine cycle runs");

    // A card that comes with its issuer's PAR and a token: only the sweep queues the token.
    let (card, token) = (pan("4", 16, true, share), pan("4", 16, true, share));
    let event = json!({"taxCode": tc, "pan": card, "circuit": "VISA",
        "par": "V0010000000000000000000000078", "tokens": [{"token": token}]});
    let (_c, ch) = channel().await;
    publish(
        &ch,
        &app.settings.rabbitmq.card_events_queue,
        &encrypt(&app, &serde_json::to_vec(&event).unwrap()),
        "joined-1",
    )
    .await;
    let stored = eventually(Duration::from_secs(20), || async {
        let n: i64 = app
            .pool
            .get()
            .await
            .ok()?
            .query_one(
                "SELECT count(*) FROM token WHERE htoken = $1",
                &[&sha(&token)],
            )
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the token is stored");

    let r = app
        .call("admin", Method::POST, "/admin/par/refresh", &[], None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.json["jobId"],
        running.as_str(),
        "the refresh joins the running cycle"
    );
    assert_eq!(job_end(&app, &running).await["state"], "SUCCEEDED");
    let (_, stats) = sim(&app, Method::GET, "/sim/stats", None).await;
    assert_eq!(
        stats["circuits"]["VISA"]["units"], 2,
        "the first card and, scanned within the joined job, the token: {stats}"
    );
}
