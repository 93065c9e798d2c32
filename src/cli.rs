//! The command line (`tkm serve|migrate|check-config|keys|pgp|cert-identity|simulate-circuits`);
//! `simulate-circuits` exists only in builds with the cargo feature `simulator`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;

/// tkm — Token Manager for tokenized payment cards.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file layered over the embedded defaults (also `TKM_CONFIG`).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrates first).
    Serve,
    /// Apply the SQL migrations and exit.
    Migrate,
    /// Load and validate the configuration, print it with secrets masked.
    CheckConfig,
    /// Vault keys.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// tkm's OpenPGP key pair.
    Pgp {
        /// What to do with PGP keys.
        #[command(subcommand)]
        action: PgpAction,
    },
    /// Print a certificate's SHA-256 fingerprint, subject and issuer as `[[clients]]` matches them.
    CertIdentity {
        /// PEM certificate file.
        file: PathBuf,
    },
    /// Run the circuit simulator alone (Visa, Mastercard, Amex over TLS) until Ctrl-C/SIGTERM.
    #[cfg(feature = "simulator")]
    SimulateCircuits {
        /// Listener (default: `circuits.simulator.bind`).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Where the simulator's keys and credentials are kept, made on first run (default:
        /// `circuits.simulator.keys_dir`, else `.dev/simulator`).
        #[arg(long)]
        keys_dir: Option<PathBuf>,
    },
    /// Encrypt card event JSON lines from stdin to tkm's PGP key and publish them to the card
    /// events queue (local trials, re-injecting an issuer's event).
    PublishCardEvent,
    /// Build the published lists now, each as a new generation (what the daily build does).
    BuildLists {
        /// Only these lists (comma-separated: hpans, pars, bin-ranges, known-hashes).
        #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
        kinds: Vec<crate::domain::lists::ListKind>,
    },
    /// Ingest acquirers' token lists (PGP-encrypted TKM.<ABI>.TKNLST.… files) with the checks
    /// and processing of an upload; exits non-zero when a file is refused or rejected.
    IngestTokenList {
        /// The files, processed in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Match acquirers' transaction files (CSTAR.<ABI>.TRNLOG.….csv[.pgp]) as the server does:
    /// name and size checks, a progress bar with rows/s, a report per file; the exit code is
    /// non-zero when a file is refused or rejected. Run it again to resume an interrupted file.
    IngestTransactions {
        /// The files, processed in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn parse_kind(raw: &str) -> Result<crate::domain::lists::ListKind, String> {
    crate::domain::lists::ListKind::parse(raw)
        .ok_or_else(|| "expected hpans, pars, bin-ranges or known-hashes".to_owned())
}

/// `tkm keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new 256-bit vault key (base64) in FILE, readable by the owner only.
    Generate {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Re-encrypt every stored PAN, token PAN and dead letter under `vault.active_key` (online,
    /// resumable). Make the new key active on every running replica first; once this ends, the
    /// old key can leave `vault.keys`.
    Rotate,
}

/// `tkm pgp …`.
#[derive(Debug, Subcommand)]
pub enum PgpAction {
    /// Make a new OpenPGP key pair: armored secret key (mode 0600) and public key.
    Generate {
        /// Where to write the armored secret key.
        #[arg(long)]
        out_private: PathBuf,
        /// Where to write the armored public key.
        #[arg(long)]
        out_public: PathBuf,
        /// Key type: curve25519 (Ed25519 + Curve25519 ECDH), rsa2048 or rsa4096.
        #[arg(long, default_value = "curve25519")]
        kind: crate::crypto::pgp::PgpKeyKind,
        /// File holding a passphrase to lock the secret key with (none: unprotected).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The key's user id.
        #[arg(long, default_value = "tkm <tkm@localhost>")]
        user_id: String,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config.as_deref()),
        Command::Migrate => {
            let settings = Settings::load(cli.config.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let n = rt.block_on(crate::db::run_migrations(&settings.database))?;
            println!(
                "migrations applied: {n} new, schema at version {}",
                crate::db::expected_version()
            );
            Ok(())
        }
        Command::CheckConfig => {
            let settings = Settings::load(cli.config.as_deref())?;
            crate::crypto::Hasher::from_settings(&settings)?;
            crate::crypto::KeyRing::from_settings(&settings)?;
            crate::circuits::spec::live_specs(&settings.circuits)?;
            println!("{settings:#?}");
            println!("configuration is valid");
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Generate { out, force },
        } => generate_key(&out, force),
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let settings = Settings::load(cli.config.as_deref())?;
            let done = crate::cli_keys::run(&settings, true)?;
            println!(
                "re-encrypted under {}: {} card PANs, {} token PANs, {} dead letters",
                settings.vault.active_key, done.cards, done.tokens, done.dead_letters
            );
            Ok(())
        }
        Command::Pgp {
            action:
                PgpAction::Generate {
                    out_private,
                    out_public,
                    kind,
                    passphrase_file,
                    user_id,
                    force,
                },
        } => generate_pgp_key(
            &out_private,
            &out_public,
            kind,
            passphrase_file.as_deref(),
            &user_id,
            force,
        ),
        Command::CertIdentity { file } => {
            let pem =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let cert = openssl::x509::X509::from_pem(&pem).context("not a PEM certificate")?;
            let peer = crate::api::identity::PeerCert::from_x509(&cert)?;
            println!("fingerprint_sha256 = \"{}\"", peer.fingerprint);
            println!("subject = \"{}\"", peer.subject.replace('\\', "\\\\"));
            println!("issuer = \"{}\"", peer.issuer.replace('\\', "\\\\"));
            Ok(())
        }
        #[cfg(feature = "simulator")]
        Command::SimulateCircuits { bind, keys_dir } => {
            simulate_circuits(cli.config.as_deref(), bind, keys_dir)
        }
        Command::BuildLists { kinds } => {
            let settings = Settings::load(cli.config.as_deref())?;
            crate::cli_lists::run(&settings, &kinds)?;
            Ok(())
        }
        Command::IngestTokenList { files } => {
            let settings = Settings::load(cli.config.as_deref())?;
            let rejected = crate::cli_token_lists::run(&settings, &files)?;
            if rejected > 0 {
                anyhow::bail!("{rejected} of {} file(s) refused or rejected", files.len());
            }
            Ok(())
        }
        Command::IngestTransactions { files } => {
            let settings = Settings::load(cli.config.as_deref())?;
            let refused = crate::cli_transactions::run(&settings, &files)?;
            if refused > 0 {
                anyhow::bail!("{refused} of {} file(s) refused or rejected", files.len());
            }
            Ok(())
        }
        Command::PublishCardEvent => {
            let settings = Settings::load(cli.config.as_deref())?;
            let n = crate::cli_publish::run(&settings)?;
            println!(
                "published {n} card event(s) to {}",
                settings.rabbitmq.card_events_queue
            );
            Ok(())
        }
    }
}

#[cfg(feature = "simulator")]
fn simulate_circuits(
    config: Option<&Path>,
    bind: Option<std::net::SocketAddr>,
    keys_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    // The layered configuration, without `validate()`: the simulator needs none of the server's
    // secrets (vault key, salt, database), only `[circuits.simulator]` and `[telemetry]`.
    let settings = Settings::from_layers(config)?;
    if !(0.0..=1.0).contains(&settings.circuits.simulator.no_par_share) {
        anyhow::bail!("circuits.simulator.no_par_share must be within 0..1");
    }
    let keys_dir = keys_dir
        .or_else(|| settings.circuits.simulator.keys_dir.clone())
        .unwrap_or_else(|| PathBuf::from(".dev/simulator"));
    let keys_dir = keys_dir.as_path();
    let _guard = crate::telemetry::init(&settings.telemetry)?;
    crate::telemetry::install_panic_hook();
    let mut sim_settings = settings.circuits.simulator.clone();
    if let Some(bind) = bind {
        sim_settings.bind = bind;
    }
    let keys = crate::circuits::simulator::SimulatorKeys::load_or_generate(keys_dir)
        .with_context(|| format!("simulator keys in {}", keys_dir.display()))?;
    actix_web::rt::System::new().block_on(async move {
        let sim = crate::circuits::simulator::Simulator::start(&sim_settings, keys).await?;
        println!("circuit simulator listening on {}", sim.base_url());
        println!("keys and credentials in {}", keys_dir.display());
        crate::startup::termination().await;
        sim.stop().await;
        Ok(())
    })
}

fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let _guard = crate::telemetry::init(&settings.telemetry)?;
    crate::telemetry::install_panic_hook();
    actix_web::rt::System::new().block_on(async move {
        let app = crate::startup::Application::build(settings).await?;
        tracing::info!(
            api_port = app.api_port(),
            ops_port = app.ops_port(),
            "tkm is serving"
        );
        app.run_until_stopped().await
    })
}

