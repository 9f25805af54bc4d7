//! C-FIND and C-GET/C-MOVE on the gateway: decode the identifier, query the index
//! for the session's facility only, and stream matches or stored instances back.
//! Every query and retrieve, answered or refused, leaves an audit line and an audit
//! event (who, facility, level, count; for C-GET/C-MOVE a `begin-transferring` event
//! at the start and an `instances-transferred` one at the end) — never an identifier
//! value.

use std::io::SeekFrom;
use std::sync::Arc;

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::Status;
use dimse::assoc::AcceptedContext;
use dimse::command::CFindRq;
use dimse::qr::{FindResult, Retrieval, RetrieveItem, RetrieveRequest};
use dimse::scp::StoreOutcome;
use tokio::io::AsyncSeekExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Session;
use super::activity::Activity;
use crate::audit::{EventKind, Outcome};
use crate::db::Index;
use crate::ingest::Ingest;
use crate::qr::{self, Model, Query};

/// Most matches one C-FIND returns.
const MAX_MATCHES: usize = 10_000;

fn refuse(status: Status, comment: impl Into<String>) -> StoreOutcome {
    let comment: String = comment.into().chars().take(64).collect();
    StoreOutcome::with(status, comment)
}

/// Logs the audit line and records the audit event of a query or retrieve.
async fn audit(session: &Session, what: &str, level: &str, outcome: &str, count: usize) {
    let user = session
        .user
        .as_ref()
        .map(|u| u.username.to_string())
        .unwrap_or_default();
    info!(target: "audit", facility = %session.facility.name, user, event = what, level, outcome, count, "query/retrieve");
    let (kind, operation) = match what {
        "query" => (EventKind::Query, "C-FIND"),
        "retrieve-get" => (EventKind::BeginTransferring, "C-GET"),
        _ => (EventKind::BeginTransferring, "C-MOVE"),
    };
    let result = match outcome {
        "success" => Outcome::Success,
        "failed" => Outcome::SeriousFailure,
        _ => Outcome::MinorFailure,
    };
    let level = if level.is_empty() { "-" } else { level };
    let event = session
        .activity
        .event(kind, result)
        .detail(format!("{operation} level {level}: {outcome}"))
        .count(count);
    session.activity.record(event).await;
}

/// Decodes and parses an identifier received on `context`.
fn parse(
    sop_class: &str,
    context: &AcceptedContext,
    identifier: &[u8],
) -> Result<Query, StoreOutcome> {
    let ts = TransferSyntaxRegistry
        .get(&context.transfer_syntax)
        .ok_or_else(|| refuse(Status::CannotUnderstand, "unsupported transfer syntax"))?;
    let object = InMemDicomObject::read_dataset_with_ts(identifier, ts).map_err(|_| {
        refuse(
            Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            "cannot decode the identifier",
        )
    })?;
    let model = Model::from_sop_class(sop_class).ok_or_else(|| {
        refuse(
            Status::SopClassNotSupported,
            "not a query/retrieve SOP class",
        )
    })?;
    qr::parse(model, &object).map_err(|e| refuse(Status::from_code(e.status()), e.to_string()))
}

fn encode(object: &InMemDicomObject, transfer_syntax: &str) -> Option<Vec<u8>> {
    let ts = TransferSyntaxRegistry.get(transfer_syntax)?;
    let mut out = Vec::new();
    object.write_dataset_with_ts(&mut out, ts).ok()?;
    Some(out)
}

/// C-FIND.
pub(super) async fn find(
    index: &Index,
    session: &Session,
    request: &CFindRq,
    context: &AcceptedContext,
    identifier: Vec<u8>,
) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
    let query = match parse(&request.affected_sop_class_uid, context, &identifier) {
        Ok(query) => query,
        Err(refusal) => {
            audit(session, "query", "", "refused", 0).await;
            return Err(refusal);
        }
    };
    let level = query.level().as_str();
    let matches = match qr::find(index, session.facility.id, &query, MAX_MATCHES).await {
        Ok(matches) => matches,
        Err(e) => {
            warn!(error = %e, "query failed");
            audit(session, "query", level, "failed", 0).await;
            return Err(refuse(
                Status::from_code(e.status()),
                "query failed; see the gateway log",
            ));
        }
    };
    audit(session, "query", level, "success", matches.len()).await;
    let partial = query.has_unsupported_keys();
    let ts = context.transfer_syntax.clone();
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        for object in matches {
            let result = match encode(&object, &ts) {
                Some(bytes) if partial => FindResult::MatchWithoutOptionalKeys(bytes),
                Some(bytes) => FindResult::Match(bytes),
                None => FindResult::Failed(StoreOutcome::with(
                    Status::ProcessingFailure,
                    "cannot encode a match",
                )),
            };
            if tx.send(result).await.is_err() {
                break; // cancelled
            }
        }
    });
    Ok(rx)
}

