//! Streaming de-identification (issue 12): an instance whose pixel data is streamed
//! from the spool is sent byte for byte as the whole-instance path would send it
//! (native and encapsulated pixel data, single and multi-frame, elements after the
//! pixel data, an ISO 2022 character set); the instances it must not stream fall back;
//! a spool file that changes after it was scanned fails the try instead of sending a
//! different data set.

use std::path::{Path, PathBuf};

use client::intake::forward::{Body, Outgoing, Prepared, prepare, prepare_streamed};
use client::intake::pixels::Screened;
use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use phi::keys::{FacilityKey, KeyRing};
use tokio::io::AsyncReadExt;

const FACILITY: &str = "st-mary";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Marks the trailing padding: it must never reach the gateway as it is.
const PADDING: &[u8] = b"TRAILING-PADDING-FROM-THE-MODALITY";

fn ring() -> KeyRing {
    FacilityKey::from_bytes([7; 32]).ring()
}

fn text(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// An identified instance with `pixels`, `frames` frames, and elements after the
/// pixel data: Coefficients SDVN (7FE0,0020, kept by the profile), a Digital
/// Signatures Sequence and Data Set Trailing Padding (both removed and sealed).
fn instance(frames: u32, pixels: InMemElement, japanese: bool) -> InMemDicomObject {
    let signature = InMemDicomObject::from_element_iter([text(
        tags::DIGITAL_SIGNATURE_DATE_TIME,
        VR::DT,
        "20240315120000",
    )]);
    let (charset, name) = if japanese {
        // PS3.5 Annex H: Yamada^Tarou=山田^太郎=やまだ^たろう in ISO 2022 IR 87.
        let name =
            "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        ("\\ISO 2022 IR 87 ", name.as_bytes().to_vec())
    } else {
        ("ISO_IR 192", "Müller^Jürgen ".as_bytes().to_vec())
    };
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::U8(charset.as_bytes().to_vec().into()),
        ),
        text(tags::SOP_CLASS_UID, VR::UI, CT),
        text(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.99.3.1.1",
        ),
        text(tags::STUDY_DATE, VR::DA, "20240315"),
        text(tags::ACCESSION_NUMBER, VR::SH, "ACCX27182"),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::INSTITUTION_NAME, VR::LO, "St Mary Hospital"),
        DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::U8(name.into())),
        text(tags::PATIENT_ID, VR::LO, "MRN-314159"),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, "19650312"),
        text(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.99.1.1",
        ),
        text(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.99.2.1",
        ),
        text(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string()),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        pixels,
        DataElement::new(
            Tag(0x7FE0, 0x0020),
            VR::OW,
            PrimitiveValue::from(vec![1u8, 2, 3, 4, 5, 6, 7, 8]),
        ),
        DataElement::new(
            tags::DIGITAL_SIGNATURES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![signature]),
        ),
        DataElement::new(
            tags::DATA_SET_TRAILING_PADDING,
            VR::OB,
            PrimitiveValue::from(PADDING.to_vec()),
        ),
    ])
}

fn native(frames: u32) -> InMemElement {
    let bytes: Vec<u8> = (0..frames * 512).map(|i| (i % 251) as u8).collect();
    DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(bytes))
}

fn encapsulated(frames: u32) -> InMemElement {
    let fragments: Vec<Vec<u8>> = (0..frames)
        .map(|f| {
            let mut jpeg = vec![0xFF, 0xD8];
            jpeg.extend((0..100 + 10 * f).map(|i| (i % 200) as u8));
            jpeg.extend([0xFF, 0xD9]);
            jpeg
        })
        .collect();
    let mut offsets = vec![0u32];
    for fragment in &fragments[..fragments.len() - 1] {
        offsets.push(offsets.last().unwrap() + 8 + fragment.len() as u32);
    }
    let value = PixelFragmentSequence::new(offsets, fragments);
    DataElement::new(tags::PIXEL_DATA, VR::OB, value)
}

