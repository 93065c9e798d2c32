//! Card events in over RabbitMQ (GnuPG-encrypted), card updates out, dead letters, deletions,
//! consent-driven updates, and `/cards` — all against the real broker and database.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::broker::{
    channel, drain, encrypt, gpg_encrypt, header, next, publish, wait_for_topology,
};
use crate::helpers::{consent, sha, spawn_app, tax_code};

const PAN: &str = "5255000012340001";
const TOKEN: &str = "5255990000000017";
const PAR: &str = "5001a1b2c3d4e5f6a7b8c9d0e1f2a";

fn enrolment(tc: &str, pan: &str, token: Option<&str>, ts: &str) -> Vec<u8> {
    let tokens = token.map_or(json!([]), |t| json!([{"token": t}]));
    serde_json::to_vec(
        &json!({"taxCode": tc, "pan": pan, "circuit": "MASTERCARD", "par": PAR,
        "timestamp": ts, "tokens": tokens}),
    )
    .unwrap()
}

fn body(m: &lapin::message::BasicGetMessage) -> Value {
    serde_json::from_slice(&m.delivery.data).unwrap()
}

#[actix_web::test]
async fn a_gnupg_encrypted_enrolment_of_a_consenting_citizen_becomes_a_card_update() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let (_c, ch) = channel().await;
    let event = enrolment(&tc, PAN, Some(TOKEN), "2026-11-23 10:15:00:0000");
    publish(
        &ch,
        &r.card_events_queue,
        &gpg_encrypt(&app, &event, true, "zip"),
        "m-1",
    )
    .await;

    let m = next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("a card update");
    let u = body(&m);
    assert_eq!(u["taxCode"], tc.as_str());
    let ts = u["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.as_bytes()[10] == b' ' && ts.as_bytes()[19] == b':',
        "yyyy-MM-dd HH:mm:ss:SSSS: {ts}"
    );
    assert_eq!(
        u["cards"],
        json!([{"hpan": sha(PAN), "action": "INSERT_UPDATE", "par": PAR,
            "htokens": [{"htoken": sha(TOKEN), "haction": "INSERT_UPDATE"}]}])
    );
    let p = &m.delivery.properties;
    assert_eq!(
        p.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(p.delivery_mode(), &Some(2));
    assert!(p
        .message_id()
        .as_ref()
        .is_some_and(|id| id.as_str().parse::<i64>().is_ok()));
    assert!(p.timestamp().is_some());

    let card = app
        .call(
            "platform",
            Method::GET,
            "/cards",
            &[("hpan", &sha(PAN))],
            None,
        )
        .await;
    assert_eq!(card.status, 200, "{}", card.text);
    assert_eq!(
        card.json,
        json!({"hpan": sha(PAN), "par": PAR, "htokens": [sha(TOKEN)]})
    );

    // Stored only encrypted, with the last four digits at most.
    let c = app.pool.get().await.unwrap();
    let row = c
        .query_one("SELECT pan_ct IS NOT NULL, pan_last4, row_to_json(card)::text FROM card WHERE hpan = $1", &[&sha(PAN)])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "0001");
    assert!(!row.get::<_, String>(2).contains(&PAN[..12]));
    let tokens: String = c
        .query_one("SELECT json_agg(token)::text FROM token", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!tokens.contains(&TOKEN[..12]));
}

#[actix_web::test]
async fn gnupg_binary_and_uncompressed_messages_are_read_too() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let (_c, ch) = channel().await;
    for (i, (armor, compress)) in [(false, "zlib"), (false, "none"), (true, "bzip2")]
        .into_iter()
        .enumerate()
    {
        let tc = tax_code();
        consent(&app, &tc, "Allow").await;
        let pan = format!("52550000123400{i:02}");
        publish(
            &ch,
            &r.card_events_queue,
            &gpg_encrypt(
                &app,
                &enrolment(&tc, &pan, None, "2026-11-23 10:15:00:0000"),
                armor,
                compress,
            ),
            &format!("m-{i}"),
        )
        .await;
        let m = next(&ch, &r.card_updates_queue, Duration::from_secs(15))
            .await
            .expect("a card update");
        assert_eq!(
            body(&m)["cards"][0]["hpan"],
            sha(&pan),
            "armor {armor}, {compress}"
        );
    }
}

