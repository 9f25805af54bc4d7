//! `pacs-client export`: writes studies, re-identified, to a returnable medium (CD,
//! DVD, USB stick or a plain folder), the only place where whole studies leave the
//! facility with real names again. Phases, each on the progress bar:
//!
//! 1. **checks before anything is written**: the output folder is empty or new, the
//!    ISO tool and the font are present, no study is in the export ledger (unless
//!    `--again`);
//! 2. **fetch** ([`stage`]) into a private staging folder of the data dir: each
//!    study from the gateway (found by its pseudonymous UID, so it is this
//!    facility's; one C-GET,
//!    re-identified instance by instance with the facility key) or, when the gateway
//!    does not hold it, from this client's local-only store; then every study must be
//!    what was asked for and, with `--patient`, that patient's, else nothing is
//!    written;
//! 3. **file-set**: `DIR/DICOM/Pnnnnnnn/Snnnnnnn/SEnnnnnn/Innnnnnn` Part-10 files
//!    ([`layout`]) and **DICOMDIR** ([`dicomdir`]);
//! 4. **PDF**: `DIR/index.pdf` and `DIR/label.pdf` ([`pdf`]) with the gateway's series
//!    thumbnails ([`api`]);
//! 5. **ISO** for CD and DVD: `DIR/medium.iso` (ISO 9660 with Joliet and Rock Ridge,
//!    made by xorriso or genisoimage, [`iso`]) holding `DICOMDIR`, `DICOM/` and
//!    `INDEX.PDF`;
//! 6. the ledger rows, and the acknowledgement to the gateway
//!    ([`api::Session::acknowledge`]).
//!
//! Transfer syntaxes on the medium (PS3.11 general-purpose profiles): Explicit VR
//! Little Endian everywhere; a DVD or USB medium also keeps JPEG (baseline,
//! extended, lossless) and JPEG 2000 as they are (STD-GEN-DVD-JPEG/-J2K,
//! STD-GEN-USB-JPEG/-J2K); anything else is transcoded to Explicit VR Little Endian.

pub mod api;
pub mod dicomdir;
pub mod iso;
pub mod layout;
pub mod pdf;
pub mod stage;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use phi::keys::KeyRing;
use tracing::warn;

use crate::clinician::translate::wildcard_match;
use crate::config::Config;
use crate::credentials::Login;
use crate::outbox::ExportRow;

pub use api::Acknowledged;
use iso::{iso_tool, make_iso};
pub use stage::Staged;
use stage::{StagedStudy, Staging, stage_study};

/// Explicit VR Little Endian.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// The kind of medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    /// CD-R: file-set and an ISO 9660 image (STD-GEN-CD).
    Cd,
    /// DVD: file-set and an ISO 9660 image (STD-GEN-DVD-JPEG/-J2K).
    Dvd,
    /// USB stick: the file-set (STD-GEN-USB-JPEG/-J2K).
    Usb,
    /// A plain folder holding the file-set.
    Folder,
}

impl Medium {
    /// `cd`, `dvd`, `usb`, `folder`.
    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Cd => "cd",
            Medium::Dvd => "dvd",
            Medium::Usb => "usb",
            Medium::Folder => "folder",
        }
    }

    /// Whether an ISO 9660 image is made.
    fn iso(self) -> bool {
        matches!(self, Medium::Cd | Medium::Dvd)
    }

    /// The transfer syntax an instance stored in `ts` has on this medium.
    fn syntax_for(self, ts: &str) -> &str {
        let ts = ts.trim_end_matches(['\0', ' ']);
        let compressed_ok = [
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.51",
            "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91",
        ];
        if ts == EXPLICIT_VR_LE || (self != Medium::Cd && compressed_ok.contains(&ts)) {
            ts
        } else {
            EXPLICIT_VR_LE
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    /// Study Instance UIDs, original (or as stored at the gateway).
    pub studies: Vec<String>,
    /// The medium.
    pub medium: Medium,
    /// The output folder (empty or new).
    pub out: PathBuf,
    /// For a patient medium: the Patient ID, or a name (DICOM wildcards allowed).
    pub patient: Option<String>,
    /// Export studies already in the ledger again.
    pub again: bool,
    /// The OS user, for the ledger.
    pub os_user: String,
    /// Show the progress bar.
    pub progress: bool,
}

/// What one export did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Per study: original UID and instances written.
    pub studies: Vec<(String, usize)>,
    /// The DICOMDIR.
    pub dicomdir: PathBuf,
    /// The ISO image (CD, DVD).
    pub iso: Option<PathBuf>,
    /// The index print.
    pub index_pdf: PathBuf,
    /// The label sheet.
    pub label_pdf: PathBuf,
    /// Warnings for people (missing thumbnails, acknowledgements not recorded).
    pub warnings: Vec<String>,
}

