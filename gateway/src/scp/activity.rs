//! What an association did, for the audit trail: who is on it (facility, user, peer,
//! calling AE) and how many instances it stored or had refused. The counts become one
//! `instances-transferred` event when the association ends (its [`Session`] is
//! dropped), not one per instance: ingest throughput matters.
//!
//! [`Session`]: super::Session

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use dimse::scp::{DataSink, StoreOutcome};

use crate::audit::{AuditEvent, AuditTrail, EventKind, Outcome, Protocol};
use crate::domain::FacilityId;
use crate::ingest::IngestSink;

/// One association's identity and store counts.
#[derive(Debug)]
pub struct Activity {
    trail: AuditTrail,
    facility: FacilityId,
    username: Option<String>,
    peer: IpAddr,
    calling_ae: String,
    stored: AtomicU64,
    refused: AtomicU64,
}

impl Activity {
    /// An association of `facility` from `peer` calling as `calling_ae`.
    pub fn new(
        trail: AuditTrail,
        facility: FacilityId,
        username: Option<String>,
        peer: IpAddr,
        calling_ae: &str,
    ) -> Activity {
        Activity {
            trail,
            facility,
            username,
            peer,
            calling_ae: calling_ae.chars().take(16).collect(),
            stored: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// An event about this association (facility, user and peer filled in).
    pub fn event(&self, kind: EventKind, outcome: Outcome) -> AuditEvent {
        let event = AuditEvent::new(kind, outcome, Protocol::Dicom)
            .facility(self.facility)
            .peer(self.peer);
        match &self.username {
            Some(user) => event.user(user.clone()),
            None => event,
        }
    }

    /// Records `event` (waits only if the audit queue is full).
    pub async fn record(&self, event: AuditEvent) {
        self.trail.record(event).await;
    }

    /// The audit trail.
    pub fn trail(&self) -> &AuditTrail {
        &self.trail
    }

    /// The calling AE title (at most 16 characters).
    pub fn calling_ae(&self) -> &str {
        &self.calling_ae
    }

    /// Counts one C-STORE by its outcome.
    pub fn count_store(&self, outcome: &StoreOutcome) {
        let counter = if outcome.status.is_success() || outcome.status.is_warning() {
            &self.stored
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Activity {
    /// The association is over: one event for everything it stored.
    fn drop(&mut self) {
        let stored = *self.stored.get_mut();
        let refused = *self.refused.get_mut();
        if stored == 0 && refused == 0 {
            return;
        }
        let outcome = match (stored, refused) {
            (_, 0) => Outcome::Success,
            (0, _) => Outcome::SeriousFailure,
            _ => Outcome::MinorFailure,
        };
        let event = self
            .event(EventKind::InstancesTransferred, outcome)
            .detail(format!(
                "C-STORE from {}: stored {stored}, refused {refused}",
                self.calling_ae
            ))
            .count(stored);
        self.trail.record_detached(event);
    }
}

/// An [`IngestSink`] that counts its outcome into the association's [`Activity`].
#[derive(Debug)]
pub struct CountingSink {
    pub(super) inner: IngestSink,
    pub(super) activity: std::sync::Arc<Activity>,
}

impl DataSink for CountingSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.inner.write(chunk).await
    }

    async fn finish(self) -> StoreOutcome {
        let outcome = self.inner.finish().await;
        self.activity.count_store(&outcome);
        outcome
    }

    async fn discard(self) {
        self.activity.refused.fetch_add(1, Ordering::Relaxed);
        self.inner.discard().await;
    }
}