#[actix_web::test]
async fn poison_messages_are_dead_lettered_with_their_reason_while_good_ones_flow() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let (_c, ch) = channel().await;
    let tc = tax_code();
    let other_key = tkm::crypto::pgp::generate(
        tkm::crypto::pgp::PgpKeyKind::Curve25519,
        "other <o@x>",
        None,
    )
    .unwrap()
    .1;
    let pgp = |v: Value| encrypt(&app, &serde_json::to_vec(&v).unwrap());
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("UNDECRYPTABLE", b"not a pgp message".to_vec()),
        (
            "UNDECRYPTABLE",
            tkm::crypto::pgp::encrypt_to(other_key.as_bytes(), b"{}", true).unwrap(),
        ),
        ("NOT_JSON", encrypt(&app, b"{this is not json")),
        (
            "INCONSISTENT_MESSAGE",
            pgp(json!({"hpan": sha(PAN), "circuit": "VISA"})),
        ),
        (
            "UNSUPPORTED_CIRCUIT",
            pgp(json!({"taxCode": tc, "pan": PAN, "circuit": "DINERS"})),
        ),
        (
            "HASH_MISMATCH",
            pgp(json!({"taxCode": tc, "pan": PAN, "hpan": "e".repeat(64), "circuit": "VISA"})),
        ),
        (
            "INVALID_FIELD",
            pgp(json!({"taxCode": tc, "pan": "12345", "circuit": "VISA"})),
        ),
        ("TOO_LARGE", vec![b'x'; 70 * 1024]),
    ];
    let good = |n: u8| {
        pgp(json!({"taxCode": tc, "pan": format!("41111111111111{n:02}"), "circuit": "VISA"}))
    };
    for (i, (_, body)) in poison.iter().enumerate() {
        publish(
            &ch,
            &r.card_events_queue,
            &good(i as u8),
            &format!("good-{i}"),
        )
        .await;
        publish(&ch, &r.card_events_queue, body, &format!("bad-{i}")).await;
    }
    let dead = crate::helpers::eventually(Duration::from_secs(20), || async {
        let c = app.pool.get().await.ok()?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM card", &[])
            .await
            .ok()?
            .get(0);
        (n == poison.len() as i64).then_some(())
    })
    .await;
    assert!(dead.is_some(), "every good event is applied");
    let letters = drain(&ch, &r.dead_letter_queue, Duration::from_millis(500)).await;
    assert_eq!(letters.len(), poison.len());
    for (i, (code, _)) in poison.iter().enumerate() {
        let l = letters
            .iter()
            .find(|l| {
                l.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.as_str())
                    == Some(format!("bad-{i}").as_str())
            })
            .unwrap_or_else(|| panic!("bad-{i} not dead-lettered"));
        assert_eq!(
            header(l, "x-tkm-error-code").as_deref(),
            Some(*code),
            "bad-{i}"
        );
        let reason = header(l, "x-tkm-error").unwrap();
        assert!(!reason.contains(PAN) && !reason.contains(&tc), "{reason}");
        assert_eq!(l.delivery.data, poison[i].1, "the original body is kept");
    }
    let mut m = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&m.body().await.unwrap()).into_owned();
    let expected = format!(
        r#"tkm_messages_consumed_total{{outcome="dead-lettered",queue="{}",reason="UNDECRYPTABLE"}} 2"#,
        r.card_events_queue
    );
    assert!(metrics.contains(&expected), "{metrics}");
}

#[actix_web::test]
async fn a_duplicate_delivery_is_applied_once() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let (_c, ch) = channel().await;
    let msg = encrypt(
        &app,
        &enrolment(&tc, PAN, Some(TOKEN), "2026-11-23 10:15:00:0000"),
    );
    publish(&ch, &r.card_events_queue, &msg, "same").await;
    next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("the first update");
    publish(&ch, &r.card_events_queue, &msg, "same").await;
    let applied = crate::helpers::eventually(Duration::from_secs(30), || async {
        let mut m = awc::Client::default()
            .get(app.ops_url("/metrics"))
            .send()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&m.body().await.ok()?).into_owned();
        text.contains(&format!(
            r#"{{outcome="applied",queue="{}",reason=""}} 2"#,
            r.card_events_queue
        ))
        .then_some(())
    })
    .await;
    assert!(applied.is_some(), "the duplicate was consumed");
    assert!(
        drain(&ch, &r.card_updates_queue, Duration::from_millis(700))
            .await
            .is_empty(),
        "no second update"
    );
}

