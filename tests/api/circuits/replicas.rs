//! Two replicas on one database and broker (`architecture.md`, "Beyond one machine"): one BIN
//! refresh per circuit however many start, one PAR cycle at a time (elected), so together they
//! never exceed a circuit's contract rate, a consent written on one read on the other within a
//! second, and the outbox relay of a killed replica taken over by the other.

use super::*;

/// Replica settings: a circuit rate `rate` with burst 2, a BIN refresh at start-up.
async fn replica_settings(rate: u32) -> Settings {
    let mut s = fault_settings(rate).await;
    for c in [
        &mut s.circuits.visa,
        &mut s.circuits.mastercard,
        &mut s.circuits.amex,
    ] {
        c.burst = 2;
    }
    s.bin_refresh.on_start = true;
    s
}

/// The second replica: the first one's database, queues, storage and keys, its simulator.
fn second(first: &TestApp) -> Settings {
    let mut s = first.settings.clone();
    s.circuits.simulator.attach_url = Some(
        first
            .simulator_url
            .clone()
            .expect("simulator mode")
            .parse()
            .unwrap(),
    );
    s
}

/// The session that holds the outbox relay's lock, if any.
async fn relay_holder(app: &TestApp) -> Option<i32> {
    app.pool
        .get()
        .await
        .unwrap()
        .query_opt(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
             AND ((classid::bigint << 32) | objid::bigint) = $1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&tkm::bridge::relay::RELAY_LOCK],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn metric(app: &TestApp, name: &str, labels: &str) -> Option<f64> {
    let text = app.metrics().await;
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn consent_of(app: &TestApp, tc: &str) -> String {
    let r = app
        .call("io", Method::GET, "/consent", &[("Tax-Code", tc)], None)
        .await;
    r.json["consent"].as_str().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn two_replicas_share_the_jobs_the_rate_and_the_consents() {
    const RATE: u32 = 10;
    let a = spawn_app_with(replica_settings(RATE).await).await;
    wait_for_topology(&a).await;
    // The first replica relays (it started alone); the second must take over when it dies.
    let first_relay = eventually(Duration::from_secs(20), || relay_holder(&a)).await;
    assert!(first_relay.is_some(), "the first replica relays");
    let mut b = spawn_app_with(second(&a)).await;

    // Both started with a refresh owed: one of them asked each circuit, the other found it done.
    for circuit in ["VISA", "MASTERCARD", "AMEX"] {
        for app in [&a, &b] {
            let label = format!("circuit=\"{circuit}\"");
            let seen = eventually(Duration::from_secs(30), || async {
                metric(app, "tkm_bin_ranges{", &label)
                    .await
                    .filter(|n| *n > 0.0)
            })
            .await;
            assert!(seen.is_some(), "{circuit}: both replicas know its ranges");
        }
    }
    let (_, once) = sim(&a, Method::GET, "/sim/stats", None).await;
    // One refresh more, by an operator, shows what one refresh costs in calls.
    assert_eq!(refresh_bins(&a, "").await["state"], "SUCCEEDED");
    let (_, twice) = sim(&a, Method::GET, "/sim/stats", None).await;
    for circuit in ["VISA", "MASTERCARD", "AMEX"] {
        // Pages of the circuit's API, or downloads of its file (the `file` source).
        let calls = |s: &Value| {
            let c = &s["circuits"][circuit]["calls"];
            c["bins"].as_u64().unwrap() + c["binFiles"].as_u64().unwrap()
        };
        let (at_start, one_refresh) = (calls(&once), calls(&twice) - calls(&once));
        assert!(one_refresh > 0, "{circuit}: {twice}");
        assert_eq!(
            at_start, one_refresh,
            "{circuit}: the two replicas' start-up refreshes asked the circuit once"
        );
    }

    // PAR cycles asked for on both replicas at once: one runs (the job is elected through the
    // database), so together they never exceed the contract rate (+ burst).
    let share = a.settings.circuits.simulator.no_par_share;
    let tc = tax_code();
    let cards: Vec<(String, &str)> = (0..60)
        .map(|_| (pan("4", 16, true, share), "VISA"))
        .collect();
    enrol(&a, &tc, &cards).await;
    consent(&a, &tc, "Allow").await;
    let (ra, rb) = futures_util::future::join(
        a.call("admin", Method::POST, "/admin/par/refresh", &[], None),
        b.call("admin", Method::POST, "/admin/par/refresh", &[], None),
    )
    .await;
    assert_eq!(
        (ra.status, rb.status),
        (202, 202),
        "{} {}",
        ra.text,
        rb.text
    );
    assert_eq!(
        ra.json["jobId"], rb.json["jobId"],
        "one cycle for both replicas"
    );
    job_end(&b, ra.json["jobId"].as_str().unwrap()).await;
    let asked = eventually(Duration::from_secs(60), || async {
        let (_, stats) = sim(&a, Method::GET, "/sim/stats", None).await;
        (stats["circuits"]["VISA"]["units"].as_u64() >= Some(60)).then_some(stats)
    })
    .await
    .expect("every card asked");
    let max = max_per_second(&asked, "VISA");
    assert!(
        max <= u64::from(RATE) + 2,
        "two replicas together asked {max} PANs in one second (contract {RATE} + burst 2)"
    );

    // A consent written on one replica is read on the other within a second (its cache is
    // invalidated by the writer's notification).
    let citizen = tax_code();
    consent(&a, &citizen, "Allow").await;
    assert_eq!(consent_of(&b, &citizen).await, "Allow");
    consent(&a, &citizen, "Deny").await;
    let seen = eventually(Duration::from_secs(1), || async {
        (consent_of(&b, &citizen).await == "Deny").then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the other replica reads the change within 1 s"
    );

    // The relaying replica dies: the other takes the relay over and publishes what is owed.
    let mut a = a;
    a.kill().await;
    let taken = eventually(Duration::from_secs(30), || async {
        relay_holder(&b)
            .await
            .filter(|pid| Some(*pid) != first_relay)
    })
    .await;
    assert!(taken.is_some(), "the surviving replica relays");
    let late = tax_code();
    consent(&b, &late, "Allow").await;
    let card = pan("4", 16, true, share);
    enrol(&b, &late, &[(card.clone(), "VISA")]).await;
    // Its PAR is looked up by the survivor (once the dead replica's cycle is found interrupted)
    // and its card update relayed.
    let drained = eventually(Duration::from_secs(90), || async {
        let conn = b.pool.get().await.unwrap();
        let row = conn
            .query_one(
                "SELECT (SELECT count(*) FROM outbox),                  (SELECT count(*) FROM card WHERE hpan = $1 AND par IS NOT NULL)",
                &[&sha(&card)],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0) == 0 && row.get::<_, i64>(1) == 1).then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "the survivor looks the card up and relays its update"
    );
    b.stop().await;
}
