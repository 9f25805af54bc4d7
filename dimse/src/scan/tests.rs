//! Tests of the data-set scanner: every encoding, truncation, garbage, limits.

use super::*;
use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, Length, PrimitiveValue, VR};
use dicom_encoding::{Codec, Endianness, TransferSyntax};
use dicom_object::{InMemDicomObject, mem::InMemElement};
use proptest::prelude::*;
use std::io::Write;

use Encoding::{DeflatedExplicitLittle, ExplicitBig, ExplicitLittle, ImplicitLittle};
const ALL: [Encoding; 4] = [
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
    DeflatedExplicitLittle,
];
const UNDEFINED: u32 = UNDEFINED_LENGTH;

/// Deflated data sets are laid out in Explicit VR Little Endian, then compressed.
fn layout(encoding: Encoding) -> Encoding {
    if encoding == DeflatedExplicitLittle {
        ExplicitLittle
    } else {
        encoding
    }
}

fn write(object: &InMemDicomObject, encoding: Encoding) -> Vec<u8> {
    let (uid, order, explicit) = match layout(encoding) {
        ImplicitLittle => ("1.2.840.10008.1.2", Endianness::Little, false),
        ExplicitBig => ("1.2.840.10008.1.2.2", Endianness::Big, true),
        _ => ("1.2.840.10008.1.2.1", Endianness::Little, true),
    };
    let ts = TransferSyntax::new(uid, uid, order, explicit, Codec::None);
    let mut out = Vec::new();
    object
        .write_dataset_with_ts(&mut out, &ts)
        .expect("test data set");
    out
}

fn finish(raw: Vec<u8>, encoding: Encoding) -> Vec<u8> {
    if encoding != DeflatedExplicitLittle {
        return raw;
    }
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
    deflate.write_all(&raw).expect("deflate");
    deflate.finish().expect("deflate")
}

fn object(elements: Vec<InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn el(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(dicom_core::Tag(tag.0, tag.1), vr, value.into())
}

/// A sequence that dicom-object writes with undefined lengths.
fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    let value = DataSetSequence::new(items, Length::UNDEFINED);
    DataElement::new(dicom_core::Tag(tag.0, tag.1), VR::SQ, value)
}

/// A hand-made element, item or delimiter header.
fn header(tag: Tag, vr: Option<&[u8; 2]>, len: u32, big: bool) -> Vec<u8> {
    let short: fn(u16) -> [u8; 2] = if big {
        u16::to_be_bytes
    } else {
        u16::to_le_bytes
    };
    let long: fn(u32) -> [u8; 4] = if big {
        u32::to_be_bytes
    } else {
        u32::to_le_bytes
    };
    let start = [short(tag.0), short(tag.1)].concat();
    match vr {
        Some(vr) if LONG_VRS.contains(&vr) => [&start[..], vr, &[0, 0], &long(len)].concat(),
        Some(vr) => [&start[..], vr, &short(len as u16)].concat(),
        None => [&start[..], &long(len)].concat(),
    }
}

/// An Explicit VR Little Endian element.
fn le(tag: Tag, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    [
        header(tag, Some(vr), value.len() as u32, false),
        value.to_vec(),
    ]
    .concat()
}

/// A sequence of defined length around items of defined length.
fn defined_sequence(tag: Tag, items: &[Vec<u8>], encoding: Encoding) -> Vec<u8> {
    let big = encoding == ExplicitBig;
    let body: Vec<u8> = items
        .iter()
        .flat_map(|item| [header(ITEM, None, item.len() as u32, big), item.clone()].concat())
        .collect();
    let vr = (layout(encoding) != ImplicitLittle).then_some(b"SQ");
    [header(tag, vr, body.len() as u32, big), body].concat()
}

