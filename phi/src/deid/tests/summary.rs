//! The identity summary: what it holds, its bound, and its separation from the full
//! record.

use super::*;
use crate::seal::Purpose;

fn summary_of(de: &Deidentified) -> Vec<u8> {
    identity_summary(&de.object).expect("a summary in the private block")
}

fn open(
    de: &Deidentified,
    envelope: &[u8],
    purpose: Purpose,
) -> Result<InMemDicomObject, PhiError> {
    unseal_originals(&ring(), FACILITY, &de.sop_instance_uid, envelope, purpose)
        .map(InMemDicomObject::from_element_iter)
}

#[test]
fn holds_the_searched_identity_and_nothing_deep() {
    let de = deidentify_default(&sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2"));
    let summary = open(&de, &summary_of(&de), Purpose::Summary).expect("opens");
    let t = |tag| text_at(&summary, tag).map(|v| v.trim_end_matches(['\0', ' ']).to_owned());
    assert_eq!(t(tags::PATIENT_NAME).as_deref(), Some("Doe^John"));
    assert_eq!(t(tags::PATIENT_ID).as_deref(), Some("PID12345"));
    assert_eq!(t(tags::PATIENT_BIRTH_DATE).as_deref(), Some("19610704"));
    assert_eq!(t(tags::ACCESSION_NUMBER).as_deref(), Some("ACC778899"));
    assert_eq!(t(tags::STUDY_INSTANCE_UID).as_deref(), Some(STUDY_UID));
    assert_eq!(t(tags::SOP_INSTANCE_UID).as_deref(), Some(SOP_UID));
    assert_eq!(
        t(tags::SERIES_INSTANCE_UID).as_deref(),
        Some("1.2.826.0.1.3680043.10.999.1.1")
    );
    assert_eq!(
        t(tags::STUDY_DESCRIPTION).as_deref(),
        Some("Chest for Mr Doe")
    );
    // Sequences and unlisted attributes stay in the full record only.
    for tag in [
        tags::REFERENCED_IMAGE_SEQUENCE,
        tags::OTHER_PATIENT_I_DS_SEQUENCE,
        tags::DEVICE_SERIAL_NUMBER,
        tags::FRAME_OF_REFERENCE_UID,
    ] {
        assert!(summary.get(tag).is_none(), "{tag} in the summary");
    }
    for element in summary.iter() {
        assert!(SUMMARY_TAGS.contains(&element.tag()), "{}", element.tag());
    }
}

#[test]
fn a_summary_and_a_full_record_do_not_open_as_each_other() {
    let de = deidentify_default(&sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2"));
    let summary = summary_of(&de);
    let full = sealed::envelope(&de.object).unwrap();
    assert!(matches!(
        open(&de, &summary, Purpose::Instance),
        Err(PhiError::Unseal)
    ));
    assert!(matches!(
        open(&de, &full, Purpose::Summary),
        Err(PhiError::Unseal)
    ));
    assert!(open(&de, &full, Purpose::Instance).is_ok());
    // Bound to the instance like the full record.
    assert!(matches!(
        unseal_originals(&ring(), FACILITY, "2.25.1", &summary, Purpose::Summary),
        Err(PhiError::Unseal)
    ));
}

/// An enhanced multi-frame instance whose per-frame items each hold a UID: the
/// whole Per-frame Functional Groups Sequence goes into the full record.
fn enhanced_multiframe(frames: usize) -> InMemDicomObject {
    let mut object = sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2");
    let items = (0..frames)
        .map(|f| {
            vec![
                seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![vec![seq(
                        tags::SOURCE_IMAGE_SEQUENCE,
                        vec![vec![
                            el(
                                tags::REFERENCED_SOP_CLASS_UID,
                                VR::UI,
                                "1.2.840.10008.5.1.4.1.1.4",
                            ),
                            el(
                                tags::REFERENCED_SOP_INSTANCE_UID,
                                VR::UI,
                                &format!("1.2.826.0.1.3680043.10.999.7.{f}"),
                            ),
                        ]],
                    )]],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![vec![
                        DataElement::new(
                            tags::FRAME_ACQUISITION_NUMBER,
                            VR::US,
                            PrimitiveValue::from(1u16),
                        ),
                        el(tags::FRAME_COMMENTS, VR::LT, &"frame note ".repeat(180)),
                    ]],
                ),
            ]
        })
        .collect();
    object.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, items));
    object.put(el(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string()));
    object
}

#[test]
fn a_large_enhanced_multiframe_has_a_small_summary() {
    let original = enhanced_multiframe(500);
    let de = deidentify_default(&original);
    let full = sealed::envelope(&de.object).unwrap();
    assert!(
        full.len() > 1024 * 1024,
        "full record of {} bytes",
        full.len()
    );
    let summary = summary_of(&de);
    assert!(summary.len() <= 4096, "summary of {} bytes", summary.len());
    let opened = open(&de, &summary, Purpose::Summary).unwrap();
    assert_eq!(
        text_at(&opened, tags::PATIENT_ID).as_deref(),
        Some("PID12345")
    );
    let back = reidentify(&de.object, &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
}

#[test]
fn long_values_are_left_out_and_the_cap_holds() {
    let mut original = sample(SOP_UID, "1.2.826.0.1.3680043.10.999.1.1.2");
    let long = "x".repeat(ELEMENT_CAP + 2);
    original.put(el(tags::STUDY_DESCRIPTION, VR::LO, &long));
    // Every other summarized attribute as long as allowed.
    let near_cap = "y".repeat(ELEMENT_CAP - 2);
    for tag in SUMMARY_TAGS.iter().skip(13) {
        original.put(el(*tag, VR::LO, &near_cap));
    }
    let de = deidentify_default(&original);
    let summary = summary_of(&de);
    assert!(summary.len() <= SUMMARY_CAP, "{} bytes", summary.len());
    let opened = open(&de, &summary, Purpose::Summary).unwrap();
    assert!(opened.get(tags::STUDY_DESCRIPTION).is_none());
    assert_eq!(
        text_at(&opened, tags::PATIENT_NAME).as_deref(),
        Some("Doe^John")
    );
    let back = reidentify(&de.object, &ring(), FACILITY).expect("reidentifies");
    assert!(same_object(&back, &original));
}
