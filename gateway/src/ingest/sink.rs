//! The C-STORE sink: temp file + hash while receiving, then validation, duplicate
//! policy, atomic blob commit and the index transaction.

use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;

use dimse::Status;
use dimse::command::CStoreRq;
use dimse::scp::{DataSink, StoreOutcome};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use tracing::{info, warn};

use super::scan::{self, Encoding, Header};
use super::{Ingest, Received, cannot_understand, refuse, validate};
use crate::audit::{AuditEvent, EventKind, Outcome, Protocol};
use crate::blobs::{BlobKey, TempBlob};
use crate::config::DuplicatePolicy;
use crate::db::Facility;
use crate::db::instances::{Indexed, InstanceRecord};
use crate::db::quota::Charged;
use crate::domain::Uid;

const WRITE_BUFFER: usize = 1024 * 1024;

/// Receives one C-STORE data set.
#[derive(Debug)]
pub struct IngestSink {
    ingest: Arc<Ingest>,
    facility: Facility,
    calling_ae: String,
    sop_instance: Uid,
    sop_class: Uid,
    transfer_syntax: Uid,
    encoding: Encoding,
    temp: TempBlob,
    file: BufWriter<tokio::fs::File>,
    meta_len: u64,
    hasher: Sha256,
    size: u64,
}

fn out_of_resources(what: &str, e: impl std::fmt::Display) -> StoreOutcome {
    warn!(error = %e, "{what}");
    refuse(
        Status::OutOfResources,
        format!("{what}; see the gateway log"),
    )
}

fn processing_failure(what: &str, e: impl std::fmt::Display) -> StoreOutcome {
    warn!(error = %e, "{what}");
    refuse(
        Status::ProcessingFailure,
        format!("{what}; see the gateway log"),
    )
}

impl IngestSink {
    /// Validates the request and opens the temp file (with a Part-10 meta header).
    pub async fn begin(
        ingest: Arc<Ingest>,
        facility: Facility,
        calling_ae: &str,
        request: &CStoreRq,
        transfer_syntax: &str,
    ) -> Result<IngestSink, StoreOutcome> {
        let sop_instance = Uid::parse(&request.affected_sop_instance_uid)
            .map_err(|_| cannot_understand("Affected SOP Instance UID is not a valid UID"))?;
        let sop_class = Uid::parse(&request.affected_sop_class_uid)
            .map_err(|_| cannot_understand("Affected SOP Class UID is not a valid UID"))?;
        let transfer_syntax = Uid::parse(transfer_syntax)
            .map_err(|_| cannot_understand("transfer syntax is not a valid UID"))?;
        let encoding = Encoding::from_transfer_syntax(transfer_syntax.as_str())
            .ok_or_else(|| cannot_understand("unsupported transfer syntax"))?;
        let temp = ingest.blobs.temp();
        // Only for the gateway's user, whatever the umask of whoever started it.
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp.path)
            .await
            .map_err(|e| out_of_resources("cannot create temp file", e))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
        let meta = dimse::part10::encode_meta(
            sop_class.as_str(),
            sop_instance.as_str(),
            transfer_syntax.as_str(),
            calling_ae,
        );
        if let Err(e) = file.write_all(&meta).await {
            ingest.blobs.discard(&temp).await;
            return Err(out_of_resources("cannot write temp file", e));
        }
        Ok(IngestSink {
            ingest,
            facility,
            calling_ae: calling_ae.to_string(),
            sop_instance,
            sop_class,
            transfer_syntax,
            encoding,
            temp,
            file,
            meta_len: meta.len() as u64,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Writes out the temp file and scans it. The file is made durable only if it
    /// is kept ([`BlobStore::commit`](crate::blobs::BlobStore::commit)), so refused
    /// instances and identical duplicates cost no flush.
    async fn write_out_and_scan(&mut self) -> Result<Header, StoreOutcome> {
        self.file
            .flush()
            .await
            .map_err(|e| out_of_resources("cannot write temp file", e))?;
        let (path, offset, encoding) = (self.temp.path.clone(), self.meta_len, self.encoding);
        let scan = tokio::task::spawn_blocking(move || -> Result<Header, String> {
            let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            scan::scan(BufReader::with_capacity(256 * 1024, file), encoding)
                .map_err(|e| e.to_string())
        });
        match scan.await {
            Ok(Ok(header)) => Ok(header),
            Ok(Err(reason)) => Err(cannot_understand(format!("malformed data set: {reason}"))),
            Err(e) => Err(out_of_resources("scan task failed", e)),
        }
    }

    async fn finish_inner(&mut self) -> Result<InstanceRecord, StoreOutcome> {
        let header = self.write_out_and_scan().await?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let received = Received {
            sop_instance_uid: self.sop_instance.clone(),
            sop_class_uid: self.sop_class.clone(),
            transfer_syntax: self.transfer_syntax.clone(),
            size_bytes: self.size as i64,
            sha256,
            calling_ae: self.calling_ae.clone(),
        };
        validate(&header, received, &self.facility)
    }
}

impl DataSink for IngestSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| out_of_resources("cannot write temp file", e))
    }

    async fn finish(mut self) -> StoreOutcome {
        let outcome = match self.finish_inner().await {
            Ok(record) => store(&self.ingest, record, &self.temp, &self.facility).await,
            Err(outcome) => outcome,
        };
        self.ingest.blobs.discard(&self.temp).await;
        if !outcome.status.is_success() {
            info!(
                facility = %self.facility.name,
                sop_instance_uid = %self.sop_instance,
                status = %outcome.status,
                comment = outcome.comment.as_deref().unwrap_or(""),
                "instance refused"
            );
        }
        outcome
    }

    async fn discard(self) {
        self.ingest.blobs.discard(&self.temp).await;
    }
}

