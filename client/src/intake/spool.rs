//! The spool: where the edge SCP (and `pacs-client send`) puts received instances
//! (DESIGN.md Ingest steps 1-3). Each data set is streamed into a temp file, fsynced,
//! checked (`check`), renamed into place, routed with the sharing rules, and its
//! outbox row committed; only then does the modality hear success. The spool doubles
//! as the client's local store.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dimse::Status;
use dimse::command::CStoreRq;
use dimse::scan::{self, Encoding, Header};
use dimse::scp::{DataSink, StoreOutcome};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use tracing::{info, warn};

use crate::config::{Config, Destination};
use crate::intake::reload::LiveRules;
use crate::intake::rules::{self, Facts};
use crate::outbox::{Inserted, NewEntry, Outbox, State};
use crate::uid::{usable_uid, valid_uid};

mod check;

/// Where received instances go.
#[derive(Debug)]
pub struct Spool {
    /// Root of the spool / local store.
    pub root: PathBuf,
    /// The outbox.
    pub outbox: Outbox,
    /// Sharing rules (the same live values the edge port's policy refreshes).
    pub rules: Arc<LiveRules>,
}

impl Spool {
    /// Opens the spool under `config.data_dir`. `owner`: this process holds the data
    /// dir's lock, so incomplete transfers left by a stop are its own to remove (a
    /// `send` next to a running `serve` must not touch serve's transfers in flight).
    pub fn open(config: &Config, outbox: Outbox, owner: bool) -> std::io::Result<Arc<Spool>> {
        let root = config.data_dir.join("spool");
        let incoming = root.join("incoming");
        std::fs::create_dir_all(&incoming)?;
        if owner {
            for entry in std::fs::read_dir(&incoming)?.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Arc::new(Spool {
            root,
            outbox,
            rules: LiveRules::new(config),
        }))
    }

    /// Path of one received version of an instance: UIDs were validated by the
    /// caller; `reception` (unique per reception) keeps every version in its own file.
    fn path_for(&self, study: &str, sop: &str, reception: &str) -> PathBuf {
        self.root.join(study).join(format!("{sop}.{reception}.dcm"))
    }
}

fn fail(status: Status, what: &str) -> StoreOutcome {
    StoreOutcome::with(status, what)
}

/// Receives one data set into the spool.
#[derive(Debug)]
pub struct SpoolSink {
    spool: Arc<Spool>,
    calling_ae: String,
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
    encoding: Encoding,
    reception: String,
    temp: PathBuf,
    file: BufWriter<tokio::fs::File>,
    meta_len: u64,
    hasher: Sha256,
    size: u64,
}

