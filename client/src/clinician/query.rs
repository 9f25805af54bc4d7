//! `pacs-client query`: turns plain identifiers into the gateway's pseudonyms and
//! blind index, sends a study-level C-FIND (Study Root) with the clinician's
//! credentials, unseals each study's sealed identity with the facility key, drops
//! blind-index false positives (and filters accession numbers, which
//! de-identification removes, after unsealing), adds the studies kept local-only in
//! this client's outbox, and prints a table or JSON.
//!
//! Plaintext identifiers never leave this process: the gateway only sees pseudonyms,
//! the 16-bit blind index and the dates/modality.

mod args;
mod levels;

use std::collections::BTreeMap;

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

use crate::clinician::fetch::refusal;
use crate::clinician::translate::{decode, encode, name_tokens_key, text, unseal_item};
use crate::config::Config;
use crate::credentials::Login;
use crate::gateway::connect;

pub use levels::{ItemRow, QueryLevel, find_below, print_items};

/// What to look for; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct StudyFilter {
    /// Original Patient ID (exact).
    pub patient_id: Option<String>,
    /// Original Patient Name (compared in normalized form).
    pub name: Option<String>,
    /// A modality in the study.
    pub modality: Option<String>,
    /// Study date or range `YYYYMMDD`, `FROM-TO`, `FROM-`, `-TO`.
    pub date: Option<String>,
    /// Original Accession Number (exact; matched after unsealing).
    pub accession: Option<String>,
    /// Original Study Instance UID (exact; mapped forward for the gateway).
    pub study_uid: Option<String>,
}

/// Where a study lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Location {
    /// On the gateway only (the local copy, if any, was purged or never existed).
    Gateway,
    /// Only in this client's store.
    LocalOnly,
    /// On the gateway, and some instances are kept local-only here.
    Both,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Location::Gateway => "gateway",
            Location::LocalOnly => "local-only",
            Location::Both => "both",
        }
    }
}

/// One study, with the original identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudyRow {
    /// Original Patient Name.
    pub patient_name: String,
    /// Original Patient ID.
    pub patient_id: String,
    /// Original Study Instance UID (empty if the identity could not be unsealed).
    pub study_instance_uid: String,
    /// The gateway's (pseudonymous) Study Instance UID; empty for local-only.
    pub gateway_study_uid: String,
    /// Original Accession Number.
    pub accession_number: String,
    /// Study Date.
    pub study_date: String,
    /// Modalities in Study.
    pub modalities: String,
    /// Study Description.
    pub description: String,
    /// Number of Study Related Instances (on the gateway; local count for local-only).
    pub instances: Option<u32>,
    /// Where it lives.
    pub location: Location,
}

/// The original identity of a study, from its sealed envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Patient Name.
    pub patient_name: String,
    /// Patient ID.
    pub patient_id: String,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Accession Number.
    pub accession_number: String,
    /// Study Date.
    pub study_date: Option<String>,
    /// Study Description.
    pub description: Option<String>,
}

/// Checks a `--date` value: `YYYYMMDD`, or a range with either end open, naming
/// real days.
pub fn valid_date_range(value: &str) -> bool {
    args::check_date(value).is_ok()
}

fn date_matches(range: &str, date: &str) -> bool {
    match range.split_once('-') {
        None => date == range,
        Some((from, to)) => {
            !date.is_empty() && (from.is_empty() || date >= from) && (to.is_empty() || date <= to)
        }
    }
}

impl StudyFilter {
    /// Whether an unsealed identity satisfies the conditions the gateway cannot check
    /// exactly: the name (the blind index has false positives), the Patient ID, and
    /// the accession number (removed by de-identification).
    pub fn keeps(&self, identity: &Identity) -> bool {
        let name_ok = self
            .name
            .as_deref()
            .is_none_or(|wanted| phi::name_search::name_matches(wanted, &identity.patient_name));
        let id_ok = self
            .patient_id
            .as_deref()
            .is_none_or(|wanted| wanted.trim() == identity.patient_id.trim());
        let acc_ok = self
            .accession
            .as_deref()
            .is_none_or(|wanted| wanted.trim() == identity.accession_number.trim());
        let study_ok = self
            .study_uid
            .as_deref()
            .is_none_or(|wanted| wanted.trim() == identity.study_instance_uid.trim());
        name_ok && id_ok && acc_ok && study_ok
    }

