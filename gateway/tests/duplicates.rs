//! The same SOP Instance UID arriving again (DESIGN.md "Ingest" step 6): identical
//! bytes are acknowledged without rewriting anything; different bytes follow the
//! configured policy (reject, keep first, replace); concurrent copies of a new
//! instance leave one row and one blob. Each policy is tried with a small instance
//! (held in memory until it is written whole) and with one over the gateway's memory
//! limit (spilled to a temp file while it arrives).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::peers::{self, Via};
use common::{Backend, Options, TestGateway, data, dataset_sha256};
use dimse::Status;
use gateway::config::DuplicatePolicy;

/// Rows and columns of a CT slice over the memory limit (2 MiB of pixels).
const LARGE: u16 = 1024;

/// A gateway with `policy`, instance A and A' (same UIDs, other pixels) on disk.
struct Case {
    gw: TestGateway,
    _dir: tempfile::TempDir,
    a: PathBuf,
    a_prime: PathBuf,
}

impl Case {
    async fn new(backend: Backend, policy: DuplicatePolicy, size: u16) -> Case {
        let options = Options {
            duplicate_policy: policy,
            ..Options::default()
        };
        let gw = TestGateway::spawn_with(backend, options).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = data::Spec {
            size,
            ..peers::deidentified_ct(1)
        };
        let variant = data::Spec {
            seed: spec.seed.wrapping_add(1),
            ..spec.clone()
        };
        let a = data::write(&dir.path().join("a.dcm"), &spec);
        let a_prime = data::write(&dir.path().join("a-prime.dcm"), &variant);
        assert_ne!(dataset_sha256(&a), dataset_sha256(&a_prime));
        let spilled = std::fs::metadata(&a).unwrap().len() > gateway::ingest::MEMORY_LIMIT as u64;
        assert_eq!(
            spilled,
            size >= LARGE,
            "{size}: {} bytes",
            std::fs::metadata(&a).unwrap().len()
        );
        Case {
            gw,
            _dir: dir,
            a,
            a_prime,
        }
    }

    /// The one index row: its SHA-256.
    async fn only_row_sha256(&self) -> String {
        let index = self.gw.index().await;
        let rows = index.instances(self.gw.setup.facility.id).await.unwrap();
        assert_eq!(rows.len(), 1, "exactly one index row: {rows:?}");
        assert_eq!(index.count_instances().await.unwrap(), 1);
        rows[0].sha256.clone()
    }

    /// The one blob file.
    fn only_blob(&self) -> PathBuf {
        let blobs = self.gw.setup.blob_files();
        assert_eq!(blobs.len(), 1, "exactly one blob file: {blobs:?}");
        blobs[0].clone()
    }

    /// Study and series counters: one study with one series and one instance.
    async fn assert_counters_one(&self) {
        let index = self.gw.index().await;
        let studies = index.studies(self.gw.setup.facility.id).await.unwrap();
        assert_eq!(studies.len(), 1, "{studies:?}");
        assert_eq!(studies[0].num_series, 1, "{studies:?}");
        assert_eq!(studies[0].num_instances, 1, "{studies:?}");
        assert_eq!(studies[0].modalities, "CT");
    }

    /// Stores A, then A again byte for byte (success, nothing rewritten), then A';
    /// returns A''s status.
    async fn store_a_twice_then_variant(&self) -> Status {
        let mut scu = peers::ct_association(&self.gw, Via::Tls).await;
        let first = scu.store_file(&self.a).await.unwrap();
        assert_eq!(first.status, Status::Success, "{first:?}");
        assert_eq!(self.only_row_sha256().await, dataset_sha256(&self.a));
        let blob = self.only_blob();
        assert_eq!(dataset_sha256(&blob), dataset_sha256(&self.a));
        let (inode, mtime) = identity(&blob);
        tokio::time::sleep(Duration::from_millis(20)).await;

        let again = scu.store_file(&self.a).await.unwrap();
        assert_eq!(again.status, Status::Success, "identical resend: {again:?}");
        assert_eq!(self.only_row_sha256().await, dataset_sha256(&self.a));
        assert_eq!(self.only_blob(), blob, "identical resend moved the blob");
        assert_eq!(
            identity(&blob),
            (inode, mtime),
            "identical resend rewrote it"
        );
        self.assert_counters_one().await;

        let variant = scu.store_file(&self.a_prime).await.unwrap();
        scu.release().await.unwrap();
        let clean = peers::eventually(Duration::from_secs(2), || {
            self.gw.setup.temp_files().is_empty()
        })
        .await;
        assert!(clean, "temp files: {:?}", self.gw.setup.temp_files());
        variant.status
    }

