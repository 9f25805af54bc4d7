use dicom_core::Tag;
use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;

use super::*;

fn none() -> Options {
    Options {
        retain_longitudinal_full_dates: false,
        retain_patient_characteristics: false,
        retain_device_identity: false,
        clean_descriptors: false,
        clean_pixel_data: false,
    }
}

fn all() -> Options {
    Options {
        retain_longitudinal_full_dates: true,
        retain_patient_characteristics: true,
        retain_device_identity: true,
        clean_descriptors: true,
        clean_pixel_data: true,
    }
}

#[test]
fn the_whole_table_is_there_single_tags_sorted_then_patterns() {
    assert_eq!(PROFILE.len(), 621);
    let exact = PROFILE.partition_point(Row::is_exact);
    assert_eq!(exact, 617);
    assert!(PROFILE[exact..].iter().all(|r| !r.is_exact()));
    let tags: Vec<_> = PROFILE[..exact]
        .iter()
        .map(|r| (r.group.0, r.element.0))
        .collect();
    assert!(
        tags.windows(2).all(|w| w[0] < w[1]),
        "single tags sorted, no duplicates"
    );
}

#[test]
fn every_single_tag_row_is_a_standard_attribute() {
    for row in PROFILE.iter().filter(|r| r.is_exact()) {
        let tag = Tag(row.group.0, row.element.0);
        assert!(
            StandardDataDictionary.by_tag(tag).is_some(),
            "{tag} {} unknown",
            row.name
        );
    }
}

#[test]
fn every_row_is_found_by_its_own_tag() {
    for row in PROFILE.iter().filter(|r| r.is_exact()) {
        let found = super::row((row.group.0, row.element.0)).expect("listed");
        assert_eq!(found, row);
    }
}

#[test]
fn composite_actions_resolve_to_the_conservative_valid_choice() {
    for row in PROFILE {
        let expected = match row.basic_code {
            "X" => Action::Remove,
            "Z" => Action::Zero,
            "D" => Action::Dummy,
            "U" => Action::Uid,
            "X/Z" => Action::Zero,
            "X/D" | "X/Z/D" | "Z/D" => Action::Dummy,
            "X/Z/U*" => Action::Uid,
            other => panic!("unexpected basic action {other} for {}", row.name),
        };
        assert_eq!(row.basic, expected, "{}", row.name);
    }
}

#[test]
fn option_columns_hold_only_keep_or_clean_and_never_disagree() {
    for row in PROFILE {
        let columns = [
            row.retain_dates,
            row.retain_patient,
            row.retain_device,
            row.clean_descriptors,
        ];
        let set: Vec<Action> = columns.into_iter().flatten().collect();
        assert!(
            set.iter()
                .all(|a| matches!(a, Action::Keep | Action::Clean))
        );
        assert!(
            set.windows(2).all(|w| w[0] == w[1]),
            "{} options disagree",
            row.name
        );
    }
}

#[test]
fn basic_profile_examples() {
    let o = none();
    assert_eq!(action((0x0010, 0x0010), &o), Some(Action::Zero)); // Patient's Name
    assert_eq!(action((0x0010, 0x0030), &o), Some(Action::Zero)); // Patient's Birth Date
    assert_eq!(action((0x0008, 0x0050), &o), Some(Action::Zero)); // Accession Number
    assert_eq!(action((0x0008, 0x0080), &o), Some(Action::Dummy)); // Institution Name X/Z/D
    assert_eq!(action((0x0020, 0x000D), &o), Some(Action::Uid)); // Study Instance UID
    assert_eq!(action((0x0008, 0x0018), &o), Some(Action::Uid)); // SOP Instance UID
    assert_eq!(action((0x0008, 0x0020), &o), Some(Action::Zero)); // Study Date
    assert_eq!(action((0x0008, 0x1140), &o), Some(Action::Uid)); // Referenced Image Seq
    assert_eq!(action((0x0040, 0xA730), &o), Some(Action::Dummy)); // Content Sequence
    assert_eq!(action((0x0008, 0x0016), &o), None); // SOP Class UID: not listed
    assert_eq!(action((0x0028, 0x0010), &o), None); // Rows
}

#[test]
fn patterns_match_repeating_groups_and_private_attributes() {
    let o = none();
    assert_eq!(action((0x6000, 0x3000), &o), Some(Action::Remove));
    assert_eq!(action((0x601E, 0x4000), &o), Some(Action::Remove));
    assert_eq!(action((0x6000, 0x0010), &o), None); // Overlay Rows: not listed
    assert_eq!(action((0x5002, 0x0030), &o), Some(Action::Remove)); // curve data
    assert_eq!(action((0x0009, 0x0010), &o), Some(Action::Remove)); // private creator
    assert_eq!(action((0x7FE1, 0x1010), &o), Some(Action::Remove));
    assert_eq!(action((0x0013, 0x1010), &o), Some(Action::Remove));
}

#[test]
fn options_override_the_basic_action() {
    let study_date = (0x0008, 0x0020);
    assert_eq!(action(study_date, &none()), Some(Action::Zero));
    assert_eq!(action(study_date, &Options::default()), Some(Action::Keep));

    let sex = (0x0010, 0x0040);
    assert_eq!(action(sex, &Options::default()), Some(Action::Zero));
    let patient = Options {
        retain_patient_characteristics: true,
        ..none()
    };
    assert_eq!(action(sex, &patient), Some(Action::Keep));

    let serial = (0x0018, 0x1000); // Device Serial Number
    assert_eq!(action(serial, &none()), Some(Action::Dummy)); // X/Z/D
    let device = Options {
        retain_device_identity: true,
        ..none()
    };
    assert_eq!(action(serial, &device), Some(Action::Keep));

    let study_description = (0x0008, 0x1030);
    assert_eq!(action(study_description, &none()), Some(Action::Remove));
    let clean = Options {
        clean_descriptors: true,
        ..none()
    };
    assert_eq!(action(study_description, &clean), Some(Action::Clean));
    assert_eq!(basic_action(study_description), Some(Action::Remove));

    // Patient ID and UIDs: no supported option keeps them.
    assert_eq!(action((0x0010, 0x0020), &all()), Some(Action::Dummy)); // Z/D
    assert_eq!(action((0x0020, 0x000D), &all()), Some(Action::Uid));
}

#[test]
fn default_options_retain_dates_only() {
    assert_eq!(
        Options::default(),
        Options {
            retain_longitudinal_full_dates: true,
            ..none()
        }
    );
}

#[test]
fn method_codes_follow_the_options() {
    assert_eq!(
        none().method_codes(),
        vec![("113100", "Basic Application Confidentiality Profile")]
    );
    let codes: Vec<&str> = Options::default()
        .method_codes()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(codes, ["113100", "113106"]);
    let codes: Vec<&str> = all().method_codes().iter().map(|c| c.0).collect();
    assert_eq!(
        codes,
        ["113100", "113106", "113108", "113109", "113105", "113101"]
    );
}
