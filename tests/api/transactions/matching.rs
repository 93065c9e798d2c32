//! A mixed file decided line by line (every outcome and reason, payments before reversals, clear
//! PANs hashed and never stored), a later file correlating a waiting reversal, and the same file
//! sent again answered with its stored outcomes.

use super::{env, row, when, ABI};
use crate::helpers::sha;

const P1: &str = "V0010013816180398947283651111";
const CLEAR_PAN: &str = "4111111111111111";
const MC_TOKEN: &str = "5412345678901234";
const P2: &str = "50010000000000000000000000002";

#[actix_web::test]
async fn a_mixed_file_gets_every_outcome_on_its_line() {
    let e = env().await;
    e.period(1, -200, 100, 30).await;
    let a = e
        .citizen(&[(super::noon(-120), false), (super::noon(-40), true)])
        .await;
    let c1 = e
        .card("card-1", &a, Some(P1), super::noon(-100), None)
        .await;
    let c2 = e
        .card(
            "card-2",
            &a,
            None,
            super::noon(-150),
            Some(super::noon(-130)),
        )
        .await;
    e.card(CLEAR_PAN, &a, None, super::noon(-100), None).await;
    let t1 = e.token("token-1", P1).await;
    let fields15 = format!(
        "{ABI};00;01;{c1};{};p15;;;100;;acq1;merchant1;term1;402360;4900",
        when(-45)
    );
    let fields19 = format!(
        "{ABI};02;01;{c1};{};p19;;;100;978;acq1;merchant1;term1;402360;4900;fc;vat;00;{P1}",
        when(-45)
    );
    let rows = vec![
        "#sha256sum:0000".to_owned(),                        // 1
        row("01", &c1, -50, "r1", 1000, "", ""),             // 2 reversal before its payment
        row("00", &c1, -50, "p1", 1000, "", ""),             // 3
        row("00", &c1, -110, "p2", 10, "", ""),              // 4 before enrolment
        row("00", &t1, -60, "p3", 10, "", ""),               // 5 token, before consent
        row("03", &t1, -30, "p4", 10, "", ""),               // 6 token, consent
        row("00", &sha("new-token"), -30, "p5", 10, "", P1), // 7 PAR (case 2)
        row("00", &sha("nobody"), -30, "p6", 10, "", ""),    // 8 unknown
        row("00", &c1, -250, "p7", 10, "", ""),              // 9 outside the period
        row("00", &c1, -30, "p8", 10, "", "").replace(";10;978;", ";1.0;978;"), // 10 invalid amount
        row("00", &c1, -50, "p1", 1000, "", ""),             // 11 duplicate of 3
        String::new(),                                       // 12 blank
        row("01", &c1, -20, "r2", 500, "c9", ""),            // 13 no payment yet
        row("00", CLEAR_PAN, -30, "p9", 10, "", "").replace(";01;4111", ";02;4111"), // 14 clear PAN
        row("00", &c2, -140, "p10", 10, "", ""),             // 15 closed link, inside
        row("00", &c2, -120, "p11", 10, "", ""),             // 16 closed link, after
        fields15,                                            // 17
        fields19,                                            // 18
        row("00", MC_TOKEN, -30, "p12", 10, "", P2).replace(";01;5412", ";02;5412"), // 19
        row("00", &sha("new-token"), -29, "p13", 10, "", P1), // 20 the learnt token pays again
    ];
    let path = e.file(1, &rows);
    let report = e.run(&path).await;
    assert_eq!(report.state.as_str(), "DONE", "{:?}", report.error);
    assert_eq!(
        report.progress.rows, 18,
        "comments and blank lines are not rows"
    );
    assert_eq!(
        report.progress.discarded.get("learnt"),
        Some(&2),
        "each hash is taught once per file"
    );
    let want = [
        "2;r1;REVERSAL_TOTAL;;HPAN;",
        "3;p1;ACCEPTED;;HPAN;",
        "4;p2;DISCARDED;01;HPAN;",
        "5;p3;DISCARDED;03;HTOKEN;",
        "6;p4;ACCEPTED;;HTOKEN;",
        "7;p5;ACCEPTED;;PAR;",
        "8;p6;DISCARDED;10;NONE;",
        "9;p7;DISCARDED;02;HPAN;",
        "10;p8;DISCARDED;11;NONE;total_amount",
        "11;p1;DISCARDED;12;NONE;",
        "13;r2;REVERSAL_UNCORRELATED;20;HPAN;",
        "14;p9;ACCEPTED;;HPAN;",
        "15;p10;ACCEPTED;;HPAN;",
        "16;p11;DISCARDED;01;HPAN;",
        "17;p15;ACCEPTED;;HPAN;",
        "18;p19;ACCEPTED;;HPAN;",
        "19;p12;DISCARDED;10;NONE;",
        "20;p13;ACCEPTED;;PAR;",
    ];
    assert_eq!(e.outcomes(report.id).await, want);

    // Every record's explanation is computed again from the stored facts and agrees.
    let abi = tkm::domain::Abi::parse(ABI).unwrap();
    let mut traces = std::collections::BTreeMap::new();
    for w in want {
        let line: i64 = w.split(';').next().unwrap().parse().unwrap();
        let x = tkm::actors::transaction_matcher::explain::explain_line(
            &e.deps,
            &abi,
            report.id,
            line,
            report.started_at.unwrap(),
        )
        .await
        .unwrap()
        .expect("explained");
        let x = serde_json::to_value(&x).unwrap();
        assert_eq!(x["agrees"], true, "line {line}: {x}");
        assert_eq!(x["outcome"], w.split(';').nth(2).unwrap(), "line {line}");
        traces.insert(line, x);
    }
    assert_eq!(traces[&3]["decidedBy"], "PASSED");
    assert_eq!(traces[&3]["instrument"]["card"], c1.as_str());
    assert_eq!(traces[&4]["decidedBy"], "ACTIVE");
    assert_eq!(traces[&4]["intervals"][0]["inside"], false);
    assert_eq!(traces[&5]["decidedBy"], "CONSENT");
    assert_eq!(traces[&5]["consent"]["allowed"], false);
    assert_eq!(traces[&5]["consent"]["version"], 1);
    assert_eq!(traces[&6]["consent"]["version"], 2);
    assert_eq!(traces[&7]["instrument"]["match"], "PAR");
    assert_eq!(traces[&8]["decidedBy"], "INSTRUMENT");
    assert_eq!(traces[&9]["decidedBy"], "PERIOD");
    assert_eq!(traces[&10]["field"], "total_amount");
    assert_eq!(traces[&11]["duplicateOf"]["line"], 3);
    assert_eq!(traces[&2]["correlatedPayment"]["line"], 3);
    assert_eq!(traces[&13]["decidedBy"], "CORRELATION");
    assert!(traces[&13].get("correlatedPayment").is_none());
    assert!(!traces.values().any(|t| t.to_string().contains(CLEAR_PAN)));

    // Case 2: the unknown hash with a known PAR is now a provisional token of that PAR; TK10
    // part 2: the clear Mastercard token and its unknown PAR went to the token intake (the
    // token stored encrypted).
    let conn = e.pool.get().await.unwrap();
    let learnt = conn
        .query_one(
            "SELECT par, source, token_ct IS NULL FROM token WHERE htoken = $1",
            &[&sha("new-token")],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            learnt.get::<_, String>(0),
            learnt.get::<_, String>(1),
            learnt.get::<_, bool>(2)
        ),
        (P1.to_owned(), "transaction".to_owned(), true)
    );
    let fed = conn
        .query_one(
            "SELECT par, source, token_ct IS NOT NULL FROM token WHERE htoken = $1",
            &[&sha(MC_TOKEN)],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            fed.get::<_, String>(0),
            fed.get::<_, String>(1),
            fed.get::<_, bool>(2)
        ),
        (P2.to_owned(), "token-list".to_owned(), true)
    );

    // The clear PAN was hashed on reading: no table holds it.
    for table in [
        "txn_outcome",
        "txn_key",
        "txn_payment",
        "txn_reversal",
        "upload",
        "upload_discard",
    ] {
        let n: i64 = conn
            .query_one(
                &format!("SELECT count(*) FROM {table} t WHERE row_to_json(t)::text LIKE $1"),
                &[&format!("%{CLEAR_PAN}%")],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} holds the clear PAN");
    }
    let stored: i64 = conn
        .query_one(
            "SELECT count(*) FROM txn_payment WHERE hash_pan = $1",
            &[&hex::decode(sha(CLEAR_PAN)).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1, "the payment is stored under the PAN's hash");

    // A later file brings the payment the waiting reversal (line 13) needs: 500 of 800.
    let later = e.file(2, &[row("00", &c1, -20, "p20", 800, "c9", "")]);
    let second = e.run(&later).await;
    assert_eq!(e.outcomes(second.id).await, ["1;p20;ACCEPTED;;HPAN;"]);
    let first = e.outcomes(report.id).await;
    assert!(
        first.contains(&"13;r2;REVERSAL_PARTIAL;;HPAN;".to_owned()),
        "{first:?}"
    );
    let reversed: i64 = conn
        .query_one(
            "SELECT reversed FROM txn_payment WHERE source_id = $1 AND line = 1",
            &[&second.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reversed, 500);

    // The same file again: the same upload, its stored outcomes, nothing decided twice.
    let again = e.run(&path).await;
    assert_eq!(again.id, report.id);
    assert_eq!(e.outcomes(again.id).await, first);
    let keys: i64 = conn
        .query_one("SELECT count(*) FROM txn_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        keys, 17,
        "one key per valid, non-duplicate record of both files (16 + 1)"
    );
}

#[actix_web::test]
async fn the_bpd_date_rule_moves_the_edges() {
    let mut e = env().await;
    e.period(1, -200, 100, 30).await;
    let a = e.citizen(&[]).await;
    let c = e
        .card("edge", &a, None, super::noon(-100), Some(super::noon(-90)))
        .await;
    let rows = [
        row("00", &c, -100, "on-activation", 1, "", ""),
        row("00", &c, -90, "on-deactivation", 1, "", ""),
    ];
    let design = e.run(&e.file(1, &rows)).await;
    assert_eq!(
        e.outcomes(design.id).await,
        [
            "1;on-activation;ACCEPTED;;HPAN;",
            "2;on-deactivation;DISCARDED;01;HPAN;"
        ]
    );
    e.deps.matching.date_rule = tkm::domain::matching::DateRule::Bpd;
    let rows_bpd = [
        row("00", &c, -100, "on-activation-2", 1, "", ""),
        row("00", &c, -90, "on-deactivation-2", 1, "", ""),
    ];
    let bpd = e.run(&e.file(2, &rows_bpd)).await;
    assert_eq!(
        e.outcomes(bpd.id).await,
        [
            "1;on-activation-2;DISCARDED;01;HPAN;",
            "2;on-deactivation-2;ACCEPTED;;HPAN;"
        ]
    );
}

/// A batch that teaches more associations than PostgreSQL's lock table holds (each takes two
/// advisory locks; 6 400 entries by default) is taught in parts: it used to fail with "out of
/// shared memory", every time it was tried.
#[actix_web::test]
async fn a_batch_teaching_thousands_of_tokens_fits_the_lock_table() {
    const N: i64 = 10_000;
    let e = env().await;
    e.period(1, -200, 100, 30).await;
    e.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO card (hpan, circuit, active, par, par_key, par_source, created_by, updated_by) \
             SELECT encode(sha256(convert_to('lock-card-' || g, 'UTF8')), 'hex'), 'VISA', true, \
                    'V001' || lpad(g::text, 25, '0'), 'V001' || lpad(g::text, 25, '0'), 'issuer', 't', 't' \
             FROM generate_series(1, $1::bigint) g",
            &[&N],
        )
        .await
        .unwrap();
    let rows: Vec<String> = (1..=N)
        .map(|i| {
            let par = format!("V001{i:025}");
            row(
                "00",
                &sha(&format!("lock-token-{i}")),
                -10,
                &format!("t-{i}"),
                1,
                "",
                &par,
            )
        })
        .collect();
    let record = e.run(&e.file(1, &rows)).await;
    assert_eq!(record.state.as_str(), "DONE", "{record:?}");
    let learnt: i64 = e
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM token WHERE source = 'transaction'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(learnt, N, "every hash taught once, as a token of its PAR");
}

/// A small file is matched against a snapshot of only what its records name (read when it
/// starts), not the whole registry: the log of its run counts one card among thousands.
#[actix_web::test]
async fn a_small_file_loads_only_what_it_names() {
    let logs = crate::helpers::captured_logs();
    let e = env().await;
    e.period(1, -200, 100, 30).await;
    e.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO card (hpan, circuit, active, created_by, updated_by) \
             SELECT encode(sha256(convert_to('other-card-' || g, 'UTF8')), 'hex'), 'VISA', true, 't', 't' \
             FROM generate_series(1, 2000) g",
            &[],
        )
        .await
        .unwrap();
    let tc = e.citizen(&[]).await;
    let card = e.card("named", &tc, None, super::noon(-100), None).await;
    let record = e
        .run(&e.file(1, &[row("00", &card, -10, "small-1", 1, "", "")]))
        .await;
    assert_eq!(e.outcomes(record.id).await, ["1;small-1;ACCEPTED;;HPAN;"]);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("enrolment snapshot loaded") && l.contains(&record.id.to_string()))
        .expect("the snapshot's log line");
    assert!(line.contains(r#""cards":1"#), "{line}");
}
