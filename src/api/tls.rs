//! The mTLS acceptor (OpenSSL, Mozilla intermediate, client certificate required), the hook that
//! maps each connection's client certificate to a configured client once, at handshake, and the
//! material in force: each ClientHello is switched to the newest loaded context, so a reload
//! (see [`super::tls_reload`]) reaches new connections while open ones keep theirs.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::ssl::{
    ClientHelloResponse, SslAcceptor, SslAcceptorBuilder, SslContext, SslFiletype, SslMethod,
    SslVerifyMode,
};
use openssl::stack::Stack;
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContextRef, X509VerifyResult, X509};

use super::identity::{ClientRegistry, ConnIdentity, PeerCert};
use super::tls_material::{Inspection, TlsFiles};
use crate::config::{CrlWhenExpired, ServerSettings, TlsSettings};

/// `X509_V_ERR_CRL_HAS_EXPIRED` of x509_vfy.h (`tests/api/tls_reload/crl.rs` pins it).
const X509_V_ERR_CRL_HAS_EXPIRED: i32 = 12;

/// Seconds between two error lines about handshakes meeting an expired CRL.
const EXPIRED_CRL_LOG_EVERY_SECS: i64 = 60;

/// Why TLS material could not be loaded, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is unreadable, malformed or inconsistent with another.
    #[error("{key} ({path}): {reason}")]
    Material {
        /// The setting (`server.cert_file`, …).
        key: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// OpenSSL refused a step that does not depend on the files.
    #[error("TLS set-up: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// The material in force for new connections, shared with the acceptor's ClientHello callback.
pub struct TlsState {
    files: TlsFiles,
    policy: CrlWhenExpired,
    last_expired_log: Arc<AtomicI64>,
    generation: AtomicU64,
    /// The newest context; None until the first reload (the acceptor's own is in force).
    current: RwLock<Option<SslContext>>,
}

impl TlsState {
    /// The files the material comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Builds a new context from what `inspection` read and puts it in force for new
    /// connections; on error the material in force stays. Returns the new generation.
    pub fn install(&self, inspection: &Inspection) -> Result<u64, TlsError> {
        // A failed build spends a number, which is harmless: numbers only need to differ.
        let generation = self
            .generation
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        let builder = configure(
            &self.files,
            inspection,
            self.policy,
            generation,
            self.last_expired_log.clone(),
        )?;
        let ctx = builder.build().into_context();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(ctx);
        Ok(generation)
    }

    fn current(&self) -> Option<SslContext> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Builds the acceptor from the files as they are now, and the state the reloader replaces
/// them through. Returns what was read too (the reloader's starting point).
pub fn acceptor(
    server: &ServerSettings,
    tls: &TlsSettings,
) -> Result<(SslAcceptorBuilder, Arc<TlsState>, Inspection), TlsError> {
    let files = TlsFiles::of(server);
    let inspection = Inspection::read(&files)?;
    let state = Arc::new(TlsState {
        files,
        policy: tls.crl_when_expired,
        last_expired_log: Arc::default(),
        generation: AtomicU64::new(0),
        current: RwLock::new(None),
    });
    let mut b = configure(
        &state.files,
        &inspection,
        state.policy,
        0,
        state.last_expired_log.clone(),
    )?;
    // Runs before session resumption and certificate selection (OpenSSL recommends it over the
    // servername callback for switching contexts; it runs without SNI too). The verify mode
    // and callback stay the acceptor's, which is why every context is built by `configure`.
    let switch = state.clone();
    b.set_client_hello_callback(move |ssl, _alert| {
        if let Some(ctx) = switch.current() {
            // Certificate, key, trusted CAs and CRL, and the CA names of the CertificateRequest
            // all come from the connection's context from here on.
            ssl.set_ssl_context(&ctx)?;
        }
        Ok(ClientHelloResponse::SUCCESS)
    });
    Ok((b, state, inspection))
}

/// One context: server chain and key, trusted client CAs, optional CRL, peer certificate
/// required (no certificate, or one from another CA, fails the handshake).
fn configure(
    files: &TlsFiles,
    read: &Inspection,
    policy: CrlWhenExpired,
    generation: u64,
    last_expired_log: Arc<AtomicI64>,
) -> Result<SslAcceptorBuilder, TlsError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    let mut chain = X509::stack_from_pem(read.cert_pem())
        .map_err(bad("server.cert_file", &files.cert))?
        .into_iter();
    let leaf = chain.next().ok_or_else(|| TlsError::Material {
        key: "server.cert_file",
        path: files.cert.clone(),
        reason: "no certificate in the file".into(),
    })?;
    b.set_certificate(&leaf)
        .map_err(bad("server.cert_file", &files.cert))?;
    for extra in chain {
        b.add_extra_chain_cert(extra)
            .map_err(bad("server.cert_file", &files.cert))?;
    }
    let key =
        PKey::private_key_from_pem(read.key_pem()).map_err(bad("server.key_file", &files.key))?;
    b.set_private_key(&key)
        .map_err(bad("server.key_file", &files.key))?;
    b.check_private_key().map_err(|_| TlsError::Material {
        key: "server.key_file",
        path: files.key.clone(),
        reason: "does not match server.cert_file".into(),
    })?;
    for ca in read.cas() {
        b.cert_store_mut()
            .add_cert(ca.clone())
            .map_err(bad("server.client_ca_file", &files.ca))?;
    }
    let mut names = Stack::new()?;
    for name in read.ca_names()? {
        names.push(name)?;
    }
    b.set_client_ca_list(names);
    b.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        verifier(policy, files.crl.clone(), last_expired_log),
    );
    // Needed for session resumption when client certificates are verified; one per generation
    // so a session made under older material (maybe a since-revoked client) is not resumed.
    b.set_session_id_context(format!("tkm-api-{generation}").as_bytes())?;
    if let Some(crl) = &files.crl {
        let store = b.cert_store_mut();
        store
            .add_lookup(X509Lookup::file())?
            .load_crl_file(crl, SslFiletype::PEM)
            .map_err(bad("server.crl_file", crl))?;
        store.set_flags(X509VerifyFlags::CRL_CHECK)?;
    }
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x08http/1.1", client)
            .ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(b)
}

