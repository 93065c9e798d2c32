//! The command line (`tkm serve|migrate|check-config|keys|cert-identity`).

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
    /// Print a certificate's SHA-256 fingerprint, subject and issuer as `[[clients]]` matches them.
    CertIdentity {
        /// PEM certificate file.
        file: PathBuf,
    },
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
            settings.hasher()?;
            settings.key_ring()?;
            println!("{settings:#?}");
            println!("configuration is valid");
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Generate { out, force },
        } => generate_key(&out, force),
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
    }
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
