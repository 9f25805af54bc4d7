//! The edge SCP that modalities store to (DESIGN.md Ingest steps 1-3): admits the
//! modalities in the config, streams each data set into the spool, fsyncs it, routes
//! it with the sharing rules, commits its outbox row, and only then answers success.
//! The spool doubles as the client's local store.
//!
//! The same port admits the viewers of `[[edge.viewers]]`, whose C-FIND and C-GET go
//! to the [`ViewerProxy`]; modalities may only store, viewers may only query and
//! retrieve.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dimse::Status;
use dimse::assoc::{AcceptedContext, AssociateRequest, Capabilities, Rejection, VERIFICATION};
use dimse::command::{CFindRq, CStoreRq};
use dimse::qr::{
    FindResult, MoveDestination, PATIENT_ROOT_FIND, PATIENT_ROOT_GET, PATIENT_ROOT_MOVE, Retrieval,
    RetrieveRequest, STUDY_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE,
};
use dimse::scan::{self, Encoding, Header};
use dimse::scp::{AssociationInfo, DataSink, Service, StoreOutcome};
use dimse::server::Policy;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::clinician::viewer::{ViewerAccess, ViewerProxy};
use crate::config::{Config, Destination};
use crate::outbox::{Inserted, NewEntry, Outbox, State};
use crate::reload::LiveRules;
use crate::rules::{self, Facts};
use crate::uid::{usable_uid, valid_uid};

mod intake;

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

/// Where received instances go.
#[derive(Debug)]
pub struct Spool {
    /// Root of the spool / local store.
    pub root: PathBuf,
    /// The outbox.
    pub outbox: Outbox,
    /// Sharing rules (the same live values the [`ModalityPolicy`] refreshes).
    pub rules: Arc<LiveRules>,
}

impl Spool {
    /// Opens the spool under `config.data_dir`. `owner`: this process holds the data
    /// dir's lock, so incomplete transfers left by a stop are its own to remove (a
    /// `send` next to a running `serve` must not touch serve's transfers in flight).
    pub fn open(config: &Config, outbox: Outbox, owner: bool) -> std::io::Result<Arc<Spool>> {
        let root = config.data_dir.join("spool");
        let incoming = root.join("incoming");
        std::fs::create_dir_all(&incoming)?;
        if owner {
            for entry in std::fs::read_dir(&incoming)?.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Arc::new(Spool {
            root,
            outbox,
            rules: LiveRules::new(config),
        }))
    }

