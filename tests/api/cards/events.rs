//! GnuPG-encrypted card events in, card updates out, each applied once.

use super::*;

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
        // Recognised by its message_id: counted as a duplicate, not applied again.
        (text.contains(&format!(
            r#"{{outcome="applied",queue="{}",reason=""}} 1"#,
            r.card_events_queue
        )) && text.contains(&format!(
            r#"{{outcome="ignored",queue="{}",reason="DUPLICATE"}} 1"#,
            r.card_events_queue
        )))
        .then_some(())
    })
    .await;
    assert!(
        applied.is_some(),
        "the duplicate was consumed and recognised"
    );
    assert!(
        drain(&ch, &r.card_updates_queue, Duration::from_millis(700))
            .await
            .is_empty(),
        "no second update"
    );
}
