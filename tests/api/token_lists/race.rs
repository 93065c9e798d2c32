//! A listed token — and a token a payment teaches — is taken without its lock while it is absent
//! (`db/cards/load.rs`, `Keys::listed`): when another writer inserts the same token first, the
//! batch fails on the token's unique key, is applied again, finds the token and keeps the other
//! writer's association.

use std::time::Duration;

use tkm::crypto::{Hasher, KeyRing};
use tkm::domain::cards::{Limits, Outcome};
use tkm::domain::{CardCommand, CardEvent, Circuit, Par, Source, Sourced, TokenPan, TokenRef};

use super::par;
use crate::helpers::{eventually, spawn_app};

#[actix_web::test]
async fn a_listed_or_learnt_token_another_writer_inserts_first_is_found_on_the_retry() {
    let app = spawn_app().await;
    for (n, source) in [(1, Source::TokenList), (2, Source::Transaction)] {
        a_token_another_writer_inserts_first(&app, n, source).await;
    }
}

async fn a_token_another_writer_inserts_first(
    app: &crate::helpers::TestApp,
    n: u64,
    source: Source,
) {
    let ring = KeyRing::from_settings(&app.settings).expect("vault keys");
    let hasher = Hasher::from_settings(&app.settings).expect("salt");
    let token = TokenPan::parse(&format!("400000987654321{n}")).unwrap();
    let htoken = hasher.htoken(&token);
    let (issuer_par, listed_par) = (par("V001", 40 + 2 * n), par("V001", 41 + 2 * n));

    // Another writer (an issuer's event) inserts the token and has not committed yet.
    let mut other = app.pool.get().await.unwrap();
    let writer = other.transaction().await.unwrap();
    writer
        .execute(
            "INSERT INTO token (htoken, circuit, par, par_key, source, created_by, updated_by) \
             VALUES ($1, 'VISA', $2, upper($2), 'issuer', 't', 't')",
            &[&htoken.to_string(), &issuer_par],
        )
        .await
        .unwrap();

    // The listed row: the token is absent for it, so it inserts it and waits on the unique key.
    let command = Sourced {
        command: CardCommand::Event(CardEvent::ParTokens {
            par: Par::parse(&listed_par).unwrap(),
            circuit: Circuit::Visa,
            tokens: vec![TokenRef {
                htoken: htoken.clone(),
                // A payment teaches a hash only; a list brings the token too.
                token: (source == Source::TokenList).then_some(token),
                deleted: false,
            }],
        }),
        source,
        by: "t".into(),
        origin: None,
    };
    let pool = app.pool.clone();
    let limits = Limits {
        max_learnt_tokens_per_par: app.settings.cards.max_learnt_tokens_per_par,
    };
    let batch = actix_web::rt::spawn(async move {
        tkm::db::cards::apply_batch(&pool, &ring, limits, &[command], "t").await
    });
    let conn = app.pool.get().await.unwrap();
    let waiting = eventually(Duration::from_secs(20), || async {
        let n: i64 = conn
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query ~ '^(COPY|INSERT INTO) token '",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(
        waiting.is_some(),
        "{source:?}: the row waits on the token's key"
    );
    writer.commit().await.unwrap();

    let report = batch
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{source:?}: the batch is applied again, not failed: {e}"));
    assert_eq!(
        report.outcomes,
        [Outcome::ParConflict],
        "{source:?}: the issuer's association is kept"
    );
    let row = conn
        .query_one(
            "SELECT count(*), min(par), min(source) FROM token WHERE htoken = $1",
            &[&htoken.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, Option<String>>(1), Some(issuer_par));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("issuer"));
}
