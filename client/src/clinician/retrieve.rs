//! `pacs-client retrieve`: finds a study on the gateway by its original Study
//! Instance UID (mapped forward with the facility key) or by its pseudonymous one,
//! learns which (SOP class, transfer syntax) pairs it holds with SERIES and IMAGE
//! level C-FINDs, fetches it with a study-level C-GET on a second association,
//! re-identifies every instance with the facility key and writes
//! `DIR/<original study UID>/<original SOP instance UID>.dcm`. A study the gateway
//! does not hold but this client keeps local-only is copied from the spool.
//!
//! Instances are handled one by one as the C-GET brings them ([`InstanceConsumer`]),
//! so a study of any size needs the memory of one instance. Finding and fetching
//! ([`locate_target`], [`get_into`]) live in [`fetch`](crate::clinician::fetch), shared
//! with the viewer proxy; re-identification in
//! [`translate`](crate::clinician::translate).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use dicom_dictionary_std::tags;
use dicom_object::FileMetaTableBuilder;
use dimse::scp::StoreOutcome;
use dimse::scu::ReceivedInstance;
use indicatif::ProgressBar;
use phi::keys::KeyRing;

use crate::clinician::fetch::{InstanceConsumer, Target, get_into, locate_target};
use crate::clinician::translate::{candidates, reidentify_instance, text};
use crate::config::Config;
use crate::credentials::Login;

/// What one study's retrieval gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyResult {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// What went wrong (instance or study level), for people.
    pub failures: Vec<String>,
}

/// Writes each received instance, re-identified, as a Part-10 file under `out`.
struct FileWriter {
    ring: KeyRing,
    facility: String,
    out: PathBuf,
    result: Mutex<StudyResult>,
}

impl FileWriter {
    fn note(&self, outcome: Result<PathBuf, String>) {
        if let Ok(mut result) = self.result.lock() {
            match outcome {
                Ok(path) => result.written.push(path),
                Err(failure) => result.failures.push(failure),
            }
        }
    }
}

impl InstanceConsumer for FileWriter {
    async fn take(&self, instance: ReceivedInstance) -> StoreOutcome {
        match write_reidentified(&instance, &self.ring, &self.facility, &self.out) {
            Ok(path) => {
                self.note(Ok(path));
                StoreOutcome::success()
            }
            Err(e) => {
                self.note(Err(format!(
                    "instance {}: {e:#}",
                    instance.sop_instance_uid
                )));
                StoreOutcome::with(
                    dimse::Status::ProcessingFailure,
                    "the client could not re-identify or write the instance",
                )
            }
        }
    }
}

/// Retrieves one study given by an original or pseudonymous UID into `out`,
/// writing each instance as it arrives.
pub async fn retrieve_study(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    given: &str,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<StudyResult> {
    let facility = config.facility()?;
    for study in candidates(ring, given) {
        let target = Target {
            study,
            ..Target::default()
        };
        let Some(located) = locate_target(config, login, &target).await? else {
            continue;
        };
        let writer = Arc::new(FileWriter {
            ring: ring.clone(),
            facility: facility.to_string(),
            out: out.to_path_buf(),
            result: Mutex::new(StudyResult::default()),
        });
        let failures = get_into(config, login, &target, &located, writer.clone(), bar).await?;
        let mut result = writer.result.lock().map(|r| r.clone()).unwrap_or_default();
        result.failures.extend(failures);
        if result.written.is_empty() && result.failures.is_empty() {
            result
                .failures
                .push(format!("study {given}: the gateway sent no instance"));
        }
        return Ok(result);
    }
    copy_local(config, given, out, bar).await
}

/// A study the gateway does not hold, copied from the instances this client keeps
/// local-only (original files, as the modality sent them).
async fn copy_local(
    config: &Config,
    given: &str,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<StudyResult> {
    let outbox = crate::outbox::open(config).await?;
    let listed = outbox.local_instances(given).await;
    outbox.close().await;
    let listed = listed.context("cannot read the local store")?;
    if listed.is_empty() {
        bail!("study {given} is neither on the gateway nor in this client's local store");
    }
    if !crate::uid::usable_uid(given) {
        bail!("{given:?} is not a valid study UID");
    }
    let dir = out.join(given);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    bar.inc_length(listed.len() as u64);
    let mut result = StudyResult::default();
    for (_, sop, _, path) in listed {
        bar.inc(1);
        if !crate::uid::usable_uid(&sop) {
            result
                .failures
                .push(format!("instance {sop:?}: invalid UID in the local store"));
            continue;
        }
        let target = dir.join(format!("{sop}.dcm"));
        match std::fs::copy(&path, &target) {
            Ok(_) => result.written.push(target),
            Err(e) => result
                .failures
                .push(format!("instance {sop}: cannot copy {path}: {e}")),
        }
    }
    Ok(result)
}

/// Re-identifies one received instance and writes it as a Part-10 file.
pub fn write_reidentified(
    instance: &ReceivedInstance,
    ring: &KeyRing,
    facility: &str,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    let original = reidentify_instance(instance, ring, facility)?;
    let study = text(&original, tags::STUDY_INSTANCE_UID);
    let sop = text(&original, tags::SOP_INSTANCE_UID);
    let class = text(&original, tags::SOP_CLASS_UID);
    if !crate::uid::usable_uid(&study) || !crate::uid::usable_uid(&sop) {
        bail!("the re-identified instance has no valid study or SOP instance UID");
    }
    let dir = out.join(&study);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{sop}.dcm"));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax(instance.transfer_syntax.as_str());
    original
        .with_meta(meta)
        .context("cannot build the file meta")?
        .write_to_file(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
