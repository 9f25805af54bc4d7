//! Query/retrieve against the index: parses a C-FIND / C-GET / C-MOVE identifier into a
//! [`Query`], matches it with SQL (PS3.4 C.2.2.2) and builds the response identifiers,
//! or lists the stored instances a retrieve must send.
//!
//! It owns the matching rules, the attribute-to-column map and the response shape. It
//! does no DIMSE (the SCP in `dimse`/`scp` decodes identifiers, sends the responses,
//! handles C-CANCEL by dropping the future and chooses the statuses) and it never opens
//! a blob: everything comes from the index rows.
//!
//! Every statement is scoped to one facility (`facility_id = $1` on every table it
//! touches) and binds every value taken from an identifier, LIKE/GLOB patterns
//! included; only column names from the static table in `keys` and placeholder numbers
//! are ever written into SQL text.
//!
//! # Matching
//!
//! | key kind | single value | wildcard `*` `?` | range `A-B` `A-` `-B` | list `a\b` |
//! |---|---|---|---|---|
//! | PN (Patient Name) | `lower(col) = lower(v)` | `lower(col) LIKE lower(p)` | no | any of |
//! | LO, SH, CS (IDs, descriptions, Modality, ModalitiesInStudy) | `col = v` | case-sensitive | no | any of |
//! | UI (Study/Series/SOP Instance UID, SOP Class UID) | `col = v` | no | no | `col IN (...)` |
//! | DA (Study Date), TM (Study Time) | `col = v` | no | yes | no |
//! | IS (Series/Instance Number, Number of Frames) | integer `=` | no | no | no |
//!
//! Case: Patient Name matches case-insensitively (PS3.4 C.2.2.2.1 allows it for PN), by
//! applying the database's `lower()` to both sides, so an exact-case value always
//! matches; `lower()` folds ASCII on SQLite and every letter on PostgreSQL, so only
//! non-ASCII case variants of a name can differ between the two backends. Every other
//! VR is case-sensitive on both backends: PostgreSQL's `LIKE` already is, and on SQLite
//! (whose `LIKE` ignores ASCII case) wildcards become a `GLOB` pattern instead.
//! A value made only of `*` is universal matching (it also matches absent values).
//! ModalitiesInStudy matches a study having any of the listed modalities (via
//! `study_modalities`). Sequence keys are return keys only (the sealed identity); a
//! sequence carrying matching values is ignored and reported.
//!
//! The name blind index travels as the private key (gggg=0013, creator
//! "PACS GATEWAY 1", element xx10) and matches `studies.name_blind_index` exactly.
//!
//! Keys the index cannot match (unknown attributes, lower-level keys, count keys with a
//! value) are ignored for matching and listed by [`Query::unsupported_keys`], so that the
//! SCP can answer 0xFF01; they come back empty in every response.

mod keys;
mod matching;
mod query;
mod response;
mod sql;

use std::fmt;

use dicom_object::InMemDicomObject;
use sqlx::Row;

use crate::db::{DbError, Index};
use crate::domain::FacilityId;

pub use query::{Query, parse, parse_relational};

/// Every attribute the index can return at `level` (tag and VR), in table order: what
/// QIDO-RS `includefield=all` adds. Private keys (the name blind index and tokens) are
/// matching keys only and not listed.
pub fn level_keys(level: Level) -> Vec<(dicom_core::Tag, dicom_core::VR)> {
    keys::ATTRS
        .iter()
        .filter(|a| a.available(level) && !matches!(a.kind, keys::Kind::NameToken))
        .filter(|a| a.tag.group() != keys::PRIVATE_GROUP)
        .map(|a| (a.tag, a.vr))
        .collect()
}

/// Query/retrieve information model, from the SOP class of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// Patient Root (PATIENT, STUDY, SERIES, IMAGE).
    PatientRoot,
    /// Study Root (STUDY, SERIES, IMAGE).
    StudyRoot,
}

impl Model {
    /// The model of a Q/R SOP class (FIND, MOVE or GET), or `None` for any other UID.
    pub fn from_sop_class(uid: &str) -> Option<Model> {
        match uid.trim_end_matches(['\0', ' ']) {
            "1.2.840.10008.5.1.4.1.2.1.1"
            | "1.2.840.10008.5.1.4.1.2.1.2"
            | "1.2.840.10008.5.1.4.1.2.1.3" => Some(Model::PatientRoot),
            "1.2.840.10008.5.1.4.1.2.2.1"
            | "1.2.840.10008.5.1.4.1.2.2.2"
            | "1.2.840.10008.5.1.4.1.2.2.3" => Some(Model::StudyRoot),
            _ => None,
        }
    }

    /// Whether `level` exists in this model.
    pub fn supports(self, level: Level) -> bool {
        self == Model::PatientRoot || level != Level::Patient
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Model::PatientRoot => "Patient Root",
            Model::StudyRoot => "Study Root",
        })
    }
}

/// Query/Retrieve Level (0008,0052), from the top of the hierarchy down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `PATIENT`.
    Patient,
    /// `STUDY`.
    Study,
    /// `SERIES`.
    Series,
    /// `IMAGE`.
    Image,
}

