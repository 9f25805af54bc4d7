//! QIDO-RS at the proxy: `/studies`, `/series`, `/instances` and their forms under a
//! study or series. The query string (attributes by keyword or tag, `includefield`,
//! `limit`, `offset`) becomes a C-FIND identifier in original values, searched like
//! the DIMSE viewer proxy's C-FIND (`clinician::search`: the same name-search rules,
//! UIDs mapped, blind-index false positives dropped, local-only studies included);
//! each match, in original values, carries its Retrieve URL at the proxy.
//! `fuzzymatching` is not supported (literal matching), like the gateway's.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dicom_core::dictionary::DataDictionary as _;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use tracing::info;

use super::auth::Caller;
use super::{WebError, WebProxy, json};
use crate::clinician::search;
use crate::clinician::translate::{Level, find, text};

/// Largest `offset` accepted.
const MAX_OFFSET: usize = 100_000;

/// Default attributes of a study match (PS3.18 Table 10.6.3-3).
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
struct Search {
    filters: Vec<(Tag, VR, String)>,
    include: Vec<(Tag, VR)>,
    limit: Option<usize>,
    offset: usize,
}

/// The tag and VR of a QIDO attribute name: a standard keyword or eight hex digits.
fn attribute(name: &str) -> Result<(Tag, VR), WebError> {
    let dictionary = dicom_dictionary_std::StandardDataDictionary;
    let bad = |why: &str| WebError::bad_request(format!("{name}: {why}"));
    if name.contains('.') {
        return Err(bad(
            "matching on attributes inside sequences is not supported",
        ));
    }
    let tag = if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let n = u32::from_str_radix(name, 16).map_err(|_| bad("not a tag"))?;
        Tag((n >> 16) as u16, (n & 0xFFFF) as u16)
    } else {
        dictionary
            .by_name(name)
            .map(|e| e.tag.inner())
            .ok_or_else(|| bad("not an attribute keyword or tag"))?
    };
    if tag.group() % 2 == 1 {
        return Err(bad("private attributes are not searchable here"));
    }
    let vr = dictionary
        .by_tag(tag)
        .and_then(|e| e.vr.exact())
        .unwrap_or(VR::LO);
    Ok((tag, vr))
}

fn parse_query(query: &str) -> Result<Search, WebError> {
    let mut search = Search::default();
    let number = |value: &str, what: &str| {
        value
            .parse::<usize>()
            .map_err(|_| WebError::bad_request(format!("{what} must be a non-negative integer")))
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "limit" => search.limit = Some(number(&value, "limit")?),
            "offset" => {
                search.offset = number(&value, "offset")?;
                if search.offset > MAX_OFFSET {
                    return Err(WebError::bad_request(format!(
                        "offset is at most {MAX_OFFSET}"
                    )));
                }
            }
            "fuzzymatching" => {}
            "includefield" => {
                for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if field != "all" {
                        search.include.push(attribute(field)?);
                    }
                }
            }
            name => {
                let (tag, vr) = attribute(name)?;
                if vr == VR::SQ {
                    return Err(WebError::bad_request(format!(
                        "{name}: matching on sequences is not supported"
                    )));
                }
                if search.filters.iter().any(|(t, _, _)| *t == tag) {
                    return Err(WebError::bad_request(format!("{name} is given twice")));
                }
                search.filters.push((tag, vr, value.into_owned()));
            }
        }
    }
    Ok(search)
}

fn dictionary_vr(tag: Tag) -> VR {
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .and_then(|e| e.vr.exact())
        .unwrap_or(VR::LO)
}

