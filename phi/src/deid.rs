//! The de-identification engine: applies the [`profile`](crate::profile) to a data set,
//! pseudonymizes what the gateway indexes, seals every original value it changed into
//! the instance itself, and restores them on the way back.
//!
//! [`deidentify`] works on a data set without file meta information and:
//!
//! - applies Table E.1-1 to every attribute at every depth (sequence items included),
//!   removes every private attribute (odd groups, creators included);
//! - replaces Patient ID and Patient Name with keyed pseudonyms (at every depth, never
//!   just emptied, so the gateway can index them) and every UID the table lists with a
//!   `2.25.` UID derived from the original, so one original UID always gets the same
//!   pseudonym (the rules in detail are below);
//! - sets Patient Identity Removed (0012,0062) = `YES`, De-identification Method
//!   (0012,0063) and its Code Sequence (0012,0064) (CID 7050), and a private block
//!   [`PRIVATE_CREATOR`] holding the name blind index at [`BLIND_INDEX_TAG`];
//! - puts every original top-level element whose de-identified form differs (whole
//!   sequences, exact VRs and values) and every removed element, plus the original of
//!   every element it sets itself, into one Modified Attributes Sequence (0400,0550)
//!   item, encodes it in Explicit VR Little Endian, seals it ([`seal`]) bound to the
//!   facility and the pseudonymous SOP Instance UID, and carries the envelope in an
//!   Encrypted Attributes Sequence (0400,0500) item.
//!
//! [`reidentify`] opens that envelope and gives back the original data set exactly:
//! values and VRs (recorded byte lengths of sequences aside, which encoders recompute).
//!
//! No I/O and no logging; errors never carry patient data.
//!
//! # Rules, beyond the table's own actions
//!
//! - Private attributes (odd groups, creators included) are removed at every depth.
//! - Patient ID and Patient Name get keyed pseudonyms at every depth (an empty value
//!   stays empty).
//! - UI values with action U, D or C get [`pseudonym::uid`](crate::pseudonym::uid)
//!   value by value; a U sequence (`X/Z/U*`) is kept and the profile applied to its
//!   items. A UI value with X or Z is removed or emptied like any other.
//! - Z: an empty value of the same VR; a sequence with no items.
//! - D: a dummy of the VR with the original multiplicity (`ANONYMIZED` for text,
//!   `19000101` / `000000` / `19000101000000` for DA / TM / DT, `000Y` for AS, `0` for
//!   numbers, zero bytes for binary VRs). An empty value stays empty: it hides nothing.
//! - D (and C) on a sequence keeps its items and applies the profile to them; inside,
//!   at any depth, free text (LT, ST, UT) and person names (PN) the table does not list
//!   are replaced with dummies too (the table lists no SR Text Value, for instance),
//!   and items directly in the sequence that are codes (Person Identification Code
//!   Sequence, Institution Code Sequence) get a dummy code value, scheme (`99ANON`)
//!   and meaning.
//! - C on anything else: the row's resolved basic action (see
//!   [`profile`](crate::profile)), so a cleaned value is never kept as it was.
//! - K, and attributes the table does not list: kept; sequences still have the profile
//!   applied to their items.
//!
//! The sealed plaintext is encoded with Specific Character Set `ISO_IR 192`, so text in
//! any original character set comes back as the same characters.

mod compare;
mod sealed;
mod summary;
mod transform;

pub use summary::{ELEMENT_CAP, SUMMARY_CAP, SUMMARY_TAGS};

use std::fmt;

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::PhiError;
use crate::keys::KeyRing;
use crate::profile::{METHOD_CODING_SCHEME, Options};
use crate::seal::{self, SealContext};

/// Private Creator of the block this product adds, at (0013,0010).
pub const PRIVATE_CREATOR: &str = "PACS GATEWAY 1";
/// The private creator element of that block.
pub const PRIVATE_CREATOR_TAG: (u16, u16) = (0x0013, 0x0010);
/// LO: the blind index of the original Patient Name, for the gateway to index
/// (empty when the instance has no Patient Name).
pub const BLIND_INDEX_TAG: (u16, u16) = (0x0013, 0x1010);
/// LO, multi-valued: the name search tokens of the original Patient Name
/// ([`name_search`](crate::name_search)); absent when it has none.
pub const NAME_TOKENS_TAG: (u16, u16) = (0x0013, 0x1012);
/// OB: the identity summary envelope (see [`SUMMARY_TAGS`]), at most [`SUMMARY_CAP`]
/// bytes, sealed with [`Purpose::Summary`](seal::Purpose::Summary), for the gateway
/// to index and return in C-FIND whatever the size of the full record.
pub const IDENTITY_SUMMARY_TAG: (u16, u16) = (0x0013, 0x1011);

