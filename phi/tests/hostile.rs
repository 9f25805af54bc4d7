//! Inputs found by fuzzing (fuzz/findings, fuzz/corpus/deidentify), as the client
//! meets them: the edge's scan first, then dicom-rs parses what it accepted, then
//! de-identification and re-identification.

use dicom_core::VR;
use dicom_core::header::Header;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use dimse::scan::{Encoding, ScanError};
use phi::keys::FacilityKey;

/// A fuzz input: its first byte picks the encoding (even: explicit), as in
/// fuzz/fuzz_targets/deidentify.rs.
fn input(path: &str) -> (Encoding, Vec<u8>) {
    let data = std::fs::read(format!("{}/../fuzz/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let encoding = match data[0] % 2 {
        0 => Encoding::ExplicitLittle,
        _ => Encoding::ImplicitLittle,
    };
    (encoding, data[1..].to_vec())
}

fn parse(encoding: Encoding, bytes: &[u8]) -> InMemDicomObject {
    let ts = match encoding {
        Encoding::ExplicitLittle => EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        _ => IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    };
    InMemDicomObject::read_dataset_with_ts(bytes, &ts).unwrap()
}

#[test]
fn a_binary_value_of_a_broken_length_is_refused_before_dicom_rs_reads_4_gb() {
    let (encoding, bytes) = input("findings/deidentify-oom-1");
    match dimse::scan::scan(&bytes[..], encoding) {
        Err(ScanError::Malformed { reason, .. }) => {
            assert!(
                reason.contains("(0052,0007) (FD) has length 14"),
                "{reason}"
            );
        }
        other => panic!("the scan should refuse it: {other:?}"),
    }
}

#[test]
fn what_the_scan_accepts_round_trips() {
    let ring = FacilityKey::from_bytes([7; 32]).ring();
    let options = phi::profile::Options::default();
    let dir = format!("{}/../fuzz/corpus/deidentify", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (encoding, bytes) = input(&format!("corpus/deidentify/{name}"));
        if dimse::scan::scan(&bytes[..], encoding).is_err() {
            continue;
        }
        let original = parse(encoding, &bytes);
        let done = phi::deid::deidentify(&original, &ring, "st-mary", &options).unwrap();
        let back = phi::deid::reidentify(&done.object, &ring, "st-mary").unwrap();
        for tag in [
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::STUDY_INSTANCE_UID,
            tags::SOP_INSTANCE_UID,
        ] {
            // Each value without its trailing padding (a UID's trailing NULs are
            // padding to a reader).
            let value = |o: &InMemDicomObject| {
                o.get(tag).map(|e| {
                    let bytes = e.value().to_bytes().unwrap().into_owned();
                    bytes
                        .split(|&c| c == b'\\')
                        .map(|v| {
                            let end = v
                                .iter()
                                .rposition(|&c| c != b' ' && c != 0)
                                .map_or(0, |i| i + 1);
                            v[..end].to_vec()
                        })
                        .collect::<Vec<_>>()
                })
            };
            // Known: a DS/IS value (a wrong VR here) with non-ASCII bytes comes back
            // escaped; dicom-rs writes byte values of those VRs as numbers.
            let numeric_garbage = original.get(tag).is_some_and(|e| {
                matches!(e.vr(), VR::DS | VR::IS) && !e.value().to_str().unwrap().is_ascii()
            });
            if !numeric_garbage {
                assert_eq!(value(&back), value(&original), "{name}: {tag}");
            }
        }
        assert!(
            back.iter()
                .all(|e| original.get(e.tag()).is_some() || e.tag().group() == 0x0012)
        );
        checked += 1;
    }
    assert!(checked >= 3, "{checked} corpus inputs checked");
}
