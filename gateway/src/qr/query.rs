//! Identifier parsing: the level, the keys to return and the matching conditions
//! (PS3.4 C.2.2.2), with every value checked before it can reach SQL.

use std::fmt;

use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, mem::InMemElement};

use super::keys::{self, Attr, BLIND_INDEX, Kind, NAME_TOKEN};
use super::matching::{Matcher, matcher, name, trim};
use super::{Level, Model, QueryError};

/// A parsed C-FIND / C-GET / C-MOVE identifier.
///
/// Its `Debug` output shows the model, level and key tags, never a value.
pub struct Query {
    model: Model,
    level: Level,
    keys: Vec<Key>,
    conditions: Vec<Condition>,
    unsupported: Vec<Tag>,
}

/// One key of the request, to be present in every response.
pub(crate) struct Key {
    /// The tag as requested.
    pub tag: Tag,
    /// VR of the response element.
    pub vr: VR,
    /// Where its response value comes from.
    pub source: Source,
}

/// Where a response value comes from.
pub(crate) enum Source {
    /// An index column (empty when not available at the query level).
    Attr(&'static Attr),
    /// The query's level.
    Level,
    /// Specific Character Set: set by the response builder.
    Charset,
    /// A constant.
    Constant(&'static str),
    /// Echoed as sent (private creators).
    Echo(String),
    /// Unknown to the index: returned empty.
    Empty,
}

/// A key with a value to match.
#[derive(Debug)]
pub(crate) struct Condition {
    /// The attribute.
    pub attr: &'static Attr,
    /// The value(s).
    pub matcher: Matcher,
}

impl Query {
    /// The information model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The Query/Retrieve Level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Keys whose value was ignored for matching (unknown attributes, keys of a lower
    /// level, count keys or sequences with values): the SCP answers 0xFF01 instead of
    /// 0xFF00 when this is not empty. They still come back (empty) in responses.
    pub fn unsupported_keys(&self) -> &[Tag] {
        &self.unsupported
    }

    /// Whether [`Query::unsupported_keys`] is not empty.
    pub fn has_unsupported_keys(&self) -> bool {
        !self.unsupported.is_empty()
    }

    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub(crate) fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The conditions on the unique keys only (what a retrieve uses).
    pub(crate) fn unique_key_conditions(&self) -> impl Iterator<Item = &Condition> {
        let unique = [Level::Patient, Level::Study, Level::Series, Level::Image]
            .map(|l| keys::unique_key(l).tag);
        self.conditions
            .iter()
            .filter(move |c| unique.contains(&c.attr.tag))
    }

    /// Fails unless the unique key of the query's level has single values (or a UID
    /// list): what C-GET and C-MOVE need.
    pub(crate) fn require_unique_key(&self) -> Result<(), QueryError> {
        let key = keys::unique_key(self.level);
        if self.has_plain_condition(key.tag) {
            return Ok(());
        }
        Err(QueryError::MissingKey(format!(
            "a retrieve at {} level needs {}",
            self.level,
            name(key.tag)
        )))
    }

    fn has_plain_condition(&self, tag: Tag) -> bool {
        self.conditions
            .iter()
            .any(|c| c.attr.tag == tag && c.matcher.is_plain())
    }

    /// Hierarchical search (PS3.4 C.4.1.2.2.1): the unique keys of every level above
    /// the query's carry single values (a UID list is accepted too).
    fn check_hierarchy(&self) -> Result<(), QueryError> {
        let mut above = Vec::new();
        if self.model == Model::PatientRoot && self.level > Level::Patient {
            above.push(tags::PATIENT_ID);
        }
        if self.level > Level::Study {
            above.push(tags::STUDY_INSTANCE_UID);
        }
        if self.level > Level::Series {
            above.push(tags::SERIES_INSTANCE_UID);
        }
        match above.into_iter().find(|t| !self.has_plain_condition(*t)) {
            None => Ok(()),
            Some(tag) => Err(QueryError::MissingKey(format!(
                "{} level in {} needs {} with a value",
                self.level,
                self.model,
                name(tag)
            ))),
        }
    }

    fn add(&mut self, element: &InMemElement, block: Option<u16>) -> Result<(), QueryError> {
        let tag = element.tag();
        let key = |source| Key {
            tag,
            vr: element.vr(),
            source,
        };
        if tag.element() == 0 {
            return Ok(()); // group length
        }
        let ours =
            block.is_some_and(|b| tag.group() == keys::PRIVATE_GROUP && tag.element() >> 8 == b);
        let private = match tag.element() & 0xFF {
            keys::BLIND_INDEX_OFFSET if ours => Some(&BLIND_INDEX),
            keys::NAME_TOKEN_OFFSET if ours => Some(&NAME_TOKEN),
            _ => None,
        };
        let attr = keys::lookup(tag).or(private);
        if let Some(attr) = attr {
            return self.add_attr(attr, tag, element);
        }
        let source = match tag {
            tags::QUERY_RETRIEVE_LEVEL => Source::Level,
            tags::SPECIFIC_CHARACTER_SET => Source::Charset,
            tags::INSTANCE_AVAILABILITY => {
                let text = text_of(element);
                if !matches!(text.trim(), "" | "ONLINE") {
                    self.unsupported.push(tag);
                }
                Source::Constant("ONLINE")
            }
            _ if is_private_creator(tag) => Source::Echo(text_of(element).trim().to_string()),
            _ => {
                if has_values(element) {
                    self.unsupported.push(tag);
                }
                Source::Empty
            }
        };
        self.keys.push(key(source));
        Ok(())
    }

    fn add_attr(
        &mut self,
        attr: &'static Attr,
        tag: Tag,
        element: &InMemElement,
    ) -> Result<(), QueryError> {
        self.keys.push(Key {
            tag,
            vr: attr.vr,
            source: Source::Attr(attr),
        });
        let return_only = matches!(attr.kind, Kind::Count | Kind::Sealed);
        if return_only || !attr.available(self.level) {
            if has_values(element) {
                self.unsupported.push(tag);
            }
            return Ok(());
        }
        if let Some(matcher) = matcher(attr, tag, &text_of(element))? {
            self.conditions.push(Condition { attr, matcher });
        }
        Ok(())
    }
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tags =
            |it: &mut dyn Iterator<Item = Tag>| it.map(|t| t.to_string()).collect::<Vec<_>>();
        f.debug_struct("Query")
            .field("model", &self.model)
            .field("level", &self.level)
            .field("keys", &tags(&mut self.keys.iter().map(|k| k.tag)))
            .field(
                "matching",
                &tags(&mut self.conditions.iter().map(|c| c.attr.tag)),
            )
            .field("unsupported", &tags(&mut self.unsupported.iter().copied()))
            .finish()
    }
}

/// Parses a C-FIND, C-GET or C-MOVE identifier of `model`.
///
/// Fails when the level is missing or not part of the model, when the hierarchy's
/// parent keys are missing (Study Root SERIES needs Study Instance UID; Patient Root
/// STUDY needs Patient ID, and so on), or when a value is malformed: an impossible date,
/// a reversed range, a UID list with an invalid UID, a non-integer IS, an absurdly
/// long value or list. Unknown keys are not errors: see [`Query::unsupported_keys`].
pub fn parse(model: Model, identifier: &InMemDicomObject) -> Result<Query, QueryError> {
    let query = parse_keys(model, identifier)?;
    query.check_hierarchy()?;
    Ok(query)
}

/// [`parse`] for a relational search (PS3.4 C.4.1.2.2.2, what QIDO-RS `/series` and
/// `/instances` without a study are): the parent levels' unique keys may be absent or
/// carry any matching value.
pub fn parse_relational(model: Model, identifier: &InMemDicomObject) -> Result<Query, QueryError> {
    parse_keys(model, identifier)
}

fn parse_keys(model: Model, identifier: &InMemDicomObject) -> Result<Query, QueryError> {
    let level = level_of(model, identifier)?;
    let block = product_block(identifier);
    let mut query = Query {
        model,
        level,
        keys: Vec::new(),
        conditions: Vec::new(),
        unsupported: Vec::new(),
    };
    for element in identifier.iter() {
        query.add(element, block)?;
    }
    Ok(query)
}

fn level_of(model: Model, identifier: &InMemDicomObject) -> Result<Level, QueryError> {
    let text = identifier
        .get(tags::QUERY_RETRIEVE_LEVEL)
        .map(text_of)
        .unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(QueryError::MissingLevel);
    }
    match Level::parse(text) {
        Some(level) if model.supports(level) => Ok(level),
        _ => Err(QueryError::UnsupportedLevel {
            model,
            level: text
                .chars()
                .filter(char::is_ascii_graphic)
                .take(16)
                .collect(),
        }),
    }
}

