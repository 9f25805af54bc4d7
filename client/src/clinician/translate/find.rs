//! C-FIND translation at every level of both information models (the viewer proxy's
//! C-FIND, the `query --level` listing): a clinician's identifier (original values) becomes a Study Root identifier for the gateway
//! (pseudonyms, the name blind index, pseudonymous UIDs; keys that de-identification
//! may change are asked for but not matched there), each gateway response is
//! re-identified from its sealed item into the original values, the viewer's keys are
//! matched again on those (dropping blind-index false positives and checking what the
//! gateway could not), and the response carries only original values.
//!
//! Pure functions: no I/O, no key handling beyond the calls into `phi`.

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use phi::keys::KeyRing;

use super::{Level, name_tokens_key, text, unseal_item, wildcard_match};

/// Attributes replaced by pseudonyms on the gateway: their gateway values are never
/// shown, only what the sealed item restores.
const PSEUDONYMIZED: [Tag; 5] = [
    tags::PATIENT_ID,
    tags::PATIENT_NAME,
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::SOP_INSTANCE_UID,
];

/// UIDs mapped forward with `phi::pseudonym::uid` for the gateway.
const MAPPED_UIDS: [Tag; 3] = [
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::SOP_INSTANCE_UID,
];

/// Keys the gateway indexes unchanged by de-identification: matched there, as sent.
const MATCHED_AT_GATEWAY: [Tag; 10] = [
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::MODALITIES_IN_STUDY,
    tags::MODALITY,
    tags::SERIES_NUMBER,
    tags::INSTANCE_NUMBER,
    tags::NUMBER_OF_FRAMES,
    tags::SOP_CLASS_UID,
    tags::AVAILABLE_TRANSFER_SYNTAX_UID,
    tags::INSTANCE_AVAILABILITY,
];

/// Series-level attributes (values from a series' envelope or the gateway row).
const SERIES_KEYS: [Tag; 9] = [
    tags::SERIES_INSTANCE_UID,
    tags::MODALITY,
    tags::SERIES_NUMBER,
    tags::SERIES_DESCRIPTION,
    tags::SERIES_DATE,
    tags::SERIES_TIME,
    tags::BODY_PART_EXAMINED,
    tags::PROTOCOL_NAME,
    tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
];

/// Study-level attributes outside the Patient group (0010).
const STUDY_KEYS: [Tag; 13] = [
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::ACCESSION_NUMBER,
    tags::STUDY_ID,
    tags::STUDY_DESCRIPTION,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::MODALITIES_IN_STUDY,
    tags::NUMBER_OF_STUDY_RELATED_SERIES,
    tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
];

/// Whether an attribute of an instance's originals describes the entity of `level`
/// (so a study's envelope, from its first instance, fills study keys only).
pub(crate) fn belongs_to(tag: Tag, level: Level) -> bool {
    let patient = tag.group() == 0x0010;
    let study = patient || STUDY_KEYS.contains(&tag);
    match level {
        Level::Patient => patient,
        Level::Study => study,
        Level::Series => study || SERIES_KEYS.contains(&tag),
        Level::Image => true,
    }
}

/// A condition checked on the re-identified values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// Person name, exact: equal in normalized form.
    Name(String),
    /// Wildcard `*` / `?`; person names case-insensitively.
    Wildcard { pattern: String, fold_case: bool },
    /// Single value.
    Exact(String),
    /// Any of these UIDs.
    Uids(Vec<String>),
}

/// The viewer's identifier, translated.
#[derive(Debug)]
pub(crate) struct Translated {
    /// The level asked for.
    pub level: Level,
    /// The Study Root identifier for the gateway (STUDY level for a PATIENT query).
    pub gateway: InMemDicomObject,
    /// Conditions on the original values, by tag.
    checks: Vec<(Tag, Check)>,
}

/// Why an identifier cannot be proxied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TranslateError {
    /// Missing or unknown level, or one the model lacks.
    #[error("{0}")]
    Level(String),
    /// A name without letters to search for.
    #[error("the Patient Name has no letters to search for")]
    EmptyName,
}

