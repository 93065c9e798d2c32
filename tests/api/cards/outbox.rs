//! The outbox never lets one bad row block the others: an unroutable row is retried with
//! backoff and parked (kept, reported, retried by an operator) while card updates keep flowing;
//! rows of the parked row's own key wait behind it, in order.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::*;
use crate::helpers::{spawn_app_with, test_settings};

async fn insert_row(app: &crate::helpers::TestApp, kind: &str, key: &str, payload: Value) -> i64 {
    app.pool
        .get()
        .await
        .unwrap()
        .query_one(
            "INSERT INTO outbox (kind, partition_key, payload, created_by, updated_by) \
             VALUES ($1, $2, $3, 'test', 'test') RETURNING id",
            &[&kind, &key, &payload],
        )
        .await
        .unwrap()
        .get(0)
}

async fn metric(app: &crate::helpers::TestApp, name: &str) -> Option<String> {
    let mut res = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .ok()?;
    let body = res.body().limit(4 << 20).await.ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(name))
        .map(str::to_owned)
}

#[actix_web::test]
async fn an_unroutable_row_is_parked_while_card_updates_keep_flowing() {
    let mut settings = test_settings().await;
    settings.outbox.max_attempts = 3;
    settings.outbox.retry_base_ms = 50;
    settings.outbox.retry_max_ms = 200;
    let app = spawn_app_with(settings).await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let (_c, ch) = channel().await;

    // No queue is bound to this routing key: every publish comes back (mandatory, NO_ROUTE).
    let routing = format!("test.unroutable.{}", uuid::Uuid::new_v4().simple());
    let stuck = insert_row(&app, &routing, "KEY-STUCK", json!({"n": 1})).await;
    let behind = insert_row(&app, &routing, "KEY-STUCK", json!({"n": 2})).await;
    let bad_change = insert_row(&app, "consent.changed", "KEY-BAD", json!({"version": 1})).await;

    // Card updates flow meanwhile.
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let event = enrolment(&tc, PAN, Some(TOKEN), "2026-11-23 10:15:00:0000");
    publish(&ch, &r.card_events_queue, &encrypt(&app, &event), "ob-1").await;
    let m = next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("a card update despite the failing rows");
    assert_eq!(body(&m)["taxCode"], tc.as_str());

    let parked = crate::helpers::eventually(Duration::from_secs(15), || async {
        let rows = app
            .pool
            .get()
            .await
            .ok()?
            .query(
                "SELECT id, attempts, last_error FROM outbox WHERE parked_at IS NOT NULL \
                 ORDER BY id",
                &[],
            )
            .await
            .ok()?;
        (rows.len() == 2).then_some(rows)
    })
    .await
    .expect("both bad rows parked");
    assert_eq!(parked[0].get::<_, i64>(0), stuck);
    assert_eq!(
        parked[0].get::<_, i32>(1),
        3,
        "parked after outbox.max_attempts"
    );
    assert!(parked[0]
        .get::<_, Option<String>>(2)
        .is_some_and(|e| e.contains("NO_ROUTE")));
    assert_eq!(parked[1].get::<_, i64>(0), bad_change);
    // The row behind the parked one (same key) waits, untried, for order's sake.
    let waiting: (i32, bool) = {
        let row = app
            .pool
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT attempts, parked_at IS NULL FROM outbox WHERE id = $1",
                &[&behind],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(waiting, (0, true));

    let status = app
        .call("admin", Method::GET, "/admin/status", &[], None)
        .await;
    assert_eq!(status.json["outbox"]["parked"], 2, "{}", status.text);
    let listed = app
        .call("admin", Method::GET, "/admin/outbox/parked", &[], None)
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json[0]["id"], stuck);
    assert_eq!(listed.json[0]["attempts"], 3);
    assert!(
        !listed.text.contains("KEY-STUCK"),
        "no partition key or payload shown"
    );
    let gauge = crate::helpers::eventually(Duration::from_secs(15), || async {
        metric(&app, "tkm_outbox_parked")
            .await
            .filter(|l| l.ends_with(" 2"))
    })
    .await;
    assert!(gauge.is_some(), "tkm_outbox_parked = 2");

    // The operator binds a queue (the cause is fixed) and retries: both rows of the key go out,
    // in order.
    let queue = format!("test-q-{}", uuid::Uuid::new_v4().simple());
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.as_str().into(),
        r.out_exchange.as_str().into(),
        routing.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let retried = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/outbox/{stuck}/retry"),
            &[],
            None,
        )
        .await;
    assert_eq!(retried.status, 202, "{}", retried.text);
    let first = next(&ch, &queue, Duration::from_secs(10))
        .await
        .expect("the retried row");
    let second = next(&ch, &queue, Duration::from_secs(10))
        .await
        .expect("the row behind it");
    assert_eq!(body(&first)["n"], 1);
    assert_eq!(body(&second)["n"], 2);
    assert_eq!(
        first
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string()),
        Some(stuck.to_string())
    );
    let unknown = app
        .call(
            "admin",
            Method::POST,
            "/admin/outbox/999999/retry",
            &[],
            None,
        )
        .await;
    unknown.assert_error(404, 4001);
}
