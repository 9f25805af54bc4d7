//! The requestor (SCU) side: connect over TCP or DICOM TLS (optionally with a client
//! certificate, a user identity and SCP/SCU role selection), negotiate presentation
//! contexts, and send C-ECHO and C-STORE, streaming each data set in PDVs sized to
//! the peer's maximum PDU. Query/retrieve (C-FIND, C-GET with its incoming C-STORE
//! sub-operations, C-MOVE) lives in the child module `qr`; reading messages in
//! `receive`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::{
    AssociationRQ, PDataValue, PresentationContextProposed, PresentationContextResultReason,
    UserIdentity, UserIdentityType, UserVariableItem,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpStream;

use crate::assoc::{
    APPLICATION_CONTEXT, AcceptedContext, EXPLICIT_VR_LE, IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION, IMPLICIT_VR_LE, RoleSelection, VERIFICATION, role_selections,
};
use crate::command::{CEchoRq, CStoreRq, CStoreRsp, Message, Priority};
use crate::error::DimseError;
use crate::part10::{FileMeta, parse_meta};
use crate::pdu_io::PduConn;
use crate::status::Status;

mod qr;
mod receive;

pub use qr::{
    FindOutcome, MemorySink, MemoryStore, ReceivedInstance, RetrieveOutcome, StoreHandler,
};

/// TLS settings of a requestor.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// Roots, cipher suites and optional client certificate.
    pub config: Arc<rustls::ClientConfig>,
    /// Name the server certificate must carry.
    pub server_name: ServerName<'static>,
}

/// User identity to present (PS3.7 D.3.3.7).
#[derive(Clone)]
pub enum Credentials {
    /// User name and passcode (type 2).
    UsernamePassword {
        /// User name.
        username: String,
        /// Passcode.
        password: String,
    },
    /// A bearer token (JSON Web Token, type 5).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::UsernamePassword { username, .. } => {
                write!(f, "UsernamePassword({username}, [redacted])")
            }
            Credentials::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// How to reach and associate with a peer.
#[derive(Debug, Clone)]
pub struct ScuOptions {
    /// Our AE title.
    pub calling_ae: String,
    /// The peer's AE title.
    pub called_ae: String,
    /// Largest PDU we accept.
    pub max_pdu: u32,
    /// Time allowed to connect, handshake and associate.
    pub connect_timeout: Duration,
    /// Time allowed for each response.
    pub read_timeout: Duration,
    /// DICOM TLS, or plain TCP when `None`.
    pub tls: Option<ClientTls>,
    /// User identity negotiation.
    pub credentials: Option<Credentials>,
    /// SCP/SCU Role Selection items to propose: [`RoleSelection::scp`] for each storage
    /// class a C-GET should bring back.
    pub roles: Vec<RoleSelection>,
}

impl ScuOptions {
    /// Plain-TCP options with default limits.
    pub fn new(calling_ae: impl Into<String>, called_ae: impl Into<String>) -> Self {
        ScuOptions {
            calling_ae: calling_ae.into(),
            called_ae: called_ae.into(),
            max_pdu: 256 * 1024,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            tls: None,
            credentials: None,
            roles: Vec::new(),
        }
    }
}

/// One presentation context to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// SOP class.
    pub abstract_syntax: String,
    /// Transfer syntaxes, in order of preference.
    pub transfer_syntaxes: Vec<String>,
}

impl Proposal {
    /// Verification (C-ECHO) in Implicit VR Little Endian.
    pub fn verification() -> Self {
        Proposal {
            abstract_syntax: VERIFICATION.to_string(),
            transfer_syntaxes: vec![IMPLICIT_VR_LE.to_string()],
        }
    }

    /// A query/retrieve information model (or any request without bulk data), in
    /// Explicit then Implicit VR Little Endian.
    pub fn query(sop_class: impl Into<String>) -> Self {
        Proposal {
            abstract_syntax: sop_class.into(),
            transfer_syntaxes: vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()],
        }
    }

    /// One context per distinct (SOP class, transfer syntax) among the files, so that
    /// each file goes exactly as it is stored (no transcoding).
    pub fn for_files(metas: &[FileMeta]) -> Vec<Proposal> {
        let mut out: Vec<Proposal> = Vec::new();
        for meta in metas {
            let exists = out.iter().any(|p| {
                p.abstract_syntax == meta.sop_class_uid
                    && p.transfer_syntaxes[0] == meta.transfer_syntax
            });
            if !exists {
                out.push(Proposal {
                    abstract_syntax: meta.sop_class_uid.clone(),
                    transfer_syntaxes: vec![meta.transfer_syntax.clone()],
                });
            }
        }
        out
    }
}

/// Reads the meta header of a Part-10 file.
pub async fn read_file_meta(path: &Path) -> Result<FileMeta, DimseError> {
    let fail = |reason: String| DimseError::File {
        path: path.display().to_string(),
        reason,
    };
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut head = Vec::with_capacity(4096);
    (&mut file)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .await
        .map_err(|e| fail(e.to_string()))?;
    parse_meta(&head).map_err(|e| fail(e.to_string()))
}

