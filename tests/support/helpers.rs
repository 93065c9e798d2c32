//! `spawn_app()`: builds the real `Application` against a fresh database and gives one mTLS
//! client per role.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use secrecy::SecretString;
use tkm::config::Settings;
use tkm::startup::Application;

/// The canary salt every test application uses: it must never appear in logs or answers.
pub const CANARY_SALT: &str = "canary-salt-5f2d7c1e";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn certs() -> PathBuf {
    root().join("certs/dev")
}

/// Generates the dev certificates once per test process (the script is idempotent and locked).
fn ensure_certs() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new(root().join("certs/gen-dev-certs.sh"))
            .status()
            .expect("run certs/gen-dev-certs.sh");
        assert!(status.success(), "certs/gen-dev-certs.sh failed");
    });
}

/// A vault key file for tests.
fn vault_key_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = root().join("target/test-secrets");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vault.key");
        if !path.exists() {
            let mut f = std::fs::File::create(&path).unwrap();
            writeln!(f, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        }
        path
    })
    .clone()
}

/// Everything tests log, captured to be searched for canaries.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Capture(buf.clone());
        let subscriber = tkm::telemetry::get_subscriber("tkm=trace,info", true, sink);
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stdout().write_all(data)?;
        }
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The base URL of the database server tests create their databases on.
pub fn admin_db_url() -> String {
    std::env::var("TKM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty database and returns its URL.
pub async fn create_database() -> String {
    let name = format!("tkm_test_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&admin_db_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL (is it running? scripts/services.sh starts it)");
    actix_web::rt::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let base = admin_db_url();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// Settings for a test application: dev clients, port 0, a fresh database, test secrets.
pub async fn test_settings() -> Settings {
    ensure_certs();
    let mut s = Settings::from_layers(Some(&root().join("config/dev.toml"))).unwrap();
    let dir = root();
    s.server.bind = "127.0.0.1:0".parse().unwrap();
    s.server.ops_bind = "127.0.0.1:0".parse().unwrap();
    s.server.workers = 2;
    s.server.cert_file = dir.join("certs/dev/server.crt");
    s.server.key_file = dir.join("certs/dev/server.key");
    s.server.client_ca_file = dir.join("certs/dev/ca.crt");
    s.database.url = SecretString::from(create_database().await);
    s.database.pool_size = 8;
    // Tests refresh BIN ranges when they mean to (the replicas test turns this back on).
    s.bin_refresh.on_start = false;
    s.storage.dir = dir
        .join("target/test-storage")
        .join(uuid::Uuid::new_v4().simple().to_string());
    s.hashing.salt = Some(SecretString::from(CANARY_SALT.to_owned()));
    s.hashing.salt_file = None;
    s.vault.keys[0].key_file = Some(vault_key_file());
    let (private, public) = pgp_key_files();
    s.pgp.private_key_file = private;
    s.pgp.public_key_file = public;
    s.pgp.passphrase_file = None;
    unique_rabbit_names(&mut s.rabbitmq);
    let sim = &mut s.circuits.simulator;
    sim.bind = "127.0.0.1:0".parse().unwrap();
    sim.cert_file = dir.join("certs/dev/server.crt");
    sim.key_file = dir.join("certs/dev/server.key");
    sim.ca_file = dir.join("certs/dev/ca.crt");
    sim.client_cert_file = dir.join("certs/dev/circuit-client.crt");
    sim.client_key_file = dir.join("certs/dev/circuit-client.key");
    sim.keys_dir = Some(
        dir.join("target/test-secrets")
            .join(format!("simulator-{}", std::process::id())),
    );
    s
}

/// tkm's PGP key for tests: a Curve25519 key generated once per test process (its own files, so
/// concurrent test binaries never overwrite each other's).
pub fn pgp_key_files() -> (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let dir = root().join("target/test-secrets");
            std::fs::create_dir_all(&dir).unwrap();
            let pid = std::process::id();
            let (private, public) = (
                dir.join(format!("pgp-{pid}-private.asc")),
                dir.join(format!("pgp-{pid}-public.asc")),
            );
            let (sk, pk) = tkm::crypto::pgp::generate(
                tkm::crypto::pgp::PgpKeyKind::Curve25519,
                "tkm test <tkm@test>",
                None,
            )
            .unwrap();
            std::fs::write(&private, sk).unwrap();
            std::fs::write(&public, pk).unwrap();
            (private, public)
        })
        .clone()
}

/// RabbitMQ names of one test application: the defaults with a unique suffix; queues expire
/// when unused so test runs leave nothing behind.
fn unique_rabbit_names(r: &mut tkm::config::RabbitSettings) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let id = &id[..12];
    for name in [
        &mut r.card_events_queue,
        &mut r.card_deletions_queue,
        &mut r.transactions_queue,
        &mut r.out_exchange,
        &mut r.card_updates_queue,
        &mut r.outcomes_queue,
        &mut r.dead_letter_exchange,
        &mut r.dead_letter_queue,
        &mut r.dead_letter_audit_queue,
    ] {
        name.push_str(&format!(".t-{id}"));
    }
    r.queue_expires_ms = Some(300_000);
    // Classic queues are cheap to create and to restart the broker with; the quorum topology of
    // production has its own test (cards::dead_letters::the_default_topology_is_quorum_with_a_delivery_limit_and_dead_letters).
    r.quorum_queues = false;
    r.relay_poll_ms = 100;
}

