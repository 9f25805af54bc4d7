//! The C-STORE sink: the data set is hashed while it arrives and kept in memory up to
//! [`MEMORY_LIMIT`] (a CT or MR slice), spilling to a temp file beyond that; then it
//! is scanned, validated, its duplicates resolved by policy, its blob made durable and
//! its index rows written. An instance held in memory is scanned where it lies and
//! written, fsynced and linked into place in one blocking job, with the index telling
//! about duplicates and quota in the same transaction that inserts it; a spilled one
//! is checked against the index before its temp file is committed.

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
use crate::blobs::{BlobKey, Put, TempBlob};
use crate::config::DuplicatePolicy;
use crate::db::Facility;
use crate::db::instances::{Indexed, InstanceRecord};
use crate::db::quota::Charged;
use crate::domain::Uid;

/// Data sets up to this size are held in memory until they are written whole (the
/// same bound per association as the write buffer of a spilled one).
pub const MEMORY_LIMIT: usize = 1024 * 1024;

const WRITE_BUFFER: usize = 1024 * 1024;

/// Where the received bytes are.
#[derive(Debug)]
enum Body {
    /// All of them, in memory (at most [`MEMORY_LIMIT`]).
    Memory(Vec<u8>),
    /// In a temp file (behind the Part-10 meta header), through a write buffer.
    File {
        temp: TempBlob,
        file: BufWriter<tokio::fs::File>,
    },
}

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
    meta: Vec<u8>,
    body: Body,
    hasher: Sha256,
    size: u64,
    expected_study: Option<String>,
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

fn malformed(reason: impl std::fmt::Display) -> StoreOutcome {
    cannot_understand(format!("malformed data set: {reason}"))
}

