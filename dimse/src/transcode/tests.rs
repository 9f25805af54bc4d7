use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::*;

const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_2000: &str = "1.2.840.10008.1.2.4.90";
const SEALED: Tag = Tag(0x0400, 0x0500);

/// A 16-bit monochrome image with a private block and a stand-in for the sealed
/// envelope, in Explicit VR Little Endian.
fn image() -> (Vec<u8>, Vec<u16>) {
    let (rows, columns) = (16_u16, 12_u16);
    let pixels: Vec<u16> = (0..rows * columns).map(|i| i * 37 % 4096).collect();
    let mut obj = InMemDicomObject::new_empty();
    let put = |obj: &mut InMemDicomObject, tag, vr, value: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, value));
    };
    put(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.7".into(),
    );
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, "2.25.1234".into());
    put(&mut obj, Tag(0x0013, 0x0010), VR::LO, "PACS GATEWAY".into());
    put(
        &mut obj,
        Tag(0x0013, 0x1010),
        VR::OB,
        PrimitiveValue::from(vec![1_u8, 2, 3, 4]),
    );
    let envelope = InMemDicomObject::from_element_iter([DataElement::new(
        Tag(0x0400, 0x0520),
        VR::OB,
        PrimitiveValue::from(vec![9_u8; 32]),
    )]);
    obj.put(DataElement::new(
        SEALED,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![envelope]),
    ));
    put(
        &mut obj,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1_u16),
    );
    put(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(&mut obj, tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(
        &mut obj,
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(columns),
    );
    put(
        &mut obj,
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16_u16),
    );
    put(
        &mut obj,
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(12_u16),
    );
    put(
        &mut obj,
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(11_u16),
    );
    put(
        &mut obj,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    );
    put(
        &mut obj,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.clone().into()),
    );
    let mut out = Vec::new();
    let ts = registry(EXPLICIT_VR_LE).unwrap();
    obj.write_dataset_with_ts(&mut out, ts).unwrap();
    (out, pixels)
}

fn read(data: &[u8], ts: &str) -> InMemDicomObject {
    InMemDicomObject::read_dataset_with_ts(data, registry(ts).unwrap()).unwrap()
}

