//! Generations: a build that fails midway leaves the last good one served; a delta turns an
//! earlier generation into the newest one exactly.

use std::time::Duration;

use awc::http::Method;

use super::{build, follow, full_list, header, unzip_lines};
use crate::helpers::{eventually, job_end, spawn_app, TestApp};

const LIST: &str = "/rtd/payment-instrument-manager/hashed-pans";

/// `n` more enrolled cards (numbered from `from`) of one consenting citizen.
async fn enrol(app: &TestApp, from: i64, n: i64) {
    let conn = app.pool.get().await.unwrap();
    let tc = crate::helpers::tax_code();
    conn.execute(
        "INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by) \
         VALUES ($1, 1, '{\"services\": {\"FA\": \"Allow\"}}', 't', 't')",
        &[&tc],
    )
    .await
    .unwrap();
    conn.execute(
        "WITH c AS (INSERT INTO card (hpan, circuit, active, created_by, updated_by) \
           SELECT encode(sha256(('gen-card-' || i)::bytea), 'hex'), 'VISA', true, 't', 't' \
           FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i RETURNING id) \
         INSERT INTO card_link (card_id, tax_code, live, opened_at, changed_at, created_by, updated_by) \
         SELECT id, $3, true, now(), now(), 't', 't' FROM c",
        &[&from, &n, &tc],
    )
    .await
    .unwrap();
}

#[actix_web::test]
async fn a_build_that_fails_midway_leaves_the_last_good_generation_served() {
    let app = spawn_app().await;
    enrol(&app, 0, 300_000).await;
    build(&app, "hpans").await;
    let (good, file) = follow(&app, "acquirer", LIST).await;
    let good_generation = header(&good, "x-ms-meta-generation");
    let good_lines = unzip_lines(&file);

    enrol(&app, 300_000, 10).await;
    let r = app
        .call(
            "admin",
            Method::POST,
            "/admin/lists/generate?kinds=hpans",
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let job = r.json["jobId"].as_str().unwrap().to_owned();
    // Cut the build's database connection while it streams the list.
    let conn = app.pool.get().await.unwrap();
    let killed = eventually(Duration::from_secs(30), || async {
        let n: i64 = conn
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'COPY (SELECT v FROM%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (n > 0).then_some(())
    })
    .await;
    assert!(killed.is_some(), "the build's COPY was never seen");
    let state = job_end(&app, &job).await;
    assert_eq!(state["state"], "FAILED", "{state}");

    // Still the last good generation, whole; no half-written directory left behind.
    let (again, file) = follow(&app, "acquirer", LIST).await;
    assert_eq!(header(&again, "x-ms-meta-generation"), good_generation);
    assert_eq!(unzip_lines(&file), good_lines);
    let dir = app.settings.storage.dir.join("lists/hpans");
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".building"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The next build publishes the new cards.
    build(&app, "hpans").await;
    let (lines, _) = full_list(&app, LIST).await;
    assert_eq!(lines.len(), good_lines.len() + 10);
}

#[actix_web::test]
async fn a_delta_turns_the_previous_generation_into_the_current_one() {
    let app = spawn_app().await;
    enrol(&app, 0, 1_000).await;
    build(&app, "hpans").await;
    let (old, old_generation) = full_list(&app, LIST).await;
    let old_generation = old_generation.as_str().unwrap().to_owned();

    // A day's changes: cards leave, cards arrive.
    app.pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE card SET active = false WHERE hpan IN (SELECT hpan FROM card ORDER BY hpan LIMIT 7)",
            &[],
        )
        .await
        .unwrap();
    enrol(&app, 5_000, 11).await;
    build(&app, "hpans").await;
    let (new, new_generation) = full_list(&app, LIST).await;
    assert_ne!(new_generation.as_str().unwrap(), old_generation);

    let (redirect, file) = follow(
        &app,
        "acquirer",
        &format!("{LIST}/delta?since={old_generation}"),
    )
    .await;
    assert_eq!(
        header(&redirect, "x-ms-meta-generation"),
        new_generation.as_str().unwrap()
    );
    let delta = unzip_lines(&file);
    assert_eq!(delta.iter().filter(|l| l.starts_with('-')).count(), 7);
    assert_eq!(delta.iter().filter(|l| l.starts_with('+')).count(), 11);
    let mut values: Vec<&str> = delta.iter().map(|l| &l[1..]).collect();
    let before = values.clone();
    values.sort();
    assert_eq!(values, before, "sorted by value");
    let old_refs: Vec<&str> = old.iter().map(String::as_str).collect();
    let delta_refs: Vec<&str> = delta.iter().map(String::as_str).collect();
    let rebuilt = tkm::files::delta::apply(&old_refs, &delta_refs);
    assert_eq!(rebuilt, new);
    // The rebuilt list checks against the generation's content checksum.
    let content: String = rebuilt.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(
        header(&redirect, "x-ms-meta-content-sha256"),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes()))
    );

    // From the current generation: nothing to change.
    let current = new_generation.as_str().unwrap();
    let (_, file) = follow(&app, "acquirer", &format!("{LIST}/delta?since={current}")).await;
    assert_eq!(unzip_lines(&file), vec![String::new()]);
    // Unknown or past retention: the client falls back to the full list.
    app.call(
        "acquirer",
        Method::GET,
        &format!("{LIST}/delta?since=999999999"),
        &[],
        None,
    )
    .await
    .assert_error(404, 4001);
    app.call(
        "acquirer",
        Method::GET,
        &format!("{LIST}/delta?since=yesterday"),
        &[],
        None,
    )
    .await
    .assert_error(400, 4000);
    app.call(
        "acquirer",
        Method::GET,
        "/rtd/payment-instrument-manager/par-list/delta?since=1",
        &[],
        None,
    )
    .await
    .assert_error(404, 4001);
}