impl IngestSink {
    /// Validates the request and prepares the Part-10 meta header.
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
        let meta = dimse::part10::encode_meta(
            sop_class.as_str(),
            sop_instance.as_str(),
            transfer_syntax.as_str(),
            calling_ae,
        );
        Ok(IngestSink {
            ingest,
            facility,
            calling_ae: calling_ae.to_string(),
            sop_instance,
            sop_class,
            transfer_syntax,
            encoding,
            meta,
            body: Body::Memory(Vec::new()),
            hasher: Sha256::new(),
            size: 0,
            expected_study: None,
        })
    }

    /// Moves what is held in memory into a temp file, which takes the rest.
    async fn spill(&mut self, held: &[u8]) -> Result<Body, StoreOutcome> {
        let temp = self.ingest.blobs.temp();
        // Only for the gateway's user, whatever the umask of whoever started it.
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp.path)
            .await
            .map_err(|e| out_of_resources("cannot create temp file", e))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut written = file.write_all(&self.meta).await;
        if written.is_ok() {
            written = file.write_all(held).await;
        }
        if let Err(e) = written {
            self.ingest.blobs.discard(&temp).await;
            return Err(out_of_resources("cannot write temp file", e));
        }
        Ok(Body::File { temp, file })
    }

    /// Writes out the temp file and scans it. The file is made durable only if it
    /// is kept ([`BlobStore::commit`](crate::blobs::BlobStore::commit)), so refused
    /// instances and identical duplicates cost no flush.
    async fn write_out_and_scan(
        file: &mut BufWriter<tokio::fs::File>,
        temp: &TempBlob,
        offset: u64,
        encoding: Encoding,
    ) -> Result<Header, StoreOutcome> {
        file.flush()
            .await
            .map_err(|e| out_of_resources("cannot write temp file", e))?;
        let path = temp.path.clone();
        let scan = tokio::task::spawn_blocking(move || -> Result<Header, String> {
            let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            scan::scan(BufReader::with_capacity(256 * 1024, file), encoding)
                .map_err(|e| e.to_string())
        });
        match scan.await {
            Ok(Ok(header)) => Ok(header),
            Ok(Err(reason)) => Err(malformed(reason)),
            Err(e) => Err(out_of_resources("scan task failed", e)),
        }
    }

    /// Refuses the data set (0xA900, before anything is written) unless its Study
    /// Instance UID is `study`: what STOW-RS to `/studies/{study}` requires.
    pub fn expect_study(mut self, study: &str) -> Self {
        self.expected_study = Some(study.to_string());
        self
    }

    fn record(&mut self, header: &Header) -> Result<InstanceRecord, StoreOutcome> {
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let received = Received {
            sop_instance_uid: self.sop_instance.clone(),
            sop_class_uid: self.sop_class.clone(),
            transfer_syntax: self.transfer_syntax.clone(),
            size_bytes: self.size as i64,
            sha256,
            calling_ae: self.calling_ae.clone(),
        };
        let record = validate(header, received, &self.facility)?;
        match &self.expected_study {
            Some(study) if study != record.study_uid.as_str() => Err(refuse(
                Status::DataSetDoesNotMatchSopClass,
                "Study Instance UID differs from the study of the request",
            )),
            _ => Ok(record),
        }
    }

    /// Finishes a data set held in memory.
    async fn finish_memory(&mut self, data: Vec<u8>) -> StoreOutcome {
        let encoding = self.encoding;
        let (scanned, data) = if encoding == Encoding::DeflatedExplicitLittle {
            // Inflating may take long (a small deflated set can expand a lot).
            let job = tokio::task::spawn_blocking(move || {
                let result = scan::scan(&data[..], encoding).map_err(|e| e.to_string());
                (result, data)
            });
            match job.await {
                Ok(done) => done,
                Err(e) => return out_of_resources("scan task failed", e),
            }
        } else {
            let result = scan::scan(&data[..], encoding).map_err(|e| e.to_string());
            (result, data)
        };
        let record = match scanned {
            Ok(header) => self.record(&header),
            Err(reason) => return malformed(reason),
        };
        self.store_memory(record, data).await
    }

    async fn store_memory(
        &mut self,
        record: Result<InstanceRecord, StoreOutcome>,
        data: Vec<u8>,
    ) -> StoreOutcome {
        let mut record = match record {
            Ok(record) => record,
            Err(outcome) => return outcome,
        };
        if let Some(outcome) = purged(&self.ingest, &record).await {
            return outcome;
        }
        let key = key_of(&mut record);
        let meta = std::mem::take(&mut self.meta);
        let blob = match self.ingest.blobs.put(&key, vec![meta, data]).await {
            Ok(Put::Written) => Blob::Committed { ours: true },
            Ok(Put::Existed) => Blob::Committed { ours: false },
            Err(e) => return out_of_resources("cannot store blob", e),
        };
        store(&self.ingest, record, key, blob, &self.facility).await
    }

    /// Finishes a data set spilled to its temp file.
    async fn finish_file(
        &mut self,
        temp: TempBlob,
        mut file: BufWriter<tokio::fs::File>,
    ) -> StoreOutcome {
        let offset = self.meta.len() as u64;
        let scanned = Self::write_out_and_scan(&mut file, &temp, offset, self.encoding).await;
        drop(file);
        let mut blob = Blob::Temp(temp);
        let outcome = match scanned.and_then(|header| self.record(&header)) {
            Ok(mut record) => match purged(&self.ingest, &record).await {
                Some(outcome) => outcome,
                None => {
                    let key = key_of(&mut record);
                    store(&self.ingest, record, key, &mut blob, &self.facility).await
                }
            },
            Err(outcome) => outcome,
        };
        if let Blob::Temp(temp) = &blob {
            self.ingest.blobs.discard(temp).await;
        }
        outcome
    }
}

fn key_of(record: &mut InstanceRecord) -> BlobKey {
    let key = BlobKey::new(
        record.facility,
        &record.study_uid,
        &record.sop_instance_uid,
        &record.sha256,
    );
    record.blob_key = key.as_str().to_string();
    key
}

