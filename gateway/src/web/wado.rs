//! WADO-RS (PS3.18 10.4): a study, series or instance as stored
//! (`multipart/related; type="application/dicom"`, each part a Part-10 file), their
//! metadata (`application/dicom+json`, bulk data by reference), and the frames or
//! pixel data of an instance ([`frames`]).
//!
//! Transfer syntax: the stored one unless the `Accept` header names another (the
//! `transfer-syntax` parameter): then each instance is converted with
//! [`dimse::transcode`] where it can be, and the request is answered 406 when one
//! cannot. A single instance may also be asked for as a bare `application/dicom`
//! body. Every retrieval leaves a Begin Transferring audit event with its count.

pub mod frames;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dicom_core::header::Header as _;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use tracing::warn;

use super::accept::{self, MediaRange};
use super::auth::{WebRejection, WebUser};
use crate::blobs::{BlobKey, BlobStore};
use crate::domain::Uid;
use crate::http::error::ApiPath;
use crate::http::{ApiError, ApiState};
use crate::qr::{self, Level, Model, RetrieveTarget};

/// Binary values longer than this are left out of metadata, by Bulk Data URI.
const INLINE_BINARY_MAX: usize = 1024;

/// The instances a WADO-RS path names, in the caller's facility; 400 for a malformed
/// UID, 404 when nothing matches.
pub(crate) async fn targets(
    state: &ApiState,
    user: &WebUser,
    uids: &[&str],
) -> Result<Vec<RetrieveTarget>, ApiError> {
    let level = match uids.len() {
        1 => Level::Study,
        2 => Level::Series,
        _ => Level::Image,
    };
    let keys = [
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::SOP_INSTANCE_UID,
    ];
    let mut object = InMemDicomObject::new_empty();
    object.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level.as_str()),
    ));
    for (tag, uid) in keys.iter().zip(uids) {
        Uid::parse(uid)
            .map_err(|_| ApiError::bad_request(format!("{uid:.64} is not a valid UID")))?;
        object.put(DataElement::new(*tag, VR::UI, PrimitiveValue::from(*uid)));
    }
    let query =
        qr::parse(Model::StudyRoot, &object).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let found = qr::instances_for_retrieve(&state.index, user.facility.id, &query)
        .await
        .map_err(|e| match e {
            qr::QueryError::Db(e) => ApiError::from(e),
            e => ApiError::bad_request(e.to_string()),
        })?;
    if found.is_empty() {
        return Err(ApiError::not_found(format!(
            "no such {} in this facility",
            match level {
                Level::Study | Level::Patient => "study",
                Level::Series => "series",
                Level::Image => "instance",
            }
        )));
    }
    Ok(found)
}

fn blobs(state: &ApiState) -> Result<BlobStore, ApiError> {
    Ok(super::web_state(state)?.ingest.blobs.clone())
}

fn path_of(blobs: &BlobStore, target: &RetrieveTarget) -> PathBuf {
    blobs.path_of(&BlobKey::from_index(target.blob_key.clone()))
}

/// How a retrieval is to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// multipart/related, each instance in `syntax` (`None`: as stored).
    Multipart(Option<String>),
    /// A bare application/dicom body (one instance).
    Single(Option<String>),
}

fn syntax_of(range: &MediaRange) -> Option<String> {
    range
        .param("transfer-syntax")
        .filter(|ts| *ts != "*")
        .map(str::to_string)
}

/// The first acceptable range every target can be converted for; 406 otherwise.
fn choose(
    ranges: &[MediaRange],
    single: bool,
    targets: &[RetrieveTarget],
) -> Result<Wanted, ApiError> {
    let convertible = |ts: &Option<String>| match ts {
        None => true,
        Some(ts) => targets
            .iter()
            .all(|t| dimse::transcode::can_transcode(&t.transfer_syntax, ts)),
    };
    let mut refused = None;
    for range in ranges {
        let wanted = match range.essence.as_str() {
            "*/*" | "multipart/*" => Wanted::Multipart(None),
            "multipart/related" => match range.part_type().as_deref() {
                None | Some("application/dicom" | "application/*" | "*/*") => {
                    Wanted::Multipart(syntax_of(range))
                }
                _ => continue,
            },
            "application/dicom" if single => Wanted::Single(syntax_of(range)),
            "application/*" if single => Wanted::Single(None),
            _ => continue,
        };
        let ts = match &wanted {
            Wanted::Multipart(ts) | Wanted::Single(ts) => ts,
        };
        if convertible(ts) {
            return Ok(wanted);
        }
        refused = ts.clone();
    }
    Err(ApiError::not_acceptable(match refused {
        Some(ts) => format!("the instances cannot be converted to transfer syntax {ts:.64}"),
        None => "acceptable here: multipart/related; type=\"application/dicom\" (and application/dicom for one instance)".to_string(),
    }))
}

