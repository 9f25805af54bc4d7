use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::*;
use crate::qr::matching::{MAX_UIDS, Pattern, time_upper};

/// An identifier with `level` and `keys` (tag, VR, value).
pub(crate) fn identifier(level: &str, keys: &[(Tag, VR, &str)]) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    if !level.is_empty() {
        obj.put(DataElement::new(
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            PrimitiveValue::from(level),
        ));
    }
    for (tag, vr, value) in keys {
        let value = if value.is_empty() {
            PrimitiveValue::Empty
        } else {
            PrimitiveValue::from(*value)
        };
        obj.put(DataElement::new(*tag, *vr, value));
    }
    obj
}

fn study(keys: &[(Tag, VR, &str)]) -> Result<Query, QueryError> {
    parse(Model::StudyRoot, &identifier("STUDY", keys))
}

fn condition(query: &Query, tag: Tag) -> Option<Matcher> {
    query
        .conditions()
        .iter()
        .find(|c| c.attr.tag == tag)
        .map(|c| c.matcher.clone())
}

fn exact(v: &str) -> Matcher {
    Matcher::Values(vec![Pattern::Exact(v.into())])
}

#[test]
fn the_level_is_required_and_must_belong_to_the_model() {
    let none = parse(Model::StudyRoot, &identifier("", &[]));
    assert!(matches!(none, Err(QueryError::MissingLevel)), "{none:?}");
    let patient = parse(Model::StudyRoot, &identifier("PATIENT", &[]));
    assert!(
        matches!(patient, Err(QueryError::UnsupportedLevel { .. })),
        "{patient:?}"
    );
    assert_eq!(patient.unwrap_err().status(), 0xA900);
    let odd = parse(Model::PatientRoot, &identifier("WARD", &[]));
    assert!(
        matches!(odd, Err(QueryError::UnsupportedLevel { .. })),
        "{odd:?}"
    );
    let ok = parse(Model::PatientRoot, &identifier("PATIENT ", &[])).unwrap();
    assert_eq!(ok.level(), Level::Patient);
}

#[test]
fn models_come_from_the_sop_classes() {
    for (uid, model) in [
        ("1.2.840.10008.5.1.4.1.2.1.1", Model::PatientRoot),
        ("1.2.840.10008.5.1.4.1.2.1.2", Model::PatientRoot),
        ("1.2.840.10008.5.1.4.1.2.1.3", Model::PatientRoot),
        ("1.2.840.10008.5.1.4.1.2.2.1\0", Model::StudyRoot),
        ("1.2.840.10008.5.1.4.1.2.2.2", Model::StudyRoot),
        ("1.2.840.10008.5.1.4.1.2.2.3", Model::StudyRoot),
    ] {
        assert_eq!(Model::from_sop_class(uid), Some(model), "{uid}");
    }
    assert_eq!(Model::from_sop_class("1.2.840.10008.5.1.4.1.2.3.1"), None);
}

