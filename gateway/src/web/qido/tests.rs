//! Query-string parsing, identifiers and DICOM JSON of QIDO-RS.

use super::*;

#[test]
fn keywords_tags_and_controls() {
    let s = parse_query(
        "PatientID=PSN-1&00080060=CT&includefield=StudyDescription,00081030&includefield=all&limit=5&offset=2&fuzzymatching=true",
    )
    .unwrap();
    assert_eq!(s.filters.len(), 2);
    assert_eq!(s.filters[0].0, tags::PATIENT_ID);
    assert_eq!(s.filters[1], (tags::MODALITY, VR::CS, "CT".to_string()));
    assert_eq!(s.include.len(), 2);
    assert!(s.include_all);
    assert_eq!((s.limit, s.offset, s.fuzzy), (Some(5), 2, true));
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    for (query, expect) in [
        ("NoSuchKeyword=1", "not an attribute keyword"),
        ("limit=-1", "limit"),
        ("offset=999999999", "offset is at most"),
        (
            "ReferencedSeriesSequence.SeriesInstanceUID=1",
            "inside sequences",
        ),
        ("PatientID=a&PatientID=b", "twice"),
        ("fuzzymatching=maybe", "fuzzymatching"),
    ] {
        let e = parse_query(query).unwrap_err();
        assert!(e.message.contains(expect), "{query}: {}", e.message);
    }
}

#[test]
fn a_private_key_brings_the_product_creator() {
    let s = parse_query("00131010=ab").unwrap();
    let object = identifier(Level::Study, &[], &s);
    let creator = object.get(Tag(0x0013, 0x0010)).unwrap();
    assert_eq!(creator.to_str().unwrap(), PRIVATE_CREATOR);
    assert!(qr::parse(Model::StudyRoot, &object).is_ok());
}

#[test]
fn numbers_become_json_numbers() {
    let object = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
            VR::IS,
            PrimitiveValue::from("12"),
        ),
        DataElement::new(tags::SLICE_THICKNESS, VR::DS, PrimitiveValue::from("2.5")),
        DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("007")),
    ]);
    let json = to_json(&[object]).unwrap();
    assert_eq!(json[0]["00201208"]["Value"][0], serde_json::json!(12));
    assert_eq!(json[0]["00180050"]["Value"][0], serde_json::json!(2.5));
    assert_eq!(json[0]["00100020"]["Value"][0], serde_json::json!("007"));
}

#[test]
fn series_level_identifier_carries_parents_and_defaults() {
    let s = parse_query("").unwrap();
    let object = identifier(Level::Series, &[(tags::STUDY_INSTANCE_UID, "1.2.3")], &s);
    assert_eq!(
        text(&object, tags::STUDY_INSTANCE_UID).as_deref(),
        Some("1.2.3")
    );
    assert!(object.get(tags::MODALITY).is_some());
    let q = qr::parse(Model::StudyRoot, &object).unwrap();
    assert_eq!(q.level(), Level::Series);
}
