//! Fetching the studies of an export into a private staging folder of the data
//! dir before anything is written to the medium: from the gateway (one C-GET per
//! study, each instance converted to the medium's transfer syntax and re-identified
//! as it arrives) or, for a study the gateway does not hold, from this client's
//! local-only store; and the header of each staged instance ([`Staged`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dimse::scp::StoreOutcome;
use dimse::scu::ReceivedInstance;
use indicatif::ProgressBar;
use phi::keys::KeyRing;

use super::{Medium, Refused};
use crate::clinician::fetch::{InstanceConsumer, Target, get_into, locate_target};
use crate::clinician::translate::{candidates, reidentify_instance, text};
use crate::config::Config;
use crate::credentials::Login;

/// The header of one staged (re-identified) instance.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    /// The staged Part-10 file.
    pub path: PathBuf,
    /// Its transfer syntax.
    pub transfer_syntax: String,
    /// SOP Class UID.
    pub sop_class: String,
    /// SOP Instance UID.
    pub sop_instance: String,
    /// Patient Name, Patient ID, birth date, sex.
    pub patient: [String; 4],
    /// Study Instance UID, date, time, accession, description, Study ID.
    pub study: [String; 6],
    /// Series Instance UID, number, modality, description.
    pub series: [String; 4],
    /// Instance Number.
    pub instance_number: String,
}

impl Staged {
    pub(super) fn read(path: &Path) -> anyhow::Result<Staged> {
        let file = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .with_context(|| format!("cannot read the staged {}", path.display()))?;
        let transfer_syntax = file
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_string();
        let o: &InMemDicomObject = &file;
        let t = |tag| text(o, tag);
        Ok(Staged {
            path: path.to_path_buf(),
            transfer_syntax,
            sop_class: t(tags::SOP_CLASS_UID),
            sop_instance: t(tags::SOP_INSTANCE_UID),
            patient: [
                t(tags::PATIENT_NAME),
                t(tags::PATIENT_ID),
                t(tags::PATIENT_BIRTH_DATE),
                t(tags::PATIENT_SEX),
            ],
            study: [
                t(tags::STUDY_INSTANCE_UID),
                t(tags::STUDY_DATE),
                t(tags::STUDY_TIME),
                t(tags::ACCESSION_NUMBER),
                t(tags::STUDY_DESCRIPTION),
                t(tags::STUDY_ID),
            ],
            series: [
                t(tags::SERIES_INSTANCE_UID),
                t(tags::SERIES_NUMBER),
                t(tags::MODALITY),
                t(tags::SERIES_DESCRIPTION),
            ],
            instance_number: t(tags::INSTANCE_NUMBER),
        })
    }
}

