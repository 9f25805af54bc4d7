//! The gateway's DIMSE service and its admission policies.
//!
//! [`policy`] decides who may associate and as whom (facility, and for
//! query/retrieve the authenticated user); [`GatewayService`] answers C-ECHO, stores
//! C-STORE data sets through the ingest path, and answers C-FIND, C-GET and C-MOVE
//! from the index ([`query`]), always scoped to the session's facility. C-MOVE goes
//! only to destinations registered for that facility (`pacs-gateway device add`).
//! Every association carries an [`activity::Activity`] through which admissions,
//! queries, retrievals and stores reach the audit trail.

pub mod activity;
pub mod policy;
mod query;

use std::sync::Arc;

use dimse::assoc::{AcceptedContext, Capabilities, VERIFICATION};
use dimse::command::{CFindRq, CStoreRq};
use dimse::qr::{FindResult, MoveDestination, Retrieval, RetrieveRequest};
use dimse::scp::{AssociationInfo, Service, StoreOutcome};
use dimse::scu::ClientTls;
use rustls::pki_types::ServerName;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::audit::{EventKind, Outcome};
use crate::auth::User;
use crate::db::Facility;
use crate::db::destinations::Destination;
use crate::domain::AeTitle;
use crate::ingest::scan::Encoding;
use crate::ingest::{Ingest, IngestSink};

use activity::{Activity, CountingSink};
pub use policy::{AeAllowList, CertificatePolicy, QR_SOP_CLASSES};

/// Who is on an association: the facility, and the user for query/retrieve.
#[derive(Debug, Clone)]
pub struct Session {
    /// The facility (from the certificate or the AE allow-list).
    pub facility: Facility,
    /// The authenticated user, when the association negotiated query/retrieve.
    pub user: Option<User>,
    /// Who the association is, for the audit trail, and what it stored; its last
    /// clone records the association's `instances-transferred` event.
    pub activity: Arc<Activity>,
}

/// C-ECHO, C-STORE for every standard storage SOP class, and query/retrieve.
#[derive(Debug, Clone)]
pub struct GatewayService {
    /// The ingest path (and through it the index and the blobs).
    pub ingest: Arc<Ingest>,
    /// TLS client settings for C-MOVE destinations registered with `--tls` (roots:
    /// the gateway's CA); `None` refuses those destinations.
    pub move_tls: Option<Arc<rustls::ClientConfig>>,
}

impl GatewayService {
    /// How to reach a registered destination, if we can.
    fn reach(&self, destination: Destination) -> Option<MoveDestination> {
        let tls = if destination.tls {
            let Some(config) = self.move_tls.clone() else {
                warn!(ae_title = %destination.ae_title, "C-MOVE destination wants TLS but the gateway has no TLS client settings");
                return None;
            };
            let Ok(server_name) = ServerName::try_from(destination.host.clone()) else {
                warn!(ae_title = %destination.ae_title, "C-MOVE destination host is not a valid TLS server name");
                return None;
            };
            Some(ClientTls {
                config,
                server_name,
            })
        } else {
            None
        };
        Some(MoveDestination {
            address: destination.address(),
            ae_title: destination.ae_title.as_str().to_string(),
            tls,
        })
    }
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
    type Sink = CountingSink;

    async fn begin_store(
        &self,
        session: &Session,
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<CountingSink, StoreOutcome> {
        let inner = IngestSink::begin(
            self.ingest.clone(),
            session.facility.clone(),
            &association.calling_ae,
            request,
            &context.transfer_syntax,
        )
        .await
        .inspect_err(|outcome| session.activity.count_store(outcome))?;
        Ok(CountingSink {
            inner,
            activity: session.activity.clone(),
        })
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
        session: &Session,
        _association: &AssociationInfo,
        ae_title: &str,
    ) -> Option<MoveDestination> {
        let facility = &session.facility;
        let user = session.user.as_ref().map(|u| u.username.to_string());
        let found = match AeTitle::parse(ae_title) {
            Ok(ae) => match self.ingest.index.find_destination(facility.id, &ae).await {
                Ok(found) => found,
                Err(e) => {
                    warn!(error = %e, "cannot look up the C-MOVE destination");
                    None
                }
            },
            Err(_) => None,
        };
        let reached = found.and_then(|d| self.reach(d));
        match &reached {
            Some(d) => {
                info!(target: "audit", facility = %facility.name, user, event = "retrieve-move", destination = %d.ae_title, outcome = "accepted", "C-MOVE destination")
            }
            None => {
                warn!(target: "audit", facility = %facility.name, user, event = "retrieve-move", outcome = "refused", "C-MOVE destination unknown for this facility");
                let shown: String = ae_title
                    .chars()
                    .take(16)
                    .map(|c| {
                        if c.is_ascii_graphic() || c == ' ' {
                            c
                        } else {
                            '?'
                        }
                    })
                    .collect();
                let event = session
                    .activity
                    .event(EventKind::BeginTransferring, Outcome::MinorFailure)
                    .detail(format!(
                        "C-MOVE refused: destination {shown} unknown for this facility"
                    ));
                session.activity.record(event).await;
            }
        }
        reached
    }
}
