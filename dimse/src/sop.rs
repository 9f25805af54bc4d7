//! Which SOP classes are storage classes, from the standard registry.

use dicom_core::dictionary::{UidDictionary, UidType};
use dicom_dictionary_std::sop_class::StandardSopClassDictionary;

/// Whether `uid` is a storage SOP class of the standard registry (retired ones
/// included: old modalities still send them). Storage Commitment, the Media Storage
/// Directory (DICOMDIR) and the query/retrieve classes are not.
pub fn is_storage_sop_class(uid: &str) -> bool {
    let Some(entry) = StandardSopClassDictionary.by_uid(uid) else {
        return false;
    };
    entry.r#type == UidType::SopClass
        && entry.name.contains("Storage")
        && !entry.name.contains("Storage Commitment")
        && !entry.name.contains("Media Storage Directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes_are_recognised() {
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2")); // CT Image Storage
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.4.1")); // Enhanced MR
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.66.4")); // Segmentation
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.481.1")); // RT Image
        assert!(!is_storage_sop_class("1.2.840.10008.1.20.1")); // Storage Commitment
        assert!(!is_storage_sop_class("1.2.840.10008.1.3.10")); // DICOMDIR
        assert!(!is_storage_sop_class("1.2.840.10008.5.1.4.1.2.2.1")); // Study Root FIND
        assert!(!is_storage_sop_class("1.2.840.10008.1.1")); // Verification
        assert!(!is_storage_sop_class("1.2.3.4"));
    }
}
