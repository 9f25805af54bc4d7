//! `pacs-gateway lifecycle ...`: the operator's side of the study lifecycle on the
//! gateway host: each facility's retention policies (the operator's defaults, and the
//! facility's overrides shown beside them), one run of the lifecycle job now, the
//! expiring and hidden studies, and the tombstones of purged studies (lifting one
//! lets the study be stored again).

use std::sync::Arc;

use clap::{Subcommand, ValueEnum};

use super::lookup;
use crate::audit::rfc3339;
use crate::config::Config;
use crate::db::lifecycle::{CountedFrom, LifecycleState, RetentionAction, RetentionPolicy, SetBy};

/// What a storage period counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromArg {
    /// The study's first receipt.
    Receipt,
    /// Its Study Date.
    StudyDate,
}

/// What happens at the end of a storage period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// Hidden when the notice passes unanswered, purged after the grace period.
    HidePurge,
    /// The notice only.
    Notify,
}

/// `lifecycle ...`
#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// A facility's retention policies (operator defaults and facility overrides).
    Policies {
        /// Facility name.
        facility: String,
    },
    /// Set the operator's default policy of a scope for a facility.
    SetPolicy {
        /// Facility name.
        facility: String,
        /// Only studies with this modality.
        #[arg(long)]
        modality: Option<String>,
        /// Only studies with this label.
        #[arg(long)]
        label: Option<String>,
        /// Storage period in days.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=36_500))]
        days: i64,
        /// Counted from receipt or from the study date.
        #[arg(long, value_enum, default_value = "receipt")]
        from: FromArg,
        /// Notice this many days before the end.
        #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(i64).range(0..=36_500))]
        notice_days: i64,
        /// Hidden this many days before the purge.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=36_500))]
        grace_days: i64,
        /// What happens at the end.
        #[arg(long, value_enum, default_value = "hide-purge")]
        action: ActionArg,
    },
    /// Remove the operator's default policy of a scope.
    RemovePolicy {
        /// Facility name.
        facility: String,
        /// The policy's modality.
        #[arg(long)]
        modality: Option<String>,
        /// The policy's label.
        #[arg(long)]
        label: Option<String>,
    },
    /// Run the lifecycle job once now (notices, hiding, purges) and say what it did.
    Run,
    /// A facility's expiring and hidden studies (pseudonymous UIDs).
    Studies {
        /// Facility name.
        facility: String,
    },
    /// A facility's tombstone of a purged study, or lift it so the study can be
    /// stored again.
    Tombstone {
        /// Facility name.
        facility: String,
        /// Study Instance UID as stored.
        study_uid: String,
        /// Lift it.
        #[arg(long)]
        lift: bool,
    },
}

/// Runs `lifecycle ...`.
pub(super) async fn run(config: Config, cmd: LifecycleCommand) -> anyhow::Result<()> {
    let index = crate::app::open_index(&config).await?;
    let now = crate::db::now_millis();
    match cmd {
        LifecycleCommand::Policies { facility } => {
            let f = lookup(&index, &facility).await?;
            let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "(any)".into());
            println!(
                "{:<9} {:<9} {:<16} {:>6} {:<11} {:>6} {:>6} action",
                "set by", "modality", "label", "days", "from", "notice", "grace"
            );
            for p in index.policies(f.id).await? {
                println!(
                    "{:<9} {:<9} {:<16} {:>6} {:<11} {:>6} {:>6} {}",
                    word(&p.set_by),
                    any(&p.modality),
                    any(&p.label),
                    p.period_days,
                    word(&p.counted_from),
                    p.notice_days,
                    p.grace_days,
                    word(&p.action)
                );
            }
        }
        LifecycleCommand::SetPolicy {
            facility,
            modality,
            label,
            days,
            from,
            notice_days,
            grace_days,
            action,
        } => {
            let f = lookup(&index, &facility).await?;
            anyhow::ensure!(
                notice_days < days,
                "--notice-days must be shorter than --days"
            );
            let policy = RetentionPolicy {
                set_by: SetBy::Operator,
                modality: modality
                    .map(|m| m.trim().to_ascii_uppercase())
                    .filter(|m| !m.is_empty()),
                label: label.filter(|l| !l.trim().is_empty()),
                period_days: days,
                counted_from: match from {
                    FromArg::Receipt => CountedFrom::Receipt,
                    FromArg::StudyDate => CountedFrom::StudyDate,
                },
                notice_days,
                grace_days,
                action: match action {
                    ActionArg::HidePurge => RetentionAction::HidePurge,
                    ActionArg::Notify => RetentionAction::Notify,
                },
            };
            index.set_policy(f.id, &policy, now).await?;
            println!("default retention policy set for facility {}", f.name);
        }
        LifecycleCommand::RemovePolicy {
            facility,
            modality,
            label,
        } => {
            let f = lookup(&index, &facility).await?;
            let modality = modality.map(|m| m.trim().to_ascii_uppercase());
            if !index
                .remove_policy(f.id, SetBy::Operator, modality.as_deref(), label.as_deref())
                .await?
            {
                anyhow::bail!("facility {} has no operator policy of that scope", f.name);
            }
            println!("default retention policy removed for facility {}", f.name);
        }
        LifecycleCommand::Run => {
            let audit = crate::app::start_audit(&config, &index)?;
            let blobs = crate::blobs::BlobStore::open(&config.data_dir.join("blobs"))?;
            let job = crate::lifecycle::Lifecycle::new(
                index.clone(),
                blobs,
                audit.clone(),
                Arc::new(crate::lifecycle::SystemClock),
            );
            let report = job.run_once().await?;
            audit.shutdown(std::time::Duration::from_secs(5)).await;
            println!(
                "notices {}, back to active {}, hidden {}, purged {} ({} bytes freed)",
                report.noticed,
                report.reactivated,
                report.hidden,
                report.purged,
                report.bytes_freed
            );
        }
        LifecycleCommand::Studies { facility } => {
            let f = lookup(&index, &facility).await?;
            let lives = index
                .study_lives(f.id, &[LifecycleState::Expiring, LifecycleState::Hidden])
                .await?;
            println!("{:<9} {:<24} {:>9} study", "state", "since", "instances");
            for l in lives {
                let since = match l.state {
                    LifecycleState::Hidden => l.hidden_at,
                    _ => l.notice_at,
                };
                println!(
                    "{:<9} {:<24} {:>9} {}",
                    l.state.as_str(),
                    since.map(rfc3339).unwrap_or_default(),
                    l.instances,
                    l.study_uid
                );
            }
        }
        LifecycleCommand::Tombstone {
            facility,
            study_uid,
            lift,
        } => {
            let f = lookup(&index, &facility).await?;
            let Some(t) = index.tombstone(f.id, &study_uid).await? else {
                anyhow::bail!("facility {} has no tombstone for {study_uid}", f.name);
            };
            println!(
                "{study_uid}: purged {} ({}), {} instances, {} bytes",
                rfc3339(t.purged_at),
                t.reason,
                t.instances,
                t.bytes
            );
            if lift {
                index.lift_tombstone(f.id, &study_uid).await?;
                println!("tombstone lifted: the study may be stored again");
            }
        }
    }
    index.close().await;
    Ok(())
}

fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
