//! The identity summary: the few original values the gateway indexes and returns in
//! C-FIND, sealed on their own so that their size is bounded whatever the instance.
//!
//! The full record of an enhanced multi-frame instance can run to megabytes (every
//! per-frame item that holds a remapped UID is sealed whole); the summary holds only
//! top-level attributes a clinician searches or reads in a result list (names, IDs,
//! dates, UIDs, descriptions), each at most [`ELEMENT_CAP`] bytes, in priority order,
//! and the whole envelope at most [`SUMMARY_CAP`] bytes. Same plaintext format as the
//! full record (a Modified Attributes Sequence item, Explicit VR Little Endian,
//! `ISO_IR 192`), sealed with [`Purpose::Summary`](crate::seal::Purpose::Summary).

use dicom_core::header::Header;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;

use crate::PhiError;
use crate::seal::ENVELOPE_OVERHEAD;

/// Largest identity summary envelope, in bytes. The gateway indexes up to this much.
pub const SUMMARY_CAP: usize = 16 * 1024;
/// Largest value of one summarized attribute; longer originals stay in the full
/// record only.
pub const ELEMENT_CAP: usize = 512;

/// The attributes a summary may hold, most important first (when the cap is
/// reached, the tail is left out).
pub const SUMMARY_TAGS: &[Tag] = &[
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::SOP_INSTANCE_UID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::ACCESSION_NUMBER,
    tags::STUDY_ID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::STUDY_DESCRIPTION,
    tags::SERIES_DESCRIPTION,
    tags::ISSUER_OF_PATIENT_ID,
    // Other Patient IDs (retired in the standard, still written by older systems).
    Tag(0x0010, 0x1000),
    tags::OTHER_PATIENT_NAMES,
    tags::PATIENT_BIRTH_TIME,
    tags::PATIENT_AGE,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::SERIES_DATE,
    tags::SERIES_TIME,
    tags::CONTENT_DATE,
    tags::CONTENT_TIME,
    tags::ACQUISITION_DATE_TIME,
    tags::INSTITUTION_NAME,
    tags::STATION_NAME,
    tags::PERFORMING_PHYSICIAN_NAME,
    tags::OPERATORS_NAME,
    tags::PROTOCOL_NAME,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::PERFORMED_PROCEDURE_STEP_START_TIME,
    tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
    tags::REQUESTED_PROCEDURE_DESCRIPTION,
];

/// The plaintext of the summary of `originals` (the full record's elements): the
/// summarized attributes among them, encoded, never longer than
/// `SUMMARY_CAP - ENVELOPE_OVERHEAD` bytes.
pub(super) fn plaintext(originals: &[InMemElement]) -> Result<Vec<u8>, PhiError> {
    let mut chosen: Vec<InMemElement> = SUMMARY_TAGS
        .iter()
        .filter_map(|tag| originals.iter().find(|e| e.tag() == *tag))
        .filter(|e| e.vr() != VR::SQ && value_len(e).is_some_and(|n| n <= ELEMENT_CAP))
        .cloned()
        .collect();
    loop {
        let bytes = super::sealed::encode_originals(chosen.clone())?;
        if bytes.len() + ENVELOPE_OVERHEAD <= SUMMARY_CAP || chosen.is_empty() {
            return Ok(bytes);
        }
        chosen.pop();
    }
}

fn value_len(element: &InMemElement) -> Option<usize> {
    Some(element.value().primitive()?.calculate_byte_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue};

    #[test]
    fn the_tail_is_left_out_at_the_cap() {
        let value = "v".repeat(ELEMENT_CAP - 2);
        let originals: Vec<InMemElement> = SUMMARY_TAGS
            .iter()
            .map(|tag| DataElement::new(*tag, VR::LO, PrimitiveValue::from(value.as_str())))
            .collect();
        let bytes = plaintext(&originals).unwrap();
        assert!(bytes.len() + ENVELOPE_OVERHEAD <= SUMMARY_CAP);
        let kept = super::super::sealed::decode_originals(&bytes).unwrap();
        assert!(kept.len() < SUMMARY_TAGS.len(), "{} kept", kept.len());
        assert!(kept.len() > 20, "{} kept", kept.len());
        assert!(
            kept.iter().any(|e| e.tag() == tags::PATIENT_NAME),
            "the head is kept"
        );
        assert!(
            !kept
                .iter()
                .any(|e| e.tag() == tags::REQUESTED_PROCEDURE_DESCRIPTION),
            "the tail is left out"
        );
    }
}
