//! The sync folder's layout, in the words a person at the facility looks for:
//! `Family, Given (Patient ID)/YYYY-MM-DD Description/`, holding one image per series
//! (`001 Description.jpg`, the gateway's thumbnail) and `catalogue.json` (the study
//! with its real values, each series and its thumbnail or why there is none).
//!
//! Names are made safe on every common file system (no separators, reserved
//! characters, control characters, trailing dots or spaces) and kept short; a study
//! folder is written whole beside the target and renamed into place, so a reader
//! never sees half a study.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::state::STATE_DIR;

/// The catalogue file in each study folder.
pub(super) const CATALOGUE: &str = "catalogue.json";

/// Longest file or folder name written (characters).
const LONGEST: usize = 80;

/// `text` as one file-name component: reserved and control characters replaced,
/// blanks collapsed, trailing dots and spaces dropped, at most `LONGEST` characters;
/// `fallback` when nothing is left.
pub(super) fn clean(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_whitespace() {
            ' '
        } else if c.is_control()
            || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        {
            '_'
        } else {
            c
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let mut out: String = out.chars().take(LONGEST).collect();
    while out.ends_with(['.', ' ']) {
        out.pop();
    }
    if out.is_empty() || out.chars().all(|c| c == '.') {
        return fallback.to_string();
    }
    out
}

/// A Person Name as people write it: `Family, Given Middle` from `Family^Given^Middle`
/// (the first non-empty of the alphabetic, ideographic and phonetic groups).
pub(super) fn person_name(pn: &str) -> String {
    let group = pn
        .split('=')
        .map(str::trim)
        .find(|g| !g.trim_matches('^').is_empty())
        .unwrap_or_default();
    let mut parts = group.split('^').map(str::trim);
    let family = parts.next().unwrap_or_default();
    let given: Vec<&str> = parts.take(2).filter(|p| !p.is_empty()).collect();
    match (family.is_empty(), given.is_empty()) {
        (_, true) => family.to_string(),
        (true, false) => given.join(" "),
        (false, false) => format!("{family}, {}", given.join(" ")),
    }
}

/// The patient's folder: `Family, Given (Patient ID)`.
pub(super) fn patient_folder(name: &str, id: &str) -> String {
    let name = person_name(name);
    let label = match (name.is_empty(), id.trim().is_empty()) {
        (false, false) => format!("{name} ({})", id.trim()),
        (false, true) => name,
        (true, false) => format!("({})", id.trim()),
        (true, true) => String::new(),
    };
    clean(&label, "Unknown patient")
}

/// `YYYY-MM-DD` from a DICOM date, or `undated`.
pub(super) fn iso_date(da: &str) -> String {
    let d = da.trim();
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        "undated".into()
    }
}

/// The study's folder: `YYYY-MM-DD Description` (the modalities when it has none).
pub(super) fn study_folder(date: &str, description: &str, modalities: &str) -> String {
    let what = if description.trim().is_empty() {
        modalities.replace('\\', " ")
    } else {
        description.to_string()
    };
    clean(&format!("{} {}", iso_date(date), what.trim()), "study")
}

/// A series' thumbnail file: `NNN Description.ext` (NNN the Series Number, or its
/// place in the study when it has none).
pub(super) fn series_file(
    place: usize,
    number: &str,
    description: &str,
    modality: &str,
    ext: &str,
) -> String {
    let n = number.trim().parse::<i64>().map_or(place as i64, |n| n);
    let what = if description.trim().is_empty() {
        modality
    } else {
        description
    };
    let stem = clean(&format!("{n:03} {}", what.trim()), &format!("{n:03}"));
    format!("{stem}.{ext}")
}

/// The path of a study folder given as `patient/study`, refused unless it is exactly
/// two plain components (nothing can climb out of the sync folder).
pub(super) fn inside(out: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && path.components().count() == 2).then(|| out.join(path))
}

/// The catalogue of one study (`catalogue.json`), in original values.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Catalogue {
    /// The patient.
    pub patient: PatientEntry,
    /// The study.
    pub study: StudyInfo,
    /// Its series, in order.
    pub series: Vec<SeriesEntry>,
    /// When this folder was written (RFC 3339, UTC).
    pub synced_at: String,
    /// The last change of the gateway's feed it reflects.
    pub change_seq: i64,
}

/// Patient attributes of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PatientEntry {
    /// Patient's Name (DICOM PN).
    pub name: String,
    /// Patient ID.
    pub id: String,
    /// Birth date, YYYYMMDD.
    pub birth_date: String,
    /// Sex.
    pub sex: String,
}

/// Study attributes of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub(super) struct StudyInfo {
    /// Original Study Instance UID.
    pub instance_uid: String,
    /// YYYY-MM-DD (or `undated`).
    pub date: String,
    /// Study Description.
    pub description: String,
    /// Accession Number.
    pub accession_number: String,
    /// Modalities in Study.
    pub modalities: Vec<String>,
    /// Instances at the gateway.
    pub instances: u64,
}

/// One series of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SeriesEntry {
    /// Original Series Instance UID.
    pub instance_uid: String,
    /// Series Number.
    pub number: String,
    /// Modality.
    pub modality: String,
    /// Series Description.
    pub description: String,
    /// Instances at the gateway.
    pub instances: u64,
    /// The thumbnail's file name in the study folder, if the gateway made one.
    pub thumbnail: Option<String>,
    /// Why there is no thumbnail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Writes a study folder at `target` (inside `out`) with `files` and the catalogue:
/// built under `.pacs-sync/` and renamed into place; what was at `target` before, and
/// the study's `previous` folder when it moved (a corrected name), are removed.
pub(super) fn write_study(
    out: &Path,
    target: &Path,
    previous: Option<&Path>,
    catalogue: &Catalogue,
    files: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    let work = out
        .join(STATE_DIR)
        .join(format!("work-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work)?;
    let written = (|| -> std::io::Result<()> {
        for (name, bytes) in files {
            std::fs::write(work.join(name), bytes)?;
        }
        let text = serde_json::to_vec_pretty(catalogue).map_err(std::io::Error::other)?;
        std::fs::write(work.join(CATALOGUE), text)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if target.exists() {
            let aside = out
                .join(STATE_DIR)
                .join(format!("old-{}", uuid::Uuid::new_v4().simple()));
            std::fs::rename(target, &aside)?;
            std::fs::rename(&work, target)?;
            std::fs::remove_dir_all(&aside)?;
        } else {
            std::fs::rename(&work, target)?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
    written?;
    if let Some(previous) = previous.filter(|p| *p != target) {
        remove_study(out, previous)?;
    }
    Ok(())
}

/// Removes a study folder, and its patient folder when that is left empty.
pub(super) fn remove_study(out: &Path, folder: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(folder) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(patient) = folder.parent().filter(|p| *p != out) {
        // Fails (and is left) when other studies are in it.
        let _ = std::fs::remove_dir(patient);
    }
    Ok(())
}

/// Removes what an interrupted run left under `.pacs-sync/` (half-built folders).
pub(super) fn clear_leftovers(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out.join(STATE_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("work-") || name.starts_with("old-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_people_expect_and_safe() {
        assert_eq!(person_name("Müller^Jürgen"), "Müller, Jürgen");
        assert_eq!(person_name("DOE^JOHN^Q^^"), "DOE, JOHN Q");
        assert_eq!(person_name("=山田^太郎=やまだ^たろう"), "山田, 太郎");
        assert_eq!(person_name("Yamada^Tarou=山田^太郎"), "Yamada, Tarou");
        assert_eq!(person_name("^^"), "");
        assert_eq!(
            patient_folder("Müller^Jürgen", "MRN-1"),
            "Müller, Jürgen (MRN-1)"
        );
        assert_eq!(patient_folder("", ""), "Unknown patient");
        assert_eq!(patient_folder("../..^x", "a/b"), ".._.., x (a_b)");
        assert_eq!(clean("..", "x"), "x");
        assert_eq!(clean("CT: head/neck?  \t ", "x"), "CT_ head_neck_");
        assert_eq!(clean("a\u{0}b", "x"), "a_b");
        assert_eq!(clean(&"é".repeat(200), "x").chars().count(), LONGEST);
        assert_eq!(
            study_folder("20261103", "CT CHEST", "CT"),
            "2026-11-03 CT CHEST"
        );
        assert_eq!(study_folder("", "", "CT\\PT"), "undated CT PT");
        assert_eq!(
            series_file(4, "2", "Axial 1.0", "CT", "jpg"),
            "002 Axial 1.0.jpg"
        );
        assert_eq!(series_file(4, "", "", "MR", "png"), "004 MR.png");
    }

    #[test]
    fn only_two_plain_components_are_inside() {
        let out = Path::new("/sync");
        assert_eq!(
            inside(out, "Doe, John (7)/2026-11-03 CT"),
            Some(PathBuf::from("/sync/Doe, John (7)/2026-11-03 CT"))
        );
        for bad in ["../x/y", "/etc/passwd", "a", "a/b/c", "a/../b", ""] {
            assert_eq!(inside(out, bad), None, "{bad}");
        }
    }

    #[test]
    fn a_study_folder_is_replaced_whole_and_moves_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let catalogue = Catalogue {
            patient: PatientEntry {
                name: "Doe^John".into(),
                id: "7".into(),
                birth_date: String::new(),
                sex: String::new(),
            },
            study: StudyInfo {
                instance_uid: "1.2.3".into(),
                date: "2026-11-03".into(),
                description: "CT".into(),
                accession_number: String::new(),
                modalities: vec!["CT".into()],
                instances: 1,
            },
            series: Vec::new(),
            synced_at: "2026-12-07T00:00:00Z".into(),
            change_seq: 1,
        };
        let first = out.join("Doe, John (7)/2026-11-03 CT");
        write_study(
            out,
            &first,
            None,
            &catalogue,
            &[("001 CT.jpg".into(), vec![1])],
        )
        .unwrap();
        assert_eq!(std::fs::read(first.join("001 CT.jpg")).unwrap(), [1]);
        write_study(
            out,
            &first,
            Some(&first),
            &catalogue,
            &[("002 CT.jpg".into(), vec![2])],
        )
        .unwrap();
        assert!(!first.join("001 CT.jpg").exists());
        assert!(first.join("002 CT.jpg").exists());
        let renamed = out.join("Doe, Jon (7)/2026-11-03 CT");
        write_study(out, &renamed, Some(&first), &catalogue, &[]).unwrap();
        assert!(renamed.join(CATALOGUE).exists());
        assert!(
            !out.join("Doe, John (7)").exists(),
            "empty patient folder left"
        );
        remove_study(out, &renamed).unwrap();
        assert!(!out.join("Doe, Jon (7)").exists());
        let leftovers: Vec<_> = std::fs::read_dir(out.join(STATE_DIR)).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
