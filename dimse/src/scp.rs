//! The service side of an established association: reassembles command sets, streams
//! data sets into a [`DataSink`] PDV by PDV (memory per association is bounded by the
//! maximum PDU, whatever the instance size), dispatches typed messages to a
//! [`Service`] and sends its responses.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValue, PDataValueType};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::assoc::{AcceptedContext, Capabilities, Peer};
use crate::command::{
    CEchoRsp, CFindRsp, CGetRsp, CMoveRsp, CStoreRq, CStoreRsp, Message, SubOperations,
};
use crate::error::DimseError;
use crate::pdu_io::PduConn;
use crate::status::Status;

/// Largest command set accepted (they are a few hundred bytes in practice).
const MAX_COMMAND_LEN: usize = 64 * 1024;

/// What the service knows about the association a message arrived on.
#[derive(Debug)]
pub struct AssociationInfo {
    /// Calling AE title.
    pub calling_ae: String,
    /// Called AE title.
    pub called_ae: String,
    /// The transport peer (address, verified certificate).
    pub peer: Peer,
    /// Accepted presentation contexts.
    pub contexts: Vec<AcceptedContext>,
    /// Largest PDU the peer accepts.
    pub peer_max_pdu: u32,
    pub(crate) read_timeout: Duration,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl AssociationInfo {
    /// The accepted context with this id.
    pub fn context(&self, id: u8) -> Option<&AcceptedContext> {
        self.contexts.iter().find(|c| c.id == id)
    }
}

/// The result of a C-STORE as reported to the requestor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    /// DIMSE status.
    pub status: Status,
    /// Error Comment (0000,0902), for failures; at most 64 characters are sent.
    pub comment: Option<String>,
}

impl StoreOutcome {
    /// A plain success.
    pub fn success() -> Self {
        StoreOutcome {
            status: Status::Success,
            comment: None,
        }
    }

    /// A status with an explanatory comment.
    pub fn with(status: Status, comment: impl Into<String>) -> Self {
        StoreOutcome {
            status,
            comment: Some(comment.into()),
        }
    }
}

/// Where a received data set goes, fragment by fragment.
pub trait DataSink: Send {
    /// Takes the next fragment of the data set.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), StoreOutcome>> + Send;
    /// The whole data set arrived: make it durable (or refuse it) and say how it went.
    fn finish(self) -> impl Future<Output = StoreOutcome> + Send;
    /// The transfer failed or was abandoned: remove every trace of it.
    fn discard(self) -> impl Future<Output = ()> + Send;
}

/// Handles the DIMSE messages of an association. `Session` is what the [`Policy`]
/// admitted the association as.
///
/// [`Policy`]: crate::server::Policy
pub trait Service<Session>: Capabilities + Send + Sync + 'static {
    /// Sink for C-STORE data sets.
    type Sink: DataSink;

    /// Answers a C-ECHO.
    fn echo(
        &self,
        _session: &Session,
        _association: &AssociationInfo,
    ) -> impl Future<Output = Status> + Send {
        async { Status::Success }
    }

    /// Starts receiving a C-STORE data set on `context`; an `Err` refuses it (the data
    /// set is then read and dropped, and the outcome sent as the response).
    fn begin_store(
        &self,
        session: &Session,
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> impl Future<Output = Result<Self::Sink, StoreOutcome>> + Send;
}

enum State<K> {
    /// Collecting a command set.
    Command { buf: Vec<u8>, context: u8 },
    /// Streaming a C-STORE data set into a sink.
    Store {
        sink: Option<K>,
        failed: Option<StoreOutcome>,
        request: CStoreRq,
        context: u8,
    },
    /// Reading and dropping a data set that will be answered with `reply`.
    Drain { reply: Message, context: u8 },
}

impl<K: DataSink> State<K> {
    fn idle() -> Self {
        State::Command {
            buf: Vec::new(),
            context: 0,
        }
    }

    async fn discard(self) {
        if let State::Store {
            sink: Some(sink), ..
        } = self
        {
            sink.discard().await;
        }
    }
}

