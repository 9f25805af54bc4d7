//! The service side of an established association: reassembles command sets, streams
//! data sets into a [`DataSink`] PDV by PDV (memory per association is bounded by the
//! maximum PDU, whatever the instance size), dispatches typed messages to a
//! [`Service`] and sends its responses. Query/retrieve requests (C-FIND, C-GET,
//! C-MOVE) stream the service's results back while still reading the peer, so that a
//! C-CANCEL stops them (see the child modules `find` and `retrieve`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValue, PDataValueType};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::command::{CEchoRsp, CStoreRq, CStoreRsp, Message};
use crate::error::DimseError;
use crate::pdu_io::PduConn;
use crate::qr::{MAX_IDENTIFIER_LEN, RetrieveRequest};
use crate::status::Status;

mod destination;
mod find;
mod query;
mod retrieve;
mod service;

use query::QrRequest;
pub use service::{AssociationInfo, DataSink, Service, StoreOutcome};

/// Largest command set accepted (they are a few hundred bytes in practice).
const MAX_COMMAND_LEN: usize = 64 * 1024;

/// What the message handlers of one association share.
struct Assoc<'a, T, S> {
    info: &'a AssociationInfo,
    session: &'a T,
    service: &'a S,
    stop: &'a CancellationToken,
    tally: &'a Tally,
}

