//! The mTLS acceptor (OpenSSL, Mozilla intermediate, client certificate required) and the hook
//! that maps each connection's client certificate to a configured client once, at handshake.

use std::any::Any;
use std::sync::Arc;

use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use anyhow::Context;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509Name;

use super::identity::{ClientRegistry, ConnIdentity, PeerCert};
use crate::config::ServerSettings;

/// Builds the acceptor: server chain and key, trusted client CAs, optional CRL, peer
/// certificate required (no certificate, or one from another CA, fails the handshake).
pub fn acceptor(s: &ServerSettings) -> anyhow::Result<SslAcceptorBuilder> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_certificate_chain_file(&s.cert_file)
        .with_context(|| format!("server.cert_file {}", s.cert_file.display()))?;
    b.set_private_key_file(&s.key_file, SslFiletype::PEM)
        .with_context(|| format!("server.key_file {}", s.key_file.display()))?;
    b.check_private_key()
        .context("server.key_file does not match server.cert_file")?;
    b.set_ca_file(&s.client_ca_file)
        .with_context(|| format!("server.client_ca_file {}", s.client_ca_file.display()))?;
    b.set_client_ca_list(X509Name::load_client_ca_file(&s.client_ca_file)?);
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    // Needed for session resumption when client certificates are verified.
    b.set_session_id_context(b"tkm-api")?;
    if let Some(crl) = &s.crl_file {
        let store = b.cert_store_mut();
        store
            .add_lookup(X509Lookup::file())?
            .load_crl_file(crl, SslFiletype::PEM)
            .with_context(|| format!("server.crl_file {}", crl.display()))?;
        store.set_flags(X509VerifyFlags::CRL_CHECK)?;
    }
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x08http/1.1", client)
            .ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(b)
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