/// Runs an established association until release, abort, error or `stop`.
pub(crate) async fn run<T, S>(
    mut conn: PduConn,
    info: AssociationInfo,
    session: T,
    service: Arc<S>,
    stop: CancellationToken,
) where
    T: Send + Sync,
    S: Service<T>,
{
    conn.set_read_timeout(info.read_timeout);
    let mut state = State::<S::Sink>::idle();
    loop {
        let pdu = tokio::select! {
            pdu = conn.read_pdu() => pdu,
            _ = stop.cancelled() => {
                info!("server shutting down; aborting association");
                conn.abort(AbortRQServiceProviderReason::ReasonNotSpecified).await;
                state.discard().await;
                return;
            }
        };
        match pdu {
            Ok(Pdu::PData { data }) => {
                for pdv in data {
                    match on_pdv(&mut conn, &info, &session, &*service, state, pdv).await {
                        Ok(next) => state = next,
                        Err(e) => {
                            warn!(error = %e, "protocol error; aborting association");
                            conn.abort(AbortRQServiceProviderReason::UnexpectedPdu)
                                .await;
                            return;
                        }
                    }
                }
            }
            Ok(Pdu::ReleaseRQ) => {
                let incomplete = !matches!(&state, State::Command { buf, .. } if buf.is_empty());
                if incomplete {
                    warn!("release requested in the middle of a message; discarding it");
                }
                state.discard().await;
                let _ = conn.write_pdu(&Pdu::ReleaseRP).await;
                conn.shutdown().await;
                debug!("association released");
                break;
            }
            Ok(Pdu::AbortRQ { source }) => {
                info!(?source, "association aborted by the peer");
                state.discard().await;
                break;
            }
            Ok(other) => {
                warn!(pdu = %other.short_description(), "unexpected PDU; aborting");
                conn.abort(AbortRQServiceProviderReason::UnexpectedPdu)
                    .await;
                state.discard().await;
                break;
            }
            Err(e) => {
                if !matches!(e, DimseError::Closed) || !is_idle(&state) {
                    warn!(error = %e, "association failed");
                }
                let reason = match e {
                    DimseError::PduTooLarge { .. } => {
                        AbortRQServiceProviderReason::InvalidPduParameter
                    }
                    DimseError::Malformed(_) => AbortRQServiceProviderReason::UnrecognizedPdu,
                    _ => AbortRQServiceProviderReason::ReasonNotSpecified,
                };
                conn.abort(reason).await;
                state.discard().await;
                break;
            }
        }
    }
    drop(info.permit);
}

fn is_idle<K>(state: &State<K>) -> bool {
    matches!(state, State::Command { buf, .. } if buf.is_empty())
}

async fn on_pdv<T, S>(
    conn: &mut PduConn,
    info: &AssociationInfo,
    session: &T,
    service: &S,
    state: State<S::Sink>,
    pdv: PDataValue,
) -> Result<State<S::Sink>, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let id = pdv.presentation_context_id;
    if info.context(id).is_none() {
        state.discard().await;
        return Err(DimseError::Unexpected(format!(
            "PDV on unknown presentation context {id}"
        )));
    }
    match (state, pdv.value_type) {
        (State::Command { mut buf, context }, PDataValueType::Command) => {
            if !buf.is_empty() && context != id {
                return Err(DimseError::Unexpected(
                    "command fragments on two contexts".into(),
                ));
            }
            if buf.len() + pdv.data.len() > MAX_COMMAND_LEN {
                return Err(DimseError::Unexpected("command set too large".into()));
            }
            buf.extend_from_slice(&pdv.data);
            if !pdv.is_last {
                return Ok(State::Command { buf, context: id });
            }
            let message = Message::decode(&buf)?;
            on_command(conn, info, session, service, message, id).await
        }
        (
            State::Store {
                mut sink,
                mut failed,
                request,
                context,
            },
            PDataValueType::Data,
        ) if context == id => {
            if let Some(s) = sink.as_mut() {
                if let Err(outcome) = s.write(&pdv.data).await {
                    if let Some(s) = sink.take() {
                        s.discard().await;
                    }
                    failed = Some(outcome);
                }
            }
            if !pdv.is_last {
                return Ok(State::Store {
                    sink,
                    failed,
                    request,
                    context,
                });
            }
            let outcome = match (sink, failed) {
                (_, Some(outcome)) => outcome,
                (Some(sink), None) => sink.finish().await,
                (None, None) => StoreOutcome::with(Status::ProcessingFailure, "no sink"),
            };
            send(conn, id, &store_response(&request, outcome)).await?;
            Ok(State::idle())
        }
        (State::Drain { reply, context }, PDataValueType::Data) if context == id => {
            if pdv.is_last {
                send(conn, id, &reply).await?;
                return Ok(State::idle());
            }
            Ok(State::Drain { reply, context })
        }
        (state, kind) => {
            state.discard().await;
            Err(DimseError::Unexpected(format!(
                "{kind:?} fragment out of sequence"
            )))
        }
    }
}