/// Why an export was refused before anything was written.
#[derive(Debug, thiserror::Error)]
#[error("export refused: {0}; nothing was written")]
pub struct Refused(pub String);

/// Whether `patient` (an ID, a name or a name pattern) names the instance's patient.
fn same_patient(patient: &str, staged: &Staged) -> bool {
    let [name, id, ..] = &staged.patient;
    let wanted = patient.trim();
    if wanted.is_empty() {
        return false;
    }
    if wanted == id {
        return true;
    }
    let plain = |s: &str| {
        s.replace('^', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (wanted, name) = (plain(wanted), plain(name));
    if wanted.contains(['*', '?']) {
        return wildcard_match(&wanted, &name, true);
    }
    wanted.to_lowercase() == name.to_lowercase()
}

/// Refuses unless `out` is missing or an empty folder.
fn check_out(out: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Refused(format!(
                    "{} is not empty: a medium is written whole into an empty or new folder",
                    out.display()
                ))
                .into());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", out.display())),
    }
}

fn phase(bar: &ProgressBar, name: &str, len: u64) {
    bar.set_prefix(name.to_string());
    bar.set_length(len);
    bar.set_position(0);
}

/// Exports the studies of `request` (see the module doc).
pub async fn export(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    request: &Request,
) -> anyhow::Result<Report> {
    let out = &request.out;
    // 1. Checks before anything is fetched or written.
    if request.studies.is_empty() {
        bail!("no study to export");
    }
    for given in &request.studies {
        if !crate::uid::usable_uid(given) {
            return Err(Refused(format!("{given:?} is not a valid Study Instance UID")).into());
        }
    }
    check_out(out)?;
    if request.medium.iso() {
        iso_tool()?;
    }
    let font = pdf::font_path()?;
    let outbox = crate::outbox::open(config).await?;
    let ledger = check_ledger(&outbox, &request.studies, request.again).await;
    if let Err(e) = ledger {
        outbox.close().await;
        return Err(e);
    }

    let bar = if request.progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // 2. Fetch into staging, then check what arrived.
    let staging_root = config.data_dir.join("export-staging");
    crate::at_rest::private_dir(&staging_root)
        .with_context(|| format!("cannot create {}", staging_root.display()))?;
    let staging = Staging(staging_root.join(uuid::Uuid::new_v4().to_string()));
    phase(&bar, "fetch", 0);
    let mut studies = Vec::new();
    for (n, given) in request.studies.iter().enumerate() {
        bar.set_message(given.clone());
        let dir = staging.0.join(format!("{n:04}"));
        match stage_study(config, ring, login, given, request.medium, &dir, &bar).await {
            Ok(study) => studies.push(study),
            Err(e) => {
                bar.finish_and_clear();
                outbox.close().await;
                return Err(e);
            }
        }
    }
    if let Err(e) = check_staged(ring, &studies, request.patient.as_deref()) {
        bar.finish_and_clear();
        outbox.close().await;
        return Err(e);
    }
    let originals: Vec<String> = studies
        .iter()
        .map(|s| s.instances[0].study[0].clone())
        .collect();
    if let Err(e) = check_ledger(&outbox, &originals, request.again).await {
        bar.finish_and_clear();
        outbox.close().await;
        return Err(e);
    }

    // 3 to 5. File-set, DICOMDIR, PDFs, ISO; a half-written medium is removed.
    let existed = out.exists();
    let result = write_medium(config, ring, login, request, &studies, &font, &bar).await;
    bar.finish_and_clear();
    let mut report = match result {
        Ok(report) => report,
        Err(e) => {
            outbox.close().await;
            clear_out(out, existed);
            return Err(e.context(format!(
                "the medium could not be written; {} was emptied again",
                out.display()
            )));
        }
    };

    // 6. Ledger, then acknowledgements.
    let now = crate::outbox::now_millis();
    let rows: Vec<ExportRow> = report
        .studies
        .iter()
        .map(|(study, count)| ExportRow {
            study_uid: study.clone(),
            medium: request.medium.as_str().to_string(),
            exported_at: now,
            out_dir: out.display().to_string(),
            instances: *count as i64,
            os_user: request.os_user.clone(),
        })
        .collect();
    let recorded = outbox.record_exports(&rows).await;
    outbox.close().await;
    recorded.context("the medium is written but the export ledger could not be updated")?;
    acknowledge_all(config, login, request.medium, &studies, &mut report).await;
    Ok(report)
}