/// C-GET and C-MOVE: the stored bytes of every instance the identifier selects.
pub(super) async fn retrieve(
    ingest: &Ingest,
    session: &Session,
    request: &RetrieveRequest,
    context: &AcceptedContext,
    identifier: Vec<u8>,
) -> Result<Retrieval, StoreOutcome> {
    let what = match request {
        RetrieveRequest::Get(_) => "retrieve-get",
        RetrieveRequest::Move(_) => "retrieve-move",
    };
    let query = match parse(request.sop_class_uid(), context, &identifier) {
        Ok(query) => query,
        Err(refusal) => {
            audit(session, what, "", "refused", 0).await;
            return Err(refusal);
        }
    };
    let level = query.level().as_str();
    let targets = match qr::instances_for_retrieve(&ingest.index, session.facility.id, &query).await
    {
        Ok(targets) => targets,
        Err(e) => {
            audit(session, what, level, "refused", 0).await;
            return Err(refuse(Status::from_code(e.status()), e.to_string()));
        }
    };
    audit(session, what, level, "success", targets.len()).await;
    let mut syntaxes: Vec<(String, String)> = Vec::new();
    for t in &targets {
        let pair = (t.sop_class_uid.clone(), t.transfer_syntax.clone());
        if !syntaxes.contains(&pair) {
            syntaxes.push(pair);
        }
    }
    let total = targets.len();
    let blobs = ingest.blobs.clone();
    let (tx, items) = mpsc::channel(4);
    let done = Transferred {
        activity: session.activity.clone(),
        what: match request.move_destination() {
            None => format!("C-GET level {level}"),
            Some(ae) => format!("C-MOVE level {level} to {}", shown_ae(ae)),
        },
        total,
        handed_over: 0,
        unreadable: 0,
    };
    tokio::spawn(async move {
        let mut done = done;
        for target in targets {
            let path = blobs.path_of(&crate::blobs::BlobKey::from_index(target.blob_key.clone()));
            let Some(data) = open_data_set(&path).await else {
                warn!(path = %path.display(), "stored instance cannot be read");
                done.unreadable += 1;
                continue; // counted as failed by the SCP (announced but never sent)
            };
            let item = RetrieveItem {
                sop_class_uid: target.sop_class_uid,
                sop_instance_uid: target.sop_instance_uid,
                transfer_syntax: target.transfer_syntax,
                data: Box::new(data),
            };
            if tx.send(item).await.is_err() {
                break;
            }
            done.handed_over += 1;
        }
        // Once the channel is closed the SCP sends what is left; the count is of the
        // instances handed over for sending (sub-operation results stay with the SCP).
        drop(tx);
        done.record().await;
    });
    Ok(Retrieval {
        total,
        syntaxes,
        items,
    })
}

/// Printable ASCII of an AE title from the wire, at most 16 characters.
fn shown_ae(ae: &str) -> String {
    ae.chars()
        .take(16)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The end of a C-GET or C-MOVE, for the audit trail.
struct Transferred {
    activity: Arc<Activity>,
    what: String,
    total: usize,
    handed_over: usize,
    unreadable: usize,
}

impl Transferred {
    async fn record(self) {
        let outcome = if self.handed_over == self.total {
            Outcome::Success
        } else if self.handed_over == 0 {
            Outcome::SeriousFailure
        } else {
            Outcome::MinorFailure
        };
        let not_sent = self.total - self.handed_over - self.unreadable;
        let event = self
            .activity
            .event(EventKind::InstancesTransferred, outcome)
            .detail(format!(
                "{}: {} of {} sent, {} unreadable, {} not sent (cancelled or aborted)",
                self.what, self.handed_over, self.total, self.unreadable, not_sent
            ))
            .count(self.handed_over);
        self.activity.record(event).await;
    }
}

/// The data set part of a stored Part-10 blob, positioned after its meta header.
async fn open_data_set(path: &std::path::Path) -> Option<tokio::io::BufReader<tokio::fs::File>> {
    let meta = dimse::scu::read_file_meta(path).await.ok()?;
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(SeekFrom::Start(meta.dataset_offset as u64))
        .await
        .ok()?;
    Some(tokio::io::BufReader::with_capacity(256 * 1024, file))
}
