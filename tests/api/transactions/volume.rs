//! A large plain file through the API end to end: streamed up (sealed on its way to disk),
//! matched, reported, and every outcome streamed back in line order. 100 000 rows by default;
//! `TKM_TEST_TRN_ROWS=1000000` runs the million (about a minute in a release build).

use std::time::Duration;

use awc::http::Method;

use super::{row, Env, ABI};
use crate::helpers::{eventually, sha, spawn_app, upload};

#[actix_web::test]
async fn a_large_file_goes_through_the_api_end_to_end() {
    let rows: u64 = std::env::var("TKM_TEST_TRN_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let app = spawn_app().await;
    let e = Env::of(&app);
    e.period(1, -200, 100, 30).await;
    let tc = e.citizen(&[]).await;
    let card = e
        .card("volume-card", &tc, None, super::noon(-100), None)
        .await;
    let mut text = String::with_capacity(rows as usize * 160);
    for i in 0..rows {
        let hash = if i % 4 == 0 {
            card.clone()
        } else {
            sha(&format!("nobody{i}"))
        };
        text.push_str(&row(
            "00",
            &hash,
            -5,
            &format!("v{i}"),
            100 + i % 1000,
            "",
            "",
        ));
        text.push('\n');
    }
    let name = format!("CSTAR.{ABI}.TRNLOG.20260101.120000.042.csv");
    let r = upload(&app, "acquirer", "/transactions", &name, text.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let report = eventually(Duration::from_secs(600), || async {
        let r = app
            .call(
                "acquirer",
                Method::GET,
                &format!("/transactions/{id}"),
                &[],
                None,
            )
            .await;
        matches!(r.json["state"].as_str(), Some("DONE" | "REJECTED")).then_some(r.json)
    })
    .await
    .expect("matched");
    assert_eq!(report["state"], "DONE", "{report}");
    assert_eq!(report["rows"], rows);
    assert_eq!(report["accepted"], rows.div_ceil(4));
    assert_eq!(report["discarded"]["10"], rows - rows.div_ceil(4));
    let csv = app
        .call(
            "platform",
            Method::GET,
            &format!("/transactions/{id}/outcomes"),
            &[],
            None,
        )
        .await;
    assert_eq!(csv.status, 200);
    let mut n = 0u64;
    for (i, line) in csv.text.lines().enumerate() {
        let mut f = line.split(';');
        assert_eq!(f.next().unwrap(), (i + 1).to_string(), "line order");
        assert_eq!(f.next().unwrap(), format!("v{i}"));
        n += 1;
    }
    assert_eq!(n, rows, "every record's outcome streamed");
}
