//! Issue 10 point 7: the mTLS material reloads without a restart. A new CRL locks a client out
//! within the poll interval (sessions made before it included), new client CAs and a new server
//! certificate reach new connections, open connections are kept, a broken file keeps the material
//! in force, SIGHUP reloads, and an expired CRL refuses (`reject`) or admits (`warn`) clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVersion};
use openssl::x509::X509;
use tkm::config::{CrlWhenExpired, Settings};

use crate::helpers::{
    captured_logs, certs, client, connector, eventually, root, test_settings, TestApp,
};

mod crl;
mod material;

/// Longer than a few poll intervals of 1 s and a loaded machine's scheduling.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Tests that depend on no forced reload happening meanwhile (the SIGHUP test reloads every
/// application of this process) take this.
pub static SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A directory holding the files a test application is pointed at, with a CA database to
/// revoke dev certificates and make CRLs with the `openssl ca` command.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// Copies of the dev server certificate, key and CA, and a CRL revoking nothing, valid a day.
    fn new() -> Self {
        let dir = root()
            .join("target/test-secrets")
            .join(format!("tls-reload-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::copy(certs().join(f), dir.join(f)).unwrap();
        }
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = tkm_test\n[tkm_test]\ndatabase = {d}/index.txt\n\
                 crlnumber = {d}/crlnumber\ndefault_md = sha256\ncrl_extensions = crl_ext\n\
                 [crl_ext]\nauthorityKeyIdentifier = keyid:always\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let pki = Self { dir };
        pki.write_crl(&["-crldays", "1"]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ca(&self, args: &[&str]) {
        let mut all = vec!["ca", "-batch", "-config"];
        let cnf = self.path("ca.cnf");
        let (ca, key) = (certs().join("ca.crt"), certs().join("ca.key"));
        all.extend([cnf.to_str().unwrap(), "-cert", ca.to_str().unwrap()]);
        all.extend(["-keyfile", key.to_str().unwrap()]);
        all.extend(args);
        openssl(&all);
    }

    /// Adds the dev certificate `role` to the revoked ones (effective with the next CRL).
    fn revoke(&self, role: &str) {
        let cert = certs().join(format!("{role}.crt"));
        self.ca(&["-revoke", cert.to_str().unwrap()]);
    }

    /// Writes a CRL of the revocations so far (`validity`: `-crldays 1`, `-crl_nextupdate …`),
    /// replacing the file at once as an operator's deployment should.
    fn write_crl(&self, validity: &[&str]) {
        let tmp = self.path("crl.pem.new");
        let mut args = vec!["-gencrl", "-out", tmp.to_str().unwrap()];
        args.extend(validity);
        self.ca(&args);
        std::fs::rename(&tmp, self.path("crl.pem")).unwrap();
    }

    /// A new server certificate for localhost (another key, serial and subject) signed by the dev
    /// CA, put in place of the served one; returns its SHA-256 fingerprint.
    fn renew_server_certificate(&self) -> Vec<u8> {
        let (key, csr, crt) = (
            self.path("new.key"),
            self.path("new.csr"),
            self.path("new.crt"),
        );
        let ext = self.path("new.ext");
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        let p = |p: &Path| p.to_str().unwrap().to_owned();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/O=tkm dev/CN=localhost renewed",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&certs().join("ca.crt")),
            "-CAkey",
            &p(&certs().join("ca.key")),
            "-set_serial",
            "4242",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&crt),
        ]);
        // Key then certificate, each replaced at once: a poll in between sees a mismatch, which
        // keeps the material in force until the certificate follows.
        std::fs::rename(&key, self.path("server.key")).unwrap();
        std::fs::rename(&crt, self.path("server.crt")).unwrap();
        fingerprint(&self.path("server.crt"))
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fingerprint(cert: &Path) -> Vec<u8> {
    let cert = X509::from_pem(&std::fs::read(cert).unwrap()).unwrap();
    cert.digest(MessageDigest::sha256()).unwrap().to_vec()
}

async fn settings(pki: &Pki, poll_secs: u64, policy: CrlWhenExpired) -> Settings {
    let mut s = test_settings().await;
    s.server.cert_file = pki.path("server.crt");
    s.server.key_file = pki.path("server.key");
    s.server.client_ca_file = pki.path("ca.crt");
    s.server.crl_file = Some(pki.path("crl.pem"));
    s.tls.reload_poll_secs = poll_secs;
    s.tls.crl_when_expired = policy;
    s
}

/// Whether a new connection presenting `role`'s certificate gets an answer.
async fn admitted(app: &TestApp, role: &str) -> bool {
    let res = client(Some(role)).get(app.url("/health/live")).send().await;
    res.is_ok_and(|r| r.status() == 200)
}

/// A new blocking connection presenting `role`'s certificate, with one request answered.
fn connect(port: u16, role: &str) -> Result<SslStream<TcpStream>, String> {
    connect_as(connector(Some(role), &certs().join("ca.crt")), port)
}

/// The same, in TLS 1.2.
fn connect_tls12(port: u16, role: &str) -> Result<SslStream<TcpStream>, String> {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(certs().join("ca.crt")).unwrap();
    b.set_certificate_file(certs().join(format!("{role}.crt")), SslFiletype::PEM)
        .unwrap();
    b.set_private_key_file(certs().join(format!("{role}.key")), SslFiletype::PEM)
        .unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    connect_as(b.build(), port)
}

fn connect_as(connector: SslConnector, port: u16) -> Result<SslStream<TcpStream>, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = connector
        .connect("localhost", tcp)
        .map_err(|e| e.to_string())?;
    match get(&mut tls)? {
        200 => Ok(tls),
        s => Err(format!("status {s}")),
    }
}

/// `GET /health/live` on an open connection, kept alive; returns the status.
fn get(tls: &mut SslStream<TcpStream>) -> Result<u16, String> {
    tls.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("connection closed".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(status)
}

fn peer_fingerprint(tls: &SslStream<TcpStream>) -> Vec<u8> {
    let cert = tls.ssl().peer_certificate().unwrap();
    cert.digest(MessageDigest::sha256()).unwrap().to_vec()
}

/// The server certificate a new connection is shown (in TLS 1.3 and 1.2: None if they differ).
async fn served_fingerprint(port: u16) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let v13 = connect(port, "io").ok().map(|t| peer_fingerprint(&t));
        let v12 = connect_tls12(port, "io").ok().map(|t| peer_fingerprint(&t));
        v13.clone().filter(|_| v12 == v13)
    })
    .await
    .unwrap()
}

async fn metrics(app: &TestApp) -> String {
    let mut res = awc::Client::default()
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    String::from_utf8_lossy(&res.body().await.unwrap()).into_owned()
}

/// Whether a log line holds every one of `parts` (soon: the reloader logs from its own task).
async fn logged(parts: &[&str]) -> bool {
    let found = || {
        let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
        logs.lines().any(|l| parts.iter().all(|p| l.contains(p)))
    };
    eventually(DEADLINE, || async { found().then_some(()) })
        .await
        .is_some()
}
