//! WADO-RS at the proxy: a study, series or instance as `multipart/related;
//! type="application/dicom"` (each part a Part-10 file in the syntax the gateway
//! stores), and `/metadata` at each level as DICOM JSON. The original UIDs of the
//! path are mapped to the gateway's, the instances fetched with one C-GET
//! (`clinician::fetch`) and re-identified exactly as the viewer proxy's C-GET does
//! (original names and UIDs, the sealed items and the private pseudonym block
//! removed); each goes out as a part as soon as it is restored, a few parts
//! buffered, so memory stays bounded whatever the study's size. What the gateway does
//! not hold is served from the studies kept local-only in the spool (the files as
//! stored). Metadata carries no bulk data: Pixel Data and other binary values over
//! 1 KiB are left out (no Bulk Data URIs).

use std::io;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use dicom_core::header::Header as _;
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dimse::Status;
use dimse::scp::StoreOutcome;
use dimse::scu::ReceivedInstance;
use indicatif::ProgressBar;
use phi::keys::KeyRing;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::auth::Caller;
use super::{WebError, WebProxy, json};
use crate::clinician::fetch::{self, InstanceConsumer};
use crate::clinician::search::read_header;
use crate::clinician::translate::{reidentify_instance, text};

/// Binary values longer than this are left out of `/metadata`.
const BULK: usize = 1024;

/// What a WADO-RS path names, in original UIDs.
#[derive(Debug, Clone)]
struct Wanted {
    study: String,
    series: Option<String>,
    instance: Option<String>,
}

impl Wanted {
    fn target(&self, ring: &KeyRing) -> fetch::Target {
        let map = |u: &str| phi::pseudonym::uid(ring, u);
        fetch::Target {
            study: map(&self.study),
            series: self.series.as_deref().map(map),
            instances: self.instance.as_deref().map(map).into_iter().collect(),
        }
    }
}

/// Where restored instances go: parts of a body, or metadata collected.
#[derive(Debug)]
enum Sink {
    Parts(mpsc::Sender<Result<Bytes, io::Error>>),
    Metadata(Mutex<Vec<InMemDicomObject>>),
}

struct Restore {
    ring: Arc<KeyRing>,
    facility: String,
    boundary: String,
    sink: Sink,
}

/// A Part-10 file of `object` in `transfer_syntax`.
fn part10(object: InMemDicomObject, transfer_syntax: &str) -> anyhow::Result<Vec<u8>> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(text(&object, tags::SOP_CLASS_UID))
        .media_storage_sop_instance_uid(text(&object, tags::SOP_INSTANCE_UID))
        .transfer_syntax(transfer_syntax);
    let mut out = Vec::new();
    object.with_meta(meta)?.write_all(&mut out)?;
    Ok(out)
}

/// `object` without Pixel Data and long binary values.
fn metadata(mut object: InMemDicomObject) -> InMemDicomObject {
    let bulky: Vec<_> = object
        .iter()
        .filter(|e| {
            e.tag() == tags::PIXEL_DATA
                || (matches!(
                    e.vr(),
                    dicom_core::VR::OB
                        | dicom_core::VR::OW
                        | dicom_core::VR::OF
                        | dicom_core::VR::OD
                        | dicom_core::VR::OL
                        | dicom_core::VR::UN
                ) && e
                    .value()
                    .primitive()
                    .is_none_or(|p| p.calculate_byte_len() > BULK))
        })
        .map(|e| e.tag())
        .collect();
    for tag in bulky {
        object.remove_element(tag);
    }
    object
}

/// The head of one `application/dicom` part.
fn part_head(boundary: &str, length: usize) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: application/dicom\r\nContent-Length: {length}\r\n\r\n"
    )
}

