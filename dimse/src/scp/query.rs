//! What C-FIND, C-GET and C-MOVE have in common on the acceptor: the request kinds,
//! their responses, the checks made before the service is asked, and [`Incoming`],
//! which reads the peer while results stream out (to see a C-CANCEL, a C-STORE-RSP
//! of a sub-operation, a release or an abort).

use std::collections::VecDeque;

use dicom_ul::Pdu;
use dicom_ul::pdu::{PDataValue, PDataValueType};

use super::{Assoc, MAX_COMMAND_LEN, Service, State, comment_text, find, retrieve};
use crate::command::{CFindRq, CFindRsp, CGetRsp, CMoveRsp, CStoreRsp, Message, SubOperations};
use crate::error::DimseError;
use crate::pdu_io::PduConn;
use crate::qr::RetrieveRequest;
use crate::scp::StoreOutcome;
use crate::status::Status;

/// A request whose identifier is being collected.
#[derive(Debug)]
pub(crate) enum QrRequest {
    Find(CFindRq),
    Retrieve(RetrieveRequest),
}

impl QrRequest {
    fn sop_class_uid(&self) -> &str {
        match self {
            QrRequest::Find(rq) => &rq.affected_sop_class_uid,
            QrRequest::Retrieve(rq) => rq.sop_class_uid(),
        }
    }
}

/// A final or pending response to a C-FIND, C-GET or C-MOVE.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) status: Status,
    pub(super) comment: Option<String>,
    /// Sub-operation counts (C-GET and C-MOVE only).
    pub(super) counts: SubOperations,
    /// Identifier sent after the command (a match, a failed-instance list).
    pub(super) identifier: Option<Vec<u8>>,
}

impl Reply {
    pub(super) fn status(status: Status) -> Self {
        Reply {
            status,
            comment: None,
            counts: SubOperations::default(),
            identifier: None,
        }
    }

    pub(super) fn outcome(outcome: StoreOutcome) -> Self {
        Reply {
            comment: outcome.comment,
            ..Reply::status(outcome.status)
        }
    }

    fn find(&self, rq: &CFindRq) -> Message {
        CFindRsp {
            message_id_being_responded_to: rq.message_id,
            affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
            status: self.status,
            has_identifier: self.identifier.is_some(),
            error_comment: comment_text(self.comment.clone()),
        }
        .into()
    }

    fn retrieve(&self, rq: &RetrieveRequest) -> Message {
        let comment = comment_text(self.comment.clone());
        match rq {
            RetrieveRequest::Get(rq) => CGetRsp {
                message_id_being_responded_to: rq.message_id,
                affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
                status: self.status,
                sub_operations: self.counts,
                has_identifier: self.identifier.is_some(),
                error_comment: comment,
            }
            .into(),
            RetrieveRequest::Move(rq) => CMoveRsp {
                message_id_being_responded_to: rq.message_id,
                affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
                status: self.status,
                sub_operations: self.counts,
                has_identifier: self.identifier.is_some(),
                error_comment: comment,
            }
            .into(),
        }
    }

    fn message(&self, request: &QrRequest) -> Message {
        match request {
            QrRequest::Find(rq) => self.find(rq),
            QrRequest::Retrieve(rq) => self.retrieve(rq),
        }
    }

    /// Sends the response (command, then identifier if any) on `context`.
    pub(super) async fn send_to(
        &self,
        conn: &mut PduConn,
        context: u8,
        peer_max_pdu: u32,
        message: &Message,
    ) -> Result<(), DimseError> {
        match &self.identifier {
            Some(identifier) => {
                conn.send_command_and_data_set(
                    context,
                    &message.encode(),
                    peer_max_pdu,
                    &mut identifier.as_slice(),
                )
                .await
            }
            None => conn.send_command(context, &message.encode()).await,
        }
    }

    pub(super) async fn send_find(
        &self,
        conn: &mut PduConn,
        context: u8,
        peer_max_pdu: u32,
        rq: &CFindRq,
    ) -> Result<(), DimseError> {
        self.send_to(conn, context, peer_max_pdu, &self.find(rq))
            .await
    }

    pub(super) async fn send_retrieve(
        &self,
        conn: &mut PduConn,
        context: u8,
        peer_max_pdu: u32,
        rq: &RetrieveRequest,
    ) -> Result<(), DimseError> {
        self.send_to(conn, context, peer_max_pdu, &self.retrieve(rq))
            .await
    }
}

/// Whether the association goes on after a query or retrieval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Ended,
}

