//! Random data sets built from Table E.1-1 itself, for the property tests.
//!
//! Elements are random rows of the table with their VR from the standard dictionary,
//! plus attributes the table does not list, private blocks, and sequences nested up
//! to three levels. Every value is unique within a data set. While generating, each
//! value is classified as the documented policy says: "hidden" (the profile changes
//! or removes it, at its own level or through an enclosing sequence) or kept. Hidden
//! text values are collected so the test can check that none survives.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::value::{C, DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::profile::{Action, Options, PROFILE};

/// Deepest sequence nesting generated (a sequence inside a sequence inside a sequence).
const MAX_DEPTH: u32 = 3;

/// Attributes the table does not list: kept, except the free text (Text Value) and
/// the coded entry (Code Meaning) under a dummied sequence.
const FILLERS: [(Tag, VR); 6] = [
    (tags::ROWS, VR::US),
    (tags::MODALITY, VR::CS),
    (tags::INSTANCE_NUMBER, VR::IS),
    (tags::TEXT_VALUE, VR::UT),
    (tags::CODE_MEANING, VR::LO),
    (tags::SOP_CLASS_UID, VR::UI),
];

/// The coded entry of an item directly under a dummied sequence (see `transform`).
const CODE_TAGS: [Tag; 5] = [
    tags::CODE_VALUE,
    tags::LONG_CODE_VALUE,
    tags::URN_CODE_VALUE,
    tags::CODE_MEANING,
    tags::CODING_SCHEME_DESIGNATOR,
];

/// A generated data set and what must not survive de-identification.
pub(super) struct Generated {
    pub(super) object: InMemDicomObject,
    /// Hidden values with a non-digit character: must not occur in the encoding.
    pub(super) secrets: Vec<String>,
    /// Hidden all-digit values (dates, times): must not be any value of the output
    /// (as substrings they could occur by chance inside pseudonymous UIDs).
    pub(super) digit_secrets: Vec<String>,
}

/// How the profile treats the place where an element is generated.
#[derive(Clone, Copy, Default)]
struct Place {
    /// An enclosing sequence is removed, emptied or private.
    hidden: bool,
    /// Somewhere inside a dummied (or cleaned) sequence.
    in_dummy: bool,
    /// Directly in an item of a dummied sequence.
    direct_in_dummy: bool,
}

/// One generated leaf value, for the classification.
struct Leaf {
    tag: Tag,
    depth: u32,
    values: Vec<String>,
    hidden: bool,
}

pub(super) fn data_set(seed: u64, options: &Options) -> Generated {
    let candidates = candidates();
    let mut g = Gen {
        rng: seed,
        counter: 0,
        options,
        candidates: &candidates,
        leaves: Vec::new(),
    };
    let mut object = g.object(0, Place::default(), 10..30);
    for (tag, vr) in [
        (tags::SOP_INSTANCE_UID, VR::UI),
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::SOP_CLASS_UID, VR::UI),
    ] {
        if object.get(tag).is_none() {
            object.put(g.element(tag, vr, 0, Place::default()));
        }
    }
    object.put(DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from("ISO_IR 192"),
    ));
    let mut secrets = Vec::new();
    let mut digit_secrets = Vec::new();
    for value in g.leaves.iter().filter(|l| l.hidden).flat_map(|l| &l.values) {
        if value.len() < 4 {
            continue;
        }
        if value.bytes().all(|b| b.is_ascii_digit()) {
            digit_secrets.push(value.clone());
        } else {
            secrets.push(value.clone());
        }
    }
    Generated {
        object,
        secrets,
        digit_secrets,
    }
}

/// Single-tag rows whose dictionary VR is exact, plus concrete overlay rows.
fn candidates() -> Vec<(Tag, VR)> {
    let rows = PROFILE
        .iter()
        .filter(|r| r.is_exact() && r.group.0 > 0x0002 && r.group.0 != 0xFFFC)
        .filter_map(|r| {
            let tag = Tag(r.group.0, r.element.0);
            match StandardDataDictionary.by_tag(tag)?.vr() {
                VirtualVr::Exact(vr) => Some((tag, vr)),
                _ => None,
            }
        });
    rows.chain([(Tag(0x6002, 0x3000), VR::OW), (Tag(0x6004, 0x4000), VR::LT)])
        .collect()
}

struct Gen<'a> {
    rng: u64,
    counter: u32,
    options: &'a Options,
    candidates: &'a [(Tag, VR)],
    leaves: Vec<Leaf>,
}

