//! Query/retrieve as requestor: C-FIND (collected or streamed, with C-CANCEL when
//! the caller has enough), C-GET (answering the acceptor's C-STORE sub-operations on
//! the same association through a [`StoreHandler`]) and C-MOVE.
//!
//! For a C-GET, connect with [`ScuOptions::roles`](super::ScuOptions) holding
//! [`RoleSelection::scp`](crate::assoc::RoleSelection::scp) and a [`Proposal`] for each
//! storage class (and transfer syntax) to receive.
//!
//! [`Proposal`]: super::Proposal

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use super::ScuAssociation;
use crate::assoc::AcceptedContext;
use crate::command::{
    CCancelRq, CFindRq, CFindRsp, CGetRq, CMoveRq, CStoreRq, CStoreRsp, Message, Priority,
    SubOperations,
};
use crate::error::DimseError;
use crate::scp::{DataSink, StoreOutcome, comment_text};
use crate::status::Status;

/// The largest identifier accepted in a response.
const MAX_RESPONSE_IDENTIFIER: usize = 16 * 1024 * 1024;

/// Where the C-STORE sub-operations of a C-GET go.
pub trait StoreHandler: Send {
    /// Sink for one instance.
    type Sink: DataSink;

    /// Starts receiving an instance on `context`; an `Err` refuses it (the data set is
    /// read and dropped, and the outcome sent as the C-STORE response).
    fn begin(
        &mut self,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> impl Future<Output = Result<Self::Sink, StoreOutcome>> + Send;

    /// Sees the counts of each pending C-GET response; `Break` sends a C-CANCEL.
    fn progress(&mut self, _counts: &SubOperations) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// An instance received by a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedInstance {
    /// Affected SOP Class UID of the C-STORE.
    pub sop_class_uid: String,
    /// Affected SOP Instance UID of the C-STORE.
    pub sop_instance_uid: String,
    /// Transfer syntax of the context it came on.
    pub transfer_syntax: String,
    /// The data set as received.
    pub data: Vec<u8>,
}

/// A [`StoreHandler`] that keeps instances in memory (tests, small retrievals), and
/// may cancel the C-GET once enough sub-operations completed.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    received: Arc<Mutex<Vec<ReceivedInstance>>>,
    /// Sends a C-CANCEL at the first pending response counting this many completed
    /// sub-operations.
    pub cancel_after: Option<u16>,
}

impl MemoryStore {
    /// A store that cancels the C-GET once `limit` sub-operations completed.
    pub fn cancelling_after(limit: u16) -> Self {
        MemoryStore {
            cancel_after: Some(limit),
            ..MemoryStore::default()
        }
    }

    /// The instances received so far, in order.
    pub fn received(&self) -> Vec<ReceivedInstance> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The [`DataSink`] of a [`MemoryStore`].
#[derive(Debug)]
pub struct MemorySink {
    instance: ReceivedInstance,
    into: Arc<Mutex<Vec<ReceivedInstance>>>,
}

impl DataSink for MemorySink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.instance.data.extend_from_slice(chunk);
        Ok(())
    }

    async fn finish(self) -> StoreOutcome {
        match self.into.lock() {
            Ok(mut received) => {
                received.push(self.instance);
                StoreOutcome::success()
            }
            Err(_) => StoreOutcome::with(Status::ProcessingFailure, "store poisoned"),
        }
    }

    async fn discard(self) {}
}

impl StoreHandler for MemoryStore {
    type Sink = MemorySink;