/// Runs the request whose identifier just arrived (`None`: it was over the bound).
pub(super) async fn dispatch<T, S>(
    conn: &mut PduConn,
    assoc: &Assoc<'_, T, S>,
    request: QrRequest,
    id: u8,
    identifier: Option<Vec<u8>>,
) -> Result<State<S::Sink>, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let info = assoc.info;
    let Some(context) = info.context(id) else {
        return Err(DimseError::Unexpected(format!(
            "unknown presentation context {id}"
        )));
    };
    let refusal = match &identifier {
        None => Some(StoreOutcome::with(
            Status::OutOfResources,
            "identifier larger than 1 MiB",
        )),
        Some(_) if request.sop_class_uid() != context.abstract_syntax => Some(StoreOutcome::with(
            Status::SopClassNotSupported,
            "SOP class differs from the presentation context",
        )),
        Some(_) if !context.scu_role => Some(StoreOutcome::with(
            Status::SopClassNotSupported,
            "the requestor is not SCU of this SOP class",
        )),
        Some(_) => None,
    };
    if let Some(outcome) = refusal {
        let reply = Reply::outcome(outcome);
        let message = reply.message(&request);
        reply.send_to(conn, id, info.peer_max_pdu, &message).await?;
        return Ok(State::idle());
    }
    let identifier = identifier.unwrap_or_default();
    let flow = match request {
        QrRequest::Find(rq) => find::run(conn, assoc, rq, context, identifier).await?,
        QrRequest::Retrieve(rq) => retrieve::run(conn, assoc, rq, context, identifier).await?,
    };
    Ok(match flow {
        Flow::Continue => State::idle(),
        Flow::Ended => State::Ended,
    })
}

/// What the peer sent while an operation runs.
#[derive(Debug)]
pub(super) enum Event {
    /// C-CANCEL-RQ for this message id.
    Cancel(u16),
    /// A sub-operation's response.
    StoreResponse(CStoreRsp),
    /// The peer released the association (answered by [`end`]).
    Released,
    /// The peer aborted the association.
    Aborted,
}

/// Reads command sets from the peer while the acceptor sends results. Only C-CANCEL-RQ
/// and C-STORE-RSP may come; anything else is a protocol error.
#[derive(Debug, Default)]
pub(super) struct Incoming {
    buf: Vec<u8>,
    context: u8,
    queue: VecDeque<Event>,
}

impl Incoming {
    /// The next event. With `timed` the association's read timeout applies; without,
    /// the peer may stay silent (it is waiting for us). Cancel-safe: everything
    /// received is kept in `self` or the connection's buffer.
    pub(super) async fn next(
        &mut self,
        conn: &mut PduConn,
        timed: bool,
    ) -> Result<Event, DimseError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(event);
            }
            let pdu = if timed {
                conn.read_pdu().await?
            } else {
                conn.read_pdu_untimed().await?
            };
            match pdu {
                Pdu::PData { data } => {
                    for pdv in data {
                        self.take(pdv)?;
                    }
                }
                Pdu::ReleaseRQ => return Ok(Event::Released),
                Pdu::AbortRQ { .. } => return Ok(Event::Aborted),
                other => {
                    return Err(DimseError::Unexpected(format!(
                        "{} while a query or retrieval runs",
                        other.short_description()
                    )));
                }
            }
        }
    }

    fn take(&mut self, pdv: PDataValue) -> Result<(), DimseError> {
        if pdv.value_type != PDataValueType::Command {
            return Err(DimseError::Unexpected(
                "a data set fragment while a query or retrieval runs".into(),
            ));
        }
        let id = pdv.presentation_context_id;
        if !self.buf.is_empty() && self.context != id {
            return Err(DimseError::Unexpected(
                "command fragments on two contexts".into(),
            ));
        }
        if self.buf.len() + pdv.data.len() > MAX_COMMAND_LEN {
            return Err(DimseError::Unexpected("command set too large".into()));
        }
        self.buf.extend_from_slice(&pdv.data);
        self.context = id;
        if pdv.is_last {
            let message = Message::decode(&std::mem::take(&mut self.buf))?;
            let event = match message {
                Message::CCancelRq(rq) => Event::Cancel(rq.message_id_being_responded_to),
                Message::CStoreRsp(rsp) => Event::StoreResponse(rsp),
                other => {
                    return Err(DimseError::Unexpected(format!(
                        "{} while a query or retrieval runs",
                        other.name()
                    )));
                }
            };
            self.queue.push_back(event);
        }
        Ok(())
    }
}

/// Finishes an association the peer released or aborted during an operation.
pub(super) async fn end(conn: &mut PduConn, event: &Event) {
    if matches!(event, Event::Released) {
        let _ = conn.write_pdu(&Pdu::ReleaseRP).await;
        conn.shutdown().await;
    }
}
