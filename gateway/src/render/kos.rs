//! The instances a Key Object Selection document (PS3.3 A.35.4) names in one
//! series, from its Current Requested Procedure Evidence Sequence: the "key images"
//! a reader flagged, preferred to the middle instance as a series' representative.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// SOP Instance UIDs the document `part10` names in `series`, in its order; none
/// when it cannot be read.
pub(super) fn named_in(part10: &[u8], series: &str) -> Vec<String> {
    let Ok(object) = super::frame::open(part10) else {
        return Vec::new();
    };
    let items = |o: &InMemDicomObject, tag: Tag| -> Vec<InMemDicomObject> {
        o.get(tag)
            .and_then(|e| e.items())
            .map(|items| items.to_vec())
            .unwrap_or_default()
    };
    let mut named = Vec::new();
    for study in items(&object, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE) {
        for referenced in items(&study, tags::REFERENCED_SERIES_SEQUENCE) {
            if super::frame::text(&referenced, tags::SERIES_INSTANCE_UID).as_deref() != Some(series)
            {
                continue;
            }
            for sop in items(&referenced, tags::REFERENCED_SOP_SEQUENCE) {
                if let Some(uid) = super::frame::text(&sop, tags::REFERENCED_SOP_INSTANCE_UID) {
                    named.push(uid);
                }
            }
        }
    }
    named
}
