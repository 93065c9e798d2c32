//! The circuits' repositories against a real database: PAR lookups queued and leased only while
//! owed, BIN range sets replaced whole (or refused when shrunken), stored jobs.

use std::time::Duration;

use tkm::db::{bin_ranges, jobs, par_lookups};
use tkm::domain::{BinRange, Circuit};

use crate::helpers::{hpan, spawn_app, spawn_app_with, tax_code, test_settings, TestApp};

async fn exec(app: &TestApp, sql: &str) {
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute(sql)
        .await
        .unwrap();
}

/// A live card of `tc` with a sealed PAN (opaque bytes here: the repository never opens it).
async fn card(app: &TestApp, c: char, tc: &str, active: bool) -> i64 {
    let conn = app.pool.get().await.unwrap();
    let id: i64 = conn
        .query_one(
            "INSERT INTO card (hpan, pan_key_id, pan_ct, circuit, active, created_by, updated_by) \
             VALUES ($1, 'k1', '\\x01'::bytea, 'VISA', $2, 't', 't') RETURNING id",
            &[&hpan(c), &active],
        )
        .await
        .unwrap()
        .get(0);
    conn.execute(
        "INSERT INTO card_link (card_id, tax_code, live, opened_at, changed_at, created_by, updated_by) \
         VALUES ($1, $2, $3, now(), now(), 't', 't')",
        &[&id, &tc, &active],
    )
    .await
    .unwrap();
    id
}

async fn citizen(app: &TestApp, tc: &str, bpd: &str) {
    exec(
        app,
        &format!(
            "INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by) \
             VALUES ('{tc}', 1, '{{\"services\": {{\"BPD\": \"{bpd}\"}}}}', 't', 't') \
             ON CONFLICT (tax_code) DO UPDATE SET state = EXCLUDED.state"
        ),
    )
    .await;
}

async fn enqueue_all(app: &TestApp) -> u64 {
    let (mut after_card, mut after_token, mut queued) = (Some(0), Some(0), 0);
    while after_card.is_some() || after_token.is_some() {
        let (n, c, t) = par_lookups::enqueue_page(&app.pool, after_card, after_token, 2)
            .await
            .unwrap();
        queued += n;
        (after_card, after_token) = (c, t);
    }
    queued
}

#[actix_web::test]
async fn lookups_are_owed_only_for_live_consenting_cards_and_leased_once() {
    // No circuit enabled: the application's own resolver leases nothing behind the test's back.
    let mut settings = test_settings().await;
    for c in [
        &mut settings.circuits.visa,
        &mut settings.circuits.mastercard,
        &mut settings.circuits.amex,
    ] {
        c.enabled = false;
    }
    let app = spawn_app_with(settings).await;
    let (allows, denies) = (tax_code(), tax_code());
    citizen(&app, &allows, "Allow").await;
    citizen(&app, &denies, "Deny").await;
    let owed = card(&app, 'a', &allows, true).await;
    card(&app, 'b', &denies, true).await;
    card(&app, 'c', &allows, false).await;
    let also_owed = card(&app, 'd', &allows, true).await;

    enqueue_all(&app).await;
    let queued: Vec<i64> = app
        .pool
        .get()
        .await
        .unwrap()
        .query("SELECT subject_id FROM par_lookup ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(queued, [owed, also_owed], "only live consenting cards");
    assert_eq!(enqueue_all(&app).await, 0, "queueing again adds nothing");

    // The card deleted after queueing: the lease re-checks and drops the lookup.
    exec(
        &app,
        &format!("UPDATE card SET active = false WHERE id = {also_owed}"),
    )
    .await;
    let leased = par_lookups::lease(
        &app.pool,
        Circuit::Visa,
        par_lookups::Lane::Cards,
        10,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].key, ("card".to_owned(), owed));
    // A second cycle never asks again while the lease holds.
    let again = par_lookups::lease(
        &app.pool,
        Circuit::Visa,
        par_lookups::Lane::Cards,
        10,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        par_lookups::backlog(&app.pool, Circuit::Visa)
            .await
            .unwrap(),
        1
    );

    // "No PAR yet": due again only after reask_after; exhausted after max_reasks.
    par_lookups::settle_not_yet(&app.pool, &leased[0].key, Duration::ZERO, 1)
        .await
        .unwrap();
    assert_eq!(
        par_lookups::backlog(&app.pool, Circuit::Visa)
            .await
            .unwrap(),
        0
    );
    let none = par_lookups::lease(
        &app.pool,
        Circuit::Visa,
        par_lookups::Lane::Cards,
        10,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(none.is_empty(), "exhausted lookups are not asked again");

    // A consent change queues the citizen's cards at once, in the caller's transaction.
    let late = tax_code();
    citizen(&app, &late, "Allow").await;
    let fresh = card(&app, 'e', &late, true).await;
    let conn = app.pool.get().await.unwrap();
    assert_eq!(
        par_lookups::enqueue_citizens(&conn, std::slice::from_ref(&late))
            .await
            .unwrap(),
        1
    );
    let leased = par_lookups::lease(
        &app.pool,
        Circuit::Visa,
        par_lookups::Lane::Cards,
        10,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].key.1, fresh);
    par_lookups::settle_found(&app.pool, &leased[0].key)
        .await
        .unwrap();
    assert_eq!(
        par_lookups::backlog(&app.pool, Circuit::Visa)
            .await
            .unwrap(),
        0
    );
}