    /// Path of one received version of an instance: UIDs were validated by the
    /// caller; `reception` (unique per reception) keeps every version in its own file.
    fn path_for(&self, study: &str, sop: &str, reception: &str) -> PathBuf {
        self.root.join(study).join(format!("{sop}.{reception}.dcm"))
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

fn fail(status: Status, what: &str) -> StoreOutcome {
    StoreOutcome::with(status, what)
}

/// Receives one data set into the spool.
#[derive(Debug)]
pub struct SpoolSink {
    spool: Arc<Spool>,
    calling_ae: String,
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
    encoding: Encoding,
    reception: String,
    temp: PathBuf,
    file: BufWriter<tokio::fs::File>,
    meta_len: u64,
    hasher: Sha256,
    size: u64,
}

impl SpoolSink {
    /// Checks the request and opens a temp file with a Part-10 header.
    pub async fn begin(
        spool: Arc<Spool>,
        calling_ae: &str,
        rq: &CStoreRq,
        ts: &str,
    ) -> Result<SpoolSink, StoreOutcome> {
        if !usable_uid(&rq.affected_sop_instance_uid) {
            return Err(fail(
                Status::CannotUnderstand,
                "Affected SOP Instance UID: not 1-64 digits and dots",
            ));
        }
        if !valid_uid(&rq.affected_sop_class_uid) {
            return Err(fail(
                Status::CannotUnderstand,
                "Affected SOP Class UID: not a valid UID",
            ));
        }
        let encoding = Encoding::from_transfer_syntax(ts).ok_or_else(|| {
            fail(
                Status::CannotUnderstand,
                "transfer syntax not supported here",
            )
        })?;
        let reception = uuid::Uuid::new_v4().simple().to_string();
        let temp = spool
            .root
            .join("incoming")
            .join(format!("{reception}.part"));
        let meta = dimse::part10::encode_meta(
            &rq.affected_sop_class_uid,
            &rq.affected_sop_instance_uid,
            ts,
            calling_ae,
        );
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|_| fail(Status::OutOfResources, "cannot create spool file"))?;
        let mut file = BufWriter::with_capacity(1024 * 1024, file);
        if file.write_all(&meta).await.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(fail(Status::OutOfResources, "cannot write spool file"));
        }
        Ok(SpoolSink {
            spool,
            calling_ae: calling_ae.to_string(),
            sop_class: rq.affected_sop_class_uid.clone(),
            sop_instance: rq.affected_sop_instance_uid.clone(),
            transfer_syntax: ts.to_string(),
            encoding,
            reception,
            temp,
            file,
            meta_len: meta.len() as u64,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    async fn complete(&mut self) -> Result<StoreOutcome, StoreOutcome> {
        self.file
            .flush()
            .await
            .map_err(|_| fail(Status::OutOfResources, "cannot write spool file"))?;
        let header = scan_file(&self.temp, self.meta_len, self.encoding).await?;
        let study = intake::check(&header, &self.sop_class, &self.sop_instance)?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let target = self
            .spool
            .path_for(&study, &self.sop_instance, &self.reception);
        durable_rename(&self.temp, &target).await.map_err(|e| {
            warn!(error = %e, "cannot spool instance");
            fail(Status::OutOfResources, "cannot write spool file")
        })?;
        let flag = self
            .spool
            .outbox
            .study_flag(&study)
            .await
            .map_err(db_failure)?;
        let facts = Facts {
            calling_ae: &self.calling_ae,
            modality: header.modality.as_deref(),
            study_description: header.study_description.as_deref(),
        };
        let state = match rules::route(&self.spool.rules.sharing(), flag, facts) {
            Destination::Forward => State::Pending,
            Destination::Local => State::Local,
        };
        let entry = NewEntry {
            sop_instance_uid: self.sop_instance.clone(),
            sop_class_uid: self.sop_class.clone(),
            study_uid: study,
            transfer_syntax: self.transfer_syntax.clone(),
            modality: header.modality.clone(),
            study_description: header.study_description.clone(),
            calling_ae: self.calling_ae.clone(),
            spool_path: target.display().to_string(),
            sha256,
            size_bytes: self.size as i64,
            state,
        };
        let (inserted, superseded) = match self.spool.outbox.insert(&entry).await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&target).await;
                return Err(db_failure(e));
            }
        };
        match inserted {
            Inserted::New => {}
            Inserted::Identical => {
                // The latest version has these bytes: this copy is not needed.
                let _ = tokio::fs::remove_file(&target).await;
                info!(sop_instance_uid = %self.sop_instance, "instance received again, identical; nothing to do");
            }
            Inserted::NewVersion(version) => {
                info!(sop_instance_uid = %self.sop_instance, version, "instance received again with other content: queued as a new version");
            }
        }
        for path in superseded {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(StoreOutcome::success())
    }
}

fn db_failure(e: sqlx::Error) -> StoreOutcome {
    warn!(error = %e, "outbox write failed");
    fail(
        Status::ProcessingFailure,
        "outbox unavailable; see the client log",
    )
}

async fn scan_file(path: &Path, offset: u64, encoding: Encoding) -> Result<Header, StoreOutcome> {
    let path = path.to_path_buf();
    let scanned = tokio::task::spawn_blocking(move || -> Result<Header, String> {
        let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        scan::scan(BufReader::with_capacity(256 * 1024, file), encoding).map_err(|e| e.to_string())
    })
    .await;
    match scanned {
        Ok(Ok(header)) => Ok(header),
        Ok(Err(reason)) => Err(fail(
            Status::CannotUnderstand,
            &format!("malformed data set: {reason}"),
        )),
        Err(_) => Err(fail(Status::ProcessingFailure, "scan failed")),
    }
}

/// Renames `from` to `to` (creating its directory) and fsyncs the file and the
/// directory, so the spooled instance survives a crash.
pub async fn durable_rename(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let dir = to
            .parent()
            .ok_or_else(|| std::io::Error::other("spool path without a directory"))?;
        let new_dir = !dir.exists();
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&from, &to)?;
        std::fs::File::open(&to)?.sync_all()?;
        std::fs::File::open(dir)?.sync_all()?;
        if new_dir && let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

impl DataSink for SpoolSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .await
            .map_err(|_| fail(Status::OutOfResources, "cannot write spool file"))
    }

    async fn finish(mut self) -> StoreOutcome {
        let outcome = self.complete().await.unwrap_or_else(|refused| refused);
        let _ = tokio::fs::remove_file(&self.temp).await;
        if !outcome.status.is_success() {
            warn!(
                sop_instance_uid = %self.sop_instance,
                calling_ae = %self.calling_ae,
                status = %outcome.status,
                reason = outcome.comment.as_deref().unwrap_or(""),
                "instance refused"
            );
        }
        outcome
    }

    async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.temp).await;
    }
}