fn pixels_of(obj: &InMemDicomObject) -> Vec<u16> {
    let bytes = obj.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn sealed_bytes(obj: &InMemDicomObject) -> Vec<u8> {
    let items = obj.get(SEALED).unwrap().items().unwrap();
    let content = items[0].get(Tag(0x0400, 0x0520)).unwrap();
    content.to_bytes().unwrap().to_vec()
}

#[test]
fn what_this_build_decodes_and_encodes() {
    for ts in [
        JPEG_BASELINE,
        JPEG_LS_LOSSLESS,
        RLE,
        JPEG_2000,
        DEFLATED_EXPLICIT_VR_LE,
    ] {
        assert!(can_decode(ts), "decode {ts}");
    }
    for ts in [
        EXPLICIT_VR_LE,
        IMPLICIT_VR_LE,
        JPEG_BASELINE,
        JPEG_LS_LOSSLESS,
    ] {
        assert!(can_encode(ts), "encode {ts}");
    }
    assert!(!can_encode(RLE));
    assert!(
        !can_decode("1.2.840.10008.1.2.4.100"),
        "MPEG-2 has no codec"
    );
}

#[test]
fn pick_prefers_the_stored_syntax_then_uncompressed() {
    assert_eq!(pick(RLE, &[EXPLICIT_VR_LE, RLE]), Some(RLE));
    assert_eq!(
        pick(RLE, &[IMPLICIT_VR_LE, EXPLICIT_VR_LE]),
        Some(EXPLICIT_VR_LE)
    );
    assert_eq!(pick(JPEG_2000, &[IMPLICIT_VR_LE]), Some(IMPLICIT_VR_LE));
    assert_eq!(
        pick(EXPLICIT_VR_LE, &[JPEG_LS_LOSSLESS]),
        Some(JPEG_LS_LOSSLESS)
    );
    assert_eq!(pick(EXPLICIT_VR_LE, &[RLE]), None, "no RLE encoder");
    assert_eq!(pick("1.2.840.10008.1.2.4.100", &[EXPLICIT_VR_LE]), None);
}

#[test]
fn jpeg_ls_round_trip_is_pixel_exact_and_keeps_private_and_sealed_values() {
    let (original, pixels) = image();
    let compressed = transcode(&original, EXPLICIT_VR_LE, JPEG_LS_LOSSLESS).unwrap();
    let obj = read(&compressed, JPEG_LS_LOSSLESS);
    assert!(matches!(
        obj.get(tags::PIXEL_DATA).unwrap().value(),
        dicom_core::value::Value::PixelSequence(_)
    ));
    for ts in [
        EXPLICIT_VR_LE,
        IMPLICIT_VR_LE,
        EXPLICIT_VR_BE,
        DEFLATED_EXPLICIT_VR_LE,
    ] {
        let back = transcode(&compressed, JPEG_LS_LOSSLESS, ts).unwrap();
        let obj = read(&back, ts);
        assert_eq!(pixels_of(&obj), pixels, "pixels in {ts}");
        assert_eq!(sealed_bytes(&obj), vec![9_u8; 32], "sealed content in {ts}");
        let private = obj.get(Tag(0x0013, 0x1010)).unwrap().to_bytes().unwrap();
        assert_eq!(&private[..], &[1, 2, 3, 4], "private value in {ts}");
    }
}

#[test]
fn the_same_syntax_is_returned_byte_for_byte() {
    let (original, _) = image();
    assert_eq!(
        transcode(&original, EXPLICIT_VR_LE, EXPLICIT_VR_LE).unwrap(),
        original
    );
}

#[test]
fn impossible_conversions_say_why() {
    let (original, _) = image();
    let e = transcode(&original, EXPLICIT_VR_LE, RLE).unwrap_err();
    assert!(e.to_string().contains("no encoder"), "{e}");
    let e = transcode(b"not a data set at all", JPEG_LS_LOSSLESS, EXPLICIT_VR_LE).unwrap_err();
    assert!(e.to_string().starts_with("cannot convert"), "{e}");
}

#[test]
fn text_in_iso_2022_is_carried_byte_for_byte() {
    // The PS3.5 Annex H name under "\ISO 2022 IR 87", which dicom-rs cannot decode:
    // written as bytes, before the rest of the image.
    let name: Vec<u8> = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B".to_vec();
    let (image, pixels) = image();
    let mut head = InMemDicomObject::new_empty();
    head.put(DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::U8(b"\\ISO 2022 IR 87 ".to_vec().into()),
    ));
    head.put(DataElement::new(
        tags::PATIENT_NAME,
        VR::PN,
        PrimitiveValue::U8(name.clone().into()),
    ));
    let mut original = Vec::new();
    head.write_dataset_with_ts(&mut original, registry(EXPLICIT_VR_LE).unwrap())
        .unwrap();
    original.extend_from_slice(&image);
    let compressed = transcode(&original, EXPLICIT_VR_LE, JPEG_LS_LOSSLESS).unwrap();
    for (data, ts) in [
        (compressed.clone(), JPEG_LS_LOSSLESS),
        (
            transcode(&compressed, JPEG_LS_LOSSLESS, EXPLICIT_VR_LE).unwrap(),
            EXPLICIT_VR_LE,
        ),
    ] {
        assert!(
            data.windows(name.len()).any(|w| w == name.as_slice()),
            "the name's bytes in {ts}"
        );
        assert!(
            data.windows(15).any(|w| w == b"\\ISO 2022 IR 87"),
            "label in {ts}"
        );
        if ts == EXPLICIT_VR_LE {
            assert_eq!(pixels_of(&read(&data, ts)), pixels);
        }
    }
}

/// A 12-bit image compressed by `dcmcjpeg +ee` (and `args`): its data set in JPEG
/// Extended and `dcmdjpeg`'s decoding; `None` (with a message) without DCMTK.
fn jpeg_extended_12_bit(
    samples: usize,
    frames: usize,
    args: &[&str],
) -> Option<(Vec<u8>, InMemDicomObject)> {
    use super::dcmtk;
    if !dcmtk::available("JPEG Extended 12-bit transcode") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (native, compressed, back) = (
        dir.path().join("n.dcm"),
        dir.path().join("c.dcm"),
        dir.path().join("d.dcm"),
    );
    let dims = (48, 40, samples, frames);
    dcmtk::write_native(&native, &dcmtk::pixels(48, 40, samples, frames), dims);
    dcmtk::run("dcmcjpeg", &[&["+ee"], args].concat(), &native, &compressed);
    dcmtk::run("dcmdjpeg", &[], &compressed, &back);
    let (obj, ts) = dcmtk::open(&compressed);
    assert_eq!(ts, JPEG_EXTENDED);
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, registry(JPEG_EXTENDED).unwrap())
        .unwrap();
    Some((data, dcmtk::open(&back).0))
}

const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

