//! The Query/Retrieve Level of an identifier, and each level's unique key.

use dicom_core::Tag;
use dicom_dictionary_std::tags;

/// A Query/Retrieve Level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// `PATIENT`.
    Patient,
    /// `STUDY`.
    Study,
    /// `SERIES`.
    Series,
    /// `IMAGE`.
    Image,
}

impl Level {
    /// Parses the code string.
    pub(crate) fn parse(value: &str) -> Option<Level> {
        match value.trim() {
            "PATIENT" => Some(Level::Patient),
            "STUDY" => Some(Level::Study),
            "SERIES" => Some(Level::Series),
            "IMAGE" => Some(Level::Image),
            _ => None,
        }
    }

    /// The code string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "PATIENT",
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }

    /// The unique key of the level.
    pub(crate) fn unique_key(self) -> Tag {
        match self {
            Level::Patient => tags::PATIENT_ID,
            Level::Study => tags::STUDY_INSTANCE_UID,
            Level::Series => tags::SERIES_INSTANCE_UID,
            Level::Image => tags::SOP_INSTANCE_UID,
        }
    }
}
