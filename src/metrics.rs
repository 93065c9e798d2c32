//! Prometheus metrics (names fixed in `quality.md`), one registry per application.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The application's metrics. Labels never carry card data, hashes or tax codes.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `tkm_http_requests_total{route,status}`.
    pub http_requests: IntCounterVec,
    /// `tkm_http_request_duration_seconds{route}`.
    pub http_duration: HistogramVec,
    /// `tkm_actor_mailbox{actor}`: the work each actor has in flight.
    pub actor_mailbox: IntGaugeVec,
    /// `tkm_outbox_backlog`.
    pub outbox_backlog: IntGauge,
    /// `tkm_outbox_parked`: rows that failed `outbox.max_attempts` times and wait for an operator.
    pub outbox_parked: IntGauge,
    /// `tkm_outbox_publish_seconds`.
    pub outbox_publish: prometheus::Histogram,
    /// `tkm_messages_consumed_total{queue,outcome,reason}`.
    pub messages_consumed: IntCounterVec,
    /// `tkm_par_conflicts_total{source}`.
    pub par_conflicts: IntCounterVec,
    /// `tkm_transactions_total{outcome,reason}`: transaction records decided.
    pub transactions: IntCounterVec,
    /// `tkm_circuit_calls_total{circuit,kind,outcome}` (kind `par` or `bins`).
    pub circuit_calls: IntCounterVec,
    /// `tkm_par_lookups_total{circuit,lane}`: lookups asked, per lane (card, token).
    pub par_lookups: IntCounterVec,
    /// `tkm_par_lookups_pending{circuit,lane}`: lookups still owed, per lane.
    pub par_lookups_pending: IntGaugeVec,
    /// `tkm_circuit_call_seconds{circuit,kind}`.
    pub circuit_call_seconds: HistogramVec,
    /// `tkm_circuit_limiter_wait_seconds{circuit}`.
    pub circuit_limiter_wait: HistogramVec,
    /// `tkm_bin_ranges{circuit}`.
    pub bin_ranges: IntGaugeVec,
    /// `tkm_bin_refresh_timestamp_seconds{circuit}`: the last successful refresh.
    pub bin_refresh_timestamp: IntGaugeVec,
    /// `tkm_tls_reloads_total{outcome}` (`ok`, `failed`): reloads of the mTLS material.
    pub tls_reloads: IntCounterVec,
    /// `tkm_list_build_seconds{list}`: the last successful build's duration.
    pub list_build_seconds: prometheus::GaugeVec,
    /// `tkm_list_entries{list}`: lines of the generation served.
    pub list_entries: IntGaugeVec,
    /// `tkm_list_builds_total{list,outcome}` (`ok`, `failed`).
    pub list_builds: IntCounterVec,
    /// `tkm_circuit_paused_seconds{circuit}`: how long the circuit stays paused (a `429`'s
    /// `Retry-After` or an open breaker), 0 while it runs; read every 15 s.
    pub circuit_paused: IntGaugeVec,
    /// `tkm_db_pool_connections{state}` (`max`, `size`, `available`, `waiting`): read at scrape.
    db_pool: IntGaugeVec,
    /// `tkm_tls_crl_next_update_timestamp_seconds`: registered once a CRL is loaded, so it is
    /// absent (not 0) without `server.crl_file`.
    tls_crl_next_update: IntGauge,
    tls_crl_registered: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "tkm_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("tkm_http_request_duration_seconds", "HTTP request latency")
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
            &["route"],
        )?;
        let actor_mailbox = IntGaugeVec::new(
            Opts::new(
                "tkm_actor_mailbox",
                "Work each actor has in flight (requests being handled or waiting)",
            ),
            &["actor"],
        )?;
        let outbox_backlog = IntGauge::new("tkm_outbox_backlog", "Unpublished outbox rows")?;
        let outbox_parked = IntGauge::new(
            "tkm_outbox_parked",
            "Outbox rows parked after their last attempt (POST /admin/outbox/{id}/retry)",
        )?;
        let outbox_publish = prometheus::Histogram::with_opts(HistogramOpts::new(
            "tkm_outbox_publish_seconds",
            "Time from an outbox row's commit to its publisher confirm",
        ))?;
        let messages_consumed = IntCounterVec::new(
            Opts::new(
                "tkm_messages_consumed_total",
                "Messages consumed by queue, outcome and reason",
            ),
            &["queue", "outcome", "reason"],
        )?;
        let par_conflicts = IntCounterVec::new(
            Opts::new("tkm_par_conflicts_total", "Refused PAR claims by source"),
            &["source"],
        )?;
        let transactions = IntCounterVec::new(
            Opts::new(
                "tkm_transactions_total",
                "Transaction records decided, by outcome and reason",
            ),
            &["outcome", "reason"],
        )?;
        let par_lookups = IntCounterVec::new(
            Opts::new(
                "tkm_par_lookups_total",
                "PAR lookups asked, per circuit and lane",
            ),
            &["circuit", "lane"],
        )?;
        let par_lookups_pending = IntGaugeVec::new(
            Opts::new(
                "tkm_par_lookups_pending",
                "PAR lookups still owed, per circuit and lane",
            ),
            &["circuit", "lane"],
        )?;
        let circuit_calls = IntCounterVec::new(
            Opts::new(
                "tkm_circuit_calls_total",
                "Circuit calls by circuit, kind and outcome",
            ),
            &["circuit", "kind", "outcome"],
        )?;
        let circuit_call_seconds = HistogramVec::new(
            HistogramOpts::new("tkm_circuit_call_seconds", "Circuit call latency"),
            &["circuit", "kind"],
        )?;
        let circuit_limiter_wait = HistogramVec::new(
            HistogramOpts::new(
                "tkm_circuit_limiter_wait_seconds",
                "Time calls waited for the circuit's rate limiter",
            )
            .buckets(vec![
                0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0,
            ]),
            &["circuit"],
        )?;
        let bin_ranges = IntGaugeVec::new(
            Opts::new("tkm_bin_ranges", "Token BIN ranges stored per circuit"),
            &["circuit"],
        )?;
        let bin_refresh_timestamp = IntGaugeVec::new(
            Opts::new(
                "tkm_bin_refresh_timestamp_seconds",
                "Unix time of the last successful BIN range refresh",
            ),
            &["circuit"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "tkm_tls_reloads_total",
                "Reloads of the mTLS material by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(tls_reloads.clone()))?;
        let tls_crl_next_update = IntGauge::new(
            "tkm_tls_crl_next_update_timestamp_seconds",
            "Unix time of the nextUpdate of the client CRL in force (the earliest, if several)",
        )?;
        registry.register(Box::new(circuit_calls.clone()))?;
        registry.register(Box::new(par_lookups.clone()))?;
        registry.register(Box::new(par_lookups_pending.clone()))?;
        registry.register(Box::new(circuit_call_seconds.clone()))?;
        registry.register(Box::new(circuit_limiter_wait.clone()))?;
        registry.register(Box::new(bin_ranges.clone()))?;
        registry.register(Box::new(bin_refresh_timestamp.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(actor_mailbox.clone()))?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        registry.register(Box::new(outbox_parked.clone()))?;
        registry.register(Box::new(outbox_publish.clone()))?;
        registry.register(Box::new(messages_consumed.clone()))?;
        registry.register(Box::new(par_conflicts.clone()))?;
        registry.register(Box::new(transactions.clone()))?;
        let list_build_seconds = prometheus::GaugeVec::new(
            Opts::new(
                "tkm_list_build_seconds",
                "Duration of the last successful build of each published list",
            ),
            &["list"],
        )?;
        let list_entries = IntGaugeVec::new(
            Opts::new(
                "tkm_list_entries",
                "Lines of the generation of each published list that is served",
            ),
            &["list"],
        )?;
        registry.register(Box::new(list_build_seconds.clone()))?;
        registry.register(Box::new(list_entries.clone()))?;
        let list_builds = IntCounterVec::new(
            Opts::new(
                "tkm_list_builds_total",
                "Builds of each published list by outcome",
            ),
            &["list", "outcome"],
        )?;
        let circuit_paused = IntGaugeVec::new(
            Opts::new(
                "tkm_circuit_paused_seconds",
                "Seconds each circuit stays paused (429 or open breaker), 0 while it runs",
            ),
            &["circuit"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "tkm_db_pool_connections",
                "Database pool connections by state (max, size, available, waiting callers)",
            ),
            &["state"],
        )?;
        registry.register(Box::new(list_builds.clone()))?;
        registry.register(Box::new(circuit_paused.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            actor_mailbox,
            outbox_backlog,
            outbox_parked,
            outbox_publish,
            messages_consumed,
            par_conflicts,
            transactions,
            circuit_calls,
            par_lookups,
            par_lookups_pending,
            circuit_call_seconds,
            circuit_limiter_wait,
            bin_ranges,
            bin_refresh_timestamp,
            tls_reloads,
            list_build_seconds,
            list_entries,
            list_builds,
            circuit_paused,
            db_pool,
            tls_crl_next_update,
            tls_crl_registered: Default::default(),
        })
    }

    /// Sets `tkm_tls_crl_next_update_timestamp_seconds`, registering it the first time.
    pub fn set_crl_next_update(&self, unix_secs: i64) {
        use std::sync::atomic::Ordering;
        self.tls_crl_next_update.set(unix_secs);
        if !self.tls_crl_registered.swap(true, Ordering::AcqRel) {
            if let Err(e) = self
                .registry
                .register(Box::new(self.tls_crl_next_update.clone()))
            {
                tracing::error!(error = ?e, "cannot register the CRL metric");
            }
        }
    }

    /// Sets `tkm_db_pool_connections` (before a scrape).
    pub fn set_db_pool(&self, max: usize, size: usize, available: usize, waiting: usize) {
        for (state, n) in [
            ("max", max),
            ("size", size),
            ("available", available),
            ("waiting", waiting),
        ] {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.db_pool.with_label_values(&[state]).set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = ?e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Whether `TKM_PROFILE` is set: the transaction matcher then prints each batch's phases on
/// stderr (`scripts/bench-transactions.sh`, docs/PERFORMANCE.md). Read once.
pub fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TKM_PROFILE").is_some())
}

#[cfg(test)]
mod tests {
    use prometheus::core::Collector;

    use super::Metrics;

    /// Every metric's name, from the collectors themselves.
    fn names(m: &Metrics) -> std::collections::BTreeSet<String> {
        let all: Vec<&dyn Collector> = vec![
            &m.http_requests,
            &m.http_duration,
            &m.actor_mailbox,
            &m.outbox_backlog,
            &m.outbox_parked,
            &m.outbox_publish,
            &m.messages_consumed,
            &m.par_conflicts,
            &m.transactions,
            &m.circuit_calls,
            &m.par_lookups,
            &m.par_lookups_pending,
            &m.circuit_call_seconds,
            &m.circuit_limiter_wait,
            &m.bin_ranges,
            &m.bin_refresh_timestamp,
            &m.tls_reloads,
            &m.list_build_seconds,
            &m.list_entries,
            &m.list_builds,
            &m.circuit_paused,
            &m.db_pool,
            &m.tls_crl_next_update,
        ];
        all.iter()
            .flat_map(|c| c.desc())
            .map(|d| d.fq_name.clone())
            .collect()
    }

    /// The `tkm_…` names a text refers to (histogram series named by their family).
    fn referenced(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("tkm_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            out.insert(family.to_owned());
        }
        out
    }

    #[test]
    fn the_alert_rules_and_the_dashboard_name_only_metrics_tkm_exports() {
        let m = Metrics::new().unwrap();
        let known = names(&m);
        for (file, text) in [
            (
                "tkm-alerts.yml",
                include_str!("../deploy/prometheus/tkm-alerts.yml"),
            ),
            (
                "tkm-dashboard.json",
                include_str!("../deploy/grafana/tkm-dashboard.json"),
            ),
        ] {
            let unknown: Vec<_> = referenced(text).difference(&known).cloned().collect();
            assert!(
                unknown.is_empty(),
                "{file} names unknown metrics: {unknown:?}"
            );
        }
    }

    #[test]
    fn the_dashboard_shows_every_metric() {
        let m = Metrics::new().unwrap();
        let shown = referenced(include_str!("../deploy/grafana/tkm-dashboard.json"));
        let missing: Vec<_> = names(&m).difference(&shown).cloned().collect();
        assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
    }
}