fn trimmed(value: &str) -> &str {
    value.trim_matches([' ', '\0'])
}

fn is_universal(value: &str) -> bool {
    value.chars().all(|c| c == '*')
}

fn has_wildcard(value: &str) -> bool {
    value.contains(['*', '?'])
}

fn string_of(element: &dicom_object::mem::InMemElement) -> String {
    match element.value() {
        Value::Primitive(p) => trimmed(&p.to_str()).to_string(),
        _ => String::new(),
    }
}

fn put_text(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    let value = if value.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(value)
    };
    obj.put(DataElement::new(tag, vr, value));
}

/// Translates a viewer's C-FIND identifier of a model whose root is `patient_root`.
pub(crate) fn translate(
    request: &InMemDicomObject,
    patient_root: bool,
    ring: &KeyRing,
) -> Result<Translated, TranslateError> {
    let level_text = text(request, tags::QUERY_RETRIEVE_LEVEL);
    let level = Level::parse(&level_text)
        .filter(|l| patient_root || *l != Level::Patient)
        .ok_or_else(|| TranslateError::Level(format!("level {level_text:?} is not supported")))?;
    let gateway_level = level.max(Level::Study);
    let mut gateway = InMemDicomObject::new_empty();
    put_text(
        &mut gateway,
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        "ISO_IR 192",
    );
    put_text(
        &mut gateway,
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        gateway_level.as_str(),
    );
    // What re-identification and grouping need, whether asked or not.
    put_text(&mut gateway, tags::PATIENT_ID, VR::LO, "");
    put_text(&mut gateway, tags::STUDY_INSTANCE_UID, VR::UI, "");
    put_text(&mut gateway, gateway_level.unique_key(), VR::UI, "");
    if level == Level::Patient {
        for tag in [
            tags::NUMBER_OF_STUDY_RELATED_SERIES,
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
        ] {
            put_text(&mut gateway, tag, VR::IS, "");
        }
    }
    let mut checks = Vec::new();
    for element in request.iter() {
        let tag = element.tag();
        let skip = tag.element() == 0
            || tag.group() % 2 == 1
            || matches!(
                tag,
                tags::SPECIFIC_CHARACTER_SET
                    | tags::QUERY_RETRIEVE_LEVEL
                    | tags::ENCRYPTED_ATTRIBUTES_SEQUENCE
            )
            || element.vr() == VR::SQ;
        if skip {
            continue;
        }
        let value = string_of(element);
        let vr = element.vr();
        if value.is_empty() || is_universal(&value) {
            put_text(&mut gateway, tag, vr, "");
            continue;
        }
        if tag == tags::PATIENT_NAME {
            put_text(&mut gateway, tag, vr, "");
            if phi::pseudonym::normalized_groups(&value)
                .iter()
                .all(|g| g.chars().all(|c| matches!(c, '*' | '?' | '^')))
                && !has_wildcard(&value)
            {
                return Err(TranslateError::EmptyName);
            }
            // Full name, family name, `Family^Gi*` prefixes: narrowed by a token at
            // the gateway; any other wildcard pattern only here.
            if let Some(tokens) = name_tokens_key(ring, &value) {
                let (g, e) = phi::deid::PRIVATE_CREATOR_TAG;
                put_text(&mut gateway, Tag(g, e), VR::LO, phi::deid::PRIVATE_CREATOR);
                let (g, e) = phi::deid::NAME_TOKENS_TAG;
                put_text(&mut gateway, Tag(g, e), VR::LO, &tokens.join("\\"));
            }
            checks.push((tag, Check::Name(value)));
        } else if tag == tags::PATIENT_ID && !has_wildcard(&value) {
            let pseudonym = phi::pseudonym::patient_id(ring, &value);
            put_text(&mut gateway, tag, vr, &pseudonym);
            checks.push((tag, Check::Exact(value)));
        } else if MAPPED_UIDS.contains(&tag) {
            let originals: Vec<String> = value
                .split('\\')
                .map(|u| trimmed(u).to_string())
                .filter(|u| !u.is_empty())
                .collect();
            let mapped: Vec<String> = originals
                .iter()
                .map(|u| phi::pseudonym::uid(ring, u))
                .collect();
            put_text(&mut gateway, tag, VR::UI, &mapped.join("\\"));
            checks.push((tag, Check::Uids(originals)));
        } else if MATCHED_AT_GATEWAY.contains(&tag) {
            gateway.put(element.clone());
        } else {
            // Possibly changed by de-identification: asked for, matched here.
            put_text(&mut gateway, tag, vr, "");
            let check = if has_wildcard(&value) {
                Check::Wildcard {
                    pattern: value,
                    fold_case: vr == VR::PN,
                }
            } else {
                Check::Exact(value)
            };
            checks.push((tag, check));
        }
    }
    gateway.put(DataElement::new(
        tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        DataSetSequence::<InMemDicomObject>::empty(),
    ));
    Ok(Translated {
        level,
        gateway,
        checks,
    })
}