fn generate_key(out: &Path, force: bool) -> anyhow::Result<()> {
    use base64::Engine as _;
    if out.exists() && !force {
        anyhow::bail!("{} exists; pass --force to replace it", out.display());
    }
    let key = crate::crypto::VaultKey::generate("new")?;
    let encoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(key.expose_bytes()),
    );
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    writeln!(f, "{}", encoded.as_str())?;
    println!("vault key written to {}", out.display());
    Ok(())
}

fn generate_pgp_key(
    out_private: &Path,
    out_public: &Path,
    kind: crate::crypto::pgp::PgpKeyKind,
    passphrase_file: Option<&Path>,
    user_id: &str,
    force: bool,
) -> anyhow::Result<()> {
    for out in [out_private, out_public] {
        if out.exists() && !force {
            anyhow::bail!("{} exists; pass --force to replace it", out.display());
        }
    }
    let passphrase = passphrase_file
        .map(|p| crate::config::read_secret_file("--passphrase-file", p))
        .transpose()?;
    if passphrase
        .as_ref()
        .is_some_and(|p| secrecy::ExposeSecret::expose_secret(p).is_empty())
    {
        anyhow::bail!("the passphrase file is empty");
    }
    let (secret, public) = crate::crypto::pgp::generate(kind, user_id, passphrase.as_ref())?;
    let secret = zeroize::Zeroizing::new(secret);
    let fingerprint = crate::crypto::pgp::PgpPublicKey::from_armored(public.as_bytes())?
        .fingerprint()
        .to_owned();
    for (out, text, mode) in [
        (out_private, secret.as_str(), 0o600),
        (out_public, public.as_str(), 0o644),
    ] {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        let mut f = opts
            .open(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        // An existing file keeps its mode on open: set it, so --force never leaves 0644.
        #[cfg(unix)]
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
    }
    println!(
        "{kind} key {fingerprint} written to {} (secret) and {} (public)",
        out_private.display(),
        out_public.display()
    );
    Ok(())
}
