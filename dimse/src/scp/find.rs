//! C-FIND on the acceptor: each result of the service's stream goes out as a pending
//! response while the peer is still read, so that a C-CANCEL ends the search at once.

use dicom_ul::pdu::AbortRQServiceProviderReason;
use tracing::debug;

use super::query::{Event, Flow, Incoming, Reply, end};
use super::{Assoc, Service, StoreOutcome};
use crate::assoc::AcceptedContext;
use crate::command::CFindRq;
use crate::error::DimseError;
use crate::pdu_io::PduConn;
use crate::qr::FindResult;
use crate::status::Status;

/// Runs one C-FIND to its final response (or the end of the association).
pub(super) async fn run<T, S>(
    conn: &mut PduConn,
    assoc: &Assoc<'_, T, S>,
    rq: CFindRq,
    context: &AcceptedContext,
    identifier: Vec<u8>,
) -> Result<Flow, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let info = assoc.info;
    let (id, max_pdu) = (context.id, info.peer_max_pdu);
    let found = assoc
        .service
        .find(assoc.session, info, &rq, context, identifier)
        .await;
    let mut results = match found {
        Ok(results) => results,
        Err(outcome) => {
            Reply::outcome(outcome)
                .send_find(conn, id, max_pdu, &rq)
                .await?;
            return Ok(Flow::Continue);
        }
    };
    let mut incoming = Incoming::default();
    let mut sent = 0usize;
    let outcome = loop {
        tokio::select! {
            biased;
            () = assoc.stop.cancelled() => {
                drop(results);
                conn.abort(AbortRQServiceProviderReason::ReasonNotSpecified).await;
                return Ok(Flow::Ended);
            }
            event = incoming.next(conn, false) => match event? {
                Event::Cancel(mid) if mid == rq.message_id => {
                    break StoreOutcome { status: Status::Cancel, comment: None };
                }
                Event::Cancel(_) => {}
                Event::StoreResponse(_) => {
                    return Err(DimseError::Unexpected("C-STORE-RSP during a C-FIND".into()));
                }
                ending @ (Event::Released | Event::Aborted) => {
                    drop(results);
                    end(conn, &ending).await;
                    return Ok(Flow::Ended);
                }
            },
            next = results.recv() => {
                let (status, identifier) = match next {
                    Some(FindResult::Match(identifier)) => (Status::Pending, identifier),
                    Some(FindResult::MatchWithoutOptionalKeys(identifier)) => {
                        (Status::PendingWarning, identifier)
                    }
                    Some(FindResult::Failed(outcome)) => break outcome,
                    None => break StoreOutcome::success(),
                };
                let pending = Reply {
                    identifier: Some(identifier),
                    ..Reply::status(status)
                };
                pending.send_find(conn, id, max_pdu, &rq).await?;
                sent += 1;
            }
        }
    };
    // Dropping the receiver tells the producer to stop.
    drop(results);
    debug!(matches = sent, status = %outcome.status, "C-FIND finished");
    Reply::outcome(outcome)
        .send_find(conn, id, max_pdu, &rq)
        .await?;
    Ok(Flow::Continue)
}
