//! Response identifiers: one per matching row, carrying every key of the request.

use dicom_core::value::{C, DataSetSequence};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::keys::{Attr, Kind};
use super::query::{Query, Source};

/// Specific Character Set of every response that carries text.
pub(crate) const UTF8: &str = "ISO_IR 192";
/// Transfer syntax of the sealed identity's plaintext (Explicit VR Little Endian).
const SEALED_TRANSFER_SYNTAX: &str = "1.2.840.10008.1.2.1";

/// The response identifier for one row.
pub(crate) fn identifier(query: &Query, row: &AnyRow) -> Result<InMemDicomObject, sqlx::Error> {
    let mut out = InMemDicomObject::new_empty();
    let mut charset_asked = false;
    for key in query.keys() {
        let element = match &key.source {
            Source::Attr(attr) if attr.available(query.level()) => value(attr, key.tag, row)?,
            Source::Attr(_) | Source::Empty => empty(key.tag, key.vr),
            Source::Level => continue, // put below, whether asked or not
            Source::Constant(v) => text(key.tag, key.vr, v),
            Source::Echo(v) => text(key.tag, VR::LO, v),
            Source::Charset => {
                charset_asked = true;
                continue;
            }
        };
        out.put(element);
    }
    out.put(text(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        query.level().as_str(),
    ));
    if charset_asked || out.iter().any(carries_text) {
        out.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, UTF8));
    }
    Ok(out)
}

/// Whether an element holds a value in a VR affected by the character set.
fn carries_text(element: &dicom_object::mem::InMemElement) -> bool {
    let text_vr = matches!(
        element.vr(),
        VR::PN | VR::LO | VR::SH | VR::LT | VR::ST | VR::UT | VR::UC
    );
    text_vr
        && !element
            .value()
            .primitive()
            .is_none_or(|p| p.to_str().is_empty())
}

fn value(
    attr: &Attr,
    tag: Tag,
    row: &AnyRow,
) -> Result<DataElement<InMemDicomObject>, sqlx::Error> {
    Ok(match attr.kind {
        Kind::Int | Kind::Count => match row.try_get::<Option<i64>, _>(attr.alias)? {
            Some(n) => text(tag, attr.vr, &n.to_string()),
            None => empty(tag, attr.vr),
        },
        Kind::Sealed => {
            let bound_to = row
                .try_get::<Option<String>, _>(super::keys::SEALED_FOR_ALIAS)
                .ok()
                .flatten();
            let summary = row
                .try_get::<Option<String>, _>(super::keys::SEALED_KIND_ALIAS)
                .ok()
                .flatten()
                .is_some_and(|kind| kind == "summary");
            let items = match row.try_get::<Option<Vec<u8>>, _>(attr.alias)? {
                Some(bytes) if summary => vec![summary_item(bytes, bound_to)],
                Some(bytes) => vec![sealed_item(bytes, bound_to)],
                None => Vec::new(),
            };
            DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
        }
        _ => match row.try_get::<Option<String>, _>(attr.alias)? {
            Some(v) if v.contains('\\') => {
                let values: C<String> = v.split('\\').map(str::to_string).collect();
                DataElement::new(tag, attr.vr, PrimitiveValue::Strs(values))
            }
            Some(v) => text(tag, attr.vr, &v),
            None => empty(tag, attr.vr),
        },
    })
}

/// The Encrypted Attributes Sequence item for a stored envelope. The envelope is
/// bound to the (pseudonymous) SOP Instance UID it was sealed for, which the item
/// carries as Referenced SOP Instance UID (0008,1155) so that the client can unseal.
fn sealed_item(envelope: Vec<u8>, bound_to: Option<String>) -> InMemDicomObject {
    let mut item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID,
            VR::UI,
            PrimitiveValue::from(SEALED_TRANSFER_SYNTAX),
        ),
        DataElement::new(
            tags::ENCRYPTED_CONTENT,
            VR::OB,
            PrimitiveValue::from(envelope),
        ),
    ]);
    if let Some(uid) = bound_to {
        item.put(DataElement::new(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid),
        ));
    }
    item
}

/// The Encrypted Attributes Sequence item for a stored identity summary: the
/// envelope in the product's private block, (0013,1011) under creator
/// `PACS GATEWAY 1` at (0013,0010), so that the client opens it as a summary (its
/// associated data differs from the full record's); bound like [`sealed_item`].
fn summary_item(envelope: Vec<u8>, bound_to: Option<String>) -> InMemDicomObject {
    let mut item = InMemDicomObject::from_element_iter([
        DataElement::new(
            Tag(super::keys::PRIVATE_GROUP, 0x0010),
            VR::LO,
            PrimitiveValue::from(super::keys::PRIVATE_CREATOR),
        ),
        DataElement::new(
            Tag(
                super::keys::PRIVATE_GROUP,
                0x1000 | super::keys::IDENTITY_SUMMARY_OFFSET,
            ),
            VR::OB,
            PrimitiveValue::from(envelope),
        ),
    ]);
    if let Some(uid) = bound_to {
        item.put(DataElement::new(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid),
        ));
    }
    item
}

fn text(tag: Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    if value.is_empty() {
        return empty(tag, vr);
    }
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn empty(tag: Tag, vr: VR) -> DataElement<InMemDicomObject> {
    if vr == VR::SQ {
        return DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty());
    }
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}
