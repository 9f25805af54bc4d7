//! The benchmark's C-FIND queries (Study Root), random picks of them drawn from the
//! generated data with a seed, their identifiers, and the matches each must return
//! (computed from the generator, for the correctness test and to check that Orthanc
//! and the gateway answer alike).

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::data::{DAYS, Dataset, MODALITIES, Rng, day_to_date};

/// Days covered by the date range of [`Find::ModalityDates`].
pub const RANGE_DAYS: u32 = 30;

/// The kinds of query measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// (a) study level by Patient ID (pseudonym).
    Patient,
    /// (b) study level by Modalities in Study and a Study Date range.
    ModalityDates,
    /// (c) study level by Study Instance UID.
    StudyUid,
    /// (d) study level, every key universal.
    Universal,
    /// (e) image level within one series of one study.
    Images,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 5] = [
        Kind::Patient,
        Kind::ModalityDates,
        Kind::StudyUid,
        Kind::Universal,
        Kind::Images,
    ];

    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Patient => "(a) study by patient ID",
            Kind::ModalityDates => "(b) study by modality+30d",
            Kind::StudyUid => "(c) study by study UID",
            Kind::Universal => "(d) study universal",
            Kind::Images => "(e) image in one series",
        }
    }
}

/// One concrete query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Find {
    /// Studies of a patient.
    Patient(String),
    /// Studies with a modality within a date range (inclusive).
    ModalityDates {
        /// Modality.
        modality: &'static str,
        /// First day, `YYYYMMDD`.
        from: String,
        /// Last day, `YYYYMMDD`.
        to: String,
    },
    /// One study.
    StudyUid(String),
    /// Every study.
    Universal,
    /// Instances of one series.
    Images {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID.
        series: String,
    },
}

impl Find {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Find::Patient(_) => Kind::Patient,
            Find::ModalityDates { .. } => Kind::ModalityDates,
            Find::StudyUid(_) => Kind::StudyUid,
            Find::Universal => Kind::Universal,
            Find::Images { .. } => Kind::Images,
        }
    }

    /// The C-FIND identifier: the matching keys plus the usual return keys.
    pub fn identifier(&self) -> InMemDicomObject {
        let mut keys: Vec<(Tag, VR, String)> = Vec::new();
        let mut key = |tag, vr, value: &str| keys.push((tag, vr, value.to_string()));
        match self {
            Find::Images { study, series } => {
                key(tags::QUERY_RETRIEVE_LEVEL, VR::CS, "IMAGE");
                key(tags::STUDY_INSTANCE_UID, VR::UI, study);
                key(tags::SERIES_INSTANCE_UID, VR::UI, series);
                key(tags::SOP_INSTANCE_UID, VR::UI, "");
                key(tags::SOP_CLASS_UID, VR::UI, "");
                key(tags::INSTANCE_NUMBER, VR::IS, "");
            }
            _ => {
                let (mut patient, mut uid, mut modality, mut date) = ("", "", "", String::new());
                match self {
                    Find::Patient(id) => patient = id,
                    Find::StudyUid(u) => uid = u,
                    Find::ModalityDates {
                        modality: m,
                        from,
                        to,
                    } => {
                        modality = m;
                        date = format!("{from}-{to}");
                    }
                    _ => {}
                }
                key(tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY");
                key(tags::STUDY_INSTANCE_UID, VR::UI, uid);
                key(tags::PATIENT_ID, VR::LO, patient);
                key(tags::PATIENT_NAME, VR::PN, "");
                key(tags::STUDY_DATE, VR::DA, &date);
                key(tags::STUDY_TIME, VR::TM, "");
                key(tags::ACCESSION_NUMBER, VR::SH, "");
                key(tags::STUDY_DESCRIPTION, VR::LO, "");
                key(tags::MODALITIES_IN_STUDY, VR::CS, modality);
                key(tags::NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, "");
                key(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, "");
            }
        }
        InMemDicomObject::from_element_iter(
            keys.into_iter()
                .map(|(tag, vr, value)| DataElement::new(tag, vr, PrimitiveValue::from(value))),
        )
    }

    /// The unique keys of every match in `facility` (Study Instance UIDs, or SOP
    /// Instance UIDs for [`Find::Images`]), sorted.
    pub fn expected(&self, data: &Dataset, facility: usize) -> Vec<String> {
        let studies = data.studies.iter().filter(|s| s.facility == facility);
        let mut out: Vec<String> = match self {
            Find::Patient(id) => studies
                .filter(|s| data.patients[s.patient].id == *id)
                .map(|s| s.uid.clone())
                .collect(),
            Find::ModalityDates { modality, from, to } => studies
                .filter(|s| s.date >= *from && s.date <= *to && s.modalities().contains(modality))
                .map(|s| s.uid.clone())
                .collect(),
            Find::StudyUid(uid) => studies
                .filter(|s| s.uid == *uid)
                .map(|s| s.uid.clone())
                .collect(),
            Find::Universal => studies.map(|s| s.uid.clone()).collect(),
            Find::Images { study, series } => studies
                .filter(|s| s.uid == *study)
                .flat_map(|s| s.series.iter().filter(|r| r.uid == *series))
                .flat_map(|r| (0..r.instances).map(|k| data.instance(r, k).uid))
                .collect(),
        };
        out.sort_unstable();
        out
    }
}

/// `count` random queries of `kind` on `facility`'s data (the same for a given seed).
pub fn picks(data: &Dataset, facility: usize, kind: Kind, count: usize, seed: u64) -> Vec<Find> {
    let mut rng = Rng::new(seed ^ (kind as u64 + 1).wrapping_mul(0x9E37_79B9));
    let studies: Vec<usize> = (0..data.studies.len())
        .filter(|&i| data.studies[i].facility == facility)
        .collect();
    let patients: Vec<usize> = (0..data.patients.len())
        .filter(|&i| data.patients[i].facility == facility)
        .collect();
    let study = |rng: &mut Rng| &data.studies[studies[rng.below(studies.len() as u64) as usize]];
    (0..count)
        .map(|_| match kind {
            Kind::Patient => Find::Patient(
                data.patients[patients[rng.below(patients.len() as u64) as usize]]
                    .id
                    .clone(),
            ),
            Kind::ModalityDates => {
                let modality = MODALITIES[rng.below(MODALITIES.len() as u64) as usize];
                let start = rng.below(u64::from(DAYS - RANGE_DAYS)) as u32;
                Find::ModalityDates {
                    modality,
                    from: day_to_date(start),
                    to: day_to_date(start + RANGE_DAYS - 1),
                }
            }
            Kind::StudyUid => Find::StudyUid(study(&mut rng).uid.clone()),
            Kind::Universal => Find::Universal,
            Kind::Images => {
                let s = study(&mut rng);
                let r = &s.series[rng.below(s.series.len() as u64) as usize];
                Find::Images {
                    study: s.uid.clone(),
                    series: r.uid.clone(),
                }
            }
        })
        .collect()
}

/// The unique key of a C-FIND match (Study or SOP Instance UID), if it decodes.
pub fn match_uid(identifier: &InMemDicomObject, kind: Kind) -> Option<String> {
    let tag = match kind {
        Kind::Images => tags::SOP_INSTANCE_UID,
        _ => tags::STUDY_INSTANCE_UID,
    };
    let value = identifier.element(tag).ok()?.to_str().ok()?;
    Some(value.trim_end_matches(['\0', ' ']).to_string())
}
