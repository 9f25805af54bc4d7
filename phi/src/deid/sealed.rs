//! The sealed payload and the Encrypted Attributes Sequence item that carries it.
//!
//! Plaintext: a data set in Explicit VR Little Endian holding Specific Character Set
//! (0008,0005) = `ISO_IR 192` (so every text value round-trips, whatever the
//! original character set) and a Modified Attributes Sequence (0400,0550) with one
//! item: the original elements. The envelope goes into Encrypted Content (0400,0520),
//! OB, next to Encrypted Content Transfer Syntax UID (0400,0510).

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntax};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::PhiError;

/// Explicit VR Little Endian, the encoding of the sealed data set.
pub(super) const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

pub(super) fn transfer_syntax() -> TransferSyntax {
    TransferSyntax::new_ele(
        EXPLICIT_VR_LITTLE_ENDIAN,
        "Explicit VR Little Endian",
        Codec::None,
    )
}

/// The plaintext to seal: `originals` in one Modified Attributes Sequence item.
pub(super) fn encode_originals(originals: Vec<InMemElement>) -> Result<Vec<u8>, PhiError> {
    let item = InMemDicomObject::from_element_iter(originals.iter().map(utf8_safe));
    let payload = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::from("ISO_IR 192"),
        ),
        DataElement::new(
            tags::MODIFIED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ),
    ]);
    let mut bytes = Vec::new();
    payload
        .write_dataset_with_ts(&mut bytes, &transfer_syntax())
        .map_err(|_| {
            PhiError::DataSet("cannot encode the original attributes for sealing".into())
        })?;
    Ok(bytes)
}

/// `element` such that it reads back the same from a UTF-8 data set. dicom-rs writes
/// values of the default-repertoire VRs in Latin-1 but reads UI, DA, DT and TM back
/// under the data set's character set, so a non-ASCII character there (a
/// non-conformant original UID, say) would come back as an escape: such a value
/// goes in as its UTF-8 bytes instead. (Reading them back gives the characters the
/// original parse gave, which re-identification writes as the original bytes.)
/// AE, AS, CS and UR are read in Latin-1 too and need nothing; DS and IS cannot be
/// helped (dicom-rs writes their byte values as numbers).
fn utf8_safe(element: &InMemElement) -> InMemElement {
    let (tag, vr) = (element.tag(), element.vr());
    match element.value() {
        Value::Sequence(seq) => {
            let items = seq
                .items()
                .iter()
                .map(|item| InMemDicomObject::from_element_iter(item.iter().map(utf8_safe)))
                .collect::<Vec<_>>();
            DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
        }
        Value::Primitive(value @ (PrimitiveValue::Str(_) | PrimitiveValue::Strs(_)))
            if matches!(vr, VR::UI | VR::DA | VR::DT | VR::TM) && !value.to_str().is_ascii() =>
        {
            let mut bytes = value.to_str().into_owned().into_bytes();
            if bytes.len() % 2 == 1 {
                bytes.push(if vr == VR::UI { 0 } else { b' ' });
            }
            DataElement::new(tag, vr, PrimitiveValue::U8(bytes.into()))
        }
        _ => element.clone(),
    }
}

/// The original elements from an unsealed plaintext.
pub(super) fn decode_originals(plaintext: &[u8]) -> Result<Vec<InMemElement>, PhiError> {
    let bad = || PhiError::DataSet("the sealed attributes do not decode".into());
    let payload =
        InMemDicomObject::read_dataset_with_ts(plaintext, &transfer_syntax()).map_err(|_| bad())?;
    let items = payload
        .get(tags::MODIFIED_ATTRIBUTES_SEQUENCE)
        .and_then(|e| e.items())
        .ok_or_else(bad)?;
    match items {
        [item] => Ok(item.iter().cloned().collect()),
        _ => Err(bad()),
    }
}

/// The Encrypted Attributes Sequence carrying `envelope`.
pub(super) fn encrypted_attributes(envelope: Vec<u8>) -> InMemElement {
    let item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID,
            VR::UI,
            PrimitiveValue::from(EXPLICIT_VR_LITTLE_ENDIAN),
        ),
        DataElement::new(
            tags::ENCRYPTED_CONTENT,
            VR::OB,
            PrimitiveValue::from(envelope),
        ),
    ]);
    super::sequence(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE, vec![item])
}

/// The envelope of the first Encrypted Attributes Sequence item in our encoding.
///
/// Taken as it is: the envelope overhead is even and the plaintext, a data set, too,
/// so no encoder ever pads an envelope (`schemas/sealed-identity.md`).
pub(super) fn envelope(object: &InMemDicomObject) -> Result<Vec<u8>, PhiError> {
    let items = object
        .get(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or_default();
    let item = items
        .iter()
        .find(|item| {
            item.get(tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID)
                .and_then(|e| e.value().primitive())
                .is_some_and(|v| v.to_str() == EXPLICIT_VR_LITTLE_ENDIAN)
        })
        .ok_or_else(|| {
            PhiError::DataSet("no sealed identity (Encrypted Attributes Sequence) found".into())
        })?;
    item.get(tags::ENCRYPTED_CONTENT)
        .and_then(|e| e.value().primitive())
        .map(|v| v.to_bytes().into_owned())
        .ok_or_else(|| PhiError::DataSet("the sealed identity item has no content".into()))
}
