//! The ingest path (DESIGN.md "Ingest" steps 5-6): a received data set is hashed as
//! it arrives and held in memory (or, past [`MEMORY_LIMIT`], streamed into a temp
//! file); once complete it is scanned from first byte to last, its UIDs are validated,
//! de-identification marks are checked, duplicates are resolved by policy, the blob is
//! made durable under its key and the index rows are written in one transaction. Only
//! then does the sender hear success. A facility's storage quota is checked inside the
//! index transaction (and, for a spilled instance, before its blob is committed),
//! which keeps `stored_bytes` exact; a blob the index refuses is deleted again.

mod sink;
pub mod sweep;

pub use dimse::scan;

use std::sync::Arc;

use dimse::Status;
use dimse::scp::StoreOutcome;

use crate::audit::AuditTrail;
use crate::blobs::BlobStore;
use crate::config::DuplicatePolicy;
use crate::db::Index;
use crate::db::instances::{InstanceRecord, SeriesFields, StudyFields};
use crate::db::writer::IndexWriter;
use crate::domain::Uid;
use scan::Header;

pub use sink::{IngestSink, MEMORY_LIMIT};

/// Most name search tokens indexed per instance (the facility client sends 128).
const MAX_NAME_TOKENS: usize = 256;

/// Shared state of the ingest path.
#[derive(Debug)]
pub struct Ingest {
    /// The index.
    pub index: Index,
    /// The blob store.
    pub blobs: BlobStore,
    /// Group-committing writer for new index rows.
    pub writer: IndexWriter,
    /// What to do with conflicting duplicates.
    pub duplicate_policy: DuplicatePolicy,
    /// The audit trail (quota warnings).
    pub audit: AuditTrail,
    /// Background thumbnails, told about each new instance (set once at start).
    pub thumbnails: std::sync::OnceLock<crate::render::queue::ThumbnailQueue>,
}

impl Ingest {
    /// Builds the ingest path (spawns the index writer: call within a runtime).
    pub fn new(
        index: Index,
        blobs: BlobStore,
        duplicate_policy: DuplicatePolicy,
        audit: AuditTrail,
    ) -> Arc<Self> {
        let writer = IndexWriter::spawn(index.clone());
        Arc::new(Ingest {
            index,
            blobs,
            writer,
            duplicate_policy,
            audit,
            thumbnails: std::sync::OnceLock::new(),
        })
    }

    /// After a new instance is indexed: its series may need a new thumbnail.
    pub(crate) fn stored(&self, record: &InstanceRecord, facility: &crate::db::Facility) {
        if let Some(queue) = self.thumbnails.get() {
            queue.offer(facility, &record.series_uid);
        }
    }
}

fn refuse(status: Status, comment: impl Into<String>) -> StoreOutcome {
    StoreOutcome::with(status, comment)
}

fn cannot_understand(comment: impl Into<String>) -> StoreOutcome {
    refuse(Status::CannotUnderstand, comment)
}

fn required_uid(value: &Option<String>, name: &str) -> Result<Uid, StoreOutcome> {
    let value = value
        .as_deref()
        .ok_or_else(|| cannot_understand(format!("{name} missing")))?;
    Uid::parse(value).map_err(|_| cannot_understand(format!("{name} is not a valid UID")))
}

/// Keeps a DA value only if it looks like one (`YYYYMMDD`).
fn valid_date(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
        .cloned()
}

/// Caps free text kept in the index.
fn short(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| v.chars().take(256).collect())
}

/// Data set facts the request does not carry.
pub(crate) struct Received {
    pub(crate) sop_instance_uid: Uid,
    pub(crate) sop_class_uid: Uid,
    pub(crate) transfer_syntax: Uid,
    pub(crate) size_bytes: i64,
    pub(crate) sha256: String,
    pub(crate) calling_ae: String,
}

/// Checks a scanned header against the request and builds the index record.
pub(crate) fn validate(
    header: &Header,
    received: Received,
    facility: &crate::db::Facility,
) -> Result<InstanceRecord, StoreOutcome> {
    let instance = required_uid(&header.sop_instance_uid, "SOP Instance UID")?;
    if instance != received.sop_instance_uid {
        return Err(cannot_understand(
            "SOP Instance UID differs from the C-STORE request",
        ));
    }
    let class = required_uid(&header.sop_class_uid, "SOP Class UID")?;
    if class != received.sop_class_uid {
        return Err(refuse(
            Status::DataSetDoesNotMatchSopClass,
            "SOP Class UID differs from the C-STORE request",
        ));
    }
    let study_uid = required_uid(&header.study_instance_uid, "Study Instance UID")?;
    let series_uid = required_uid(&header.series_instance_uid, "Series Instance UID")?;
    let deidentified = header.patient_identity_removed && header.has_encrypted_attributes;
    if !deidentified && !facility.accept_identified {
        return Err(refuse(
            Status::NotAuthorized,
            "not de-identified: needs Patient Identity Removed=YES and a sealed identity",
        ));
    }
    // The identity summary when the client added one (bounded, whatever the size of
    // the full record); otherwise the full record, when small enough to index.
    let (sealed_identity, sealed_kind) = match (&header.identity_summary, &header.encrypted_content)
    {
        (Some(summary), _) => (Some(summary.clone()), Some("summary")),
        (None, Some(full)) => (Some(full.clone()), None),
        (None, None) => (None, None),
    };
    let sealed_for = sealed_identity.as_ref().map(|_| instance.to_string());
    Ok(InstanceRecord {
        facility: facility.id,
        sop_instance_uid: instance,
        sop_class_uid: class,
        study_uid,
        series_uid,
        transfer_syntax: received.transfer_syntax,
        instance_number: header.instance_number,
        number_of_frames: header.number_of_frames,
        size_bytes: received.size_bytes,
        sha256: received.sha256,
        blob_key: String::new(),
        calling_ae: received.calling_ae,
        received_at: crate::db::now_millis(),
        study: StudyFields {
            patient_id: short(&header.patient_id),
            patient_name: short(&header.patient_name),
            name_blind_index: short(&header.name_blind_index),
            name_tokens: header
                .name_tokens
                .iter()
                .take(MAX_NAME_TOKENS)
                .cloned()
                .collect(),
            sealed_sop_instance_uid: sealed_for,
            sealed_identity,
            sealed_kind,
            study_date: valid_date(&header.study_date),
            study_time: short(&header.study_time),
            accession_number: short(&header.accession_number),
            description: short(&header.study_description),
        },
        series: SeriesFields {
            modality: short(&header.modality),
            description: short(&header.series_description),
            number: header.series_number,
        },
    })
}