/// An established association, as requestor.
#[derive(Debug)]
pub struct ScuAssociation {
    conn: PduConn,
    contexts: Vec<AcceptedContext>,
    peer_max_pdu: u32,
    next_message_id: u16,
    /// PDVs of a P-DATA-TF PDU not consumed yet.
    pending: VecDeque<PDataValue>,
}

impl ScuAssociation {
    /// Connects to `addr` and negotiates `proposals`.
    pub async fn connect(
        addr: &str,
        options: &ScuOptions,
        proposals: &[Proposal],
    ) -> Result<Self, DimseError> {
        let attempt = Self::connect_inner(addr, options, proposals);
        match tokio::time::timeout(options.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(DimseError::Timeout(options.connect_timeout)),
        }
    }

    async fn connect_inner(
        addr: &str,
        options: &ScuOptions,
        proposals: &[Proposal],
    ) -> Result<Self, DimseError> {
        if proposals.is_empty() || proposals.len() > 128 {
            return Err(DimseError::NoContext(format!(
                "{} proposals (1 to 128 allowed)",
                proposals.len()
            )));
        }
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let stream: Box<dyn crate::pdu_io::Io> = match &options.tls {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let stream = connector
                    .connect(tls.server_name.clone(), socket)
                    .await
                    .map_err(|e| DimseError::Tls(e.to_string()))?;
                Box::new(stream)
            }
            None => Box::new(socket),
        };
        let mut conn = PduConn::new(stream, options.max_pdu, options.read_timeout);
        conn.write_pdu(&Pdu::AssociationRQ(request(options, proposals)))
            .await?;
        let ac = match conn.read_pdu().await? {
            Pdu::AssociationAC(ac) => ac,
            Pdu::AssociationRJ(rj) => {
                return Err(DimseError::Rejected(format!(
                    "{:?}: {}",
                    rj.result, rj.source
                )));
            }
            Pdu::AbortRQ { .. } => return Err(DimseError::Aborted),
            other => {
                return Err(DimseError::Unexpected(
                    other.short_description().to_string(),
                ));
            }
        };
        let granted = role_selections(&ac.user_variables);
        let contexts = ac
            .presentation_contexts
            .iter()
            .filter(|r| r.reason == PresentationContextResultReason::Acceptance)
            .filter_map(|r| {
                let index = usize::from(r.id / 2);
                let p = proposals.get(index)?;
                let (scu_role, scp_role) = roles_of(&options.roles, &granted, &p.abstract_syntax);
                Some(AcceptedContext {
                    id: r.id,
                    abstract_syntax: p.abstract_syntax.clone(),
                    transfer_syntax: r.transfer_syntax.trim_end_matches(['\0', ' ']).to_string(),
                    scu_role,
                    scp_role,
                })
            })
            .collect();
        let peer_max_pdu = crate::assoc::peer_max_pdu(&ac.user_variables);
        Ok(ScuAssociation {
            conn,
            contexts,
            peer_max_pdu,
            next_message_id: 1,
            pending: VecDeque::new(),
        })
    }

    /// Contexts the acceptor accepted.
    pub fn contexts(&self) -> &[AcceptedContext] {
        &self.contexts
    }

    /// The accepted context for this SOP class and transfer syntax on which we may
    /// send requests (SCU role).
    pub fn context_for(&self, sop_class: &str, transfer_syntax: &str) -> Option<&AcceptedContext> {
        self.contexts.iter().find(|c| {
            c.abstract_syntax == sop_class && c.transfer_syntax == transfer_syntax && c.scu_role
        })
    }

    /// The largest PDU the acceptor takes.
    pub fn peer_max_pdu(&self) -> u32 {
        self.peer_max_pdu
    }

    fn message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    /// Sends a C-ECHO and returns the status.
    pub async fn echo(&mut self) -> Result<Status, DimseError> {
        let context = self
            .contexts
            .iter()
            .find(|c| c.abstract_syntax == VERIFICATION)
            .map(|c| c.id)
            .ok_or_else(|| DimseError::NoContext("Verification".into()))?;
        let rq = CEchoRq {
            message_id: self.message_id(),
            affected_sop_class_uid: VERIFICATION.into(),
        };
        self.send_command(context, &rq.into()).await?;
        match self.read_command(context).await? {
            Message::CEchoRsp(rsp) => Ok(rsp.status),
            other => Err(DimseError::Unexpected(format!(
                "{other:?} in answer to C-ECHO"
            ))),
        }
    }

    /// Sends a Part-10 file's data set with C-STORE, exactly as stored in the file.
    pub async fn store_file(&mut self, path: &Path) -> Result<CStoreRsp, DimseError> {
        let meta = read_file_meta(path).await?;
        let fail = |reason: String| DimseError::File {
            path: path.display().to_string(),
            reason,
        };
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        file.seek(std::io::SeekFrom::Start(meta.dataset_offset as u64))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let file = tokio::io::BufReader::with_capacity(256 * 1024, file);
        self.store(
            &meta.sop_class_uid,
            &meta.sop_instance_uid,
            &meta.transfer_syntax,
            file,
        )
        .await
    }

    /// Sends a data set (already in `transfer_syntax`) with C-STORE.
    pub async fn store(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        data: impl AsyncRead + Unpin,
    ) -> Result<CStoreRsp, DimseError> {
        self.store_for(sop_class, sop_instance, transfer_syntax, data, None)
            .await
    }

    /// [`ScuAssociation::store`] as a C-MOVE sub-operation when `originator` (the
    /// C-MOVE requestor's AE title and message id) is given.
    pub(crate) async fn store_for(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        mut data: impl AsyncRead + Unpin,
        originator: Option<(&str, u16)>,
    ) -> Result<CStoreRsp, DimseError> {
        let context = self
            .context_for(sop_class, transfer_syntax)
            .map(|c| c.id)
            .ok_or_else(|| DimseError::NoContext(format!("{sop_class} in {transfer_syntax}")))?;
        let rq = CStoreRq {
            message_id: self.message_id(),
            affected_sop_class_uid: sop_class.to_string(),
            affected_sop_instance_uid: sop_instance.to_string(),
            priority: Priority::Medium,
            move_originator_ae_title: originator.map(|(ae, _)| ae.to_string()),
            move_originator_message_id: originator.map(|(_, id)| id),
        };
        let command = Message::from(rq).encode();
        self.conn
            .send_command_and_data_set(context, &command, self.peer_max_pdu, &mut data)
            .await?;
        match self.read_command(context).await? {
            Message::CStoreRsp(rsp) => Ok(rsp),
            other => Err(DimseError::Unexpected(format!(
                "{other:?} in answer to C-STORE"
            ))),
        }
    }

    /// Sends a command set in one PDV.
    pub async fn send_command(&mut self, context: u8, message: &Message) -> Result<(), DimseError> {
        self.conn.send_command(context, &message.encode()).await
    }

    /// Streams a data set in PDVs that fit the peer's maximum PDU.
    pub async fn send_data(
        &mut self,
        context: u8,
        data: &mut (impl AsyncRead + Unpin),
    ) -> Result<(), DimseError> {
        self.conn
            .send_data_set(context, self.peer_max_pdu, data)
            .await
    }

    /// Releases the association politely.
    pub async fn release(mut self) -> Result<(), DimseError> {
        self.conn.write_pdu(&Pdu::ReleaseRQ).await?;
        let result = match self.conn.read_pdu().await {
            Ok(Pdu::ReleaseRP) => Ok(()),
            Ok(other) => Err(DimseError::Unexpected(
                other.short_description().to_string(),
            )),
            Err(e) => Err(e),
        };
        self.conn.shutdown().await;
        result
    }

    /// Aborts the association.
    pub async fn abort(mut self) {
        self.conn.abort_as_user().await;
    }
}

