//! Admission: [`CertificatePolicy`] (TLS port) admits a peer whose verified client
//! certificate was issued to a facility and not revoked; [`AeAllowList`] (plain port)
//! admits calling AE titles mapped to a facility in the config. Both refuse a called
//! AE title that is not ours, and both require User Identity Negotiation (user name
//! and passcode, checked with argon2id) on any association that proposes a
//! query/retrieve SOP class; the user must belong to the admitted facility.
//! Logins, failed logins and refused peers (unknown or revoked certificate, unknown
//! AE title) are recorded in the audit trail. Their log lines are throttled to one
//! per second per kind (with the count left out), since a flood of refused
//! associations must not flood the log; the audit trail records every one.

use std::collections::HashMap;
use std::sync::LazyLock;

use dicom_ul::pdu::UserIdentityType;
use dimse::assoc::{AssociateRequest, Rejection};
use dimse::server::Policy;
use dimse::throttle::LogThrottle;
use tracing::{info, warn};

use super::Session;
use super::activity::Activity;
use crate::audit::{AuditEvent, AuditTrail, EventKind, Outcome, Protocol};
use crate::auth::Authenticator;
use crate::db::certs::CertificateStatus;
use crate::db::{Facility, Index};
use crate::domain::{FacilityId, FacilityName};

/// Query/retrieve SOP classes served (Patient Root and Study Root FIND, MOVE, GET).
pub const QR_SOP_CLASSES: [&str; 6] = [
    dimse::qr::PATIENT_ROOT_FIND,
    dimse::qr::PATIENT_ROOT_MOVE,
    dimse::qr::PATIENT_ROOT_GET,
    dimse::qr::STUDY_ROOT_FIND,
    dimse::qr::STUDY_ROOT_MOVE,
    dimse::qr::STUDY_ROOT_GET,
];

/// One log line per second per kind of refused association.
static REFUSALS: LazyLock<LogThrottle> = LazyLock::new(LogThrottle::default);

fn check_called_ae(ours: &str, request: &AssociateRequest<'_>) -> Result<(), Rejection> {
    if request.called_ae == ours {
        Ok(())
    } else {
        if let Some(suppressed) = REFUSALS.admit("called-ae") {
            info!(
                called_ae = request.called_ae,
                suppressed, "called AE title is not ours"
            );
        }
        Err(Rejection::CalledAeNotRecognized)
    }
}

