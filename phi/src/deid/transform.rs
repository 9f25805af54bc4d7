//! Applying the profile to one element, recursively into sequence items, with the
//! rules listed in the [`deid`](super) module doc.

use dicom_core::header::Header;
use dicom_core::value::{C, DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::keys::KeyRing;
use crate::profile::{self, Action, Options};
use crate::pseudonym;

/// Text dummy.
const DUMMY_TEXT: &str = "ANONYMIZED";
/// Coding scheme of dummy codes (a private scheme, PS3.16 8.2: `99` prefix).
const DUMMY_SCHEME: &str = "99ANON";
/// The elements of a coded entry replaced in an item directly under a dummied sequence.
const CODE_TEXT: [Tag; 4] = [
    tags::CODE_VALUE,
    tags::LONG_CODE_VALUE,
    tags::URN_CODE_VALUE,
    tags::CODE_MEANING,
];

/// Where an element sits: directly in the profile's scope, or somewhere inside a
/// sequence whose action was D or C.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Profile,
    DummySequence,
}

/// Applies the profile with one key ring and one set of options.
pub(super) struct Transformer<'a> {
    ring: &'a KeyRing,
    options: &'a Options,
}

impl<'a> Transformer<'a> {
    pub(super) fn new(ring: &'a KeyRing, options: &'a Options) -> Self {
        Transformer { ring, options }
    }

    /// The de-identified form of a top-level element; `None` when it is removed.
    pub(super) fn element(&self, element: &InMemElement) -> Option<InMemElement> {
        self.transform(element, Scope::Profile)
    }

    fn object(&self, object: &InMemDicomObject, scope: Scope) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(object.iter().filter_map(|e| self.transform(e, scope)))
    }

    fn transform(&self, element: &InMemElement, scope: Scope) -> Option<InMemElement> {
        let tag = element.tag();
        if tag.group() % 2 == 1 {
            return None;
        }
        if tag == tags::PATIENT_ID {
            return Some(self.pseudonymize(element, pseudonym::patient_id));
        }
        if tag == tags::PATIENT_NAME {
            return Some(self.pseudonymize(element, pseudonym::patient_name));
        }
        let is_sequence = matches!(element.value(), Value::Sequence(_));
        let key = (tag.group(), tag.element());
        let action = match profile::action(key, self.options) {
            Some(Action::Clean) if is_sequence => Action::Dummy,
            Some(Action::Clean) => profile::basic_action(key).unwrap_or(Action::Remove),
            Some(action) => action,
            None if scope == Scope::DummySequence && is_free_text(element.vr()) => Action::Dummy,
            None => Action::Keep,
        };
        match action {
            Action::Remove => None,
            Action::Zero => Some(zero(element)),
            Action::Keep | Action::Clean => Some(self.keep(element, scope)),
            Action::Dummy => Some(self.dummy(element)),
            Action::Uid if is_sequence => Some(self.keep(element, scope)),
            Action::Uid if element.vr() == VR::UI => Some(self.uid(element)),
            Action::Uid => Some(self.dummy(element)),
        }
    }

    /// The element, with the profile applied to its items if it is a sequence.
    fn keep(&self, element: &InMemElement, scope: Scope) -> InMemElement {
        match element.items() {
            Some(items) => {
                let items = items.iter().map(|item| self.object(item, scope)).collect();
                with_items(element, items)
            }
            None => element.clone(),
        }
    }

    fn dummy(&self, element: &InMemElement) -> InMemElement {
        let value = match element.value() {
            Value::Sequence(sequence) => {
                let items = sequence
                    .items()
                    .iter()
                    .map(|item| self.dummy_item(item))
                    .collect();
                return with_items(element, items);
            }
            Value::Primitive(PrimitiveValue::Empty) => return element.clone(),
            Value::Primitive(value) if element.vr() == VR::UI => {
                return self.uid_of(element, value);
            }
            Value::Primitive(value) => dummy_value(element.vr(), value.multiplicity().max(1)),
            Value::PixelSequence(_) => PrimitiveValue::Empty,
        };
        DataElement::new(element.tag(), element.vr(), value)
    }

    /// An item of a dummied sequence: the profile applied, free text replaced, and a
    /// coded entry replaced by a dummy code.
    fn dummy_item(&self, item: &InMemDicomObject) -> InMemDicomObject {
        let mut item = self.object(item, Scope::DummySequence);
        let is_code = CODE_TEXT.iter().any(|tag| item.get(*tag).is_some());
        if is_code {
            for tag in CODE_TEXT
                .into_iter()
                .chain([tags::CODING_SCHEME_DESIGNATOR])
            {
                if let Some(element) = item.get(tag) {
                    let text = if tag == tags::CODING_SCHEME_DESIGNATOR {
                        DUMMY_SCHEME
                    } else {
                        DUMMY_TEXT
                    };
                    let vr = element.vr();
                    item.put(DataElement::new(tag, vr, PrimitiveValue::from(text)));
                }
            }
        }
        item
    }

    fn uid(&self, element: &InMemElement) -> InMemElement {
        match element.value() {
            Value::Primitive(value) => self.uid_of(element, value),
            _ => element.clone(),
        }
    }

    /// Every UID of `value` replaced by its pseudonym; empty values stay empty.
    fn uid_of(&self, element: &InMemElement, value: &PrimitiveValue) -> InMemElement {
        if matches!(value, PrimitiveValue::Empty) {
            return element.clone();
        }
        let uids: C<String> = value
            .to_multi_str()
            .iter()
            .map(|uid| match uid.trim_matches(['\0', ' ']) {
                "" => String::new(),
                uid => pseudonym::uid(self.ring, uid),
            })
            .collect();
        DataElement::new(element.tag(), element.vr(), PrimitiveValue::Strs(uids))
    }

    fn pseudonymize(
        &self,
        element: &InMemElement,
        pseudonym: fn(&KeyRing, &str) -> String,
    ) -> InMemElement {
        let original = match element.value() {
            Value::Primitive(value) => value.to_str(),
            _ => return zero(element),
        };
        if original.trim().is_empty() {
            return element.clone();
        }
        let value = PrimitiveValue::from(pseudonym(self.ring, &original));
        DataElement::new(element.tag(), element.vr(), value)
    }
}