impl SpoolSink {
    /// Checks the request and opens a temp file with a Part-10 header.
    pub async fn begin(
        spool: Arc<Spool>,
        calling_ae: &str,
        rq: &CStoreRq,
        ts: &str,
    ) -> Result<SpoolSink, StoreOutcome> {
        if !usable_uid(&rq.affected_sop_instance_uid) {
            return Err(fail(
                Status::CannotUnderstand,
                "Affected SOP Instance UID: not 1-64 digits and dots",
            ));
        }
        if !valid_uid(&rq.affected_sop_class_uid) {
            return Err(fail(
                Status::CannotUnderstand,
                "Affected SOP Class UID: not a valid UID",
            ));
        }
        let encoding = Encoding::from_transfer_syntax(ts).ok_or_else(|| {
            fail(
                Status::CannotUnderstand,
                "transfer syntax not supported here",
            )
        })?;
        let reception = uuid::Uuid::new_v4().simple().to_string();
        let temp = spool
            .root
            .join("incoming")
            .join(format!("{reception}.part"));
        let meta = dimse::part10::encode_meta(
            &rq.affected_sop_class_uid,
            &rq.affected_sop_instance_uid,
            ts,
            calling_ae,
        );
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|_| fail(Status::OutOfResources, "cannot create spool file"))?;
        let mut file = BufWriter::with_capacity(1024 * 1024, file);
        if file.write_all(&meta).await.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(fail(Status::OutOfResources, "cannot write spool file"));
        }
        Ok(SpoolSink {
            spool,
            calling_ae: calling_ae.to_string(),
            sop_class: rq.affected_sop_class_uid.clone(),
            sop_instance: rq.affected_sop_instance_uid.clone(),
            transfer_syntax: ts.to_string(),
            encoding,
            reception,
            temp,
            file,
            meta_len: meta.len() as u64,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    async fn complete(&mut self) -> Result<StoreOutcome, StoreOutcome> {
        self.file
            .flush()
            .await
            .map_err(|_| fail(Status::OutOfResources, "cannot write spool file"))?;
        let header = scan_file(&self.temp, self.meta_len, self.encoding).await?;
        let study = check::check(&header, &self.sop_class, &self.sop_instance)?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let target = self
            .spool
            .path_for(&study, &self.sop_instance, &self.reception);
        durable_rename(&self.temp, &target).await.map_err(|e| {
            warn!(error = %e, "cannot spool instance");
            fail(Status::OutOfResources, "cannot write spool file")
        })?;
        let flag = self
            .spool
            .outbox
            .study_flag(&study)
            .await
            .map_err(db_failure)?;
        let facts = Facts {
            calling_ae: &self.calling_ae,
            modality: header.modality.as_deref(),
            study_description: header.study_description.as_deref(),
        };
        let state = match rules::route(&self.spool.rules.sharing(), flag, facts) {
            Destination::Forward => State::Pending,
            Destination::Local => State::Local,
        };
        let entry = NewEntry {
            sop_instance_uid: self.sop_instance.clone(),
            sop_class_uid: self.sop_class.clone(),
            study_uid: study,
            transfer_syntax: self.transfer_syntax.clone(),
            modality: header.modality.clone(),
            study_description: header.study_description.clone(),
            calling_ae: self.calling_ae.clone(),
            spool_path: target.display().to_string(),
            sha256,
            size_bytes: self.size as i64,
            state,
        };
        let (inserted, superseded) = match self.spool.outbox.insert(&entry).await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&target).await;
                return Err(db_failure(e));
            }
        };
        match inserted {
            Inserted::New => {}
            Inserted::Identical => {
                // The latest version has these bytes: this copy is not needed.
                let _ = tokio::fs::remove_file(&target).await;
                info!(sop_instance_uid = %self.sop_instance, "instance received again, identical; nothing to do");
            }
            Inserted::NewVersion(version) => {
                info!(sop_instance_uid = %self.sop_instance, version, "instance received again with other content: queued as a new version");
            }
        }
        for path in superseded {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(StoreOutcome::success())
    }
}

fn db_failure(e: sqlx::Error) -> StoreOutcome {
    warn!(error = %e, "outbox write failed");
    fail(
        Status::ProcessingFailure,
        "outbox unavailable; see the client log",
    )
}

async fn scan_file(path: &Path, offset: u64, encoding: Encoding) -> Result<Header, StoreOutcome> {
    let path = path.to_path_buf();
    let scanned = tokio::task::spawn_blocking(move || -> Result<Header, String> {
        let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        scan::scan(BufReader::with_capacity(256 * 1024, file), encoding).map_err(|e| e.to_string())
    })
    .await;
    match scanned {
        Ok(Ok(header)) => Ok(header),
        Ok(Err(reason)) => Err(fail(
            Status::CannotUnderstand,
            &format!("malformed data set: {reason}"),
        )),
        Err(_) => Err(fail(Status::ProcessingFailure, "scan failed")),
    }
}

/// Renames `from` to `to` (creating its directory) and fsyncs the file and the
/// directory, so the spooled instance survives a crash.
pub async fn durable_rename(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let dir = to
            .parent()
            .ok_or_else(|| std::io::Error::other("spool path without a directory"))?;
        let new_dir = !dir.exists();
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&from, &to)?;
        std::fs::File::open(&to)?.sync_all()?;
        std::fs::File::open(dir)?.sync_all()?;
        if new_dir && let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

impl DataSink for SpoolSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .await
            .map_err(|_| fail(Status::OutOfResources, "cannot write spool file"))
    }

    async fn finish(mut self) -> StoreOutcome {
        let outcome = self.complete().await.unwrap_or_else(|refused| refused);
        let _ = tokio::fs::remove_file(&self.temp).await;
        if !outcome.status.is_success() {
            warn!(
                sop_instance_uid = %self.sop_instance,
                calling_ae = %self.calling_ae,
                status = %outcome.status,
                reason = outcome.comment.as_deref().unwrap_or(""),
                "instance refused"
            );
        }
        outcome
    }

    async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.temp).await;
    }
}
