//! Background thumbnails after ingest: a series stored by DCMTK `storescu` gets one
//! cached thumbnail (its middle instance), made after the C-STOREs were answered.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::data::{self, Spec};
use common::{Backend, TestGateway, store_plain};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

async fn a_stored_series_gets_one_background_thumbnail(backend: Backend) {
    common::require_dcmtk();
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..4)
        .map(|n| {
            let mut spec = Spec::new(data::CT, "CT", n);
            spec.study_uid = "1.2.826.0.1.3680043.10.1.77".into();
            spec.series_uid = "1.2.826.0.1.3680043.10.2.77".into();
            data::write(&dir.path().join(format!("ct{n}.dcm")), &spec)
        })
        .collect();
    store_plain(&gw, &files).await;
    let thumbnails = gw.setup.blob_root().join("thumbnails");
    let deadline = Instant::now() + Duration::from_secs(30);
    while files_under(&thumbnails).is_empty() {
        assert!(Instant::now() < deadline, "no background thumbnail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The burst made one thumbnail, not one per instance.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let made = files_under(&thumbnails);
    assert_eq!(made.len(), 1, "{made:?}");
    let image = image::load_from_memory(&std::fs::read(&made[0]).unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (64, 64), "never upscaled");
    assert!(
        made[0]
            .to_string_lossy()
            .contains("1.2.826.0.1.3680043.10.3."),
        "keyed by the representative instance: {made:?}"
    );
    assert_eq!(
        gw.setup.blob_files().len(),
        4,
        "thumbnails are not instances"
    );
    gw.stop().await;
}

both_backends!(a_stored_series_gets_one_background_thumbnail);