fn is_free_text(vr: VR) -> bool {
    matches!(vr, VR::LT | VR::ST | VR::UT | VR::PN)
}

/// An empty value of the same VR (a sequence without items).
fn zero(element: &InMemElement) -> InMemElement {
    match element.value() {
        Value::Sequence(_) => with_items(element, Vec::new()),
        _ => DataElement::new(element.tag(), element.vr(), PrimitiveValue::Empty),
    }
}

/// A sequence element like `element` holding `items` (length left undefined).
fn with_items(element: &InMemElement, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(element.tag(), element.vr(), DataSetSequence::from(items))
}

/// `count` dummy values of `vr`.
fn dummy_value(vr: VR, count: u32) -> PrimitiveValue {
    let n = count as usize;
    let text = |s: &str| PrimitiveValue::Strs(std::iter::repeat_n(s.to_owned(), n).collect());
    match vr {
        VR::DA => text("19000101"),
        VR::TM => text("000000"),
        VR::DT => text("19000101000000"),
        VR::AS => text("000Y"),
        VR::DS | VR::IS => text("0"),
        VR::US => PrimitiveValue::U16(std::iter::repeat_n(0, n).collect()),
        VR::SS => PrimitiveValue::I16(std::iter::repeat_n(0, n).collect()),
        VR::UL => PrimitiveValue::U32(std::iter::repeat_n(0, n).collect()),
        VR::SL => PrimitiveValue::I32(std::iter::repeat_n(0, n).collect()),
        VR::UV => PrimitiveValue::U64(std::iter::repeat_n(0, n).collect()),
        VR::SV => PrimitiveValue::I64(std::iter::repeat_n(0, n).collect()),
        VR::FL => PrimitiveValue::F32(std::iter::repeat_n(0.0, n).collect()),
        VR::FD => PrimitiveValue::F64(std::iter::repeat_n(0.0, n).collect()),
        VR::AT => PrimitiveValue::Tags(std::iter::repeat_n(Tag(0, 0), n).collect()),
        VR::OW => PrimitiveValue::U16([0].into_iter().collect()),
        VR::OL => PrimitiveValue::U32([0].into_iter().collect()),
        VR::OV => PrimitiveValue::U64([0].into_iter().collect()),
        VR::OF => PrimitiveValue::F32([0.0].into_iter().collect()),
        VR::OD => PrimitiveValue::F64([0.0].into_iter().collect()),
        VR::OB | VR::UN => PrimitiveValue::U8([0, 0].into_iter().collect()),
        _ => text(DUMMY_TEXT),
    }
}
