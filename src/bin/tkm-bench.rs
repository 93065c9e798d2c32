//! `tkm-bench`: end-to-end load generators against a running tkm (used by `scripts/bench-*.sh`
//! and the drills in `scripts/drills/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generators for tkm.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// P3: publish PGP-encrypted card events and time them until every card update is out.
    CardEvents {
        /// Number of events (one new card each).
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Cards per citizen.
        #[arg(long, default_value_t = 4)]
        cards_per_citizen: usize,
        /// RabbitMQ URL.
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp: String,
        /// The database of the tkm under test (consent is seeded there).
        #[arg(long)]
        database: String,
        /// Queue tkm consumes card events from.
        #[arg(long, default_value = "tkm-read-token-par-pan")]
        events_queue: String,
        /// Queue the card updates reach.
        #[arg(long, default_value = "tkm-write-update-token")]
        updates_queue: String,
        /// tkm's armored public key.
        #[arg(long)]
        public_key: PathBuf,
        /// tkm's armored secret key, to measure the raw decrypt rate (the limit).
        #[arg(long)]
        secret_key: Option<PathBuf>,
        /// Only publish (a drill checks the outcome itself).
        #[arg(long)]
        publish_only: bool,
        /// Card number prefix (distinct per run).
        #[arg(long, default_value_t = 1)]
        prefix: u64,
        /// Cards of the three circuits without PAR (P6 seeding) instead of VISA cards with PAR.
        #[arg(long)]
        circuit_mix: bool,
        /// Do not seed the citizens' consent (the caller gives it after the cards are in).
        #[arg(long)]
        no_consent: bool,
        /// Each event also carries one clear token PAN.
        #[arg(long)]
        with_token: bool,
    },
    /// Issue 17: the PAR queue's statements against a database loaded by
    /// `scripts/bench-par-queue.sh`; prints a JSON report.
    ParQueue {
        /// The loaded database.
        #[arg(long)]
        database: String,
        /// Rounds of each measurement.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// Lookups per lease.
        #[arg(long, default_value_t = 100)]
        page: i64,
        /// Candidates per sweep step.
        #[arg(long, default_value_t = 5000)]
        sweep_page: i64,
    },
    /// P4: the snapshot's load and size, the csv limit, tkm's reader and the matching core
    /// alone, over a database and file made by `scripts/bench-transactions.sh`; prints JSON.
    MatchCore {
        /// The loaded database.
        #[arg(long)]
        database: String,
        /// The TRNLOG file (plain).
        #[arg(long)]
        file: PathBuf,
        /// Its ABI.
        #[arg(long, default_value = "99999")]
        abi: String,
        /// The salt.
        #[arg(long, env = "TKM__HASHING__SALT")]
        salt: String,
    },
    /// P5 limit: prints the `COPY … TO STDOUT` statement of a list (the shell pipeline
    /// `psql -c "$(tkm-bench list-sql hpans)" | zip | sha256sum` runs the same query).
    ListSql {
        /// hpans, pars, bin-ranges or known-hashes.
        kind: String,
    },
    /// P6 limit: lookups per second one core can protect and read, per circuit protocol (client
    /// and circuit side together, without HTTP).
    ProtocolRate {
        /// Seconds per circuit.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
}

/// Runs a measurement on a current-thread runtime.
fn current_thread<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(work))
}

/// Prints a report as one JSON line (or the error), as the benchmark scripts read it.
fn print_report<T: serde::Serialize>(result: anyhow::Result<T>) -> ExitCode {
    match result {
        Ok(report) => {
            println!("{}", serde_json::json!(report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tkm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    if let Command::ListSql { kind } = &command {
        return match tkm::domain::lists::ListKind::parse(kind) {
            Some(kind) => {
                println!("{}", tkm::db::lists::copy_statement(kind));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("tkm-bench: expected hpans, pars, bin-ranges or known-hashes");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::ProtocolRate { seconds } = command {
        return print_report(tkm::bench::protocol_rate::run(
            std::time::Duration::from_secs_f64(seconds),
        ));
    }
    if let Command::MatchCore {
        database,
        file,
        abi,
        salt,
    } = command
    {
        let plan = tkm::bench::transactions::Plan {
            database,
            file,
            abi,
            salt,
        };
        return print_report(current_thread(tkm::bench::transactions::run(&plan)));
    }
    if let Command::ParQueue {
        database,
        rounds,
        page,
        sweep_page,
    } = command
    {
        let plan = tkm::bench::par_queue::Plan {
            database,
            rounds,
            page,
            sweep_page,
        };
        return print_report(current_thread(tkm::bench::par_queue::run(&plan)));
    }
    let Command::CardEvents {
        events,
        cards_per_citizen,
        amqp,
        database,
        events_queue,
        updates_queue,
        public_key,
        secret_key,
        publish_only,
        prefix,
        circuit_mix,
        no_consent,
        with_token,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    let run = || -> anyhow::Result<()> {
        let plan = tkm::bench::card_events::Plan {
            events,
            cards_per_citizen,
            amqp,
            database,
            events_queue,
            updates_queue,
            public_key: std::fs::read(&public_key)?,
            secret_key: secret_key
                .map(|p| std::fs::read(p).map(|k| (k, None)))
                .transpose()?,
            publish_only,
            pan_prefix: prefix,
            seed_consent: !no_consent,
            shape: match (circuit_mix, with_token) {
                (true, _) => tkm::bench::card_events::Shape::CircuitsWithoutPar,
                (false, true) => tkm::bench::card_events::Shape::WithParAndToken,
                (false, false) => tkm::bench::card_events::Shape::WithPar,
            },
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let report = rt.block_on(tkm::bench::card_events::run(plan, |m| {
            eprintln!("tkm-bench: {m}")
        }))?;
        println!(
            "{}",
            serde_json::json!({
                "events": report.events,
                "seconds": report.seconds,
                "events_per_second": report.rate,
                "publish_seconds": report.publish_seconds,
                "decrypt_per_second_one_core": report.decrypt_rate_one_core,
            })
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tkm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
