//! `Application::build`: migrations, pool, actors in dependency order, the mTLS API and the ops
//! listener. Tests build the same application on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter, Supervisor};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use deadpool_postgres::Pool;

use crate::actors::consent_registry::{ConsentRegistry, RegistryLimits};
use crate::api;
use crate::api::consent::HandlerTimeout;
use crate::api::identity::ClientRegistry;
use crate::api::input::JsonLimit;
use crate::api::ops::Readiness;
use crate::config::Settings;
use crate::db;
use crate::metrics::Metrics;

/// A built, bound application.
pub struct Application {
    api_port: u16,
    ops_port: u16,
    api: Server,
    ops: Server,
    pool: Pool,
    consent: Addr<ConsentRegistry>,
    _arbiters: Vec<Arbiter>,
}

impl Application {
    /// Builds everything and binds both listeners (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        db::run_migrations(&settings.database).await?;
        let pool = db::build_pool(&settings.database)?;
        let pg = crate::db::pg_config(&settings.database)?;
        let metrics = Metrics::new().context("cannot register metrics")?;

        let consent_arbiter = Arbiter::new();
        let limits = RegistryLimits {
            cache_capacity: settings.consent.cache_capacity,
            cache_ttl: Duration::from_secs(settings.consent.cache_ttl_secs),
            mailbox_capacity: settings.consent.mailbox_capacity,
        };
        let mailbox = limits.mailbox_capacity;
        let consent_pool = pool.clone();
        let consent = Supervisor::start_in_arbiter(&consent_arbiter.handle(), move |_| {
            ConsentRegistry::new(consent_pool, pg, limits)
        });
        metrics
            .actor_mailbox
            .with_label_values(&[ConsentRegistry::NAME])
            .set(i64::try_from(mailbox).unwrap_or(i64::MAX));

        let readiness = Readiness {
            pool: pool.clone(),
            actors: vec![(ConsentRegistry::NAME, consent.clone().recipient())],
        };
        let clients = Arc::new(ClientRegistry::new(&settings.clients));
        let s = &settings.server;
        let timeout = HandlerTimeout(Duration::from_millis(s.handler_timeout_ms));
        let json_limit = JsonLimit(s.json_limit_bytes);
        let workers = if s.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            s.workers
        };

        let api_listener = TcpListener::bind(s.bind)
            .with_context(|| format!("cannot bind server.bind {}", s.bind))?;
        let api_port = api_listener.local_addr()?.port();
        let acceptor = api::tls::acceptor(s).context("cannot set up TLS")?;
        let (m, c) = (metrics.clone(), consent.clone());
        let api = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api::middleware::observe))
                .app_data(web::Data::new(m.clone()))
                .app_data(web::Data::new(c.clone()))
                .app_data(web::Data::new(timeout))
                .app_data(web::Data::new(json_limit))
                .configure(api::routes)
        })
        .on_connect(api::tls::on_connect(clients))
        .workers(workers)
        .keep_alive(Duration::from_secs(s.keep_alive_secs))
        .shutdown_timeout(s.shutdown_timeout_secs)
        .max_connections(s.max_connections)
        .listen_openssl(api_listener, acceptor)?
        .run();

        let ops_listener = TcpListener::bind(s.ops_bind)
            .with_context(|| format!("cannot bind server.ops_bind {}", s.ops_bind))?;
        let ops_port = ops_listener.local_addr()?.port();
        let m = metrics.clone();
        let ops = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api::middleware::observe))
                .app_data(web::Data::new(m.clone()))
                .app_data(web::Data::new(readiness.clone()))
                .configure(api::ops::routes)
        })
        .workers(1)
        .shutdown_timeout(s.shutdown_timeout_secs)
        .listen(ops_listener)?
        .run();

        Ok(Self {
            api_port,
            ops_port,
            api,
            ops,
            pool,
            consent,
            _arbiters: vec![consent_arbiter],
        })
    }

    /// The bound API (mTLS) port.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The bound ops port.
    pub fn ops_port(&self) -> u16 {
        self.ops_port
    }

    /// The database pool (tests inspect the database through it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The consent registry.
    pub fn consent_registry(&self) -> &Addr<ConsentRegistry> {
        &self.consent
    }

    /// Serves until SIGTERM/SIGINT (graceful: in-flight requests finish within the timeout).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        use futures_util::future::{join, select, Either};
        let api_handle = self.api.handle();
        let ops_handle = self.ops.handle();
        // Whichever listener stops first (signal or failure), stop the other and drive it to
        // completion: its stop command is only processed while its future is polled.
        let (first, second) = match select(self.api, self.ops).await {
            Either::Left((res, ops)) => (res, join(ops_handle.stop(true), ops).await.1),
            Either::Right((res, api)) => (res, join(api_handle.stop(true), api).await.1),
        };
        first?;
        second?;
        Ok(())
    }
}
