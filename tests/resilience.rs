//! R2 and R3 of `quality.md`: the broker, then the database, restarted under the running
//! application. This binary stops and starts the machine's RabbitMQ and PostgreSQL, so its tests
//! run one at a time, and a guard always starts the service again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code
)]
#![allow(clippy::await_holding_lock)]

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use awc::http::Method;
use serde_json::json;
use support::broker::{channel, drain, encrypt, publish, wait_for_topology};
use support::helpers::{eventually, spawn_app, tax_code, TestApp};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs a service command, panicking with its output when it fails.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the service again when dropped, whatever happened in the test.
struct Restart(fn());

impl Drop for Restart {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn rabbit_start() {
    run("rabbitmqctl", &["start_app"]);
    run("rabbitmqctl", &["await_startup"]);
}

fn pg_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max()
        .unwrap()
}

fn pg_start() {
    let v = pg_version();
    let _ = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &v, "main", "start"])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect("127.0.0.1:5432").is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("PostgreSQL did not come back");
}

fn event(tc: &str, n: usize) -> serde_json::Value {
    json!({"taxCode": tc, "pan": format!("4{n:015}"), "circuit": "VISA",
           "par": format!("V001{n:025}"), "timestamp": "2026-11-23 10:00:00:0000"})
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    match app.pool.get().await {
        Ok(c) => c.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(-1),
        Err(_) => -1,
    }
}

async fn ready(app: &TestApp) -> (u16, serde_json::Value) {
    match awc::Client::default()
        .get(app.ops_url("/health/ready"))
        .send()
        .await
    {
        Ok(mut r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
        Err(_) => (0, serde_json::Value::Null),
    }
}

#[actix_web::test]
async fn a_broker_restart_mid_stream_loses_nothing_and_readiness_reflects_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = app.settings.rabbitmq.clone();
    let tc = tax_code();
    let c = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc), ("Client-Id", "t")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    assert_eq!(c.status, 200);
    let total = 400;
    let bodies: Vec<Vec<u8>> = (0..total)
        .map(|n| encrypt(&app, &serde_json::to_vec(&event(&tc, n)).unwrap()))
        .collect();
    {
        let (_conn, ch) = channel().await;
        for (n, b) in bodies[..total / 2].iter().enumerate() {
            publish(&ch, &r.card_events_queue, b, &format!("m{n}")).await;
        }
    }
    {
        let _restart = Restart(rabbit_start);
        run("rabbitmqctl", &["stop_app"]);
        let degraded = eventually(Duration::from_secs(15), || async {
            let (status, body) = ready(&app).await;
            (status == 200 && body["broker"] == "degraded").then_some(())
        })
        .await;
        assert!(
            degraded.is_some(),
            "readiness stays 200 and reports the broker degraded"
        );
        let api = app
            .call("io", Method::GET, "/consent", &[("Tax-Code", &tc)], None)
            .await;
        assert_eq!(api.status, 200, "the API keeps working without the broker");
    }
    wait_for_topology(&app).await;
    let (_conn, ch) = channel().await;
    for (n, b) in bodies[total / 2..].iter().enumerate() {
        publish(&ch, &r.card_events_queue, b, &format!("m{}", n + total / 2)).await;
    }
    let all = eventually(Duration::from_secs(60), || async {
        (count(&app, "SELECT count(*) FROM card").await == total as i64).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "every event applied: {}",
        count(&app, "SELECT count(*) FROM card").await
    );
    let published = eventually(Duration::from_secs(30), || async {
        (count(&app, "SELECT count(*) FROM outbox").await == 0).then_some(())
    })
    .await;
    assert!(published.is_some(), "every card update published");
    let updates = drain(&ch, &r.card_updates_queue, Duration::from_millis(500)).await;
    let mut hpans: Vec<String> = updates
        .iter()
        .flat_map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
            v["cards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["hpan"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    hpans.sort();
    hpans.dedup();
    assert_eq!(
        hpans.len(),
        total,
        "one update per card reached the platform (duplicates allowed)"
    );
}

#[actix_web::test]
async fn a_database_restart_gives_503_acks_nothing_and_service_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let r = app.settings.rabbitmq.clone();
    let tc = tax_code();
    let (_conn, ch) = channel().await;
    let outage_events = 20;
    {
        let _restart = Restart(pg_start);
        run(
            "pg_ctlcluster",
            &[
                "--skip-systemctl-redirect",
                &pg_version(),
                "main",
                "stop",
                "-m",
                "fast",
            ],
        );
        let r503 = app
            .call(
                "io",
                Method::POST,
                "/consent",
                &[("Tax-Code", &tc), ("Client-Id", "t")],
                Some(json!({"consent": "Allow"})),
            )
            .await;
        r503.assert_error(503, 9503);
        let (status, body) = ready(&app).await;
        assert_eq!(status, 503, "{body}");
        for n in 0..outage_events {
            publish(
                &ch,
                &r.card_events_queue,
                &encrypt(&app, &serde_json::to_vec(&event(&tc, n)).unwrap()),
                &format!("o{n}"),
            )
            .await;
        }
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
        assert!(
            drain(&ch, &r.dead_letter_queue, Duration::ZERO)
                .await
                .is_empty(),
            "a database outage dead-letters nothing"
        );
    }
    let resumed = eventually(Duration::from_secs(60), || async {
        (count(&app, "SELECT count(*) FROM card").await == outage_events as i64).then_some(())
    })
    .await;
    assert!(
        resumed.is_some(),
        "the unacked events are applied once the database is back"
    );
    let ok = eventually(Duration::from_secs(20), || async {
        let r = app
            .call(
                "io",
                Method::POST,
                "/consent",
                &[("Tax-Code", &tc), ("Client-Id", "t")],
                Some(json!({"consent": "Allow"})),
            )
            .await;
        (r.status == 200).then_some(())
    })
    .await;
    assert!(ok.is_some(), "the API serves again without a restart");
    assert_eq!(ready(&app).await.0, 200);
}