/// Elements [`deidentify`] sets itself: their originals are always sealed, and
/// [`reidentify`] removes them before restoring the originals.
const ADDED: [Tag; 8] = [
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
    tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    Tag(PRIVATE_CREATOR_TAG.0, PRIVATE_CREATOR_TAG.1),
    Tag(BLIND_INDEX_TAG.0, BLIND_INDEX_TAG.1),
    Tag(IDENTITY_SUMMARY_TAG.0, IDENTITY_SUMMARY_TAG.1),
    Tag(NAME_TOKENS_TAG.0, NAME_TOKENS_TAG.1),
    tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
];

/// The result of [`deidentify`]. `Debug` leaves out the original SOP Instance UID.
#[derive(Clone)]
pub struct Deidentified {
    /// The de-identified data set (no file meta), carrying the sealed originals.
    pub object: InMemDicomObject,
    /// Burned In Annotation (0028,0301) was `YES` in the input: the pixels may show
    /// identifying text the profile cannot remove; the caller decides what to do.
    pub burned_in_annotation: bool,
    /// [`pseudonym::blind_index`](crate::pseudonym::blind_index) of the original
    /// Patient Name (`""` if none).
    pub blind_index: String,
    /// The original SOP Instance UID.
    pub original_sop_instance_uid: String,
    /// The pseudonymous SOP Instance UID the de-identified data set carries.
    pub sop_instance_uid: String,
}

impl fmt::Debug for Deidentified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deidentified")
            .field("object", &self.object)
            .field("burned_in_annotation", &self.burned_in_annotation)
            .field("blind_index", &self.blind_index)
            .field("original_sop_instance_uid", &"[redacted]")
            .field("sop_instance_uid", &self.sop_instance_uid)
            .finish()
    }
}

/// De-identifies `object` for `facility` under `options`; see the module doc.
///
/// Errors: [`PhiError::DataSet`] when the data set has no SOP Instance UID (the seal is
/// bound to it) or the original values cannot be encoded for sealing.
pub fn deidentify(
    object: &InMemDicomObject,
    ring: &KeyRing,
    facility: &str,
    options: &Options,
) -> Result<Deidentified, PhiError> {
    let original_sop_instance_uid = sop_instance_uid(object)?;
    let burned_in_annotation =
        text(object, tags::BURNED_IN_ANNOTATION).is_some_and(|v| v.eq_ignore_ascii_case("YES"));
    let name = text(object, tags::PATIENT_NAME).unwrap_or_default();
    let blind_index = crate::pseudonym::blind_index(ring, &name);
    let name_tokens = crate::name_search::name_tokens(ring, &name);

    let transformer = transform::Transformer::new(ring, options);
    let mut out = InMemDicomObject::new_empty();
    let mut originals = Vec::new();
    for element in object.iter() {
        let new = transformer.element(element);
        let unchanged = new
            .as_ref()
            .is_some_and(|new| compare::same_element(new, element));
        if !unchanged || ADDED.contains(&element.tag()) {
            originals.push(element.clone());
        }
        if let Some(new) = new {
            out.put(new);
        }
    }
    let sop_instance_uid = sop_instance_uid(&out)?;
    put_method(&mut out, options);
    put_private_block(&mut out, &blind_index);

    let summary = summary::plaintext(&originals)?;
    let plaintext = sealed::encode_originals(originals)?;
    let context = SealContext {
        facility,
        sop_instance_uid: &sop_instance_uid,
        purpose: seal::Purpose::Instance,
    };
    let envelope = seal::seal(ring, &context, &plaintext);
    out.put(sealed::encrypted_attributes(envelope));
    let summary = seal::seal(
        ring,
        &SealContext {
            purpose: seal::Purpose::Summary,
            ..context
        },
        &summary,
    );
    if !name_tokens.is_empty() {
        let (group, element) = NAME_TOKENS_TAG;
        out.put(DataElement::new(
            Tag(group, element),
            VR::LO,
            PrimitiveValue::Strs(name_tokens.into()),
        ));
    }
    let (group, element) = IDENTITY_SUMMARY_TAG;
    out.put(DataElement::new(
        Tag(group, element),
        VR::OB,
        PrimitiveValue::from(summary),
    ));

    Ok(Deidentified {
        object: out,
        burned_in_annotation,
        blind_index,
        original_sop_instance_uid,
        sop_instance_uid,
    })
}

