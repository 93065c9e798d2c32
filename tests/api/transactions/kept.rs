//! A file too large for a targeted snapshot is matched against the whole snapshot, loaded once,
//! kept, and caught up before each later file with what changed since: a card enrolled, a link
//! closed, a consent given, a token deleted — each decided as a fresh load would.

use super::{env, noon, row};
use crate::helpers::sha;

#[actix_web::test]
async fn the_kept_snapshot_catches_up_with_every_kind_of_change_between_files() {
    let logs = crate::helpers::captured_logs();
    let mut e = env().await;
    // Every file takes the whole snapshot.
    e.deps.matching.targeted_max_records = 0;
    e.period(1, -200, 100, 30).await;
    let par = "V0010013816180398947283659901";
    let tc = e.citizen(&[(noon(-300), false)]).await;
    let card = e.card("kept-card", &tc, Some(par), noon(-100), None).await;
    let closing = e.card("kept-closing", &tc, None, noon(-100), None).await;
    let token = e.token("kept-token", par).await;
    let gone = e.token("kept-gone", par).await;
    let later = sha("kept-later");
    let rows = |n: u32| {
        vec![
            row("00", &card, -10, &format!("k{n}-card"), 1, "", ""),
            row("00", &closing, -10, &format!("k{n}-closing"), 1, "", ""),
            row("00", &token, -10, &format!("k{n}-token"), 1, "", ""),
            row("00", &gone, -10, &format!("k{n}-gone"), 1, "", ""),
            row("00", &later, -10, &format!("k{n}-later"), 1, "", ""),
        ]
    };
    let first = e.run(&e.file(1, &rows(1))).await;
    assert_eq!(
        e.outcomes(first.id).await,
        [
            "1;k1-card;ACCEPTED;;HPAN;",
            "2;k1-closing;ACCEPTED;;HPAN;",
            "3;k1-token;DISCARDED;03;HTOKEN;",
            "4;k1-gone;DISCARDED;03;HTOKEN;",
            "5;k1-later;DISCARDED;10;NONE;",
        ]
    );

    // Between the files: a card enrolled, a link closed before the payments, a consent given
    // before them, a token deleted.
    e.card("kept-later", &tc, None, noon(-50), None).await;
    let conn = e.pool.get().await.unwrap();
    conn.execute(
        "UPDATE card_link_interval SET closed_at = $2 \
         WHERE card_id = (SELECT id FROM card WHERE hpan = $1)",
        &[&closing, &noon(-20)],
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO consent_history (tax_code, version, at, request, after, created_by, updated_by) \
         VALUES ($1, 2, $2, '{}', '{\"services\": {\"BPD\": \"Allow\", \"FA\": \"Allow\"}}', 't', 't')",
        &[&tc, &noon(-30)],
    )
    .await
    .unwrap();
    conn.execute(
        "UPDATE token SET deleted = true WHERE htoken = $1",
        &[&gone],
    )
    .await
    .unwrap();

    let second = e.run(&e.file(2, &rows(2))).await;
    assert_eq!(
        e.outcomes(second.id).await,
        [
            "1;k2-card;ACCEPTED;;HPAN;",
            "2;k2-closing;DISCARDED;01;HPAN;",
            "3;k2-token;ACCEPTED;;HTOKEN;",
            "4;k2-gone;DISCARDED;10;NONE;",
            "5;k2-later;ACCEPTED;;HPAN;",
        ]
    );
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let loaded = |id: uuid::Uuid| {
        text.lines()
            .any(|l| l.contains("enrolment snapshot loaded") && l.contains(&id.to_string()))
    };
    assert!(loaded(first.id) && loaded(second.id));
    assert!(
        text.lines()
            .any(|l| l.contains("enrolment snapshot caught up") && l.contains(r#""changed":4"#)),
        "the second file caught up with 4 changed hashes instead of loading everything again"
    );
}
