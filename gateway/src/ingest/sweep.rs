//! The blob sweep: reconciles the blob store with the index, at start and then every
//! `[ingest] sweep_interval_secs`.
//!
//! A blob is committed before its index row is written (so that a row never points
//! to nothing); a crash between the two leaves a blob without a row. The sweep
//! deletes such orphans once they are older than `[ingest] orphan_min_age_secs`
//! (younger ones may belong to a store in progress, on this node or another one
//! sharing the store), and removes this node's temp files whose writing process is
//! gone ([`crate::blobs::node`]). Index rows whose blob is missing are never touched:
//! that is data loss to investigate (a restored backup, a failed disk), so each is
//! logged as an error and counted. One summary line per sweep. The thumbnail cache
//! (`thumbnails/`, [`crate::render::thumbs`]) holds no instances: only thumbnails of
//! instances removed or replaced are deleted there ([`thumbnails`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info, warn};

use crate::blobs::BlobStore;
use crate::db::Index;
use crate::domain::FacilityId;

mod thumbnails;

/// Rows read from the index at a time.
const PAGE: i64 = 1000;
/// Rows without blobs named one by one in the log, per sweep.
const NAMED_MISSING: usize = 20;

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blob files looked at.
    pub blobs_seen: u64,
    /// Blobs without an index row, deleted.
    pub orphans_removed: u64,
    /// Blobs without an index row, younger than the safe age: left for next time.
    pub orphans_too_young: u64,
    /// Files under the store root that are not blobs of ours: left alone.
    pub unrecognized: u64,
    /// Index rows looked at.
    pub rows_seen: u64,
    /// Index rows whose blob is missing.
    pub rows_without_blob: u64,
    /// This node's abandoned temp files removed.
    pub temp_removed: u64,
    /// Cached thumbnails of instances removed or replaced, deleted.
    pub thumbnails_removed: u64,
    /// Whether a step failed part-way (logged); counts cover what was done.
    pub incomplete: bool,
}

/// Runs one sweep over `blobs` against `index`.
pub async fn sweep(index: &Index, blobs: &BlobStore, min_age: Duration) -> SweepReport {
    let started = Instant::now();
    let mut report = SweepReport {
        temp_removed: blobs.remove_abandoned_temps(false),
        ..SweepReport::default()
    };
    orphans(index, blobs, min_age, &mut report).await;
    missing(index, blobs, &mut report).await;
    thumbnails::sweep(index, blobs, min_age, &mut report).await;
    info!(
        blobs_seen = report.blobs_seen,
        orphans_removed = report.orphans_removed,
        orphans_too_young = report.orphans_too_young,
        unrecognized_files = report.unrecognized,
        rows_seen = report.rows_seen,
        rows_without_blob = report.rows_without_blob,
        temp_removed = report.temp_removed,
        thumbnails_removed = report.thumbnails_removed,
        incomplete = report.incomplete,
        ms = started.elapsed().as_millis() as u64,
        "blob sweep finished"
    );
    report
}

/// Facility and SOP Instance UID of a key made by [`crate::blobs::BlobKey::new`]:
/// `f<facility>/<study>/<sop>.<16 hex>.dcm`.
fn parse_key(key: &str) -> Option<(FacilityId, &str)> {
    let mut parts = key.split('/');
    let (facility, _study, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let facility = FacilityId(facility.strip_prefix('f')?.parse().ok()?);
    let (sop, prefix) = file.strip_suffix(".dcm")?.rsplit_once('.')?;
    let hex = prefix.len() == 16 && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && crate::domain::Uid::parse(sop).is_ok()).then_some((facility, sop))
}

/// Blob files under the store root (not the temp area), as (path, key).
fn blob_files(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if path != root.join(crate::blobs::INCOMING)
                    && path != root.join(crate::blobs::THUMBNAILS)
                {
                    stack.push(path);
                }
            } else if let Ok(relative) = path.strip_prefix(root) {
                let key = relative.to_string_lossy().into_owned();
                out.push((path, key));
            }
        }
    }
    out
}

fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default(),
    )
}

async fn orphans(index: &Index, blobs: &BlobStore, min_age: Duration, report: &mut SweepReport) {
    let root = blobs.root().to_path_buf();
    let files = match tokio::task::spawn_blocking(move || blob_files(&root)).await {
        Ok(files) => files,
        Err(e) => {
            warn!(error = %e, "blob sweep: cannot list the blob store");
            report.incomplete = true;
            return;
        }
    };
    for (path, key) in files {
        report.blobs_seen += 1;
        let Some((facility, sop)) = parse_key(&key) else {
            report.unrecognized += 1;
            continue;
        };
        match index.blob_key_of(facility, sop).await {
            Ok(Some(indexed)) if indexed == key => continue,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "blob sweep: index unavailable; stopping this sweep");
                report.incomplete = true;
                return;
            }
        }
        // Old enough that no store in progress can still be about to index it.
        if age(&path).is_none_or(|age| age < min_age) {
            report.orphans_too_young += 1;
            continue;
        }
        match blobs.delete(&crate::blobs::BlobKey::from_index(key)).await {
            Ok(()) => report.orphans_removed += 1,
            Err(e) => {
                warn!(error = %e, "blob sweep: cannot delete an orphan blob");
                report.incomplete = true;
            }
        }
    }
}

async fn missing(index: &Index, blobs: &BlobStore, report: &mut SweepReport) {
    let mut after: Option<(FacilityId, String)> = None;
    loop {
        let page = match index
            .blob_keys_after(after.as_ref().map(|(f, s)| (*f, s.as_str())), PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                warn!(error = %e, "blob sweep: index unavailable; stopping this sweep");
                report.incomplete = true;
                return;
            }
        };
        let Some(last) = page.last() else {
            return;
        };
        after = Some((last.facility, last.sop_instance_uid.clone()));
        for row in page {
            report.rows_seen += 1;
            let key = crate::blobs::BlobKey::from_index(row.blob_key.clone());
            if blobs.path_of(&key).is_file() {
                continue;
            }
            // The row may have moved on to a new blob (duplicate policy "replace")
            // since the page was read: judge what it holds now.
            match index.blob_key_of(row.facility, &row.sop_instance_uid).await {
                Ok(Some(now)) if now == row.blob_key => {}
                Ok(Some(now))
                    if blobs
                        .path_of(&crate::blobs::BlobKey::from_index(now.clone()))
                        .is_file() =>
                {
                    continue;
                }
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, "blob sweep: index unavailable; stopping this sweep");
                    report.incomplete = true;
                    return;
                }
            }
            report.rows_without_blob += 1;
            if report.rows_without_blob as usize <= NAMED_MISSING {
                error!(
                    facility_id = row.facility.0,
                    blob_key = %row.blob_key,
                    "index row without its blob: the stored instance is missing; restore it from a backup (the row is kept)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_made_by_the_store_parse_and_others_do_not() {
        assert_eq!(
            parse_key("f3/1.2.3/1.2.3.4.0123456789abcdef.dcm"),
            Some((FacilityId(3), "1.2.3.4"))
        );
        for other in [
            "README",
            "f3/1.2.3/x.dcm",
            "fx/1.2/1.2.3.0123456789abcdef.dcm",
            "f3/1.2/1.2.3.0123456789abcdef.dcm/extra",
            "f3/1.2/1.2.3.0123456789abcdeg.dcm",
        ] {
            assert_eq!(parse_key(other), None, "{other}");
        }
    }
}