impl DataSink for IngestSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        match &mut self.body {
            Body::Memory(held) if held.len() + chunk.len() <= MEMORY_LIMIT => {
                held.extend_from_slice(chunk);
                Ok(())
            }
            Body::Memory(held) => {
                let held = std::mem::take(held);
                let mut body = self.spill(&held).await?;
                drop(held);
                let written = match &mut body {
                    Body::File { file, .. } => file.write_all(chunk).await,
                    Body::Memory(_) => Ok(()),
                };
                self.body = body;
                written.map_err(|e| out_of_resources("cannot write temp file", e))
            }
            Body::File { file, .. } => file
                .write_all(chunk)
                .await
                .map_err(|e| out_of_resources("cannot write temp file", e)),
        }
    }

    async fn finish(mut self) -> StoreOutcome {
        let outcome = match std::mem::replace(&mut self.body, Body::Memory(Vec::new())) {
            Body::Memory(data) => self.finish_memory(data).await,
            Body::File { temp, file } => self.finish_file(temp, file).await,
        };
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
        if let Body::File { temp, file } = self.body {
            drop(file);
            self.ingest.blobs.discard(&temp).await;
        }
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

/// The blob of an instance being stored.
#[derive(Debug)]
enum Blob {
    /// Still a temp file: committed only once the index has room for it.
    Temp(TempBlob),
    /// Durable under its key; `ours` when this store wrote it (rather than finding
    /// the key already there), so that a refusal removes it again.
    Committed { ours: bool },
}

impl Blob {
    fn committed(&self) -> bool {
        matches!(self, Blob::Committed { .. })
    }

    fn ours(&self) -> bool {
        matches!(self, Blob::Committed { ours: true })
    }
}

/// The refusal of an instance of a study the facility's retention policy purged
/// (its tombstone is in the index), before anything is written: a late re-send is
/// reported to the sender, 0x0124 with when and why, instead of silently starting the
/// study again (the facility client keeps it as a dead letter with that reason). One
/// primary-key lookup per instance, so that every gateway node sharing the index
/// sees a purge at once.
async fn purged(ingest: &Ingest, record: &InstanceRecord) -> Option<StoreOutcome> {
    match ingest
        .index
        .tombstone(record.facility, record.study_uid.as_str())
        .await
    {
        Ok(None) => None,
        Ok(Some(t)) => {
            info!(study_uid = %record.study_uid, sop_instance_uid = %record.sop_instance_uid, "instance of a purged study refused (tombstone)");
            Some(refuse(
                Status::NotAuthorized,
                format!(
                    "study purged on {} ({}); a facility administrator lifts the tombstone to store it again",
                    crate::audit::rfc3339(t.purged_at),
                    t.reason
                ),
            ))
        }
        Err(e) => Some(processing_failure("index unavailable", e)),
    }
}

/// Resolves duplicates, commits the blob (if it is still a temp file) and writes the
/// index rows. With the blob durable, the insert comes first: its transaction tells
/// whether the instance is new and within the quota, so the common case costs one
/// index round.
async fn store(
    ingest: &Ingest,
    record: InstanceRecord,
    key: BlobKey,
    mut blob: impl std::borrow::BorrowMut<Blob>,
    facility: &Facility,
) -> StoreOutcome {
    let blob = blob.borrow_mut();
    for _ in 0..4 {
        if blob.committed() {
            match ingest.writer.insert(record.clone()).await {
                Ok(Indexed::New(charged)) => {
                    quota_warning(ingest, facility, &charged).await;
                    ingest.stored(&record, facility);
                    return StoreOutcome::success();
                }
                Ok(Indexed::Exists) => {}
                Ok(Indexed::OverQuota) => {
                    // The index refused the row (perhaps another association took
                    // the room meanwhile), so the blob must go too.
                    if blob.ours() {
                        let _ = ingest.blobs.delete(&key).await;
                    }
                    return over_quota(facility, record.size_bytes);
                }
                Err(e) => return processing_failure("index write failed", e),
            }
        }
        let existing = match ingest
            .index
            .find_instance(record.facility, &record.sop_instance_uid)
            .await
        {
            Ok(existing) => existing,
            Err(e) => return processing_failure("index unavailable", e),
        };
        let Some(existing) = existing else {
            if let Blob::Temp(temp) = &*blob {
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
                *blob = Blob::Committed { ours: true };
            }
            // Gone between the insert and the lookup (removed meanwhile): insert again.
            continue;
        };
        if existing.sha256 == record.sha256 {
            info!(sop_instance_uid = %record.sop_instance_uid, "duplicate with identical bytes; nothing rewritten");
            return StoreOutcome::success();
        }
        let ours = blob.ours() && existing.blob_key != key.as_str();
        let drop_ours = || async {
            if ours {
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
                if let Blob::Temp(temp) = &*blob {
                    if let Err(e) = ingest.blobs.commit(temp, &key).await {
                        return out_of_resources("cannot store blob", e);
                    }
                    *blob = Blob::Committed { ours: true };
                }
                replace(ingest, &record, &key, &existing.blob_key, facility).await
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
    key: &BlobKey,
    old_key: &str,
    facility: &Facility,
) -> StoreOutcome {
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
    ingest.stored(record, facility);
    StoreOutcome::success()
}
