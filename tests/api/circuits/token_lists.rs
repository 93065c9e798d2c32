//! Tokens from an acquirer's list are provisional: the resolver asks the circuit (the
//! simulator) and confirms the PAR it agrees with, replaces the one it does not.

use std::time::Duration;

use super::*;
use crate::helpers::upload;

#[actix_web::test]
async fn the_resolver_confirms_one_listed_par_and_overrides_another() {
    let app = spawn_app().await;
    let share = app.settings.circuits.simulator.no_par_share;
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO bin_range (circuit, min_bound, max_bound, token, created_by, updated_by) \
             VALUES ('VISA', '400000', '499999', true, 't', 't')",
        )
        .await
        .unwrap();
    let (right, wrong) = (pan("4", 16, true, share), pan("4", 16, true, share));
    let right_par = data::par_of(Circuit::Visa, &right).unwrap();
    let wrong_par = "V0010000000000000000000000042";
    let text = format!("{right};01;{right_par}\n{wrong};01;{wrong_par}\n");
    let content = encrypt(&app, text.as_bytes());
    let r = upload(
        &app,
        "acquirer",
        "/token-list",
        "TKM.99999.TKNLST.20261123.101500.001.csv.pgp",
        &content,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(30), || async {
        let r = app
            .call(
                "acquirer",
                Method::GET,
                &format!("/token-list/{id}"),
                &[],
                None,
            )
            .await;
        (r.json["state"] == "DONE").then_some(r.json)
    })
    .await
    .expect("processed");
    assert_eq!(done["accepted"], 2, "{done}");

    let conn = app.pool.get().await.unwrap();
    let of = |token: String| {
        let conn = &conn;
        async move {
            let row = conn
                .query_one(
                    "SELECT par, source FROM token WHERE htoken = $1",
                    &[&sha(&token)],
                )
                .await
                .unwrap();
            (row.get::<_, String>(0), row.get::<_, String>(1))
        }
    };
    let checked = eventually(Duration::from_secs(30), || async {
        let (a, b) = (of(right.clone()).await, of(wrong.clone()).await);
        (a.1 == "circuit" && b.1 == "circuit").then_some((a, b))
    })
    .await;
    let (a, b) = match checked {
        Some(v) => v,
        None => {
            // The resolver may not have woken yet: a cycle asks now.
            refresh_pars(&app, "").await;
            (of(right.clone()).await, of(wrong.clone()).await)
        }
    };
    assert_eq!(a, (right_par.clone(), "circuit".to_owned()), "confirmed");
    let circuit_par = data::par_of(Circuit::Visa, &wrong).unwrap();
    assert_eq!(b, (circuit_par.clone(), "circuit".to_owned()), "overridden");
    let moved = conn
        .query_one(
            "SELECT from_par, to_par, source FROM association_event WHERE key = $1",
            &[&sha(&wrong)],
        )
        .await
        .unwrap();
    assert_eq!(
        moved.get::<_, Option<String>>(0).as_deref(),
        Some(wrong_par)
    );
    assert_eq!(moved.get::<_, String>(1), circuit_par);
    assert_eq!(moved.get::<_, String>(2), "circuit");
}
