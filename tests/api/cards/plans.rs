//! The card registry's reads stay index lookups on a table the planner misjudges: a fresh
//! installation's first re-alignment grows `card` and `token` from empty, and a batch's 512 keys
//! would otherwise be joined by reading the whole table each time.

use std::collections::BTreeSet;

use tkm::db::cards::{lock_and_load, Keys};

use super::*;

#[actix_web::test]
async fn a_batch_reads_cards_and_tokens_by_index_whatever_the_planner_estimates() {
    let app = spawn_app().await;
    let mut conn = app.pool.get().await.unwrap();
    // 30 000 cards and tokens, as a first re-alignment leaves them on its way: at this size and
    // with 512 keys, the planner's costs (pages read from disk) favour reading the whole table
    // into a hash, although every page is cached and 512 index probes cost a fraction of it.
    conn.batch_execute(
        "INSERT INTO card (hpan, circuit, active, created_by, updated_by) \
           SELECT encode(sha256(('card-' || i)::bytea), 'hex'), 'VISA', true, 't', 't' \
           FROM generate_series(1, 30000) AS i; \
         INSERT INTO token (htoken, circuit, source, created_by, updated_by) \
           SELECT encode(sha256(('token-' || i)::bytea), 'hex'), 'VISA', 'token-list', 't', 't' \
           FROM generate_series(1, 30000) AS i; \
         ANALYZE card; ANALYZE token",
    )
    .await
    .unwrap();
    let digest = |v: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(v));
    let mut hpans: BTreeSet<String> = (0..512).map(|i| digest(&format!("new-{i}"))).collect();
    hpans.insert(digest("card-7"));
    let keys = Keys {
        hpans,
        htokens: (0..512)
            .map(|i| digest(&format!("new-token-{i}")))
            .collect(),
        ..Keys::default()
    };

    let tx = conn.transaction().await.unwrap();
    let snap = lock_and_load(&tx, keys).await.unwrap();
    let scans: Vec<(String, i64)> = tx
        .query(
            "SELECT relname::text, seq_scan FROM pg_stat_xact_user_tables \
             WHERE relname IN ('card', 'token') ORDER BY relname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tx.rollback().await.unwrap();
    assert_eq!(snap.cards.len(), 1, "the stored card is found");
    for (table, n) in &scans {
        assert_eq!(*n, 0, "{table} was read whole {n} times: {scans:?}");
    }
}
