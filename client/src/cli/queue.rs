//! `send`, `status` and `retry`: the outbox as a facility administrator sees it.
//!
//! `send` imports files through the same spool pipeline as the edge. When a `serve`
//! holds the data dir's lock, `send` only queues (the running forwarder sends; its
//! in-flight rows are never touched); otherwise it forwards itself until every
//! instance is settled, or, when the gateway cannot be reached, says the instances are
//! queued safely and returns (`--wait` keeps trying).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::app::{collect_files, import_file};
use crate::config::Config;
use crate::datadir::{self, LockError};
use crate::intake::forward::Forwarder;
use crate::intake::spool::Spool;
use crate::keyfile;
use crate::outbox::{self, Listed, Outbox, State, StudyLocation, now_millis};

/// `pacs-client send PATHS [--wait]`; returns the exit code.
pub(super) async fn send(
    config: &Config,
    paths: &[PathBuf],
    calling_ae: &str,
    wait: bool,
) -> anyhow::Result<i32> {
    for path in paths {
        if !path.exists() {
            bail!("{}: no such file or directory", path.display());
        }
    }
    let lock = match datadir::lock(&config.data_dir) {
        Ok(lock) => Some(lock),
        Err(LockError::Held { pid, .. }) => {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            println!(
                "pacs-client serve{pid} is running on this data dir: the files go to its queue and it forwards them"
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let key = keyfile::load(&config.key_file())?;
    let outbox = outbox::open(config).await?;
    let spool =
        Spool::open(config, outbox.clone(), lock.is_some()).context("cannot open the spool")?;
    let (files, skipped) = dicom_files(paths);
    if files.is_empty() {
        bail!(
            "no DICOM files under the given paths ({skipped} other file(s) skipped: DICOMDIR, README, ...)"
        );
    }
    let bar = progress(files.len() as u64 * 2);
    bar.set_message("importing");
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    let mut duplicates = 0;
    for file in &files {
        match import_file(spool.clone(), file, calling_ae).await {
            Ok(done) => {
                duplicates += usize::from(done.already_delivered);
                rows.push((done.row_id, file.clone(), done.sop_instance_uid));
            }
            Err(outcome) => refused.push((
                file.display().to_string(),
                outcome
                    .comment
                    .unwrap_or_else(|| outcome.status.to_string()),
            )),
        }
        bar.inc(1);
    }
    bar.set_message("sending");
    let forwarding = match lock {
        Some(_) => {
            let stop = CancellationToken::new();
            let forwarder = Forwarder::new(config, outbox.clone(), key.ring())?;
            Some((stop.clone(), tokio::spawn(forwarder.run(stop))))
        }
        None => None,
    };
    // Forwarding ourselves: until settled, or (without --wait) until the gateway
    // proves unreachable. Handing off to a running serve: only with --wait.
    let keep_waiting = wait || forwarding.is_some();
    let give_up_unreachable = forwarding.is_some() && !wait;
    let ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
    let settled = wait_settled(&outbox, &ids, &bar, give_up_unreachable, keep_waiting).await?;
    if let Some((stop, workers)) = forwarding {
        stop.cancel();
        let _ = workers.await;
    }
    bar.finish_and_clear();
    drop(lock);
    let summary = settled.summary;
    println!(
        "sent {} ({} of them already at the gateway), kept local {}, failed {} (dead letters), refused at import {}, \
         refused by the gateway's duplicate policy {}, held for burned-in text {}, queued {}, skipped {} non-DICOM file(s)",
        summary.delivered,
        duplicates,
        summary.local,
        summary.dead.len(),
        refused.len(),
        summary.refused.len(),
        summary.held.len(),
        summary.waiting,
        skipped
    );
    for (file, reason) in &refused {
        println!("  refused {file}: {reason}");
    }
    let name = |id: &i64| {
        rows.iter()
            .find(|(row, _, _)| row == id)
            .map(|(_, file, sop)| format!("{} ({sop}, outbox id {id})", file.display()))
            .unwrap_or_else(|| format!("outbox id {id}"))
    };
    for (id, reason) in &summary.dead {
        println!("  failed {}: {reason}", name(id));
    }
    for (id, reason) in &summary.refused {
        println!("  refused by the gateway {}: {reason}", name(id));
    }
    for (id, reason) in &summary.held {
        println!("  held {}: {reason}", name(id));
    }
    if !summary.held.is_empty() {
        println!(
            "  {} instance(s) held for burned-in text: `pacs-client held list` shows why",
            summary.held.len()
        );
    }
    if summary.waiting > 0 {
        match &settled.unreachable {
            Some(reason) => println!(
                "the gateway cannot be reached ({reason}); {} instance(s) are queued safely in the outbox and \
                 `pacs-client serve` (or `send --wait`) delivers them; `pacs-client status` shows the queue",
                summary.waiting
            ),
            None => println!(
                "{} instance(s) are queued for the running serve; `pacs-client status` shows progress",
                summary.waiting
            ),
        }
    }
    let failed = !refused.is_empty() || !summary.dead.is_empty() || !summary.refused.is_empty();
    Ok(i32::from(failed))
}

/// The files under `paths` that are DICOM Part-10 files (the `DICM` magic at byte
/// 128), and how many other files were skipped (DICOMDIR, README, autorun, ...).
fn dicom_files(paths: &[PathBuf]) -> (Vec<PathBuf>, usize) {
    let mut files = Vec::new();
    let mut skipped = 0;
    for file in collect_files(paths) {
        if is_part10(&file) && file.file_name().is_none_or(|n| n != "DICOMDIR") {
            files.push(file);
        } else {
            skipped += 1;
        }
    }
    (files, skipped)
}

fn is_part10(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[derive(Debug, Default)]
struct Summary {
    delivered: usize,
    local: usize,
    waiting: usize,
    dead: Vec<(i64, String)>,
    refused: Vec<(i64, String)>,
    held: Vec<(i64, String)>,
}

struct Settled {
    summary: Summary,
    /// Set when waiting stopped because the gateway cannot be reached.
    unreachable: Option<String>,
}

/// Waits until every row in `ids` is settled. With `give_up_unreachable`, stops as
/// soon as every waiting row has failed to reach the gateway at least once and
/// nothing is being sent; without `keep_waiting`, returns at once.
async fn wait_settled(
    outbox: &Outbox,
    ids: &[i64],
    bar: &ProgressBar,
    give_up_unreachable: bool,
    keep_waiting: bool,
) -> anyhow::Result<Settled> {
    let base = bar.position();
    loop {
        let mut summary = Summary::default();
        let mut unreachable = None;
        let mut sending = false;
        for (id, state, reason) in outbox.states_of(ids).await? {
            match state.as_str() {
                "delivered" | "superseded" => summary.delivered += 1,
                "local" => summary.local += 1,
                "dead" => summary.dead.push((id, reason)),
                "refused" => summary.refused.push((id, reason)),
                "held" => summary.held.push((id, reason)),
                other => {
                    summary.waiting += 1;
                    sending |= other == "sending";
                    if reason.starts_with("cannot reach the gateway") {
                        unreachable.get_or_insert(reason);
                    } else {
                        sending = true;
                    }
                }
            }
        }
        bar.set_position(base + (ids.len() - summary.waiting) as u64);
        let stuck = give_up_unreachable && !sending && unreachable.is_some();
        if summary.waiting == 0 || !keep_waiting || stuck {
            return Ok(Settled {
                summary,
                unreachable: if stuck { unreachable } else { None },
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything `status` shows, also as JSON.
#[derive(Debug, Serialize)]
struct StatusReport {
    counts: std::collections::BTreeMap<String, i64>,
    oldest_waiting_secs: Option<i64>,
    dead_letters: Vec<Listed>,
    refused: Vec<Listed>,
    held: Vec<Listed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    studies: Option<Vec<StudyJson>>,
}

#[derive(Debug, Serialize)]
struct StudyJson {
    location: &'static str,
    #[serde(flatten)]
    counts: StudyLocation,
}

/// `pacs-client status [--studies] [--json]`.
pub(super) async fn status(config: &Config, studies: bool, json: bool) -> anyhow::Result<()> {
    let outbox = outbox::open(config).await?;
    let report = StatusReport {
        counts: outbox.counts().await?.into_iter().collect(),
        oldest_waiting_secs: outbox
            .oldest_pending()
            .await?
            .map(|at| (now_millis() - at).max(0) / 1000),
        dead_letters: outbox.dead_letters().await?,
        refused: outbox.listed(State::Refused).await?,
        held: outbox.listed_state("held").await?,
        studies: match studies {
            true => Some(
                outbox
                    .study_locations()
                    .await?
                    .into_iter()
                    .map(|counts| StudyJson {
                        location: counts.location(),
                        counts,
                    })
                    .collect(),
            ),
            false => None,
        },
    };
    if json {
        outbox.close().await;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let held = outbox.held_instances().await?;
    outbox.close().await;
    print_status(&report);
    if !held.is_empty() {
        super::held::print_held(&held);
    }
    if let Some(studies) = &report.studies {
        print_studies(studies);
    }
    Ok(())
}

fn print_status(report: &StatusReport) {
    println!("{:<10} count", "state");
    for (state, count) in &report.counts {
        println!("{state:<10} {count}");
    }
    match report.oldest_waiting_secs {
        Some(age) => println!("oldest waiting instance: {age} s ago"),
        None => println!("nothing waiting to be sent"),
    }
    let list = |title: &str, rows: &[Listed]| {
        if rows.is_empty() {
            return;
        }
        println!("{title}");
        for row in rows {
            println!(
                "  {:>6}  {}  v{}  after {} tries: {}",
                row.id, row.sop_instance_uid, row.version, row.attempts, row.reason
            );
        }
    };
    list(
        "dead letters (retry with `pacs-client retry ID` or `--all`):",
        &report.dead_letters,
    );
    list(
        "refused by the gateway's duplicate policy (the gateway keeps another version; see the README):",
        &report.refused,
    );
}

fn print_studies(studies: &[StudyJson]) {
    println!(
        "{:<64} {:<10} {:>7} {:>6} {:>7} {:>7} {:>5} {:>5}",
        "study", "location", "gateway", "local", "waiting", "refused", "held", "dead"
    );
    for s in studies {
        let c = &s.counts;
        println!(
            "{:<64} {:<10} {:>7} {:>6} {:>7} {:>7} {:>5} {:>5}",
            c.study_uid, s.location, c.at_gateway, c.local, c.waiting, c.refused, c.held, c.dead
        );
    }
}

/// `pacs-client retry ID | --all`.
pub(super) async fn retry(config: &Config, all: bool, id: Option<i64>) -> anyhow::Result<()> {
    if !all && id.is_none() {
        return Err(crate::exit::UsageError(
            "say which: `pacs-client retry ID` or `pacs-client retry --all`".into(),
        )
        .into());
    }
    let outbox = outbox::open(config).await?;
    let n = outbox.retry(id).await?;
    if let (Some(id), 0) = (id, n) {
        let why = match outbox.row_state(id).await? {
            None => "there is no such outbox id".to_string(),
            Some((state, version)) if state == "delivered" || state == "refused" => format!(
                "it holds version {version}, and a newer version of the instance exists: sending an older version again could make the gateway hold outdated content"
            ),
            Some((state, _)) => format!("it is {state}"),
        };
        bail!("cannot retry {id}: {why}; `pacs-client status` lists what can be retried");
    }
    match id {
        Some(id) => println!("{id} is due again; `pacs-client serve` sends it"),
        None => println!("{n} dead letter(s) due again; `pacs-client serve` sends them"),
    }
    Ok(())
}