/// A private folder under the data dir, removed when dropped.
pub(super) struct Staging(pub(super) PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes each instance C-GET brings, converted to the medium's syntax and
/// re-identified, as a Part-10 file in the staging folder.
struct StagingWriter {
    ring: KeyRing,
    facility: String,
    dir: PathBuf,
    medium: Medium,
    seq: AtomicUsize,
    result: Mutex<(Vec<PathBuf>, Vec<String>)>,
}

impl StagingWriter {
    fn write(&self, mut instance: ReceivedInstance) -> anyhow::Result<PathBuf> {
        let target = self
            .medium
            .syntax_for(&instance.transfer_syntax)
            .to_string();
        if target != instance.transfer_syntax.trim_end_matches(['\0', ' ']) {
            instance.data =
                dimse::transcode::transcode(&instance.data, &instance.transfer_syntax, &target)
                    .context("cannot convert to the medium's transfer syntax")?;
            instance.transfer_syntax = target.clone();
        }
        let original = reidentify_instance(&instance, &self.ring, &self.facility)?;
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{n:08}.dcm"));
        write_part10(original, &target, &path)?;
        Ok(path)
    }
}

impl InstanceConsumer for StagingWriter {
    async fn take(&self, instance: ReceivedInstance) -> StoreOutcome {
        let sop = instance.sop_instance_uid.clone();
        let outcome = self.write(instance);
        let Ok(mut result) = self.result.lock() else {
            return StoreOutcome::with(dimse::Status::ProcessingFailure, "internal error");
        };
        match outcome {
            Ok(path) => {
                result.0.push(path);
                StoreOutcome::success()
            }
            Err(e) => {
                result.1.push(format!("instance {sop}: {e:#}"));
                StoreOutcome::with(
                    dimse::Status::ProcessingFailure,
                    "the client could not re-identify or write the instance",
                )
            }
        }
    }
}

/// Writes `obj` as a Part-10 file in `ts`.
pub(super) fn write_part10(obj: InMemDicomObject, ts: &str, path: &Path) -> anyhow::Result<()> {
    let class = text(&obj, tags::SOP_CLASS_UID);
    let sop = text(&obj, tags::SOP_INSTANCE_UID);
    if !crate::uid::usable_uid(&sop) {
        bail!("the instance has no valid SOP Instance UID");
    }
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax(ts);
    obj.with_meta(meta)
        .context("cannot build the file meta")?
        .write_to_file(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// One study staged: where it came from and its instances.
pub(super) struct StagedStudy {
    /// The UID asked for.
    pub(super) given: String,
    /// The gateway's (pseudonymous) Study Instance UID; `None` for a local-only study.
    pub(super) at_gateway: Option<String>,
    /// The instances.
    pub(super) instances: Vec<Staged>,
}

/// Fetches `given` into `dir`: from the gateway, else from the local-only store.
pub(super) async fn stage_study(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    given: &str,
    medium: Medium,
    dir: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<StagedStudy> {
    let facility = config.facility()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for study in candidates(ring, given) {
        let target = Target {
            study: study.clone(),
            ..Target::default()
        };
        let Some(located) = locate_target(config, login, &target).await? else {
            continue;
        };
        let writer = Arc::new(StagingWriter {
            ring: ring.clone(),
            facility: facility.to_string(),
            dir: dir.to_path_buf(),
            medium,
            seq: AtomicUsize::new(0),
            result: Mutex::new((Vec::new(), Vec::new())),
        });
        let mut failures = get_into(config, login, &target, &located, writer.clone(), bar).await?;
        let (paths, more) = writer.result.lock().map(|r| r.clone()).unwrap_or_default();
        failures.extend(more);
        if !failures.is_empty() {
            bail!(
                "study {given} could not be fetched whole: {}",
                failures.join("; ")
            );
        }
        if paths.len() != located.count {
            bail!(
                "study {given}: the gateway holds {} instance(s) but sent {}",
                located.count,
                paths.len()
            );
        }
        let instances = paths
            .iter()
            .map(|p| Staged::read(p))
            .collect::<Result<_, _>>()?;
        return Ok(StagedStudy {
            given: given.to_string(),
            at_gateway: Some(study),
            instances,
        });
    }
    let outbox = crate::outbox::open(config).await?;
    let listed = outbox.local_instances(given).await;
    outbox.close().await;
    let listed = listed.context("cannot read the local store")?;
    if listed.is_empty() {
        return Err(Refused(format!(
            "study {given} is not this facility's: the gateway holds no such study for facility {facility} and this client does not keep it locally"
        ))
        .into());
    }
    bar.inc_length(listed.len() as u64);
    let mut instances = Vec::new();
    for (n, (_, sop, ts, path)) in listed.into_iter().enumerate() {
        bar.inc(1);
        let staged = dir.join(format!("{n:08}.dcm"));
        let target = medium.syntax_for(&ts).to_string();
        if target == ts.trim_end_matches(['\0', ' ']) {
            std::fs::copy(&path, &staged)
                .with_context(|| format!("instance {sop}: cannot copy {path}"))?;
        } else {
            let file = OpenFileOptions::new()
                .open_file(&path)
                .with_context(|| format!("instance {sop}: cannot read {path}"))?;
            let from = file.meta().transfer_syntax().to_string();
            let obj = file.into_inner();
            let mut bytes = Vec::new();
            let registry_ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
            let source = dicom_encoding::TransferSyntaxIndex::get(&registry_ts, &from)
                .with_context(|| format!("instance {sop}: unknown transfer syntax {from}"))?;
            obj.write_dataset_with_ts(&mut bytes, source)
                .with_context(|| format!("instance {sop}: cannot encode"))?;
            let converted = dimse::transcode::transcode(&bytes, &from, &target)
                .with_context(|| format!("instance {sop}: cannot convert to {target}"))?;
            let explicit = dicom_encoding::TransferSyntaxIndex::get(&registry_ts, &target)
                .context("no Explicit VR Little Endian")?;
            let obj = InMemDicomObject::read_dataset_with_ts(converted.as_slice(), explicit)
                .with_context(|| format!("instance {sop}: cannot decode the converted data set"))?;
            write_part10(obj, &target, &staged)?;
        }
        instances.push(Staged::read(&staged)?);
    }
    Ok(StagedStudy {
        given: given.to_string(),
        at_gateway: None,
        instances,
    })
}
