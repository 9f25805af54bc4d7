//! The `pacs-gateway` command line: `serve`, and the operator's `facility`, `user`,
//! `device`, `audit` and `changes` commands.

mod audit;
mod changes;
mod device;
mod docs;
mod facility_admin;
mod first_run;
mod lifecycle;
mod user;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::{Application, TlsFiles, open_index};
use crate::config::Config;
use crate::domain::FacilityName;

pub use audit::{AuditCommand, parse_since};
pub use changes::ChangesArgs;
pub use device::DeviceCommand;
pub use docs::DocsCommand;
pub use facility_admin::{format_size, normalize_fingerprint, parse_size};
pub use first_run::{GlobalSettings, ServeArgs};
pub use user::{RoleArg, UserCommand};

/// The central PACS gateway: stores and indexes de-identified images from enrolled
/// facilities, received over DICOM TLS.
#[derive(Debug, Parser)]
#[command(name = "pacs-gateway", version = crate::telemetry::long_version())]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file (TOML); every key is optional, see schemas/gateway.toml.
    #[arg(long, short, global = true, env = "PACS_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format on standard error: `text` (coloured only on a terminal, never
    /// with NO_COLOR) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "PACS_LOG_FORMAT"
    )]
    pub log_format: crate::telemetry::LogFormat,
    /// Settings every command shares (override the config file).
    #[command(flatten)]
    pub global: GlobalSettings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (DICOM TLS and plain listeners, HTTPS, metrics) until Ctrl-C
    /// or SIGTERM.
    Serve(ServeArgs),
    /// Manage facilities (operator).
    #[command(subcommand)]
    Facility(FacilityCommand),
    /// Manage users who query and retrieve (passwords are prompted for, or read from
    /// stdin; never given on the command line).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the C-MOVE destinations a facility's users may send studies to.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Read a facility's changes feed (study-level events, oldest first).
    Changes(ChangesArgs),
    /// Retention policies, the lifecycle job, expiring studies and tombstones.
    #[command(subcommand)]
    Lifecycle(lifecycle::LifecycleCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a folder.
    Man(DocsCommand),
}

/// The exit-code table, shown after `--help` (README "Exit codes").
pub const EXIT_CODES: &str = "Exit codes: 0 done; 1 failed while running; 2 usage error; \
64 configuration cannot be used; 141 output closed (e.g. `| head`).";

