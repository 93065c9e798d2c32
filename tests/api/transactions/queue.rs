//! The `tkm-transactions` feed: a JSON array of records matched as a file's rows (lines from 1),
//! outcomes published under the message's id, the message acked only after that; a redelivery
//! decides nothing again; a clear PAN or a body that is not JSON is dead-lettered, the card
//! number replaced by the body's SHA-256.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{when, Env, ABI};
use crate::broker::{channel, drain, header, next, publish, wait_for_topology};
use crate::helpers::{eventually, sha, spawn_app, TestApp};

fn record(op: &str, hpan: &str, day: i64, id: &str, amount: u64) -> Value {
    json!({
        "acquirerCode": ABI, "operationType": op, "circuitType": "01", "hpan": hpan,
        "trxDate": when(day), "idTrxAcquirer": id, "idTrxIssuer": "", "correlationId": "",
        "amount": amount, "amountCurrency": "978", "acquirerId": "acq1", "merchantId": "m1",
        "terminalId": "t1", "bin": "400012", "mcc": "5411"
    })
}

/// The upload a message was matched as, once it is done.
async fn matched(app: &TestApp, message_id: &str) -> Value {
    let id = eventually(Duration::from_secs(30), || async {
        let row = app
            .pool
            .get()
            .await
            .ok()?
            .query_opt(
                "SELECT id FROM upload WHERE kind = 'transaction-message' AND filename = $1 \
                 AND state = 'DONE'",
                &[&message_id],
            )
            .await
            .ok()??;
        Some(row.get::<_, uuid::Uuid>(0))
    })
    .await
    .expect("the message is matched");
    let r = app
        .call(
            "platform",
            Method::GET,
            &format!("/transactions/{id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

#[actix_web::test]
async fn a_message_is_matched_like_a_file_and_a_redelivery_decides_nothing_again() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let e = Env::of(&app);
    e.period(1, -200, 100, 30).await;
    // Enrolled just before the message: the matcher must see it (caught up at receipt).
    let tc = e.citizen(&[(super::noon(-300), true)]).await;
    let card = e
        .card("queue-card", &tc, None, super::noon(-100), None)
        .await;
    let par = "V0010000000000000000000000555";
    e.card("queue-card-2", &tc, Some(par), super::noon(-100), None)
        .await;
    let token = e.token("queue-token", par).await;
    let mut other_abi = record("00", &card, -10, "other-abi", 100);
    other_abi["acquirerCode"] = "12345".into();
    let mut bad_amount = record("00", &card, -10, "bad-amount", 100);
    bad_amount["amount"] = json!("12.50");
    // A partial reversal is correlated by its correlation id (its amount differs).
    let mut pay = record("00", &card, -10, "pay-1", 1000);
    pay["correlationId"] = "c-1".into();
    let mut reversal = record("01", &card, -9, "rev-1", 400);
    reversal["correlationId"] = "c-1".into();
    let body = serde_json::to_vec(&json!([
        pay,
        reversal,
        record("00", &sha("nobody"), -10, "nobody-1", 900),
        other_abi,
        bad_amount,
        "not a record",
        record("00", &token, -8, "token-1", 300),
    ]))
    .unwrap();
    let (_c, ch) = channel().await;
    let r = &app.settings.rabbitmq;
    publish(&ch, &r.transactions_queue, &body, "msg-1").await;

    let report = matched(&app, "msg-1").await;
    assert_eq!(report["rows"], 7, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(
        report["reversals"],
        json!({"total": 0, "partial": 1, "uncorrelated": 0}),
        "{report}"
    );
    assert_eq!(report["discarded"], json!({"10": 1, "11": 3}), "{report}");

    // Pass 1's records, then the reversal's (pass 2), both under the message's id.
    let mut records = Vec::new();
    for _ in 0..2 {
        let message = next(&ch, &r.outcomes_queue, Duration::from_secs(30))
            .await
            .expect("an outcome message");
        let out: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        assert_eq!(out["source"], json!({"id": "msg-1"}), "{out}");
        records.extend(out["records"].as_array().unwrap().iter().cloned());
    }
    let out = Value::Array(records.clone());
    let lines: Vec<_> = records
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, "ACCEPTED"),
            (3, "DISCARDED"),
            (4, "DISCARDED"),
            (5, "DISCARDED"),
            (6, "DISCARDED"),
            (7, "ACCEPTED"),
            (2, "REVERSAL_PARTIAL"),
        ],
        "{out}"
    );
    assert_eq!(records[5]["match"], "HTOKEN", "{out}");
    assert_eq!(records[5]["par"], par, "{out}");
    assert_eq!(records[6]["correlatedLine"], 1, "{out}");
    let fields: Vec<String> = app
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT o.detail FROM txn_outcome o JOIN upload u ON u.id = o.source_id \
             WHERE u.filename = 'msg-1' AND o.reason = '11' ORDER BY o.line",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(fields, ["codice_acquirer", "total_amount", "fields"]);

    // The broker delivers it again (the ack was lost, say): nothing is decided twice.
    publish(&ch, &r.transactions_queue, &body, "msg-1").await;
    let counted = eventually(Duration::from_secs(20), || async {
        app.metrics()
            .await
            .contains(r#"tkm_messages_consumed_total{outcome="ignored",queue="tkm-transactions"#)
            .then_some(())
    })
    .await;
    let metrics = app.metrics().await;
    assert!(counted.is_some(), "the redelivery is counted: {metrics}");
    assert!(metrics.contains(r#"reason="DUPLICATE"} 1"#), "{metrics}");
    let again = drain(&ch, &r.outcomes_queue, Duration::from_secs(1)).await;
    assert!(again.is_empty(), "no second outcome message");
    let n: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM txn_outcome", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
}

#[actix_web::test]
async fn a_clear_pan_or_a_body_that_is_not_json_is_dead_lettered_without_the_card_number() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let (_c, ch) = channel().await;
    let r = &app.settings.rabbitmq;
    let pan = "4000123412349999";
    let body = serde_json::to_vec(&json!([record("00", pan, -1, "clear-1", 100)])).unwrap();
    publish(&ch, &r.transactions_queue, &body, "clear-1").await;
    let letter = next(&ch, &r.dead_letter_queue, Duration::from_secs(20))
        .await
        .expect("dead-lettered");
    assert_eq!(
        String::from_utf8_lossy(&letter.delivery.data),
        hex::encode(Sha256::digest(&body)),
        "the body is replaced by its SHA-256"
    );
    assert_eq!(
        header(&letter, "x-tkm-error-code").as_deref(),
        Some("INVALID_FIELD")
    );
    let reason = header(&letter, "x-tkm-error").unwrap_or_default();
    assert!(reason.contains("hpan") && !reason.contains(pan), "{reason}");

    publish(&ch, &r.transactions_queue, b"{not json", "broken-1").await;
    let letter = next(&ch, &r.dead_letter_queue, Duration::from_secs(20))
        .await
        .expect("dead-lettered");
    assert_eq!(
        header(&letter, "x-tkm-error-code").as_deref(),
        Some("NOT_JSON")
    );

    // Neither became an upload, and no column holds the card number.
    let n: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM upload", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(app.columns_holding(pan, &[]).await, Vec::<String>::new());
}
