//! Concurrent changes for one citizen, and several replicas.

use super::*;

#[actix_web::test]
async fn concurrent_changes_for_one_citizen_are_serialised() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Deny"})).await;
    let requests = (0..24).map(|i| {
        let (app, tc) = (&app, tc.clone());
        let service = if i % 2 == 0 { "BPD" } else { "FA" };
        let consent = if i % 3 == 0 { "Allow" } else { "Deny" };
        async move {
            post(
                app,
                "io",
                &tc,
                json!({"consent": consent, "services": [service]}),
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let c = app.pool.get().await.unwrap();
    let versions: Vec<i64> = c
        .query(
            "SELECT version FROM consent_history WHERE tax_code = $1 ORDER BY at",
            &[&tc],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=25).collect::<Vec<i64>>(),
        "one version per change, in time order"
    );
    let last: serde_json::Value = c
        .query_one(
            "SELECT after FROM consent_history WHERE tax_code = $1 AND version = 25",
            &[&tc],
        )
        .await
        .unwrap()
        .get(0);
    let row = c
        .query_one(
            "SELECT state, bpd_allowed, fa_allowed FROM consent_citizen WHERE tax_code = $1",
            &[&tc],
        )
        .await
        .unwrap();
    let state: serde_json::Value = row.get(0);
    assert_eq!(state, last, "the live row holds the last history state");
    assert_eq!(row.get::<_, bool>(1), last["services"]["BPD"] == "Allow");
    assert_eq!(row.get::<_, bool>(2), last["services"]["FA"] == "Allow");
    let api = get(&app, "io", &tc, "?services=BPD").await;
    assert_eq!(
        api.json["consent"], last["services"]["BPD"],
        "the cache agrees with the database"
    );
}

#[actix_web::test]
async fn a_change_on_one_replica_is_read_on_another_within_a_second() {
    let settings = crate::helpers::test_settings().await;
    let a = crate::helpers::spawn_app_with(settings.clone()).await;
    let b = crate::helpers::spawn_app_with(settings).await;
    let tc = tax_code();
    post(&a, "io", &tc, json!({"consent": "Deny"})).await;
    assert_eq!(
        get(&b, "io", &tc, "").await.json["consent"],
        "Deny",
        "b caches Deny"
    );
    post(&a, "io", &tc, json!({"consent": "Allow"})).await;
    let seen = crate::helpers::eventually(std::time::Duration::from_secs(1), || async {
        (get(&b, "io", &tc, "").await.json["consent"] == "Allow").then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "replica b still shows the old consent after 1 s"
    );
}

#[actix_web::test]
async fn work_in_flight_is_bounded_and_overload_answers_503() {
    let mut settings = crate::helpers::test_settings().await;
    settings.consent.mailbox_capacity = 2;
    let app = crate::helpers::spawn_app_with(settings).await;
    let requests = (0..40).map(|_| {
        let app = &app;
        async move {
            let r = post(app, "io", &tax_code(), json!({"consent": "Allow"})).await;
            (r.status, r.json["statusCode"].clone())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let overloaded = answers
        .iter()
        .filter(|(s, c)| *s == 503 && *c == 9503)
        .count();
    assert_eq!(ok + overloaded, answers.len(), "{answers:?}");
    assert!(ok >= 2, "some are served: {answers:?}");
    assert!(
        overloaded >= 1,
        "the bound of 2 refuses some of 40 at once: {answers:?}"
    );
    // Nothing is left in flight once they are answered, as the metric and the status show.
    let mut res = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&res.body().limit(4 << 20).await.unwrap()).into_owned();
    assert!(
        metrics.contains(r#"tkm_actor_mailbox{actor="consent-registry"} 0"#),
        "{metrics}"
    );
    let status = app
        .call("admin", Method::GET, "/admin/status", &[], None)
        .await;
    assert_eq!(status.json["actors"]["consent-registry"]["mailbox"], 0);
    assert_eq!(status.json["actors"]["consent-registry"]["capacity"], 2);
}