/// The roles of the SOP class as negotiated: the default ones (we are SCU) unless we
/// proposed a Role Selection item; then what the acceptor answered, or the default
/// when it did not answer (PS3.7 D.3.3.4).
fn roles_of(
    proposed: &[RoleSelection],
    granted: &[RoleSelection],
    sop_class: &str,
) -> (bool, bool) {
    if !proposed.iter().any(|r| r.sop_class_uid == sop_class) {
        return (true, false);
    }
    granted
        .iter()
        .find(|r| r.sop_class_uid == sop_class)
        .map_or((true, false), |r| (r.scu_role, r.scp_role))
}

fn request(options: &ScuOptions, proposals: &[Proposal]) -> AssociationRQ {
    let mut user_variables = vec![
        UserVariableItem::MaxLength(options.max_pdu),
        UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.into()),
        UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION.into()),
    ];
    user_variables.extend(options.roles.iter().map(RoleSelection::to_item));
    if let Some(credentials) = &options.credentials {
        let identity = match credentials {
            Credentials::UsernamePassword { username, password } => UserIdentity::new(
                false,
                UserIdentityType::UsernamePassword,
                username.as_bytes().to_vec(),
                password.as_bytes().to_vec(),
            ),
            Credentials::Token(token) => UserIdentity::new(
                false,
                UserIdentityType::Jwt,
                token.as_bytes().to_vec(),
                Vec::new(),
            ),
        };
        user_variables.push(UserVariableItem::UserIdentityItem(identity));
    }
    AssociationRQ {
        protocol_version: 1,
        calling_ae_title: options.calling_ae.clone(),
        called_ae_title: options.called_ae.clone(),
        application_context_name: APPLICATION_CONTEXT.into(),
        presentation_contexts: proposals
            .iter()
            .enumerate()
            .map(|(i, p)| PresentationContextProposed {
                id: (i * 2 + 1) as u8,
                abstract_syntax: p.abstract_syntax.clone(),
                transfer_syntaxes: p.transfer_syntaxes.clone(),
            })
            .collect(),
        user_variables,
    }
}