/// Printable ASCII of a wire value, at most `max` characters, for audit details.
fn shown(value: &str, max: usize) -> String {
    value
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Records a refused association as a security alert.
async fn alert(
    trail: &AuditTrail,
    request: &AssociateRequest<'_>,
    facility: Option<FacilityId>,
    reason: &str,
) {
    let mut event = AuditEvent::new(
        EventKind::SecurityAlert,
        Outcome::SeriousFailure,
        Protocol::Dicom,
    )
    .peer(request.peer.addr.ip())
    .detail(format!(
        "association refused: {reason} (calling AE {})",
        shown(request.calling_ae, 16)
    ));
    event.facility_id = facility;
    trail.record(event).await;
}

/// Adds the user to a facility session when the association asks for query/retrieve.
async fn with_user(
    auth: &Authenticator,
    trail: &AuditTrail,
    facility: Facility,
    request: &AssociateRequest<'_>,
) -> Result<Session, Rejection> {
    let peer = request.peer.addr.ip();
    let session = |facility: Facility, user: Option<crate::auth::User>| {
        let username = user.as_ref().map(|u| u.username.to_string());
        let activity = Activity::new(
            trail.clone(),
            facility.id,
            username,
            peer,
            request.calling_ae,
        );
        Session {
            facility,
            user,
            activity: std::sync::Arc::new(activity),
        }
    };
    let wants_qr = request
        .abstract_syntaxes
        .iter()
        .any(|a| QR_SOP_CLASSES.contains(&a.trim_end_matches('\0')));
    if !wants_qr {
        return Ok(session(facility, None));
    }
    let failure = |username: Option<&str>, reason: &str| {
        let event = AuditEvent::new(
            EventKind::AuthenticationFailure,
            Outcome::MinorFailure,
            Protocol::Dicom,
        )
        .facility(facility.id)
        .peer(peer)
        .detail(format!(
            "query/retrieve association refused: {reason} (calling AE {})",
            shown(request.calling_ae, 16)
        ));
        match username {
            Some(name) => event.user(shown(name, 64)),
            None => event,
        }
    };
    let Some(identity) = request
        .user_identity
        .filter(|i| i.identity_type() == UserIdentityType::UsernamePassword)
    else {
        if let Some(suppressed) = REFUSALS.admit("no-identity") {
            warn!(target: "audit", facility = %facility.name, calling_ae = request.calling_ae, event = "authentication", outcome = "refused", suppressed, "query/retrieve without user name and passcode");
        }
        trail
            .record(failure(None, "no user name and passcode"))
            .await;
        return Err(Rejection::NoReason);
    };
    let username = String::from_utf8_lossy(&identity.primary_field()).into_owned();
    let password = String::from_utf8_lossy(&identity.secondary_field()).into_owned();
    // A user of another facility is refused inside the check, on the same path and
    // with the same delay as a wrong password.
    match auth
        .verify_for(&username, &password, peer, Some(facility.id))
        .await
    {
        Ok(user) => {
            info!(target: "audit", facility = %facility.name, user = %user.username, event = "authentication", outcome = "success", "user authenticated");
            let session = session(facility, Some(user));
            let event = session
                .activity
                .event(EventKind::Login, Outcome::Success)
                .detail(format!(
                    "query/retrieve association (calling AE {})",
                    session.activity.calling_ae()
                ));
            trail.record(event).await;
            Ok(session)
        }
        Err(e) => {
            if let Some(suppressed) = REFUSALS.admit("authentication") {
                warn!(target: "audit", facility = %facility.name, calling_ae = request.calling_ae, event = "authentication", outcome = "refused", reason = %e, suppressed, "authentication failed");
            }
            let event = match auth.known_user(&username).await {
                Some(user) if user.facility != facility.id => failure(
                    Some(user.username.as_str()),
                    "authentication failed (user of another facility)",
                ),
                Some(user) => failure(Some(user.username.as_str()), "authentication failed"),
                None => failure(None, "authentication failed (unknown user name)"),
            };
            trail.record(event).await;
            Err(Rejection::NoReason)
        }
    }
}

/// Admits facilities by their client certificate (TLS port).
#[derive(Debug, Clone)]
pub struct CertificatePolicy {
    /// The index (certificate fingerprints -> facility).
    pub index: Index,
    /// Our AE title.
    pub ae_title: String,
    /// Password checks for query/retrieve.
    pub auth: Authenticator,
    /// Where admissions and refusals are recorded.
    pub audit: AuditTrail,
}

impl Policy for CertificatePolicy {
    type Session = Session;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<Session, Rejection> {
        check_called_ae(&self.ae_title, request)?;
        let Some(certificate) = &request.peer.certificate else {
            if let Some(suppressed) = REFUSALS.admit("no-certificate") {
                warn!(suppressed, "TLS peer without a client certificate");
            }
            alert(&self.audit, request, None, "no client certificate").await;
            return Err(Rejection::CallingAeNotRecognized);
        };
        let fingerprint = crate::pki::fingerprint(certificate.as_ref());
        let facility = match self.index.facility_by_certificate(&fingerprint).await {
            Ok(Some(facility)) => facility,
            Ok(None) => {
                if let Some(suppressed) = REFUSALS.admit("certificate") {
                    warn!(%fingerprint, suppressed, "certificate not enrolled for any facility (or revoked)");
                }
                let (facility, reason) = match self.index.certificate_status(&fingerprint).await {
                    Ok(CertificateStatus::Revoked(f)) => (Some(f), "revoked certificate"),
                    _ => (None, "unknown certificate"),
                };
                let reason = format!("{reason} sha256:{fingerprint}");
                alert(&self.audit, request, facility, &reason).await;
                return Err(Rejection::CallingAeNotRecognized);
            }
            Err(e) => {
                warn!(error = %e, "cannot check certificate");
                return Err(Rejection::Busy);
            }
        };
        info!(facility = %facility.name, calling_ae = request.calling_ae, "facility associated");
        with_user(&self.auth, &self.audit, facility, request).await
    }

    fn describe(&self, session: &Session) -> Option<String> {
        Some(session.facility.name.to_string())
    }
}

/// Admits calling AE titles mapped to facilities (plain port).
#[derive(Debug, Clone)]
pub struct AeAllowList {
    /// The index (facility names -> facility).
    pub index: Index,
    /// Our AE title.
    pub ae_title: String,
    /// Calling AE title -> facility.
    pub allowed: HashMap<String, FacilityName>,
    /// Password checks for query/retrieve.
    pub auth: Authenticator,
    /// Where admissions and refusals are recorded.
    pub audit: AuditTrail,
}

impl Policy for AeAllowList {
    type Session = Session;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<Session, Rejection> {
        check_called_ae(&self.ae_title, request)?;
        let Some(name) = self.allowed.get(request.calling_ae) else {
            if let Some(suppressed) = REFUSALS.admit("unknown-ae") {
                warn!(
                    calling_ae = request.calling_ae,
                    suppressed, "calling AE title not in the allow-list"
                );
            }
            alert(&self.audit, request, None, "unknown AE title").await;
            return Err(Rejection::CallingAeNotRecognized);
        };
        let facility = match self.index.facility_by_name(name).await {
            Ok(Some(facility)) => facility,
            Ok(None) => {
                warn!(facility = %name, "allow-listed AE maps to a facility that does not exist");
                return Err(Rejection::CallingAeNotRecognized);
            }
            Err(e) => {
                warn!(error = %e, "cannot look up facility");
                return Err(Rejection::Busy);
            }
        };
        with_user(&self.auth, &self.audit, facility, request).await
    }

    fn describe(&self, session: &Session) -> Option<String> {
        Some(session.facility.name.to_string())
    }
}