/// What an association did, for the INFO line logged when it ends.
#[derive(Default)]
struct Tally {
    stored: AtomicU64,
    refused: AtomicU64,
    bytes: AtomicU64,
    queries: AtomicU64,
    retrievals: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn store(&self, outcome: &StoreOutcome) {
        match outcome.status.is_failure() {
            false => Tally::add(&self.stored, 1),
            true => Tally::add(&self.refused, 1),
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The one INFO line per finished association: who, what, how long, how it ended.
fn log_finished(
    info: &AssociationInfo,
    label: Option<&str>,
    tally: &Tally,
    started: Instant,
    ended: &str,
) {
    info!(
        peer = %info.peer.addr,
        calling_ae = %info.calling_ae,
        facility = label.unwrap_or("-"),
        stored = Tally::get(&tally.stored),
        refused = Tally::get(&tally.refused),
        bytes = Tally::get(&tally.bytes),
        queries = Tally::get(&tally.queries),
        retrievals = Tally::get(&tally.retrievals),
        duration_ms = started.elapsed().as_millis() as u64,
        ended,
        "association finished"
    );
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
    /// Collecting the identifier of a C-FIND, C-GET or C-MOVE (dropped past the bound).
    Identifier {
        request: QrRequest,
        buf: Vec<u8>,
        overflow: bool,
        context: u8,
    },
    /// The association ended while a query or retrieval ran.
    Ended,
}

impl<K: DataSink> State<K> {
    fn idle() -> Self {
        State::Command {
            buf: Vec::new(),
            context: 0,
        }
    }

    fn identifier(request: QrRequest, context: u8) -> Self {
        State::Identifier {
            request,
            buf: Vec::new(),
            overflow: false,
            context,
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
    conn: PduConn,
    info: AssociationInfo,
    session: T,
    label: Option<String>,
    service: Arc<S>,
    stop: CancellationToken,
) where
    T: Send + Sync,
    S: Service<T>,
{
    let started = Instant::now();
    let tally = Tally::default();
    let ended = serve_messages(conn, &info, &session, &tally, &service, &stop).await;
    log_finished(&info, label.as_deref(), &tally, started, ended);
    drop(info.permit);
}

/// The message loop; returns how the association ended.
async fn serve_messages<T, S>(
    mut conn: PduConn,
    info: &AssociationInfo,
    session: &T,
    tally: &Tally,
    service: &Arc<S>,
    stop: &CancellationToken,
) -> &'static str
where
    T: Send + Sync,
    S: Service<T>,
{
    conn.set_read_timeout(info.read_timeout);
    let assoc = Assoc {
        info,
        session,
        service: &**service,
        stop,
        tally,
    };
    let mut state = State::<S::Sink>::idle();
    loop {
        let pdu = tokio::select! {
            pdu = conn.read_pdu() => pdu,
            _ = stop.cancelled() => {
                info!("server shutting down; aborting association");
                conn.abort(AbortRQServiceProviderReason::ReasonNotSpecified).await;
                state.discard().await;
                return "server shutdown";
            }
        };
        match pdu {
            Ok(Pdu::PData { data }) => {
                for pdv in data {
                    match on_pdv(&mut conn, &assoc, state, pdv).await {
                        Ok(State::Ended) => return "ended during a query or retrieval",
                        Ok(next) => state = next,
                        Err(e) => {
                            warn!(error = %e, "protocol error; aborting association");
                            conn.abort(AbortRQServiceProviderReason::UnexpectedPdu)
                                .await;
                            return "protocol error";
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
                return "released";
            }
            Ok(Pdu::AbortRQ { source }) => {
                info!(?source, "association aborted by the peer");
                state.discard().await;
                return "aborted by the peer";
            }
            Ok(other) => {
                warn!(pdu = %other.short_description(), "unexpected PDU; aborting");
                conn.abort(AbortRQServiceProviderReason::UnexpectedPdu)
                    .await;
                state.discard().await;
                return "unexpected PDU";
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
                return "connection failed";
            }
        }
    }
}

fn is_idle<K>(state: &State<K>) -> bool {
    matches!(state, State::Command { buf, .. } if buf.is_empty())
}

async fn on_pdv<T, S>(
    conn: &mut PduConn,
    assoc: &Assoc<'_, T, S>,
    state: State<S::Sink>,
    pdv: PDataValue,
) -> Result<State<S::Sink>, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let info = assoc.info;
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
            on_command(conn, assoc, message, id).await
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
            Tally::add(&assoc.tally.bytes, pdv.data.len() as u64);
            if let Some(s) = sink.as_mut()
                && let Err(outcome) = s.write(&pdv.data).await
            {
                if let Some(s) = sink.take() {
                    s.discard().await;
                }
                failed = Some(outcome);
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
            assoc.tally.store(&outcome);
            send(conn, id, &store_response(&request, outcome)).await?;
            Ok(State::idle())
        }
        (
            State::Identifier {
                request,
                mut buf,
                mut overflow,
                context,
            },
            PDataValueType::Data,
        ) if context == id => {
            if !overflow && buf.len() + pdv.data.len() > MAX_IDENTIFIER_LEN {
                overflow = true;
                buf = Vec::new();
            } else if !overflow {
                buf.extend_from_slice(&pdv.data);
            }
            if !pdv.is_last {
                return Ok(State::Identifier {
                    request,
                    buf,
                    overflow,
                    context,
                });
            }
            let identifier = (!overflow).then_some(buf);
            query::dispatch(conn, assoc, request, id, identifier).await
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
    assoc: &Assoc<'_, T, S>,
    message: Message,
    id: u8,
) -> Result<State<S::Sink>, DimseError>
where
    T: Send + Sync,
    S: Service<T>,
{
    let (info, session, service) = (assoc.info, assoc.session, assoc.service);
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
                Err(outcome) => {
                    assoc.tally.store(&outcome);
                    Ok(State::Drain {
                        reply: store_response(&request, outcome),
                        context: id,
                    })
                }
            }
        }
        Message::CCancelRq(_) => Ok(State::idle()),
        Message::CFindRq(rq) => {
            Tally::add(&assoc.tally.queries, 1);
            Ok(State::identifier(QrRequest::Find(rq), id))
        }
        Message::CGetRq(rq) => {
            Tally::add(&assoc.tally.retrievals, 1);
            Ok(State::identifier(
                QrRequest::Retrieve(RetrieveRequest::Get(rq)),
                id,
            ))
        }
        Message::CMoveRq(rq) => {
            Tally::add(&assoc.tally.retrievals, 1);
            Ok(State::identifier(
                QrRequest::Retrieve(RetrieveRequest::Move(rq)),
                id,
            ))
        }
        other => Err(DimseError::Unexpected(format!(
            "{} sent to the acceptor",
            other.name()
        ))),
    }
}

/// An Error Comment as sent: ASCII, at most 64 characters.
pub(crate) fn comment_text(comment: Option<String>) -> Option<String> {
    comment.map(|c| c.chars().filter(char::is_ascii).take(64).collect())
}

fn store_response(rq: &CStoreRq, outcome: StoreOutcome) -> Message {
    let comment = comment_text(outcome.comment);
    CStoreRsp {
        message_id_being_responded_to: rq.message_id,
        affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
        affected_sop_instance_uid: rq.affected_sop_instance_uid.clone(),
        status: outcome.status,
        error_comment: comment,
    }
    .into()
}

async fn send(conn: &mut PduConn, context: u8, message: &Message) -> Result<(), DimseError> {
    conn.send_command(context, &message.encode()).await
}
