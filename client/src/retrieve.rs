//! `pacs-client retrieve`: finds a study on the gateway by its original Study
//! Instance UID (mapped forward with the facility key) or by its pseudonymous one,
//! learns which (SOP class, transfer syntax) pairs it holds with SERIES and IMAGE
//! level C-FINDs, fetches it with a study-level C-GET on a second association,
//! re-identifies every instance with the facility key and writes
//! `DIR/<original study UID>/<original SOP instance UID>.dcm`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::assoc::{AcceptedContext, EXPLICIT_VR_LE, IMPLICIT_VR_LE, RoleSelection};
use dimse::command::{CStoreRq, SubOperations};
use dimse::qr::{STUDY_ROOT_FIND, STUDY_ROOT_GET};
use dimse::scp::StoreOutcome;
use dimse::scu::{
    MemorySink, MemoryStore, Proposal, ReceivedInstance, ScuAssociation, StoreHandler,
};
use indicatif::ProgressBar;
use phi::keys::KeyRing;

use crate::config::Config;
use crate::credentials::Login;
use crate::query::{connect, decode, encode, text};

/// What one study's retrieval gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyResult {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// What went wrong (instance or study level), for people.
    pub failures: Vec<String>,
}

/// The gateway (pseudonymous) UIDs to try for a UID given on the command line: the
/// forward mapping first, and the UID itself when it looks pseudonymous (`2.25.`;
/// an original may also use that root, hence both).
pub fn candidates(ring: &KeyRing, given: &str) -> Vec<String> {
    let mut out = vec![phi::pseudonym::uid(ring, given)];
    if given.starts_with(phi::pseudonym::UID_ROOT) {
        out.push(given.to_string());
    }
    out
}

fn identifier(level: &str, keys: &[(dicom_core::Tag, &str)]) -> anyhow::Result<Vec<u8>> {
    let mut obj = InMemDicomObject::from_element_iter([DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level),
    )]);
    for (tag, value) in keys {
        // Every key used here is a UID.
        obj.put(DataElement::new(*tag, VR::UI, PrimitiveValue::from(*value)));
    }
    encode(&obj)
}

async fn find(assoc: &mut ScuAssociation, id: Vec<u8>) -> anyhow::Result<Vec<InMemDicomObject>> {
    let found = assoc.find(STUDY_ROOT_FIND, &id).await?;
    if !found.response.status.is_success() {
        bail!("the gateway refused a C-FIND: {:?}", found.response.status);
    }
    found.matches.iter().map(|m| decode(m)).collect()
}

/// The gateway study UID and its (SOP class, transfer syntax) pairs, if found.
async fn locate(
    assoc: &mut ScuAssociation,
    candidates: &[String],
) -> anyhow::Result<Option<(String, Vec<(String, String)>)>> {
    for study in candidates {
        let series = find(
            assoc,
            identifier(
                "SERIES",
                &[
                    (tags::STUDY_INSTANCE_UID, study),
                    (tags::SERIES_INSTANCE_UID, ""),
                ],
            )?,
        )
        .await?;
        if series.is_empty() {
            continue;
        }
        let mut pairs = Vec::new();
        for s in &series {
            let series_uid = text(s, tags::SERIES_INSTANCE_UID);
            let keys = [
                (tags::STUDY_INSTANCE_UID, study.as_str()),
                (tags::SERIES_INSTANCE_UID, series_uid.as_str()),
                (tags::SOP_INSTANCE_UID, ""),
                (tags::SOP_CLASS_UID, ""),
                (tags::AVAILABLE_TRANSFER_SYNTAX_UID, ""),
            ];
            for image in find(assoc, identifier("IMAGE", &keys)?).await? {
                let class = text(&image, tags::SOP_CLASS_UID);
                let ts = text(&image, tags::AVAILABLE_TRANSFER_SYNTAX_UID);
                let syntaxes = if ts.is_empty() {
                    vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()]
                } else {
                    vec![ts]
                };
                for ts in syntaxes {
                    let pair = (class.clone(), ts);
                    if !class.is_empty() && !pairs.contains(&pair) {
                        pairs.push(pair);
                    }
                }
            }
        }
        return Ok(Some((study.clone(), pairs)));
    }
    Ok(None)
}

/// A [`MemoryStore`] that moves a progress bar.
struct Progress {
    store: MemoryStore,
    bar: ProgressBar,
}

impl StoreHandler for Progress {
    type Sink = MemorySink;

