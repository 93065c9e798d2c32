//! The resolver's two lanes: a consenting citizen's card never waits behind token checks, token
//! checks keep to their share of the rate while cards wait (and take it all when none do), and a
//! withdrawn consent drops the card's pending lookup.

use std::time::Instant;

use tkm::crypto::{Hasher, KeyRing};
use tkm::domain::TokenPan;

use super::*;

/// Queues `n` token checks on `circuit` the way acquirers' token lists leave them: clear tokens
/// (sealed under the app's vault key) with no PAR and no card, each owed a lookup.
async fn seed_token_checks(app: &TestApp, circuit: Circuit, prefix: &str, n: usize) {
    let ring = KeyRing::from_settings(&app.settings).expect("vault keys");
    let hasher = Hasher::from_settings(&app.settings).expect("salt");
    let mut rng = rand::thread_rng();
    let (mut htokens, mut key_ids, mut cts, mut last4s) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let digits = data::token_in(prefix, data::token_length(circuit), &mut rng);
        let token = TokenPan::parse(&digits).unwrap();
        let htoken = hasher.htoken(&token);
        let sealed = ring.seal_token(&token, &htoken).unwrap();
        htokens.push(htoken.as_str().to_owned());
        key_ids.push(sealed.key_id);
        cts.push(sealed.blob);
        last4s.push(token.last4().to_owned());
    }
    let conn = app.pool.get().await.unwrap();
    conn.execute(
        "INSERT INTO token (htoken, token_key_id, token_ct, token_last4, circuit, source, \
                            created_by, updated_by) \
         SELECT h, k, c, l, $5, 'token-list', 'test', 'test' \
         FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) AS u(h, k, c, l) \
         ON CONFLICT DO NOTHING",
        &[&htokens, &key_ids, &cts, &last4s, &circuit.as_str()],
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO par_lookup (subject, subject_id, circuit, created_by, updated_by) \
         SELECT 'token', id, circuit, 'test', 'test' FROM token WHERE htoken = ANY($1) \
         ON CONFLICT DO NOTHING",
        &[&htokens],
    )
    .await
    .unwrap();
}

