//! `Application::build`: migrations, pool, keys, actors in dependency order (each on its own
//! arbiter, supervised), the RabbitMQ bridge, the mTLS API and the ops listener. Tests build the
//! same application on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter, Supervisor};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use deadpool_postgres::Pool;

use crate::actors::broker::{BrokerStatus, Shutdown};
use crate::actors::card_registry::CardRegistry;
use crate::actors::circuit_poller::CircuitPoller;
use crate::actors::consent_registry::{ConsentRegistry, RegistryLimits};
use crate::actors::inflight::InFlight;
use crate::actors::job_runner::{Executors, JobRunner};
use crate::actors::list_builder::{Builder, JobsAt, ListBuilder};
use crate::actors::par_resolver::ParResolver;
use crate::actors::token_list_ingestor::TokenListIngestor;
use crate::actors::transaction_matcher::TransactionMatcher;
use crate::api;
use crate::api::identity::ClientRegistry;
use crate::api::ops::Readiness;
use crate::api::state::{
    AdminDeps, ApiState, BrokerHandle, HandlerTimeout, JsonLimit, ListsHandle, PgpInput,
};
use crate::bridge::consumer::ConsumerDeps;
use crate::bridge::relay::RelayDeps;
use crate::bridge::Bridge;
use crate::config::Settings;
use crate::crypto::pgp::PgpKey;
use crate::db;
use crate::domain::cards::Limits;
use crate::metrics::Metrics;

/// A built, bound application.
pub struct Application {
    api_port: u16,
    ops_port: u16,
    api: Server,
    ops: Server,
    pool: Pool,
    consent: Addr<ConsentRegistry>,
    cards: Addr<CardRegistry>,
    bridge: Addr<Bridge>,
    broker: Arc<BrokerStatus>,
    circuits: crate::startup_circuits::CircuitsSide,
    shutdown_timeout: Duration,
    _arbiters: Arbiters,
    _tls_reloader: api::tls_reload::Reloader,
}

/// The application's own arbiters, stopped when the application goes away (after a graceful
/// shutdown, or when a test's runtime drops it), so their connections close with them.
struct Arbiters(Vec<Arbiter>);

impl Drop for Arbiters {
    fn drop(&mut self) {
        for a in &self.0 {
            a.stop();
        }
    }
}

/// Starts the ListBuilder on its own arbiter, its storage directory created.
fn start_list_builder(
    settings: &Settings,
    pool: &Pool,
    metrics: &Metrics,
    arbiter: &Arbiter,
) -> anyhow::Result<Addr<ListBuilder>> {
    let dir = &settings.storage.dir;
    std::fs::create_dir_all(dir.join("lists")).with_context(|| {
        format!(
            "cannot create storage.dir {}: create it, or point storage.dir at a writable volume",
            dir.display()
        )
    })?;
    let builder = Builder::new(pool.clone(), dir, settings.lists.clone());
    let build_at = settings.lists.build_time()?;
    let salt = settings.salt()?;
    let (pool, metrics) = (pool.clone(), metrics.clone());
    Ok(Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
        ListBuilder::new(builder, pool, metrics, salt, build_at)
    }))
}

impl Application {
    /// Builds everything and binds both listeners (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Every live circuit credential read and parsed before anything else happens.
        let live_circuits = crate::circuits::spec::live_specs(&settings.circuits)?;
        db::run_migrations(&settings.database).await?;
        let pool = db::build_pool(&settings.database)?;
        let pg = db::pg_config(&settings.database)?;
        let metrics = Metrics::new().context("cannot register metrics")?;
        let hasher = crate::crypto::Hasher::from_settings(&settings)?;
        let ring = Arc::new(crate::crypto::KeyRing::from_settings(&settings)?);
        let pgp = PgpKey::load(&settings.pgp).context("cannot load pgp.private_key_file")?;
        tracing::info!(fingerprint = pgp.fingerprint(), "PGP key loaded");

        // Owns the stored jobs and runs them (and beats for this process's jobs).
        let jobs_arbiter = Arbiter::new();
        let jobs_pool = pool.clone();
        let jobs = Supervisor::start_in_arbiter(&jobs_arbiter.handle(), move |_| {
            JobRunner::new(jobs_pool)
        });

        let consent_arbiter = Arbiter::new();
        let limits = RegistryLimits {
            cache_capacity: settings.consent.cache_capacity,
            cache_ttl: Duration::from_secs(settings.consent.cache_ttl_secs),
            mailbox_capacity: settings.consent.mailbox_capacity,
        };
        let (consent_pool, consent_pg) = (pool.clone(), pg.clone());
        let consent_bound = InFlight::new(
            settings.consent.mailbox_capacity,
            metrics
                .actor_mailbox
                .with_label_values(&[ConsentRegistry::NAME]),
        );
        let consent = Supervisor::start_in_arbiter(&consent_arbiter.handle(), move |_| {
            ConsentRegistry::new(consent_pool, consent_pg, limits, consent_bound.clone())
        });

