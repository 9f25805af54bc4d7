mod generate;
mod properties;
mod summary;

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use super::compare::same_object;
use super::*;
use crate::keys::FacilityKey;
use crate::pseudonym;

const FACILITY: &str = "facility-a";

fn ring() -> KeyRing {
    FacilityKey::from_bytes([7; 32]).ring()
}

fn el(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn seq(tag: Tag, items: Vec<Vec<InMemElement>>) -> InMemElement {
    let items: Vec<_> = items
        .into_iter()
        .map(InMemDicomObject::from_element_iter)
        .collect();
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn encode(object: &InMemDicomObject) -> Vec<u8> {
    let mut bytes = Vec::new();
    object
        .write_dataset_with_ts(&mut bytes, &sealed::transfer_syntax())
        .expect("encodable");
    bytes
}

/// The object as a reader of its Explicit VR Little Endian encoding sees it.
fn reparse(object: &InMemDicomObject) -> InMemDicomObject {
    let bytes = encode(object);
    InMemDicomObject::read_dataset_with_ts(&bytes[..], &sealed::transfer_syntax())
        .expect("decodable")
}

fn text_at(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    Some(object.get(tag)?.value().primitive()?.to_str().into_owned())
}

const STUDY_UID: &str = "1.2.826.0.1.3680043.10.999.1";
const SOP_UID: &str = "1.2.826.0.1.3680043.10.999.1.1.1";

/// A CT-like instance with identifying values everywhere, `(0009,xxxx)` private data,
/// a reference to another instance and an SR-like content tree.
fn sample(sop_instance_uid: &str, referenced: &str) -> InMemDicomObject {
    let code = |value: &str, meaning: &str| {
        vec![
            el(tags::CODE_VALUE, VR::SH, value),
            el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "L"),
            el(tags::CODE_MEANING, VR::LO, meaning),
        ]
    };
    let object = InMemDicomObject::from_element_iter([
        el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        el(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        el(tags::SOP_INSTANCE_UID, VR::UI, sop_instance_uid),
        el(tags::STUDY_DATE, VR::DA, "20240312"),
        el(tags::ACCESSION_NUMBER, VR::SH, "ACC778899"),
        el(tags::MODALITY, VR::CS, "CT"),
        el(tags::INSTITUTION_NAME, VR::LO, "Saint Elsewhere Hospital"),
        el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "House^Gregory"),
        el(tags::STATION_NAME, VR::SH, "CTROOM7"),
        el(tags::STUDY_DESCRIPTION, VR::LO, "Chest for Mr Doe"),
        seq(
            tags::REFERENCED_IMAGE_SEQUENCE,
            vec![vec![
                el(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    "1.2.840.10008.5.1.4.1.1.2",
                ),
                el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, referenced),
            ]],
        ),
        seq(
            tags::PERSON_IDENTIFICATION_CODE_SEQUENCE,
            vec![code("EMP4711", "Employee Gregory House")],
        ),
        el(tags::PATIENT_NAME, VR::PN, "Doe^John"),
        el(tags::PATIENT_ID, VR::LO, "PID12345"),
        el(tags::PATIENT_BIRTH_DATE, VR::DA, "19610704"),
        el(tags::PATIENT_SEX, VR::CS, "M"),
        seq(
            tags::OTHER_PATIENT_I_DS_SEQUENCE,
            vec![vec![el(tags::PATIENT_ID, VR::LO, "OTHERPID99")]],
        ),
        el(Tag(0x0009, 0x0010), VR::LO, "ACME 1.0"),
        el(Tag(0x0009, 0x1001), VR::LO, "ACME secret note"),
        el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "SN-0042"),
        el(tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID),
        el(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.999.1.1",
        ),
        el(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.999.1.9",
        ),
        el(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"),
        seq(
            tags::CONTENT_SEQUENCE,
            vec![vec![
                el(tags::RELATIONSHIP_TYPE, VR::CS, "CONTAINS"),
                el(tags::VALUE_TYPE, VR::CS, "TEXT"),
                seq(
                    tags::CONCEPT_NAME_CODE_SEQUENCE,
                    vec![code("121071", "Finding")],
                ),
                el(tags::TEXT_VALUE, VR::UT, "Mr Doe fell off his bike"),
                seq(
                    tags::CONTENT_SEQUENCE,
                    vec![vec![
                        el(tags::VALUE_TYPE, VR::CS, "PNAME"),
                        el(tags::PERSON_NAME, VR::PN, "Wilson^James"),
                        el(Tag(0x0011, 0x0010), VR::LO, "OTHER VENDOR"),
                    ]],
                ),
            ]],
        ),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16([1, 2, 3, 4].into_iter().collect()),
        ),
    ]);
    reparse(&object)
}

