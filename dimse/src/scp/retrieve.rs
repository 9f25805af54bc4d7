//! C-GET and C-MOVE on the acceptor: each instance of the service's stream becomes a
//! C-STORE sub-operation, back on this association (C-GET, over a context whose SCP
//! role was accepted) or on an association to the move destination (C-MOVE); a
//! pending response with the counts follows each one. The peer is read all along, so
//! a C-CANCEL stops the retrieval after the sub-operation in progress.
//!
//! Counts: `total` comes from the service; remaining = total - done. Items the
//! service announced but never sent count as failed. Final status: Cancel after a
//! C-CANCEL; Success when nothing failed or warned; 0xA702 when every sub-operation
//! failed; 0xB000 otherwise. Warning, failure and cancel responses carry the Failed
//! SOP Instance UID List when the context's syntax is little endian uncompressed.
//!
//! Transfer syntax: an instance goes in its stored syntax when the receiver accepted
//! that for its SOP class; otherwise it is converted ([`crate::transcode::pick`],
//! [`crate::transcode::transcode`]) to an accepted syntax, in memory and off the
//! async workers, or counted as failed with the reason when none can carry it.

use dicom_ul::pdu::AbortRQServiceProviderReason;
use tracing::debug;

use super::destination::Destination;
use super::query::{Event, Flow, Incoming, Reply, end};
use super::{Assoc, AssociationInfo, Service, StoreOutcome};
use crate::assoc::AcceptedContext;
use crate::command::{CStoreRq, Message, Priority, SubOperations};
use crate::error::DimseError;
use crate::pdu_io::PduConn;
use crate::qr::{RetrieveItem, RetrieveRequest, failed_instances_identifier};
use crate::status::{Status, StatusClass};
use crate::transcode;

/// The sub-operation counts of one retrieval.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    completed: usize,
    failed: usize,
    warning: usize,
    failed_uids: Vec<String>,
}

impl Counts {
    fn done(&self) -> usize {
        self.completed + self.failed + self.warning
    }

    /// Counts a sub-operation by its C-STORE status (`None`: never sent).
    fn record(&mut self, status: Option<Status>, sop_instance_uid: String) {
        match status.map(|s| s.class()) {
            Some(StatusClass::Success) => self.completed += 1,
            Some(StatusClass::Warning) => self.warning += 1,
            _ => {
                self.failed += 1;
                self.failed_uids.push(sop_instance_uid);
            }
        }
    }

    fn wire(&self, with_remaining: bool) -> SubOperations {
        let n = |v: usize| Some(u16::try_from(v).unwrap_or(u16::MAX));
        SubOperations {
            remaining: if with_remaining {
                n(self.total.saturating_sub(self.done()))
            } else {
                None
            },
            completed: n(self.completed),
            failed: n(self.failed),
            warning: n(self.warning),
        }
    }

    fn final_status(&self, cancelled: bool) -> Status {
        if cancelled {
            Status::Cancel
        } else if self.failed == 0 && self.warning == 0 {
            Status::Success
        } else if self.completed == 0 && self.warning == 0 {
            Status::OutOfResourcesSubOperations
        } else {
            Status::SUB_OPERATIONS_COMPLETE_WITH_FAILURES
        }
    }
}

/// How one sub-operation went.
enum Step {
    /// The receiver answered with this status.
    Stored(Status),
    /// Not sent, or sending failed (counts as failed).
    NotSent(String),
    /// The move destination cannot be reached: the retrieval stops.
    Unreachable(String),
    /// The peer released or aborted the association meanwhile.
    Ended(Event),
}

/// Where the sub-operations go.
enum Target {
    Requestor { next_message_id: u16 },
    Destination(Box<Destination>),
}

impl Target {
    async fn close(self) {
        if let Target::Destination(d) = self {
            d.close().await;
        }
    }

    async fn abort(self) {
        if let Target::Destination(d) = self {
            d.abort().await;
        }
    }
}

