//! DICOMweb (PS3.18) under `/dicom-web` on the HTTPS port: QIDO-RS search
//! ([`qido`]), WADO-RS retrieval of instances, metadata, bulk data and frames
//! ([`wado`]), rendered images and thumbnails ([`rendered`], made by
//! [`crate::render`]), and STOW-RS store ([`stow`]).
//!
//! Who may call: any user of a facility, authenticated per request by HTTP Basic
//! (checked like DIMSE passwords: argon2id, the same lockout) or by a bearer token
//! from `POST /api/v1/login` ([`auth::WebUser`]). Every statement is scoped to that
//! user's facility, and every answer is what the gateway holds: pseudonymous. A
//! search or retrieval leaves an audit event like its DIMSE counterpart, and a store
//! goes through the same ingest path as C-STORE (admission, quota, duplicates).
//!
//! Routes are listed in [`crate::http::routes`] with the rest of the HTTPS API (one
//! table, checked against the OpenAPI file); unlike the admin API they stream their
//! bodies both ways ([`crate::http::router`] keeps them out of the small-body layer).

pub mod accept;
pub mod auth;
pub mod multipart;
pub mod qido;
pub mod rendered;
pub mod stow;
pub mod wado;

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::audit::{AuditEvent, EventKind, Outcome, Protocol};
use crate::http::ApiState;
use crate::ingest::Ingest;

/// Path prefix of every DICOMweb route.
pub const PREFIX: &str = "/dicom-web";

/// What DICOMweb needs beyond the admin API's state: the ingest path (STOW-RS, and
/// the blob store for WADO-RS) and the cache of verified Basic credentials.
#[derive(Debug)]
pub struct WebState {
    /// The ingest path shared with the DICOM listeners.
    pub ingest: Arc<Ingest>,
    /// Recently verified Basic credentials.
    pub basic: auth::BasicCache,
    /// Rendering and thumbnails.
    pub thumbnails: crate::render::Thumbnails,
    /// Thumbnail side when the request gives no viewport (`[thumbnails] size`).
    pub thumbnail_size: u32,
}

impl WebState {
    /// DICOMweb over `ingest`, rendering with `thumbnails`.
    pub fn new(
        ingest: Arc<Ingest>,
        thumbnails: crate::render::Thumbnails,
        thumbnail_size: u32,
    ) -> Arc<WebState> {
        Arc::new(WebState {
            ingest,
            basic: auth::BasicCache::default(),
            thumbnails,
            thumbnail_size,
        })
    }
}

/// The DICOMweb state of `state`, or 503 when this gateway serves no DICOMweb (an
/// HTTPS router built without the ingest path, as in admin-only tests).
pub(crate) fn web_state(state: &ApiState) -> Result<&Arc<WebState>, crate::http::ApiError> {
    state.dicomweb.as_ref().ok_or_else(|| {
        crate::http::ApiError::unavailable("DICOMweb is not served by this gateway process")
    })
}

/// The service root as the client reached it (`https://HOST[:PORT]/dicom-web`), for
/// Retrieve URLs and Bulk Data URIs. The host comes from the `Host` header (HTTP/1.1)
/// or the request's authority (HTTP/2); it is only echoed back, never trusted.
pub(crate) fn service_root(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("https://{host}{PREFIX}")
}

/// Records a DICOMweb audit event for `user` (search: Query; retrieval: Begin
/// Transferring; store: Instances Transferred).
pub(crate) async fn audit(
    state: &ApiState,
    user: &auth::WebUser,
    kind: EventKind,
    outcome: Outcome,
    detail: String,
    count: usize,
) {
    let mut event = AuditEvent::new(kind, outcome, Protocol::Https)
        .facility(user.facility.id)
        .user(user.user.username.to_string())
        .detail(detail)
        .count(count);
    if let Some(peer) = user.peer {
        event = event.peer(peer);
    }
    state.audit.record(event).await;
}

/// Records a retrieval of `count` instances (Begin Transferring, success): every
/// WADO-RS, rendered and thumbnail answer.
pub(crate) async fn audit_transfer(
    state: &ApiState,
    user: &auth::WebUser,
    what: String,
    count: usize,
) {
    audit(
        state,
        user,
        EventKind::BeginTransferring,
        Outcome::Success,
        what,
        count,
    )
    .await;
}
