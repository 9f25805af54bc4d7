//! The keys the index can match and return: tag, VR, kind of matching, owning level
//! and the SQL column behind each. Column expressions are static text; the aliases are
//! `s` (studies), `r` (series), `i` (instances) and `p` (study_patients: at STUDY
//! level each patient of the study, below it the patient of the series or instance),
//! and `t` / `ts` for the grouped study patients and their studies of a PATIENT-level
//! query.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;

use super::Level;

/// How a key's value is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// PN: single value or wildcard, case-insensitive.
    Name,
    /// LO, SH, CS: single value or wildcard, case-sensitive.
    Text,
    /// UI: single value or UID list.
    Uid,
    /// DA: single value or range.
    Date,
    /// TM: single value or range.
    Time,
    /// IS: single integer value.
    Int,
    /// A count: return key only.
    Count,
    /// Modalities in Study: any of the listed modalities (wildcards allowed).
    Modalities,
    /// The sealed identity: return key only.
    Sealed,
    /// Name search tokens (any may match): matched against the `name_tokens` of the
    /// study patient, never returned.
    NameToken,
}

/// One matchable / returnable attribute.
#[derive(Debug)]
pub(crate) struct Attr {
    /// Its tag (for the name blind index, the tag in block 0x10; the request's block
    /// may differ).
    pub tag: Tag,
    /// Its VR in responses.
    pub vr: VR,
    /// How it matches.
    pub kind: Kind,
    /// The level that owns it.
    pub level: Level,
    /// Column alias in result rows.
    pub alias: &'static str,
    /// Expression for matching, and for selecting at STUDY level and below (`None`:
    /// only available at PATIENT level).
    pub column: Option<&'static str>,
    /// Expression selecting it in a PATIENT-level query (`None`: not a patient key).
    pub patient_select: Option<&'static str>,
}

impl Attr {
    /// The select expression at `level`, or `None` when the key is not available there.
    pub(crate) fn select(&self, level: Level) -> Option<&'static str> {
        match level {
            Level::Patient => self.patient_select,
            _ if self.level <= level => self.column,
            _ => None,
        }
    }

    /// Whether the key can be matched (and returned) at `level`.
    pub(crate) fn available(&self, level: Level) -> bool {
        self.select(level).is_some()
    }
}

const fn attr(
    tag: Tag,
    vr: VR,
    kind: Kind,
    level: Level,
    alias: &'static str,
    column: &'static str,
) -> Attr {
    Attr {
        tag,
        vr,
        kind,
        level,
        alias,
        column: Some(column),
        patient_select: None,
    }
}

const fn patient(
    tag: Tag,
    vr: VR,
    kind: Kind,
    alias: &'static str,
    column: Option<&'static str>,
    select: &'static str,
) -> Attr {
    Attr {
        tag,
        vr,
        kind,
        level: Level::Patient,
        alias,
        column,
        patient_select: Some(select),
    }
}

use Kind::*;
use Level::{Image, Series, Study};

/// Column alias of the UID a sealed identity is bound to.
pub(crate) const SEALED_FOR_ALIAS: &str = "sealed_for";

/// Column alias of what the sealed identity is (NULL: the full record; `summary`).
pub(crate) const SEALED_KIND_ALIAS: &str = "sealed_kind";

/// The columns of a sealed identity at one level.
pub(crate) struct SealedColumns {
    /// The envelope.
    pub envelope: &'static str,
    /// The UID it is bound to.
    pub bound_to: &'static str,
    /// What it is (see [`SEALED_KIND_ALIAS`]).
    pub kind: &'static str,
}

/// The sealed identity, the UID it is bound to and its kind, at `level`: a study
/// patient's (at STUDY level, the matched patient of the study) and a series' are
/// those of their first stored instance, an instance's is its own. `None` at PATIENT
/// level (a patient has no single envelope).
pub(crate) fn sealed_columns(level: Level) -> Option<SealedColumns> {
    let (envelope, bound_to, kind) = match level {
        Level::Patient => return None,
        Level::Study => (
            "p.sealed_identity",
            "p.sealed_sop_instance_uid",
            "p.sealed_kind",
        ),
        Level::Series => (
            "r.sealed_identity",
            "r.sealed_sop_instance_uid",
            "r.sealed_kind",
        ),
        Level::Image => ("i.sealed_identity", "i.sop_instance_uid", "i.sealed_kind"),
    };
    Some(SealedColumns {
        envelope,
        bound_to,
        kind,
    })
}
/// Private creator of the product's block carrying the name blind index.
pub(crate) const PRIVATE_CREATOR: &str = dimse::scan::PRODUCT_PRIVATE_CREATOR;
/// Group of the product's private block.
pub(crate) const PRIVATE_GROUP: u16 = 0x0013;
/// Element offset of the name blind index within the block.
pub(crate) const BLIND_INDEX_OFFSET: u16 = 0x10;
/// Element offset of the identity summary envelope within the block.
pub(crate) const IDENTITY_SUMMARY_OFFSET: u16 = 0x11;
/// Element offset of the name search tokens within the block.
pub(crate) const NAME_TOKEN_OFFSET: u16 = 0x12;

/// The name search tokens, (0013,xx12) in the product's block: a query carries the
/// token(s) of what the user typed; instances carry every token of their name.
pub(crate) static NAME_TOKEN: Attr = patient(
    Tag(PRIVATE_GROUP, 0x1000 | NAME_TOKEN_OFFSET),
    VR::LO,
    NameToken,
    "name_token",
    Some("''"),
    "''",
);