/// Removes what a failed export wrote to `out` (checked empty or new before).
fn clear_out(out: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(out);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(out) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Refuses studies already exported, unless `again`.
async fn check_ledger(
    outbox: &crate::outbox::Outbox,
    studies: &[String],
    again: bool,
) -> anyhow::Result<()> {
    if again {
        return Ok(());
    }
    for study in studies {
        let earlier = outbox
            .exports_of(study)
            .await
            .context("cannot read the export ledger")?;
        if let Some(last) = earlier.last() {
            let when = time::OffsetDateTime::from_unix_timestamp(last.exported_at / 1000)
                .map(|t| t.date().to_string())
                .unwrap_or_default();
            return Err(Refused(format!(
                "study {study} was already exported to {} on {when} into {} ({} instance(s)); add --again to export it once more",
                last.medium, last.out_dir, last.instances
            ))
            .into());
        }
    }
    Ok(())
}

/// Every staged study must be the one asked for (this facility's) and, with
/// `patient`, that patient's.
fn check_staged(
    ring: &KeyRing,
    studies: &[StagedStudy],
    patient: Option<&str>,
) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for study in studies {
        let Some(first) = study.instances.first() else {
            return Err(Refused(format!("study {} has no instance", study.given)).into());
        };
        for staged in &study.instances {
            let original = &staged.study[0];
            if original != &study.given && phi::pseudonym::uid(ring, original) != study.given {
                return Err(Refused(format!(
                    "study {}: an instance belongs to another study ({original})",
                    study.given
                ))
                .into());
            }
            if let Some(patient) = patient
                && !same_patient(patient, staged)
            {
                return Err(Refused(format!(
                    "study {} is not the patient {patient:?}'s (it belongs to patient ID {:?})",
                    study.given, staged.patient[1]
                ))
                .into());
            }
        }
        if !seen.insert(first.study[0].clone()) {
            return Err(Refused(format!("study {} is asked for twice", first.study[0])).into());
        }
    }
    Ok(())
}

