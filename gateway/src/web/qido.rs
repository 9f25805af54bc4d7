//! QIDO-RS (PS3.18 10.6): `/studies`, `/series`, `/instances` and their forms under a
//! study or series, answered from the index by the same matching engine as C-FIND
//! ([`crate::qr`]), in the caller's facility only.
//!
//! Query parameters: attributes by keyword (`PatientID=PSN-1`) or tag (`00100020`),
//! with C-FIND's matching rules (wildcards, ranges, UID lists); `includefield`
//! (repeatable, comma-separated, or `all`); `limit` and `offset`; `fuzzymatching`
//! (not supported: literal matching, said in a `Warning` header). Attributes the index
//! cannot match are ignored for matching and named in a `Warning` header, as C-FIND
//! answers 0xFF01. Each match carries the level's default attributes (PS3.18 Table
//! 10.6.3-3 and following, where the index holds them), the ones asked for, and its
//! Retrieve URL. The answer is `application/dicom+json`, `[]` when nothing matches.

use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_TYPE, WARNING};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dicom_core::dictionary::DataDictionary as _;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use tracing::warn;

use super::auth::{WebRejection, WebUser};
use crate::audit::{EventKind, Outcome};
use crate::http::error::ApiPath;
use crate::http::{ApiError, ApiState};
use crate::qr::{self, Level, Model, QueryError};

/// Most matches one search returns (the same bound as C-FIND).
pub const MAX_RESULTS: usize = 10_000;

/// Largest `offset` accepted.
pub const MAX_OFFSET: usize = 100_000;

/// Private creator of the product's block, for the name blind index key.
const PRIVATE_CREATOR: &str = dimse::scan::PRODUCT_PRIVATE_CREATOR;

/// Default attributes of a study match (PS3.18 Table 10.6.3-3, those the index holds).
const STUDY_DEFAULTS: &[Tag] = &[
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::ACCESSION_NUMBER,
    tags::MODALITIES_IN_STUDY,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_ID,
    tags::STUDY_DESCRIPTION,
    tags::NUMBER_OF_STUDY_RELATED_SERIES,
    tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
];

/// Default attributes of a series match (PS3.18 Table 10.6.3-4).
const SERIES_DEFAULTS: &[Tag] = &[
    tags::MODALITY,
    tags::SERIES_DESCRIPTION,
    tags::SERIES_INSTANCE_UID,
    tags::SERIES_NUMBER,
    tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::PERFORMED_PROCEDURE_STEP_START_TIME,
];

/// Default attributes of an instance match (PS3.18 Table 10.6.3-5).
const INSTANCE_DEFAULTS: &[Tag] = &[
    tags::SOP_CLASS_UID,
    tags::SOP_INSTANCE_UID,
    tags::INSTANCE_NUMBER,
    tags::ROWS,
    tags::COLUMNS,
    tags::BITS_ALLOCATED,
    tags::NUMBER_OF_FRAMES,
];

/// A parsed QIDO-RS query string.
#[derive(Debug, Default)]
pub struct Search {
    /// Matching keys with their values (tag, VR, value).
    pub filters: Vec<(Tag, VR, String)>,
    /// `includefield` attributes.
    pub include: Vec<(Tag, VR)>,
    /// `includefield=all`.
    pub include_all: bool,
    /// `limit`.
    pub limit: Option<usize>,
    /// `offset`.
    pub offset: usize,
    /// `fuzzymatching=true` was asked for.
    pub fuzzy: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// The tag and VR of a QIDO attribute name: a keyword of the standard dictionary or
/// eight hex digits (the product's private keys in group 0013 as LO).
pub fn attribute(name: &str) -> Result<(Tag, VR), ApiError> {
    let dictionary = dicom_dictionary_std::StandardDataDictionary;
    if name.contains('.') {
        return Err(bad(format!(
            "{name}: matching on attributes inside sequences is not supported"
        )));
    }
    let tag = if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let n = u32::from_str_radix(name, 16).map_err(|_| bad(format!("{name}: not a tag")))?;
        Tag((n >> 16) as u16, (n & 0xFFFF) as u16)
    } else {
        dictionary
            .by_name(name)
            .map(|e| e.tag.inner())
            .ok_or_else(|| bad(format!("{name}: not an attribute keyword or tag")))?
    };
    let vr = if tag.group() % 2 == 1 {
        VR::LO
    } else {
        dictionary
            .by_tag(tag)
            .and_then(|e| e.vr.exact())
            .unwrap_or(VR::LO)
    };
    Ok((tag, vr))
}