impl Translated {
    /// Whether re-identified values satisfy every condition the gateway could not
    /// check exactly (a name's blind index has false positives on purpose).
    pub(crate) fn keeps(&self, original: &InMemDicomObject) -> bool {
        self.checks.iter().all(|(tag, check)| {
            let value = text(original, *tag);
            match check {
                Check::Name(wanted) => phi::name_search::name_matches(wanted, &value),
                Check::Wildcard { pattern, fold_case } => {
                    wildcard_match(pattern, &value, *fold_case)
                }
                Check::Exact(wanted) => wanted == trimmed(&value),
                Check::Uids(list) => list.iter().any(|u| u == trimmed(&value)),
            }
        })
    }

    /// The original Study Instance UIDs the identifier names, if it names any.
    pub(crate) fn study_uids(&self) -> Option<&[String]> {
        self.checks.iter().find_map(|(tag, check)| match check {
            Check::Uids(list) if *tag == tags::STUDY_INSTANCE_UID => Some(list.as_slice()),
            _ => None,
        })
    }
}

/// The original values behind one gateway response at `level`: the gateway's values
/// for what de-identification keeps, overlaid with the sealed originals of the
/// entity's attributes. `None` when the sealed item is missing, does not open, or
/// does not restore the level's unique key: such a row must not reach a viewer.
pub(crate) fn reidentify_row(
    response: &InMemDicomObject,
    level: Level,
    ring: &KeyRing,
    facility: &str,
) -> Option<InMemDicomObject> {
    let sealed = unseal_item(response, ring, facility)?;
    let mut out = InMemDicomObject::new_empty();
    for element in response.iter() {
        let tag = element.tag();
        if tag.group() % 2 == 1
            || tag == tags::ENCRYPTED_ATTRIBUTES_SEQUENCE
            || PSEUDONYMIZED.contains(&tag)
        {
            continue;
        }
        out.put(element.clone());
    }
    for element in sealed.iter() {
        let tag = element.tag();
        if belongs_to(tag, level) && tag != tags::ENCRYPTED_ATTRIBUTES_SEQUENCE {
            out.put(element.clone());
        }
    }
    let restored = |tag| !text(&out, tag).is_empty();
    (restored(level.unique_key()) && restored(tags::STUDY_INSTANCE_UID)).then_some(out)
}

