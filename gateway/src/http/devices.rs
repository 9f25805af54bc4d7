//! `/api/v1/facilities/{facility}/destinations...` (C-MOVE destinations) and
//! `.../certificates...` (the facility's client certificates: list, issue through
//! the gateway CA, revoke; a revoked certificate is refused at its next association).

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::error::{ApiError, ApiJson, ApiPath};
use super::session::Caller;
use super::{ApiState, rfc3339};
use crate::db::admin::Revoked;
use crate::db::destinations::Destination;
use crate::domain::AeTitle;

/// A destination as listed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DestinationItem {
    /// AE title.
    pub ae_title: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port (1 to 65535).
    pub port: u16,
    /// Whether the gateway calls it over DICOM TLS.
    pub tls: bool,
}

impl DestinationItem {
    fn of(d: &Destination) -> DestinationItem {
        DestinationItem {
            ae_title: d.ae_title.to_string(),
            host: d.host.clone(),
            port: d.port,
            tls: d.tls,
        }
    }
}

/// `GET .../destinations`.
pub async fn list_destinations(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
) -> Result<axum::Json<Vec<DestinationItem>>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let list = state.index.list_destinations(Some(facility.id)).await?;
    Ok(axum::Json(list.iter().map(DestinationItem::of).collect()))
}

/// Whether `host` is a DNS name (labels of letters, digits, '-', '_') or an IP
/// address.
fn valid_host(host: &str) -> bool {
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    name_ok || host.parse::<IpAddr>().is_ok()
}

/// `POST .../destinations`: 201; 409 if the facility has this AE title already.
pub async fn add_destination(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    ApiJson(body): ApiJson<DestinationItem>,
) -> Result<(StatusCode, axum::Json<DestinationItem>), ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let ae = AeTitle::parse(&body.ae_title).map_err(ApiError::unprocessable)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.');
    if !ae.as_str().chars().all(plain) {
        return Err(ApiError::unprocessable(
            "ae_title may hold only letters, digits, spaces, '_', '-' and '.' here",
        ));
    }
    if !valid_host(&body.host) {
        return Err(ApiError::unprocessable(
            "host must be a host name or an IP address",
        ));
    }
    if body.port == 0 {
        return Err(ApiError::unprocessable("port must be from 1 to 65535"));
    }
    let added = state
        .index
        .add_destination(facility.id, &ae, &body.host, body.port, body.tls)
        .await?;
    info!(by = %caller.user.username, facility = %facility.name, ae_title = %ae, "C-MOVE destination added through the admin API");
    Ok((StatusCode::CREATED, axum::Json(DestinationItem::of(&added))))
}

/// `DELETE .../destinations/{ae_title}`.
pub async fn remove_destination(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, ae_title)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let not_found = || ApiError::not_found("no such destination in this facility");
    let ae = AeTitle::parse(&ae_title).map_err(|_| not_found())?;
    if !state.index.remove_destination(facility.id, &ae).await? {
        return Err(not_found());
    }
    info!(by = %caller.user.username, facility = %facility.name, ae_title = %ae, "C-MOVE destination removed through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// A certificate as listed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateItem {
    /// Id (for revoke).
    pub id: i64,
    /// SHA-256 (hex) of the DER.
    pub fingerprint: String,
    /// Subject.
    pub subject: String,
    /// Issued (RFC 3339).
    pub created_at: String,
    /// Revoked (RFC 3339), if so.
    pub revoked_at: Option<String>,
}

/// `GET .../certificates`.
pub async fn list_certificates(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
) -> Result<axum::Json<Vec<CertificateItem>>, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let rows = state.index.certificates(facility.id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|c| CertificateItem {
                id: c.id,
                fingerprint: c.fingerprint,
                subject: c.subject,
                created_at: rfc3339(c.created_at),
                revoked_at: c.revoked_at.map(rfc3339),
            })
            .collect(),
    ))
}

/// `POST .../certificates` body: `{}` (or empty).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {}

/// A newly issued certificate with its private key (shown only here).
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedItem {
    /// Id (for revoke).
    pub id: i64,
    /// SHA-256 (hex) of the DER.
    pub fingerprint: String,
    /// Subject.
    pub subject: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Its private key, PEM PKCS#8.
    pub private_key_pem: String,
    /// The gateway CA, PEM (to verify the gateway).
    pub ca_pem: String,
}

/// `POST .../certificates`: issues a client certificate for the facility with the
/// gateway CA and enrolls it; 409 when the CA key is not available here.
pub async fn issue_certificate(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(facility): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, axum::Json<IssuedItem>), ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large()
        } else {
            ApiError::bad_request("cannot read the request body")
        }
    })?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<IssueRequest>(&body)
            .map_err(|e| ApiError::unprocessable(format!("the body must be {{}}: {e}")))?;
    }
    let no_ca = || {
        ApiError::conflict(
            "the gateway cannot issue certificates: its CA key is not available (set tls.ca_key)",
        )
    };
    let files = state.tls_files.clone().ok_or_else(no_ca)?;
    let name = facility.name.clone();
    let issued = tokio::task::spawn_blocking(move || {
        let ca = files.load_ca()?;
        let issued = ca.issue_client(name.as_str(), Some("facility"))?;
        Ok::<_, anyhow::Error>((issued, ca.cert_pem()))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    let (issued, ca_pem) = issued.map_err(|e| {
        warn!(error = %format!("{e:#}"), "cannot issue a facility certificate");
        no_ca()
    })?;
    let subject = format!("CN={}", facility.name);
    let fingerprint = issued.fingerprint();
    let id = state
        .index
        .insert_certificate(facility.id, &fingerprint, &subject)
        .await?;
    info!(by = %caller.user.username, facility = %facility.name, %fingerprint, "client certificate issued through the admin API");
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedItem {
            id,
            fingerprint,
            subject,
            certificate_pem: issued.cert_pem.clone(),
            private_key_pem: issued.key_pem.expose_secret().to_string(),
            ca_pem,
        }),
    ))
}

/// `POST .../certificates/{id}/revoke`: 204 (also when revoked before); 404 if the
/// facility has no such certificate.
pub async fn revoke_certificate(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath((facility, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let facility = caller.scope(&state, &facility).await?;
    let not_found = || ApiError::not_found("no such certificate in this facility");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    match state.index.revoke_certificate(facility.id, id).await? {
        Revoked::Now => {
            info!(by = %caller.user.username, facility = %facility.name, id, "client certificate revoked through the admin API");
            Ok(StatusCode::NO_CONTENT)
        }
        Revoked::Already => Ok(StatusCode::NO_CONTENT),
        Revoked::NotFound => Err(not_found()),
    }
}
