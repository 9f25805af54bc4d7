//! The File-set's layout: patients, their studies, series and instances, numbered in
//! order of appearance, and their File IDs (PS3.10 section 8.2, PS3.12 for the
//! media): at most 8 components of up to 8 characters from `A-Z 0-9 _`, here
//! `DICOM/Pnnnnnnn/Snnnnnnn/SEnnnnnn/Innnnnnn`. No UID or name ever appears in a
//! File ID.

use super::Staged;
use super::dicomdir::{FileRef, Record};

/// One series and its instances (sorted by Instance Number, then SOP Instance UID).
#[derive(Debug, Clone, Default)]
pub struct SeriesNode {
    /// The instances.
    pub instances: Vec<Staged>,
}

/// One study and its series (sorted by Series Number, then UID).
#[derive(Debug, Clone, Default)]
pub struct StudyNode {
    /// The series.
    pub series: Vec<SeriesNode>,
}

impl StudyNode {
    /// Its first instance.
    pub fn first(&self) -> &Staged {
        &self.series[0].instances[0]
    }
}

/// One patient (same Patient ID and name) and their studies, in the order asked.
#[derive(Debug, Clone, Default)]
pub struct PatientNode {
    /// The studies.
    pub studies: Vec<StudyNode>,
}

impl PatientNode {
    /// Its first instance.
    pub fn first(&self) -> &Staged {
        self.studies[0].first()
    }
}

/// The whole medium.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The patients.
    pub patients: Vec<PatientNode>,
}

/// Numeric order when both are numbers, else text order.
fn number_then_text(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// Groups the staged studies (each a non-empty list of instances of one study).
pub fn plan<'a>(studies: impl Iterator<Item = &'a [Staged]>) -> Tree {
    let mut tree = Tree::default();
    for instances in studies {
        let Some(first) = instances.first() else {
            continue;
        };
        let mut series: Vec<SeriesNode> = Vec::new();
        for staged in instances {
            match series
                .iter_mut()
                .find(|s| s.instances[0].series[0] == staged.series[0])
            {
                Some(node) => node.instances.push(staged.clone()),
                None => series.push(SeriesNode {
                    instances: vec![staged.clone()],
                }),
            }
        }
        for node in &mut series {
            node.instances.sort_by(|a, b| {
                number_then_text(&a.instance_number, &b.instance_number)
                    .then_with(|| a.sop_instance.cmp(&b.sop_instance))
            });
        }
        series.sort_by(|a, b| {
            number_then_text(&a.instances[0].series[1], &b.instances[0].series[1])
                .then_with(|| a.instances[0].series[0].cmp(&b.instances[0].series[0]))
        });
        let study = StudyNode { series };
        let key = (&first.patient[1], &first.patient[0]);
        match tree
            .patients
            .iter_mut()
            .find(|p| (&p.first().patient[1], &p.first().patient[0]) == key)
        {
            Some(patient) => patient.studies.push(study),
            None => tree.patients.push(PatientNode {
                studies: vec![study],
            }),
        }
    }
    tree
}

/// The File ID components of instance `i` of series `se` of study `s` of patient `p`
/// (all counted from 0).
pub fn file_id(p: usize, s: usize, se: usize, i: usize) -> Vec<String> {
    vec![
        "DICOM".into(),
        format!("P{:07}", p + 1),
        format!("S{:07}", s + 1),
        format!("SE{:06}", se + 1),
        format!("I{:07}", i + 1),
    ]
}

/// The Specific Character Set key when any of `values` is not plain ASCII (the
/// records are written in UTF-8).
fn charset(values: &[&str]) -> Vec<(u16, u16, &'static str, String)> {
    if values.iter().any(|v| !v.is_ascii()) {
        vec![(0x0008, 0x0005, "CS", "ISO_IR 192".into())]
    } else {
        Vec::new()
    }
}

/// `value`, or `fallback` when empty (Type 1 keys of the general-purpose profiles).
fn or(value: &str, fallback: String) -> String {
    if value.trim().is_empty() {
        fallback
    } else {
        value.to_string()
    }
}

impl Tree {
    /// Every staged instance with its File ID components.
    pub fn files(&self) -> Vec<(&Staged, Vec<String>)> {
        let mut out = Vec::new();
        for (p, patient) in self.patients.iter().enumerate() {
            for (s, study) in patient.studies.iter().enumerate() {
                for (se, series) in study.series.iter().enumerate() {
                    for (i, staged) in series.instances.iter().enumerate() {
                        out.push((staged, file_id(p, s, se, i)));
                    }
                }
            }
        }
        out
    }

    /// The DICOMDIR's PATIENT records with their STUDY, SERIES and IMAGE records.
    /// Empty Type 1 keys get the record's ordinal (Study ID, Series and Instance
    /// Number), `000000` (Study Time) or the File ID (Patient ID) instead.
    pub fn records(&self) -> Vec<Record> {
        let mut patients = Vec::new();
        for (p, patient) in self.patients.iter().enumerate() {
            let head = patient.first();
            let [name, id, birth, sex] = &head.patient;
            let mut keys = charset(&[name, id]);
            keys.extend([
                (0x0010, 0x0010, "PN", name.clone()),
                (0x0010, 0x0020, "LO", or(id, format!("P{:07}", p + 1))),
                (0x0010, 0x0030, "DA", birth.clone()),
                (0x0010, 0x0040, "CS", sex.clone()),
            ]);
            let mut studies = Vec::new();
            for (s, study) in patient.studies.iter().enumerate() {
                let [uid, date, time, accession, description, study_id] = &study.first().study;
                let mut keys = charset(&[accession, description, study_id]);
                keys.extend([
                    (0x0008, 0x0020, "DA", date.clone()),
                    (0x0008, 0x0030, "TM", or(time, "000000".into())),
                    (0x0008, 0x0050, "SH", accession.clone()),
                    (0x0008, 0x1030, "LO", description.clone()),
                    (0x0020, 0x000D, "UI", uid.clone()),
                    (0x0020, 0x0010, "SH", or(study_id, (s + 1).to_string())),
                ]);
                let mut series_records = Vec::new();
                for (se, series) in study.series.iter().enumerate() {
                    let [uid, number, modality, description] = &series.instances[0].series;
                    let mut keys = charset(&[description]);
                    keys.extend([
                        (0x0008, 0x0060, "CS", modality.clone()),
                        (0x0008, 0x103E, "LO", description.clone()),
                        (0x0020, 0x000E, "UI", uid.clone()),
                        (0x0020, 0x0011, "IS", or(number, (se + 1).to_string())),
                    ]);
                    let images = series
                        .instances
                        .iter()
                        .enumerate()
                        .map(|(i, staged)| Record {
                            kind: "IMAGE".into(),
                            file: Some(FileRef {
                                components: file_id(p, s, se, i),
                                sop_class: staged.sop_class.clone(),
                                sop_instance: staged.sop_instance.clone(),
                                transfer_syntax: staged.transfer_syntax.clone(),
                            }),
                            keys: vec![(
                                0x0020,
                                0x0013,
                                "IS",
                                or(&staged.instance_number, (i + 1).to_string()),
                            )],
                            children: Vec::new(),
                        })
                        .collect();
                    series_records.push(Record {
                        kind: "SERIES".into(),
                        file: None,
                        keys,
                        children: images,
                    });
                }
                studies.push(Record {
                    kind: "STUDY".into(),
                    file: None,
                    keys,
                    children: series_records,
                });
            }
            patients.push(Record {
                kind: "PATIENT".into(),
                file: None,
                keys,
                children: studies,
            });
        }
        patients
    }
}
