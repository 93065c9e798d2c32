//! `Retry-After` from a circuit, whatever it holds: huge numbers, an HTTP-date, garbage. tkm never
//! panics, the circuit pauses within `circuits.max_retry_after_secs` and resumes, and the other
//! circuits keep their rate meanwhile.

use std::time::{Duration, Instant};

use super::*;

/// The cap in these tests (seconds).
const CAP: u64 = 4;
/// Mastercard's contract rate while Visa is told to slow down.
const MC_RATE: u32 = 2;

async fn sim_stats(app: &TestApp) -> Value {
    let (code, stats) = sim(app, Method::GET, "/sim/stats", None).await;
    assert_eq!(code, 200, "{stats}");
    stats["circuits"].clone()
}

/// Visa's pause as `/admin/status` shows it; every look also checks that tkm answers, that the
/// Visa lane is alive (its rate is shown) and that the pause is within the cap.
async fn visa_pause(app: &TestApp) -> u64 {
    let s = status(app).await;
    let visa = &s["circuits"]["VISA"];
    assert!(visa["ratePerSecond"].is_u64(), "the Visa lane is gone: {s}");
    let paused = visa["pausedSecs"].as_u64().unwrap_or(u64::MAX);
    assert!(
        paused <= CAP,
        "Visa paused {paused} s, beyond the {CAP} s cap"
    );
    assert_eq!(visa["paused"], paused > 0, "{visa}");
    paused
}

async fn set_visa_retry_after(app: &TestApp, value: &str) {
    let (code, reply) = sim(
        app,
        Method::POST,
        "/sim/faults",
        Some(json!({"circuit": "VISA", "tooManyRequestsRate": 1, "retryAfter": value})),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
}

#[actix_web::test]
async fn any_retry_after_pauses_only_its_circuit_within_the_cap() {
    let mut settings = fault_settings(MC_RATE).await;
    settings.circuits.max_retry_after_secs = CAP;
    settings.circuits.visa.rate_per_second = 4;
    // One retry, so each Visa call answered 429 is followed by one more after the pause.
    settings.par_resolver.retry_attempts = 1;
    settings.par_resolver.concurrency = 2;
    settings.par_resolver.breaker_failures = 1000;
    let app = spawn_app_with(settings).await;
    wait_for_topology(&app).await;
    let share = app.settings.circuits.simulator.no_par_share;
    let visa: Vec<String> = (0..12).map(|_| pan("4", 16, true, share)).collect();
    let mastercard: Vec<String> = (0..40).map(|_| pan("5", 16, true, share)).collect();
    let cards: Vec<(String, &str)> = visa
        .iter()
        .map(|p| (p.clone(), "VISA"))
        .chain(mastercard.iter().map(|p| (p.clone(), "MASTERCARD")))
        .collect();
    // Stored before consent, so the consent queues every lookup into one cycle.
    let tc = tax_code();
    enrol(&app, &tc, &cards).await;

    // Each value is what Visa sends with every 429 until the next one; the HTTP-date is made
    // when its turn comes, far enough ahead to outlast the previous pause.
    let values = [
        "99999999999999999999",
        "18446744073709551615",
        "http-date",
        "-5",
        "abc",
    ];
    set_visa_retry_after(&app, values[0]).await;
    consent(&app, &tc, "Allow").await;

    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut sent = 0u64;
    for value in values {
        let value = if value == "http-date" {
            // IMF-fixdate, written here independently of tkm's parser.
            let at = chrono::Utc::now() + chrono::Duration::seconds(CAP as i64 + 5);
            at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
        } else {
            value.to_string()
        };
        set_visa_retry_after(&app, &value).await;
        // A 429 carrying this value was sent: the one after the current pause.
        let before = sent.max(
            sim_stats(&app).await["VISA"]["tooManyRequests"]
                .as_u64()
                .unwrap(),
        );
        sent = eventually(Duration::from_secs(CAP + 10), || async {
            let n = sim_stats(&app).await["VISA"]["tooManyRequests"].as_u64()?;
            visa_pause(&app).await;
            (n > before).then_some(n)
        })
        .await
        .unwrap_or_else(|| panic!("no 429 with Retry-After {value:?} reached tkm"));
        // Huge values are the cap and the date is seconds ahead: a long pause, not the 1 s
        // default. Garbage is the normal backoff: at least a second.
        let least = if matches!(value.as_str(), "-5" | "abc") {
            1
        } else {
            CAP - 1
        };
        let paused = eventually(Duration::from_secs(3), || async {
            (visa_pause(&app).await >= least).then_some(())
        })
        .await;
        assert!(
            paused.is_some(),
            "Retry-After {value:?}: Visa not paused for {least} s or more"
        );
        let stats = sim_stats(&app).await;
        samples.push((
            Instant::now(),
            stats["MASTERCARD"]["units"].as_u64().unwrap(),
        ));
    }

    // Meanwhile Mastercard kept its rate: measured while it still had lookups to make.
    let total = mastercard.len() as u64;
    let (t0, u0) = samples[0];
    let (t1, u1) = samples
        .iter()
        .rev()
        .find(|(_, units)| *units < total)
        .copied()
        .unwrap_or(samples[0]);
    let secs = t1.duration_since(t0).as_secs_f64();
    assert!(secs >= 5.0, "Mastercard ran out of work after {secs:.1} s");
    let achieved = (u1 - u0) as f64 / secs;
    assert!(
        achieved >= 0.75 * f64::from(MC_RATE),
        "Mastercard made {achieved:.2} lookups/s while Visa was paused (rate {MC_RATE})"
    );
    let stats = sim_stats(&app).await;
    let max = max_per_second(&json!({ "circuits": stats }), "MASTERCARD");
    assert!(
        max <= u64::from(MC_RATE) + 2,
        "Mastercard: {max} in one second"
    );

    // Visa answers again: the pause ends within the cap and every lookup gets its PAR.
    sim(&app, Method::POST, "/sim/reset", None).await;
    let resumed = eventually(Duration::from_secs(CAP + 2), || async {
        (visa_pause(&app).await == 0).then_some(())
    })
    .await;
    assert!(resumed.is_some(), "Visa still paused after the cap");
    let done = eventually(Duration::from_secs(60), || async {
        refresh_pars(&app, "?circuit=VISA").await;
        let mut all = true;
        for p in &visa {
            all &= par_of_card(&app, p).await.is_some();
        }
        all.then_some(())
    })
    .await;
    assert!(done.is_some(), "every Visa lookup answered after the 429s");
    for p in &mastercard {
        assert!(par_of_card(&app, p).await.is_some());
    }
    let s = status(&app).await;
    for (name, actor) in s["actors"].as_object().unwrap() {
        assert_eq!(actor["alive"], true, "{name}: {s}");
    }
}