        let relay_wakeup = Arc::new(tokio::sync::Notify::new());
        let cards_arbiter = Arbiter::new();
        let card_limits = Limits {
            max_learnt_tokens_per_par: settings.cards.max_learnt_tokens_per_par,
        };
        // Woken by consent changes that queued PAR lookups (the resolver listens).
        let resolver_wakeup = Arc::new(tokio::sync::Notify::new());
        let (cards_pool, cards_ring, cards_metrics, wakeup, card_mailbox) = (
            pool.clone(),
            ring.clone(),
            metrics.clone(),
            relay_wakeup.clone(),
            settings.cards.mailbox_capacity,
        );
        let resolver_wake = resolver_wakeup.clone();
        let dedup_retention =
            Duration::from_secs(u64::from(settings.rabbitmq.dedup_retention_hours) * 3600);
        let ring_for_circuits = ring.clone();
        let cards = Supervisor::start_in_arbiter(&cards_arbiter.handle(), move |_| {
            CardRegistry::new(
                cards_pool,
                cards_ring,
                card_limits,
                cards_metrics,
                card_mailbox,
                crate::actors::card_registry::Wakeups {
                    relay: wakeup,
                    resolver: resolver_wake,
                },
                dedup_retention,
            )
        });

        let mut circuits = crate::startup_circuits::start(
            &settings,
            live_circuits,
            crate::startup_circuits::CircuitDeps {
                pool: &pool,
                ring: &ring_for_circuits,
                registry: &cards,
                metrics: &metrics,
                wakeup: resolver_wakeup,
                jobs: &jobs,
            },
        )
        .await?;
        let lists_arbiter = Arbiter::new();
        let lists = start_list_builder(&settings, &pool, &metrics, &lists_arbiter)?;
        jobs.do_send(Executors {
            pollers: circuits.pollers.clone(),
            resolver: circuits.resolver.clone(),
            lists: lists.clone(),
            retention: crate::actors::job_runner::Retention {
                ciphertext_days: settings.vault.inactive_retention_days,
                outcome_days: settings.matching.retention_days,
                zone: settings.matching.zone()?,
            },
        });
        lists.do_send(JobsAt(jobs.clone().recipient()));
        let uploads = crate::startup_uploads::start(
            &settings,
            &pool,
            &cards,
            &pgp,
            &hasher,
            &metrics,
            &lists_arbiter.handle(),
        )
        .await?;

        // The bridge starts once the actors its consumers feed run.
        let broker = Arc::new(BrokerStatus::default());
        let consumers = Arc::new(ConsumerDeps {
            settings: settings.rabbitmq.clone(),
            registry: cards.clone(),
            pgp: pgp.clone(),
            hasher: hasher.clone(),
            metrics: metrics.clone(),
            pool: pool.clone(),
            ring: ring.clone(),
            matcher: uploads.matcher.clone(),
        });
        let relay = Arc::new(RelayDeps {
            settings: settings.rabbitmq.clone(),
            pool: pool.clone(),
            pg,
            registry: cards.clone(),
            metrics: metrics.clone(),
            wakeup: relay_wakeup.clone(),
            policy: (&settings.outbox).into(),
            parked: Default::default(),
        });
        let bridge_arbiter = Arbiter::new();
        let status = broker.clone();
        let bridge = Supervisor::start_in_arbiter(&bridge_arbiter.handle(), move |_| {
            Bridge::new(consumers, relay, status)
        });