async fn on_command<T, S>(
    conn: &mut PduConn,
    info: &AssociationInfo,
    session: &T,
    service: &S,
    message: Message,
    id: u8,
) -> Result<State<S::Sink>, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let Some(context) = info.context(id) else {
        return Err(DimseError::Unexpected(format!(
            "unknown presentation context {id}"
        )));
    };
    match message {
        Message::CEchoRq(rq) => {
            let status = service.echo(session, info).await;
            let rsp = CEchoRsp {
                message_id_being_responded_to: rq.message_id,
                affected_sop_class_uid: rq.affected_sop_class_uid,
                status,
            };
            send(conn, id, &rsp.into()).await?;
            Ok(State::idle())
        }
        Message::CStoreRq(request) => {
            let begun = if request.affected_sop_class_uid != context.abstract_syntax {
                Err(StoreOutcome::with(
                    Status::DataSetDoesNotMatchSopClass,
                    "SOP class differs from the presentation context",
                ))
            } else {
                service.begin_store(session, info, &request, context).await
            };
            match begun {
                Ok(sink) => Ok(State::Store {
                    sink: Some(sink),
                    failed: None,
                    request,
                    context: id,
                }),
                Err(outcome) => Ok(State::Drain {
                    reply: store_response(&request, outcome),
                    context: id,
                }),
            }
        }
        Message::CCancelRq(_) => Ok(State::idle()),
        other => {
            let Some(reply) = unsupported_reply(&other) else {
                return Err(DimseError::Unexpected(
                    "a response sent to the acceptor".into(),
                ));
            };
            if other.has_data_set() {
                Ok(State::Drain { reply, context: id })
            } else {
                send(conn, id, &reply).await?;
                Ok(State::idle())
            }
        }
    }
}

fn store_response(rq: &CStoreRq, outcome: StoreOutcome) -> Message {
    let comment = outcome
        .comment
        .map(|c| c.chars().filter(char::is_ascii).take(64).collect());
    CStoreRsp {
        message_id_being_responded_to: rq.message_id,
        affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
        affected_sop_instance_uid: rq.affected_sop_instance_uid.clone(),
        status: outcome.status,
        error_comment: comment,
    }
    .into()
}

/// The refusal for a request this service does not implement.
fn unsupported_reply(message: &Message) -> Option<Message> {
    let status = Status::UnrecognizedOperation;
    let reply: Message = match message {
        Message::CFindRq(rq) => CFindRsp {
            message_id_being_responded_to: rq.message_id,
            affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
            status,
            has_identifier: false,
            error_comment: None,
        }
        .into(),
        Message::CGetRq(rq) => CGetRsp {
            message_id_being_responded_to: rq.message_id,
            affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
            status,
            sub_operations: SubOperations::default(),
            has_identifier: false,
            error_comment: None,
        }
        .into(),
        Message::CMoveRq(rq) => CMoveRsp {
            message_id_being_responded_to: rq.message_id,
            affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
            status,
            sub_operations: SubOperations::default(),
            has_identifier: false,
            error_comment: None,
        }
        .into(),
        _ => return None,
    };
    Some(reply)
}

async fn send(conn: &mut PduConn, context: u8, message: &Message) -> Result<(), DimseError> {
    let bytes = message.encode();
    conn.write_pdv(context, true, true, &bytes).await?;
    conn.flush().await
}