/// Runs one C-GET or C-MOVE to its final response (or the end of the association).
pub(super) async fn run<T, S>(
    conn: &mut PduConn,
    assoc: &Assoc<'_, T, S>,
    request: RetrieveRequest,
    context: &AcceptedContext,
    identifier: Vec<u8>,
) -> Result<Flow, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let info = assoc.info;
    let (id, max_pdu) = (context.id, info.peer_max_pdu);
    let destination = match request.move_destination() {
        None => None,
        Some(ae) => match assoc
            .service
            .move_destination(assoc.session, info, ae)
            .await
        {
            Some(destination) => Some(destination),
            None => {
                let why = format!("unknown move destination {ae}");
                Reply::outcome(StoreOutcome::with(Status::MoveDestinationUnknown, why))
                    .send_retrieve(conn, id, max_pdu, &request)
                    .await?;
                return Ok(Flow::Continue);
            }
        },
    };
    let retrieval = match assoc
        .service
        .retrieve(assoc.session, info, &request, context, identifier)
        .await
    {
        Ok(retrieval) => retrieval,
        Err(outcome) => {
            Reply::outcome(outcome)
                .send_retrieve(conn, id, max_pdu, &request)
                .await?;
            return Ok(Flow::Continue);
        }
    };
    let message_id = request.message_id();
    let mut target = match destination {
        None => Target::Requestor { next_message_id: 1 },
        Some(d) => Target::Destination(Box::new(Destination::new(
            d,
            info,
            message_id,
            &retrieval.syntaxes,
        ))),
    };
    let mut items = retrieval.items;
    let mut counts = Counts {
        total: retrieval.total,
        ..Counts::default()
    };
    let mut incoming = Incoming::default();
    let (mut cancelled, mut comment) = (false, None);
    loop {
        let item = tokio::select! {
            biased;
            () = assoc.stop.cancelled() => {
                drop(items);
                target.abort().await;
                conn.abort(AbortRQServiceProviderReason::ReasonNotSpecified).await;
                return Ok(Flow::Ended);
            }
            event = incoming.next(conn, false) => match event? {
                Event::Cancel(mid) if mid == message_id => {
                    cancelled = true;
                    break;
                }
                Event::Cancel(_) => continue,
                Event::StoreResponse(_) => {
                    return Err(DimseError::Unexpected(
                        "a C-STORE-RSP with no sub-operation outstanding".into(),
                    ));
                }
                ending => {
                    drop(items);
                    target.abort().await;
                    end(conn, &ending).await;
                    return Ok(Flow::Ended);
                }
            },
            next = items.recv() => match next {
                Some(item) => item,
                None => break,
            },
        };
        let uid = item.sop_instance_uid.clone();
        let step = match &mut target {
            Target::Requestor { next_message_id } => {
                let sub = (next_message_id, message_id, &mut cancelled);
                store_on_requestor(conn, info, &mut incoming, item, sub).await?
            }
            Target::Destination(d) => {
                store_at_destination(conn, &mut incoming, d, item, message_id, &mut cancelled)
                    .await?
            }
        };
        match step {
            Step::Stored(status) => counts.record(Some(status), uid),
            Step::NotSent(why) => {
                debug!(reason = %why, "sub-operation not sent");
                counts.record(None, uid);
            }
            Step::Unreachable(why) => {
                counts.record(None, uid);
                comment = Some(why);
                break;
            }
            Step::Ended(ending) => {
                drop(items);
                target.abort().await;
                end(conn, &ending).await;
                return Ok(Flow::Ended);
            }
        }
        if cancelled {
            break;
        }
        let pending = Reply {
            counts: counts.wire(true),
            ..Reply::status(Status::Pending)
        };
        pending.send_retrieve(conn, id, max_pdu, &request).await?;
    }
    // Dropping the receiver tells the producer to stop.
    drop(items);
    target.close().await;
    if !cancelled {
        counts.failed += counts.total.saturating_sub(counts.done());
    }
    let status = counts.final_status(cancelled);
    debug!(
        completed = counts.completed,
        failed = counts.failed,
        warning = counts.warning,
        %status,
        "retrieval finished"
    );
    let identifier = match status {
        Status::Success => None,
        _ => failed_instances_identifier(&context.transfer_syntax, &counts.failed_uids),
    };
    let reply = Reply {
        status,
        comment,
        counts: counts.wire(cancelled),
        identifier,
    };
    reply.send_retrieve(conn, id, max_pdu, &request).await?;
    Ok(Flow::Continue)
}

/// Sends `item` back to the requestor (C-GET) and waits for its C-STORE-RSP, noting
/// a C-CANCEL of the retrieval meanwhile. `sub` is (next sub-operation message id,
/// the C-GET's message id, cancelled).
async fn store_on_requestor(
    conn: &mut PduConn,
    info: &AssociationInfo,
    incoming: &mut Incoming,
    item: RetrieveItem,
    sub: (&mut u16, u16, &mut bool),
) -> Result<Step, DimseError> {
    let (next_message_id, retrieve_id, cancelled) = sub;
    let contexts: Vec<&AcceptedContext> = info
        .contexts
        .iter()
        .filter(|c| c.scp_role && c.abstract_syntax == item.sop_class_uid)
        .collect();
    let syntaxes: Vec<&str> = contexts
        .iter()
        .map(|c| c.transfer_syntax.as_str())
        .collect();
    let found = transcode::pick(&item.transfer_syntax, &syntaxes)
        .and_then(|ts| contexts.iter().find(|c| c.transfer_syntax == ts));
    let Some(context) = found else {
        return Ok(Step::NotSent(format!(
            "no context with the SCP role for {} that takes {}",
            item.sop_class_uid, item.transfer_syntax
        )));
    };
    let item = match converted(item, &context.transfer_syntax).await {
        Ok(item) => item,
        Err(why) => return Ok(Step::NotSent(why)),
    };
    let message_id = *next_message_id;
    *next_message_id = next_message_id.wrapping_add(1).max(1);
    let rq = CStoreRq {
        message_id,
        affected_sop_class_uid: item.sop_class_uid,
        affected_sop_instance_uid: item.sop_instance_uid,
        priority: Priority::Medium,
        move_originator_ae_title: None,
        move_originator_message_id: None,
    };
    let mut data = item.data;
    conn.send_command_and_data_set(
        context.id,
        &Message::from(rq).encode(),
        info.peer_max_pdu,
        &mut data,
    )
    .await?;
    loop {
        match incoming.next(conn, true).await? {
            Event::StoreResponse(rsp) if rsp.message_id_being_responded_to == message_id => {
                return Ok(Step::Stored(rsp.status));
            }
            Event::StoreResponse(_) => {
                return Err(DimseError::Unexpected(
                    "a C-STORE-RSP to another message".into(),
                ));
            }
            Event::Cancel(mid) => *cancelled |= mid == retrieve_id,
            ending => return Ok(Step::Ended(ending)),
        }
    }
}