/// The Part-10 bytes of `target` in `syntax` (converted off the async threads).
async fn converted(
    path: PathBuf,
    target: RetrieveTarget,
    syntax: String,
) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        let meta = dimse::part10::parse_meta(&bytes).map_err(|e| e.to_string())?;
        let data = bytes.get(meta.dataset_offset..).unwrap_or_default();
        let out = dimse::transcode::transcode(data, &target.transfer_syntax, &syntax)
            .map_err(|e| e.to_string())?;
        let mut file = dimse::part10::encode_meta(
            &target.sop_class_uid,
            &target.sop_instance_uid,
            &syntax,
            "PACS-GATEWAY",
        );
        file.extend_from_slice(&out);
        Ok(file)
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn retrieve(
    state: &ApiState,
    user: &WebUser,
    uids: &[&str],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let blobs = blobs(state)?;
    let targets = targets(state, user, uids).await?;
    let wanted = choose(&accept::parse(headers), uids.len() == 3, &targets)?;
    let what = format!("WADO-RS retrieve of {} instance(s)", targets.len());
    super::audit_transfer(state, user, what, targets.len()).await;
    if let Wanted::Single(syntax) = wanted {
        let target = targets
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("no such instance"))?;
        let path = path_of(&blobs, &target);
        let (body, ts) = match syntax {
            Some(ts) if ts != target.transfer_syntax => {
                let body = converted(path, target, ts.clone())
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
                (body, ts)
            }
            _ => {
                let body = tokio::fs::read(&path)
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
                (body, target.transfer_syntax)
            }
        };
        let mut response = (StatusCode::OK, body).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("application/dicom; transfer-syntax={ts}")) {
            response.headers_mut().insert(CONTENT_TYPE, v);
        }
        return Ok(response);
    }
    let Wanted::Multipart(syntax) = wanted else {
        unreachable!("single answered above")
    };
    let (mut parts, response) = super::multipart::response("application/dicom");
    tokio::spawn(async move {
        for target in targets {
            let path = path_of(&blobs, &target);
            let ts = syntax
                .clone()
                .unwrap_or_else(|| target.transfer_syntax.clone());
            let content_type = format!("application/dicom; transfer-syntax={ts}");
            let headers = [("Content-Type", content_type.as_str())];
            let sent = if ts == target.transfer_syntax {
                match tokio::fs::File::open(&path).await {
                    Ok(file) => parts.part_from_file(&headers, Bytes::new(), file).await,
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "stored instance cannot be read");
                        continue;
                    }
                }
            } else {
                match converted(path.clone(), target, ts.clone()).await {
                    Ok(bytes) => parts.part(&headers, Bytes::from(bytes)).await,
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "stored instance cannot be converted");
                        continue;
                    }
                }
            };
            if !sent {
                return; // the client has gone
            }
        }
        parts.finish().await;
    });
    Ok(response)
}

