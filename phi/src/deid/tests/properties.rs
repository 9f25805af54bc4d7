//! Property tests over data sets generated from the profile table (see `generate`).

use dicom_core::VR;
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use proptest::prelude::*;

use super::*;

/// The envelope bytes of a de-identified object, and a copy with them replaced.
fn with_envelope(object: &InMemDicomObject, edit: impl FnOnce(&mut Vec<u8>)) -> InMemDicomObject {
    let mut envelope = sealed::envelope(object).expect("sealed");
    edit(&mut envelope);
    let mut object = object.clone();
    object.put(sealed::encrypted_attributes(envelope));
    object
}

fn options_from(bits: u8) -> Options {
    Options {
        retain_longitudinal_full_dates: bits & 1 != 0,
        retain_patient_characteristics: bits & 2 != 0,
        retain_device_identity: bits & 4 != 0,
        clean_descriptors: bits & 8 != 0,
        clean_pixel_data: bits & 16 != 0,
    }
}

/// Calls `visit` with every element at every depth, and its depth.
fn walk(object: &InMemDicomObject, depth: u32, visit: &mut impl FnMut(&InMemElement, u32)) {
    for element in object.iter() {
        visit(element, depth);
        if let Value::Sequence(sequence) = element.value() {
            for item in sequence.items() {
                walk(item, depth + 1, visit);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_data_sets_round_trip_and_leak_nothing(seed in any::<u64>(), bits in 0u8..32) {
        let options = options_from(bits);
        let generated = generate::data_set(seed, &options);
        let original = reparse(&generated.object);
        let de = deidentify(&original, &ring(), FACILITY, &options).expect("de-identifies");

        let envelope = sealed::envelope(&de.object).expect("sealed");
        prop_assert!(envelope.len().is_multiple_of(2), "an odd envelope would get a padding byte");
        let back = reidentify(&de.object, &ring(), FACILITY).expect("reidentifies");
        prop_assert!(same_object(&back, &original), "round trip differs");
        let back = reidentify(&reparse(&de.object), &ring(), FACILITY).expect("reidentifies");
        prop_assert!(same_object(&back, &original), "round trip through an encoder differs");

        let visible = without_envelope(&de.object);
        let bytes = encode(&visible);
        for secret in &generated.secrets {
            prop_assert!(!contains(&bytes, secret.as_bytes()), "{} left in the output", secret);
        }
        let mut values = Vec::new();
        let mut odd_groups = Vec::new();
        walk(&visible, 0, &mut |element, depth| {
            let group = element.tag().group();
            if group % 2 == 1 && !(depth == 0 && group == 0x0013) {
                odd_groups.push(element.tag());
            }
            if let Value::Primitive(value) = element.value() {
                values.extend(value.to_multi_str().iter().map(|s| s.trim().to_owned()));
                if element.vr() == VR::UI {
                    for uid in value.to_multi_str().iter() {
                        let uid = uid.trim_end_matches(['\0', ' ']);
                        assert!(uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
                    }
                }
            }
        });
        prop_assert!(odd_groups.is_empty(), "private attributes left: {:?}", odd_groups);
        for secret in &generated.digit_secrets {
            prop_assert!(!values.contains(secret), "{} left in the output", secret);
        }

        let removed = text_at(&de.object, tags::PATIENT_IDENTITY_REMOVED);
        prop_assert_eq!(removed.as_deref(), Some("YES"));
        let codes: Vec<String> = de.object
            .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
            .and_then(|e| e.items())
            .expect("codes")
            .iter()
            .filter_map(|i| text_at(i, tags::CODE_VALUE))
            .collect();
        let expected: Vec<String> = options.method_codes().iter().map(|c| c.0.to_owned()).collect();
        prop_assert_eq!(codes, expected);
    }

    #[test]
    fn any_change_to_the_envelope_fails(seed in any::<u64>(), at in any::<prop::sample::Index>(), flip in 1u8..) {
        let generated = generate::data_set(seed, &Options::default());
        let de = deidentify_default(&reparse(&generated.object));
        let tampered = with_envelope(&de.object, |envelope| {
            let i = at.index(envelope.len());
            envelope[i] ^= flip;
        });
        prop_assert!(reidentify(&tampered, &ring(), FACILITY).is_err());
        let truncated = with_envelope(&de.object, |envelope| { envelope.pop(); });
        prop_assert!(reidentify(&truncated, &ring(), FACILITY).is_err());
    }
}
