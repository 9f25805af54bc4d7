//! The `pacs-client` command line.

mod clinician;
mod docs;
mod first_run;
mod held;
mod local;
mod queue;
#[cfg(test)]
mod tests;

pub use docs::DocsCommand;
pub use first_run::{GlobalSettings, ServeArgs};
pub use held::{HeldCommand, PixelRuleCommand};
pub use local::{Action, ModalityCommand, RuleCommand};

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::app::Client;
use crate::clinician::query::StudyFilter;
use crate::config::Config;
use crate::keyfile;

/// The facility client: receives images from modalities, de-identifies and seals
/// them with the facility key, and forwards them to the central gateway.
#[derive(Debug, Parser)]
#[command(name = "pacs-client", version = crate::telemetry::long_version())]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file (TOML); see schemas/client.toml.
    #[arg(long, short, global = true, env = "PACS_CLIENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug); RUST_LOG overrides.
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

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the facility key (once per facility; back it up with `key export`).
    Init,
    /// Back up or restore the facility key, wrapped under a passphrase.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run the edge SCP and the forwarder until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Import DICOM files or folders (a CD, a directory of .dcm) and send them.
    Send {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Calling AE title recorded for the imported instances (sharing rules see it).
        #[arg(long, default_value = "IMPORT")]
        calling_ae: String,
        /// Wait until the gateway has every instance, however long it is unreachable
        /// (without it, `send` returns once the instances are queued safely when the
        /// gateway cannot be reached).
        #[arg(long)]
        wait: bool,
    },
    /// Queue depth by state, oldest pending instance, dead letters and held
    /// instances with reasons.
    Status {
        /// Also list each study: on the gateway, local-only, both, or still pending.
        #[arg(long)]
        studies: bool,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make dead letters due again (or send the latest version of one instance again).
    Retry {
        /// Retry every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Outbox id (from `status`): a dead letter, or the latest version of an
        /// instance that was delivered or refused.
        id: Option<i64>,
    },
    /// Per-study sharing decision (overrides the rules).
    #[command(subcommand)]
    Study(StudyCommand),
    /// Find studies (study level) on the gateway and locally, with the real names.
    Query {
        /// Gateway user (password from PACS_PASSWORD or a prompt); default: the
        /// `[credentials] file` of the config.
        #[arg(long)]
        user: Option<String>,
        /// Original Patient ID.
        #[arg(long)]
        patient_id: Option<String>,
        /// Patient name, e.g. `Doe^John` (case and accents do not matter).
        #[arg(long)]
        name: Option<String>,
        /// A modality in the study (CT, MR, ...).
        #[arg(long)]
        modality: Option<String>,
        /// Study date YYYYMMDD or range FROM-TO (either end may be open).
        #[arg(long, allow_hyphen_values = true)]
        date: Option<String>,
        /// Original accession number (matched after unsealing).
        #[arg(long)]
        accession: Option<String>,
        /// What to list: studies, the series of `--study`, or the instances of
        /// `--series` in `--study`.
        #[arg(long, value_enum, default_value = "study")]
        level: crate::clinician::query::QueryLevel,
        /// Study Instance UID (original or as stored at the gateway); needed for
        /// `--level series` and `image`.
        #[arg(long)]
        study: Option<String>,
        /// Series Instance UID (original or as stored at the gateway); needed for
        /// `--level image`.
        #[arg(long)]
        series: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fetch studies from the gateway and write re-identified files.
    Retrieve {
        /// Gateway user (as for `query`).
        #[arg(long)]
        user: Option<String>,
        /// Study Instance UIDs, original or as stored at the gateway.
        #[arg(required = true)]
        study_uids: Vec<String>,
        /// Output folder: OUT/<study uid>/<sop instance uid>.dcm.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write studies, re-identified, to a returnable medium: a DICOM File-set with
    /// DICOMDIR, an ISO 9660 image for CD/DVD, and an index print and label sheet as
    /// PDF (README "Export to returnable media").
    Export {
        /// Gateway user (as for `query`).
        #[arg(long)]
        user: Option<String>,
        /// Study Instance UIDs, original or as stored at the gateway.
        #[arg(required = true)]
        study_uids: Vec<String>,
        /// The medium: cd and dvd also get DIR/medium.iso.
        #[arg(long, value_enum)]
        medium: crate::clinician::export::Medium,
        /// Output folder (empty or new).
        #[arg(long)]
        out: PathBuf,
        /// A patient medium: every study must be this patient's (Patient ID, or a
        /// name, DICOM wildcards allowed).
        #[arg(long)]
        patient: Option<String>,
        /// Export studies that the export ledger says went to a medium before.
        #[arg(long)]
        again: bool,
        /// One JSON object (what was written) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Keep a folder holding the gateway's thumbnails of every study of the facility
    /// this PC does not hold itself, named by real patient name, study date and
    /// description (resumes from the changes feed; deleted studies disappear).
    Sync {
        /// Gateway user (password from PACS_PASSWORD or a prompt); default: `[sync]
        /// user`, else the `[credentials] file` of the config.
        #[arg(long)]
        user: Option<String>,
        /// The folder; default: `[sync] out`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also keep thumbnails of the studies this PC holds itself.
        #[arg(long)]
        include_local: bool,
        /// One JSON object (what was done) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Studies whose storage period at the gateway ends soon, or that were hidden for
    /// it, with real names, deadlines and the answers available.
    Expiring {
        /// Gateway user (as for `query`).
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Keep studies at the gateway longer (answers an expiry notice).
    Keep {
        /// Gateway user (as for `query`).
        #[arg(long)]
        user: Option<String>,
        /// Original Study Instance UIDs.
        #[arg(required = true)]
        study_uids: Vec<String>,
        /// Days to add (default: the policy's storage period).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=36_500))]
        days: Option<i64>,
    },
    /// Delete studies at the gateway now (facility administrator): blobs and rows
    /// removed, a tombstone kept.
    Expire {
        /// Gateway user (a facility administrator).
        #[arg(long)]
        user: Option<String>,
        /// Original Study Instance UIDs.
        #[arg(required = true)]
        study_uids: Vec<String>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Restore hidden studies (facility administrator), kept `--days` from now.
    Restore {
        /// Gateway user (a facility administrator).
        #[arg(long)]
        user: Option<String>,
        /// Original Study Instance UIDs.
        #[arg(required = true)]
        study_uids: Vec<String>,
        /// Days to keep (default: the policy's storage period).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=36_500))]
        days: Option<i64>,
    },
    /// Modalities allowed to store here (edits `[[edge.modalities]]` of the config file).
    #[command(subcommand)]
    Modality(ModalityCommand),
    /// Sharing rules (edits `[[sharing.rules]]` of the config file).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Instances held back for burned-in text: list, release as they are, keep local.
    #[command(subcommand)]
    Held(HeldCommand),
    /// Pixel-cleaning rules (`[[pixels.rules]]`): test one on a file.
    #[command(subcommand)]
    PixelRule(PixelRuleCommand),
    /// Facility administration at the gateway's admin API: users, C-MOVE
    /// destinations, certificates, usage, audit trail, studies.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a folder.
    Man(DocsCommand),
}

/// The exit-code table, shown after `--help` (README "Exit codes").
pub const EXIT_CODES: &str = "Exit codes: 0 done; 1 failed while running (or some items \
failed); 2 usage error; 3 not logged in to the admin API; 64 configuration cannot be used; \
141 output closed (e.g. `| head`).";

/// `key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write the key, wrapped under a passphrase (asked for, or PACS_KEY_PASSPHRASE).
    Export {
        /// Output file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Install a key exported from another client of the same facility.
    Import {
        /// The exported file.
        file: PathBuf,
    },
}

/// `study ...`
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Forward this study to the gateway (including instances kept local so far).
    Share {
        /// Study Instance UID.
        study_uid: String,
    },
    /// Keep this study local-only (instances not yet sent stay here).
    Unshare {
        /// Study Instance UID.
        study_uid: String,
    },
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Completions { shell } => return docs::completions(*shell).map(|_| 0),
        Command::Man(cmd) => return docs::man(cmd).map(|_| 0),
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    cli.global.apply(&mut config);
    match cli.command {
        Command::Completions { .. } | Command::Man(_) => Ok(0),
        Command::Init => init(&config).map(|_| 0),
        Command::Key(cmd) => key(&config, cmd).map(|_| 0),
        Command::Serve(args) => {
            args.apply(&mut config)?;
            crate::startup::banner(&config, cli.config.as_deref());
            let client = Client::build(&config).await?;
            if let Some(path) = cli.config.as_deref() {
                client.watch_config(path);
            }
            client.run_until_stopped(shutdown_signal()).await.map(|_| 0)
        }
        Command::Send {
            paths,
            calling_ae,
            wait,
        } => queue::send(&config, &paths, &calling_ae, wait).await,
        Command::Status { studies, json } => queue::status(&config, studies, json).await.map(|_| 0),
        Command::Retry { all, id } => queue::retry(&config, all, id).await.map(|_| 0),
        Command::Study(cmd) => study(&config, cmd).await.map(|_| 0),
        Command::Query {
            user,
            patient_id,
            name,
            modality,
            date,
            accession,
            level,
            study,
            series,
            json,
        } => {
            if level != crate::clinician::query::QueryLevel::Study {
                return clinician::query_below(
                    &config,
                    user.as_deref(),
                    level,
                    study,
                    series,
                    json,
                )
                .await
                .map(|_| 0);
            }
            let filter = StudyFilter {
                patient_id,
                name,
                modality,
                date,
                accession,
                study_uid: study,
            };
            clinician::query(&config, user.as_deref(), &filter, json)
                .await
                .map(|_| 0)
        }
        Command::Retrieve {
            user,
            study_uids,
            out,
        } => clinician::retrieve(&config, user.as_deref(), &study_uids, &out).await,
        Command::Export {
            user,
            study_uids,
            medium,
            out,
            patient,
            again,
            json,
        } => {
            let request = crate::clinician::export::Request {
                studies: study_uids,
                medium,
                out,
                patient,
                again,
                os_user: held::os_user(),
                progress: !json && std::io::stderr().is_terminal(),
            };
            clinician::export(&config, user.as_deref(), &request, json).await
        }
        Command::Sync {
            user,
            out,
            include_local,
            json,
        } => clinician::sync(&config, user.as_deref(), out, include_local, json).await,
        Command::Expiring { user, json } => {
            clinician::expiring(&config, user.as_deref(), json).await
        }
        Command::Keep {
            user,
            study_uids,
            days,
        } => {
            use crate::clinician::lifecycle::Answer;
            clinician::answer(&config, user.as_deref(), &study_uids, Answer::Keep(days)).await
        }
        Command::Expire {
            user,
            study_uids,
            yes,
        } => {
            if !yes && (!std::io::stdin().is_terminal() || !clinician::confirm_delete(&study_uids)?)
            {
                return Err(crate::exit::UsageError(
                    "not deleted: confirm on a terminal or give --yes".into(),
                )
                .into());
            }
            use crate::clinician::lifecycle::Answer;
            clinician::answer(&config, user.as_deref(), &study_uids, Answer::Expire).await
        }
        Command::Restore {
            user,
            study_uids,
            days,
        } => {
            use crate::clinician::lifecycle::Answer;
            clinician::answer(&config, user.as_deref(), &study_uids, Answer::Restore(days)).await
        }
        Command::Modality(cmd) => local::modality(cli.config.as_deref(), cmd).map(|_| 0),
        Command::Rule(cmd) => local::rule(cli.config.as_deref(), cmd).map(|_| 0),
        Command::Admin(cmd) => Ok(crate::admin::run(&config, cmd).await),
        Command::Held(cmd) => held::held(&config, cmd).await,
        Command::PixelRule(cmd) => held::pixel_rule(&config, cmd),
    }
}

fn init(config: &Config) -> anyhow::Result<()> {
    let path = config.key_file();
    let key = keyfile::create(&path)?;
    println!(
        "created the facility key {} at {}",
        key.id(),
        path.display()
    );
    eprintln!();
    eprintln!(
        "!!! BACK THIS KEY UP NOW: `pacs-client key export --out FILE` and store the file safely."
    );
    eprintln!("!!! Every patient identity this client sends is sealed with it. If the key is");
    eprintln!("!!! lost, nobody (not even the gateway operator) can ever show those names again.");
    Ok(())
}

/// The passphrase, from PACS_KEY_PASSPHRASE, a prompt (asked twice when `new`), or one
/// line of standard input. A new one must have at least 12 characters.
fn passphrase(new: bool) -> anyhow::Result<String> {
    let given = if let Ok(p) = std::env::var("PACS_KEY_PASSPHRASE") {
        p
    } else if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("passphrase: ")?;
        if new && rpassword::prompt_password("again: ")? != first {
            bail!("the two passphrases differ");
        }
        first
    };
    if new && given.chars().count() < 12 {
        bail!("use a passphrase of at least 12 characters");
    }
    Ok(given)
}

fn key(config: &Config, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Export { out } => {
            let key = keyfile::load(&config.key_file())?;
            keyfile::export(&key, &passphrase(true)?, &out)?;
            println!(
                "exported key {} to {} (wrapped under your passphrase)",
                key.id(),
                out.display()
            );
        }
        KeyCommand::Import { file } => {
            let key = keyfile::import(&file, &passphrase(false)?)?;
            keyfile::store(&config.key_file(), &key)?;
            println!(
                "imported key {} to {}",
                key.id(),
                config.key_file().display()
            );
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn study(config: &Config, cmd: StudyCommand) -> anyhow::Result<()> {
    let outbox = crate::outbox::open(config).await?;
    let (uid, share) = match &cmd {
        StudyCommand::Share { study_uid } => (study_uid, true),
        StudyCommand::Unshare { study_uid } => (study_uid, false),
    };
    if !crate::uid::usable_uid(uid) {
        return Err(crate::exit::UsageError(format!("{uid:?} is not a Study Instance UID")).into());
    }
    let moved = outbox.set_study_flag(uid, share).await?;
    let what = if share {
        "shared with the gateway"
    } else {
        "kept local-only"
    };
    println!("study {uid} is now {what} ({moved} instance(s) re-routed)");
    Ok(())
}

fn login(config: &Config, user: Option<&str>) -> anyhow::Result<crate::credentials::Login> {
    Ok(crate::credentials::resolve(
        user,
        config.credentials.file.as_deref(),
    )?)
}