#[actix_web::test]
async fn a_deletion_revokes_the_card_and_an_older_reenrolment_is_ignored() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let (_c, ch) = channel().await;
    publish(
        &ch,
        &r.card_events_queue,
        &encrypt(&app, &enrolment(&tc, PAN, None, "2026-11-23 10:00:00:0000")),
        "e1",
    )
    .await;
    next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("enrolment update");
    let deletion =
        json!({"taxCode": tc, "hpan": sha(PAN), "timestamp": "2026-11-23 12:00:00:0000"});
    publish(
        &ch,
        &r.card_deletions_queue,
        &serde_json::to_vec(&deletion).unwrap(),
        "d1",
    )
    .await;
    let revoke = body(
        &next(&ch, &r.card_updates_queue, Duration::from_secs(15))
            .await
            .expect("a revoke"),
    );
    assert_eq!(revoke["taxCode"], Value::Null);
    assert_eq!(
        revoke["cards"],
        json!([{"hpan": sha(PAN), "action": "REVOKE", "par": PAR, "htokens": null}])
    );
    let gone = app
        .call(
            "platform",
            Method::GET,
            "/cards",
            &[("hpan", &sha(PAN))],
            None,
        )
        .await;
    gone.assert_error(404, 2404);

    publish(
        &ch,
        &r.card_events_queue,
        &encrypt(&app, &enrolment(&tc, PAN, None, "2026-11-23 11:00:00:0000")),
        "e0",
    )
    .await;
    publish(
        &ch,
        &r.card_deletions_queue,
        br#"{"taxCode": "nope"}"#,
        "bad-delete",
    )
    .await;
    let letter = next(&ch, &r.dead_letter_queue, Duration::from_secs(15))
        .await
        .expect("the bad deletion");
    assert_eq!(
        header(&letter, "x-tkm-error-code").as_deref(),
        Some("INVALID_FIELD")
    );
    assert!(
        drain(&ch, &r.card_updates_queue, Duration::from_millis(500))
            .await
            .is_empty(),
        "the stale enrolment changed nothing"
    );
}

#[actix_web::test]
async fn consent_changes_publish_updates_and_revocations_for_the_citizens_cards() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let tc = tax_code();
    let (_c, ch) = channel().await;
    publish(
        &ch,
        &r.card_events_queue,
        &encrypt(
            &app,
            &enrolment(&tc, PAN, Some(TOKEN), "2026-11-23 10:00:00:0000"),
        ),
        "e1",
    )
    .await;
    let stored = crate::helpers::eventually(Duration::from_secs(15), || async {
        let c = app.pool.get().await.ok()?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM card", &[])
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(stored.is_some());
    let hidden = app
        .call(
            "platform",
            Method::GET,
            "/cards",
            &[("hpan", &sha(PAN))],
            None,
        )
        .await;
    assert_eq!(
        hidden.json,
        json!({"hpan": sha(PAN), "par": null, "htokens": []}),
        "no consent, no PAR shown"
    );

    consent(&app, &tc, "Allow").await;
    let grant = body(
        &next(&ch, &r.card_updates_queue, Duration::from_secs(15))
            .await
            .expect("an update on consent"),
    );
    assert_eq!(grant["taxCode"], tc.as_str());
    assert_eq!(grant["cards"][0]["action"], "INSERT_UPDATE");
    assert_eq!(
        grant["cards"][0]["htokens"],
        json!([{"htoken": sha(TOKEN), "haction": "INSERT_UPDATE"}])
    );

    let w = app
        .call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await;
    assert_eq!(w.status, 200);
    let revoke = body(
        &next(&ch, &r.card_updates_queue, Duration::from_secs(15))
            .await
            .expect("a revoke on withdrawal"),
    );
    assert_eq!(
        revoke["taxCode"],
        tc.as_str(),
        "the card still has a live link"
    );
    assert_eq!(revoke["cards"][0]["action"], "REVOKE");
    assert!(
        revoke["timestamp"].as_str() > grant["timestamp"].as_str(),
        "strictly increasing per card"
    );
}

#[actix_web::test]
async fn issuers_delete_cards_by_hpan_or_pgp_pan_and_give_pgp_pans_for_consent() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let tc = tax_code();
    let (_c, ch) = channel().await;
    for (i, pan) in ["4000000000000002", "4000000000000010"].iter().enumerate() {
        publish(
            &ch,
            &r.card_events_queue,
            &encrypt(&app, &enrolment(&tc, pan, None, "2026-11-23 10:00:00:0000")),
            &format!("e{i}"),
        )
        .await;
    }
    let stored = crate::helpers::eventually(Duration::from_secs(15), || async {
        let c = app.pool.get().await.ok()?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM card WHERE active", &[])
            .await
            .ok()?
            .get(0);
        (n == 2).then_some(())
    })
    .await;
    assert!(stored.is_some());

    // pgpPan (armored) for a card consent, issuers only.
    let armored = String::from_utf8(gpg_encrypt(&app, b"4000000000000002", true, "zip")).unwrap();
    let r1 = app
        .call(
            "issuer",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc), ("Client-Id", "bank")],
            Some(json!({"consent": "Allow", "pgpPan": armored})),
        )
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    assert_eq!(r1.json["details"][0]["hpan"], sha("4000000000000002"));
    let bad = app
        .call(
            "issuer",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc), ("Client-Id", "bank")],
            Some(json!({"consent": "Allow", "pgpPan": "garbage"})),
        )
        .await;
    bad.assert_error(400, 1000);

    let by_hpan = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[("Tax-Code", &tc), ("hpan", &sha("4000000000000002"))],
            None,
        )
        .await;
    assert_eq!(by_hpan.status, 204, "{}", by_hpan.text);
    let again = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[("Tax-Code", &tc), ("hpan", &sha("4000000000000002"))],
            None,
        )
        .await;
    again.assert_error(404, 2404);
    use base64::Engine as _;
    let binary = base64::engine::general_purpose::STANDARD.encode(gpg_encrypt(
        &app,
        b"4000000000000010\n",
        false,
        "zip",
    ));
    let by_pgp = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[("Tax-Code", &tc), ("Pgp-Pan", &binary)],
            None,
        )
        .await;
    assert_eq!(by_pgp.status, 204, "{}", by_pgp.text);
    app.call(
        "issuer",
        Method::DELETE,
        "/cards",
        &[("Tax-Code", &tc)],
        None,
    )
    .await
    .assert_error(400, 2010);
    app.call(
        "platform",
        Method::DELETE,
        "/cards",
        &[("Tax-Code", &tc), ("hpan", &sha(PAN))],
        None,
    )
    .await
    .assert_error(403, 9403);
    app.call("platform", Method::GET, "/cards", &[], None)
        .await
        .assert_error(400, 2010);
    app.call("platform", Method::GET, "/cards", &[("hpan", "xyz")], None)
        .await
        .assert_error(400, 2000);
    app.call("io", Method::GET, "/cards", &[("hpan", &sha(PAN))], None)
        .await
        .assert_error(403, 9403);
}