/// Parses a query string.
pub fn parse_query(query: &str) -> Result<Search, ApiError> {
    let mut search = Search::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "limit" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| bad("limit must be a non-negative integer"))?;
                search.limit = Some(n);
            }
            "offset" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| bad("offset must be a non-negative integer"))?;
                if n > MAX_OFFSET {
                    return Err(bad(format!("offset is at most {MAX_OFFSET}")));
                }
                search.offset = n;
            }
            "fuzzymatching" => match value.as_ref() {
                "true" => search.fuzzy = true,
                "false" => {}
                _ => return Err(bad("fuzzymatching must be true or false")),
            },
            "includefield" => {
                for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if field == "all" {
                        search.include_all = true;
                    } else {
                        search.include.push(attribute(field)?);
                    }
                }
            }
            name => {
                let (tag, vr) = attribute(name)?;
                if search.filters.iter().any(|(t, _, _)| *t == tag) {
                    return Err(bad(format!("{name} is given twice")));
                }
                search.filters.push((tag, vr, value.into_owned()));
            }
        }
    }
    Ok(search)
}

fn empty(tag: Tag, vr: VR) -> DataElement<InMemDicomObject> {
    if vr == VR::SQ {
        DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty())
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}

fn dictionary_vr(tag: Tag) -> VR {
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .and_then(|e| e.vr.exact())
        .unwrap_or(VR::LO)
}

/// The C-FIND identifier of a search at `level` with `parents` (unique keys of the
/// levels above, from the path).
pub fn identifier(level: Level, parents: &[(Tag, &str)], search: &Search) -> InMemDicomObject {
    let mut object = InMemDicomObject::new_empty();
    object.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level.as_str()),
    ));
    let mut defaults: Vec<Tag> = Vec::new();
    for l in [Level::Study, Level::Series, Level::Image] {
        if l <= level {
            defaults.push(qr_unique(l));
        }
    }
    defaults.extend_from_slice(match level {
        Level::Study | Level::Patient => STUDY_DEFAULTS,
        Level::Series => SERIES_DEFAULTS,
        Level::Image => INSTANCE_DEFAULTS,
    });
    for tag in defaults {
        object.put(empty(tag, dictionary_vr(tag)));
    }
    if search.include_all {
        for (tag, vr) in qr::level_keys(level) {
            object.put(empty(tag, vr));
        }
    }
    for (tag, vr) in &search.include {
        object.put(empty(*tag, *vr));
    }
    let mut private = false;
    for (tag, vr, value) in &search.filters {
        private |= tag.group() == 0x0013;
        object.put(DataElement::new(
            *tag,
            *vr,
            PrimitiveValue::from(value.as_str()),
        ));
    }
    private |= search.include.iter().any(|(t, _)| t.group() == 0x0013);
    if private {
        object.put(DataElement::new(
            Tag(0x0013, 0x0010),
            VR::LO,
            PrimitiveValue::from(PRIVATE_CREATOR),
        ));
    }
    for (tag, value) in parents {
        object.put(DataElement::new(*tag, VR::UI, PrimitiveValue::from(*value)));
    }
    object
}

fn qr_unique(level: Level) -> Tag {
    match level {
        Level::Patient => tags::PATIENT_ID,
        Level::Study => tags::STUDY_INSTANCE_UID,
        Level::Series => tags::SERIES_INSTANCE_UID,
        Level::Image => tags::SOP_INSTANCE_UID,
    }
}

fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    object
        .get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .filter(|s| !s.is_empty())
}

/// The Retrieve URL of a match at `level`.
fn retrieve_url(root: &str, level: Level, object: &InMemDicomObject) -> Option<String> {
    let study = text(object, tags::STUDY_INSTANCE_UID)?;
    let mut url = format!("{root}/studies/{study}");
    if level >= Level::Series {
        url.push_str("/series/");
        url.push_str(&text(object, tags::SERIES_INSTANCE_UID)?);
    }
    if level >= Level::Image {
        url.push_str("/instances/");
        url.push_str(&text(object, tags::SOP_INSTANCE_UID)?);
    }
    Some(url)
}

/// DICOM JSON of `objects`, with IS and DS values as JSON numbers (PS3.18 F.2.3.1).
pub fn to_json(objects: &[InMemDicomObject]) -> Result<serde_json::Value, ApiError> {
    let mut value = dicom_json::to_value(objects).map_err(|e| ApiError::internal(&e))?;
    numbers(&mut value);
    Ok(value)
}

fn numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(numbers),
        serde_json::Value::Object(map) => {
            let numeric = matches!(map.get("vr").and_then(|v| v.as_str()), Some("IS" | "DS"));
            for (key, v) in map.iter_mut() {
                if numeric && key == "Value" {
                    if let serde_json::Value::Array(items) = v {
                        for item in items.iter_mut() {
                            if let Some(n) = item
                                .as_str()
                                .and_then(|s| s.trim().parse::<f64>().ok())
                                .and_then(|f| {
                                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                                        Some(serde_json::Value::from(f as i64))
                                    } else {
                                        serde_json::Number::from_f64(f).map(Into::into)
                                    }
                                })
                            {
                                *item = n;
                            }
                        }
                    }
                } else {
                    numbers(v);
                }
            }
        }
        _ => {}
    }
}