/// `GET /dicom-web/studies/{study}`.
pub async fn study(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath(study): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, WebRejection> {
    Ok(retrieve(&state, &user, &[&study], &headers).await?)
}

/// `GET /dicom-web/studies/{study}/series/{series}`.
pub async fn series(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebRejection> {
    Ok(retrieve(&state, &user, &[&study, &series], &headers).await?)
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}`.
pub async fn instance(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series, instance)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebRejection> {
    Ok(retrieve(&state, &user, &[&study, &series, &instance], &headers).await?)
}

/// The metadata of one stored instance: its data set up to the Pixel Data, binary
/// values over [`INLINE_BINARY_MAX`] bytes and the Pixel Data by Bulk Data URI.
/// Attributes after the Pixel Data (trailing padding, signatures) are not read.
fn metadata_of(path: &std::path::Path, url: &str) -> Result<serde_json::Value, String> {
    let object = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| e.to_string())?;
    let mut object: InMemDicomObject = object.into_inner();
    let mut bulk: Vec<(Tag, VR)> = Vec::new();
    for element in object.iter() {
        let binary = matches!(
            element.vr(),
            VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN
        );
        if binary
            && element
                .value()
                .primitive()
                .is_some_and(|p| p.calculate_byte_len() > INLINE_BINARY_MAX)
        {
            bulk.push((element.tag(), element.vr()));
        }
    }
    for (tag, _) in &bulk {
        object.remove_element(*tag);
    }
    let has_pixels = object.get(tags::ROWS).is_some() && object.get(tags::COLUMNS).is_some();
    let mut value = super::qido::to_json(std::slice::from_ref(&object)).map_err(|e| e.message)?;
    let entry = value
        .get_mut(0)
        .and_then(|v| v.as_object_mut())
        .ok_or("no JSON object")?;
    let mut add = |tag: Tag, vr: VR| {
        let key = format!("{:04X}{:04X}", tag.group(), tag.element());
        entry.insert(
            key.clone(),
            serde_json::json!({"vr": vr.to_string(), "BulkDataURI": format!("{url}/bulk/{key}")}),
        );
    };
    for (tag, vr) in bulk {
        add(tag, vr);
    }
    if has_pixels {
        add(tags::PIXEL_DATA, VR::OW);
    }
    Ok(value.get(0).cloned().unwrap_or_default())
}

async fn metadata(
    state: &ApiState,
    user: &WebUser,
    uids: &[&str],
    root: String,
) -> Result<Response, ApiError> {
    let blobs = blobs(state)?;
    let targets = targets(state, user, uids).await?;
    let what = format!("WADO-RS metadata of {} instance(s)", targets.len());
    super::audit_transfer(state, user, what, targets.len()).await;
    let (tx, mut response) = super::multipart::streamed();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    let root = Arc::new(root);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from_static(b"["))).await.is_err() {
            return;
        }
        let mut first = true;
        for target in targets {
            let path = path_of(&blobs, &target);
            let url = format!(
                "{root}/studies/{}/series/{}/instances/{}",
                target.study_uid, target.series_uid, target.sop_instance_uid
            );
            let item = tokio::task::spawn_blocking(move || metadata_of(&path, &url)).await;
            let json = match item {
                Ok(Ok(json)) => json,
                Ok(Err(e)) => {
                    warn!(error = %e, "stored instance cannot be read for metadata");
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "metadata task failed");
                    continue;
                }
            };
            let mut text = if first {
                String::new()
            } else {
                ",".to_string()
            };
            first = false;
            text.push_str(&json.to_string());
            if tx.send(Ok(Bytes::from(text))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(Bytes::from_static(b"]"))).await;
    });
    Ok(response)
}

/// `GET /dicom-web/studies/{study}/metadata`.
pub async fn study_metadata(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath(study): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    Ok(metadata(&state, &user, &[&study], root).await?)
}

/// `GET /dicom-web/studies/{study}/series/{series}/metadata`.
pub async fn series_metadata(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series)): ApiPath<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    Ok(metadata(&state, &user, &[&study, &series], root).await?)
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata`.
pub async fn instance_metadata(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series, instance)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebRejection> {
    let root = super::service_root(&headers, &uri);
    Ok(metadata(&state, &user, &[&study, &series, &instance], root).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::ACCEPT;

    fn target(ts: &str) -> RetrieveTarget {
        RetrieveTarget {
            study_uid: "1.2".into(),
            series_uid: "1.2.3".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3.4".into(),
            transfer_syntax: ts.into(),
            blob_key: "k".into(),
            size_bytes: 1,
        }
    }

    fn wanted(accept: &str, single: bool, ts: &str) -> Result<Wanted, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
        choose(&accept::parse(&headers), single, &[target(ts)])
    }

    #[test]
    fn stored_syntax_unless_asked() {
        let le = "1.2.840.10008.1.2.1";
        assert_eq!(wanted("*/*", false, le).unwrap(), Wanted::Multipart(None));
        assert_eq!(
            wanted(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
                false,
                le
            )
            .unwrap(),
            Wanted::Multipart(None)
        );
        assert_eq!(
            wanted(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2",
                false,
                le
            )
            .unwrap(),
            Wanted::Multipart(Some("1.2.840.10008.1.2".into()))
        );
        assert_eq!(
            wanted("application/dicom", true, le).unwrap(),
            Wanted::Single(None)
        );
    }

    #[test]
    fn unconvertible_or_unknown_is_406() {
        let rle = "1.2.840.10008.1.2.5";
        // RLE is decoded only: nothing converts to it from JPEG 2000 here.
        let e = wanted(
            "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.5",
            false,
            "1.2.840.10008.1.2.4.90",
        )
        .unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE);
        assert!(e.message.contains(rle));
        let e = wanted("text/html", false, "1.2.840.10008.1.2.1").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE);
        // A bare application/dicom is only for one instance.
        assert!(wanted("application/dicom", false, "1.2.840.10008.1.2.1").is_err());
    }
}
