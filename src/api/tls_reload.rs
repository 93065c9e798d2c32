//! Keeps the mTLS material current without a restart: the files are checked every
//! `tls.reload_poll_secs` and reloaded when their content changed, and unconditionally on SIGHUP.
//! A reload that fails keeps the material in force and logs an error naming the setting. The
//! CRL's `nextUpdate` is published as a metric and logged as an error from a day before.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use super::tls::{TlsError, TlsState};
use super::tls_material::{unix_now, Inspection};
use crate::config::{CrlWhenExpired, TlsSettings};
use crate::metrics::Metrics;

/// How often the CRL's `nextUpdate` is compared with the clock.
const CRL_WATCH: Duration = Duration::from_secs(60);
/// From how long before `nextUpdate` an error is logged.
const CRL_WARN_SECS: i64 = 86_400;
/// Between two such errors.
const CRL_ALARM_EVERY_SECS: i64 = 3_600;

/// The running reloader; stops when dropped (with the application).
pub struct Reloader(tokio::task::JoinHandle<()>);

impl Drop for Reloader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the reloader from the material the acceptor was built with. The SIGHUP handler is
/// installed before this returns, so a SIGHUP sent afterwards never hits the default action.
pub fn spawn(
    state: Arc<TlsState>,
    first: &Inspection,
    settings: &TlsSettings,
    metrics: Metrics,
) -> Reloader {
    let mut book = Book {
        loaded: first.digest(),
        failed: None,
        crl_next_update: None,
        last_alarm: None,
        crl_file: state.files().crl.clone().unwrap_or_default(),
        policy: settings.crl_when_expired,
        metrics,
    };
    book.set_crl(first.crl_next_update());
    let poll = (settings.reload_poll_secs > 0).then(|| every(settings.reload_poll_secs));
    Reloader(actix_web::rt::spawn(run(state, book, poll, hangup())))
}

fn every(secs: u64) -> Interval {
    let period = Duration::from_secs(secs);
    let mut i = interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = std::convert::Infallible;

fn hangup() -> Option<Hangup> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: TLS files reload only by polling");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn run(
    state: Arc<TlsState>,
    mut book: Book,
    mut poll: Option<Interval>,
    mut hup: Option<Hangup>,
) {
    let mut crl_watch = every(CRL_WATCH.as_secs());
    book.crl_alarm();
    loop {
        let force = tokio::select! {
            _ = tick(&mut poll) => false,
            got = signal(&mut hup) => {
                if !got {
                    hup = None;
                    continue;
                }
                tracing::info!("SIGHUP: reloading the TLS material");
                true
            }
            _ = crl_watch.tick() => {
                book.crl_alarm();
                continue;
            }
        };
        let (s, loaded, failed) = (state.clone(), book.loaded, book.failed.clone());
        let checked = tokio::task::spawn_blocking(move || check(&s, force, loaded, failed)).await;
        match checked {
            Ok(outcome) => book.record(outcome, force),
            Err(e) => tracing::error!(error = %e, "the TLS reload check did not finish"),
        }
        book.crl_alarm();
    }
}

async fn tick(poll: &mut Option<Interval>) {
    match poll {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Waits for SIGHUP; false when the signal stream has ended.
async fn signal(hup: &mut Option<Hangup>) -> bool {
    match hup {
        #[cfg(unix)]
        Some(s) => s.recv().await.is_some(),
        #[cfg(not(unix))]
        Some(never) => match *never {},
        None => std::future::pending().await,
    }
}

/// A failure already reported, so polling does not repeat it.
#[derive(Clone, PartialEq, Eq)]
enum Failure {
    /// Files with this digest could not be put in force.
    Install([u8; 32]),
    /// The files could not be read or parsed, with this message.
    Read(String),
}

enum Outcome {
    Unchanged,
    Reloaded {
        generation: u64,
        digest: [u8; 32],
        crl_next_update: Option<i64>,
    },
    Failed(Failure, TlsError),
}

/// Reads the files and, when they changed (or `force`), builds and installs new material.
fn check(state: &TlsState, force: bool, loaded: [u8; 32], failed: Option<Failure>) -> Outcome {
    let inspection = match Inspection::read(state.files()) {
        Ok(i) => i,
        Err(e) => return Outcome::Failed(Failure::Read(e.to_string()), e),
    };
    let digest = inspection.digest();
    if !force && (digest == loaded || failed == Some(Failure::Install(digest))) {
        return Outcome::Unchanged;
    }
    match state.install(&inspection) {
        Ok(generation) => Outcome::Reloaded {
            generation,
            digest,
            crl_next_update: inspection.crl_next_update(),
        },
        Err(e) => Outcome::Failed(Failure::Install(digest), e),
    }
}

/// What the reloader knows between checks.
struct Book {
    loaded: [u8; 32],
    failed: Option<Failure>,
    crl_next_update: Option<i64>,
    last_alarm: Option<i64>,
    crl_file: std::path::PathBuf,
    policy: CrlWhenExpired,
    metrics: Metrics,
}

impl Book {
    fn record(&mut self, outcome: Outcome, force: bool) {
        match outcome {
            Outcome::Unchanged => {
                // Readable again, unchanged: a later failure is news again.
                if matches!(self.failed, Some(Failure::Read(_))) {
                    self.failed = None;
                }
            }
            Outcome::Reloaded {
                generation,
                digest,
                crl_next_update,
            } => {
                tracing::info!(
                    generation,
                    crl_next_update,
                    "TLS material reloaded: new connections use it, open ones keep theirs"
                );
                self.metrics.tls_reloads.with_label_values(&["ok"]).inc();
                self.loaded = digest;
                self.failed = None;
                self.set_crl(crl_next_update);
                self.last_alarm = None;
            }
            Outcome::Failed(failure, error) => {
                if force || self.failed.as_ref() != Some(&failure) {
                    tracing::error!(
                        error = %error,
                        "TLS material not reloaded; the material in force stays"
                    );
                    self.metrics
                        .tls_reloads
                        .with_label_values(&["failed"])
                        .inc();
                }
                self.failed = Some(failure);
            }
        }
    }

    fn set_crl(&mut self, next_update: Option<i64>) {
        self.crl_next_update = next_update;
        if let Some(n) = next_update {
            self.metrics.set_crl_next_update(n);
        }
    }

    /// An error from a day before the CRL's `nextUpdate`, then hourly.
    fn crl_alarm(&mut self) {
        let Some(next) = self.crl_next_update else {
            return;
        };
        let now = unix_now();
        let left = next.saturating_sub(now);
        if left >= CRL_WARN_SECS {
            self.last_alarm = None;
            return;
        }
        if self
            .last_alarm
            .is_some_and(|t| now.saturating_sub(t) < CRL_ALARM_EVERY_SECS)
        {
            return;
        }
        self.last_alarm = Some(now);
        if left > 0 {
            tracing::error!(
                crl_file = %self.crl_file.display(),
                next_update = next,
                hours_left = left / 3_600,
                "server.crl_file expires in less than a day: install a fresh CRL"
            );
        } else {
            let clients = match self.policy {
                CrlWhenExpired::Reject => "every client certificate is refused",
                CrlWhenExpired::Warn => "client certificates are accepted on the stale list",
            };
            tracing::error!(
                crl_file = %self.crl_file.display(),
                next_update = next,
                "server.crl_file is past its nextUpdate ({clients}, tls.crl_when_expired): \
                 install a fresh CRL"
            );
        }
    }
}