/// Restores the original data set from a data set made by [`deidentify`] with the same
/// key and facility.
///
/// Errors: [`PhiError::DataSet`] when there is no SOP Instance UID or no sealed item,
/// or the sealed content does not decode; the [`seal::unseal`] errors when the
/// envelope was altered, moved to another instance or facility, or sealed under
/// another key.
pub fn reidentify(
    object: &InMemDicomObject,
    ring: &KeyRing,
    facility: &str,
) -> Result<InMemDicomObject, PhiError> {
    let sop_instance_uid = sop_instance_uid(object)?;
    let envelope = sealed::envelope(object)?;
    let context = SealContext {
        facility,
        sop_instance_uid: &sop_instance_uid,
        purpose: seal::Purpose::Instance,
    };
    let plaintext = seal::unseal(ring, &context, &envelope)?;
    let originals = sealed::decode_originals(&plaintext)?;

    let mut out = object.clone();
    for tag in ADDED {
        out.remove_element(tag);
    }
    for element in originals {
        out.put(element);
    }
    Ok(out)
}

/// The original elements sealed in `envelope` (a full record or an identity summary,
/// as `purpose` says) for the pseudonymous instance `sop_instance_uid` of `facility`.
///
/// Errors: the [`seal::unseal`] errors, and [`PhiError::DataSet`] when the content
/// does not decode.
pub fn unseal_originals(
    ring: &KeyRing,
    facility: &str,
    sop_instance_uid: &str,
    envelope: &[u8],
    purpose: seal::Purpose,
) -> Result<Vec<InMemElement>, PhiError> {
    let context = SealContext {
        facility,
        sop_instance_uid,
        purpose,
    };
    let plaintext = seal::unseal(ring, &context, envelope)?;
    sealed::decode_originals(&plaintext)
}

/// The identity summary envelope of a de-identified data set, if it carries one in
/// the product's private block.
pub fn identity_summary(object: &InMemDicomObject) -> Option<Vec<u8>> {
    // As bytes: in an implicit VR encoding the private block's VRs are unknown (UN).
    let (group, element) = PRIVATE_CREATOR_TAG;
    let creator = object
        .get(Tag(group, element))?
        .value()
        .primitive()?
        .to_bytes();
    if std::str::from_utf8(&creator)
        .ok()?
        .trim_matches(['\0', ' '])
        != PRIVATE_CREATOR
    {
        return None;
    }
    let (group, element) = IDENTITY_SUMMARY_TAG;
    let value = object.get(Tag(group, element))?.value().primitive()?;
    Some(value.to_bytes().into_owned())
}

/// The SOP Instance UID without padding; an error when absent or empty.
fn sop_instance_uid(object: &InMemDicomObject) -> Result<String, PhiError> {
    text(object, tags::SOP_INSTANCE_UID)
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| PhiError::DataSet("no SOP Instance UID (0008,0018)".into()))
}

/// A top-level text value without padding, if present and textual.
fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.value().primitive()?;
    Some(value.to_str().trim().to_owned())
}

/// Patient Identity Removed, De-identification Method and its Code Sequence.
fn put_method(out: &mut InMemDicomObject, options: &Options) {
    let codes = options.method_codes();
    out.put(DataElement::new(
        tags::PATIENT_IDENTITY_REMOVED,
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    let meanings: Vec<String> = codes.iter().map(|(_, m)| (*m).to_owned()).collect();
    out.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::Strs(meanings.into()),
    ));
    let items: Vec<InMemDicomObject> = codes
        .iter()
        .map(|(value, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(*value)),
                DataElement::new(
                    tags::CODING_SCHEME_DESIGNATOR,
                    VR::SH,
                    PrimitiveValue::from(METHOD_CODING_SCHEME),
                ),
                DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(*meaning)),
            ])
        })
        .collect();
    out.put(sequence(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, items));
}

/// The private block: creator and blind index.
fn put_private_block(out: &mut InMemDicomObject, blind_index: &str) {
    let (group, element) = PRIVATE_CREATOR_TAG;
    out.put(DataElement::new(
        Tag(group, element),
        VR::LO,
        PrimitiveValue::from(PRIVATE_CREATOR),
    ));
    let (group, element) = BLIND_INDEX_TAG;
    let value = if blind_index.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(blind_index)
    };
    out.put(DataElement::new(Tag(group, element), VR::LO, value));
}

/// A sequence element (undefined length) holding `items`.
fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

#[cfg(test)]
mod tests;
