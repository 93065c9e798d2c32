//! The circuits end to end: admin-forced BIN refreshes (and the ones refused, R5), PAR cycles
//! through the simulator over real TLS, consent gating, deletions, 429s, outages and the limiter.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use tkm::circuits::simulator::data;
use tkm::config::Settings;
use tkm::db::bin_ranges;
use tkm::domain::{BinRange, Circuit};

use crate::broker::{channel, encrypt, publish, wait_for_topology};
use crate::helpers::{
    client, consent, eventually, job_end, sha, spawn_app, spawn_app_with, tax_code, test_settings,
    TestApp,
};

/// Calls the app's simulator (`/sim/*`, no client certificate).
async fn sim(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let base = app.simulator_url.clone().expect("simulator mode");
    let req = client(None).request(method, format!("{base}{path}"));
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("simulator answers");
    let bytes = res.body().limit(16 << 20).await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn refresh_bins(app: &TestApp, query: &str) -> Value {
    let r = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/bin-ranges/refresh{query}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    job_end(app, r.json["jobId"].as_str().unwrap()).await
}

/// Starts a PAR cycle once none runs (a running cycle answers its own job id, and may have
/// queued its lookups before the test's cards existed), and waits for its end.
async fn refresh_pars(app: &TestApp, query: &str) -> Value {
    let id = refresh_pars_started(app, query).await;
    job_end(app, &id).await
}

async fn status(app: &TestApp) -> Value {
    let r = app
        .call("admin", Method::GET, "/admin/status", &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// Publishes card events (PAN, no PAR) for `tc` and waits until the cards are stored.
async fn enrol(app: &TestApp, tc: &str, pans: &[(String, &str)]) {
    let (_c, ch) = channel().await;
    for (i, (pan, circuit)) in pans.iter().enumerate() {
        let event = json!({"taxCode": tc, "pan": pan, "circuit": circuit,
            "timestamp": "2026-11-23 10:15:00:0000", "tokens": []});
        let body = encrypt(app, &serde_json::to_vec(&event).unwrap());
        publish(
            &ch,
            &app.settings.rabbitmq.card_events_queue,
            &body,
            &format!("e-{i}-{pan}"),
        )
        .await;
    }
    let want = pans.len() as i64;
    let stored = eventually(Duration::from_secs(20), || async {
        let n: i64 = app
            .pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM card", &[])
            .await
            .unwrap()
            .get(0);
        (n >= want).then_some(())
    })
    .await;
    assert!(stored.is_some(), "cards stored");
}

async fn par_of_card(app: &TestApp, pan: &str) -> Option<String> {
    let r = app
        .call(
            "platform",
            Method::GET,
            "/cards",
            &[("hpan", &sha(pan))],
            None,
        )
        .await;
    r.json["par"].as_str().map(str::to_string)
}

/// A PAN of `circuit` (prefix) that has a PAR in the simulator from the start, or not.
fn pan(prefix: &str, len: usize, has_par: bool, share: f64) -> String {
    loop {
        let mut p = prefix.to_string();
        while p.len() < len {
            p.push(char::from(b'0' + rand::random::<u8>() % 10));
        }
        if data::waits_for_token(&p, share).unwrap() != has_par {
            return p;
        }
    }
}

/// Settings with a slow contract rate and quick retries, for the fault tests.
async fn fault_settings(rate: u32) -> Settings {
    let mut s = test_settings().await;
    for c in [
        &mut s.circuits.visa,
        &mut s.circuits.mastercard,
        &mut s.circuits.amex,
    ] {
        c.rate_per_second = rate;
        c.burst = 1;
    }
    s.circuits.amex.batch_size = 1;
    s.par_resolver.retry_after_secs = 1;
    s.par_resolver.retry_backoff_ms = 20;
    s.par_resolver.default_retry_after_secs = 1;
    s
}

fn max_per_second(stats: &Value, circuit: &str) -> u64 {
    stats["circuits"][circuit]["perSecond"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Starts a PAR cycle (once none runs) and returns its job id without waiting for it.
async fn refresh_pars_started(app: &TestApp, query: &str) -> String {
    wait_idle(app).await;
    let r = app
        .call(
            "admin",
            Method::POST,
            &format!("/admin/par/refresh{query}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.json["jobId"].as_str().unwrap().to_string()
}

/// Waits until no PAR cycle runs.
async fn wait_idle(app: &TestApp) {
    let idle = eventually(Duration::from_secs(60), || async {
        let r = app
            .call("admin", Method::GET, "/admin/jobs", &[], None)
            .await;
        let running = r.json.as_array()?.iter().any(|j| {
            j["kind"] == "par-refresh" && (j["state"] == "RUNNING" || j["state"] == "QUEUED")
        });
        (!running).then_some(())
    })
    .await;
    assert!(idle.is_some(), "running PAR cycles end");
}

mod bins;
mod credentials;
mod faults;
mod lanes;
mod pars;
mod replicas;
mod retry_after;
mod token_lists;