/// A running application and clients for it.
pub struct TestApp {
    pub api_port: u16,
    pub ops_port: u16,
    pub pool: deadpool_postgres::Pool,
    /// The in-process circuit simulator (simulator mode).
    pub simulator_url: Option<String>,
    /// The settings it runs with (queue names, keys).
    pub settings: Settings,
    /// One keep-alive client per certificate, reused across calls (as real clients do).
    clients: std::cell::RefCell<std::collections::HashMap<String, awc::Client>>,
    /// The task running the application (aborted by `stop`).
    task: Option<actix_web::rt::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings().await).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    captured_logs();
    settings.validate().expect("test settings are valid");
    let kept = settings.clone();
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let t = TestApp {
        api_port: app.api_port(),
        ops_port: app.ops_port(),
        pool: app.pool().clone(),
        simulator_url: app.simulator_url(),
        settings: kept,
        clients: Default::default(),
        task: None,
    };
    TestApp {
        task: Some(actix_web::rt::spawn(app.run_until_stopped())),
        ..t
    }
}

/// An mTLS connector presenting the certificate `name` from certs/dev (None: no certificate).
pub fn connector(cert: Option<&str>, trust: &Path) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(trust).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    if let Some(name) = cert {
        b.set_certificate_file(certs().join(format!("{name}.crt")), SslFiletype::PEM)
            .unwrap();
        b.set_private_key_file(certs().join(format!("{name}.key")), SslFiletype::PEM)
            .unwrap();
    }
    b.set_alpn_protos(b"\x08http/1.1").unwrap();
    b.build()
}

/// An HTTP client presenting `cert` (a role name, `unmapped`, `rogue`, or None).
pub fn client(cert: Option<&str>) -> awc::Client {
    let connector = connector(cert, &certs().join("ca.crt"));
    awc::Client::builder()
        .connector(awc::Connector::new().openssl(connector).limit(8))
        // A 302 is an answer the tests look at (the list endpoints), not one to follow.
        .disable_redirects()
        .timeout(Duration::from_secs(20))
        .finish()
}

impl TestApp {
    /// Stops the application as a crash would (its actors and broker connection go away; what
    /// its consumers held unacked returns to the queues), and waits until its card events
    /// queue has no consumer left.
    pub async fn stop(&mut self) {
        self.kill().await;
        let (_c, ch) = crate::support::broker::channel().await;
        let queue = self.settings.rabbitmq.card_events_queue.clone();
        let gone = eventually(Duration::from_secs(20), || async {
            let q = ch
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .ok()?;
            (q.consumer_count() == 0).then_some(())
        })
        .await;
        assert!(gone.is_some(), "the stopped application still consumes");
    }