impl InstanceConsumer for Restore {
    async fn take(&self, instance: ReceivedInstance) -> StoreOutcome {
        let (ring, facility) = (self.ring.clone(), self.facility.clone());
        let as_parts = matches!(self.sink, Sink::Parts(_));
        // Decoding and re-encoding a large instance is CPU work: off the workers.
        let restored = tokio::task::spawn_blocking(move || {
            let original = reidentify_instance(&instance, &ring, &facility)?;
            match as_parts {
                true => part10(original, &instance.transfer_syntax).map(Err),
                false => Ok(Ok(metadata(original))),
            }
        })
        .await;
        let restored = match restored {
            Ok(Ok(restored)) => restored,
            Ok(Err(e)) => {
                warn!(error = %format!("{e:#}"), "DICOMweb proxy: instance not re-identified, not sent");
                return StoreOutcome::success();
            }
            Err(e) => {
                warn!(error = %e, "DICOMweb proxy: instance not sent");
                return StoreOutcome::success();
            }
        };
        match (&self.sink, restored) {
            (Sink::Parts(tx), Err(file)) => {
                let head = part_head(&self.boundary, file.len());
                let sent = match tx.send(Ok(Bytes::from(head))).await {
                    Ok(()) => tx.send(Ok(Bytes::from(file))).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(()) => StoreOutcome::success(),
                    Err(_) => StoreOutcome::with(Status::Cancel, "the web client has gone"),
                }
            }
            (Sink::Metadata(list), Ok(object)) => {
                if let Ok(mut list) = list.lock() {
                    list.push(object);
                }
                StoreOutcome::success()
            }
            _ => StoreOutcome::success(),
        }
    }

    fn stopped(&self) -> bool {
        matches!(&self.sink, Sink::Parts(tx) if tx.is_closed())
    }
}

/// The spooled files of a local-only study that `wanted` names.
async fn local_files(proxy: &WebProxy, wanted: &Wanted) -> Result<Vec<String>, WebError> {
    let failed = |e: &dyn std::fmt::Display| {
        warn!(error = %e, "local store unavailable");
        WebError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the local store is unavailable",
        )
    };
    let outbox = crate::outbox::open(&proxy.config)
        .await
        .map_err(|e| failed(&e))?;
    let listed = outbox.local_instances(&wanted.study).await;
    outbox.close().await;
    let listed = listed.map_err(|e| failed(&e))?;
    let wanted = wanted.clone();
    tokio::task::spawn_blocking(move || {
        listed
            .into_iter()
            .filter(|(_, sop, _, _)| wanted.instance.as_ref().is_none_or(|i| i == sop))
            .filter(|(_, _, _, path)| {
                wanted.series.as_ref().is_none_or(|series| {
                    read_header(path)
                        .is_some_and(|h| text(&h, tags::SERIES_INSTANCE_UID) == *series)
                })
            })
            .map(|(_, _, _, path)| path)
            .collect()
    })
    .await
    .map_err(|e| failed(&e))
}

/// Answers a WADO-RS retrieve (`metadata` or the instances) of `wanted` as `caller`.
async fn retrieve(
    proxy: Arc<WebProxy>,
    caller: Caller,
    wanted: Wanted,
    metadata_only: bool,
) -> Result<Response, WebError> {
    let facility = proxy
        .config
        .facility()
        .map_err(|e| WebError::gateway(&anyhow::anyhow!("{e}")))?
        .to_string();
    let target = wanted.target(&proxy.ring);
    let located = fetch::locate_target(&proxy.config, &caller.0, &target)
        .await
        .map_err(|e| WebError::gateway(&e))?;
    let boundary = format!("pacs-client-{}", uuid::Uuid::new_v4().simple());
    let Some(located) = located else {
        return local(&proxy, &wanted, metadata_only, &boundary).await;
    };
    if metadata_only {
        let restore = Arc::new(Restore {
            ring: proxy.ring.clone(),
            facility,
            boundary,
            sink: Sink::Metadata(Mutex::new(Vec::new())),
        });
        let got = fetch::get_into(
            &proxy.config,
            &caller.0,
            &target,
            &located,
            restore.clone(),
            &ProgressBar::hidden(),
        )
        .await
        .map_err(|e| WebError::gateway(&e))?;
        for failure in got {
            warn!(failure = %failure, "DICOMweb proxy: metadata incomplete");
        }
        let objects = match &restore.sink {
            Sink::Metadata(list) => list.lock().map(|l| l.clone()).unwrap_or_default(),
            Sink::Parts(_) => Vec::new(),
        };
        info!(
            instances = objects.len(),
            "DICOMweb proxy: metadata answered"
        );
        return json::answer(&objects);
    }
    let (tx, response) = streamed(&boundary);
    let restore = Arc::new(Restore {
        ring: proxy.ring.clone(),
        facility,
        boundary: boundary.clone(),
        sink: Sink::Parts(tx.clone()),
    });
    tokio::spawn(async move {
        let got = fetch::get_into(
            &proxy.config,
            &caller.0,
            &target,
            &located,
            restore,
            &ProgressBar::hidden(),
        )
        .await;
        let end = match got {
            Ok(failures) => {
                for failure in &failures {
                    warn!(failure = %failure, "DICOMweb proxy: retrieve incomplete");
                }
                info!(
                    instances = located.count,
                    "DICOMweb proxy: WADO-RS answered"
                );
                Ok(Bytes::from(format!("\r\n--{boundary}--\r\n")))
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "DICOMweb proxy: retrieve failed at the gateway");
                Err(io::Error::other("the gateway retrieve failed"))
            }
        };
        let _ = tx.send(end).await;
    });
    Ok(response)
}

