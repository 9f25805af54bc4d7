//! Names as they arrive: bytes in a declared Specific Character Set decoded as
//! dicom-rs decodes them for us, then phi's search normalization and blind index.
//! Normalizing is idempotent (a normalized query matches what it was built from) and
//! never panics.

#![no_main]

use std::sync::LazyLock;

use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
use libfuzzer_sys::fuzz_target;
use phi::keys::{FacilityKey, KeyRing};
use phi::pseudonym::{BLIND_INDEX_HEX_LEN, blind_index, normalize_name};

static RING: LazyLock<KeyRing> = LazyLock::new(|| FacilityKey::from_bytes([9; 32]).ring());

const CHARSETS: &[&str] = &[
    "ISO_IR 6",
    "ISO_IR 100",
    "ISO_IR 101",
    "ISO_IR 109",
    "ISO_IR 110",
    "ISO_IR 144",
    "ISO_IR 126",
    "ISO_IR 138",
    "ISO_IR 148",
    "ISO_IR 166",
    "ISO_IR 192",
    "GB18030",
    "GBK",
    "ISO 2022 IR 6",
    "ISO 2022 IR 87",
    "ISO 2022 IR 149",
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let code = CHARSETS[usize::from(choice) % CHARSETS.len()];
    let Some(charset) = SpecificCharacterSet::from_code(code) else {
        return;
    };
    let Ok(name) = charset.decode(bytes) else {
        return;
    };
    let normalized = normalize_name(&name);
    assert_eq!(normalize_name(&normalized), normalized, "idempotent");
    let index = blind_index(&RING, &name);
    assert!(index.is_empty() || index.len() == BLIND_INDEX_HEX_LEN);
    assert_eq!(
        index,
        blind_index(&RING, &normalized),
        "same index as its normal form"
    );
    let _ = phi::pseudonym::patient_name(&RING, &name);
    let _ = phi::pseudonym::patient_id(&RING, &name);
});