    async fn begin(
        &mut self,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<MemorySink, StoreOutcome> {
        Ok(MemorySink {
            instance: ReceivedInstance {
                sop_class_uid: request.affected_sop_class_uid.clone(),
                sop_instance_uid: request.affected_sop_instance_uid.clone(),
                transfer_syntax: context.transfer_syntax.clone(),
                data: Vec::new(),
            },
            into: self.received.clone(),
        })
    }

    fn progress(&mut self, counts: &SubOperations) -> ControlFlow<()> {
        match (self.cancel_after, counts.completed) {
            (Some(limit), Some(done)) if done >= limit => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// The result of [`ScuAssociation::find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindOutcome {
    /// The final C-FIND response (its status: Success, Cancel or a failure).
    pub response: CFindRsp,
    /// The identifiers of the pending responses, in order.
    pub matches: Vec<Vec<u8>>,
}

/// The result of a C-GET or C-MOVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrieveOutcome {
    /// Final status.
    pub status: Status,
    /// Counts of the final response.
    pub sub_operations: SubOperations,
    /// Error Comment of the final response.
    pub error_comment: Option<String>,
    /// Identifier of the final response (Failed SOP Instance UID List), if any.
    pub identifier: Option<Vec<u8>>,
    /// Counts of each pending response, in order.
    pub pending: Vec<SubOperations>,
}

impl ScuAssociation {
    /// The context on which requests of `sop_class` go.
    fn request_context(&self, sop_class: &str) -> Result<u8, DimseError> {
        self.contexts
            .iter()
            .find(|c| c.abstract_syntax == sop_class && c.scu_role)
            .map(|c| c.id)
            .ok_or_else(|| DimseError::NoContext(sop_class.to_string()))
    }

    /// Sends a request and its identifier; returns the context used.
    async fn send_request(
        &mut self,
        sop_class: &str,
        request: Message,
        identifier: &[u8],
    ) -> Result<u8, DimseError> {
        let context = self.request_context(sop_class)?;
        let peer_max_pdu = self.peer_max_pdu;
        self.conn
            .send_command_and_data_set(
                context,
                &request.encode(),
                peer_max_pdu,
                &mut &identifier[..],
            )
            .await?;
        Ok(context)
    }

    /// Asks the acceptor to stop operation `message_id`.
    pub async fn cancel(&mut self, context: u8, message_id: u16) -> Result<(), DimseError> {
        let rq = CCancelRq {
            message_id_being_responded_to: message_id,
        };
        self.send_command(context, &rq.into()).await
    }

    /// C-FIND with `identifier` (encoded in the transfer syntax of the context
    /// accepted for `sop_class`): all matches, then the final response.
    pub async fn find(
        &mut self,
        sop_class: &str,
        identifier: &[u8],
    ) -> Result<FindOutcome, DimseError> {
        let mut matches = Vec::new();
        let response = self
            .find_with(sop_class, identifier, |m| {
                matches.push(m);
                ControlFlow::Continue(())
            })
            .await?;
        Ok(FindOutcome { response, matches })
    }

    /// C-FIND handing each match to `on_match` as it arrives; `Break` sends a
    /// C-CANCEL (matches already in flight are then dropped). Returns the final
    /// response.
    pub async fn find_with(
        &mut self,
        sop_class: &str,
        identifier: &[u8],
        mut on_match: impl FnMut(Vec<u8>) -> ControlFlow<()> + Send,
    ) -> Result<CFindRsp, DimseError> {
        let message_id = self.message_id();
        let rq = CFindRq {
            message_id,
            affected_sop_class_uid: sop_class.to_string(),
            priority: Priority::Medium,
        };
        let context = self.send_request(sop_class, rq.into(), identifier).await?;
        let mut cancelled = false;
        loop {
            let (id, message) = self.read_message().await?;
            let rsp = match message {
                Message::CFindRsp(rsp) if rsp.message_id_being_responded_to == message_id => rsp,
                other => return Err(unexpected(&other, "C-FIND")),
            };
            let data = match rsp.has_identifier {
                true => Some(self.read_data_set(id, MAX_RESPONSE_IDENTIFIER).await?),
                false => None,
            };
            if !rsp.status.is_pending() {
                return Ok(rsp);
            }
            if let (Some(data), false) = (data, cancelled)
                && on_match(data).is_break()
            {
                self.cancel(context, message_id).await?;
                cancelled = true;
            }
        }
    }

    /// C-GET: the acceptor sends the matching instances back as C-STORE
    /// sub-operations, which `handler` receives; returns the final status and counts.
    pub async fn get<H: StoreHandler>(
        &mut self,
        sop_class: &str,
        identifier: &[u8],
        handler: &mut H,
    ) -> Result<RetrieveOutcome, DimseError> {
        let message_id = self.message_id();
        let rq = CGetRq {
            message_id,
            affected_sop_class_uid: sop_class.to_string(),
            priority: Priority::Medium,
        };
        let context = self.send_request(sop_class, rq.into(), identifier).await?;
        let mut pending = Vec::new();
        let mut cancelled = false;
        loop {
            let (id, message) = self.read_message().await?;
            let rsp = match message {
                Message::CStoreRq(store) => {
                    self.answer_store(id, store, handler).await?;
                    continue;
                }
                Message::CGetRsp(rsp) if rsp.message_id_being_responded_to == message_id => rsp,
                other => return Err(unexpected(&other, "C-GET")),
            };
            let counts = rsp.sub_operations;
            let step = (rsp.status, counts, rsp.error_comment, rsp.has_identifier);
            if let Some(done) = self.retrieve_step(id, step, &mut pending).await? {
                return Ok(done);
            }
            if !cancelled && handler.progress(&counts).is_break() {
                self.cancel(context, message_id).await?;
                cancelled = true;
            }
        }
    }

    /// One C-GET/C-MOVE response (status, counts, comment, identifier present): the
    /// final outcome, or `None` after recording a pending response's counts.
    async fn retrieve_step(
        &mut self,
        context: u8,
        (status, counts, comment, has_identifier): (Status, SubOperations, Option<String>, bool),
        pending: &mut Vec<SubOperations>,
    ) -> Result<Option<RetrieveOutcome>, DimseError> {
        let identifier = match has_identifier {
            true => Some(self.read_data_set(context, MAX_RESPONSE_IDENTIFIER).await?),
            false => None,
        };
        if status.is_pending() {
            pending.push(counts);
            return Ok(None);
        }
        let pending = std::mem::take(pending);
        Ok(Some(RetrieveOutcome {
            status,
            sub_operations: counts,
            error_comment: comment,
            identifier,
            pending,
        }))
    }

    /// C-MOVE to the AE title `destination`; `on_pending` sees the counts of each
    /// pending response (`Break` sends a C-CANCEL). Returns the final status and counts.
    pub async fn move_(
        &mut self,
        sop_class: &str,
        destination: &str,
        identifier: &[u8],
        mut on_pending: impl FnMut(&SubOperations) -> ControlFlow<()> + Send,
    ) -> Result<RetrieveOutcome, DimseError> {
        let message_id = self.message_id();
        let rq = CMoveRq {
            message_id,
            affected_sop_class_uid: sop_class.to_string(),
            priority: Priority::Medium,
            move_destination: destination.to_string(),
        };
        let context = self.send_request(sop_class, rq.into(), identifier).await?;
        let mut pending = Vec::new();
        let mut cancelled = false;
        loop {
            let (id, message) = self.read_message().await?;
            let rsp = match message {
                Message::CMoveRsp(rsp) if rsp.message_id_being_responded_to == message_id => rsp,
                other => return Err(unexpected(&other, "C-MOVE")),
            };
            let counts = rsp.sub_operations;
            let step = (rsp.status, counts, rsp.error_comment, rsp.has_identifier);
            if let Some(done) = self.retrieve_step(id, step, &mut pending).await? {
                return Ok(done);
            }
            if !cancelled && on_pending(&counts).is_break() {
                self.cancel(context, message_id).await?;
                cancelled = true;
            }
        }
    }

    /// Receives one C-STORE sub-operation on context `id` into `handler` and answers it.
    async fn answer_store<H: StoreHandler>(
        &mut self,
        id: u8,
        rq: CStoreRq,
        handler: &mut H,
    ) -> Result<(), DimseError> {
        let context = self.contexts.iter().find(|c| c.id == id).cloned();
        let begun = match context {
            Some(c) if c.scp_role && c.abstract_syntax == rq.affected_sop_class_uid => {
                handler.begin(&rq, &c).await
            }
            _ => Err(StoreOutcome::with(
                Status::SopClassNotSupported,
                "no context with the SCP role for this SOP class",
            )),
        };
        let (mut sink, mut failed) = match begun {
            Ok(sink) => (Some(sink), None),
            Err(outcome) => (None, Some(outcome)),
        };
        loop {
            let (chunk, last) = match self.next_data_fragment(id).await {
                Ok(fragment) => fragment,
                Err(e) => {
                    if let Some(sink) = sink {
                        sink.discard().await;
                    }
                    return Err(e);
                }
            };
            if let Some(s) = sink.as_mut()
                && let Err(outcome) = s.write(&chunk).await
            {
                if let Some(s) = sink.take() {
                    s.discard().await;
                }
                failed = Some(outcome);
            }
            if last {
                break;
            }
        }
        let outcome = match (sink, failed) {
            (_, Some(outcome)) => outcome,
            (Some(sink), None) => sink.finish().await,
            (None, None) => StoreOutcome::with(Status::ProcessingFailure, "no sink"),
        };
        let rsp = CStoreRsp {
            message_id_being_responded_to: rq.message_id,
            affected_sop_class_uid: rq.affected_sop_class_uid,
            affected_sop_instance_uid: rq.affected_sop_instance_uid,
            status: outcome.status,
            error_comment: comment_text(outcome.comment),
        };
        self.send_command(id, &rsp.into()).await
    }
}

fn unexpected(message: &Message, operation: &str) -> DimseError {
    DimseError::Unexpected(format!("{} during a {operation}", message.name()))
}