fn head() -> InMemDicomObject {
    let instance = object(vec![
        el((0x0008, 0x1150), VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        el((0x0008, 0x1155), VR::UI, "2.25.1001"),
    ]);
    let series = object(vec![
        sequence((0x0008, 0x114A), vec![instance]),
        el(SERIES_INSTANCE_UID, VR::UI, "2.25.3003"),
    ]);
    object(vec![
        el(SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        el(SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        el(SOP_INSTANCE_UID, VR::UI, "2.25.1001"),
        el(STUDY_DATE, VR::DA, "20240131"),
        el(STUDY_TIME, VR::TM, "101500"),
        el(ACCESSION_NUMBER, VR::SH, "ACC123"),
        el(MODALITY, VR::CS, "CT"),
        el(STUDY_DESCRIPTION, VR::LO, "Thorax"),
        el(SERIES_DESCRIPTION, VR::LO, "  Axial 1mm"),
        sequence((0x0008, 0x1115), vec![series]),
        el(PATIENT_NAME, VR::PN, "Müller^Hans"),
        el(PATIENT_ID, VR::LO, "PID-42"),
        el(PATIENT_IDENTITY_REMOVED, VR::CS, "YES"),
        el(STUDY_INSTANCE_UID, VR::UI, "2.25.2002"),
        el(SERIES_INSTANCE_UID, VR::UI, "2.25.3003"),
        el(SERIES_NUMBER, VR::IS, "7"),
        el(INSTANCE_NUMBER, VR::IS, " 12"),
        el(NUMBER_OF_FRAMES, VR::IS, "3"),
    ])
}

/// Holds indexed tags that must not be taken: they are not at top level.
fn request_item() -> InMemDicomObject {
    let code = object(vec![
        el((0x0008, 0x0100), VR::SH, "X1"),
        el((0x0008, 0x0102), VR::SH, "99LOCAL"),
    ]);
    object(vec![
        el(MODALITY, VR::CS, "MR"),
        el(PATIENT_NAME, VR::PN, "Nested^Name"),
        el((0x0040, 0x0007), VR::LO, "Plan"),
        sequence((0x0040, 0x0008), vec![code]),
    ])
}

fn tail() -> InMemDicomObject {
    let encrypted = object(vec![
        el((0x0400, 0x0510), VR::UI, "1.2.840.10008.1.2.1"),
        el((0x0400, 0x0520), VR::OB, vec![0xA5u8; 16]),
    ]);
    object(vec![
        sequence(ENCRYPTED_ATTRIBUTES, vec![encrypted]),
        el(PIXEL_DATA, VR::OW, vec![1u8, 2, 3, 4]),
    ])
}

/// Top-level elements, a defined-length sequence holding an undefined-length
/// one, undefined-length sequences two deep, encrypted attributes, pixel data.
fn rich(encoding: Encoding) -> Vec<u8> {
    let mut raw = write(&head(), encoding);
    let item = write(&request_item(), encoding);
    raw.extend(defined_sequence((0x0040, 0x0275), &[item], encoding));
    raw.extend(write(&tail(), encoding));
    finish(raw, encoding)
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn expected() -> Header {
    Header {
        specific_character_set: some("ISO_IR 100"),
        sop_class_uid: some("1.2.840.10008.5.1.4.1.1.2"),
        sop_instance_uid: some("2.25.1001"),
        study_instance_uid: some("2.25.2002"),
        series_instance_uid: some("2.25.3003"),
        patient_id: some("PID-42"),
        patient_name: some("Müller^Hans"),
        study_date: some("20240131"),
        study_time: some("101500"),
        accession_number: some("ACC123"),
        modality: some("CT"),
        study_description: some("Thorax"),
        series_description: some("Axial 1mm"),
        series_number: Some(7),
        instance_number: Some(12),
        number_of_frames: Some(3),
        patient_identity_removed: true,
        has_encrypted_attributes: true,
        has_pixel_data: true,
        encrypted_content: Some(vec![0xA5u8; 16]),
        ..Header::default()
    }
}

/// Explicit VR LE element with a 2-byte length.
fn short_element(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out
}

#[test]
fn the_blind_index_is_read_only_from_the_products_private_block() {
    let with_creator = |creator: &[u8]| {
        let mut bytes = short_element(0x0008, 0x0060, b"CS", b"CT");
        bytes.extend(short_element(0x0013, 0x0010, b"LO", creator));
        bytes.extend(short_element(0x0013, 0x1010, b"LO", b"ab12"));
        scan(bytes.as_slice(), Encoding::ExplicitLittle).unwrap()
    };
    assert_eq!(
        with_creator(b"PACS GATEWAY 1").name_blind_index.as_deref(),
        Some("ab12")
    );
    assert_eq!(with_creator(b"SOMEONE ELSE  ").name_blind_index, None);
}

fn is_malformed(result: &Result<Header, ScanError>) -> bool {
    matches!(result, Err(ScanError::Malformed { .. }))
}

#[test]
fn every_encoding_yields_every_indexed_field() {
    for encoding in ALL {
        let raw = rich(encoding);
        let mut header = scan(&raw[..], encoding).expect("well-formed");
        let span = header.pixel_data.take().expect("pixel data found");
        assert_eq!(header, expected(), "{encoding:?}");
        // Pixel Data is last: 4 value bytes after an 8- or 12-byte header.
        let value_header = if layout(encoding) == ImplicitLittle {
            8
        } else {
            12
        };
        assert_eq!(span.end - span.start, value_header + 4, "{encoding:?}");
        assert!(!span.encapsulated && span.even, "{encoding:?}");
        if encoding != DeflatedExplicitLittle {
            assert_eq!(span.end, raw.len() as u64, "{encoding:?}");
        }
    }
}

#[test]
fn latin1_patient_name_is_decoded_with_the_specific_character_set() {
    let raw = rich(ExplicitLittle);
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|window| window == needle);
    assert!(
        contains(b"M\xFCller^Hans"),
        "the test must send Latin-1 bytes"
    );
    assert!(!contains("Müller".as_bytes()));
    let latin1 = charset_for("ISO_IR 100");
    let text = crate::charset::Delimiters::Text;
    assert_eq!(
        decode_text(latin1.as_ref(), b"M\xFCller ", text),
        some("Müller")
    );
    assert_eq!(decode_text(None, b"M\xFCller", text), some("M\u{FFFD}ller"));
    assert_eq!(charset_for("ISO_IR 999"), None, "unknown: lossy UTF-8");
    let extended = charset_for("ISO 2022 IR 6\\ISO 2022 IR 100");
    assert_eq!(
        decode_text(extended.as_ref(), b"M\x1b-A\xFCller", text),
        some("Müller"),
        "code extensions switch to the Latin-1 upper half"
    );
}

#[test]
fn encapsulated_pixel_data_is_walked_fragment_by_fragment() {
    let fragments = vec![
        vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4],
        vec![5, 6, 0xFF, 0xD9],
    ];
    let pixels = PixelFragmentSequence::new(vec![0u32, 8], fragments);
    let pixel_data = DataElement::new(dicom_core::Tag(0x7FE0, 0x0010), VR::OB, pixels);
    let set = object(vec![el(SOP_INSTANCE_UID, VR::UI, "2.25.1001"), pixel_data]);
    let jpeg = Codec::EncapsulatedPixelData(None, None);
    let ts = TransferSyntax::new_ele("1.2.840.10008.1.2.4.50", "JPEG Baseline", jpeg);
    let mut raw = Vec::new();
    set.write_dataset_with_ts(&mut raw, &ts)
        .expect("test data set");
    let encapsulated = header(PIXEL_DATA, Some(b"OB"), UNDEFINED, false);
    let start = raw
        .windows(12)
        .position(|w| w == encapsulated)
        .expect("undefined length");

    let encoding = Encoding::from_transfer_syntax(ts.uid()).expect("known syntax");
    let header = scan(&raw[..], encoding).expect("well-formed");
    assert!(header.has_pixel_data);
    assert_eq!(header.sop_instance_uid, some("2.25.1001"));
    let span = header.pixel_data.expect("pixel data found");
    assert_eq!((span.start, span.end), (start as u64, raw.len() as u64));
    assert!(span.encapsulated && span.even);
    let mut odd = raw.clone();
    // The second fragment (after the offset table and the first): length 4 -> 3.
    let second = start + 12 + 16 + 16;
    assert_eq!(&odd[second..second + 4], &[0xFE, 0xFF, 0x00, 0xE0]);
    odd[second + 4] = 3;
    assert!(
        scan(&odd[..], encoding).is_err(),
        "length no longer adds up"
    );
    odd.remove(second + 8 + 3);
    let odd_span = scan(&odd[..], encoding).expect("odd fragment").pixel_data;
    assert!(odd_span.is_some_and(|s| s.encapsulated && !s.even));
    for cut in start + 1..raw.len() {
        assert!(
            scan(&raw[..cut], encoding).is_err(),
            "cut at {cut} accepted"
        );
    }
}

#[test]
fn every_cut_of_a_single_sequence_data_set_is_refused() {
    for encoding in ALL {
        let set = object(vec![sequence((0x0040, 0x0275), vec![request_item()])]);
        let item = write(&request_item(), encoding);
        let defined = defined_sequence((0x0040, 0x0275), &[item], encoding);
        for raw in [write(&set, encoding), defined] {
            let data = finish(raw, encoding);
            assert!(scan(&data[..], encoding).is_ok(), "{encoding:?}");
            for cut in 0..data.len() {
                let result = scan(&data[..cut], encoding);
                assert!(result.is_err(), "{encoding:?} cut at {cut}");
            }
        }
    }
}

#[test]
fn no_cut_of_the_rich_data_set_passes_as_the_whole() {
    for encoding in ALL {
        let data = rich(encoding);
        for cut in 0..data.len() {
            let result = scan(&data[..cut], encoding);
            let whole = matches!(&result, Ok(header) if *header == expected());
            assert!(!whole, "{encoding:?} cut at {cut}");
            if encoding == DeflatedExplicitLittle {
                assert!(result.is_err(), "deflate stream cut at {cut} accepted");
            }
        }
    }
}

#[test]
fn garbage_after_the_data_set_is_refused() {
    for encoding in [ExplicitLittle, ImplicitLittle, ExplicitBig] {
        let big = encoding == ExplicitBig;
        let garbage = [
            vec![0],
            vec![0xFF; 3],
            vec![0; 8],
            header(SEQUENCE_DELIMITER, None, 0, big),
            header(ITEM_DELIMITER, None, 0, big),
            header(ITEM, None, UNDEFINED, big),
        ];
        for extra in garbage {
            let data = [rich(encoding), extra.clone()].concat();
            let result = scan(&data[..], encoding);
            assert!(is_malformed(&result), "{encoding:?} {extra:?}");
        }
    }
    let inside = finish(
        [rich(ExplicitLittle), vec![0; 8]].concat(),
        DeflatedExplicitLittle,
    );
    assert!(is_malformed(&scan(&inside[..], DeflatedExplicitLittle)));
    for (extra, accepted) in [(vec![0], true), (vec![0, 0], false), (vec![1], false)] {
        let data = [rich(DeflatedExplicitLittle), extra].concat();
        assert_eq!(scan(&data[..], DeflatedExplicitLittle).is_ok(), accepted);
    }
}

#[test]
fn huge_length_on_a_plain_element_is_truncated_without_reading_it() {
    let cases = [
        (ExplicitLittle, Some(b"OB")),
        (ExplicitBig, Some(b"OB")),
        (ImplicitLittle, None),
    ];
    for (encoding, vr) in cases {
        let big = encoding == ExplicitBig;
        let data = [header((0x0042, 0x0011), vr, 0xFFFF_FFF0, big), vec![0; 16]].concat();
        let result = scan(&data[..], encoding);
        let end = data.len() as u64;
        assert!(matches!(result, Err(ScanError::Truncated { offset }) if offset == end));
    }
}

#[test]
fn oversized_indexed_attribute_is_refused_before_it_is_read() {
    let data = header(PATIENT_NAME, None, 0xFFFF_FFF0, false);
    let error = scan(&data[..], ImplicitLittle).expect_err("too long");
    let expected = ScanError::ValueTooLong {
        tag: (0x0010, 0x0010),
        len: 0xFFFF_FFF0,
    };
    assert_eq!(error.to_string(), expected.to_string());
    assert!(error.to_string().contains("(0010,0010)"), "{error}");
    let data = le(STUDY_DESCRIPTION, b"LO", &[b'A'; VALUE_CAP as usize + 2]);
    let result = scan(&data[..], ExplicitLittle);
    assert!(matches!(result, Err(ScanError::ValueTooLong { .. })));
}

fn nested(depth: usize) -> Vec<u8> {
    let sq = header((0x0040, 0xA730), Some(b"SQ"), UNDEFINED, false);
    let open = [sq, header(ITEM, None, UNDEFINED, false)].concat();
    let close = [
        header(ITEM_DELIMITER, None, 0, false),
        header(SEQUENCE_DELIMITER, None, 0, false),
    ];
    [open.repeat(depth), close.concat().repeat(depth)].concat()
}

#[test]
fn nesting_is_capped() {
    let ok = scan(&nested(MAX_DEPTH as usize)[..], ExplicitLittle);
    assert!(ok.is_ok(), "{ok:?}");
    for depth in [MAX_DEPTH as usize + 1, 100_000] {
        match scan(&nested(depth)[..], ExplicitLittle) {
            Err(ScanError::Malformed { reason, .. }) => assert!(reason.contains("nested")),
            other => panic!("depth {depth}: {other:?}"),
        }
    }
}

#[test]
fn structural_rules_are_enforced() {
    let item = |len| header(ITEM, None, len, false);
    let sq = |len| header((0x0040, 0x0275), Some(b"SQ"), len, false);
    let plan = le((0x0040, 0x0007), b"LO", b"Plan");
    let end_item = header(ITEM_DELIMITER, None, 0, false);
    let (id, name) = (
        le(PATIENT_ID, b"LO", b"P1"),
        le(PATIENT_NAME, b"PN", b"A^B "),
    );
    let meta = le((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1\0");
    let pixels = header(PIXEL_DATA, Some(b"OB"), UNDEFINED, false);
    let cases = [
        ("descending tags", [id.clone(), name].concat()),
        ("repeated tag", [id.clone(), id].concat()),
        ("meta group", meta),
        ("stray item delimiter", end_item.clone()),
        (
            "item overruns sequence",
            [sq(16), item(16), plan.clone()].concat(),
        ),
        (
            "element overruns item",
            [sq(20), item(10), plan.clone()].concat(),
        ),
        (
            "delimiter in defined item",
            [sq(16), item(8), end_item].concat(),
        ),
        ("not an item", [sq(UNDEFINED), plan].concat()),
        ("unknown VR", le((0x0010, 0x4000), b"ZZ", b"ab")),
        (
            "undefined UT",
            header((0x0010, 0x4000), Some(b"UT"), UNDEFINED, false),
        ),
        ("undefined fragment", [pixels, item(UNDEFINED)].concat()),
    ];
    for (name, data) in cases {
        assert!(is_malformed(&scan(&data[..], ExplicitLittle)), "{name}");
    }
    let odd = scan(&le(MODALITY, b"CS", b"CT ")[..], ExplicitLittle);
    assert_eq!(odd.expect("odd lengths are tolerated").modality, some("CT"));
}

#[test]
fn implicit_vr_defined_sequences_are_checked_through_the_dictionary() {
    let not_an_item = [header((0x0040, 0x0007), None, 4, false), b"Plan".to_vec()].concat();
    let wrap = |tag| [header(tag, None, 12, false), not_an_item.clone()].concat();
    let sequence = scan(&wrap((0x0040, 0x0275))[..], ImplicitLittle);
    assert!(is_malformed(&sequence), "(0040,0275) is SQ: {sequence:?}");
    let private = scan(&wrap((0x0009, 0x1010))[..], ImplicitLittle);
    assert!(private.is_ok(), "a private element is opaque: {private:?}");
}

#[test]
fn binary_values_must_be_whole_numbers_of_their_size() {
    // Found by fuzzing: (0052,0007) is FD; with length 14 dicom-rs reads one double,
    // loses its place, and takes the next bytes for a 4 GB element.
    let implicit = [
        header((0x0052, 0x0007), None, 14, false),
        b"Scheduld\x9c\x8c\x8b\xdf\xbe\x80".to_vec(),
    ]
    .concat();
    match scan(&implicit[..], ImplicitLittle) {
        Err(ScanError::Malformed { reason, .. }) => assert_eq!(
            reason,
            "element (0052,0007) (FD) has length 14, not a multiple of 8"
        ),
        other => panic!("{other:?}"),
    }
    for (vr, len) in [(b"US", 3), (b"UL", 6), (b"FL", 2), (b"AT", 5), (b"OW", 7)] {
        let data = le((0x0009, 0x1010), vr, &vec![0; len]);
        assert!(
            is_malformed(&scan(&data[..], ExplicitLittle)),
            "{vr:?} {len}"
        );
    }
    // Whole numbers pass, and so does anything of a byte or text VR.
    let fine = [header((0x0052, 0x0007), None, 16, false), vec![0; 16]].concat();
    assert!(scan(&fine[..], ImplicitLittle).is_ok());
    assert!(scan(&le((0x0009, 0x1010), b"OB", b"abc")[..], ExplicitLittle).is_ok());
}

#[test]
fn un_with_undefined_length_holds_implicit_little_endian_items() {
    let un = header((0x0040, 0x0275), Some(b"UN"), UNDEFINED, true);
    let item = header(ITEM, None, UNDEFINED, false);
    let plan = [header((0x0040, 0x0007), None, 4, false), b"Plan".to_vec()].concat();
    let open = [un, item, plan, header(ITEM_DELIMITER, None, 0, false)].concat();
    let closed = [open.clone(), header(SEQUENCE_DELIMITER, None, 0, false)].concat();
    assert!(scan(&closed[..], ExplicitBig).is_ok());
    let result = scan(&open[..], ExplicitBig);
    assert!(
        matches!(result, Err(ScanError::Truncated { .. })),
        "{result:?}"
    );
}

#[test]
fn large_pixel_data_is_streamed_not_buffered() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let first = write(
        &object(vec![el(SOP_INSTANCE_UID, VR::UI, "2.25.1001")]),
        ExplicitLittle,
    );
    let head = [first, header(PIXEL_DATA, Some(b"OW"), SIZE as u32, false)].concat();
    // The header bytes, then zeros generated on demand: nothing holds 64 MiB.
    let stream = |zeros| head.as_slice().chain(io::repeat(0).take(zeros));
    let header = scan(stream(SIZE), ExplicitLittle).expect("well-formed");
    assert!(header.has_pixel_data);
    assert_eq!(header.sop_instance_uid, some("2.25.1001"));
    let result = scan(stream(SIZE - 1), ExplicitLittle);
    let end = head.len() as u64 + SIZE - 1;
    let truncated = matches!(result, Err(ScanError::Truncated { offset }) if offset == end);
    assert!(truncated, "{result:?}");
}

#[test]
fn transfer_syntax_uids_map_to_encodings() {
    let cases = [
        ("1.2.840.10008.1.2", Some(ImplicitLittle)),
        ("1.2.840.10008.1.2\0", Some(ImplicitLittle)),
        ("1.2.840.10008.1.2.1", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.2", Some(ExplicitBig)),
        ("1.2.840.10008.1.2.1.99", Some(DeflatedExplicitLittle)),
        ("1.2.840.10008.1.2.4.95", Some(DeflatedExplicitLittle)),
        ("1.2.840.10008.1.2.1.98", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.4.50", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.4.80", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.4.90", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.4.107", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.4.201", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.5", Some(ExplicitLittle)),
        ("1.2.840.10008.1.2.4.050", None),
        ("1.2.840.10008.1.2.4.", None),
        ("1.2.3.4", None),
    ];
    for (uid, encoding) in cases {
        assert_eq!(Encoding::from_transfer_syntax(uid), encoding, "{uid:?}");
    }
}

#[test]
fn empty_input_is_reported_as_empty() {
    let is_empty = |data: &[u8], encoding| matches!(scan(data, encoding), Err(ScanError::Empty));
    for encoding in ALL {
        assert!(is_empty(&[], encoding), "{encoding:?}");
    }
    let nothing = finish(Vec::new(), DeflatedExplicitLittle);
    assert!(
        is_empty(&nothing, DeflatedExplicitLittle),
        "an empty deflate stream"
    );
}

/// Fails every read with this kind of error.
struct Fails(io::ErrorKind);

impl Read for Fails {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self.0.into())
    }
}

#[test]
fn reader_failures_are_io_errors_and_eof_is_truncation() {
    let data = rich(ExplicitLittle);
    let reset = data[..100].chain(Fails(io::ErrorKind::ConnectionReset));
    assert!(matches!(scan(reset, ExplicitLittle), Err(ScanError::Io(_))));
    let result = scan(
        data[..100].chain(Fails(io::ErrorKind::UnexpectedEof)),
        ExplicitLittle,
    );
    assert!(
        matches!(result, Err(ScanError::Truncated { offset: 100 })),
        "{result:?}"
    );
    let corrupt = scan(&[0xFF; 16][..], DeflatedExplicitLittle);
    assert!(is_malformed(&corrupt), "{corrupt:?}");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600), which in 0..4usize) {
        let _ = scan(&data[..], ALL[which]);
    }

    #[test]
    fn mutated_data_sets_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        which in 0..4usize,
    ) {
        let mut data = rich(ALL[which]);
        for (index, value) in edits {
            let at = index.index(data.len());
            data[at] = value;
        }
        let _ = scan(&data[..], ALL[which]);
    }

    #[test]
    fn written_attributes_read_back(
        patient_id in "[A-Z0-9]{1,16}",
        name in "[A-Z]{1,12}\\^[A-Z]{1,12}",
        modality in "[A-Z]{2}",
        series in 0i64..1_000_000,
        frames in 1i64..5000,
        which in 0..4usize,
    ) {
        let encoding = ALL[which];
        let set = object(vec![
            el(MODALITY, VR::CS, modality.as_str()),
            el(PATIENT_NAME, VR::PN, name.as_str()),
            el(PATIENT_ID, VR::LO, patient_id.as_str()),
            el(SERIES_NUMBER, VR::IS, series.to_string()),
            el(NUMBER_OF_FRAMES, VR::IS, frames.to_string()),
        ]);
        let data = finish(write(&set, encoding), encoding);
        let header = scan(&data[..], encoding).expect("well-formed");
        prop_assert_eq!(header.patient_id, Some(patient_id));
        prop_assert_eq!(header.patient_name, Some(name));
        prop_assert_eq!(header.modality, Some(modality));
        prop_assert_eq!(header.series_number, Some(series));
        prop_assert_eq!(header.number_of_frames, Some(frames));
    }
}

