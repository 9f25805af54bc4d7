//! The gateway's HTTPS side: the admin API under `/api/v1` (contract:
//! `schemas/admin-api.openapi.yaml`), DICOMweb under `/dicom-web` (handlers in
//! [`crate::web`]), `/healthz` and `/metrics`.
//!
//! [`routes`] is the single table of (method, path, handler) the [`router`] is built
//! from and the OpenAPI test checks. [`server`] serves a router over rustls (HTTP/1.1
//! and HTTP/2 by ALPN). Handlers live in [`session`] (login, logout, me), [`users`],
//! [`devices`] (C-MOVE destinations and client certificates), [`facilities`]
//! (facility list, usage, quota, studies) and [`changes`] (the changes feed). Every
//! facility-scoped handler goes through [`session::Caller::scope`] (administration)
//! or [`session::Caller::own_or_named`] (routes every user of a facility may use),
//! which decide who may name which facility. This module
//! records every changing admin request in the audit trail ([`audit`]; DICOMweb
//! handlers record their own DICOM events) and never parses DICOM itself.

pub mod audit;
pub mod changes;
pub mod devices;
pub mod error;
pub mod facilities;
pub mod lifecycle;
pub mod limits;
pub mod server;
pub mod session;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::json;

use crate::app::TlsFiles;
use crate::audit::AuditTrail;
use crate::auth::Authenticator;
use crate::db::Index;
use crate::metrics::Metrics;
use crate::web;

pub use error::ApiError;

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The index.
    pub index: Index,
    /// Password checks with lockout (the same as DIMSE's).
    pub auth: Authenticator,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Lifetime of a new bearer token.
    pub token_ttl: Duration,
    /// Certificate files, for issuing facility certificates (`None`: cannot issue).
    pub tls_files: Option<Arc<TlsFiles>>,
    /// The audit trail (every changing request is recorded, see [`audit`]).
    pub audit: AuditTrail,
    /// Who may read `/metrics` through this router.
    pub metrics_access: MetricsAccess,
    /// DICOMweb (`None`: its routes answer 503, as in admin-only routers).
    pub dicomweb: Option<Arc<crate::web::WebState>>,
    /// The lifecycle's answers (`None`: they answer 503, as in admin-only routers).
    pub lifecycle: Option<crate::lifecycle::Lifecycle>,
}

/// Who may read `/metrics`: anyone (the separate metrics listener, meant for loopback
/// or a management network), holders of a bearer token (the HTTPS port with
/// `[metrics] bearer_token_file`), or nobody (the HTTPS port otherwise: 404).
#[derive(Clone, Default)]
pub enum MetricsAccess {
    /// Unauthenticated.
    Open,
    /// `Authorization: Bearer <token>`; holds the SHA-256 of the token.
    Bearer([u8; 32]),
    /// Not served here.
    #[default]
    Closed,
}

impl MetricsAccess {
    /// Access with the token in `token` (surrounding white space ignored).
    pub fn bearer(token: &str) -> MetricsAccess {
        use sha2::Digest as _;
        MetricsAccess::Bearer(sha2::Sha256::digest(token.trim().as_bytes()).into())
    }

    fn allows(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        use sha2::Digest as _;
        match self {
            MetricsAccess::Open => Ok(()),
            MetricsAccess::Closed => Err(ApiError::not_found(
                "/metrics is served on the metrics listener ([metrics] listen), or here with [metrics] bearer_token_file",
            )),
            MetricsAccess::Bearer(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| <[u8; 32]>::from(sha2::Sha256::digest(t.trim().as_bytes())));
                match given {
                    Some(given) if &given == expected => Ok(()),
                    _ => Err(ApiError::unauthorized(
                        "/metrics needs the bearer token of [metrics] bearer_token_file",
                    )),
                }
            }
        }
    }
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsAccess::Open => "Open",
            MetricsAccess::Bearer(_) => "Bearer([redacted])",
            MetricsAccess::Closed => "Closed",
        })
    }
}

