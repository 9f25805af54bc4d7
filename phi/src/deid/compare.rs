//! Equality of elements and data sets by content: tags, VRs and values, recursively.
//!
//! `PartialEq` of dicom-core also compares recorded byte lengths, and an undefined
//! length never equals anything (not even itself), so a data set with a sequence of
//! undefined length is never `==` to its own copy. Encoders recompute lengths; what
//! must survive de-identification and re-identification is the content.

use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

/// Same tags, VRs and values (floats bit for bit), items compared recursively.
pub(crate) fn same_object(a: &InMemDicomObject, b: &InMemDicomObject) -> bool {
    a.iter().count() == b.iter().count() && a.iter().zip(b.iter()).all(|(x, y)| same_element(x, y))
}

/// Same tag, VR and value (floats bit for bit), items compared recursively.
pub(crate) fn same_element(a: &InMemElement, b: &InMemElement) -> bool {
    a.tag() == b.tag() && a.vr() == b.vr() && same_value(a.value(), b.value())
}

fn same_value(a: &Value<InMemDicomObject, Vec<u8>>, b: &Value<InMemDicomObject, Vec<u8>>) -> bool {
    match (a, b) {
        (Value::Primitive(x), Value::Primitive(y)) => same_primitive(x, y),
        (Value::Sequence(x), Value::Sequence(y)) => {
            x.items().len() == y.items().len()
                && x.items()
                    .iter()
                    .zip(y.items())
                    .all(|(i, j)| same_object(i, j))
        }
        (Value::PixelSequence(x), Value::PixelSequence(y)) => {
            x.offset_table() == y.offset_table() && x.fragments() == y.fragments()
        }
        _ => false,
    }
}

fn same_primitive(a: &PrimitiveValue, b: &PrimitiveValue) -> bool {
    match (a, b) {
        (PrimitiveValue::F32(x), PrimitiveValue::F32(y)) => x
            .iter()
            .map(|v| v.to_bits())
            .eq(y.iter().map(|v| v.to_bits())),
        (PrimitiveValue::F64(x), PrimitiveValue::F64(y)) => x
            .iter()
            .map(|v| v.to_bits())
            .eq(y.iter().map(|v| v.to_bits())),
        _ => a == b,
    }
}
