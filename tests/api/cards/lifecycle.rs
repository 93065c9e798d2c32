//! Deletions, consent changes and the issuers' `/cards` endpoints over a card's life.

use super::*;

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

/// Publishes a card event with the given `message_id` and AMQP `timestamp` property.
async fn publish_stamped(ch: &lapin::Channel, queue: &str, body: &[u8], id: &str, ts: u64) {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            body,
            lapin::BasicProperties::default()
                .with_message_id(id.into())
                .with_timestamp(ts)
                .with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
}

async fn consumed(app: &crate::helpers::TestApp, queue: &str, reason: &str) -> u64 {
    let mut res = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&res.body().limit(4 << 20).await.unwrap()).into_owned();
    let needle = format!(
        "tkm_messages_consumed_total{{outcome=\"ignored\",queue=\"{queue}\",reason=\"{reason}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_redelivered_enrolment_without_timestamp_cannot_undo_a_later_deletion() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = &app.settings.rabbitmq;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let (_c, ch) = channel().await;
    // An enrolment with no timestamp in its body; the producer stamped the message.
    let event = serde_json::to_vec(
        &json!({"taxCode": tc, "pan": PAN, "circuit": "MASTERCARD", "par": PAR}),
    )
    .unwrap();
    let body_pgp = encrypt(&app, &event);
    let stamped = u64::try_from(chrono::Utc::now().timestamp()).unwrap() - 1;
    publish_stamped(&ch, &r.card_events_queue, &body_pgp, "enrol-1", stamped).await;
    next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("enrolment update");

    let deleted = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[("Tax-Code", &tc), ("hpan", &sha(PAN))],
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("a revoke");

    // The same message again (a redelivery), and the same body re-sent under another id.
    publish_stamped(&ch, &r.card_events_queue, &body_pgp, "enrol-1", stamped).await;
    publish_stamped(
        &ch,
        &r.card_events_queue,
        &body_pgp,
        "enrol-1-resent",
        stamped,
    )
    .await;
    let q = r.card_events_queue.clone();
    let both = crate::helpers::eventually(Duration::from_secs(15), || async {
        (consumed(&app, &q, "DUPLICATE").await == 1 && consumed(&app, &q, "STALE").await == 1)
            .then_some(())
    })
    .await;
    assert!(
        both.is_some(),
        "one duplicate and one stale message counted"
    );
    let card = app
        .call(
            "platform",
            Method::GET,
            "/cards",
            &[("hpan", &sha(PAN))],
            None,
        )
        .await;
    card.assert_error(404, 2404);

    // DELETE /cards takes a timestamp too: one older than the link's last change is refused.
    let enrol_again = serde_json::to_vec(&json!({"taxCode": tc, "pan": PAN,
        "circuit": "MASTERCARD", "par": PAR, "timestamp": "2099-01-01T10:00:00Z"}))
    .unwrap();
    publish(
        &ch,
        &r.card_events_queue,
        &encrypt(&app, &enrol_again),
        "enrol-2",
    )
    .await;
    next(&ch, &r.card_updates_queue, Duration::from_secs(15))
        .await
        .expect("re-enrolled");
    let stale = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[
                ("Tax-Code", &tc),
                ("hpan", &sha(PAN)),
                ("Timestamp", "2098-12-31 10:00:00:0000"),
            ],
            None,
        )
        .await;
    stale.assert_error(400, 2000);
    let later = app
        .call(
            "issuer",
            Method::DELETE,
            "/cards",
            &[
                ("Tax-Code", &tc),
                ("hpan", &sha(PAN)),
                ("Timestamp", "2099-01-02T10:00:00+01:00"),
            ],
            None,
        )
        .await;
    assert_eq!(later.status, 204, "{}", later.text);
}
