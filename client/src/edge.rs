//! The edge port: one DICOM listener for both sides of the client. It admits the
//! modalities in the config, whose C-STORE goes into the intake's [`Spool`]
//! (streamed, fsynced, routed, outbox row committed, and only then success), and the
//! viewers of `[[edge.viewers]]`, whose C-FIND, C-GET and C-MOVE go to the clinician
//! side's [`ViewerProxy`]; modalities may only store, viewers may only query and
//! retrieve.
//!
//! Like the gateway's `scp/` above its `ingest/` and `qr/`, this module sits above
//! both sides and only dispatches: what is stored, and what is answered, is decided
//! below it.

use std::sync::Arc;

use dimse::Status;
use dimse::assoc::{AcceptedContext, AssociateRequest, Capabilities, Rejection, VERIFICATION};
use dimse::command::{CFindRq, CStoreRq};
use dimse::qr::{
    FindResult, MoveDestination, PATIENT_ROOT_FIND, PATIENT_ROOT_GET, PATIENT_ROOT_MOVE, Retrieval,
    RetrieveRequest, STUDY_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE,
};
use dimse::scan::Encoding;
use dimse::scp::{AssociationInfo, Service, StoreOutcome};
use dimse::server::Policy;
use tokio::sync::mpsc;
use tracing::warn;

use crate::clinician::viewer::{ViewerAccess, ViewerProxy};
use crate::intake::reload::LiveRules;
use crate::intake::spool::{Spool, SpoolSink};

/// What a peer admitted on the edge port may do.
#[derive(Debug, Clone)]
pub enum Role {
    /// A modality: stores only.
    Modality,
    /// A viewer: queries and retrieves only, as this gateway user, in this character
    /// set (UTF-8 if none).
    Viewer(
        Arc<crate::credentials::Login>,
        Option<dimse::charset::CharacterSet>,
    ),
}

/// A peer admitted on the edge port.
#[derive(Debug, Clone)]
pub struct Sender {
    /// Its calling AE title.
    pub calling_ae: String,
    /// Modality or viewer.
    pub role: Role,
}

/// One log line per second per kind of refused association (with the count left
/// out): a flood of unknown peers must not flood the log.
static REFUSALS: std::sync::LazyLock<dimse::throttle::LogThrottle> =
    std::sync::LazyLock::new(dimse::throttle::LogThrottle::default);

/// Admits the configured modalities and viewers (AE title, and host when given).
#[derive(Debug, Clone)]
pub struct ModalityPolicy {
    /// Our AE title.
    pub ae_title: String,
    /// Allowed modalities (followed from the config file while serving).
    pub rules: Arc<LiveRules>,
    /// Allowed viewers, with the gateway login used for each.
    pub viewers: Vec<ViewerAccess>,
}

impl Policy for ModalityPolicy {
    type Session = Sender;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<Sender, Rejection> {
        if request.called_ae != self.ae_title {
            return Err(Rejection::CalledAeNotRecognized);
        }
        let ip = request.peer.addr.ip().to_string();
        self.rules.refresh();
        let modalities = self.rules.modalities();
        let matches = |ae: &str, host: Option<&str>| {
            ae.trim() == request.calling_ae && host.is_none_or(|h| h.trim() == ip)
        };
        let role = if modalities
            .iter()
            .any(|m| matches(&m.ae_title, m.host.as_deref()))
        {
            Role::Modality
        } else if let Some(v) = self
            .viewers
            .iter()
            .find(|v| matches(&v.ae_title, v.host.as_deref()))
        {
            // User name + passcode (type 2, the only type with a secondary field).
            let own = request
                .user_identity
                .filter(|i| !i.secondary_field().is_empty())
                .map(|i| {
                    (
                        String::from_utf8_lossy(&i.primary_field()).into_owned(),
                        String::from_utf8_lossy(&i.secondary_field()).into_owned(),
                    )
                });
            let own_identity = own.is_some();
            match v.login_for(own).await {
                Ok(login) => Role::Viewer(login, v.character_set.clone()),
                Err(e) => {
                    if let Some(suppressed) = REFUSALS.admit("viewer-login") {
                        warn!(calling_ae = request.calling_ae, own_identity, error = %format!("{e:#}"), suppressed, "the gateway refused the viewer's login; rejected");
                    }
                    return Err(Rejection::NoReason);
                }
            }
        } else {
            if let Some(suppressed) = REFUSALS.admit("unknown-peer") {
                warn!(calling_ae = request.calling_ae, %ip, suppressed, "neither a modality nor a viewer in the config; rejected");
            }
            return Err(Rejection::CallingAeNotRecognized);
        };
        Ok(Sender {
            calling_ae: request.calling_ae.to_string(),
            role,
        })
    }
}

/// C-ECHO and C-STORE for the modalities; C-FIND and C-GET for the viewers.
#[derive(Debug, Clone)]
pub struct EdgeService {
    /// The spool.
    pub spool: Arc<Spool>,
    /// The viewer proxy, when viewers are configured.
    pub proxy: Option<Arc<ViewerProxy>>,
}

impl Capabilities for EdgeService {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        uid == VERIFICATION
            || dimse::sop::is_storage_sop_class(uid)
            || (self.proxy.is_some() && QUERY_RETRIEVE.contains(&uid))
    }
    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        Encoding::from_transfer_syntax(uid).is_some()
    }
    fn sends_storage(&self) -> bool {
        self.proxy.is_some()
    }
}

/// The Q/R SOP classes proxied for viewers.
const QUERY_RETRIEVE: [&str; 6] = [
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
];

fn not_authorized(what: &str) -> StoreOutcome {
    StoreOutcome::with(Status::NotAuthorized, what)
}

/// The proxy, login and character set of a viewer session.
type ViewerSession<'a> = (
    &'a ViewerProxy,
    &'a crate::credentials::Login,
    Option<&'a dimse::charset::CharacterSet>,
);

impl EdgeService {
    /// The proxy and login for a viewer session; refuses modalities.
    fn viewer<'a>(&'a self, sender: &'a Sender) -> Result<ViewerSession<'a>, StoreOutcome> {
        match (&sender.role, &self.proxy) {
            (Role::Viewer(login, charset), Some(proxy)) => Ok((proxy, login, charset.as_ref())),
            _ => Err(not_authorized("modalities may only store here")),
        }
    }
}

impl Service<Sender> for EdgeService {
    type Sink = SpoolSink;

    async fn begin_store(
        &self,
        sender: &Sender,
        _association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<SpoolSink, StoreOutcome> {
        if !matches!(sender.role, Role::Modality) {
            return Err(not_authorized("viewers may not store here"));
        }
        SpoolSink::begin(
            self.spool.clone(),
            &sender.calling_ae,
            request,
            &context.transfer_syntax,
        )
        .await
    }

    async fn find(
        &self,
        sender: &Sender,
        _association: &AssociationInfo,
        _request: &CFindRq,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
        let (proxy, login, charset) = self.viewer(sender)?;
        proxy.find(login, charset, context, identifier).await
    }

    async fn retrieve(
        &self,
        sender: &Sender,
        association: &AssociationInfo,
        request: &RetrieveRequest,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<Retrieval, StoreOutcome> {
        let (proxy, login, charset) = self.viewer(sender)?;
        proxy
            .retrieve(login, charset, association, request, context, identifier)
            .await
    }

    async fn move_destination(
        &self,
        sender: &Sender,
        _association: &AssociationInfo,
        ae_title: &str,
    ) -> Option<MoveDestination> {
        let (proxy, _, _) = self.viewer(sender).ok()?;
        proxy.move_destination(ae_title)
    }
}
