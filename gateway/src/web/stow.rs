//! STOW-RS (PS3.18 10.5): `POST /dicom-web/studies[/{study}]` with a
//! `multipart/related; type="application/dicom"` body, each part a Part-10 file.
//!
//! Each part goes through the same ingest path as a C-STORE ([`IngestSink`]), into
//! the caller's facility: the same admission (de-identified and sealed only, unless
//! the facility accepts identified instances), quota, duplicate policy and durability
//! (success only once the blob and its index rows are durable). Parts stream from the
//! request body into the sink: no part is held whole in memory beyond the ingest
//! path's own bound. With a study in the path, an instance of another study is
//! refused (0xA900) before anything is written.
//!
//! The answer (`application/dicom+json`) lists stored instances in the Referenced SOP
//! Sequence (with their Retrieve URL, and a Warning Reason for a warning status) and
//! refused ones in the Failed SOP Sequence with the DIMSE status as Failure Reason;
//! the first refusal's comment is repeated in a `Warning` header. Status: 200 when
//! all were stored, 202 when some were, 409 when none was (400 for a body that is not
//! multipart at all).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, WARNING};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dimse::Status;
use dimse::command::{CStoreRq, Priority};
use dimse::scp::{DataSink as _, StoreOutcome};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::auth::{WebRejection, WebUser};
use crate::audit::{EventKind, Outcome};
use crate::http::error::ApiPath;
use crate::http::{ApiError, ApiState};
use crate::ingest::{Ingest, IngestSink};

/// Calling AE title recorded for instances stored over STOW-RS.
pub const STOW_AE: &str = "DICOMWEB";

/// Most bytes of a part read before its meta header must be complete.
const MAX_META: usize = 64 * 1024;

/// The outcome of one part.
#[derive(Debug)]
struct PartResult {
    sop_class: String,
    sop_instance: String,
    /// Where the stored instance is: its Retrieve URL.
    url: Option<String>,
    outcome: StoreOutcome,
}

/// `POST /dicom-web/studies`.
pub async fn store(
    State(state): State<ApiState>,
    user: WebUser,
    uri: Uri,
    request: Request,
) -> Result<Response, WebRejection> {
    let root = super::service_root(request.headers(), &uri);
    Ok(run(&state, &user, None, root, request).await?)
}

/// `POST /dicom-web/studies/{study}`.
pub async fn store_in_study(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath(study): ApiPath<String>,
    uri: Uri,
    request: Request,
) -> Result<Response, WebRejection> {
    crate::domain::Uid::parse(&study)
        .map_err(|_| ApiError::bad_request("the study in the path is not a valid UID"))?;
    let root = super::service_root(request.headers(), &uri);
    Ok(run(&state, &user, Some(study), root, request).await?)
}

fn boundary_of(headers: &HeaderMap) -> Result<String, ApiError> {
    let unsupported = || {
        ApiError::unsupported_media_type(
            "STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary",
        )
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::ACCEPT,
        HeaderValue::from_str(content_type).map_err(|_| unsupported())?,
    );
    let range = super::accept::parse(&headers)
        .into_iter()
        .next()
        .ok_or_else(unsupported)?;
    if range.essence != "multipart/related" {
        return Err(unsupported());
    }
    if range.part_type().is_some_and(|t| t != "application/dicom") {
        return Err(ApiError::unsupported_media_type(
            "only application/dicom parts are accepted (not the JSON/XML metadata form)",
        ));
    }
    range
        .param("boundary")
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .map(str::to_string)
        .ok_or_else(unsupported)
}

async fn run(
    state: &ApiState,
    user: &WebUser,
    study: Option<String>,
    root: String,
    request: Request,
) -> Result<Response, ApiError> {
    let ingest = super::web_state(state)?.ingest.clone();
    let boundary = boundary_of(request.headers())?;
    let stream = request.into_body().into_data_stream();
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut results: Vec<PartResult> = Vec::new();
    let mut broken: Option<String> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                broken = Some(format!("the multipart body is malformed: {e}"));
                break;
            }
        };
        let part_type = field
            .content_type()
            .map(|m| m.essence_str().to_ascii_lowercase());
        if part_type
            .as_deref()
            .is_some_and(|t| t != "application/dicom")
        {
            results.push(PartResult {
                sop_class: String::new(),
                sop_instance: String::new(),
                url: None,
                outcome: StoreOutcome::with(
                    Status::CannotUnderstand,
                    "part is not application/dicom",
                ),
            });
            continue;
        }
        match store_part(&ingest, user, study.as_deref(), field).await {
            Ok(mut result) => {
                if !is_failure(&result.outcome) {
                    result.url = retrieve_url(state, user, &root, &result.sop_instance).await;
                }
                results.push(result);
            }
            Err(reason) => {
                broken = Some(reason);
                break;
            }
        }
    }
    if results.is_empty() {
        let why = broken.unwrap_or_else(|| "the body holds no part".to_string());
        return Err(ApiError::bad_request(why));
    }
    let stored = results.iter().filter(|r| !is_failure(&r.outcome)).count();
    let detail = format!("STOW-RS: {stored} of {} instance(s) stored", results.len());
    info!(target: "audit", facility = %user.facility.name, user = %user.user.username, stored, refused = results.len() - stored, "STOW-RS");
    let outcome = match stored {
        0 => Outcome::SeriousFailure,
        n if n == results.len() => Outcome::Success,
        _ => Outcome::MinorFailure,
    };
    super::audit(
        state,
        user,
        EventKind::InstancesTransferred,
        outcome,
        detail,
        stored,
    )
    .await;
    Ok(answer(&results, study.as_deref(), &root, broken.as_deref()))
}

