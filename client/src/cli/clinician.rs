//! The clinician's commands: `query`, `retrieve`, `export`, `sync`, `expiring` and
//! the answers `keep`, `expire`, `restore`. Each resolves the login and the facility
//! key, calls its flow under `crate::clinician`, and prints the result.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::login;
use crate::clinician::query::StudyFilter;
use crate::config::Config;
use crate::keyfile;

pub(super) async fn query(
    config: &Config,
    user: Option<&str>,
    filter: &StudyFilter,
    json: bool,
) -> anyhow::Result<()> {
    let key = keyfile::load(&config.key_file())?;
    let login = login(config, user)?;
    let rows = crate::clinician::query::find_studies(config, &key.ring(), &login, filter).await?;
    crate::clinician::query::print(&rows, json)
}

pub(super) async fn query_below(
    config: &Config,
    user: Option<&str>,
    level: crate::clinician::query::QueryLevel,
    study: Option<String>,
    series: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let Some(study) = study else {
        return Err(crate::exit::UsageError(
            "--level series and --level image need --study UID".into(),
        )
        .into());
    };
    let key = keyfile::load(&config.key_file())?;
    let login = login(config, user)?;
    let rows = crate::clinician::query::find_below(
        config,
        &key.ring(),
        &login,
        level,
        &study,
        series.as_deref(),
    )
    .await?;
    crate::clinician::query::print_items(&rows, level, json)
}

pub(super) async fn retrieve(
    config: &Config,
    user: Option<&str>,
    uids: &[String],
    out: &std::path::Path,
) -> anyhow::Result<i32> {
    let key = keyfile::load(&config.key_file())?;
    let ring = key.ring();
    let login = login(config, user)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} instances {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut written, mut failures) = (0, Vec::new());
    for uid in uids {
        bar.set_message(uid.clone());
        match crate::clinician::retrieve::retrieve_study(config, &ring, &login, uid, out, &bar)
            .await
        {
            Ok(result) => {
                written += result.written.len();
                failures.extend(result.failures);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    bar.finish_and_clear();
    println!(
        "wrote {written} instance(s) to {}, {} failure(s)",
        out.display(),
        failures.len()
    );
    for failure in &failures {
        println!("  failed: {failure}");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

pub(super) async fn sync(
    config: &Config,
    user: Option<&str>,
    out: Option<std::path::PathBuf>,
    include_local: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let settings = config.sync.clone().unwrap_or_default();
    let Some(out) = out.or(settings.out.clone()) else {
        return Err(crate::exit::UsageError(
            "give the folder with --out DIR (or set `[sync] out` in the config)".into(),
        )
        .into());
    };
    let key = keyfile::load(&config.key_file())?;
    let login = login(config, user.or(settings.user.as_deref()))?;
    let outbox = crate::outbox::open(config).await?;
    let options = crate::clinician::sync::SyncOptions {
        out: out.clone(),
        include_local: include_local || settings.include_local,
        progress: !json && std::io::stderr().is_terminal(),
    };
    let mut syncer =
        crate::clinician::sync::Syncer::new(config, key.ring(), login, options, outbox.clone());
    let report = syncer.run_once().await;
    syncer.close().await;
    outbox.close().await;
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} study folder(s) written ({} thumbnail(s)), {} removed, {} held on this PC; {} change(s) read, up to {}",
            out.display(),
            report.written,
            report.thumbnails,
            report.removed,
            report.held_here,
            report.changes,
            report.cursor
        );
        for failure in &report.failed {
            println!("  failed: {failure} (tried again next time)");
        }
    }
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

pub(super) async fn expiring(
    config: &Config,
    user: Option<&str>,
    json: bool,
) -> anyhow::Result<i32> {
    let key = keyfile::load(&config.key_file())?;
    let login = login(config, user)?;
    let rows = crate::clinician::lifecycle::expiring(config, &key.ring(), &login).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no study of the facility is expiring or hidden");
        return Ok(0);
    }
    let day = |t: &Option<String>| {
        t.as_deref()
            .map_or("-", |t| t.get(..10).unwrap_or(t))
            .to_string()
    };
    println!(
        "{:<9} {:<28} {:<14} {:<10} {:<24} {:<10} {:<10} {:<10} study uid (answers)",
        "state", "patient", "patient id", "date", "description", "ends", "hidden", "purged",
    );
    for r in &rows {
        println!(
            "{:<9} {:<28} {:<14} {:<10} {:<24} {:<10} {:<10} {:<10} {} ({})",
            r.state,
            r.patient_name,
            r.patient_id,
            r.study_date,
            r.study_description,
            day(&r.ends_at),
            day(&r.hide_at),
            day(&r.purge_at),
            if r.study_uid.is_empty() {
                "(hidden)"
            } else {
                &r.study_uid
            },
            r.answers.join(", ")
        );
    }
    Ok(0)
}

pub(super) fn confirm_delete(uids: &[String]) -> anyhow::Result<bool> {
    eprint!(
        "delete {} stud{} at the gateway now (cannot be undone)? [y/N] ",
        uids.len(),
        if uids.len() == 1 { "y" } else { "ies" }
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub(super) async fn answer(
    config: &Config,
    user: Option<&str>,
    uids: &[String],
    answer: crate::clinician::lifecycle::Answer,
) -> anyhow::Result<i32> {
    for uid in uids {
        if !crate::uid::usable_uid(uid) {
            return Err(
                crate::exit::UsageError(format!("{uid:?} is not a Study Instance UID")).into(),
            );
        }
    }
    let key = keyfile::load(&config.key_file())?;
    let login = login(config, user)?;
    let results =
        crate::clinician::lifecycle::answer(config, &key.ring(), &login, uids, answer).await?;
    let mut failed = 0;
    for (uid, result) in results {
        match result {
            Ok(state) => println!("{uid}: {state}"),
            Err(why) => {
                failed += 1;
                println!("{uid}: not done: {why}");
            }
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

pub(super) async fn export(
    config: &Config,
    user: Option<&str>,
    request: &crate::clinician::export::Request,
    json: bool,
) -> anyhow::Result<i32> {
    let key = keyfile::load(&config.key_file())?;
    let login = login(config, user)?;
    let report = crate::clinician::export::export(config, &key.ring(), &login, request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let instances: usize = report.studies.iter().map(|(_, n)| n).sum();
        println!(
            "exported {} study(ies), {instances} instance(s) to {} ({})",
            report.studies.len(),
            request.out.display(),
            request.medium.as_str()
        );
        if let Some(iso) = &report.iso {
            println!("  image: {}", iso.display());
        }
        println!(
            "  index: {}  label: {}",
            report.index_pdf.display(),
            report.label_pdf.display()
        );
        for warning in &report.warnings {
            println!("  warning: {warning}");
        }
    }
    Ok(0)
}