#[test]
fn the_sealed_identity_bytes_are_kept() {
    let mut item = short_element(0x0400, 0x0510, b"UI", b"1.2.840.10008.1.2.1\0");
    item.extend(long_element(0x0400, 0x0520, b"OB", &[7u8; 40]));
    let mut bytes = short_element(0x0008, 0x0060, b"CS", b"CT");
    let mut seq_value = Vec::new();
    seq_value.extend_from_slice(&0xFFFEu16.to_le_bytes());
    seq_value.extend_from_slice(&0xE000u16.to_le_bytes());
    seq_value.extend_from_slice(&(item.len() as u32).to_le_bytes());
    seq_value.extend(item);
    bytes.extend(long_element(0x0400, 0x0500, b"SQ", &seq_value));
    let header = scan(bytes.as_slice(), Encoding::ExplicitLittle).unwrap();
    assert_eq!(header.encrypted_content.as_deref(), Some(&[7u8; 40][..]));
    assert!(header.has_encrypted_attributes);
}

/// Explicit VR LE element with a 4-byte length (OB, SQ, ...).
fn long_element(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
    out
}

#[test]
fn the_identity_summary_is_kept_only_in_the_product_block_and_below_the_cap() {
    let block = |creator: &[u8], summary_len: usize| {
        let mut bytes = short_element(0x0008, 0x0060, b"CS", b"CT");
        bytes.extend(short_element(0x0013, 0x0010, b"LO", creator));
        bytes.extend(short_element(0x0013, 0x1010, b"LO", b"ab12"));
        bytes.extend(long_element(0x0013, 0x1011, b"OB", &vec![9u8; summary_len]));
        bytes.extend(short_element(0x0020, 0x000D, b"UI", b"2.25.7\0"));
        scan(bytes.as_slice(), Encoding::ExplicitLittle).unwrap()
    };
    let ours = block(b"PACS GATEWAY 1", 64);
    assert_eq!(ours.identity_summary.as_deref(), Some(&[9u8; 64][..]));
    assert_eq!(ours.name_blind_index.as_deref(), Some("ab12"));
    assert_eq!(ours.study_instance_uid.as_deref(), Some("2.25.7"));
    let foreign = block(b"OTHER VENDOR  ", 64);
    assert!(foreign.identity_summary.is_none());
    let too_big = block(b"PACS GATEWAY 1", IDENTITY_SUMMARY_CAP as usize + 2);
    assert!(too_big.identity_summary.is_none());
    assert_eq!(too_big.study_instance_uid.as_deref(), Some("2.25.7"));
}