fn write(dir: &Path, name: &str, object: InMemDicomObject, ts: &str) -> PathBuf {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(CT)
        .media_storage_sop_instance_uid("1.2.826.0.1.3680043.99.3.1.1")
        .transfer_syntax(ts);
    let path = dir.join(name);
    object
        .with_meta(meta)
        .unwrap()
        .write_to_file(&path)
        .unwrap();
    path
}

/// Today's path, the screening forwarding the instance as it is.
fn whole(path: &Path) -> Outgoing {
    let options = phi::profile::Options::default();
    let forward = |file: dicom_object::DefaultDicomObject| Screened::Forward {
        transfer_syntax: file.meta().transfer_syntax().trim_end_matches('\0').into(),
        object: file.into_inner(),
        cleaned: false,
    };
    match prepare(path, &ring(), FACILITY, &options, forward).unwrap() {
        Prepared::Send(outgoing) => outgoing,
        Prepared::Held(reason) => panic!("held: {reason}"),
    }
}

fn streamed(path: &Path) -> Option<Outgoing> {
    let options = phi::profile::Options::default();
    prepare_streamed(path, &ring(), FACILITY, &options, |_, _| true).unwrap()
}

async fn bytes(body: &Body) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    body.reader()
        .map_err(std::io::Error::other)?
        .read_to_end(&mut out)
        .await?;
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn streamed_instances_are_byte_identical_to_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("native-1", native(1), EXPLICIT_LE, false),
        ("native-8", native(8), EXPLICIT_LE, false),
        ("native-8-implicit", native(8), IMPLICIT_LE, false),
        ("native-3-iso2022", native(3), EXPLICIT_LE, true),
        ("jpeg-1", encapsulated(1), JPEG_BASELINE, false),
        ("jpeg-5", encapsulated(5), JPEG_BASELINE, false),
        ("jpeg-5-iso2022", encapsulated(5), JPEG_BASELINE, true),
    ];
    for (name, pixels, ts, japanese) in cases {
        let frames = match pixels.value() {
            dicom_core::value::Value::PixelSequence(seq) => seq.fragments().len() as u32,
            _ => (pixels.value().primitive().unwrap().calculate_byte_len() / 512) as u32,
        };
        let path = write(dir.path(), name, instance(frames, pixels, japanese), ts);
        let expected = whole(&path);
        let Body::Memory(expected_bytes) = &expected.body else {
            panic!("{name}: the whole path holds the data set");
        };
        let got = streamed(&path).unwrap_or_else(|| panic!("{name}: not streamed"));
        assert!(got.body.is_streamed(), "{name}");
        assert_eq!(got.body.len(), expected_bytes.len() as u64, "{name}");
        let got_bytes = bytes(&got.body).await.unwrap();
        assert!(got_bytes == *expected_bytes, "{name}: the bytes differ");
        assert_eq!(
            (&got.sop_class, &got.sop_instance, &got.transfer_syntax),
            (
                &expected.sop_class,
                &expected.sop_instance,
                &expected.transfer_syntax
            ),
            "{name}"
        );
        assert_eq!(got.transfer_syntax, ts, "{name}");
        // What follows the pixel data went through the de-identification.
        assert!(!contains(&got_bytes, PADDING), "{name}: raw padding sent");
        assert!(
            !contains(&got_bytes, b"20240315120000"),
            "{name}: signature"
        );
        assert!(!contains(&got_bytes, b"MRN-314159"), "{name}: patient ID");
        let object = client::dicomfile::read_dataset(&got_bytes, ts).unwrap();
        let original = phi::deid::reidentify(&object, &ring(), FACILITY).unwrap();
        let padding = original.get(tags::DATA_SET_TRAILING_PADDING).unwrap();
        assert_eq!(&padding.to_bytes().unwrap()[..], PADDING, "{name}: sealed");
        assert!(
            original.get(Tag(0x7FE0, 0x0020)).is_some(),
            "{name}: kept after the pixel data"
        );
        let name_value = original.get(tags::PATIENT_NAME).unwrap().to_str().unwrap();
        let want = if japanese {
            "Yamada^Tarou=山田^太郎=やまだ^たろう"
        } else {
            "Müller^Jürgen"
        };
        assert_eq!(name_value.trim_end(), want, "{name}");
    }
}

