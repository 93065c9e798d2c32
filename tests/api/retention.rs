//! The retention job (`data.md`, `matching.md`): ciphertexts of cards inactive and tokens deleted
//! for `vault.inactive_retention_days` are erased (hashes and PARs stay), and outcomes older than
//! `matching.retention_days`; live or recent rows are kept. Run by `POST /admin/retention` (and
//! daily); the job counts what it erased.

use awc::http::Method;

use crate::helpers::{job_end, sha, spawn_app};

#[actix_web::test]
async fn old_inactive_ciphertexts_and_old_outcomes_are_erased_and_the_rest_kept() {
    let app = spawn_app().await;
    let conn = app.pool.get().await.unwrap();
    // (name, active, days since the last change)
    for (name, active, days) in [
        ("old-inactive", false, 500),
        ("recent-inactive", false, 10),
        ("old-active", true, 500),
    ] {
        conn.execute(
            "INSERT INTO card (hpan, circuit, active, pan_key_id, pan_ct, pan_last4, created_by, updated_by, updated_at) \
             VALUES ($1, 'VISA', $2, 'k1', '\\x0102'::bytea, '1234', 't', 't', now() - make_interval(days => $3))",
            &[&sha(name), &active, &days],
        )
        .await
        .unwrap();
    }
    for (name, deleted, days) in [("old-deleted", true, 500), ("old-live", false, 500)] {
        conn.execute(
            "INSERT INTO token (htoken, circuit, token_key_id, token_ct, source, deleted, created_by, updated_by, updated_at) \
             VALUES ($1, 'VISA', 'k1', '\\x0102'::bytea, 'issuer', $2, 't', 't', now() - make_interval(days => $3))",
            &[&sha(name), &deleted, &days],
        )
        .await
        .unwrap();
    }
    let source = uuid::Uuid::new_v4();
    for (line, days) in [(1i64, 500), (2, 10)] {
        conn.execute(
            "INSERT INTO txn_outcome (source_id, line, processing_day, outcome, match) \
             VALUES ($1, $2, current_date - $3::int, 'DISCARDED', 'NONE')",
            &[&source, &line, &days],
        )
        .await
        .unwrap();
    }

    let r = app
        .call("admin", Method::POST, "/admin/retention", &[], None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let job = job_end(&app, r.json["jobId"].as_str().unwrap()).await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["kind"], "retention", "{job}");
    assert_eq!(job["done"], 3, "one card, one token, one outcome: {job}");

    let sealed = |table: &'static str, column: &'static str, key: &'static str| {
        let conn = &conn;
        async move {
            let rows = conn
                .query(
                    &format!("SELECT {key} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1"),
                    &[],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let mut kept = vec![sha("recent-inactive"), sha("old-active")];
    kept.sort();
    assert_eq!(sealed("card", "pan_ct", "hpan").await, kept);
    assert_eq!(
        sealed("token", "token_ct", "htoken").await,
        [sha("old-live")]
    );
    let cards: i64 = conn
        .query_one("SELECT count(*) FROM card", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cards, 3, "hashes stay");
    let lines: Vec<i64> = conn
        .query("SELECT line FROM txn_outcome ORDER BY line", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(lines, [2]);

    // Nothing left to erase: the next run erases nothing.
    let again = app
        .call("admin", Method::POST, "/admin/retention", &[], None)
        .await;
    let job = job_end(&app, again.json["jobId"].as_str().unwrap()).await;
    assert_eq!(job["done"], 0, "{job}");
}
