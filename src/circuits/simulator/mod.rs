//! The circuit simulator: Visa, Mastercard and Amex PAR and BIN endpoints over TLS, verifying each
//! protocol as the real circuit would, with deterministic data and fault injection.
//!
//! `data`/`ranges` are the deterministic data, `state`/`faults` the mutable bookkeeping, `gate`
//! the path every call takes, `visa`/`mastercard`/`amex` the protocols, `admin` the `/sim/*`
//! endpoints and `server` the TLS listener.

mod admin;
mod amex;
mod context;
pub mod data;
pub mod faults;
mod gate;
pub mod keys;
mod keys_dir;
mod mastercard;
pub mod ranges;
mod replies;
mod request;
mod server;
pub mod state;
mod visa;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

pub use keys::SimulatorKeys;

use crate::config::SimulatorSettings;

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    handle: ServerHandle,
    sim: Arc<context::Sim>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Simulator {
    /// Binds `settings.bind` (port 0 allowed) with TLS (`cert_file`/`key_file`; a client
    /// certificate is requested, verified against `ca_file` when presented and required by the
    /// Visa endpoints), starts a 2-worker server on the current actix runtime and returns once
    /// listening.
    pub async fn start(
        settings: &SimulatorSettings,
        keys: SimulatorKeys,
    ) -> anyhow::Result<Simulator> {
        let sim = Arc::new(context::Sim::new(settings, keys).context("simulator keys")?);
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot bind circuits.simulator.bind {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let acceptor = server::acceptor(&settings.cert_file, &settings.key_file, &settings.ca_file)
            .context("cannot set up the simulator's TLS")?;
        let data = web::Data::from(sim.clone());
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).configure(server::routes))
                .on_connect(server::on_connect)
                .workers(2)
                .disable_signals()
                .shutdown_timeout(1)
                .listen_openssl(listener, acceptor)?
                .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        tracing::info!(%addr, "circuit simulator listening");
        Ok(Simulator { addr, handle, sim })
    }

    /// `https://127.0.0.1:PORT` (the bound address; loopback when bound to every interface).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("https://{addr}")
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets calls in flight finish (at most 1 s), then returns.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// The PAR this simulator answers for `account` on `circuit` now (`None`: no PAR yet).
    pub fn expected_par(
        &self,
        circuit: crate::domain::Circuit,
        account: &str,
    ) -> Result<Option<String>, crate::circuits::protocol::ProtocolError> {
        self.sim.resolve_par(circuit, account)
    }
}