fn is_failure(outcome: &StoreOutcome) -> bool {
    !(outcome.status.is_success() || outcome.status.is_warning())
}

/// Streams one part into a new ingest sink. `Err` is a broken body (the rest cannot
/// be read); a refused instance is an `Ok` with its failure status.
async fn store_part(
    ingest: &Arc<Ingest>,
    user: &WebUser,
    study: Option<&str>,
    mut field: multer::Field<'static>,
) -> Result<PartResult, String> {
    let refused = |status: Status, comment: &str| PartResult {
        sop_class: String::new(),
        sop_instance: String::new(),
        url: None,
        outcome: StoreOutcome::with(status, comment),
    };
    let mut head: Vec<u8> = Vec::new();
    let meta = loop {
        match dimse::part10::parse_meta(&head) {
            Ok(meta) => break meta,
            Err(dimse::part10::MetaError::Truncated) if head.len() < MAX_META => {}
            Err(e) => {
                drain(&mut field).await?;
                return Ok(refused(Status::CannotUnderstand, &e.to_string()));
            }
        }
        match field.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => {
                return Ok(refused(
                    Status::CannotUnderstand,
                    "the part ends before its Part-10 meta header does",
                ));
            }
            Err(e) => return Err(format!("the multipart body is malformed: {e}")),
        }
    };
    let request = CStoreRq {
        message_id: 1,
        affected_sop_class_uid: meta.sop_class_uid.clone(),
        affected_sop_instance_uid: meta.sop_instance_uid.clone(),
        priority: Priority::Medium,
        move_originator_ae_title: None,
        move_originator_message_id: None,
    };
    let result = |outcome| PartResult {
        sop_class: meta.sop_class_uid.clone(),
        sop_instance: meta.sop_instance_uid.clone(),
        url: None,
        outcome,
    };
    let sink = IngestSink::begin(
        ingest.clone(),
        user.facility.clone(),
        STOW_AE,
        &request,
        &meta.transfer_syntax,
    )
    .await;
    let mut sink = match sink {
        Ok(sink) => match study {
            Some(study) => sink.expect_study(study),
            None => sink,
        },
        Err(outcome) => {
            drain(&mut field).await?;
            return Ok(result(outcome));
        }
    };
    let mut pending = head.split_off(meta.dataset_offset.min(head.len()));
    loop {
        if !pending.is_empty()
            && let Err(outcome) = sink.write(&pending).await
        {
            sink.discard().await;
            drain(&mut field).await?;
            return Ok(result(outcome));
        }
        match field.chunk().await {
            Ok(Some(chunk)) => pending = chunk.to_vec(),
            Ok(None) => break,
            Err(e) => {
                sink.discard().await;
                return Err(format!("the multipart body is malformed: {e}"));
            }
        }
    }
    let outcome = sink.finish().await;
    if is_failure(&outcome) {
        warn!(
            facility = %user.facility.name,
            status = format!("{:04X}", outcome.status.code()),
            comment = outcome.comment.as_deref().unwrap_or(""),
            "STOW-RS instance refused"
        );
    }
    Ok(result(outcome))
}

/// The Retrieve URL of a stored instance (from the index).
async fn retrieve_url(state: &ApiState, user: &WebUser, root: &str, sop: &str) -> Option<String> {
    let uid = crate::domain::Uid::parse(sop).ok()?;
    let stored = state
        .index
        .find_instance(user.facility.id, &uid)
        .await
        .ok()??;
    Some(format!(
        "{root}/studies/{}/series/{}/instances/{sop}",
        stored.study_uid, stored.series_uid
    ))
}

/// Reads and drops the rest of a part.
async fn drain(field: &mut multer::Field<'static>) -> Result<(), String> {
    loop {
        match field.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("the multipart body is malformed: {e}")),
        }
    }
}

fn ui(value: &str) -> Value {
    json!({"vr": "UI", "Value": [value]})
}

fn answer(
    results: &[PartResult],
    study: Option<&str>,
    root: &str,
    broken: Option<&str>,
) -> Response {
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        let mut item = serde_json::Map::new();
        item.insert("00081150".into(), ui(&r.sop_class));
        item.insert("00081155".into(), ui(&r.sop_instance));
        if is_failure(&r.outcome) {
            item.insert(
                "00081197".into(),
                json!({"vr": "US", "Value": [r.outcome.status.code()]}),
            );
            failed.push(Value::Object(item));
        } else {
            if r.outcome.status.is_warning() {
                item.insert(
                    "00081196".into(),
                    json!({"vr": "US", "Value": [r.outcome.status.code()]}),
                );
            }
            if let Some(url) = &r.url {
                item.insert("00081190".into(), json!({"vr": "UR", "Value": [url]}));
            }
            referenced.push(Value::Object(item));
        }
    }
    let mut body = serde_json::Map::new();
    if let Some(study) = study {
        body.insert(
            "00081190".into(),
            json!({"vr": "UR", "Value": [format!("{root}/studies/{study}")]}),
        );
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    if !referenced.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": referenced}));
    }
    let stored = results.len() - failed.len();
    let status = match stored {
        n if n == results.len() && broken.is_none() => StatusCode::OK,
        0 => StatusCode::CONFLICT,
        _ => StatusCode::ACCEPTED,
    };
    let mut response = (status, Value::Object(body).to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    let first = results
        .iter()
        .find(|r| is_failure(&r.outcome))
        .and_then(|r| r.outcome.comment.clone());
    for text in [first.as_deref(), broken].into_iter().flatten() {
        let text: String = text
            .chars()
            .filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '"')
            .take(200)
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("299 pacs-gateway \"{text}\"")) {
            headers.append(WARNING, v);
        }
    }
    response
}