impl Gen<'_> {
    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unique(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    fn object(
        &mut self,
        depth: u32,
        place: Place,
        count: std::ops::Range<u64>,
    ) -> InMemDicomObject {
        let first_leaf = self.leaves.len();
        let mut object = InMemDicomObject::new_empty();
        let n = count.start + self.below(count.end - count.start);
        for _ in 0..n {
            // One pick in four is a sequence, while nesting is allowed.
            let want_sequence = depth < MAX_DEPTH && self.below(4) == 0;
            let pool: Vec<_> = self
                .candidates
                .iter()
                .filter(|(_, vr)| (*vr == VR::SQ) == want_sequence)
                .collect();
            let (tag, vr) = *pool[self.below(pool.len() as u64) as usize];
            object.put(self.element(tag, vr, depth, place));
        }
        for _ in 0..1 + self.below(2) {
            let (tag, vr) = FILLERS[self.below(FILLERS.len() as u64) as usize];
            object.put(self.element(tag, vr, depth, place));
        }
        if self.below(2) == 0 {
            let private = Place {
                hidden: true,
                ..place
            };
            object.put(self.element(Tag(0x0009, 0x0010), VR::LO, depth, private));
            object.put(self.element(Tag(0x0009, 0x1001), VR::LO, depth, private));
            object.put(self.element(Tag(0x0009, 0x1002), VR::UN, depth, private));
        }
        if place.direct_in_dummy && CODE_TAGS[..4].iter().any(|t| object.get(*t).is_some()) {
            let own = self.leaves[first_leaf..].iter_mut();
            for leaf in own.filter(|l| l.depth == depth && CODE_TAGS.contains(&l.tag)) {
                leaf.hidden = true;
            }
        }
        object
    }

    fn element(&mut self, tag: Tag, vr: VR, depth: u32, place: Place) -> InMemElement {
        let action = crate::profile::action((tag.group(), tag.element()), self.options);
        if vr == VR::SQ {
            let child = match action {
                Some(Action::Remove | Action::Zero) => Place {
                    hidden: true,
                    ..place
                },
                Some(Action::Dummy | Action::Clean) => Place {
                    in_dummy: true,
                    direct_in_dummy: true,
                    ..place
                },
                _ => Place {
                    direct_in_dummy: false,
                    ..place
                },
            };
            let items = (0..self.below(3))
                .map(|_| self.object(depth + 1, child, 1..5))
                .collect::<Vec<_>>();
            return DataElement::new(tag, vr, DataSetSequence::from(items));
        }
        let hidden = place.hidden
            || tag.group() % 2 == 1
            || tag == tags::PATIENT_ID
            || tag == tags::PATIENT_NAME
            || match action {
                Some(Action::Keep) => false,
                Some(_) => true,
                None => place.in_dummy && matches!(vr, VR::LT | VR::ST | VR::UT | VR::PN),
            };
        let (value, texts) = self.value(vr);
        // The code rule is applied by `object` once the whole item is known.
        self.leaves.push(Leaf {
            tag,
            depth,
            values: texts,
            hidden,
        });
        DataElement::new(tag, vr, value)
    }

    /// A unique value of `vr`, and its text forms (empty for binary values).
    fn value(&mut self, vr: VR) -> (PrimitiveValue, Vec<String>) {
        let multi = matches!(vr, VR::LO | VR::SH | VR::CS | VR::UI | VR::PN) && self.below(5) == 0;
        let count = if multi { 2 } else { 1 };
        let texts: Vec<String> = match vr {
            VR::US | VR::SS | VR::UL | VR::SL | VR::UV | VR::SV | VR::FL | VR::FD => {
                return (self.number(vr), Vec::new());
            }
            VR::OB | VR::UN | VR::OW | VR::OL | VR::OV | VR::OF | VR::OD | VR::AT => {
                return (self.binary(vr), Vec::new());
            }
            VR::DS | VR::IS => vec![(self.below(100)).to_string()],
            _ => (0..count).map(|_| self.text(vr)).collect(),
        };
        let value = PrimitiveValue::Strs(texts.iter().cloned().collect::<C<String>>());
        (value, texts)
    }

    fn text(&mut self, vr: VR) -> String {
        let n = self.unique();
        match vr {
            VR::UI => format!(
                "1.2.826.0.1.3680043.10.999.{n:06}.{:010}",
                self.below(1 << 32)
            ),
            VR::DA => date(n),
            VR::TM => time(n),
            VR::DT => format!("{}{}", date(n), time(n)),
            VR::AS => format!("{:03}Y", n % 999 + 1),
            VR::PN => format!("{}^{}", self.token(n), self.token(n)),
            _ => self.token(n),
        }
    }

    /// Ten capitals: three from `n` (unique), seven random.
    fn token(&mut self, n: u32) -> String {
        let mut s: String = [n / 676, n / 26, n]
            .iter()
            .map(|d| char::from(b'A' + (d % 26) as u8))
            .collect();
        s.extend((0..7).map(|_| char::from(b'A' + self.below(26) as u8)));
        s
    }

    fn number(&mut self, vr: VR) -> PrimitiveValue {
        let x = self.next();
        match vr {
            VR::US => PrimitiveValue::from(x as u16),
            VR::SS => PrimitiveValue::from(x as i16),
            VR::UL => PrimitiveValue::from(x as u32),
            VR::SL => PrimitiveValue::from(x as i32),
            VR::UV => PrimitiveValue::from(x),
            VR::SV => PrimitiveValue::from(x as i64),
            VR::FL => PrimitiveValue::from((x % 10_000) as f32 / 8.0),
            _ => PrimitiveValue::from((x % 1_000_000) as f64 / 16.0),
        }
    }

    fn binary(&mut self, vr: VR) -> PrimitiveValue {
        let len = 1 + self.below(4) as usize;
        match vr {
            VR::OW => PrimitiveValue::U16((0..len).map(|_| self.next() as u16).collect()),
            VR::OL => PrimitiveValue::U32((0..len).map(|_| self.next() as u32).collect()),
            VR::OV => PrimitiveValue::U64((0..len).map(|_| self.next()).collect()),
            VR::OF => PrimitiveValue::F32((0..len).map(|i| i as f32 * 0.5).collect()),
            VR::OD => PrimitiveValue::F64((0..len).map(|i| i as f64 * 0.25).collect()),
            VR::AT => PrimitiveValue::Tags([Tag(0x0010, 0x0010)].into_iter().collect()),
            _ => PrimitiveValue::U8((0..2 * len).map(|_| self.next() as u8).collect()),
        }
    }
}

/// A valid date, different for every `n` below 16,800 (never 19000101).
fn date(n: u32) -> String {
    format!(
        "{}{:02}{:02}",
        1950 + n / 336,
        1 + (n / 28) % 12,
        1 + n % 28
    )
}

/// A valid time, different for every `n` from 1 to 86,399 (never 000000).
fn time(n: u32) -> String {
    format!("{:02}{:02}{:02}", (n / 3600) % 24, (n / 60) % 60, n % 60)
}