/// The block (high byte of the element numbers) of the product's private block when
/// the identifier carries it (creator `PACS GATEWAY 1` in group 0013, any block).
fn product_block(identifier: &InMemDicomObject) -> Option<u16> {
    identifier.iter().find_map(|e| {
        let t = e.tag();
        let creator = t.group() == keys::PRIVATE_GROUP
            && is_private_creator(t)
            && text_of(e).trim() == keys::PRIVATE_CREATOR;
        creator.then_some(t.element())
    })
}

fn is_private_creator(tag: Tag) -> bool {
    tag.group() % 2 == 1 && (0x10..=0xFF).contains(&tag.element())
}

/// The value as text (values joined by `\`); private elements received as UN come as
/// bytes and are read as UTF-8.
pub(crate) fn text_of(element: &InMemElement) -> String {
    match element.value() {
        Value::Primitive(PrimitiveValue::U8(bytes)) if element.vr() == VR::UN => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        Value::Primitive(p) => p.to_str().into_owned(),
        _ => String::new(),
    }
}

/// Whether an element carries anything to match (a non-blank value, or a sequence
/// item with one).
fn has_values(element: &InMemElement) -> bool {
    match element.value() {
        Value::Primitive(_) => !trim(&text_of(element)).is_empty(),
        Value::Sequence(seq) => seq.items().iter().any(|item| item.iter().any(has_values)),
        Value::PixelSequence(_) => true,
    }
}

#[cfg(test)]
pub(crate) mod tests;
