//! Poison messages, the quorum topology and the broker's own dead letters.

use super::*;

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

#[actix_web::test]
async fn dead_letters_carry_no_card_number_and_a_replay_applies_the_original_once_fixed() {
    // An installation whose card-event size limit is too small for real events (the fault an
    // operator later fixes).
    let mut settings = crate::helpers::test_settings().await;
    settings.rabbitmq.max_message_bytes = 200;
    let mut app = crate::helpers::spawn_app_with(settings.clone()).await;
    wait_for_topology(&app).await;
    let r = app.settings.rabbitmq.clone();
    let (_c, ch) = channel().await;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let canary = format!("49999{:011}", rand::random::<u64>() % 100_000_000_000);

    // A card event (PGP) with the canary inside, and the canary in a producer's header too.
    let event = json!({"taxCode": tc, "pan": canary, "circuit": "VISA",
        "par": "V0010000000000000000000000042", "note": "x".repeat(300)});
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-note".into(),
        lapin::types::AMQPValue::LongString(format!("card {canary}").into()),
    );
    let confirm = ch
        .basic_publish(
            "".into(),
            r.card_events_queue.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            &encrypt(&app, &serde_json::to_vec(&event).unwrap()),
            lapin::BasicProperties::default()
                .with_message_id("dl-event".into())
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    // A plain-JSON deletion that carries the clear PAN where its hash belongs.
    let deletion = json!({"taxCode": "not a tax code", "hpan": canary});
    publish(
        &ch,
        &r.card_deletions_queue,
        &serde_json::to_vec(&deletion).unwrap(),
        "dl-deletion",
    )
    .await;

    let mut letters = Vec::new();
    while letters.len() < 2 {
        let l = next(&ch, &r.dead_letter_queue, Duration::from_secs(15))
            .await
            .expect("both messages are dead-lettered");
        letters.push(l);
    }
    let mut event_letter = None;
    for l in &letters {
        let text = String::from_utf8_lossy(&l.delivery.data).into_owned();
        let headers: String = l
            .delivery
            .properties
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .keys()
                    .filter_map(|k| header(l, k.as_str()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .unwrap_or_default();
        assert!(
            !text.contains(&canary),
            "canary in a dead letter's body: {text}"
        );
        assert!(
            !headers.contains(&canary),
            "canary in a dead letter's headers: {headers}"
        );
        let id = header(l, "x-tkm-dead-letter-id").expect("the dead letter's id");
        match header(l, "x-tkm-error-code").as_deref() {
            Some("TOO_LARGE") => {
                assert!(
                    headers.contains("card 49999"),
                    "masked, not dropped: {headers}"
                );
                event_letter = Some(id);
            }
            Some("INVALID_FIELD") => {
                assert!(text.contains(&format!("{}…", &canary[..6])), "{text}");
            }
            other => panic!("unexpected code {other:?}"),
        }
    }
    let event_letter = event_letter.expect("the card event's dead letter");
    let sealed = ["dead_letter.sealed", "card.pan_ct", "token.token_ct"];
    assert_eq!(
        app.columns_holding(&canary, &sealed).await,
        Vec::<String>::new(),
        "the canary is in no clear column"
    );
    let listed = app
        .call("admin", Method::GET, "/admin/dead-letters", &[], None)
        .await;
    assert_eq!(listed.status, 200);
    assert!(!listed.text.contains(&canary));

    // The operator fixes the limit, restarts, and replays the event.
    app.stop().await;
    settings.rabbitmq.max_message_bytes = 65536;
    let app = crate::helpers::spawn_app_with(settings).await;
    wait_for_topology(&app).await;
    let replayed = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/dead-letters/{event_letter}/replay"),
            &[],
            None,
        )
        .await;
    assert_eq!(replayed.status, 202, "{}", replayed.text);
    let card = crate::helpers::eventually(Duration::from_secs(20), || async {
        let r = app
            .call(
                "platform",
                Method::GET,
                "/cards",
                &[("hpan", &sha(&canary))],
                None,
            )
            .await;
        (r.status == 200).then_some(r.json)
    })
    .await
    .expect("the replayed event is applied");
    assert_eq!(card["par"], "V0010000000000000000000000042");
    let unknown = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/dead-letters/{}/replay", uuid::Uuid::new_v4()),
            &[],
            None,
        )
        .await;
    unknown.assert_error(404, 4001);
    assert_eq!(
        app.columns_holding(&canary, &sealed).await,
        Vec::<String>::new(),
        "still in no clear column after the replay"
    );
}
