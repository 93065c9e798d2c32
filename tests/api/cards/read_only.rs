//! A database that turns read-only mid-stream (a failover): the consumers pause and keep their
//! deliveries without spending the delivery limit; nothing is dead-lettered and every event is
//! applied once the database is writable again.

use super::*;

/// Sets `default_transaction_read_only` for the test database and drops its sessions, so the
/// pool's new sessions start read-only (or writable again).
async fn read_only(app: &crate::helpers::TestApp, on: bool) {
    use secrecy::ExposeSecret;
    let url = app.settings.database.url.expose_secret().to_owned();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let (admin, conn) =
        tokio_postgres::connect(&crate::helpers::admin_db_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    actix_web::rt::spawn(conn);
    let setting = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" {setting}"))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap();
}

async fn cards(app: &crate::helpers::TestApp) -> Option<i64> {
    let c = app.pool.get().await.ok()?;
    Some(
        c.query_one("SELECT count(*) FROM card", &[])
            .await
            .ok()?
            .get(0),
    )
}

#[actix_web::test]
async fn a_read_only_database_pauses_the_consumers_and_nothing_is_dead_lettered() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let (_c, ch) = channel().await;
    let tc = tax_code();
    let event = |i: usize| {
        encrypt(
            &app,
            &serde_json::to_vec(&json!({"taxCode": tc, "pan": format!("4111000000{i:06}"),
                "circuit": "VISA", "timestamp": "2026-11-23 10:15:00:0000"}))
            .unwrap(),
        )
    };
    for i in 0..20 {
        publish(&ch, &r.card_events_queue, &event(i), &format!("ro-{i}")).await;
    }
    let first = crate::helpers::eventually(Duration::from_secs(20), || async {
        (cards(&app).await? == 20).then_some(())
    })
    .await;
    assert!(first.is_some(), "the first events are applied");

    read_only(&app, true).await;
    for i in 20..60 {
        publish(&ch, &r.card_events_queue, &event(i), &format!("ro-{i}")).await;
    }
    // Longer than the broker needs to burn a delivery limit of 20 by redelivering.
    let logs = crate::helpers::captured_logs();
    let refused = crate::helpers::eventually(Duration::from_secs(20), || async {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        text.contains("25006").then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "writes were refused as read-only (25006)"
    );
    // The API answers 503 9503 meanwhile (a client retries).
    let refused = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tax_code()), ("Client-Id", "t")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    refused.assert_error(503, 9503);
    // Held long enough for redeliveries to burn a delivery limit of 20, were they nacked.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cards(&app).await,
        Some(20),
        "nothing applied while read-only"
    );
    read_only(&app, false).await;

    let all = crate::helpers::eventually(Duration::from_secs(30), || async {
        (cards(&app).await? == 60).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "every event is applied once writable: {:?}",
        cards(&app).await
    );
    let letters = drain(&ch, &r.dead_letter_queue, Duration::from_millis(500)).await;
    assert!(letters.is_empty(), "{} dead letters", letters.len());
}
