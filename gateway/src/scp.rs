//! The gateway's DIMSE service and its admission policies.
//!
//! [`CertificatePolicy`] (TLS port) admits a peer whose verified client certificate
//! was issued to a facility and not revoked; [`AeAllowList`] (plain port) admits
//! calling AE titles mapped to a facility in the config. Both refuse a called AE
//! title that is not ours. [`GatewayService`] answers C-ECHO and stores C-STORE data
//! sets through the ingest path.

use std::collections::HashMap;
use std::sync::Arc;

use dimse::assoc::{AcceptedContext, AssociateRequest, Capabilities, Rejection, VERIFICATION};
use dimse::command::CStoreRq;
use dimse::scp::{AssociationInfo, Service, StoreOutcome};
use dimse::server::Policy;
use tracing::{info, warn};

use crate::db::{Facility, Index};
use crate::domain::FacilityName;
use crate::ingest::scan::Encoding;
use crate::ingest::{Ingest, IngestSink};

fn check_called_ae(ours: &str, request: &AssociateRequest<'_>) -> Result<(), Rejection> {
    if request.called_ae == ours {
        Ok(())
    } else {
        info!(called_ae = request.called_ae, "called AE title is not ours");
        Err(Rejection::CalledAeNotRecognized)
    }
}

/// Admits facilities by their client certificate (TLS port).
#[derive(Debug, Clone)]
pub struct CertificatePolicy {
    /// The index (certificate fingerprints -> facility).
    pub index: Index,
    /// Our AE title.
    pub ae_title: String,
}

impl Policy for CertificatePolicy {
    type Session = Facility;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<Facility, Rejection> {
        check_called_ae(&self.ae_title, request)?;
        let Some(certificate) = &request.peer.certificate else {
            warn!("TLS peer without a client certificate");
            return Err(Rejection::CallingAeNotRecognized);
        };
        let fingerprint = crate::pki::fingerprint(certificate.as_ref());
        match self.index.facility_by_certificate(&fingerprint).await {
            Ok(Some(facility)) => {
                info!(facility = %facility.name, calling_ae = request.calling_ae, "facility associated");
                Ok(facility)
            }
            Ok(None) => {
                warn!(%fingerprint, "certificate not enrolled for any facility (or revoked)");
                Err(Rejection::CallingAeNotRecognized)
            }
            Err(e) => {
                warn!(error = %e, "cannot check certificate");
                Err(Rejection::Busy)
            }
        }
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
}

impl Policy for AeAllowList {
    type Session = Facility;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<Facility, Rejection> {
        check_called_ae(&self.ae_title, request)?;
        let Some(name) = self.allowed.get(request.calling_ae) else {
            warn!(
                calling_ae = request.calling_ae,
                "calling AE title not in the allow-list"
            );
            return Err(Rejection::CallingAeNotRecognized);
        };
        match self.index.facility_by_name(name).await {
            Ok(Some(facility)) => Ok(facility),
            Ok(None) => {
                warn!(facility = %name, "allow-listed AE maps to a facility that does not exist");
                Err(Rejection::CallingAeNotRecognized)
            }
            Err(e) => {
                warn!(error = %e, "cannot look up facility");
                Err(Rejection::Busy)
            }
        }
    }
}

/// C-ECHO and C-STORE for every standard storage SOP class.
#[derive(Debug, Clone)]
pub struct GatewayService {
    /// The ingest path.
    pub ingest: Arc<Ingest>,
}

impl Capabilities for GatewayService {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        uid == VERIFICATION || dimse::sop::is_storage_sop_class(uid)
    }

    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        Encoding::from_transfer_syntax(uid).is_some()
    }
}

impl Service<Facility> for GatewayService {
    type Sink = IngestSink;

    async fn begin_store(
        &self,
        facility: &Facility,
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<IngestSink, StoreOutcome> {
        IngestSink::begin(
            self.ingest.clone(),
            facility.clone(),
            &association.calling_ae,
            request,
            &context.transfer_syntax,
        )
        .await
    }
}