fn warning(text: &str) -> Option<HeaderValue> {
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| *c != '"')
        .take(300)
        .collect();
    HeaderValue::from_str(&format!("299 pacs-gateway \"{text}\"")).ok()
}

/// Runs a search at `level` below `parents` and answers it.
pub async fn search(
    state: &ApiState,
    user: &WebUser,
    level: Level,
    parents: &[(Tag, &str)],
    query: Option<&str>,
    root: &str,
) -> Result<Response, ApiError> {
    let search = parse_query(query.unwrap_or(""))?;
    let object = identifier(level, parents, &search);
    let hierarchical = match level {
        Level::Patient | Level::Study => true,
        Level::Series => !parents.is_empty(),
        Level::Image => parents.len() == 2,
    };
    let parsed = if hierarchical {
        qr::parse(Model::StudyRoot, &object)
    } else {
        qr::parse_relational(Model::StudyRoot, &object)
    };
    let what = format!("QIDO-RS {} search", level.as_str());
    let query = match parsed {
        Ok(q) => q,
        Err(e) => {
            super::audit(
                state,
                user,
                EventKind::Query,
                Outcome::MinorFailure,
                format!("{what}: refused"),
                0,
            )
            .await;
            return Err(bad(e.to_string()));
        }
    };
    let limit = search.limit.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
    let fetch = search.offset.saturating_add(limit).saturating_add(1);
    let found = match qr::find(&state.index, user.facility.id, &query, fetch).await {
        Ok(found) => found,
        Err(QueryError::Db(e)) => {
            warn!(error = %e, "QIDO-RS search failed");
            super::audit(
                state,
                user,
                EventKind::Query,
                Outcome::SeriousFailure,
                format!("{what}: failed"),
                0,
            )
            .await;
            return Err(ApiError::internal(&e));
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let more = found.len() > search.offset.saturating_add(limit);
    let mut matches: Vec<InMemDicomObject> =
        found.into_iter().skip(search.offset).take(limit).collect();
    for object in &mut matches {
        object.remove_element(tags::QUERY_RETRIEVE_LEVEL);
        if let Some(url) = retrieve_url(root, level, object) {
            object.put(DataElement::new(
                tags::RETRIEVE_URL,
                VR::UR,
                PrimitiveValue::from(url),
            ));
        }
    }
    super::audit(
        state,
        user,
        EventKind::Query,
        Outcome::Success,
        format!("{what}: success"),
        matches.len(),
    )
    .await;
    let body = to_json(&matches)?;
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    if search.fuzzy
        && let Some(v) = warning("fuzzymatching is not supported; literal matching was performed")
    {
        headers.append(WARNING, v);
    }
    if query.has_unsupported_keys() {
        let names: Vec<String> = query
            .unsupported_keys()
            .iter()
            .map(|t| format!("{:04X}{:04X}", t.group(), t.element()))
            .collect();
        if let Some(v) = warning(&format!(
            "these attributes were ignored for matching: {}",
            names.join(",")
        )) {
            headers.append(WARNING, v);
        }
    }
    if more
        && let Some(v) = warning(&format!(
            "more than {} results: use offset={} for the next ones",
            limit,
            search.offset + limit
        ))
    {
        headers.append(WARNING, v);
    }
    Ok(response)
}

/// `GET /dicom-web/studies`.
pub async fn studies(
    State(state): State<ApiState>,
    user: WebUser,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    Ok(search(&state, &user, Level::Study, &[], query.as_deref(), &root).await?)
}

/// `GET /dicom-web/series`.
pub async fn all_series(
    State(state): State<ApiState>,
    user: WebUser,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    Ok(search(&state, &user, Level::Series, &[], query.as_deref(), &root).await?)
}

/// `GET /dicom-web/instances`.
pub async fn all_instances(
    State(state): State<ApiState>,
    user: WebUser,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    Ok(search(&state, &user, Level::Image, &[], query.as_deref(), &root).await?)
}

/// `GET /dicom-web/studies/{study}/series`.
pub async fn study_series(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath(study): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    let parents = [(tags::STUDY_INSTANCE_UID, study.as_str())];
    Ok(search(
        &state,
        &user,
        Level::Series,
        &parents,
        query.as_deref(),
        &root,
    )
    .await?)
}

/// `GET /dicom-web/studies/{study}/instances`.
pub async fn study_instances(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath(study): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    let parents = [(tags::STUDY_INSTANCE_UID, study.as_str())];
    Ok(search(
        &state,
        &user,
        Level::Image,
        &parents,
        query.as_deref(),
        &root,
    )
    .await?)
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances`.
pub async fn series_instances(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    let parents = [
        (tags::STUDY_INSTANCE_UID, study.as_str()),
        (tags::SERIES_INSTANCE_UID, series.as_str()),
    ];
    Ok(search(
        &state,
        &user,
        Level::Image,
        &parents,
        query.as_deref(),
        &root,
    )
    .await?)
}

#[cfg(test)]
mod tests;