#[test]
fn twelve_bit_jpeg_extended_is_decoded_and_picked() {
    assert!(can_decode(JPEG_EXTENDED));
    assert!(can_transcode(JPEG_EXTENDED, EXPLICIT_VR_LE));
    assert_eq!(
        pick(JPEG_EXTENDED, &[IMPLICIT_VR_LE, EXPLICIT_VR_LE]),
        Some(EXPLICIT_VR_LE)
    );
    let Some((data, reference)) = jpeg_extended_12_bit(1, 3, &[]) else {
        return;
    };
    let reference = pixels_of(&reference);
    for ts in [EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_LS_LOSSLESS] {
        let out = transcode(&data, JPEG_EXTENDED, ts).unwrap();
        let mut obj = read(&out, ts);
        if ts == JPEG_LS_LOSSLESS {
            // Re-encoded losslessly from the decoded samples: decode it back.
            obj = read(
                &transcode(&out, ts, EXPLICIT_VR_LE).unwrap(),
                EXPLICIT_VR_LE,
            );
        }
        let got = pixels_of(&obj);
        assert_eq!(got.len(), reference.len(), "3 frames of 48x40 in {ts}");
        super::dcmtk::assert_like_dcmtk(&got, &reference, &format!("transcoded to {ts}"));
        let int = |tag| obj.get(tag).unwrap().to_int::<u16>().unwrap();
        assert_eq!(int(tags::BITS_ALLOCATED), 16);
        assert_eq!(int(tags::BITS_STORED), 12);
        assert_eq!(int(tags::ROWS), 48);
        assert_eq!(int(tags::NUMBER_OF_FRAMES), 3);
        let photometric = obj.get(tags::PHOTOMETRIC_INTERPRETATION).unwrap();
        assert_eq!(photometric.to_str().unwrap().trim(), "MONOCHROME2");
        assert!(
            obj.get(tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH)
                .is_none()
        );
    }
}

#[test]
fn a_broken_twelve_bit_stream_fails_with_the_frame_and_reason() {
    let Some((data, _)) = jpeg_extended_12_bit(1, 1, &[]) else {
        return;
    };
    let mut obj = read(&data, JPEG_EXTENDED);
    let mut fragments = obj
        .get(tags::PIXEL_DATA)
        .unwrap()
        .value()
        .fragments()
        .unwrap()
        .to_vec();
    let half = fragments[0].len() / 2;
    fragments[0].truncate(half);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        dicom_core::value::PixelFragmentSequence::new_fragments(fragments),
    ));
    let mut broken = Vec::new();
    obj.write_dataset_with_ts(&mut broken, registry(JPEG_EXTENDED).unwrap())
        .unwrap();
    let e = transcode(&broken, JPEG_EXTENDED, EXPLICIT_VR_LE).unwrap_err();
    assert!(
        e.to_string().contains("frame 1: malformed JPEG stream"),
        "{e}"
    );
}

#[test]
fn twelve_bit_colour_comes_back_as_rgb_and_split_frames_are_joined() {
    // Fragments of at most 1 KiB: several per frame, found by the offset table.
    let Some((data, reference)) = jpeg_extended_12_bit(3, 2, &["+fs", "1"]) else {
        return;
    };
    let obj = read(&data, JPEG_EXTENDED);
    let fragments = obj
        .get(tags::PIXEL_DATA)
        .unwrap()
        .value()
        .fragments()
        .unwrap()
        .len();
    assert!(fragments > 2, "{fragments} fragments for 2 frames");
    let photometric = |o: &InMemDicomObject| {
        let e = o.get(tags::PHOTOMETRIC_INTERPRETATION).unwrap();
        e.to_str().unwrap().trim().to_string()
    };
    assert_eq!(photometric(&obj), "YBR_FULL_422");
    let out = read(
        &transcode(&data, JPEG_EXTENDED, EXPLICIT_VR_LE).unwrap(),
        EXPLICIT_VR_LE,
    );
    assert_eq!(photometric(&out), "RGB");
    assert_eq!(photometric(&reference), "RGB");
    let planar = out
        .get(tags::PLANAR_CONFIGURATION)
        .unwrap()
        .to_int::<u16>()
        .unwrap();
    assert_eq!(planar, 0);
    super::dcmtk::assert_like_dcmtk(&pixels_of(&out), &pixels_of(&reference), "colour, 2 frames");
}

#[test]
fn signed_twelve_bit_samples_are_sign_extended() {
    // dcmcjpeg makes signed images unsigned; a JPEG of signed samples carries
    // their 12-bit two's complement pattern.
    let Some((data, reference)) = jpeg_extended_12_bit(1, 1, &[]) else {
        return;
    };
    let mut obj = read(&data, JPEG_EXTENDED);
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(1_u16),
    ));
    let mut signed = Vec::new();
    obj.write_dataset_with_ts(&mut signed, registry(JPEG_EXTENDED).unwrap())
        .unwrap();
    let out = read(
        &transcode(&signed, JPEG_EXTENDED, EXPLICIT_VR_LE).unwrap(),
        EXPLICIT_VR_LE,
    );
    let want: Vec<u16> = pixels_of(&reference)
        .iter()
        .map(|p| if *p >= 2048 { p | 0xF000 } else { *p })
        .collect();
    assert!(want.iter().any(|p| *p >= 0xF000) && want.iter().any(|p| *p < 2048));
    assert_eq!(pixels_of(&out), want);
}