/// Maps an OpenSSL failure on a file to the error naming its setting.
fn bad<'a>(key: &'static str, path: &'a Path) -> impl FnOnce(ErrorStack) -> TlsError + 'a {
    move |e| TlsError::Material {
        key,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// OpenSSL's verdict, except that `warn` lets a certificate through when the only fault is a
/// CRL past its `nextUpdate` (its revocations still apply: OpenSSL goes on checking them).
fn verifier(
    policy: CrlWhenExpired,
    crl: Option<PathBuf>,
    last_log: Arc<AtomicI64>,
) -> impl Fn(bool, &mut X509StoreContextRef) -> bool + Send + Sync + 'static {
    move |ok, ctx| {
        if ok || ctx.error().as_raw() != X509_V_ERR_CRL_HAS_EXPIRED {
            return ok;
        }
        let accepted = policy == CrlWhenExpired::Warn;
        let now = super::tls_material::unix_now();
        let last = last_log.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= EXPIRED_CRL_LOG_EVERY_SECS
            && last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                crl_file = %crl.as_deref().unwrap_or(Path::new("")).display(),
                accepted,
                "a client certificate was checked against an expired CRL (server.crl_file is \
                 past its nextUpdate; tls.crl_when_expired decides): install a fresh CRL"
            );
        }
        if accepted {
            ctx.set_error(X509VerifyResult::OK);
        }
        accepted
    }
}

/// The `on_connect` hook: resolves the peer certificate to a client and stores it in the
/// connection's extensions (`req.conn_data::<ConnIdentity>()`).
pub fn on_connect(
    registry: Arc<ClientRegistry>,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |conn: &dyn Any, ext: &mut Extensions| {
        let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
            return;
        };
        let identity = tls
            .ssl()
            .peer_certificate()
            .and_then(|cert| PeerCert::from_x509(&cert).ok())
            .and_then(|peer| {
                let found = registry.identify(&peer);
                if found.is_none() {
                    tracing::warn!(
                        fingerprint = %peer.fingerprint,
                        subject = %peer.subject,
                        "client certificate maps to no configured client"
                    );
                }
                found
            });
        ext.insert(ConnIdentity(identity));
    }
}