/// One route: method, path template (axum syntax, as in the OpenAPI file), handler.
pub type Route = (Method, &'static str, MethodRouter<ApiState>);

macro_rules! route {
    ($method:ident, $path:literal, $handler:expr) => {
        (
            Method::$method,
            $path,
            labelled(on(MethodFilter::$method, $handler), $path),
        )
    };
}

/// The route template a response came from (for metrics).
#[derive(Debug, Clone, Copy)]
struct RouteLabel(&'static str);

fn labelled(router: MethodRouter<ApiState>, path: &'static str) -> MethodRouter<ApiState> {
    router.layer(axum::middleware::map_response(
        move |mut response: Response| async move {
            response.extensions_mut().insert(RouteLabel(path));
            response
        },
    ))
}

/// Every route the HTTPS server answers. The router is built from this list only.
pub fn routes() -> Vec<Route> {
    vec![
        route!(GET, "/healthz", healthz),
        route!(GET, "/metrics", metrics),
        route!(POST, "/api/v1/login", session::login),
        route!(POST, "/api/v1/logout", session::logout),
        route!(GET, "/api/v1/me", session::me),
        route!(PUT, "/api/v1/me/password", session::change_password),
        route!(GET, "/api/v1/facilities", facilities::list),
        route!(GET, "/api/v1/facilities/{facility}/users", users::list),
        route!(POST, "/api/v1/facilities/{facility}/users", users::create),
        route!(
            POST,
            "/api/v1/facilities/{facility}/users/{username}/disable",
            users::disable
        ),
        route!(
            POST,
            "/api/v1/facilities/{facility}/users/{username}/enable",
            users::enable
        ),
        route!(
            PUT,
            "/api/v1/facilities/{facility}/users/{username}/password",
            users::reset_password
        ),
        route!(
            GET,
            "/api/v1/facilities/{facility}/destinations",
            devices::list_destinations
        ),
        route!(
            POST,
            "/api/v1/facilities/{facility}/destinations",
            devices::add_destination
        ),
        route!(
            DELETE,
            "/api/v1/facilities/{facility}/destinations/{ae_title}",
            devices::remove_destination
        ),
        route!(
            GET,
            "/api/v1/facilities/{facility}/certificates",
            devices::list_certificates
        ),
        route!(
            POST,
            "/api/v1/facilities/{facility}/certificates",
            devices::issue_certificate
        ),
        route!(
            POST,
            "/api/v1/facilities/{facility}/certificates/{id}/revoke",
            devices::revoke_certificate
        ),
        route!(
            GET,
            "/api/v1/facilities/{facility}/usage",
            facilities::usage
        ),
        route!(
            PUT,
            "/api/v1/facilities/{facility}/quota",
            facilities::set_quota
        ),
        route!(
            GET,
            "/api/v1/facilities/{facility}/studies",
            facilities::studies
        ),
        route!(
            DELETE,
            "/api/v1/facilities/{facility}/studies/{study_uid}",
            facilities::delete_study
        ),
        route!(GET, "/api/v1/facilities/{facility}/audit", audit::list),
        route!(GET, "/api/v1/changes", changes::list),
        route!(
            GET,
            "/api/v1/facilities/{facility}/retention",
            lifecycle::policies
        ),
        route!(
            PUT,
            "/api/v1/facilities/{facility}/retention",
            lifecycle::set_policy
        ),
        route!(
            DELETE,
            "/api/v1/facilities/{facility}/retention",
            lifecycle::remove_policy
        ),
        route!(
            GET,
            "/api/v1/facilities/{facility}/studies/{study_uid}/labels",
            lifecycle::labels
        ),
        route!(
            PUT,
            "/api/v1/facilities/{facility}/studies/{study_uid}/labels/{label}",
            lifecycle::set_label
        ),
        route!(
            DELETE,
            "/api/v1/facilities/{facility}/studies/{study_uid}/labels/{label}",
            lifecycle::remove_label
        ),
        route!(GET, "/api/v1/lifecycle", lifecycle::notices),
        route!(
            POST,
            "/api/v1/studies/{study_uid}/lifecycle",
            lifecycle::answer
        ),
        route!(GET, "/dicom-web/studies", web::qido::studies),
        route!(POST, "/dicom-web/studies", web::stow::store),
        route!(GET, "/dicom-web/series", web::qido::all_series),
        route!(GET, "/dicom-web/instances", web::qido::all_instances),
        route!(GET, "/dicom-web/studies/{study}", web::wado::study),
        route!(
            POST,
            "/dicom-web/studies/{study}",
            web::stow::store_in_study
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/metadata",
            web::wado::study_metadata
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series",
            web::qido::study_series
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/instances",
            web::qido::study_instances
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}",
            web::wado::series
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/metadata",
            web::wado::series_metadata
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances",
            web::qido::series_instances
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}",
            web::wado::instance
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata",
            web::wado::instance_metadata
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            web::wado::frames::frames
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}",
            web::wado::frames::bulk
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/thumbnail",
            web::rendered::study_thumbnail
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/rendered",
            web::rendered::series_rendered
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/thumbnail",
            web::rendered::series_thumbnail
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered",
            web::rendered::instance_rendered
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            web::rendered::instance_thumbnail
        ),
        route!(
            GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            web::rendered::frame_rendered
        ),
    ]
}