#[actix_web::test]
async fn the_default_topology_is_quorum_with_a_delivery_limit_and_dead_letters() {
    let mut settings = crate::helpers::test_settings().await;
    settings.rabbitmq.quorum_queues = true;
    let app = crate::helpers::spawn_app_with(settings).await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "name",
            "type",
            "arguments",
            "--formatter",
            "json",
        ])
        .output()
        .unwrap();
    let queues: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| {
        queues
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not declared"))
    };
    for q in [
        &r.card_events_queue,
        &r.card_deletions_queue,
        &r.transactions_queue,
    ] {
        let q = find(q);
        assert_eq!(q["type"], "quorum", "{q}");
        let args = q["arguments"].to_string();
        assert!(
            args.contains("x-delivery-limit") && args.contains(&r.dead_letter_exchange),
            "{args}"
        );
    }
    for q in [
        &r.card_updates_queue,
        &r.outcomes_queue,
        &r.dead_letter_queue,
    ] {
        assert_eq!(find(q)["type"], "quorum");
    }
    let (_c, ch) = channel().await;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    publish(
        &ch,
        &r.card_events_queue,
        &encrypt(&app, &enrolment(&tc, PAN, None, "2026-11-23 10:00:00:0000")),
        "q1",
    )
    .await;
    assert!(
        next(&ch, &r.card_updates_queue, Duration::from_secs(15))
            .await
            .is_some(),
        "events flow through quorum queues"
    );
}

#[actix_web::test]
async fn messages_the_broker_dead_letters_itself_are_counted_as_delivery_limit() {
    use lapin::options::BasicPublishOptions;
    use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let (_c, ch) = channel().await;
    // What the broker publishes when a quorum queue's delivery limit is reached.
    let mut death = FieldTable::default();
    death.insert(
        "queue".into(),
        AMQPValue::LongString(LongString::from(r.card_events_queue.as_str())),
    );
    death.insert(
        "reason".into(),
        AMQPValue::LongString(LongString::from("delivery_limit")),
    );
    let mut headers = FieldTable::default();
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
    );
    ch.basic_publish(
        r.dead_letter_exchange.as_str().into(),
        "".into(),
        BasicPublishOptions::default(),
        b"poison",
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let expected = format!(
        r#"tkm_messages_consumed_total{{outcome="dead-lettered",queue="{}",reason="DELIVERY_LIMIT"}} 1"#,
        r.card_events_queue
    );
    let counted = crate::helpers::eventually(Duration::from_secs(10), || async {
        let mut m = awc::Client::default()
            .get(app.ops_url("/metrics"))
            .send()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&m.body().await.ok()?).into_owned();
        text.contains(&expected).then_some(())
    })
    .await;
    assert!(counted.is_some(), "counted as DELIVERY_LIMIT");
    let kept = next(&ch, &r.dead_letter_queue, Duration::from_secs(5)).await;
    assert!(
        kept.is_some(),
        "the operators' dead-letter queue still holds it"
    );
}