/// The Study Root C-FIND identifier (original values) of a search at `level` below
/// `parents`.
fn identifier(level: Level, parents: &[(Tag, &str)], search: &Search) -> InMemDicomObject {
    let mut object = InMemDicomObject::new_empty();
    object.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level.as_str()),
    ));
    let mut defaults: Vec<Tag> = vec![tags::STUDY_INSTANCE_UID];
    defaults.extend_from_slice(STUDY_DEFAULTS);
    if level >= Level::Series {
        defaults.extend_from_slice(SERIES_DEFAULTS);
    }
    if level >= Level::Image {
        defaults.extend_from_slice(INSTANCE_DEFAULTS);
    }
    let empty = |tag, vr| DataElement::new(tag, vr, PrimitiveValue::Empty);
    for tag in defaults {
        object.put(empty(tag, dictionary_vr(tag)));
    }
    for (tag, vr) in &search.include {
        if *vr != VR::SQ {
            object.put(empty(*tag, *vr));
        }
    }
    for (tag, vr, value) in &search.filters {
        object.put(DataElement::new(
            *tag,
            *vr,
            PrimitiveValue::from(value.as_str()),
        ));
    }
    for (tag, value) in parents {
        object.put(DataElement::new(*tag, VR::UI, PrimitiveValue::from(*value)));
    }
    object
}

/// `SCHEME://HOST:PORT/dicom-web` (`http` or `https`), from the request's `Host`
/// (the listener's port when it names none).
pub(super) fn root(scheme: &str, headers: &HeaderMap, port: Option<u16>) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !host.ends_with(']');
    match (has_port, port) {
        (false, Some(port)) => format!("{scheme}://{host}:{port}/dicom-web"),
        _ => format!("{scheme}://{host}/dicom-web"),
    }
}

/// The Retrieve URL of a match at `level`.
fn retrieve_url(root: &str, level: Level, object: &InMemDicomObject) -> String {
    let mut url = format!("{root}/studies/{}", text(object, tags::STUDY_INSTANCE_UID));
    if level >= Level::Series {
        url.push_str("/series/");
        url.push_str(&text(object, tags::SERIES_INSTANCE_UID));
    }
    if level >= Level::Image {
        url.push_str("/instances/");
        url.push_str(&text(object, tags::SOP_INSTANCE_UID));
    }
    url
}

/// The rows (original values) matching `request`.
async fn search_rows(
    proxy: &WebProxy,
    caller: &Caller,
    request: &InMemDicomObject,
) -> Result<Vec<InMemDicomObject>, WebError> {
    search::rows(&proxy.config, &proxy.ring, &caller.0, request, false)
        .await
        .map(|(_, rows)| rows)
        .map_err(|r| match r.status {
            dimse::Status::UNABLE_TO_PROCESS => WebError::new(StatusCode::BAD_GATEWAY, r.comment),
            _ => WebError::bad_request(r.comment),
        })
}

/// Runs a search at `level` below `parents` and answers it.
async fn answer(
    proxy: &WebProxy,
    caller: &Caller,
    headers: &HeaderMap,
    level: Level,
    parents: &[(Tag, &str)],
    query: Option<String>,
) -> Result<Response, WebError> {
    let search = parse_query(query.as_deref().unwrap_or_default())?;
    let request = identifier(level, parents, &search);
    let rows = match level == Level::Image && text(&request, tags::SERIES_INSTANCE_UID).is_empty() {
        // The gateway's C-FIND is hierarchical: instances are asked series by series.
        true => {
            let series = identifier(Level::Series, parents, &search);
            let mut rows = Vec::new();
            for found in search_rows(proxy, caller, &series).await? {
                let uid = text(&found, tags::SERIES_INSTANCE_UID);
                let mut request = request.clone();
                request.put(DataElement::new(
                    tags::SERIES_INSTANCE_UID,
                    VR::UI,
                    PrimitiveValue::from(uid),
                ));
                rows.extend(search_rows(proxy, caller, &request).await?);
            }
            rows
        }
        false => search_rows(proxy, caller, &request).await?,
    };
    let root = root(proxy.scheme(), headers, proxy.port.get().copied());
    let mut matches: Vec<InMemDicomObject> = rows
        .iter()
        .skip(search.offset)
        .take(search.limit.unwrap_or(usize::MAX))
        .map(|row| {
            let mut out = find::response(&request, row, level);
            out.remove_element(tags::QUERY_RETRIEVE_LEVEL);
            out.put(DataElement::new(
                tags::RETRIEVE_URL,
                VR::UR,
                PrimitiveValue::from(retrieve_url(&root, level, row)),
            ));
            out
        })
        .collect();
    matches.sort_by_key(|m| {
        (
            text(m, tags::STUDY_INSTANCE_UID),
            text(m, tags::SERIES_INSTANCE_UID),
            text(m, tags::SOP_INSTANCE_UID),
        )
    });
    info!(
        level = level.as_str(),
        matches = matches.len(),
        "DICOMweb proxy: QIDO-RS answered"
    );
    json::answer(&matches)
}

