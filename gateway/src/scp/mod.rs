//! The gateway's DIMSE service and its admission policies.
//!
//! [`policy`] decides who may associate and as whom (facility, and for
//! query/retrieve the authenticated user); [`GatewayService`] answers C-ECHO, stores
//! C-STORE data sets through the ingest path, and answers C-FIND, C-GET and C-MOVE
//! from the index ([`query`]), always scoped to the session's facility.

pub mod policy;
mod query;

use std::sync::Arc;

use dimse::assoc::{AcceptedContext, Capabilities, VERIFICATION};
use dimse::command::{CFindRq, CStoreRq};
use dimse::qr::{FindResult, MoveDestination, Retrieval, RetrieveRequest};
use dimse::scp::{AssociationInfo, Service, StoreOutcome};
use tokio::sync::mpsc;

use crate::auth::User;
use crate::db::Facility;
use crate::ingest::scan::Encoding;
use crate::ingest::{Ingest, IngestSink};

pub use policy::{AeAllowList, CertificatePolicy, QR_SOP_CLASSES};

/// Who is on an association: the facility, and the user for query/retrieve.
#[derive(Debug, Clone)]
pub struct Session {
    /// The facility (from the certificate or the AE allow-list).
    pub facility: Facility,
    /// The authenticated user, when the association negotiated query/retrieve.
    pub user: Option<User>,
}

/// C-ECHO, C-STORE for every standard storage SOP class, and query/retrieve.
#[derive(Debug, Clone)]
pub struct GatewayService {
    /// The ingest path (and through it the index and the blobs).
    pub ingest: Arc<Ingest>,
}

impl Capabilities for GatewayService {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        uid == VERIFICATION
            || dimse::sop::is_storage_sop_class(uid)
            || QR_SOP_CLASSES.contains(&uid)
    }

    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        Encoding::from_transfer_syntax(uid).is_some()
    }

    fn sends_storage(&self) -> bool {
        true
    }
}

impl Service<Session> for GatewayService {
    type Sink = IngestSink;

    async fn begin_store(
        &self,
        session: &Session,
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<IngestSink, StoreOutcome> {
        IngestSink::begin(
            self.ingest.clone(),
            session.facility.clone(),
            &association.calling_ae,
            request,
            &context.transfer_syntax,
        )
        .await
    }

    async fn find(
        &self,
        session: &Session,
        _association: &AssociationInfo,
        request: &CFindRq,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
        query::find(&self.ingest.index, session, request, context, identifier).await
    }

    async fn retrieve(
        &self,
        session: &Session,
        _association: &AssociationInfo,
        request: &RetrieveRequest,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<Retrieval, StoreOutcome> {
        query::retrieve(&self.ingest, session, request, context, identifier).await
    }

    async fn move_destination(
        &self,
        _session: &Session,
        _association: &AssociationInfo,
        _ae_title: &str,
    ) -> Option<MoveDestination> {
        // Destinations registered per facility arrive with `device add`; until
        // then every destination is unknown (0xA801).
        None
    }
}