/// Identifying values of [`sample`].
const IDENTIFYING: [&str; 16] = [
    "ACC778899",
    "Saint Elsewhere",
    "House^Gregory",
    "CTROOM7",
    "Chest for Mr Doe",
    "EMP4711",
    "Employee Gregory",
    "Doe^John",
    "PID12345",
    "19610704",
    "OTHERPID99",
    "ACME",
    "SN-0042",
    "1.2.826.0.1.3680043.10.999",
    "fell off his bike",
    "Wilson^James",
];

fn deidentify_default(object: &InMemDicomObject) -> Deidentified {
    deidentify(object, &ring(), FACILITY, &Options::default()).expect("de-identifies")
}

fn without_envelope(object: &InMemDicomObject) -> InMemDicomObject {
    let mut object = object.clone();
    object.remove_element(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE);
    object
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn round_trip_restores_the_original_exactly() {
    let original = sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2");
    let de = deidentify_default(&original);
    let back = reidentify(&de.object, &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
    // Also after the de-identified object went through an encoder and a parser.
    let back = reidentify(&reparse(&de.object), &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
}

#[test]
fn no_identifying_value_is_left_in_the_encoding() {
    let de = deidentify_default(&sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2"));
    let bytes = encode(&without_envelope(&de.object));
    for value in IDENTIFYING {
        assert!(
            !contains(&bytes, value.as_bytes()),
            "{value} left in the output"
        );
    }
}

#[test]
fn applies_the_profile_at_every_depth() {
    let ring = ring();
    let de = deidentify_default(&sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2"));
    let out = &de.object;
    let text = |tag| text_at(out, tag);
    assert_eq!(
        text(tags::PATIENT_NAME),
        Some(pseudonym::patient_name(&ring, "Doe^John"))
    );
    assert_eq!(
        text(tags::PATIENT_ID),
        Some(pseudonym::patient_id(&ring, "PID12345"))
    );
    assert_eq!(text(tags::STUDY_DATE).as_deref(), Some("20240312")); // full dates kept
    assert_eq!(text(tags::PATIENT_BIRTH_DATE).as_deref(), Some("")); // Z
    assert_eq!(text(tags::ACCESSION_NUMBER).as_deref(), Some("")); // Z
    assert_eq!(text(tags::INSTITUTION_NAME).as_deref(), Some("ANONYMIZED")); // X/Z/D
    assert_eq!(text(tags::MODALITY).as_deref(), Some("CT")); // not listed
    assert_eq!(text(tags::PATIENT_SEX).as_deref(), Some("")); // Z
    assert_eq!(text(tags::STATION_NAME).as_deref(), Some("ANONYMIZED")); // X/Z/D
    for removed in [tags::STUDY_DESCRIPTION, tags::OTHER_PATIENT_I_DS_SEQUENCE] {
        assert!(out.get(removed).is_none(), "{removed} kept");
    }
    assert!(
        out.iter()
            .all(|e| e.tag().group() % 2 == 0 || e.tag().group() == 0x0013)
    );
    assert_eq!(
        text(tags::SOP_INSTANCE_UID),
        Some(pseudonym::uid(&ring, SOP_UID))
    );
    assert_eq!(de.sop_instance_uid, pseudonym::uid(&ring, SOP_UID));
    assert_eq!(de.original_sop_instance_uid, SOP_UID);
    assert!(out.get(tags::PIXEL_DATA).is_some());

    let item = |tag| {
        out.get(tag)
            .and_then(|e| e.items())
            .map(|i| i[0].clone())
            .expect("item")
    };
    let reference = item(tags::REFERENCED_IMAGE_SEQUENCE);
    let expected = pseudonym::uid(&ring, "1.2.826.0.1.3680043.10.999.1.1.2");
    assert_eq!(
        text_at(&reference, tags::REFERENCED_SOP_INSTANCE_UID),
        Some(expected)
    );
    let person = item(tags::PERSON_IDENTIFICATION_CODE_SEQUENCE);
    assert_eq!(
        text_at(&person, tags::CODE_VALUE).as_deref(),
        Some("ANONYMIZED")
    );
    assert_eq!(
        text_at(&person, tags::CODING_SCHEME_DESIGNATOR).as_deref(),
        Some("99ANON")
    );
    // SR content (D): structure and codes kept, free text and names replaced.
    let content = item(tags::CONTENT_SEQUENCE);
    assert_eq!(
        text_at(&content, tags::TEXT_VALUE).as_deref(),
        Some("ANONYMIZED")
    );
    let concept = content
        .get(tags::CONCEPT_NAME_CODE_SEQUENCE)
        .and_then(|e| e.items())
        .expect("codes");
    assert_eq!(
        text_at(&concept[0], tags::CODE_MEANING).as_deref(),
        Some("Finding")
    );
    let nested = content
        .get(tags::CONTENT_SEQUENCE)
        .and_then(|e| e.items())
        .expect("nested");
    assert_eq!(
        text_at(&nested[0], tags::PERSON_NAME).as_deref(),
        Some("ANONYMIZED")
    );
    assert!(nested[0].get(Tag(0x0011, 0x0010)).is_none());
}

#[test]
fn marks_the_output_and_adds_the_private_block() {
    let original = sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2");
    let de = deidentify_default(&original);
    let out = &de.object;
    assert_eq!(
        text_at(out, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
        Some("YES")
    );
    let codes: Vec<(String, String, String)> = out
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .and_then(|e| e.items())
        .expect("code sequence")
        .iter()
        .map(|i| {
            let t = |tag| text_at(i, tag).unwrap_or_default();
            (
                t(tags::CODE_VALUE),
                t(tags::CODING_SCHEME_DESIGNATOR),
                t(tags::CODE_MEANING),
            )
        })
        .collect();
    let expected: Vec<_> = Options::default()
        .method_codes()
        .into_iter()
        .map(|(v, m)| (v.to_owned(), "DCM".to_owned(), m.to_owned()))
        .collect();
    assert_eq!(codes, expected);
    assert!(text_at(out, tags::DEIDENTIFICATION_METHOD).is_some_and(|m| m.contains("Basic")));
    let name_index = pseudonym::blind_index(&ring(), "Doe^John");
    assert_eq!(de.blind_index, name_index);
    assert_eq!(
        text_at(out, Tag(0x0013, 0x0010)).as_deref(),
        Some(PRIVATE_CREATOR)
    );
    assert_eq!(text_at(out, Tag(0x0013, 0x1010)), Some(name_index));
    assert!(!de.burned_in_annotation);
}

#[test]
fn options_change_the_actions_and_the_codes() {
    let original = sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2");
    let options = Options {
        retain_longitudinal_full_dates: false,
        retain_patient_characteristics: true,
        retain_device_identity: true,
        clean_descriptors: true,
        clean_pixel_data: false,
    };
    let de = deidentify(&original, &ring(), FACILITY, &options).expect("de-identifies");
    let out = &de.object;
    assert_eq!(text_at(out, tags::STUDY_DATE).as_deref(), Some(""));
    assert_eq!(text_at(out, tags::PATIENT_SEX).as_deref(), Some("M"));
    assert_eq!(
        text_at(out, tags::DEVICE_SERIAL_NUMBER).as_deref(),
        Some("SN-0042")
    );
    assert_eq!(text_at(out, tags::STATION_NAME).as_deref(), Some("CTROOM7"));
    // Clean Descriptors: a free-text description is cleaned by its basic action (X).
    assert!(out.get(tags::STUDY_DESCRIPTION).is_none());
    let codes = out
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .and_then(|e| e.items());
    let values: Vec<String> = codes
        .expect("codes")
        .iter()
        .filter_map(|i| text_at(i, tags::CODE_VALUE))
        .collect();
    assert_eq!(values, ["113100", "113108", "113109", "113105"]);
    let back = reidentify(out, &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
}

#[test]
fn uids_are_remapped_consistently_across_instances() {
    let a_uid = "1.2.826.0.1.3680043.10.999.1.1.7";
    let a = deidentify_default(&sample(a_uid, "1.2.826.0.1.3680043.10.999.1.1.2"));
    let b = deidentify_default(&sample(SOP_UID, a_uid));
    let study = |d: &Deidentified| text_at(&d.object, tags::STUDY_INSTANCE_UID);
    assert_eq!(study(&a), study(&b));
    assert_ne!(study(&a).as_deref(), Some(STUDY_UID));
    let reference = b
        .object
        .get(tags::REFERENCED_IMAGE_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| text_at(&items[0], tags::REFERENCED_SOP_INSTANCE_UID));
    assert_eq!(reference, Some(a.sop_instance_uid.clone()));
    // Re-sending the same instance gives the same UIDs.
    let again = deidentify_default(&sample(a_uid, "1.2.826.0.1.3680043.10.999.1.1.2"));
    assert_eq!(again.sop_instance_uid, a.sop_instance_uid);
}

#[test]
fn burned_in_annotation_is_flagged() {
    let mut object = sample(SOP_UID, "1.2.3");
    object.put(el(tags::BURNED_IN_ANNOTATION, VR::CS, "YES "));
    assert!(deidentify_default(&object).burned_in_annotation);
    object.remove_element(tags::BURNED_IN_ANNOTATION);
    assert!(!deidentify_default(&object).burned_in_annotation);
}

#[test]
fn pre_existing_marks_and_encrypted_attributes_are_restored() {
    let mut original = sample(SOP_UID, "1.2.3");
    original.put(el(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"));
    original.put(el(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        "Someone else's method",
    ));
    original.put(seq(
        tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
        vec![vec![
            el(
                tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID,
                VR::UI,
                "1.2.840.10008.1.2",
            ),
            DataElement::new(
                tags::ENCRYPTED_CONTENT,
                VR::OB,
                PrimitiveValue::from(vec![1u8, 2]),
            ),
        ]],
    ));
    let original = reparse(&original);
    let de = deidentify_default(&original);
    let back = reidentify(&de.object, &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
}

#[test]
fn latin1_names_round_trip_exactly() {
    let mut object = sample(SOP_UID, "1.2.3");
    object.put(el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"));
    object.put(el(tags::PATIENT_NAME, VR::PN, "Müller^Jürgen"));
    object.put(el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "Ærø^Søren"));
    let original = reparse(&object);
    assert_eq!(
        text_at(&original, tags::PATIENT_NAME).as_deref(),
        Some("Müller^Jürgen")
    );
    let de = deidentify_default(&original);
    assert_eq!(
        de.blind_index,
        pseudonym::blind_index(&ring(), "MULLER^jurgen")
    );
    let back = reidentify(&reparse(&de.object), &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
}

#[test]
fn reidentify_fails_with_another_facility_instance_or_key() {
    let de = deidentify_default(&sample(SOP_UID, "1.2.3"));
    assert!(matches!(
        reidentify(&de.object, &ring(), "facility-b"),
        Err(PhiError::Unseal)
    ));
    let other_key = FacilityKey::from_bytes([8; 32]).ring();
    assert!(matches!(
        reidentify(&de.object, &other_key, FACILITY),
        Err(PhiError::WrongKey { .. })
    ));
    let mut moved = de.object.clone();
    moved.put(el(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1"));
    assert!(matches!(
        reidentify(&moved, &ring(), FACILITY),
        Err(PhiError::Unseal)
    ));
}

#[test]
fn missing_uid_or_seal_is_a_clear_error() {
    let mut object = sample(SOP_UID, "1.2.3");
    object.remove_element(tags::SOP_INSTANCE_UID);
    let err = deidentify_default_err(&object);
    assert!(err.contains("SOP Instance UID"), "{err}");

    let plain = sample(SOP_UID, "1.2.3");
    let err = reidentify(&plain, &ring(), FACILITY)
        .expect_err("not sealed")
        .to_string();
    assert!(err.contains("Encrypted Attributes Sequence"), "{err}");
}

fn deidentify_default_err(object: &InMemDicomObject) -> String {
    deidentify(object, &ring(), FACILITY, &Options::default())
        .expect_err("fails")
        .to_string()
}
