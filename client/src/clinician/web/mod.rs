//! The re-identifying DICOMweb proxy of `pacs-client serve` (`[web] listen`, plain
//! HTTP on loopback by default, or HTTPS with the edge certificate when `[web] tls`
//! is on, `tls`): OHIF, Weasis and scripts on the facility network
//! search (QIDO-RS, `qido`) and retrieve (WADO-RS, `wado`) under `/dicom-web`
//! and see real names and original UIDs, the way the DIMSE viewer proxy answers
//! viewers on the edge port. Every request carries HTTP Basic credentials of a
//! gateway user; the proxy asks the gateway as that user (the credentials are
//! passed through, checked by the gateway with a DIMSE association), so the answer
//! is what that user may see. A successful check is remembered for
//! [`REMEMBER`] (a keyed hash of name and password, in memory only), so a viewer's
//! many requests do not each open an association.
//!
//! Frames, rendered images and thumbnails are passed through to the gateway's own
//! DICOMweb (`passthrough`: UIDs mapped, the caller's credentials forwarded).
//!
//! Searching goes through `clinician::search` (the C-FIND proxy's translation and
//! re-identification, local-only studies from the spool), retrieving through
//! `clinician::fetch` and `clinician::translate` (C-GET, unsealing); this flow
//! names no other flow.

mod auth;
mod json;
mod passthrough;
mod qido;
mod tls;
mod wado;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use phi::keys::KeyRing;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;

pub use auth::REMEMBER;

/// The proxy's shared state.
pub struct WebProxy {
    config: Arc<Config>,
    ring: Arc<KeyRing>,
    logins: auth::Remembered,
    /// The listener's port, for Retrieve URLs when a `Host` header names none.
    port: std::sync::OnceLock<u16>,
    /// HTTPS towards the gateway's DICOMweb (pixels passed through), made once.
    https: std::sync::OnceLock<reqwest::Client>,
    /// The listener's own TLS (`[web] tls`), if on.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for WebProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebProxy").finish_non_exhaustive()
    }
}

impl WebProxy {
    /// A proxy asking the gateway of `config`, re-identifying with `ring`; with
    /// `[web] tls`, the edge certificate and key are loaded here (an error names
    /// what is missing or unreadable).
    pub fn new(config: Config, ring: KeyRing) -> anyhow::Result<WebProxy> {
        let tls = tls::server_config(&config)?;
        Ok(WebProxy {
            config: Arc::new(config),
            ring: Arc::new(ring),
            logins: auth::Remembered::new(),
            port: std::sync::OnceLock::new(),
            https: std::sync::OnceLock::new(),
            tls,
        })
    }

    /// `https` when the listener serves TLS, else `http`.
    fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }
}

/// An answer other than 200: a status and a short plain-text reason (never a name).
#[derive(Debug)]
pub(crate) struct WebError {
    status: StatusCode,
    message: String,
}

impl WebError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found() -> WebError {
        WebError::new(StatusCode::NOT_FOUND, "not found")
    }

    pub(crate) fn gateway(error: &anyhow::Error) -> WebError {
        warn!(error = %format!("{error:#}"), "DICOMweb proxy: the gateway failed");
        WebError::new(StatusCode::BAD_GATEWAY, "the gateway could not be asked")
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(
                    "Basic realm=\"pacs-client\", charset=\"UTF-8\"",
                ),
            );
        }
        response
    }
}

/// The routes under `/dicom-web`.
pub fn router(proxy: Arc<WebProxy>) -> Router {
    let web = Router::new()
        .route("/studies", get(qido::studies))
        .route("/series", get(qido::all_series))
        .route("/instances", get(qido::all_instances))
        .route("/studies/{study}/series", get(qido::series))
        .route("/studies/{study}/instances", get(qido::study_instances))
        .route(
            "/studies/{study}/series/{series}/instances",
            get(qido::instances),
        )
        .route("/studies/{study}", get(wado::study))
        .route("/studies/{study}/series/{series}", get(wado::series))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}",
            get(wado::instance),
        )
        .route("/studies/{study}/metadata", get(wado::study_metadata))
        .route(
            "/studies/{study}/series/{series}/metadata",
            get(wado::series_metadata),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(wado::instance_metadata),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            get(passthrough::frames),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
            get(passthrough::frame_rendered),
        )
        .route("/studies/{study}/rendered", get(passthrough::pixels))
        .route("/studies/{study}/thumbnail", get(passthrough::pixels))
        .route(
            "/studies/{study}/series/{series}/rendered",
            get(passthrough::pixels),
        )
        .route(
            "/studies/{study}/series/{series}/thumbnail",
            get(passthrough::pixels),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(passthrough::pixels),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            get(passthrough::pixels),
        )
        .with_state(proxy);
    Router::new().nest("/dicom-web", web)
}

/// Binds the listener of `[web] listen`.
pub async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ([web] listen)"))
}

/// Serves the proxy on `listener` until `stop`: HTTPS when `[web] tls` is on.
pub async fn serve(listener: TcpListener, proxy: Arc<WebProxy>, stop: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        let _ = proxy.port.set(addr.port());
        info!(%addr, scheme = proxy.scheme(), "DICOMweb proxy listening");
    }
    let shutdown = {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    };
    let served = match proxy.tls.clone() {
        Some(config) => match tls::TlsListener::new(listener, config, stop) {
            Ok(listener) => {
                axum::serve(listener, router(proxy))
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Err(e) => Err(e),
        },
        None => {
            axum::serve(listener, router(proxy))
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    if let Err(e) = served {
        warn!(error = %e, "DICOMweb proxy stopped");
    }
}