fn ranges(n: usize) -> Vec<BinRange> {
    (0..n)
        .map(|i| {
            let min = format!("4{:05}0000000000000", i);
            let max = format!("4{:05}9999999999999", i);
            BinRange::parse(Circuit::Visa, &min, &max, None, Some("Bank"))
                .unwrap_or_else(|e| panic!("{e:?}"))
        })
        .collect()
}

#[actix_web::test]
async fn a_bin_range_set_is_replaced_whole_and_a_shrunken_one_is_refused_unless_forced() {
    let app = spawn_app().await;
    let p = &app.pool;
    assert_eq!(
        bin_ranges::replace(p, Circuit::Visa, &ranges(10), 0.5, false, "t")
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        bin_ranges::replace(p, Circuit::Visa, &ranges(4), 0.5, false, "t")
            .await
            .unwrap(),
        Err(10),
        "a set below min_ratio of the current one changes nothing"
    );
    assert_eq!(bin_ranges::count(p, Circuit::Visa).await.unwrap(), 10);
    bin_ranges::record_failure(p, Circuit::Visa, "fetch failed: timed out", "t")
        .await
        .unwrap();
    let conn = p.get().await.unwrap();
    let state = bin_ranges::state(&conn, Circuit::Visa).await.unwrap();
    assert_eq!(state.ranges, 10);
    assert_eq!(state.last_error.as_deref(), Some("fetch failed: timed out"));
    assert_eq!(
        bin_ranges::replace(p, Circuit::Visa, &ranges(4), 0.5, true, "t")
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(bin_ranges::all(p, Circuit::Visa).await.unwrap(), ranges(4));
    assert_eq!(bin_ranges::count(p, Circuit::Amex).await.unwrap(), 0);
    let state = bin_ranges::state(&conn, Circuit::Visa).await.unwrap();
    assert!(state.last_error.is_none() && state.last_success.is_some());
}

#[actix_web::test]
async fn a_running_job_is_joined_and_interrupted_ones_end_failed() {
    let app = spawn_app().await;
    let p = &app.pool;
    let owner = jobs::new_owner();
    let (id, created) = jobs::start(p, owner, "bin-refresh", "VISA", "t")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        jobs::start(p, owner, "bin-refresh", "VISA", "t")
            .await
            .unwrap(),
        (id, false)
    );
    let (other, created) = jobs::start(p, owner, "bin-refresh", "AMEX", "t")
        .await
        .unwrap();
    assert!(created && other != id);
    jobs::progress(p, id, 3, Some(7)).await.unwrap();
    jobs::finish(p, id, Ok(())).await.unwrap();
    let job = jobs::get(p, id).await.unwrap().unwrap();
    assert_eq!(
        (job.state.as_str(), job.done, job.total),
        ("SUCCEEDED", 3, Some(7))
    );
    assert!(job.finished_at.is_some());
    let (next, created) = jobs::start(p, owner, "bin-refresh", "VISA", "t")
        .await
        .unwrap();
    assert!(created && next != id);
    // Jobs of a live process are never taken as interrupted, by whichever replica looks.
    assert_eq!(jobs::fail_interrupted(p).await.unwrap(), 0);
    // Its process stops beating (a crash): the jobs end FAILED, and the next start replaces them.
    exec(
        &app,
        "UPDATE job SET heartbeat_at = now() - interval '1 minute', owner = NULL WHERE kind = 'bin-refresh'",
    )
    .await;
    assert_eq!(jobs::fail_interrupted(p).await.unwrap(), 2);
    let cut = jobs::get(p, other).await.unwrap().unwrap();
    assert_eq!(
        (cut.state.as_str(), cut.error.as_deref()),
        ("FAILED", Some("interrupted"))
    );
    let recent = jobs::recent(p, 10).await.unwrap();
    assert_eq!(recent.iter().filter(|j| j.kind == "bin-refresh").count(), 3);
    let (stale, _) = jobs::start(p, owner, "par-refresh", "ALL-T", "t")
        .await
        .unwrap();
    exec(
        &app,
        "UPDATE job SET heartbeat_at = now() - interval '1 minute', owner = NULL WHERE scope = 'ALL-T'",
    )
    .await;
    let (fresh, created) = jobs::start(p, owner, "par-refresh", "ALL-T", "t")
        .await
        .unwrap();
    assert!(
        created && fresh != stale,
        "a stale running job does not block a new one"
    );
    assert_eq!(jobs::get(p, stale).await.unwrap().unwrap().state, "FAILED");
}