/// The response for the viewer: every key of its request (private keys and the
/// sealed item excepted), from `original` or empty, plus the level and character set.
pub(crate) fn response(
    request: &InMemDicomObject,
    original: &InMemDicomObject,
    level: Level,
) -> InMemDicomObject {
    let mut out = InMemDicomObject::new_empty();
    put_text(&mut out, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_text(&mut out, tags::QUERY_RETRIEVE_LEVEL, VR::CS, level.as_str());
    for element in request.iter() {
        let tag = element.tag();
        let skip = tag.element() == 0
            || tag.group() % 2 == 1
            || out.get(tag).is_some()
            || tag == tags::ENCRYPTED_ATTRIBUTES_SEQUENCE;
        if skip {
            continue;
        }
        match original.get(tag) {
            Some(found) if found.vr() == element.vr() || element.vr() == VR::UN => {
                out.put(found.clone());
            }
            Some(found) if found.vr() != VR::SQ && element.vr() != VR::SQ => {
                put_text(&mut out, tag, element.vr(), &string_of(found));
            }
            _ if element.vr() == VR::SQ => {
                out.put(DataElement::new(
                    tag,
                    VR::SQ,
                    DataSetSequence::<InMemDicomObject>::empty(),
                ));
            }
            _ => put_text(&mut out, tag, element.vr(), ""),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        phi::keys::FacilityKey::generate().ring()
    }

    fn request(level: &str, keys: &[(Tag, VR, &str)]) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        put_text(&mut obj, tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
        for (tag, vr, v) in keys {
            put_text(&mut obj, *tag, *vr, v);
        }
        obj
    }

    #[test]
    fn plain_identifiers_never_reach_the_gateway() {
        let ring = ring();
        let req = request(
            "SERIES",
            &[
                (tags::PATIENT_ID, VR::LO, "MRN-7"),
                (tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
                (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
                (tags::SERIES_INSTANCE_UID, VR::UI, ""),
                (tags::ACCESSION_NUMBER, VR::SH, "ACC9"),
                (tags::MODALITY, VR::CS, "CT"),
            ],
        );
        let t = translate(&req, true, &ring).unwrap();
        assert_eq!(t.level, Level::Series);
        let g = &t.gateway;
        assert_eq!(
            text(g, tags::PATIENT_ID),
            phi::pseudonym::patient_id(&ring, "MRN-7")
        );
        assert_eq!(text(g, tags::PATIENT_NAME), "");
        assert_eq!(
            text(g, tags::STUDY_INSTANCE_UID),
            phi::pseudonym::uid(&ring, "1.2.3")
        );
        assert_eq!(
            text(g, tags::ACCESSION_NUMBER),
            "",
            "matched after unsealing"
        );
        assert_eq!(text(g, tags::MODALITY), "CT");
        let (tg, te) = phi::deid::NAME_TOKENS_TAG;
        let query = phi::name_search::NameQuery::parse("Doe^Jane").unwrap();
        assert_eq!(
            text(g, Tag(tg, te)),
            format!(
                "{}\\legacy:{}",
                query.token(&ring),
                phi::pseudonym::blind_index(&ring, "Doe^Jane")
            )
        );
        let mut original = InMemDicomObject::new_empty();
        put_text(&mut original, tags::PATIENT_ID, VR::LO, "MRN-7");
        put_text(&mut original, tags::PATIENT_NAME, VR::PN, "DOE^JANE");
        put_text(&mut original, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3");
        put_text(&mut original, tags::ACCESSION_NUMBER, VR::SH, "ACC9");
        assert!(t.keeps(&original));
        put_text(&mut original, tags::PATIENT_NAME, VR::PN, "Dough^Jane");
        assert!(!t.keeps(&original), "a blind-index collision is dropped");
    }

    #[test]
    fn patient_level_only_in_patient_root() {
        let req = request("PATIENT", &[(tags::PATIENT_ID, VR::LO, "")]);
        assert!(translate(&req, false, &ring()).is_err());
        let t = translate(&req, true, &ring()).unwrap();
        assert_eq!(text(&t.gateway, tags::QUERY_RETRIEVE_LEVEL), "STUDY");
    }

    #[test]
    fn responses_carry_only_requested_public_keys() {
        let req = request(
            "STUDY",
            &[
                (tags::PATIENT_NAME, VR::PN, ""),
                (Tag(0x0011, 0x0010), VR::LO, ""),
                (tags::STUDY_DESCRIPTION, VR::LO, ""),
            ],
        );
        let mut original = InMemDicomObject::new_empty();
        put_text(&mut original, tags::PATIENT_NAME, VR::PN, "Doe^Jane");
        put_text(&mut original, tags::PATIENT_ID, VR::LO, "MRN-7");
        let out = response(&req, &original, Level::Study);
        assert_eq!(text(&out, tags::PATIENT_NAME), "Doe^Jane");
        assert!(out.get(tags::PATIENT_ID).is_none(), "not asked for");
        assert!(out.get(Tag(0x0011, 0x0010)).is_none());
        assert!(out.get(tags::STUDY_DESCRIPTION).is_some());
    }

    /// A gateway response at `level` for a de-identified instance: the pseudonymous
    /// values the gateway indexes, and the sealed item bound to the instance.
    fn gateway_response(deid: &InMemDicomObject, bound_to: &str) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        for tag in [
            tags::PATIENT_ID,
            tags::PATIENT_NAME,
            tags::STUDY_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::SOP_INSTANCE_UID,
            tags::MODALITY,
        ] {
            put_text(&mut out, tag, VR::LO, &text(deid, tag));
        }
        let item = deid
            .get(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|items| items.first())
            .cloned()
            .expect("a sealed item");
        let mut item = item;
        put_text(
            &mut item,
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            bound_to,
        );
        out.put(DataElement::new(
            tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ));
        out
    }

    #[test]
    fn rows_come_back_with_originals_or_not_at_all() {
        let facility_ring = ring();
        let mut original = InMemDicomObject::new_empty();
        for (tag, vr, v) in [
            (tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
            (tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.3.1"),
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.1"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.2"),
            (tags::PATIENT_ID, VR::LO, "MRN-7"),
            (tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
            (tags::ACCESSION_NUMBER, VR::SH, "ACC9"),
            (tags::MODALITY, VR::CS, "CT"),
        ] {
            put_text(&mut original, tag, vr, v);
        }
        let options = phi::profile::Options::default();
        let deid = phi::deid::deidentify(&original, &facility_ring, "st-mary", &options).unwrap();
        let response = gateway_response(&deid.object, &deid.sop_instance_uid);
        for level in [Level::Study, Level::Series, Level::Image] {
            let row =
                reidentify_row(&response, level, &facility_ring, "st-mary").expect("restored");
            assert_eq!(text(&row, tags::PATIENT_NAME), "Doe^Jane");
            assert_eq!(text(&row, tags::PATIENT_ID), "MRN-7");
            assert_eq!(text(&row, tags::STUDY_INSTANCE_UID), "1.2.3.1");
            assert_eq!(text(&row, tags::ACCESSION_NUMBER), "ACC9");
            assert_eq!(text(&row, tags::MODALITY), "CT");
            if level >= Level::Series {
                assert_eq!(text(&row, tags::SERIES_INSTANCE_UID), "1.2.3.2");
            }
            if level == Level::Image {
                assert_eq!(text(&row, tags::SOP_INSTANCE_UID), "1.2.3.3.1");
            }
            assert!(
                level == Level::Image || text(&row, tags::SOP_INSTANCE_UID).is_empty(),
                "{level:?}: the envelope's instance UID stays below the level"
            );
        }
        assert!(
            reidentify_row(&response, Level::Study, &ring(), "st-mary").is_none(),
            "another facility key: dropped"
        );
        let mut unsealed = response.clone();
        unsealed.remove_element(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE);
        assert!(reidentify_row(&unsealed, Level::Study, &facility_ring, "st-mary").is_none());
    }

    #[test]
    fn study_envelopes_fill_study_keys_only() {
        assert!(belongs_to(tags::PATIENT_NAME, Level::Patient));
        assert!(belongs_to(tags::ACCESSION_NUMBER, Level::Study));
        assert!(!belongs_to(tags::SERIES_INSTANCE_UID, Level::Study));
        assert!(belongs_to(tags::SERIES_INSTANCE_UID, Level::Series));
        assert!(!belongs_to(tags::SOP_INSTANCE_UID, Level::Series));
        assert!(belongs_to(tags::SOP_INSTANCE_UID, Level::Image));
    }
}