/// 0xA700: the facility's storage quota has no room for this instance.
fn over_quota(facility: &Facility, size: i64) -> StoreOutcome {
    warn!(facility = %facility.name, size_bytes = size, "storage quota exceeded; instance refused");
    refuse(
        Status::OutOfResources,
        "storage quota of the facility exceeded",
    )
}

/// Logs and audits (once per crossing) a facility passing its quota warning level.
async fn quota_warning(ingest: &Ingest, facility: &Facility, charged: &Charged) {
    let Some(percent) = charged.crossed_warning() else {
        return;
    };
    warn!(
        facility = %facility.name,
        percent,
        stored_bytes = charged.after.stored_bytes,
        quota_bytes = charged.after.quota_bytes,
        "storage quota warning level reached"
    );
    let event = AuditEvent::new(EventKind::SecurityAlert, Outcome::Success, Protocol::Dicom)
        .facility(facility.id)
        .detail(format!("storage quota {percent}% used"))
        .count(1);
    ingest.audit.record(event).await;
}

fn audit(record: &InstanceRecord, facility: &Facility, event: &str) {
    warn!(
        target: "audit",
        facility = %facility.name,
        calling_ae = %record.calling_ae,
        sop_instance_uid = %record.sop_instance_uid,
        event,
        "duplicate SOP instance with different content"
    );
}

/// Resolves duplicates, commits the blob and writes the index rows.
async fn store(
    ingest: &Ingest,
    mut record: InstanceRecord,
    temp: &TempBlob,
    facility: &Facility,
) -> StoreOutcome {
    let key = BlobKey::new(
        record.facility,
        &record.study_uid,
        &record.sop_instance_uid,
        &record.sha256,
    );
    record.blob_key = key.as_str().to_string();
    let mut committed = false;
    for _ in 0..3 {
        let existing = match ingest
            .index
            .find_instance(record.facility, &record.sop_instance_uid)
            .await
        {
            Ok(existing) => existing,
            Err(e) => return processing_failure("index unavailable", e),
        };
        let Some(existing) = existing else {
            if !committed {
                match ingest.index.quota(record.facility).await {
                    Ok(Some(quota)) if !quota.allows(record.size_bytes) => {
                        return over_quota(facility, record.size_bytes);
                    }
                    Ok(_) => {}
                    Err(e) => return processing_failure("index unavailable", e),
                }
                if let Err(e) = ingest.blobs.commit(temp, &key).await {
                    return out_of_resources("cannot store blob", e);
                }
                committed = true;
            }
            match ingest.writer.insert(record.clone()).await {
                Ok(Indexed::New(charged)) => {
                    quota_warning(ingest, facility, &charged).await;
                    return StoreOutcome::success();
                }
                Ok(Indexed::Exists) => continue,
                Ok(Indexed::OverQuota) => {
                    // Another association took the room meanwhile: the index refused
                    // the row, so the blob must go too.
                    let _ = ingest.blobs.delete(&key).await;
                    return over_quota(facility, record.size_bytes);
                }
                Err(e) => return processing_failure("index write failed", e),
            }
        };
        if existing.sha256 == record.sha256 {
            info!(sop_instance_uid = %record.sop_instance_uid, "duplicate with identical bytes; nothing rewritten");
            return StoreOutcome::success();
        }
        let drop_ours = || async {
            if committed && existing.blob_key != key.as_str() {
                let _ = ingest.blobs.delete(&key).await;
            }
        };
        return match ingest.duplicate_policy {
            DuplicatePolicy::Reject => {
                drop_ours().await;
                audit(&record, facility, "rejected");
                refuse(
                    Status::DuplicateSopInstance,
                    "SOP Instance UID already stored with different content",
                )
            }
            DuplicatePolicy::KeepFirst => {
                drop_ours().await;
                audit(&record, facility, "kept-first");
                // A warning, not plain success: the sender learns that the stored
                // version is not the one it sent (senders count warnings as stored).
                StoreOutcome::with(
                    Status::ElementsDiscarded,
                    "already stored with other content; kept the stored version",
                )
            }
            DuplicatePolicy::Replace => {
                replace(
                    ingest,
                    &record,
                    temp,
                    &key,
                    committed,
                    &existing.blob_key,
                    facility,
                )
                .await
            }
        };
    }
    refuse(
        Status::ProcessingFailure,
        "concurrent stores of the same instance; retry",
    )
}

async fn replace(
    ingest: &Ingest,
    record: &InstanceRecord,
    temp: &TempBlob,
    key: &BlobKey,
    committed: bool,
    old_key: &str,
    facility: &Facility,
) -> StoreOutcome {
    if !committed && let Err(e) = ingest.blobs.commit(temp, key).await {
        return out_of_resources("cannot store blob", e);
    }
    match ingest.index.replace_instance(record).await {
        Ok(Indexed::New(charged)) => quota_warning(ingest, facility, &charged).await,
        Ok(Indexed::OverQuota) => {
            if old_key != key.as_str() {
                let _ = ingest.blobs.delete(key).await;
            }
            return over_quota(facility, record.size_bytes);
        }
        Ok(Indexed::Exists) => {}
        Err(e) => return processing_failure("index write failed", e),
    }
    if old_key != key.as_str() {
        let _ = ingest
            .blobs
            .delete(&BlobKey::from_index(old_key.to_string()))
            .await;
    }
    audit(record, facility, "replaced");
    StoreOutcome::success()
}