#[test]
fn dates_and_ranges_are_checked() {
    let date = |v: &str| study(&[(tags::STUDY_DATE, VR::DA, v)]);
    let q = date("20240105").unwrap();
    assert_eq!(condition(&q, tags::STUDY_DATE), Some(exact("20240105")));
    let q = date("20240101-20240131").unwrap();
    let range = |f: Option<&str>, t: Option<&str>| Matcher::Range {
        from: f.map(String::from),
        to: t.map(String::from),
    };
    assert_eq!(
        condition(&q, tags::STUDY_DATE),
        Some(range(Some("20240101"), Some("20240131")))
    );
    let q = date("20240101-").unwrap();
    assert_eq!(
        condition(&q, tags::STUDY_DATE),
        Some(range(Some("20240101"), None))
    );
    let q = date("-2024.01.31").unwrap();
    assert_eq!(
        condition(&q, tags::STUDY_DATE),
        Some(range(None, Some("20240131")))
    );
    assert_eq!(condition(&date("").unwrap(), tags::STUDY_DATE), None);
    for bad in [
        "20240230-2023",
        "20240230",
        "20240301-20240101",
        "-",
        "2024*",
        "20240101\\20240102",
        "2024-01-01",
        "20241301",
    ] {
        let err = date(bad).unwrap_err();
        assert!(matches!(err, QueryError::Invalid(_)), "{bad}: {err:?}");
        assert_eq!(err.status(), 0xC000);
        assert!(err.to_string().contains("StudyDate"), "{err}");
    }
    // The value and the rule it broke, within an Error Comment's 64 characters.
    for (bad, said) in [
        ("20041332", "StudyDate 20041332: month 13 does not exist"),
        (
            "20230229",
            "StudyDate 20230229: day 29 does not exist in February 2023",
        ),
        (
            "20240301-20240101",
            "StudyDate 20240301-20240101: the range ends before it starts",
        ),
    ] {
        let said_now = date(bad).unwrap_err().to_string();
        assert_eq!(said_now, said);
        assert!(said_now.len() <= 64, "{said_now}");
    }
}

