//! The de-identifier on whatever a modality can send: the bytes are parsed as the
//! client parses a spooled instance (a Part-10 stream, or a bare data set in either
//! little-endian encoding), de-identified, and the result re-identified with the same
//! key. De-identification of a parsed object never panics; what it seals comes back.

#![no_main]

use std::sync::LazyLock;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use libfuzzer_sys::fuzz_target;
use phi::keys::{FacilityKey, KeyRing};

static RING: LazyLock<KeyRing> = LazyLock::new(|| FacilityKey::from_bytes([7; 32]).ring());

fn parse(choice: u8, bytes: &[u8]) -> Option<InMemDicomObject> {
    use dicom_transfer_syntax_registry::entries::{
        EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
    };
    match choice % 3 {
        0 => {
            InMemDicomObject::read_dataset_with_ts(bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased()).ok()
        }
        1 => {
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).ok()
        }
        _ => dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Never)
            .from_reader(bytes)
            .ok()
            .map(|file| file.into_inner()),
    }
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
    for tag in [tags::PATIENT_NAME, tags::PATIENT_ID, tags::SOP_INSTANCE_UID] {
        let value = |o: &InMemDicomObject| {
            o.get(tag)
                .map(|e| e.value().to_bytes().ok().map(|b| b.into_owned()))
        };
        assert_eq!(value(&back), value(&object), "{tag} restored");
    }
});
