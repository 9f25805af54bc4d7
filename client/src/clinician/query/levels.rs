//! `pacs-client query --level series|image`: the series of one study, or the
//! instances of one series, from the gateway, each re-identified from its own sealed
//! item (the series' first instance, or the instance itself), so the table shows the
//! original names, IDs and UIDs. The study (and series) may be given by its original
//! or its pseudonymous UID.

use anyhow::bail;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::assoc::EXPLICIT_VR_LE;
use dimse::qr::STUDY_ROOT_FIND;
use dimse::scu::Proposal;
use phi::keys::KeyRing;
use serde::Serialize;
use tracing::warn;

use crate::clinician::fetch::refusal;
use crate::clinician::translate::find::reidentify_row;
use crate::clinician::translate::{Level, candidates, decode, encode, text};
use crate::config::Config;
use crate::credentials::Login;
use crate::gateway::connect;

/// The level of `pacs-client query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryLevel {
    /// Studies (the default).
    Study,
    /// The series of one study (`--study`).
    Series,
    /// The instances of one series (`--study` and `--series`).
    Image,
}

/// One series or instance, with the original identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRow {
    /// Original Patient Name.
    pub patient_name: String,
    /// Original Patient ID.
    pub patient_id: String,
    /// Original Study Instance UID.
    pub study_instance_uid: String,
    /// Original Series Instance UID.
    pub series_instance_uid: String,
    /// Original SOP Instance UID (IMAGE level; empty for a series).
    pub sop_instance_uid: String,
    /// SOP Class UID (IMAGE level).
    pub sop_class_uid: String,
    /// Modality.
    pub modality: String,
    /// Series Number, or Instance Number at IMAGE level.
    pub number: String,
    /// Series Description.
    pub description: String,
    /// Number of Series Related Instances (SERIES level).
    pub instances: Option<u32>,
}

fn identifier(level: Level, study: &str, series: &str) -> anyhow::Result<Vec<u8>> {
    let s = |tag: Tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let mut obj = InMemDicomObject::from_element_iter([
        s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        s(tags::QUERY_RETRIEVE_LEVEL, VR::CS, level.as_str()),
        s(tags::STUDY_INSTANCE_UID, VR::UI, study),
        s(tags::SERIES_INSTANCE_UID, VR::UI, series),
        s(tags::MODALITY, VR::CS, ""),
        s(tags::SERIES_NUMBER, VR::IS, ""),
        s(tags::SERIES_DESCRIPTION, VR::LO, ""),
        s(tags::PATIENT_NAME, VR::PN, ""),
        s(tags::PATIENT_ID, VR::LO, ""),
    ]);
    match level {
        Level::Image => {
            obj.put(s(tags::SOP_INSTANCE_UID, VR::UI, ""));
            obj.put(s(tags::SOP_CLASS_UID, VR::UI, ""));
            obj.put(s(tags::INSTANCE_NUMBER, VR::IS, ""));
        }
        _ => {
            obj.put(s(tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, ""));
        }
    }
    obj.put(DataElement::new(
        tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        DataSetSequence::<InMemDicomObject>::empty(),
    ));
    encode(&obj)
}

fn row(original: &InMemDicomObject, level: Level) -> ItemRow {
    let t = |tag| text(original, tag);
    ItemRow {
        patient_name: t(tags::PATIENT_NAME),
        patient_id: t(tags::PATIENT_ID),
        study_instance_uid: t(tags::STUDY_INSTANCE_UID),
        series_instance_uid: t(tags::SERIES_INSTANCE_UID),
        sop_instance_uid: t(tags::SOP_INSTANCE_UID),
        sop_class_uid: t(tags::SOP_CLASS_UID),
        modality: t(tags::MODALITY),
        number: match level {
            Level::Image => t(tags::INSTANCE_NUMBER),
            _ => t(tags::SERIES_NUMBER),
        },
        description: t(tags::SERIES_DESCRIPTION),
        instances: t(tags::NUMBER_OF_SERIES_RELATED_INSTANCES).parse().ok(),
    }
}

/// The series of `study` (SERIES) or the instances of `series` in `study` (IMAGE),
/// re-identified. UIDs may be original or pseudonymous; rows whose sealed item does
/// not open are left out with a warning.
pub async fn find_below(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    level: QueryLevel,
    study: &str,
    series: Option<&str>,
) -> anyhow::Result<Vec<ItemRow>> {
    let level = match (level, series) {
        (QueryLevel::Series, _) => Level::Series,
        (QueryLevel::Image, Some(_)) => Level::Image,
        (QueryLevel::Image, None) => bail!("--level image needs --series UID"),
        (QueryLevel::Study, _) => bail!("study level is answered by find_studies"),
    };
    let facility = config.facility()?;
    let series_candidates = match series {
        Some(s) => candidates(ring, s),
        None => vec![String::new()],
    };
    let proposal = Proposal {
        abstract_syntax: STUDY_ROOT_FIND.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    };
    let mut assoc = connect(config, login, &[proposal], Vec::new()).await?;
    let mut matches = Vec::new();
    'search: for study in candidates(ring, study) {
        for series in &series_candidates {
            let found = assoc
                .find(STUDY_ROOT_FIND, &identifier(level, &study, series)?)
                .await?;
            if !found.response.status.is_success() {
                let _ = assoc.release().await;
                bail!("{}", refusal(&found.response));
            }
            if !found.matches.is_empty() {
                matches = found.matches;
                break 'search;
            }
        }
    }
    let _ = assoc.release().await;
    let mut rows = Vec::with_capacity(matches.len());
    for bytes in &matches {
        let response = decode(bytes)?;
        match reidentify_row(&response, level, ring, facility) {
            Some(original) => rows.push(row(&original, level)),
            None => warn!(
                level = level.as_str(),
                "a gateway match could not be re-identified; left out"
            ),
        }
    }
    Ok(rows)
}

/// Prints series or instance rows as a table (or JSON).
pub fn print_items(rows: &[ItemRow], level: QueryLevel, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    let image = level == QueryLevel::Image;
    println!(
        "{:<28} {:<16} {:<5} {:>5} {:<28} {:>5} {}",
        "patient name",
        "patient id",
        "mod.",
        "no.",
        "description",
        "inst.",
        if image { "sop instance" } else { "series" }
    );
    for r in rows {
        println!(
            "{:<28} {:<16} {:<5} {:>5} {:<28} {:>5} {}",
            r.patient_name,
            r.patient_id,
            r.modality,
            r.number,
            r.description,
            r.instances.map(|n| n.to_string()).unwrap_or_default(),
            if image {
                &r.sop_instance_uid
            } else {
                &r.series_instance_uid
            }
        );
    }
    let what = if image { "instance" } else { "series" };
    println!(
        "{} {what}{}",
        rows.len(),
        if rows.len() == 1 || !image { "" } else { "s" }
    );
    Ok(())
}