#[test]
fn time_ranges_cover_the_whole_upper_end() {
    let time = |v: &str| study(&[(tags::STUDY_TIME, VR::TM, v)]);
    let q = time("0800-1015").unwrap();
    assert_eq!(
        condition(&q, tags::STUDY_TIME),
        Some(Matcher::Range {
            from: Some("0800".into()),
            to: Some("101559.999999".into())
        })
    );
    assert_eq!(time_upper("10"), "105959.999999");
    assert_eq!(time_upper("101530.5"), "101530.599999");
    assert_eq!(dimse::qr::values::time("10:15:00").as_deref(), Ok("101500"));
    for bad in ["2500", "1060", "101", "1200-1100", "10.5", "101500.1234567"] {
        assert!(time(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn uid_lists_are_checked() {
    let uids = |v: &str| study(&[(tags::STUDY_INSTANCE_UID, VR::UI, v)]);
    let q = uids("1.2.3\\1.2.4").unwrap();
    assert_eq!(
        condition(&q, tags::STUDY_INSTANCE_UID),
        Some(Matcher::Values(vec![
            Pattern::Exact("1.2.3".into()),
            Pattern::Exact("1.2.4".into())
        ]))
    );
    assert!(matches!(uids("1.2.3\\1..2"), Err(QueryError::Invalid(_))));
    assert!(matches!(
        uids("1.2.3' OR '1'='1"),
        Err(QueryError::Invalid(_))
    ));
    let many = vec!["1.2.3"; MAX_UIDS + 1].join("\\");
    assert!(matches!(uids(&many), Err(QueryError::Invalid(_))));
    assert_eq!(
        condition(&uids("*").unwrap(), tags::STUDY_INSTANCE_UID),
        None
    );
}

#[test]
fn wildcards_and_universal_values() {
    let q = study(&[
        (tags::PATIENT_NAME, VR::PN, "Al*a**^?nn*"),
        (tags::PATIENT_ID, VR::LO, "*"),
        (tags::ACCESSION_NUMBER, VR::SH, ""),
        (tags::MODALITIES_IN_STUDY, VR::CS, "CT\\M?"),
    ])
    .unwrap();
    assert_eq!(
        condition(&q, tags::PATIENT_NAME),
        Some(Matcher::Values(vec![Pattern::Wildcard(
            "Al*a*^?nn*".into()
        )]))
    );
    assert_eq!(
        condition(&q, tags::PATIENT_ID),
        None,
        "* alone is universal"
    );
    assert_eq!(condition(&q, tags::ACCESSION_NUMBER), None);
    assert_eq!(
        condition(&q, tags::MODALITIES_IN_STUDY),
        Some(Matcher::Values(vec![
            Pattern::Exact("CT".into()),
            Pattern::Wildcard("M?".into())
        ]))
    );
    assert!(!q.has_unsupported_keys());
    assert_eq!(q.keys().len(), 5, "every requested key is kept");
}

#[test]
fn integers_must_be_integers() {
    let series = |v: &str| {
        parse(
            Model::StudyRoot,
            &identifier(
                "SERIES",
                &[
                    (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
                    (tags::SERIES_NUMBER, VR::IS, v),
                ],
            ),
        )
    };
    assert_eq!(
        condition(&series(" 7").unwrap(), tags::SERIES_NUMBER),
        Some(Matcher::Int(7))
    );
    assert!(matches!(series("7a"), Err(QueryError::Invalid(_))));
    assert!(matches!(series("1\\2"), Err(QueryError::Invalid(_))));
}

#[test]
fn lower_levels_need_their_parents() {
    let id = identifier;
    let err = parse(Model::StudyRoot, &id("SERIES", &[])).unwrap_err();
    assert!(matches!(err, QueryError::MissingKey(_)), "{err:?}");
    assert!(err.to_string().contains("StudyInstanceUID"), "{err}");
    let with_study = [(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3")];
    assert!(parse(Model::StudyRoot, &id("SERIES", &with_study)).is_ok());
    let err = parse(Model::StudyRoot, &id("IMAGE", &with_study)).unwrap_err();
    assert!(err.to_string().contains("SeriesInstanceUID"), "{err}");
    let err = parse(Model::PatientRoot, &id("STUDY", &[])).unwrap_err();
    assert!(err.to_string().contains("PatientID"), "{err}");
    let wildcard = [(tags::PATIENT_ID, VR::LO, "PSEUDO*")];
    assert!(parse(Model::PatientRoot, &id("STUDY", &wildcard)).is_err());
    let single = [(tags::PATIENT_ID, VR::LO, "PSEUDO1")];
    assert!(parse(Model::PatientRoot, &id("STUDY", &single)).is_ok());
    assert!(parse(Model::StudyRoot, &id("STUDY", &[])).is_ok());
}

#[test]
fn keys_that_cannot_be_matched_are_reported() {
    let q = study(&[
        (tags::PATIENT_BIRTH_DATE, VR::DA, "19700101"),
        (tags::SOP_INSTANCE_UID, VR::UI, "1.2.3"),
        (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, "4"),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
        (tags::STUDY_ID, VR::SH, ""),
    ])
    .unwrap();
    assert_eq!(
        q.unsupported_keys(),
        [
            tags::SOP_INSTANCE_UID,
            tags::PATIENT_BIRTH_DATE,
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES
        ]
    );
    assert!(q.conditions().is_empty(), "nothing unsupported is matched");
    assert!(
        !study(&[(tags::STUDY_ID, VR::SH, "")])
            .unwrap()
            .has_unsupported_keys()
    );
}

#[test]
fn the_blind_index_is_found_in_any_block() {
    let creator = Tag(0x0013, 0x0011);
    let q = study(&[
        (creator, VR::LO, keys::PRIVATE_CREATOR),
        (Tag(0x0013, 0x1110), VR::LO, "be3f"),
        (Tag(0x0013, 0x1010), VR::LO, "ffff"),
    ])
    .unwrap();
    let c = &q.conditions()[0];
    assert_eq!(q.conditions().len(), 1);
    assert_eq!(c.attr.alias, "name_blind_index");
    assert_eq!(c.matcher, exact("be3f"));
    assert_eq!(
        q.unsupported_keys(),
        [Tag(0x0013, 0x1010)],
        "another block's element"
    );
}

#[test]
fn debug_output_shows_no_values() {
    let q = study(&[(tags::PATIENT_NAME, VR::PN, "Secret^Name")]).unwrap();
    let shown = format!("{q:?}");
    assert!(!shown.contains("Secret"), "{shown}");
    assert!(shown.contains("(0010,0010)"), "{shown}");
}