/// The name blind index, (0013,xx10) in the product's block.
pub(crate) static BLIND_INDEX: Attr = patient(
    Tag(PRIVATE_GROUP, 0x1000 | BLIND_INDEX_OFFSET),
    VR::LO,
    Text,
    "name_blind_index",
    Some("p.name_blind_index"),
    "MIN(t.name_blind_index)",
);

/// The standard keys.
pub(crate) static ATTRS: &[Attr] = &[
    patient(
        tags::PATIENT_NAME,
        VR::PN,
        Name,
        "patient_name",
        Some("p.patient_name"),
        "MIN(t.patient_name)",
    ),
    patient(
        tags::PATIENT_ID,
        VR::LO,
        Text,
        "patient_id",
        Some("p.patient_id"),
        "t.patient_id",
    ),
    patient(
        tags::NUMBER_OF_PATIENT_RELATED_STUDIES,
        VR::IS,
        Count,
        "patient_studies",
        None,
        "COUNT(*)",
    ),
    patient(
        tags::NUMBER_OF_PATIENT_RELATED_SERIES,
        VR::IS,
        Count,
        "patient_series",
        None,
        "CAST(SUM(ts.num_series) AS BIGINT)",
    ),
    patient(
        tags::NUMBER_OF_PATIENT_RELATED_INSTANCES,
        VR::IS,
        Count,
        "patient_instances",
        None,
        "CAST(SUM(t.num_instances) AS BIGINT)",
    ),
    attr(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        Uid,
        Study,
        "study_uid",
        "s.study_uid",
    ),
    attr(
        tags::STUDY_DATE,
        VR::DA,
        Date,
        Study,
        "study_date",
        "s.study_date",
    ),
    attr(
        tags::STUDY_TIME,
        VR::TM,
        Time,
        Study,
        "study_time",
        "s.study_time",
    ),
    attr(
        tags::ACCESSION_NUMBER,
        VR::SH,
        Text,
        Study,
        "accession_number",
        "s.accession_number",
    ),
    attr(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        Text,
        Study,
        "study_description",
        "s.study_description",
    ),
    attr(
        tags::MODALITIES_IN_STUDY,
        VR::CS,
        Modalities,
        Study,
        "modalities",
        "s.modalities",
    ),
    attr(
        tags::NUMBER_OF_STUDY_RELATED_SERIES,
        VR::IS,
        Count,
        Study,
        "study_series",
        "s.num_series",
    ),
    attr(
        tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
        VR::IS,
        Count,
        Study,
        "study_instances",
        "s.num_instances",
    ),
    attr(
        tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        Sealed,
        Study,
        "sealed_identity",
        "p.sealed_identity",
    ),
    attr(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        Uid,
        Series,
        "series_uid",
        "r.series_uid",
    ),
    attr(
        tags::MODALITY,
        VR::CS,
        Text,
        Series,
        "modality",
        "r.modality",
    ),
    attr(
        tags::SERIES_NUMBER,
        VR::IS,
        Int,
        Series,
        "series_number",
        "r.series_number",
    ),
    attr(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        Text,
        Series,
        "series_description",
        "r.series_description",
    ),
    attr(
        tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
        VR::IS,
        Count,
        Series,
        "series_instances",
        "r.num_instances",
    ),
    attr(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        Uid,
        Image,
        "sop_instance_uid",
        "i.sop_instance_uid",
    ),
    attr(
        tags::SOP_CLASS_UID,
        VR::UI,
        Uid,
        Image,
        "sop_class_uid",
        "i.sop_class_uid",
    ),
    attr(
        tags::INSTANCE_NUMBER,
        VR::IS,
        Int,
        Image,
        "instance_number",
        "i.instance_number",
    ),
    attr(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        Int,
        Image,
        "number_of_frames",
        "i.number_of_frames",
    ),
    attr(
        tags::AVAILABLE_TRANSFER_SYNTAX_UID,
        VR::UI,
        Uid,
        Image,
        "transfer_syntax",
        "i.transfer_syntax",
    ),
];

/// The standard key with this tag.
pub(crate) fn lookup(tag: Tag) -> Option<&'static Attr> {
    ATTRS.iter().find(|a| a.tag == tag)
}

/// The unique key of a level (PS3.4 C.6.1.1 / C.6.2.1).
pub(crate) fn unique_key(level: Level) -> &'static Attr {
    let tag = match level {
        Level::Patient => tags::PATIENT_ID,
        Level::Study => tags::STUDY_INSTANCE_UID,
        Level::Series => tags::SERIES_INSTANCE_UID,
        Level::Image => tags::SOP_INSTANCE_UID,
    };
    lookup(tag).expect("every unique key is in the table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_unique_and_plain() {
        let mut seen = std::collections::BTreeSet::new();
        for a in ATTRS.iter().chain([&BLIND_INDEX, &NAME_TOKEN]) {
            assert!(seen.insert(a.alias), "alias {} twice", a.alias);
            assert!(a.alias.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn availability_follows_the_hierarchy() {
        let count = lookup(tags::NUMBER_OF_PATIENT_RELATED_STUDIES).unwrap();
        assert!(count.available(Level::Patient));
        assert!(!count.available(Level::Study));
        let date = lookup(tags::STUDY_DATE).unwrap();
        assert!(!date.available(Level::Patient));
        assert!(date.available(Level::Image));
        let sop = lookup(tags::SOP_INSTANCE_UID).unwrap();
        assert!(!sop.available(Level::Series));
        assert!(lookup(tags::PATIENT_NAME).unwrap().available(Level::Series));
    }
}