/// `facility ...`
#[derive(Debug, Subcommand)]
pub enum FacilityCommand {
    /// Enroll a facility.
    Add {
        /// Facility name (letters, digits, '-', '_', '.').
        name: String,
        /// Accept instances that are not de-identified (only until the facility runs
        /// the facility client).
        #[arg(long)]
        accept_identified: bool,
    },
    /// List facilities.
    List,
    /// Change a facility's settings.
    Set {
        /// Facility name.
        name: String,
        /// Accept instances that are not de-identified.
        #[arg(long)]
        accept_identified: bool_flag::Flag,
    },
    /// Issue a client certificate for a facility: writes facility.crt, facility.key
    /// and ca.crt into DIR and enrolls the certificate.
    IssueCert {
        /// Facility name.
        name: String,
        /// Output directory (created; existing key files are not overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show a facility's storage quota and usage, or change the quota.
    Quota {
        /// Facility name.
        name: String,
        /// New quota: bytes, or a number with KiB, MiB, GiB or TiB (e.g. 500GiB).
        /// C-STORE is refused with "out of resources" (0xA700) beyond it.
        #[arg(long, conflicts_with = "unlimited")]
        set: Option<String>,
        /// Remove the quota.
        #[arg(long)]
        unlimited: bool,
        /// Usage (percent of the quota) at which a warning is logged and audited.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
        warn_percent: Option<u8>,
    },
    /// List a facility's client certificates (fingerprint, subject, created, revoked).
    Certs {
        /// Facility name.
        name: String,
    },
    /// Revoke a facility's client certificate: associations presenting it are
    /// refused from then on.
    RevokeCert {
        /// Facility name.
        name: String,
        /// SHA-256 fingerprint, as `facility certs` shows it (`sha256:` optional).
        fingerprint: String,
    },
}

/// A `true`/`false` value for `--flag VALUE`.
pub mod bool_flag {
    /// Parsed boolean.
    #[derive(Debug, Clone, Copy, clap::ValueEnum)]
    pub enum Flag {
        /// Yes.
        True,
        /// No.
        False,
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Completions { shell } => return docs::completions(*shell),
        Command::Man(cmd) => return docs::man(cmd),
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    cli.global.apply(&mut config);
    match cli.command {
        Command::Serve(args) => {
            args.apply(&mut config)?;
            serve(config, cli.config.as_deref()).await
        }
        Command::Facility(cmd) => facility(config, cmd).await,
        Command::User(cmd) => user::run(config, cmd).await,
        Command::Device(cmd) => device::run(config, cmd).await,
        Command::Audit(cmd) => audit::run(config, cmd).await,
        Command::Changes(args) => changes::run(config, args).await,
        Command::Lifecycle(cmd) => lifecycle::run(config, cmd).await,
        Command::Completions { .. } | Command::Man(_) => Ok(()),
    }
}

async fn serve(config: Config, config_file: Option<&Path>) -> anyhow::Result<()> {
    // Held until serve returns: a second serve on this data dir is refused.
    let _lock = crate::datadir::lock(&config.data_dir)?;
    let app = Application::build_from(config, config_file).await?;
    app.run_until_stopped(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn facility_name(name: &str) -> anyhow::Result<FacilityName> {
    FacilityName::parse(name).map_err(anyhow::Error::msg)
}

async fn facility(config: Config, cmd: FacilityCommand) -> anyhow::Result<()> {
    let index = open_index(&config).await?;
    match cmd {
        FacilityCommand::Add {
            name,
            accept_identified,
        } => {
            let facility = index
                .create_facility(&facility_name(&name)?, accept_identified)
                .await?;
            println!("facility {} added (id {})", facility.name, facility.id);
            println!(
                "next: pacs-gateway facility issue-cert {} --out DIR",
                facility.name
            );
        }
        FacilityCommand::List => {
            println!("{:<6} {:<32} accept_identified", "id", "name");
            for f in index.facilities().await? {
                println!("{:<6} {:<32} {}", f.id, f.name, f.accept_identified);
            }
        }
        FacilityCommand::Set {
            name,
            accept_identified,
        } => {
            let facility = lookup(&index, &name).await?;
            let accept = matches!(accept_identified, bool_flag::Flag::True);
            index.set_accept_identified(facility.id, accept).await?;
            println!("facility {}: accept_identified = {accept}", facility.name);
        }
        FacilityCommand::IssueCert { name, out } => {
            issue_cert(&config, &index, &name, &out).await?
        }
        FacilityCommand::Quota {
            name,
            set,
            unlimited,
            warn_percent,
        } => facility_admin::quota(&config, &index, &name, set, unlimited, warn_percent).await?,
        FacilityCommand::Certs { name } => facility_admin::certs(&index, &name).await?,
        FacilityCommand::RevokeCert { name, fingerprint } => {
            facility_admin::revoke_cert(&config, &index, &name, &fingerprint).await?
        }
    }
    index.close().await;
    Ok(())
}

async fn lookup(index: &crate::db::Index, name: &str) -> anyhow::Result<crate::db::Facility> {
    match index.facility_by_name(&facility_name(name)?).await? {
        Some(f) => Ok(f),
        None => bail!("no facility named {name}; add it with `pacs-gateway facility add {name}`"),
    }
}

async fn issue_cert(
    config: &Config,
    index: &crate::db::Index,
    name: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let facility = lookup(index, name).await?;
    let files = TlsFiles::resolve(config)?;
    let ca = files.load_ca()?;
    let issued = ca.issue_client(facility.name.as_str(), Some("facility"))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (cert, key) = issued.write(out, "facility")?;
    let ca_path = out.join("ca.crt");
    std::fs::write(&ca_path, ca.cert_pem())
        .with_context(|| format!("cannot write {}", ca_path.display()))?;
    index
        .add_certificate(
            facility.id,
            &issued.fingerprint(),
            &format!("CN={}", facility.name),
        )
        .await?;
    println!("issued a client certificate for facility {}", facility.name);
    println!("  certificate: {}", cert.display());
    println!("  private key: {} (keep it secret)", key.display());
    println!("  CA bundle:   {}", ca_path.display());
    println!("  fingerprint: sha256:{}", issued.fingerprint());
    Ok(())
}
