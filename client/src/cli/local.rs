//! `pacs-client modality ...` and `pacs-client rule ...`: the command-line side of
//! [`crate::admin::local`].

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use crate::admin::local::{ConfigFile, LocalAdminError, format_modalities, format_rules};
use crate::config::{Destination, Rule};

/// What the output says about a running `serve`.
const APPLIES: &str =
    "a running `pacs-client serve` applies this to new associations (no restart needed)";

/// `modality ...`
#[derive(Debug, Subcommand)]
pub enum ModalityCommand {
    /// Allow a modality to store here (adds an `[[edge.modalities]]` entry).
    Add {
        /// Its calling AE title (1 to 16 characters).
        ae_title: String,
        /// Only from this IP address.
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop accepting a modality (removes its `[[edge.modalities]]` entry).
    Remove {
        /// Its calling AE title.
        ae_title: String,
    },
    /// The modalities allowed to store here.
    List,
}

/// A rule's action, as the config file spells it (`forward` / `local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// De-identify and send to the gateway.
    #[value(alias = "share")]
    Forward,
    /// Keep in this client's store only.
    #[value(alias = "local-only")]
    Local,
}

impl From<Action> for Destination {
    fn from(action: Action) -> Destination {
        match action {
            Action::Forward => Destination::Forward,
            Action::Local => Destination::Local,
        }
    }
}

/// `rule ...`
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a sharing rule; every condition given must hold. First match wins.
    Add {
        /// The sender's calling AE title.
        #[arg(long)]
        calling_ae: Option<String>,
        /// Modality (CT, MR, US, ...).
        #[arg(long)]
        modality: Option<String>,
        /// Study Description pattern, `*` and `?` wildcards, case-insensitive.
        #[arg(long)]
        description: Option<String>,
        /// What to do with matching instances (`share` and `local-only` are accepted too).
        #[arg(long, value_enum)]
        action: Action,
        /// Insert before rule N (as `rule list` numbers them); default: last.
        #[arg(long, value_name = "N")]
        position: Option<usize>,
    },
    /// Remove rule N (as `rule list` numbers them).
    Remove {
        /// Rule number.
        index: usize,
    },
    /// The rules in evaluation order, with the default action.
    List,
}

/// Runs `modality ...` on the config file at `path`.
pub(super) fn modality(path: Option<&Path>, cmd: ModalityCommand) -> anyhow::Result<()> {
    let file = ConfigFile::open(path).map_err(unwrap_config)?;
    match cmd {
        ModalityCommand::List => print!("{}", format_modalities(&file.config().edge.modalities)),
        ModalityCommand::Add { ae_title, host } => {
            let name = file.path().display().to_string();
            let now = file
                .add_modality(&ae_title, host.as_deref())
                .map_err(unwrap_config)?;
            let added = now.last().map(|m| m.ae_title.clone()).unwrap_or(ae_title);
            println!("added modality {added} to {name}; {APPLIES}");
        }
        ModalityCommand::Remove { ae_title } => {
            let name = file.path().display().to_string();
            file.remove_modality(&ae_title).map_err(unwrap_config)?;
            println!(
                "removed modality {} from {name}; {APPLIES}",
                ae_title.trim()
            );
        }
    }
    Ok(())
}

/// Runs `rule ...` on the config file at `path`.
pub(super) fn rule(path: Option<&Path>, cmd: RuleCommand) -> anyhow::Result<()> {
    let file = ConfigFile::open(path).map_err(unwrap_config)?;
    match cmd {
        RuleCommand::List => print!("{}", format_rules(&file.config().sharing)),
        RuleCommand::Add {
            calling_ae,
            modality,
            description,
            action,
            position,
        } => {
            let rule = Rule {
                calling_ae,
                modality,
                study_description: description,
                action: action.into(),
            };
            let sharing = file.add_rule(&rule, position).map_err(unwrap_config)?;
            println!("rule added; {APPLIES}");
            print!("{}", format_rules(&sharing));
        }
        RuleCommand::Remove { index } => {
            let sharing = file.remove_rule(index).map_err(unwrap_config)?;
            println!("rule {index} removed; {APPLIES}");
            print!("{}", format_rules(&sharing));
        }
    }
    Ok(())
}

/// A config file the loader refuses exits like any bad configuration (64).
fn unwrap_config(e: LocalAdminError) -> anyhow::Error {
    match e {
        LocalAdminError::Config(c) => c.into(),
        other => other.into(),
    }
}