type Proxy = State<Arc<WebProxy>>;

/// `GET /studies`
pub(super) async fn studies(
    State(proxy): Proxy,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    answer(&proxy, &caller, &headers, Level::Study, &[], query).await
}

/// `GET /series`
pub(super) async fn all_series(
    State(proxy): Proxy,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    answer(&proxy, &caller, &headers, Level::Series, &[], query).await
}

/// `GET /instances`
pub(super) async fn all_instances(
    State(proxy): Proxy,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    answer(&proxy, &caller, &headers, Level::Image, &[], query).await
}

/// `GET /studies/{study}/series`
pub(super) async fn series(
    State(proxy): Proxy,
    caller: Caller,
    headers: HeaderMap,
    Path(study): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let parents = [(tags::STUDY_INSTANCE_UID, study.as_str())];
    answer(&proxy, &caller, &headers, Level::Series, &parents, query).await
}

/// `GET /studies/{study}/instances`
pub(super) async fn study_instances(
    State(proxy): Proxy,
    caller: Caller,
    headers: HeaderMap,
    Path(study): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let parents = [(tags::STUDY_INSTANCE_UID, study.as_str())];
    answer(&proxy, &caller, &headers, Level::Image, &parents, query).await
}

/// `GET /studies/{study}/series/{series}/instances`
pub(super) async fn instances(
    State(proxy): Proxy,
    caller: Caller,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let parents = [
        (tags::STUDY_INSTANCE_UID, study.as_str()),
        (tags::SERIES_INSTANCE_UID, series.as_str()),
    ];
    answer(&proxy, &caller, &headers, Level::Image, &parents, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_original_value_identifiers() {
        let search = parse_query(
            "PatientName=M%C3%BCller*&00080060=CT&includefield=StudyDescription,all&limit=5",
        )
        .unwrap();
        assert_eq!(search.limit, Some(5));
        let id = identifier(
            Level::Series,
            &[(tags::STUDY_INSTANCE_UID, "1.2.3")],
            &search,
        );
        assert_eq!(text(&id, tags::QUERY_RETRIEVE_LEVEL), "SERIES");
        assert_eq!(text(&id, tags::PATIENT_NAME), "Müller*");
        assert_eq!(text(&id, tags::MODALITY), "CT");
        assert_eq!(text(&id, tags::STUDY_INSTANCE_UID), "1.2.3");
        assert!(id.get(tags::STUDY_DESCRIPTION).is_some());
        assert!(id.get(tags::SERIES_NUMBER).is_some());
        assert!(id.get(tags::SOP_INSTANCE_UID).is_none());
        assert!(parse_query("NoSuchKeyword=1").is_err());
        assert!(parse_query("limit=-1").is_err());
        assert!(parse_query("PatientID=a&00100020=b").is_err());
        assert!(parse_query("00131010=x").is_err());
    }

    #[test]
    fn retrieve_urls_point_at_the_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::HOST, "pc.local:8081".parse().unwrap());
        assert_eq!(
            root("http", &headers, Some(9)),
            "http://pc.local:8081/dicom-web"
        );
        headers.insert(axum::http::header::HOST, "[::1]".parse().unwrap());
        assert_eq!(
            root("https", &headers, Some(8081)),
            "https://[::1]:8081/dicom-web"
        );
        headers.insert(axum::http::header::HOST, "evil/x?".parse().unwrap());
        assert_eq!(
            root("http", &headers, Some(8081)),
            "http://127.0.0.1:8081/dicom-web"
        );
    }
}