    /// Index and blob still hold A, once.
    async fn assert_still_a(&self) {
        assert_eq!(self.only_row_sha256().await, dataset_sha256(&self.a));
        assert_eq!(dataset_sha256(&self.only_blob()), dataset_sha256(&self.a));
        self.assert_counters_one().await;
    }
}

fn identity(path: &Path) -> (u64, SystemTime) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.ino(), meta.modified().unwrap())
}

async fn duplicate_reject(backend: Backend) {
    for size in [64, LARGE] {
        let case = Case::new(backend, DuplicatePolicy::Reject, size).await;
        let status = case.store_a_twice_then_variant().await;
        assert_eq!(status, Status::DuplicateSopInstance, "size {size}");
        case.assert_still_a().await;
        case.gw.stop().await;
    }
}

async fn duplicate_keep_first(backend: Backend) {
    for size in [64, LARGE] {
        let case = Case::new(backend, DuplicatePolicy::KeepFirst, size).await;
        let status = case.store_a_twice_then_variant().await;
        // A warning: stored-as-far-as-the-sender-knows, but not these bytes.
        assert_eq!(status, Status::ElementsDiscarded, "size {size}");
        case.assert_still_a().await;
        case.gw.stop().await;
    }
}

async fn duplicate_replace(backend: Backend) {
    for size in [64, LARGE] {
        let case = Case::new(backend, DuplicatePolicy::Replace, size).await;
        let status = case.store_a_twice_then_variant().await;
        assert_eq!(status, Status::Success, "size {size}");
        let a_prime = dataset_sha256(&case.a_prime);
        assert_eq!(case.only_row_sha256().await, a_prime);
        assert_eq!(dataset_sha256(&case.only_blob()), a_prime);
        case.assert_counters_one().await;
        case.gw.stop().await;
    }
}

/// Two associations store the same new instance at the same moment, several times
/// over: both hear success, and each instance has one row, one blob and is counted once.
async fn concurrent_same_instance(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    const ROUNDS: u32 = 8;
    for round in 0..ROUNDS {
        // Odd rounds over the memory limit (spilled), even ones held in memory.
        let spec = data::Spec {
            size: if round % 2 == 1 { LARGE } else { 256 },
            ..peers::deidentified_ct(10 + round)
        };
        let file = data::write(&dir.path().join(format!("{round}.dcm")), &spec);
        let mut one = peers::ct_association(&gw, Via::Tls).await;
        let mut two = peers::ct_association(&gw, Via::Tls).await;
        let (first, second) = tokio::join!(one.store_file(&file), two.store_file(&file));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.status, Status::Success, "round {round}: {first:?}");
        assert_eq!(second.status, Status::Success, "round {round}: {second:?}");
        one.release().await.unwrap();
        two.release().await.unwrap();

        let index = gw.index().await;
        let rows = index.instances(gw.setup.facility.id).await.unwrap();
        let ours: Vec<_> = rows
            .iter()
            .filter(|r| r.sop_instance_uid == spec.sop_uid)
            .collect();
        assert_eq!(ours.len(), 1, "round {round}: {rows:?}");
        assert_eq!(ours[0].sha256, dataset_sha256(&file));
        assert_eq!(rows.len(), round as usize + 1);
        let blobs = gw.setup.blob_files();
        assert_eq!(blobs.len(), round as usize + 1, "round {round}: {blobs:?}");
        let stored = gw.setup.blob_root().join(&ours[0].blob_key);
        assert_eq!(dataset_sha256(&stored), dataset_sha256(&file));
    }
    let clean =
        peers::eventually(Duration::from_secs(2), || gw.setup.temp_files().is_empty()).await;
    assert!(clean, "temp files: {:?}", gw.setup.temp_files());
    let studies = gw
        .index()
        .await
        .studies(gw.setup.facility.id)
        .await
        .unwrap();
    let counted: i64 = studies.iter().map(|s| s.num_instances).sum();
    let series: i64 = studies.iter().map(|s| s.num_series).sum();
    assert_eq!(counted, i64::from(ROUNDS), "{studies:?}");
    assert_eq!(
        series,
        i64::from(ROUNDS),
        "one series per instance: {studies:?}"
    );
    gw.stop().await;
}

both_backends!(duplicate_reject);
both_backends!(duplicate_keep_first);
both_backends!(duplicate_replace);
both_backends!(concurrent_same_instance);
