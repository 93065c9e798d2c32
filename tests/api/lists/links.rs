//! One-shot links: used once, by their client only, before expiry; one of concurrent requests
//! wins; parts and `x-ms-meta-nextFile`; an empty list; links outlive a restart.

use awc::http::Method;

use super::{build, follow, header, link_path, unzip_lines};
use crate::helpers::{sha, spawn_app, spawn_app_with, test_settings, TestApp};

/// `n` enrolled cards of a consenting citizen (no PAR: the HPAN list holds them).
async fn cards(app: &TestApp, n: usize) -> Vec<String> {
    let conn = app.pool.get().await.unwrap();
    let tc = crate::helpers::tax_code();
    conn.execute(
        "INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by) \
         VALUES ($1, 1, '{\"services\": {\"BPD\": \"Allow\"}}', 't', 't')",
        &[&tc],
    )
    .await
    .unwrap();
    let mut hpans = Vec::new();
    for i in 0..n {
        let hpan = sha(&format!("link-card-{i}"));
        conn.execute(
            "WITH c AS (INSERT INTO card (hpan, circuit, active, created_by, updated_by) \
               VALUES ($1, 'AMEX', true, 't', 't') RETURNING id) \
             INSERT INTO card_link (card_id, tax_code, live, opened_at, changed_at, created_by, updated_by) \
             SELECT id, $2, true, now(), now(), 't', 't' FROM c",
            &[&hpan, &tc],
        )
        .await
        .unwrap();
        hpans.push(hpan);
    }
    hpans.sort();
    hpans
}

async fn location(app: &TestApp, role: &str, path: &str) -> String {
    let r = app.call(role, Method::GET, path, &[], None).await;
    assert_eq!(r.status, 302, "{}", r.text);
    link_path(app, &header(&r, "location"))
}

#[actix_web::test]
async fn a_link_works_once_for_its_client_until_it_expires() {
    let app = spawn_app().await;
    cards(&app, 3).await;
    build(&app, "hpans").await;
    const LIST: &str = "/rtd/payment-instrument-manager/hashed-pans";

    // Another client's link is not found, and stays usable by its own client.
    let link = location(&app, "acquirer", LIST).await;
    app.call("platform", Method::GET, &link, &[], None)
        .await
        .assert_error(404, 4001);
    let first = app.call("acquirer", Method::GET, &link, &[], None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    app.call("acquirer", Method::GET, &link, &[], None)
        .await
        .assert_error(410, 4002);
    app.call("acquirer", Method::GET, "/download/not-a-token", &[], None)
        .await
        .assert_error(404, 4001);

    // Expired before use.
    let link = location(&app, "acquirer", LIST).await;
    app.pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE list_link SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
            &[],
        )
        .await
        .unwrap();
    app.call("acquirer", Method::GET, &link, &[], None)
        .await
        .assert_error(410, 4002);

    // Of concurrent requests for one link, exactly one gets the file.
    let link = location(&app, "acquirer", LIST).await;
    let answers = futures_util::future::join_all(
        (0..8).map(|_| app.call("acquirer", Method::GET, &link, &[], None)),
    )
    .await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "exactly one download");
    for r in answers.iter().filter(|r| r.status != 200) {
        r.assert_error(410, 4002);
    }
    // The token itself is never stored, only its digest.
    let token = link.trim_start_matches("/download/");
    assert!(app.columns_holding(token, &[]).await.is_empty());
}

#[actix_web::test]
async fn a_list_comes_in_parts_and_an_empty_list_is_one_empty_line() {
    let mut settings = test_settings().await;
    settings.lists.max_rows_per_file = 2;
    let app = spawn_app_with(settings).await;
    const PARS: &str = "/rtd/payment-instrument-manager/par-list";
    // Nothing enrolled: one part holding one empty line.
    build(&app, "pars").await;
    let (redirect, file) = follow(&app, "acquirer", PARS).await;
    assert!(redirect.headers.get("x-ms-meta-nextFile").is_none());
    assert_eq!(unzip_lines(&file), vec![String::new()]);
    assert_eq!(
        header(&file, "content-disposition"),
        "attachment; filename=\"parList_0.zip\""
    );

    let hpans = cards(&app, 5).await;
    build(&app, "hpans").await;
    const LIST: &str = "/rtd/payment-instrument-manager/hashed-pans";
    let mut got = Vec::new();
    for (part, next) in [(0, Some("1")), (1, Some("2")), (2, None)] {
        let (redirect, file) = follow(&app, "acquirer", &format!("{LIST}?filePart={part}")).await;
        let next_file = redirect
            .headers
            .get("x-ms-meta-nextFile")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(next_file.as_deref(), next, "part {part}");
        assert!(httpdate::parse_http_date(&header(&redirect, "last-modified")).is_ok());
        assert_eq!(
            header(&redirect, "last-modified"),
            header(&file, "last-modified")
        );
        got.extend(unzip_lines(&file));
    }
    assert_eq!(got, hpans);
    // filePartId is the legacy name of filePart.
    let (_, file) = follow(&app, "acquirer", &format!("{LIST}?filePartId=1")).await;
    assert_eq!(unzip_lines(&file), hpans[2..4].to_vec());
    app.call(
        "acquirer",
        Method::GET,
        &format!("{LIST}?filePart=3"),
        &[],
        None,
    )
    .await
    .assert_error(404, 4001);
    app.call(
        "acquirer",
        Method::GET,
        &format!("{LIST}?filePart=x"),
        &[],
        None,
    )
    .await
    .assert_error(400, 4000);
}

#[actix_web::test]
async fn a_link_minted_before_a_restart_works_after_it() {
    let settings = test_settings().await;
    let mut app = spawn_app_with(settings.clone()).await;
    let hpans = cards(&app, 2).await;
    build(&app, "hpans").await;
    let link = location(
        &app,
        "acquirer",
        "/rtd/payment-instrument-manager/hashed-pans",
    )
    .await;
    app.stop().await;
    let app = spawn_app_with(settings).await;
    let file = app.call("acquirer", Method::GET, &link, &[], None).await;
    assert_eq!(file.status, 200, "{}", file.text);
    assert_eq!(unzip_lines(&file), hpans);
}