    /// Stops the application as a crash would, without waiting for anything (another replica
    /// may go on consuming the same queues).
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Every `table.column` of the database whose clear value holds `needle`, except the
    /// `sealed` columns (vault ciphertexts) given as `table.column`.
    pub async fn columns_holding(&self, needle: &str, sealed: &[&str]) -> Vec<String> {
        let conn = self.pool.get().await.unwrap();
        let columns = conn
            .query(
                "SELECT table_name::text, column_name::text, data_type::text \
                 FROM information_schema.columns WHERE table_schema = 'public'",
                &[],
            )
            .await
            .unwrap();
        let mut hits = Vec::new();
        for c in &columns {
            let (table, column, kind): (String, String, String) = (c.get(0), c.get(1), c.get(2));
            let name = format!("{table}.{column}");
            if sealed.contains(&name.as_str()) {
                continue;
            }
            let test = if kind == "bytea" {
                format!("position(convert_to($1, 'UTF8') in \"{column}\") > 0")
            } else {
                format!("\"{column}\"::text LIKE '%' || $1 || '%'")
            };
            let n: i64 = conn
                .query_one(
                    &format!("SELECT count(*) FROM \"{table}\" WHERE {test}"),
                    &[&needle],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                hits.push(name);
            }
        }
        hits
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.api_port, path)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let mut res = awc::Client::default()
            .get(self.ops_url("/metrics"))
            .send()
            .await
            .expect("the ops listener answers");
        String::from_utf8_lossy(&res.body().limit(16 << 20).await.unwrap()).into_owned()
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ops_port, path)
    }

    /// Sends a request as `role` and returns status, headers and JSON (Null when not JSON).
    pub async fn call(
        &self,
        role: &str,
        method: awc::http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Reply {
        let c = self.client_of(role);
        let mut req = c.request(method, self.url(path));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("request reaches the server");
        Reply::read(&mut res).await
    }
}

impl TestApp {
    /// The keep-alive client of `role` (made at its first use).
    fn client_of(&self, role: &str) -> awc::Client {
        self.clients
            .borrow_mut()
            .entry(role.to_owned())
            .or_insert_with(|| client(Some(role)))
            .clone()
    }

    /// Sends raw bytes as `role` with a content type (multipart uploads).
    pub async fn call_raw(
        &self,
        role: &str,
        method: awc::http::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let c = self.client_of(role);
        let mut res = c
            .request(method, self.url(path))
            .insert_header(("content-type", content_type))
            .timeout(Duration::from_secs(120))
            .send_body(body)
            .await
            .expect("request reaches the server");
        Reply::read(&mut res).await
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
    pub bytes: Vec<u8>,
}

impl Reply {
    /// Reads a response whole.
    pub async fn read<S>(res: &mut awc::ClientResponse<S>) -> Reply
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let bytes = res.body().limit(256 * 1024 * 1024).await.unwrap();
        Reply {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes: bytes.to_vec(),
        }
    }

    /// Asserts an error answer: HTTP status and the spec's code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: u64) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["statusCode"], code, "body: {}", self.text);
        assert!(self.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// Polls `check` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = std::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes the relay's leader lock on the application's database, so no replica relays while the
/// returned client lives.
pub async fn hold_relay_lock(settings: &Settings) -> tokio_postgres::Client {
    use secrecy::ExposeSecret;
    let (client, conn) =
        tokio_postgres::connect(settings.database.url.expose_secret(), tokio_postgres::NoTls)
            .await
            .unwrap();
    actix_web::rt::spawn(conn);
    client
        .query_one(
            "SELECT pg_advisory_lock($1)",
            &[&tkm::bridge::relay::RELAY_LOCK],
        )
        .await
        .unwrap();
    client
}

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use crate::support::fixtures::{consent, hpan, job_end, sha, tax_code, upload};