/// `tkm_par_lookups_total{circuit,lane}`: the lookups asked so far.
async fn asked(app: &TestApp, circuit: &str, lane: &str) -> u64 {
    let mut res = client(None)
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .expect("metrics answer");
    let body = res.body().limit(4 << 20).await.unwrap();
    let series = format!("tkm_par_lookups_total{{circuit=\"{circuit}\",lane=\"{lane}\"}}");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn pending_lookups(app: &TestApp, subject: &str) -> i64 {
    app.pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM par_lookup WHERE subject = $1 AND state = 'pending'",
            &[&subject],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn a_consenting_citizens_new_card_is_asked_within_seconds_behind_ten_thousand_token_checks() {
    // The contract rate, 5/s: the token backlog alone is over half an hour of calls.
    let app = spawn_app_with(fault_settings(5).await).await;
    wait_for_topology(&app).await;
    seed_token_checks(&app, Circuit::Mastercard, "5", 10_000).await;
    refresh_pars_started(&app, "?circuit=MASTERCARD").await;
    let busy = eventually(Duration::from_secs(20), || async {
        (asked(&app, "MASTERCARD", "token").await > 0).then_some(())
    })
    .await;
    assert!(busy.is_some(), "the token checks are being asked");

    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let card = pan("5", 16, true, 0.0);
    let start = Instant::now();
    enrol(&app, &tc, &[(card.clone(), "MASTERCARD")]).await;
    let par = eventually(Duration::from_secs(30), || par_of_card(&app, &card)).await;
    let took = start.elapsed();
    assert_eq!(par, Some(data::par_of(Circuit::Mastercard, &card).unwrap()));
    assert!(
        took < Duration::from_secs(10),
        "the card waited {took:?} behind the token checks"
    );

    // The backlog is visible per lane, and the token checks are still mostly waiting.
    let s = status(&app).await;
    let mc = &s["circuits"]["MASTERCARD"];
    assert!(mc["pendingTokens"].as_i64().unwrap() > 9_000, "{mc}");
    assert_eq!(mc["pendingCards"], 0, "{mc}");
    assert!(pending_lookups(&app, "token").await > 9_000);
}

#[actix_web::test]
async fn token_checks_keep_to_their_share_while_cards_wait_and_take_the_full_rate_after() {
    const RATE: u64 = 10;
    let mut settings = fault_settings(RATE as u32).await;
    settings.circuits.mastercard.token_share = 0.2;
    // Two workers: the token lane gets one of them, so the worker split alone would give it a
    // third of the rate; only the share holds it to a fifth.
    settings.par_resolver.concurrency = 2;
    let share_rate = 2.0; // 0.2 of 10/s
    let app = spawn_app_with(settings).await;
    wait_for_topology(&app).await;

    // About 50 s of card lookups at the rate left to them, queued at once by one consent.
    let tc = tax_code();
    let cards: Vec<(String, &str)> = (0..400)
        .map(|_| (pan("5", 16, true, 0.0), "MASTERCARD"))
        .collect();
    enrol(&app, &tc, &cards).await;
    seed_token_checks(&app, Circuit::Mastercard, "5", 2_000).await;
    consent(&app, &tc, "Allow").await;

    // Sample both lanes each second for up to a minute and a half.
    let start = Instant::now();
    let (mut cards_done_at, mut tokens_at_cards_done) = (None, 0u64);
    // (time, cards asked, tokens asked, cards waiting, half the token count's read window: the
    // count was taken somewhere in t ± that, which a loaded machine stretches).
    let mut samples: Vec<(f64, u64, u64, i64, f64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(90) {
        let c = asked(&app, "MASTERCARD", "card").await;
        let before = start.elapsed().as_secs_f64();
        let k = asked(&app, "MASTERCARD", "token").await;
        let after = start.elapsed().as_secs_f64();
        let t = (before + after) / 2.0;
        let waiting = pending_lookups(&app, "card").await;
        samples.push((t, c, k, waiting, (after - before) / 2.0));
        if waiting == 0 && c >= 400 && cards_done_at.is_none() {
            cards_done_at = Some(t);
            tokens_at_cards_done = k;
        }
        if let Some(done) = cards_done_at {
            if t - done >= 6.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let done = cards_done_at.unwrap_or_else(|| panic!("the cards were all asked: {samples:?}"));
    assert!(done > 20.0, "the card phase lasted {done} s: {samples:?}");

    // While cards waited, the token lane never took more than its share (one unit of burst and
    // one of sampling slack, plus the share over both counts' read windows), from any sample to
    // any later one.
    let card_phase: Vec<_> = samples.iter().filter(|s| s.3 > 0).collect();
    for (i, a) in card_phase.iter().enumerate() {
        for b in &card_phase[i + 1..] {
            let allowed = share_rate * (b.0 - a.0 + a.4 + b.4) + 2.0;
            assert!(
                (b.2 - a.2) as f64 <= allowed,
                "{} token checks in {:.1} s while cards waited: {samples:?}",
                b.2 - a.2,
                b.0 - a.0
            );
        }
    }
    // The cards took the rest of the rate.
    let cards_rate = 400.0 / done;
    assert!(
        cards_rate >= 0.5 * RATE as f64,
        "cards at {cards_rate:.1}/s"
    );

    // Once no card waits, token checks take the full rate.
    let last = samples.last().unwrap();
    let after = (last.2 - tokens_at_cards_done) as f64 / (last.0 - done);
    assert!(
        after >= 0.6 * RATE as f64,
        "token checks at {after:.1}/s with no card waiting: {samples:?}"
    );
}

#[actix_web::test]
async fn a_withdrawn_consent_drops_the_cards_pending_lookup() {
    let mut settings = test_settings().await;
    // Nothing is asked of Amex: its lookups stay pending until something drops them.
    settings.circuits.amex.enabled = false;
    let app = spawn_app_with(settings).await;
    wait_for_topology(&app).await;
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let card = pan("37", 15, true, 0.0);
    enrol(&app, &tc, &[(card.clone(), "AMEX")]).await;
    let queued = eventually(Duration::from_secs(20), || async {
        (pending_lookups(&app, "card").await == 1).then_some(())
    })
    .await;
    assert!(queued.is_some(), "the card is owed a lookup");
    let s = status(&app).await;
    assert_eq!(s["circuits"]["AMEX"]["pendingCards"], 1, "{s}");

    consent(&app, &tc, "Deny").await;
    let dropped = eventually(Duration::from_secs(20), || async {
        (pending_lookups(&app, "card").await == 0).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "the withdrawn consent drops the lookup");
    let s = status(&app).await;
    assert_eq!(s["circuits"]["AMEX"]["pendingCards"], 0, "{s}");
    assert_eq!(par_of_card(&app, &card).await, None);
}