    async fn begin(
        &mut self,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<MemorySink, StoreOutcome> {
        self.bar.inc(1);
        self.store.begin(request, context).await
    }

    fn progress(&mut self, counts: &SubOperations) -> ControlFlow<()> {
        if let (Some(done), Some(left)) = (counts.completed, counts.remaining) {
            let failed = counts.failed.unwrap_or(0) + counts.warning.unwrap_or(0);
            self.bar
                .set_length(u64::from(done) + u64::from(left) + u64::from(failed));
        }
        ControlFlow::Continue(())
    }
}

/// What a study-level C-GET from the gateway brought back, still de-identified.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The instances received.
    pub instances: Vec<ReceivedInstance>,
    /// What went wrong at study level, for people.
    pub failures: Vec<String>,
}

/// Fetches one study given by an original or pseudonymous UID from the gateway
/// (de-identified, in memory), moving `bar` per instance. `Ok(None)` when the
/// gateway does not hold the study.
pub async fn fetch_study(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    given: &str,
    bar: &ProgressBar,
) -> anyhow::Result<Option<Fetched>> {
    let find_proposal = Proposal {
        abstract_syntax: STUDY_ROOT_FIND.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    };
    let mut assoc = connect(config, login, &[find_proposal], Vec::new()).await?;
    let located = locate(&mut assoc, &candidates(ring, given)).await;
    let _ = assoc.release().await;
    let Some((study, pairs)) = located? else {
        return Ok(None);
    };
    if pairs.len() > 120 {
        bail!("study {given} mixes too many SOP classes and transfer syntaxes for one C-GET");
    }
    let mut proposals = vec![Proposal::query(STUDY_ROOT_GET)];
    let mut roles: Vec<RoleSelection> = Vec::new();
    for (class, ts) in &pairs {
        proposals.push(Proposal {
            abstract_syntax: class.clone(),
            transfer_syntaxes: vec![ts.clone()],
        });
        if !roles.iter().any(|r| r.sop_class_uid == *class) {
            roles.push(RoleSelection::scp(class.clone()));
        }
    }
    let mut assoc = connect(config, login, &proposals, roles).await?;
    let id = identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, &study)])?;
    let mut handler = Progress {
        store: MemoryStore::default(),
        bar: bar.clone(),
    };
    let outcome = assoc.get(STUDY_ROOT_GET, &id, &mut handler).await;
    let _ = assoc.release().await;
    let outcome = outcome.with_context(|| format!("C-GET of study {given} failed"))?;
    let mut fetched = Fetched::default();
    if !outcome.status.is_success() {
        fetched.failures.push(format!(
            "study {given}: C-GET ended with {:?} ({} failed){}",
            outcome.status,
            outcome.sub_operations.failed.unwrap_or(0),
            outcome
                .error_comment
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        ));
    }
    fetched.instances = handler.store.received();
    if fetched.instances.is_empty() && fetched.failures.is_empty() {
        fetched
            .failures
            .push(format!("study {given}: the gateway sent no instance"));
    }
    Ok(Some(fetched))
}

/// Retrieves one study given by an original or pseudonymous UID into `out`.
pub async fn retrieve_study(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    given: &str,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<StudyResult> {
    let facility = config.facility()?;
    let Some(fetched) = fetch_study(config, ring, login, given, bar).await? else {
        bail!("study {given} is not on the gateway (local-only studies are not served yet)");
    };
    let mut result = StudyResult {
        written: Vec::new(),
        failures: fetched.failures,
    };
    for instance in &fetched.instances {
        match write_reidentified(instance, ring, facility, out) {
            Ok(path) => result.written.push(path),
            Err(e) => result
                .failures
                .push(format!("instance {}: {e:#}", instance.sop_instance_uid)),
        }
    }
    Ok(result)
}

/// Decodes one received instance and restores its original identifiers and UIDs.
pub fn reidentify_instance(
    instance: &ReceivedInstance,
    ring: &KeyRing,
    facility: &str,
) -> anyhow::Result<InMemDicomObject> {
    let ts = TransferSyntaxRegistry
        .get(&instance.transfer_syntax)
        .with_context(|| format!("unknown transfer syntax {}", instance.transfer_syntax))?;
    let object = InMemDicomObject::read_dataset_with_ts(instance.data.as_slice(), ts)
        .context("cannot decode the received data set")?;
    phi::deid::reidentify(&object, ring, facility)
        .context("cannot re-identify (sealed with another facility key?)")
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
    if !crate::edge::valid_uid(&study) || !crate::edge::valid_uid(&sop) {
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