#[tokio::test]
async fn instances_that_cannot_be_streamed_exactly_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = phi::profile::Options::default();
    let big_endian = write(
        dir.path(),
        "big",
        instance(1, native(1), false),
        "1.2.840.10008.1.2.2",
    );
    assert!(streamed(&big_endian).is_none(), "big endian");
    let no_pixels = {
        let mut object = instance(1, native(1), false);
        object.remove_element(tags::PIXEL_DATA);
        write(dir.path(), "none", object, EXPLICIT_LE)
    };
    assert!(streamed(&no_pixels).is_none(), "no pixel data");
    let odd = {
        // dicom-rs pads what it writes: make the last element's length odd by hand.
        let mut object = instance(1, native(1), false);
        for tag in [
            Tag(0x7FE0, 0x0020),
            tags::DIGITAL_SIGNATURES_SEQUENCE,
            tags::DATA_SET_TRAILING_PADDING,
        ] {
            object.remove_element(tag);
        }
        let path = write(dir.path(), "odd", object, EXPLICIT_LE);
        let mut raw = std::fs::read(&path).unwrap();
        let header = [0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0, 2, 0, 0];
        let at = raw
            .windows(12)
            .position(|w| w == header)
            .expect("pixel data header");
        assert_eq!(at + 12 + 512, raw.len());
        raw[at + 4..at + 6].copy_from_slice(b"OB");
        raw[at + 8..at + 12].copy_from_slice(&511u32.to_le_bytes());
        raw.pop();
        std::fs::write(&path, raw).unwrap();
        assert!(!whole(&path).body.is_empty(), "the whole path reads it");
        path
    };
    assert!(streamed(&odd).is_none(), "odd length");
    // The screening would hold or clean it: the whole path decides.
    let native = write(
        dir.path(),
        "native",
        instance(1, native(1), false),
        EXPLICIT_LE,
    );
    let mut seen = None;
    let verdict = prepare_streamed(&native, &ring(), FACILITY, &options, |header, class| {
        seen = Some((
            header.get(tags::PIXEL_DATA).is_some(),
            header.get(tags::ROWS).is_some(),
            class.to_string(),
        ));
        false
    })
    .unwrap();
    assert!(verdict.is_none(), "screening says no");
    assert_eq!(
        seen,
        Some((false, true, CT.to_string())),
        "the header, without pixels"
    );
}

#[tokio::test]
async fn a_spool_file_that_changes_after_the_scan_fails_the_try() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "native",
        instance(8, native(8), false),
        EXPLICIT_LE,
    );
    let original = std::fs::read(&path).unwrap();
    let full_len = original.len() as u64;

    // Truncated before the send: refused before a byte is sent.
    let got = streamed(&path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full_len - 100).unwrap();
    let refused = got.body.reader().err().expect("a changed file is refused");
    assert!(refused.contains("changed"), "{refused}");

    // Truncated while being sent: the stream fails instead of ending early.
    std::fs::write(&path, &original).unwrap();
    let got = streamed(&path).unwrap();
    let mut reader = got.body.reader().unwrap();
    let mut first = vec![0u8; 64];
    reader.read_exact(&mut first).await.unwrap();
    file.set_len(full_len - 2000).unwrap();
    let mut rest = Vec::new();
    let error = reader.read_to_end(&mut rest).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    assert!(
        64 + (rest.len() as u64) < got.body.len(),
        "fewer bytes than the data set"
    );
}
