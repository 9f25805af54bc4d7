//! The 12-bit JPEG decoder behind transcoding (C-GET / C-MOVE to a viewer that takes
//! only uncompressed data): an instance in JPEG Extended (1.2.840.10008.1.2.4.51)
//! whose one fragment is the input, with a size and colour model taken from its
//! first bytes, converted to Explicit VR Little Endian. Never panics; a stream that
//! decodes gives exactly the pixel data the attributes say.

#![no_main]

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use libfuzzer_sys::fuzz_target;

const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

fuzz_target!(|data: &[u8]| {
    let [rows, columns, kind, rest @ ..] = data else {
        return;
    };
    let (rows, columns) = (u16::from(*rows % 64) + 1, u16::from(*columns % 64) + 1);
    let (samples, photometric) = match kind % 3 {
        0 => (1u16, "MONOCHROME2"),
        1 => (3, "YBR_FULL_422"),
        _ => (1, "MONOCHROME1"),
    };
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let number = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let mut object = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        text(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1"),
        number(tags::SAMPLES_PER_PIXEL, samples),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric),
        number(tags::ROWS, rows),
        number(tags::COLUMNS, columns),
        number(tags::BITS_ALLOCATED, 16),
        number(tags::BITS_STORED, 12),
        number(tags::HIGH_BIT, 11),
        number(tags::PIXEL_REPRESENTATION, u16::from(kind & 0x80 != 0)),
    ]);
    if samples == 3 {
        object.put(number(tags::PLANAR_CONFIGURATION, 0));
    }
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new_fragments(vec![rest.to_vec()]),
    ));
    use dicom_encoding::TransferSyntaxIndex;
    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let Some(ts) = registry.get(JPEG_EXTENDED) else {
        return;
    };
    let mut encoded = Vec::new();
    if object.write_dataset_with_ts(&mut encoded, ts).is_err() {
        return;
    }
    let Ok(native) = dimse::transcode::transcode(&encoded, JPEG_EXTENDED, EXPLICIT_VR_LE) else {
        return;
    };
    let explicit = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let back = InMemDicomObject::read_dataset_with_ts(&native[..], &explicit)
        .expect("a transcoded data set reads back");
    let pixels = back.get(tags::PIXEL_DATA).expect("pixel data");
    let bytes = pixels.to_bytes().expect("native pixel data");
    let expected = usize::from(rows) * usize::from(columns) * usize::from(samples) * 2;
    assert_eq!(bytes.len(), expected, "one frame of 16-bit samples");
});