/// A 200 `multipart/related` response fed by the returned sender.
fn streamed(boundary: &str) -> (mpsc::Sender<Result<Bytes, io::Error>>, Response) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    (tx, response)
}

/// A local-only study's instances (or their metadata) from the spool.
async fn local(
    proxy: &WebProxy,
    wanted: &Wanted,
    metadata_only: bool,
    boundary: &str,
) -> Result<Response, WebError> {
    let files = local_files(proxy, wanted).await?;
    if files.is_empty() {
        return Err(WebError::not_found());
    }
    if metadata_only {
        let objects = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .filter_map(|p| read_header(p).map(metadata))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| WebError::gateway(&e.into()))?;
        return json::answer(&objects);
    }
    let (tx, response) = streamed(boundary);
    let boundary = boundary.to_string();
    tokio::spawn(async move {
        for path in files {
            let Ok(file) = tokio::fs::read(&path).await else {
                warn!(path = %path, "DICOMweb proxy: a spooled file cannot be read");
                continue;
            };
            let head = part_head(&boundary, file.len());
            if tx.send(Ok(Bytes::from(head))).await.is_err()
                || tx.send(Ok(Bytes::from(file))).await.is_err()
            {
                return;
            }
        }
        let _ = tx
            .send(Ok(Bytes::from(format!("\r\n--{boundary}--\r\n"))))
            .await;
    });
    Ok(response)
}

type Proxy = State<Arc<WebProxy>>;

fn wanted(study: String, series: Option<String>, instance: Option<String>) -> Wanted {
    Wanted {
        study,
        series,
        instance,
    }
}

/// `GET /studies/{study}`
pub(super) async fn study(
    State(proxy): Proxy,
    caller: Caller,
    Path(study): Path<String>,
) -> Result<Response, WebError> {
    retrieve(proxy, caller, wanted(study, None, None), false).await
}

/// `GET /studies/{study}/series/{series}`
pub(super) async fn series(
    State(proxy): Proxy,
    caller: Caller,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, WebError> {
    retrieve(proxy, caller, wanted(study, Some(series), None), false).await
}

/// `GET /studies/{study}/series/{series}/instances/{instance}`
pub(super) async fn instance(
    State(proxy): Proxy,
    caller: Caller,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let w = wanted(study, Some(series), Some(instance));
    retrieve(proxy, caller, w, false).await
}

/// `GET /studies/{study}/metadata`
pub(super) async fn study_metadata(
    State(proxy): Proxy,
    caller: Caller,
    Path(study): Path<String>,
) -> Result<Response, WebError> {
    retrieve(proxy, caller, wanted(study, None, None), true).await
}

/// `GET /studies/{study}/series/{series}/metadata`
pub(super) async fn series_metadata(
    State(proxy): Proxy,
    caller: Caller,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, WebError> {
    retrieve(proxy, caller, wanted(study, Some(series), None), true).await
}

/// `GET /studies/{study}/series/{series}/instances/{instance}/metadata`
pub(super) async fn instance_metadata(
    State(proxy): Proxy,
    caller: Caller,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let w = wanted(study, Some(series), Some(instance));
    retrieve(proxy, caller, w, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    #[test]
    fn metadata_leaves_out_bulk_data() {
        let object = InMemDicomObject::from_element_iter([
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("A^B")),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![0u8; 8])),
            DataElement::new(
                tags::ICC_PROFILE,
                VR::OB,
                PrimitiveValue::from(vec![0u8; 2048]),
            ),
            DataElement::new(
                tags::PIXEL_PADDING_VALUE,
                VR::OB,
                PrimitiveValue::from(vec![0u8; 2]),
            ),
        ]);
        let kept = metadata(object);
        assert_eq!(text(&kept, tags::PATIENT_NAME), "A^B");
        assert!(kept.get(tags::PIXEL_DATA).is_none());
        assert!(kept.get(tags::ICC_PROFILE).is_none());
        assert!(kept.get(tags::PIXEL_PADDING_VALUE).is_some());
    }
}