/// Sends `item` to the move destination, reading the C-MOVE's own association
/// meanwhile (for a C-CANCEL, a release or an abort).
async fn store_at_destination(
    conn: &mut PduConn,
    incoming: &mut Incoming,
    destination: &mut Destination,
    item: RetrieveItem,
    retrieve_id: u16,
    cancelled: &mut bool,
) -> Result<Step, DimseError> {
    let (originator_ae, originator_id) = destination.originator();
    let scu = match destination
        .association(&item.sop_class_uid, &item.transfer_syntax)
        .await
    {
        Ok(scu) => scu,
        Err(e) => {
            return Ok(Step::Unreachable(format!(
                "cannot associate with the move destination: {e}"
            )));
        }
    };
    let class = item.sop_class_uid.clone();
    let syntaxes: Vec<&str> = scu
        .contexts()
        .iter()
        .filter(|c| c.scu_role && c.abstract_syntax == class)
        .map(|c| c.transfer_syntax.as_str())
        .collect();
    let Some(ts) = transcode::pick(&item.transfer_syntax, &syntaxes).map(str::to_string) else {
        return Ok(Step::NotSent(format!(
            "the move destination refused {class} in {} and every syntax it converts to",
            item.transfer_syntax
        )));
    };
    let item = match converted(item, &ts).await {
        Ok(item) => item,
        Err(why) => return Ok(Step::NotSent(why)),
    };
    let ts = &item.transfer_syntax;
    let result = {
        let originator = Some((originator_ae.as_str(), originator_id));
        let store = scu.store_for(&class, &item.sop_instance_uid, ts, item.data, originator);
        tokio::pin!(store);
        loop {
            tokio::select! {
                result = &mut store => break result,
                event = incoming.next(conn, false) => match event? {
                    Event::Cancel(mid) => *cancelled |= mid == retrieve_id,
                    Event::StoreResponse(_) => {
                        return Err(DimseError::Unexpected(
                            "a C-STORE-RSP on the C-MOVE association".into(),
                        ));
                    }
                    ending => return Ok(Step::Ended(ending)),
                },
            }
        }
    };
    match result {
        Ok(rsp) => Ok(Step::Stored(rsp.status)),
        Err(e) => {
            destination.reset().await;
            Ok(Step::NotSent(format!("the move destination failed: {e}")))
        }
    }
}

/// `item` in `to`: as it is when already so, otherwise read whole (up to
/// [`transcode::MAX_TRANSCODE_BYTES`]) and converted on a blocking thread. The error
/// says why, for the log.
async fn converted(item: RetrieveItem, to: &str) -> Result<RetrieveItem, String> {
    use tokio::io::AsyncReadExt;
    if item.transfer_syntax == to {
        return Ok(item);
    }
    let RetrieveItem {
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax,
        data,
    } = item;
    let mut bytes = Vec::new();
    let limit = transcode::MAX_TRANSCODE_BYTES;
    data.take(limit + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read the stored instance: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "too large to convert from {transfer_syntax} to {to} (over {limit} bytes)"
        ));
    }
    let (from, target) = (transfer_syntax, to.to_string());
    let converted = tokio::task::spawn_blocking(move || {
        transcode::transcode(&bytes, &from, &target).map(|data| (data, from))
    })
    .await
    .map_err(|e| format!("the conversion stopped: {e}"))?;
    let (data, from) = converted.map_err(|e| e.to_string())?;
    debug!(from = %from, to, "instance converted for the receiver");
    Ok(RetrieveItem {
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax: to.to_string(),
        data: Box::new(std::io::Cursor::new(data)),
    })
}
