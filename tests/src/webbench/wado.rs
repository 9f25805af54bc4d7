//! WADO-RS instance retrieval: every instance written by [`crate::bench::generate`]
//! fetched once, as `multipart/related; type="application/dicom"` in its stored
//! transfer syntax, by N concurrent clients taking the next instance from a shared
//! counter; wall time from the first request to the last byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::http::WebPeer;

/// What WADO-RS asks for: the instance as stored (no transcoding at either peer).
pub const ACCEPT: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

/// The retrieve path of instance `n` of [`crate::bench::generate`] (its UIDs follow
/// from the number: 10 instances per series, 100 per study).
pub fn instance_path(n: usize) -> String {
    format!(
        "/studies/2.25.7{}/series/2.25.8{}/instances/2.25.9{n}",
        n / 100,
        n / 10
    )
}

/// One pass over `count` instances.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Instances retrieved.
    pub instances: usize,
    /// Bytes received (multipart bodies).
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Pass {
    /// Instances per second.
    pub fn per_sec(&self) -> f64 {
        self.instances as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Retrieves instances `0..count` from `peer` with `clients` concurrent requests.
/// Fails when an answer is not 2xx or smaller than `min_bytes` (a part that is
/// not the instance).
pub async fn pass(peer: &WebPeer, count: usize, clients: usize, min_bytes: usize) -> Result<Pass> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (peer, next) = (peer.clone(), next.clone());
            tokio::spawn(async move {
                let mut bytes = 0u64;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<u64, anyhow::Error>(bytes);
                    }
                    let body = peer.get(&instance_path(n), ACCEPT).await?;
                    let len = body.as_ref().len();
                    if len < min_bytes {
                        bail!("{} sent {len} bytes for instance {n}", peer.name);
                    }
                    bytes += len as u64;
                }
            })
        })
        .collect();
    let mut bytes = 0;
    for worker in workers {
        bytes += worker.await??;
    }
    Ok(Pass {
        instances: count,
        bytes,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use dicom_dictionary_std::tags;

    use super::*;

    #[test]
    fn instance_paths_name_the_generated_instances() {
        let dir = tempfile::tempdir().unwrap();
        crate::bench::generate(dir.path(), 12).unwrap();
        let file = dicom_object::open_file(dir.path().join("ct000011.dcm")).unwrap();
        let uid = |tag| {
            let v = file.element(tag).unwrap().to_str().unwrap();
            v.trim_end_matches('\0').to_string()
        };
        let expected = format!(
            "/studies/{}/series/{}/instances/{}",
            uid(tags::STUDY_INSTANCE_UID),
            uid(tags::SERIES_INSTANCE_UID),
            uid(tags::SOP_INSTANCE_UID)
        );
        assert_eq!(instance_path(11), expected);
    }
}
