//! Burned-in text (DESIGN.md "Web access"): pixels may carry the patient's name or
//! ID, which de-identification of the header does not remove. Instances of a
//! facility's "burned-in risk" classes (modalities or SOP classes; by default
//! ultrasound and the secondary capture classes) are rendered only when they say
//! Burned In Annotation (0028,0301) = NO; an instance saying YES is never rendered,
//! whatever its class. The classes come from `[rendering]` in the gateway config,
//! per facility where `[rendering.facility.NAME]` says so ([`RiskPolicy`]).

use std::collections::{BTreeMap, BTreeSet};

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

use super::frame::text;
use crate::domain::FacilityName;

/// The secondary capture SOP classes: single-frame, and the four multi-frame ones.
pub const SECONDARY_CAPTURE: [&str; 5] = [
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
];

/// The default risk classes: modality US and the secondary capture SOP classes.
pub fn default_entries() -> Vec<String> {
    std::iter::once("US")
        .chain(SECONDARY_CAPTURE)
        .map(String::from)
        .collect()
}

/// Modalities and SOP classes whose pixels may carry burned-in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskClasses {
    modalities: BTreeSet<String>,
    sop_classes: BTreeSet<String>,
}

impl Default for RiskClasses {
    fn default() -> Self {
        RiskClasses::parse(default_entries()).unwrap_or_else(|_| RiskClasses::none())
    }
}

impl RiskClasses {
    /// No class at risk (only Burned In Annotation = YES is refused).
    pub fn none() -> RiskClasses {
        RiskClasses {
            modalities: BTreeSet::new(),
            sop_classes: BTreeSet::new(),
        }
    }

    /// Entries that are UIDs (digits and dots) are SOP Class UIDs, the others
    /// modality codes (`US`, `XA`: upper-case letters, digits, `_`, up to 16).
    pub fn parse<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<RiskClasses, String> {
        let mut classes = RiskClasses::none();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.contains('.') || entry.bytes().all(|b| b.is_ascii_digit()) {
                crate::domain::Uid::parse(entry)
                    .map_err(|e| format!("burned-in risk entry {entry:?}: {e}"))?;
                classes.sop_classes.insert(entry.to_string());
            } else if !entry.is_empty()
                && entry.len() <= 16
                && entry
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                classes.modalities.insert(entry.to_string());
            } else {
                return Err(format!(
                    "burned-in risk entry {entry:?} is neither a SOP Class UID nor a modality code (upper case, like US)"
                ));
            }
        }
        Ok(classes)
    }

    /// The class or modality of an instance that puts it at risk, if any.
    pub fn matches(&self, modality: Option<&str>, sop_class: Option<&str>) -> Option<String> {
        if let Some(class) = sop_class.filter(|c| self.sop_classes.contains(*c)) {
            return Some(format!("SOP class {class}"));
        }
        modality
            .filter(|m| self.modalities.contains(*m))
            .map(|m| format!("modality {m}"))
    }

    /// 8 hex digits naming this set (part of thumbnail keys, so that a thumbnail made
    /// under one set is never served under another).
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for m in &self.modalities {
            hash.update(b"m:");
            hash.update(m.as_bytes());
            hash.update(b"\n");
        }
        for c in &self.sop_classes {
            hash.update(b"c:");
            hash.update(c.as_bytes());
            hash.update(b"\n");
        }
        hex::encode(&hash.finalize()[..4])
    }
}

/// Why an instance is not rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Burned In Annotation = YES.
    #[error("the instance says Burned In Annotation = YES (its pixels carry text)")]
    BurnedInAnnotation,
    /// A risk class without Burned In Annotation = NO.
    #[error(
        "{class} is a burned-in risk class at this facility and the instance does not say Burned In Annotation = NO"
    )]
    RiskClass {
        /// The modality or SOP class that matched.
        class: String,
    },
}

/// Whether `object` may be rendered under `risk`.
pub fn may_render(object: &InMemDicomObject, risk: &RiskClasses) -> Result<(), Refusal> {
    let said = text(object, tags::BURNED_IN_ANNOTATION).map(|v| v.to_ascii_uppercase());
    match said.as_deref() {
        Some("NO") => return Ok(()),
        Some("YES") => return Err(Refusal::BurnedInAnnotation),
        _ => {}
    }
    let modality = text(object, tags::MODALITY);
    let class = text(object, tags::SOP_CLASS_UID);
    match risk.matches(modality.as_deref(), class.as_deref()) {
        Some(class) => Err(Refusal::RiskClass { class }),
        None => Ok(()),
    }
}

/// The risk classes of every facility: a default and per-facility replacements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskPolicy {
    default: RiskClasses,
    facilities: BTreeMap<String, RiskClasses>,
}

impl RiskPolicy {
    /// `default` for every facility except those in `facilities` (by name).
    pub fn new(default: RiskClasses, facilities: BTreeMap<String, RiskClasses>) -> RiskPolicy {
        RiskPolicy {
            default,
            facilities,
        }
    }

    /// From `[rendering]`.
    pub fn from_config(config: &crate::config::RenderingConfig) -> Result<RiskPolicy, String> {
        let default = RiskClasses::parse(&config.burned_in_risk)?;
        let mut facilities = BTreeMap::new();
        for (name, facility) in &config.facility {
            let name = FacilityName::parse(name)
                .map_err(|e| format!("[rendering.facility.{name}]: {e}"))?;
            let classes = RiskClasses::parse(&facility.burned_in_risk)
                .map_err(|e| format!("[rendering.facility.{name}]: {e}"))?;
            facilities.insert(name.as_str().to_string(), classes);
        }
        Ok(RiskPolicy::new(default, facilities))
    }

    /// The classes that apply to `facility`.
    pub fn for_facility(&self, facility: &FacilityName) -> &RiskClasses {
        self.facilities
            .get(facility.as_str())
            .unwrap_or(&self.default)
    }
}