    /// The study-level C-FIND identifier (Explicit VR Little Endian).
    pub fn identifier(&self, ring: &KeyRing) -> anyhow::Result<Vec<u8>> {
        let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        let pid = self
            .patient_id
            .as_deref()
            .map(|id| phi::pseudonym::patient_id(ring, id))
            .unwrap_or_default();
        let date = self.date.as_deref().unwrap_or_default();
        let study = self
            .study_uid
            .as_deref()
            .map(|uid| phi::pseudonym::uid(ring, uid.trim()))
            .unwrap_or_default();
        let mut obj = InMemDicomObject::from_element_iter([
            s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
            s(tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY"),
            s(tags::STUDY_INSTANCE_UID, VR::UI, &study),
            s(tags::STUDY_DATE, VR::DA, date),
            s(tags::ACCESSION_NUMBER, VR::SH, ""),
            s(
                tags::MODALITIES_IN_STUDY,
                VR::CS,
                // Codes are upper case; `ct` means CT.
                &self
                    .modality
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_uppercase(),
            ),
            s(tags::STUDY_DESCRIPTION, VR::LO, ""),
            s(tags::PATIENT_NAME, VR::PN, ""),
            s(tags::PATIENT_ID, VR::LO, &pid),
            s(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
        ]);
        if let Some(name) = &self.name {
            if phi::pseudonym::normalized_groups(name)
                .iter()
                .all(|g| g.chars().all(|c| matches!(c, '*' | '?' | '^')))
            {
                bail!("--name {name:?} has no letters to search for");
            }
            // Names that have a token are narrowed at the gateway; other wildcard
            // patterns are matched here, after unsealing.
            if let Some(tokens) = name_tokens_key(ring, name) {
                let (g, e) = phi::deid::PRIVATE_CREATOR_TAG;
                obj.put(s(Tag(g, e), VR::LO, phi::deid::PRIVATE_CREATOR));
                let (g, e) = phi::deid::NAME_TOKENS_TAG;
                obj.put(DataElement::new(
                    Tag(g, e),
                    VR::LO,
                    PrimitiveValue::Strs(tokens.into()),
                ));
            }
        }
        obj.put(DataElement::new(
            tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::<InMemDicomObject>::empty(),
        ));
        encode(&obj)
    }

    /// Whether a local-only study (read from its spooled instance) matches.
    fn keeps_local(&self, identity: &Identity, modality: &str) -> bool {
        let modality_ok = self
            .modality
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(modality.trim()));
        let date = identity.study_date.as_deref().unwrap_or_default();
        let date_ok = self
            .date
            .as_deref()
            .is_none_or(|range| date_matches(range, date));
        modality_ok && date_ok && self.keeps(identity)
    }
}

/// Unseals the sealed-identity item of a study-level response. `None` when the
/// response has no item (or it is not ours to open).
pub fn unseal_identity(
    response: &InMemDicomObject,
    ring: &KeyRing,
    facility: &str,
) -> Option<Identity> {
    let original = unseal_item(response, ring, facility)?;
    let optional = |tag| Some(text(&original, tag)).filter(|v| !v.is_empty());
    Some(Identity {
        patient_name: text(&original, tags::PATIENT_NAME),
        patient_id: text(&original, tags::PATIENT_ID),
        study_instance_uid: text(&original, tags::STUDY_INSTANCE_UID),
        accession_number: text(&original, tags::ACCESSION_NUMBER),
        study_date: optional(tags::STUDY_DATE),
        description: optional(tags::STUDY_DESCRIPTION),
    })
}

/// Runs the query: gateway studies (unsealed, filtered) and local-only studies.
pub async fn find_studies(
    config: &Config,
    ring: &KeyRing,
    login: &Login,
    filter: &StudyFilter,
) -> anyhow::Result<Vec<StudyRow>> {
    args::check(filter)?;
    let facility = config.facility()?;
    let identifier = filter.identifier(ring)?;
    let proposal = Proposal {
        abstract_syntax: STUDY_ROOT_FIND.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    };
    let mut assoc = connect(config, login, &[proposal], Vec::new()).await?;
    let found = assoc.find(STUDY_ROOT_FIND, &identifier).await?;
    let _ = assoc.release().await;
    if !found.response.status.is_success() {
        bail!("{}", refusal(&found.response));
    }
    let outbox = crate::outbox::open(config).await?;
    let locations: BTreeMap<String, (i64, i64)> = outbox
        .study_locations()
        .await?
        .into_iter()
        .map(|l| (l.study_uid, (l.at_gateway, l.local)))
        .collect();
    let mut rows = Vec::new();
    for bytes in &found.matches {
        let response = decode(bytes)?;
        let identity = unseal_identity(&response, ring, facility).unwrap_or_default();
        if !filter.keeps(&identity) {
            continue; // blind-index false positive, other accession, or cannot unseal
        }
        let local = locations
            .get(&identity.study_instance_uid)
            .is_some_and(|(_, local)| *local > 0);
        rows.push(StudyRow {
            patient_name: identity.patient_name,
            patient_id: identity.patient_id,
            study_instance_uid: identity.study_instance_uid,
            gateway_study_uid: text(&response, tags::STUDY_INSTANCE_UID),
            accession_number: identity.accession_number,
            study_date: identity
                .study_date
                .unwrap_or_else(|| text(&response, tags::STUDY_DATE)),
            modalities: text(&response, tags::MODALITIES_IN_STUDY),
            description: identity
                .description
                .unwrap_or_else(|| text(&response, tags::STUDY_DESCRIPTION)),
            instances: text(&response, tags::NUMBER_OF_STUDY_RELATED_INSTANCES)
                .parse()
                .ok(),
            location: if local {
                Location::Both
            } else {
                Location::Gateway
            },
        });
    }
    rows.extend(local_only(&outbox, filter).await?);
    outbox.close().await;
    Ok(rows)
}

/// Studies with no instance on the gateway and some kept local, read from the spool.
async fn local_only(
    outbox: &crate::outbox::Outbox,
    filter: &StudyFilter,
) -> anyhow::Result<Vec<StudyRow>> {
    let mut rows = Vec::new();
    for (study, path, count) in outbox.local_only_studies().await? {
        let Ok(file) = crate::dicomfile::open_header(std::path::Path::new(&path)) else {
            continue;
        };
        let obj = file.into_inner();
        let optional = |tag| Some(text(&obj, tag)).filter(|v| !v.is_empty());
        let identity = Identity {
            patient_name: text(&obj, tags::PATIENT_NAME),
            patient_id: text(&obj, tags::PATIENT_ID),
            study_instance_uid: study,
            accession_number: text(&obj, tags::ACCESSION_NUMBER),
            study_date: optional(tags::STUDY_DATE),
            description: optional(tags::STUDY_DESCRIPTION),
        };
        let modality = text(&obj, tags::MODALITY);
        if !filter.keeps_local(&identity, &modality) {
            continue;
        }
        rows.push(StudyRow {
            patient_name: identity.patient_name,
            patient_id: identity.patient_id,
            study_instance_uid: identity.study_instance_uid,
            gateway_study_uid: String::new(),
            accession_number: identity.accession_number,
            study_date: identity.study_date.unwrap_or_default(),
            modalities: modality,
            description: identity.description.unwrap_or_default(),
            instances: u32::try_from(count).ok(),
            location: Location::LocalOnly,
        });
    }
    Ok(rows)
}

/// Prints rows as a table (or JSON).
pub fn print(rows: &[StudyRow], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!(
        "{:<28} {:<16} {:<8} {:<8} {:<28} {:>5} {:<10} study",
        "patient name", "patient id", "date", "mod.", "description", "inst.", "location"
    );
    for r in rows {
        println!(
            "{:<28} {:<16} {:<8} {:<8} {:<28} {:>5} {:<10} {}",
            r.patient_name,
            r.patient_id,
            r.study_date,
            r.modalities,
            r.description,
            r.instances.map(|n| n.to_string()).unwrap_or_default(),
            r.location.as_str(),
            r.study_instance_uid
        );
    }
    println!(
        "{} stud{}",
        rows.len(),
        if rows.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_ranges() {
        for ok in ["20240101", "20240101-20241231", "20240101-", "-20241231"] {
            assert!(valid_date_range(ok), "{ok}");
        }
        for bad in ["", "-", "2024", "20241231-20240101", "2024010a", "x-y"] {
            assert!(!valid_date_range(bad), "{bad}");
        }
        assert!(date_matches("20240101-20241231", "20240315"));
        assert!(!date_matches("20240401-", "20240315"));
        assert!(!date_matches("-20240101", ""));
    }

    #[test]
    fn false_positives_and_accession_are_filtered_after_unsealing() {
        let identity = Identity {
            patient_name: "Müller^Jürgen".into(),
            patient_id: "MRN-1".into(),
            accession_number: "ACC1".into(),
            ..Identity::default()
        };
        let by_name = |n: &str| StudyFilter {
            name: Some(n.into()),
            ..StudyFilter::default()
        };
        assert!(by_name("MULLER^jurgen ").keeps(&identity));
        assert!(!by_name("Mueller^Jurgen").keeps(&identity));
        let by_acc = |a: &str| StudyFilter {
            accession: Some(a.into()),
            ..StudyFilter::default()
        };
        assert!(by_acc("ACC1").keeps(&identity));
        assert!(!by_acc("ACC2").keeps(&identity));
        assert!(
            !by_name("x").keeps(&Identity::default()),
            "an identity that cannot be unsealed never matches a name"
        );
    }
}