        // Drills and tests on a development installation prove that a panic ends the process.
        if settings.dev {
            if let Some(ms) = std::env::var("TKM_TEST_PANIC_AFTER_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                let target = cards.clone();
                actix_web::rt::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    target.do_send(crate::actors::Crash);
                });
            }
        }
        let readiness = Readiness {
            pool: pool.clone(),
            actors: vec![
                (ConsentRegistry::NAME, consent.clone().recipient()),
                (CardRegistry::NAME, cards.clone().recipient()),
                (Bridge::NAME, bridge.clone().recipient()),
                (ParResolver::NAME, circuits.resolver.clone().recipient()),
                (JobRunner::NAME, jobs.clone().recipient()),
                (ListBuilder::NAME, lists.clone().recipient()),
                (
                    TokenListIngestor::NAME,
                    uploads.token_lists.clone().recipient(),
                ),
                (
                    TransactionMatcher::NAME,
                    uploads.matcher.clone().recipient(),
                ),
            ],
            broker: broker.clone(),
        };
        let mut status_actors = readiness.actors.clone();
        for (circuit, poller) in &circuits.pollers {
            status_actors.push((CircuitPoller::name(*circuit), poller.clone().recipient()));
        }
        let state = ApiState {
            consent: consent.clone(),
            cards: cards.clone(),
            admin: AdminDeps {
                jobs: jobs.clone(),
                pollers: circuits.pollers.clone(),
                resolver: circuits.resolver.clone(),
                actors: status_actors,
                broker: BrokerHandle {
                    status: broker.clone(),
                    replay: bridge.clone().recipient(),
                    dead_letters: bridge.clone().recipient(),
                    parked: bridge.clone().recipient(),
                    retry: bridge.clone().recipient(),
                    outbox: bridge.clone().recipient(),
                },
                circuits_mode: settings.circuits.mode,
            },
            lists: ListsHandle {
                builder: lists.clone(),
                public_url: settings.server.public_url.trim_end_matches('/').to_owned(),
            },
            token_lists: uploads.token_lists_handle,
            transactions: uploads.transactions_handle,
            input: PgpInput { pgp, hasher },
            timeout: HandlerTimeout(Duration::from_millis(settings.server.handler_timeout_ms)),
            json_limit: JsonLimit(settings.server.json_limit_bytes),
        };
        let (api_port, api, tls_reloader) = api_server(&settings, &metrics, state)?;
        let s = &settings.server;
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
        .disable_signals()
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
            cards,
            bridge,
            broker,
            _arbiters: Arbiters(
                [
                    jobs_arbiter,
                    consent_arbiter,
                    cards_arbiter,
                    bridge_arbiter,
                    lists_arbiter,
                ]
                .into_iter()
                .chain(std::mem::take(&mut circuits.arbiters))
                .collect(),
            ),
            circuits,
            shutdown_timeout: Duration::from_millis(settings.rabbitmq.shutdown_timeout_ms),
            _tls_reloader: tls_reloader,
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

    /// The card registry.
    pub fn card_registry(&self) -> &Addr<CardRegistry> {
        &self.cards
    }

    /// The circuit simulator's base URL (simulator mode).
    pub fn simulator_url(&self) -> Option<String> {
        self.circuits.simulator.as_ref().map(|s| s.base_url())
    }

    /// The PAR resolver.
    pub fn par_resolver(&self) -> &Addr<ParResolver> {
        &self.circuits.resolver
    }

    /// The broker connection state.
    pub fn broker(&self) -> Arc<BrokerStatus> {
        self.broker.clone()
    }

    /// Serves until SIGTERM/SIGINT: then stops accepting connections, lets in-flight requests
    /// finish, stops consuming and waits for in-flight batches and publisher confirms (bounded),
    /// and returns. If a listener fails on its own, everything stops too.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        use futures_util::future::join;
        let (api_handle, ops_handle) = (self.api.handle(), self.ops.handle());
        let (mut api, mut ops) = (self.api, self.ops);
        let bridge = self.bridge.clone();
        let stop_bridge = || {
            bridge.send(Shutdown {
                timeout: self.shutdown_timeout,
            })
        };
        // A server's stop is only processed while its future is polled: keep driving both.
        let (api_res, ops_res) = tokio::select! {
            _ = termination() => {
                tracing::info!("termination signal: shutting down");
                let stops = join(api_handle.stop(true), ops_handle.stop(true));
                let ((_, servers), _) =
                    join(join(stops, join(&mut api, &mut ops)), stop_bridge()).await;
                servers
            }
            res = &mut api => {
                let _ = join(join(ops_handle.stop(true), &mut ops), stop_bridge()).await;
                (res, Ok(()))
            }
            res = &mut ops => {
                let _ = join(join(api_handle.stop(true), &mut api), stop_bridge()).await;
                (Ok(()), res)
            }
        };
        if let Some(simulator) = &self.circuits.simulator {
            simulator.stop().await;
        }
        api_res?;
        ops_res?;
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C where those signals cannot be installed).
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn api_server(
    settings: &Settings,
    metrics: &Metrics,
    state: ApiState,
) -> anyhow::Result<(u16, Server, api::tls_reload::Reloader)> {
    let s = &settings.server;
    let clients = Arc::new(ClientRegistry::new(&settings.clients));
    let workers = if s.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        s.workers
    };
    let listener =
        TcpListener::bind(s.bind).with_context(|| format!("cannot bind server.bind {}", s.bind))?;
    let port = listener.local_addr()?.port();
    let (acceptor, tls, loaded) =
        api::tls::acceptor(s, &settings.tls).context("cannot set up TLS")?;
    let reloader = api::tls_reload::spawn(tls, &loaded, &settings.tls, metrics.clone());
    let m = metrics.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(api::middleware::observe))
            .app_data(web::Data::new(m.clone()))
            .configure(|cfg| state.register(cfg))
            .configure(api::routes)
    })
    .on_connect(api::tls::on_connect(clients))
    .workers(workers)
    .disable_signals()
    .keep_alive(Duration::from_secs(s.keep_alive_secs))
    .shutdown_timeout(s.shutdown_timeout_secs)
    .max_connections(s.max_connections)
    .listen_openssl(listener, acceptor)?
    .run();
    Ok((port, server, reloader))
}
