//! The sweep's pass over the thumbnail cache (`thumbnails/`): a cached thumbnail
//! whose instance has no index row any more (purged, removed) or now holds other
//! content (replaced: the content hash in the key differs) is deleted once older
//! than the sweep's safe age, so no rendering of a removed instance outlives it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::warn;

use super::{SweepReport, age};
use crate::blobs::{BlobStore, THUMBNAILS};
use crate::db::Index;
use crate::domain::FacilityId;

/// Facility, SOP Instance UID and content hash prefix of a thumbnail key made by
/// [`crate::blobs::BlobKey::thumbnail`]:
/// `thumbnails/f<facility>/<study>/<sop>.<16 hex>.<variant>`.
fn parse(key: &str) -> Option<(FacilityId, &str, &str)> {
    let mut parts = key.split('/');
    let (top, facility, _study, file) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if top != THUMBNAILS || parts.next().is_some() {
        return None;
    }
    let facility = FacilityId(facility.strip_prefix('f')?.parse().ok()?);
    // From the right: the variant (<risk 8 hex>.<size>[.q<quality>].<jpg|png>),
    // then the content hash, and the SOP Instance UID before it.
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let mut rest = file;
    let mut take = || {
        let (head, last) = rest.rsplit_once('.')?;
        rest = head;
        Some(last)
    };
    let mut part = take()?;
    if part != "jpg" && part != "png" {
        return None;
    }
    part = take()?;
    if part.starts_with('q') {
        part = take()?;
    }
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || !hex(take()?, 8) {
        return None;
    }
    let hash = take()?;
    if !hex(hash, 16) {
        return None;
    }
    let sop = rest;
    crate::domain::Uid::parse(sop)
        .is_ok()
        .then_some((facility, sop, hash))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(path),
                Ok(_) => out.push(path),
                Err(_) => {}
            }
        }
    }
    out
}

/// Deletes stale thumbnails (see the module doc).
pub(super) async fn sweep(
    index: &Index,
    blobs: &BlobStore,
    min_age: Duration,
    report: &mut SweepReport,
) {
    let root = blobs.root().to_path_buf();
    let dir = root.join(THUMBNAILS);
    let Ok(found) = tokio::task::spawn_blocking(move || files(&dir)).await else {
        report.incomplete = true;
        return;
    };
    for path in found {
        let Some(key) = path
            .strip_prefix(&root)
            .ok()
            .map(|k| k.to_string_lossy().into_owned())
        else {
            continue;
        };
        let Some((facility, sop, hash)) = parse(&key) else {
            continue;
        };
        let stale = match index.blob_key_of(facility, sop).await {
            Ok(Some(blob)) => !blob.contains(&format!("/{sop}.{hash}.")),
            Ok(None) => true,
            Err(e) => {
                warn!(error = %e, "blob sweep: index unavailable; stopping this sweep");
                report.incomplete = true;
                return;
            }
        };
        if stale && age(&path).is_some_and(|age| age >= min_age) {
            match std::fs::remove_file(&path) {
                Ok(()) => report.thumbnails_removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(error = %e, "blob sweep: cannot delete a stale thumbnail");
                    report.incomplete = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_keys_parse() {
        assert_eq!(
            parse("thumbnails/f3/1.2.3/1.2.3.4.0123456789abcdef.1a2b3c4d.128.jpg"),
            Some((FacilityId(3), "1.2.3.4", "0123456789abcdef"))
        );
        assert_eq!(
            parse("thumbnails/f3/1.2.3/1.2.3.4.0123456789012345.1a2b3c4d.64.q90.jpg"),
            Some((FacilityId(3), "1.2.3.4", "0123456789012345"))
        );
        for other in [
            "f3/1.2.3/1.2.3.4.0123456789abcdef.dcm",
            "thumbnails/f3/1.2.3/1.2.3.4.128.jpg",
            "thumbnails/fx/1.2.3/1.2.3.4.0123456789abcdef.128.jpg",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
