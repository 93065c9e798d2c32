//! The simulator's listener: OpenSSL TLS with the client certificate requested (verified against
//! the dev CA when presented, required only by the Visa handlers) and the routes.

use std::any::Any;
use std::path::Path;

use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::web;
use anyhow::Context;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::{X509Name, X509VerifyResult};

use super::{admin, amex, mastercard, visa};

/// Whether the connection presented a verified client certificate (connection data).
#[derive(Debug, Clone, Copy)]
pub struct ClientCert(pub bool);

/// The acceptor: server certificate and key, client CA, certificate requested but optional.
pub fn acceptor(cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<SslAcceptorBuilder> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_certificate_chain_file(cert)
        .with_context(|| format!("circuits.simulator.cert_file {}", cert.display()))?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .with_context(|| format!("circuits.simulator.key_file {}", key.display()))?;
    b.check_private_key()
        .context("circuits.simulator.key_file does not match cert_file")?;
    b.set_ca_file(ca)
        .with_context(|| format!("circuits.simulator.ca_file {}", ca.display()))?;
    b.set_client_ca_list(X509Name::load_client_ca_file(ca)?);
    // PEER without FAIL_IF_NO_PEER_CERT: asked for, checked when sent, not required here.
    b.set_verify(SslVerifyMode::PEER);
    b.set_session_id_context(b"tkm-circuit-simulator")?;
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x08http/1.1", client)
            .ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(b)
}

/// Records [`ClientCert`] for each connection.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    let present = conn
        .downcast_ref::<TlsStream<TcpStream>>()
        .is_some_and(|tls| {
            tls.ssl().peer_certificate().is_some()
                && tls.ssl().verify_result() == X509VerifyResult::OK
        });
    ext.insert(ClientCert(present));
}

/// Every route of the simulator.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/par/v1/inquiry", web::post().to(visa::par))
        .route("/v1/binRangeDetails", web::post().to(visa::bins))
        .route(
            "/par/paymentaccountreference/1/0/getPaymentAccountReference",
            web::post().to(mastercard::par),
        )
        .route(
            "/bin-resources/bin-ranges",
            web::post().to(mastercard::bins),
        )
        .route(
            "/payments/digital/v2/product_account_reference",
            web::post().to(amex::par),
        )
        .service(
            web::scope("/sim")
                .route("/bin-files/{circuit}", web::get().to(admin::bin_file))
                .route("/tokens", web::post().to(admin::tokens))
                .route("/faults", web::post().to(admin::faults))
                .route("/reset", web::post().to(admin::reset))
                .route("/stats", web::get().to(admin::stats)),
        );
}