impl Level {
    /// Parses the code string (`PATIENT`, `STUDY`, `SERIES`, `IMAGE`; padding ignored).
    pub fn parse(value: &str) -> Option<Level> {
        match value.trim_matches([' ', '\0']) {
            "PATIENT" => Some(Level::Patient),
            "STUDY" => Some(Level::Study),
            "SERIES" => Some(Level::Series),
            "IMAGE" => Some(Level::Image),
            _ => None,
        }
    }

    /// The code string.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "PATIENT",
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a query cannot run. Messages name the attribute and the rule, never a patient
/// name; they are short enough for an Error Comment once the SCP trims them to 64
/// characters.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No (or an empty) Query/Retrieve Level.
    #[error("the identifier has no Query/Retrieve Level (0008,0052)")]
    MissingLevel,
    /// A level the model does not have (PATIENT in Study Root) or an unknown code.
    #[error("level {level} is not part of the {model} model")]
    UnsupportedLevel {
        /// The model of the request.
        model: Model,
        /// The level asked for.
        level: String,
    },
    /// A key the hierarchy requires is missing or not a plain value.
    #[error("{0}")]
    MissingKey(String),
    /// A malformed or absurd value.
    #[error("{0}")]
    Invalid(String),
    /// The index failed.
    #[error("cannot search the index: {0}")]
    Db(#[from] DbError),
}

impl QueryError {
    /// The DIMSE status an SCP should answer with: 0xA900 (identifier does not match
    /// SOP class) for a missing level or key, 0xC000 (unable to process) for a
    /// malformed value, 0xC001 for an index failure.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::MissingLevel
            | QueryError::UnsupportedLevel { .. }
            | QueryError::MissingKey(_) => 0xA900,
            QueryError::Invalid(_) => 0xC000,
            QueryError::Db(_) => 0xC001,
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        QueryError::Db(DbError::Query(e))
    }
}

/// The matches of `query` in `facility`, at most `limit` of them, as response
/// identifiers: every key of the request (matched, universal or unknown; unknown ones
/// empty), the Query/Retrieve Level, and Specific Character Set `ISO_IR 192` whenever
/// a text value is returned or the request carried one. Values are UTF-8 strings as
/// indexed; the SCP encodes them with that character set.
///
/// Results come in a stable order (by UID within the parent), so a `limit` cuts
/// deterministically. One statement; dropping the future cancels it.
#[tracing::instrument(skip_all, fields(facility = %facility, level = %query.level()), err)]
pub async fn find(
    index: &Index,
    facility: FacilityId,
    query: &Query,
    limit: usize,
) -> Result<Vec<InMemDicomObject>, QueryError> {
    // At Study level a row is a study and one of its matching patients, the first
    // patient first: a study holding several patients answers once, with the first
    // that matched. When repeats cut a capped answer short, fetch more rows (up to 64
    // per study asked for) until `limit` studies or the end.
    let mut fetch = limit;
    let rows = loop {
        let statement = sql::find(query, facility, fetch, index.backend());
        let mut rows = statement.fetch_all(index).await?;
        let capped = rows.len() >= fetch;
        if query.level() != Level::Study {
            break rows;
        }
        let study_uid = |row: &sqlx::any::AnyRow| {
            row.try_get::<String, _>(keys::unique_key(Level::Study).alias)
                .ok()
        };
        rows.dedup_by(|later, earlier| study_uid(later) == study_uid(earlier));
        if !capped || rows.len() >= limit || fetch >= limit.saturating_mul(64) {
            rows.truncate(limit);
            break rows;
        }
        fetch = fetch.saturating_mul(4);
    };
    rows.iter()
        .map(|row| response::identifier(query, row).map_err(QueryError::from))
        .collect()
}

/// One stored instance a C-GET or C-MOVE must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrieveTarget {
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Transfer syntax of the stored bytes.
    pub transfer_syntax: String,
    /// Blob key of the stored data set.
    pub blob_key: String,
    /// Size of the stored data set in bytes.
    pub size_bytes: i64,
}

/// The instances of `facility` a C-GET / C-MOVE identifier names, in study, series and
/// instance order.
///
/// Only the unique keys count (PS3.4 C.4.2.2.1): Patient ID at PATIENT level, Study
/// Instance UID at STUDY, Series Instance UID at SERIES, SOP Instance UID at IMAGE
/// (single value or UID list), plus the parent keys [`parse`] already required; any
/// other key is ignored. An identifier without the unique key of its level is refused
/// with [`QueryError::MissingKey`].
#[tracing::instrument(skip_all, fields(facility = %facility, level = %query.level()), err)]
pub async fn instances_for_retrieve(
    index: &Index,
    facility: FacilityId,
    query: &Query,
) -> Result<Vec<RetrieveTarget>, QueryError> {
    query.require_unique_key()?;
    let statement = sql::retrieve(query, facility, index.backend());
    let rows = statement.fetch_all(index).await?;
    let target = |r: &sqlx::any::AnyRow| -> Result<RetrieveTarget, sqlx::Error> {
        Ok(RetrieveTarget {
            study_uid: r.try_get(0)?,
            series_uid: r.try_get(1)?,
            sop_class_uid: r.try_get(2)?,
            sop_instance_uid: r.try_get(3)?,
            transfer_syntax: r.try_get(4)?,
            blob_key: r.try_get(5)?,
            size_bytes: r.try_get(6)?,
        })
    };
    Ok(rows.iter().map(target).collect::<Result<_, _>>()?)
}