/// Phases 3 to 5: the file-set, DICOMDIR, PDFs and ISO in `request.out`.
async fn write_medium(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    request: &Request,
    studies: &[StagedStudy],
    font: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Report> {
    let out = &request.out;
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    let label = format!("PACS{stamp}");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let total: usize = studies.iter().map(|s| s.instances.len()).sum();
    phase(bar, "file-set", total as u64);
    let tree = layout::plan(studies.iter().map(|s| s.instances.as_slice()));
    for (staged, components) in tree.files() {
        let target = components.iter().fold(out.clone(), |p, c| p.join(c));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(&staged.path, &target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        bar.inc(1);
    }

    phase(bar, "DICOMDIR", 1);
    let uid = format!("2.25.{}", uuid::Uuid::new_v4().as_u128());
    let bytes = dicomdir::encode(&label, &uid, &tree.records())?;
    let dicomdir_path = out.join("DICOMDIR");
    std::fs::write(&dicomdir_path, bytes)
        .with_context(|| format!("cannot write {}", dicomdir_path.display()))?;
    bar.inc(1);

    let series_count: usize = tree
        .patients
        .iter()
        .flat_map(|p| &p.studies)
        .map(|s| s.series.len())
        .sum();
    phase(bar, "PDF", series_count as u64 + 2);
    let mut warnings = Vec::new();
    let session = match api::Session::login(config, login).await {
        Ok(session) => Some(session),
        Err(e) => {
            warnings.push(format!("no thumbnails: {e:#}"));
            None
        }
    };
    let gateway_of = |study_uid: &str| {
        studies
            .iter()
            .find(|s| s.instances.first().is_some_and(|i| i.study[0] == study_uid))
            .and_then(|s| s.at_gateway.clone())
    };
    let mut sheet = pdf::Sheet {
        label: label.clone(),
        subtitle: format!(
            "{} written {} UTC",
            request.medium.as_str().to_uppercase(),
            format_args!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute()
            )
        ),
        patients: Vec::new(),
    };
    for patient in &tree.patients {
        let mut entry = pdf::PatientEntry {
            name: display_name(&patient.first().patient[0]),
            id: patient.first().patient[1].clone(),
            birth_date: display_date(&patient.first().patient[2]),
            studies: Vec::new(),
        };
        for study in &patient.studies {
            let first = study.first();
            let at_gateway = gateway_of(&first.study[0]);
            let mut modalities: Vec<String> = Vec::new();
            let mut study_entry = pdf::StudyEntry {
                date: display_date(&first.study[1]),
                description: first.study[4].clone(),
                images: study.series.iter().map(|s| s.instances.len()).sum(),
                ..pdf::StudyEntry::default()
            };
            for series in &study.series {
                let head = &series.instances[0];
                if !modalities.contains(&head.series[2]) {
                    modalities.push(head.series[2].clone());
                }
                let (image, no_image) = match (&session, &at_gateway) {
                    (Some(session), Some(gateway_study)) => {
                        let gateway_series = phi::pseudonym::uid(ring, &head.series[0]);
                        match session.thumbnail(gateway_study, &gateway_series).await {
                            Ok(t) => (Some((t.bytes, t.png)), None),
                            Err(why) => (None, Some(why)),
                        }
                    }
                    (None, _) => (None, Some("the gateway's API is not reachable".into())),
                    (_, None) => (None, Some("local-only study".into())),
                };
                if let Some(why) = &no_image {
                    warnings.push(format!(
                        "series {} of study {}: no representative image ({why})",
                        head.series[0], first.study[0]
                    ));
                }
                study_entry.series.push(pdf::SeriesEntry {
                    number: head.series[1].clone(),
                    modality: head.series[2].clone(),
                    description: head.series[3].clone(),
                    images: series.instances.len(),
                    image,
                    no_image,
                });
                bar.inc(1);
            }
            study_entry.modalities = modalities.join(", ");
            entry.studies.push(study_entry);
        }
        sheet.patients.push(entry);
    }
    if let Some(session) = session {
        session.logout().await;
    }
    let index_pdf = out.join("index.pdf");
    std::fs::write(&index_pdf, pdf::index(&sheet, font)?)
        .with_context(|| format!("cannot write {}", index_pdf.display()))?;
    bar.inc(1);
    let label_pdf = out.join("label.pdf");
    std::fs::write(&label_pdf, pdf::label(&sheet, font)?)
        .with_context(|| format!("cannot write {}", label_pdf.display()))?;
    bar.inc(1);

    let iso = if request.medium.iso() {
        phase(bar, "ISO", 1);
        let iso = out.join("medium.iso");
        make_iso(out, &iso, &label)?;
        bar.inc(1);
        Some(iso)
    } else {
        None
    };
    Ok(Report {
        studies: studies
            .iter()
            .map(|s| (s.instances[0].study[0].clone(), s.instances.len()))
            .collect(),
        dicomdir: dicomdir_path,
        iso,
        index_pdf,
        label_pdf,
        warnings,
    })
}

/// Acknowledges every study held at the gateway; never fails the export.
async fn acknowledge_all(
    config: &Config,
    login: &Login,
    medium: Medium,
    studies: &[StagedStudy],
    report: &mut Report,
) {
    let gateway_studies: Vec<&String> = studies
        .iter()
        .filter_map(|s| s.at_gateway.as_ref())
        .collect();
    if gateway_studies.is_empty() {
        return;
    }
    let session = match api::Session::login(config, login).await {
        Ok(session) => session,
        Err(e) => {
            let why = format!("the export was not acknowledged to the gateway: {e:#}");
            warn!("{why}");
            report.warnings.push(why);
            return;
        }
    };
    for study in gateway_studies {
        match session.acknowledge(study, medium.as_str()).await {
            Acknowledged::Yes => {}
            Acknowledged::NoRoute => {
                let why = format!(
                    "the gateway has no lifecycle route yet (404): export of {study} not acknowledged there"
                );
                warn!("{why}");
                report.warnings.push(why);
            }
            Acknowledged::Failed(e) => {
                let why = format!("the export of {study} was not acknowledged: {e}");
                warn!("{why}");
                report.warnings.push(why);
            }
        }
    }
    session.logout().await;
}

/// `Doe^John` as `Doe John` (groups joined by ` = `).
fn display_name(pn: &str) -> String {
    pn.split('=')
        .map(|group| {
            group
                .split('^')
                .filter(|c| !c.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|g| !g.is_empty())
        .collect::<Vec<_>>()
        .join(" = ")
}

/// `20240315` as `2024-03-15`; other values as they are.
fn display_date(da: &str) -> String {
    if da.len() == 8 && da.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &da[..4], &da[4..6], &da[6..])
    } else {
        da.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(name: &str, id: &str) -> Staged {
        Staged {
            patient: [name.into(), id.into(), String::new(), String::new()],
            ..Staged::default()
        }
    }

    #[test]
    fn patient_by_id_or_name() {
        let s = staged("Müller^Jürgen", "MRN-1");
        assert!(same_patient("MRN-1", &s));
        assert!(same_patient("müller^jürgen", &s));
        assert!(same_patient("Müller Jürgen", &s));
        assert!(same_patient("Mül*", &s));
        assert!(!same_patient("MRN-2", &s));
        assert!(!same_patient("Müller^Hans", &s));
        assert!(!same_patient("", &s));
        assert!(same_patient("山田^太郎", &staged("山田^太郎", "JP-1")));
    }

    #[test]
    fn syntaxes_per_medium() {
        let jpeg = "1.2.840.10008.1.2.4.50";
        assert_eq!(Medium::Cd.syntax_for(jpeg), EXPLICIT_VR_LE);
        assert_eq!(Medium::Dvd.syntax_for(jpeg), jpeg);
        assert_eq!(Medium::Usb.syntax_for("1.2.840.10008.1.2"), EXPLICIT_VR_LE);
        assert_eq!(
            Medium::Folder.syntax_for("1.2.840.10008.1.2.1\0"),
            EXPLICIT_VR_LE
        );
    }

    #[test]
    fn names_and_dates_for_people() {
        assert_eq!(
            display_name("Yamada^Tarou=山田^太郎"),
            "Yamada Tarou = 山田 太郎"
        );
        assert_eq!(display_name("Doe^^^"), "Doe");
        assert_eq!(display_date("20240315"), "2024-03-15");
        assert_eq!(display_date("2024"), "2024");
    }
}
