//! The audit trail, after the DICOM PS3.15 A.5 audit messages: who did what, from
//! where, for which facility, with what outcome and how many objects.
//!
//! Callers build an [`AuditEvent`] and hand it to an [`AuditTrail`]; a background
//! writer ([`trail`]) inserts queued events into the append-only `audit_events` table
//! in batches and passes them on to the optional syslog export ([`syslog`]).
//! [`search`] reads them back, newest first.
//!
//! Events never carry a patient identifier, not even a pseudonymous one: only levels,
//! AE titles, SOP class names, reasons and counts go into [`AuditEvent::detail`].

mod store;
pub mod syslog;
mod trail;

use std::fmt;

use crate::domain::FacilityId;

pub use store::{AuditFilter, MAX_LIMIT, StoredEvent, rfc3339, search};
pub use trail::{AuditProbe, AuditTrail};

/// Longest detail text kept, in characters.
pub const MAX_DETAIL: usize = 256;

/// What happened (PS3.15 A.5.3 event IDs, plus administrative changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Instances were stored or sent (DCM 110104).
    InstancesTransferred,
    /// A C-FIND (DCM 110112).
    Query,
    /// A C-GET or C-MOVE started (DCM 110102).
    BeginTransferring,
    /// A user logged in (DCM 110114, Login).
    Login,
    /// A user logged out (DCM 110114, Logout).
    Logout,
    /// A login failed (DCM 110114, with a failure outcome).
    AuthenticationFailure,
    /// Instances were deleted (DCM 110105).
    InstancesDeleted,
    /// A refused peer, a revoked certificate, a quota warning (DCM 110113).
    SecurityAlert,
    /// A configuration change by an operator or administrator.
    AdminChange,
}

impl EventKind {
    /// Every kind, for parsing and listing.
    pub const ALL: [EventKind; 9] = [
        EventKind::InstancesTransferred,
        EventKind::Query,
        EventKind::BeginTransferring,
        EventKind::Login,
        EventKind::Logout,
        EventKind::AuthenticationFailure,
        EventKind::InstancesDeleted,
        EventKind::SecurityAlert,
        EventKind::AdminChange,
    ];

    /// The name stored in `audit_events.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::InstancesTransferred => "instances-transferred",
            EventKind::Query => "query",
            EventKind::BeginTransferring => "begin-transferring",
            EventKind::Login => "login",
            EventKind::Logout => "logout",
            EventKind::AuthenticationFailure => "authentication-failure",
            EventKind::InstancesDeleted => "instances-deleted",
            EventKind::SecurityAlert => "security-alert",
            EventKind::AdminChange => "admin-change",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// PS3.15 A.5.3 EventOutcomeIndicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 0: success.
    Success,
    /// 4: minor failure (the action was refused or partly done).
    MinorFailure,
    /// 8: serious failure (the action was not done).
    SeriousFailure,
    /// 12: major failure (the system is unable to act).
    MajorFailure,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 4] = [
        Outcome::Success,
        Outcome::MinorFailure,
        Outcome::SeriousFailure,
        Outcome::MajorFailure,
    ];

    /// The name stored in `audit_events.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::MinorFailure => "minor-failure",
            Outcome::SeriousFailure => "serious-failure",
            Outcome::MajorFailure => "major-failure",
        }
    }

    /// The PS3.15 numeric code (0, 4, 8, 12).
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::MinorFailure => 4,
            Outcome::SeriousFailure => 8,
            Outcome::MajorFailure => 12,
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which interface the event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// DIMSE (DICOM TLS or the plain port).
    Dicom,
    /// The HTTPS API.
    Https,
    /// The operator's command line.
    Cli,
}

impl Protocol {
    /// The name stored in `audit_events.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dicom => "dicom",
            Protocol::Https => "https",
            Protocol::Cli => "cli",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Protocol> {
        [Protocol::Dicom, Protocol::Https, Protocol::Cli]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One audit event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened.
    pub kind: EventKind,
    /// How it went.
    pub outcome: Outcome,
    /// The facility, when known.
    pub facility_id: Option<FacilityId>,
    /// The user (a gateway user name, never a patient's), when known.
    pub username: Option<String>,
    /// IP address of the peer, when there is one.
    pub peer: Option<String>,
    /// Where the request came from.
    pub protocol: Protocol,
    /// Short text without identifiers: level, AE titles, SOP class, reason, counts.
    pub detail: String,
    /// Number of objects concerned (instances, matches).
    pub object_count: i64,
}

impl AuditEvent {
    /// An event with no facility, user, peer, detail or count yet.
    pub fn new(kind: EventKind, outcome: Outcome, protocol: Protocol) -> AuditEvent {
        AuditEvent {
            kind,
            outcome,
            facility_id: None,
            username: None,
            peer: None,
            protocol,
            detail: String::new(),
            object_count: 0,
        }
    }

    /// Sets the facility.
    pub fn facility(mut self, facility: FacilityId) -> Self {
        self.facility_id = Some(facility);
        self
    }

    /// Sets the user name.
    pub fn user(mut self, username: impl Into<String>) -> Self {
        self.username = Some(clean(&username.into(), 64));
        self
    }

    /// Sets the peer address.
    pub fn peer(mut self, peer: impl ToString) -> Self {
        self.peer = Some(clean(&peer.to_string(), 64));
        self
    }

    /// Sets the detail text (control characters replaced, length capped).
    pub fn detail(mut self, detail: impl AsRef<str>) -> Self {
        self.detail = clean(detail.as_ref(), MAX_DETAIL);
        self
    }

    /// Sets the object count.
    pub fn count(mut self, count: impl TryInto<i64>) -> Self {
        self.object_count = count.try_into().unwrap_or(i64::MAX);
        self
    }
}

/// Replaces control characters by `?` and keeps at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(EventKind::parse("Query"), None);
        assert_eq!(Outcome::MajorFailure.code(), 12);
    }

    #[test]
    fn detail_is_cleaned_and_capped() {
        let e = AuditEvent::new(EventKind::Query, Outcome::Success, Protocol::Dicom)
            .detail(format!("a\nb{}", "x".repeat(1000)));
        assert!(e.detail.starts_with("a?b"));
        assert_eq!(e.detail.chars().count(), MAX_DETAIL);
    }
}
