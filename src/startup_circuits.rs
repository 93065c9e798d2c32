//! Start-up of the circuits side: the simulator (simulator mode), one CircuitPoller per enabled
//! circuit, and the ParResolver with one lane per enabled circuit on an arbiter of its own.
//!
//! The simulator exists only in builds with the cargo feature `simulator`; without it, simulator
//! mode is refused (configuration validation, and here again).

use std::sync::Arc;

use actix::{Addr, Arbiter, Supervisor};
use anyhow::Context;
use deadpool_postgres::Pool;

use crate::actors::card_registry::CardRegistry;
use crate::actors::circuit_poller::CircuitPoller;
use crate::actors::par_resolver::lane::Lane;
use crate::actors::par_resolver::worker::Deps;
use crate::actors::par_resolver::ParResolver;
#[cfg(feature = "simulator")]
use crate::circuits::simulator::{Simulator, SimulatorKeys};
use crate::circuits::spec::{live_specs, ClientSpec};
use crate::config::{CircuitsMode, Settings};
use crate::crypto::KeyRing;
use crate::domain::Circuit;
use crate::metrics::Metrics;

/// The in-process simulator of simulator mode.
#[cfg(feature = "simulator")]
pub type RunningSimulator = Simulator;
/// A build without the simulator has none: this type has no value, so `simulator` is `None`.
#[cfg(not(feature = "simulator"))]
pub type RunningSimulator = NoSimulator;

/// Stands for the simulator in a build without it; no value of it exists.
#[cfg(not(feature = "simulator"))]
#[derive(Debug)]
pub enum NoSimulator {}

#[cfg(not(feature = "simulator"))]
impl NoSimulator {
    /// As `Simulator::base_url` (never called: there is no value).
    pub fn base_url(&self) -> String {
        match *self {}
    }

    /// As `Simulator::stop` (never called: there is no value).
    pub async fn stop(&self) {
        match *self {}
    }
}

/// The running circuits side.
pub struct CircuitsSide {
    /// The in-process simulator (simulator mode).
    pub simulator: Option<RunningSimulator>,
    /// One poller per enabled circuit.
    pub pollers: Vec<(Circuit, Addr<CircuitPoller>)>,
    /// The resolver.
    pub resolver: Addr<ParResolver>,
    /// Their arbiters.
    pub arbiters: Vec<Arbiter>,
}

/// The client specs of the enabled circuits (`live`: those loaded at start-up), and the
/// simulator when it answers them.
async fn specs(
    settings: &Settings,
    live: Option<Vec<ClientSpec>>,
) -> anyhow::Result<(Vec<ClientSpec>, Option<RunningSimulator>)> {
    let c = &settings.circuits;
    match c.mode {
        CircuitsMode::Live => {
            let specs = match live {
                Some(specs) => specs,
                None => live_specs(c)?.unwrap_or_default(),
            };
            Ok((specs, None))
        }
        #[cfg(not(feature = "simulator"))]
        CircuitsMode::Simulator => {
            anyhow::bail!("circuits.mode: {}", CircuitsMode::SIMULATOR_NOT_BUILT)
        }
        #[cfg(feature = "simulator")]
        CircuitsMode::Simulator => {
            let keys = match &c.simulator.keys_dir {
                Some(dir) => SimulatorKeys::load_or_generate(dir)
                    .context("circuits.simulator.keys_dir: cannot load or generate keys")?,
                None => SimulatorKeys::generate().context("cannot generate simulator keys")?,
            };
            let (base, simulator) = match &c.simulator.attach_url {
                Some(url) => {
                    // Another process runs it (a replica, `tkm simulate-circuits`).
                    let base = url.as_str().trim_end_matches('/').to_owned();
                    tracing::info!(url = %base, "using the circuit simulator another process runs");
                    (base, None)
                }
                None => {
                    let simulator = Simulator::start(&c.simulator, keys.clone())
                        .await
                        .context("cannot start the circuit simulator (circuits.simulator.bind)")?;
                    let base = simulator.base_url();
                    tracing::info!(url = %base, "circuit simulator started (circuits.mode = simulator)");
                    (base, Some(simulator))
                }
            };
            let specs = Circuit::ALL
                .into_iter()
                .filter(|circuit| c.get(*circuit).enabled)
                .map(|circuit| keys.client_spec(c, circuit, &base))
                .collect::<Result<Vec<_>, _>>()
                .context("cannot build simulator client specs")?;
            Ok((specs, simulator))
        }
    }
}

/// What the circuits' actors are built with.
pub struct CircuitDeps<'a> {
    /// The database.
    pub pool: &'a Pool,
    /// Unseals the PANs to ask about.
    pub ring: &'a Arc<KeyRing>,
    /// Applies found PARs.
    pub registry: &'a Addr<CardRegistry>,
    /// Counters.
    pub metrics: &'a Metrics,
    /// Woken when lookups were queued.
    pub wakeup: Arc<tokio::sync::Notify>,
    /// Runs the resolver's cycles as jobs.
    pub jobs: &'a Addr<crate::actors::job_runner::JobRunner>,
}

/// Starts the simulator, pollers and resolver; `live`: the specs [`live_specs`] loaded at
/// start-up (`None`: loaded here).
pub async fn start(
    settings: &Settings,
    live: Option<Vec<ClientSpec>>,
    deps: CircuitDeps<'_>,
) -> anyhow::Result<CircuitsSide> {
    let CircuitDeps {
        pool,
        ring,
        registry,
        metrics,
        wakeup,
        jobs,
    } = deps;
    let (specs, simulator) = specs(settings, live).await?;
    let pollers_arbiter = Arbiter::new();
    let mut arbiters = Vec::new();
    let mut pollers = Vec::new();
    let mut lanes = Vec::new();
    for spec in specs {
        let circuit = spec.circuit;
        let s = settings.circuits.get(circuit);
        let refresh_at = s
            .refresh_time()
            .with_context(|| format!("circuits.{circuit}.bin_refresh_at"))?;
        let (poller_spec, pool_p, metrics_p, bins) = (
            spec.clone(),
            pool.clone(),
            metrics.clone(),
            settings.bin_refresh.clone(),
        );
        let poller = Supervisor::start_in_arbiter(&pollers_arbiter.handle(), move |_| {
            CircuitPoller::new(poller_spec, pool_p, metrics_p, bins, refresh_at)
        });
        pollers.push((circuit, poller));

        let deps = Deps {
            circuit,
            pool: pool.clone(),
            ring: ring.clone(),
            registry: registry.clone(),
            settings: settings.par_resolver.clone(),
            metrics: metrics.clone(),
        };
        // This replica's share of the contract rate (the whole of it when alone).
        let (rate, burst) =
            crate::config::replica_share(s.rate_per_second, s.burst, settings.circuits.replicas);
        let share = s.token_share;
        let lane_arbiter = Arbiter::new();
        let lane = Supervisor::start_in_arbiter(&lane_arbiter.handle(), move |_| {
            Lane::new(deps, spec, rate, burst, share)
        });
        arbiters.push(lane_arbiter);
        lanes.push((circuit, lane));
    }
    let (pool_r, settings_r, jobs) = (pool.clone(), settings.par_resolver.clone(), jobs.clone());
    let metrics_r = metrics.clone();
    let resolver = Supervisor::start_in_arbiter(&pollers_arbiter.handle(), move |_| {
        ParResolver::new(pool_r, lanes, settings_r, wakeup, jobs, metrics_r)
    });
    arbiters.push(pollers_arbiter);
    Ok(CircuitsSide {
        simulator,
        pollers,
        resolver,
        arbiters,
    })
}
