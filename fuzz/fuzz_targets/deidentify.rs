//! The de-identifier on whatever a modality can send: a data set in either
//! little-endian encoding that passes the edge's scan is parsed as the client parses
//! a spooled instance, de-identified, and the result re-identified with the same key.
//! De-identification of a parsed object never panics; what it seals comes back.

#![no_main]

use std::sync::LazyLock;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use libfuzzer_sys::fuzz_target;
use phi::keys::{FacilityKey, KeyRing};

static RING: LazyLock<KeyRing> = LazyLock::new(|| FacilityKey::from_bytes([7; 32]).ring());

fn parse(choice: u8, bytes: &[u8]) -> Option<InMemDicomObject> {
    use dicom_transfer_syntax_registry::entries::{
        EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
    };
    use dimse::scan::Encoding;
    let (encoding, ts) = match choice % 2 {
        0 => (Encoding::ExplicitLittle, EXPLICIT_VR_LITTLE_ENDIAN.erased()),
        _ => (Encoding::ImplicitLittle, IMPLICIT_VR_LITTLE_ENDIAN.erased()),
    };
    // As in the client: only a data set the edge's scan accepted is ever spooled and
    // parsed (the scan refuses declared lengths the data does not have, which
    // dicom-rs would otherwise try to allocate).
    dimse::scan::scan(bytes, encoding).ok()?;
    InMemDicomObject::read_dataset_with_ts(bytes, &ts).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let Some(object) = parse(choice, bytes) else {
        return;
    };
    let options = phi::profile::Options::default();
    let Ok(done) = phi::deid::deidentify(&object, &RING, "st-mary", &options) else {
        return;
    };
    let back = phi::deid::reidentify(&done.object, &RING, "st-mary")
        .expect("what deidentify sealed re-identifies with the same key");
    // Trailing padding (space or NUL) of each value is not significant: a re-encoded
    // value is padded to even length, and a reader drops a UID value's trailing NULs.
    let value = |o: &InMemDicomObject, tag| {
        o.get(tag).map(|e| {
            e.value().to_bytes().ok().map(|b| {
                b.split(|&c| c == b'\\')
                    .map(|v| {
                        let end = v
                            .iter()
                            .rposition(|&c| c != b' ' && c != 0)
                            .map_or(0, |i| i + 1);
                        v[..end].to_vec()
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    // Original UIDs come back as they were, non-conformant ones too (non-ASCII
    // bytes included). Known exception: a DS or IS value (these tags under a wrong
    // VR) with non-ASCII bytes comes back escaped (dicom-rs writes byte values of
    // those VRs as numbers, so the sealed copy cannot carry the bytes).
    for tag in [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::STUDY_INSTANCE_UID,
        tags::SOP_INSTANCE_UID,
    ] {
        let numeric_garbage = object.get(tag).is_some_and(|e| {
            matches!(e.vr(), VR::DS | VR::IS)
                && e.value().to_str().map_or(true, |v| !v.is_ascii())
        });
        if !numeric_garbage {
            assert_eq!(value(&back, tag), value(&object, tag), "{tag} restored");
        }
    }
});
