//! Logging: a `tracing` subscriber (JSON lines in production, human-readable in development),
//! written off the request path, and a panic hook that stops the process.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::TelemetrySettings;

/// Builds a subscriber writing to `sink`. `RUST_LOG`, when set, overrides `filter`.
pub fn get_subscriber<W>(filter: &str, json: bool, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let base = Registry::default().with(env_filter);
    if json {
        Box::new(
            base.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(sink),
            ),
        )
    } else {
        Box::new(
            base.with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(sink),
            ),
        )
    }
}

/// Installs the global subscriber on a non-blocking stdout writer; keep the guard alive so
/// buffered lines are flushed at exit.
pub fn init(
    settings: &TelemetrySettings,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let subscriber = get_subscriber(&settings.level, settings.json, writer);
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(guard)
}

/// A panic anywhere must not leave the process half alive (a dead actor behind a live API):
/// log where it happened — not the payload, which could hold data — and exit non-zero so the
/// orchestrator restarts the container.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "panic: stopping the process");
        eprintln!("tkm: panic at {location}; exiting");
        std::process::exit(70);
    }));
}