/// (method, path) of every route, for documentation checks.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The whole HTTPS application: [`routes`], JSON 404/405 fallbacks, the body limit
/// and request metrics.
///
/// DICOMweb routes stream their bodies (STOW-RS uploads, WADO-RS answers): they are
/// kept out of the body limit and of [`read_body_first`], which serve the admin API's
/// small JSON bodies.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let mut api = Router::new();
    let mut dicomweb = Router::new();
    for (_, path, handler) in routes() {
        if path.starts_with(crate::web::PREFIX) {
            dicomweb = dicomweb.route(path, handler);
        } else {
            api = api.route(path, handler);
        }
    }
    let api = api
        .fallback(|| async { ApiError::not_found("no such path") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            max_body_bytes,
            read_body_first,
        ));
    api.merge(dicomweb.layer(DefaultBodyLimit::disable()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record_changes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .with_state(state)
}

/// How much of a too-large body is read (and dropped) before answering 413, so that a
/// client still sending is not cut off; beyond it the stream is reset.
const DRAIN_FACTOR: usize = 16;

/// Reads the whole request body (at most `max_body_bytes`) before any handler runs.
/// A handler or extractor may answer early (wrong content type: 400/415, no token:
/// 401); over HTTP/2 an answer sent while the client is still sending its body ends
/// in a stream reset (curl: "(92) Stream error") instead of the answer. Bodies are
/// small here (64 KiB by default), so holding one costs little. A body over the limit
/// is drained up to [`DRAIN_FACTOR`] times the limit and answered 413.
async fn read_body_first(
    State(max_body_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    use futures::StreamExt as _;
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::bad_request("the request body could not be read").into_response();
        };
        seen = seen.saturating_add(chunk.len());
        if seen <= max_body_bytes {
            kept.extend_from_slice(&chunk);
        } else if seen > max_body_bytes.saturating_mul(DRAIN_FACTOR) {
            break;
        }
    }
    if seen > max_body_bytes {
        return ApiError::payload_too_large().into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(kept)))
        .await
}

/// Counts each request by method, route template and status.
async fn count_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0);
    state
        .metrics
        .http_request(method.as_str(), route, response.status().as_u16());
    response
}

/// `GET /healthz`: 200 when the index answers, else 503; both say the version.
async fn healthz(State(state): State<ApiState>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::query("SELECT 1").fetch_one(&state.index.pool),
    )
    .await;
    let (status, word) = match ping {
        Ok(Ok(_)) => (StatusCode::OK, "ok"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = json!({
        "status": word,
        "version": crate::telemetry::VERSION,
        "commit": crate::telemetry::COMMIT,
    });
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: OpenMetrics, or the classic text format when `Accept` prefers
/// `text/plain` (see [`crate::metrics::Format::negotiate`]).
async fn metrics(State(state): State<ApiState>, headers: axum::http::HeaderMap) -> Response {
    if let Err(refused) = state.metrics_access.allows(&headers) {
        return refused.into_response();
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::negotiate(accept);
    let stored = match state.index.stored_bytes_by_facility().await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read stored bytes for /metrics");
            Vec::new()
        }
    };
    (
        [(header::CONTENT_TYPE, format.content_type())],
        state.metrics.encode_as(format, &stored),
    )
        .into_response()
}

/// The router of the plain-HTTP metrics listener: `/metrics` (open) and `/healthz`.
pub fn metrics_router(mut state: ApiState) -> Router {
    state.metrics_access = MetricsAccess::Open;
    Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(healthz))
        .fallback(|| async { ApiError::not_found("only /metrics and /healthz are served here") })
        .with_state(state)
}

/// An index time (ms since the epoch) as RFC 3339 UTC, e.g. `2026-11-21T10:00:00.123Z`
/// (the audit trail's formatting, shared).
pub use crate::audit::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_255_200_123), "2026-11-21T10:00:00.123Z");
    }

    #[test]
    fn every_route_is_unique() {
        let table = route_table();
        for (i, a) in table.iter().enumerate() {
            assert!(!table[i + 1..].contains(a), "route {a:?} is listed twice");
        }
    }
}
