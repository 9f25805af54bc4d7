//! Thumbnails cached as blobs (hits without rendering, keys the sweep leaves alone,
//! a new key under other risk classes), the representative instance of a series,
//! and the background queue (coalescing, dropping when full).

use std::time::Duration;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use sha2::{Digest, Sha256};

use super::fixtures::{EXPLICIT_LE, Image, Values};
use crate::blobs::{BlobKey, BlobStore};
use crate::db::instances::InstanceRecord;
use crate::db::{Facility, Index};
use crate::domain::{FacilityName, Uid};
use crate::metrics::thumbnails::ThumbnailMetrics;
use crate::render::queue::ThumbnailQueue;
use crate::render::{
    Format, RenderError, RiskClasses, RiskPolicy, ThumbnailError, ThumbnailSpec, Thumbnails,
};

const STUDY: &str = "1.2.826.0.1.3680043.9.7.2";

struct Rig {
    _dir: tempfile::TempDir,
    index: Index,
    blobs: BlobStore,
    facility: Facility,
    metrics: ThumbnailMetrics,
    thumbs: Thumbnails,
}

fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

impl Rig {
    async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
        let index = Index::open(&url).await.unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs")).unwrap();
        let name = FacilityName::parse("clinic").unwrap();
        let facility = index.create_facility(&name, true).await.unwrap();
        let metrics = ThumbnailMetrics::default();
        let thumbs = Thumbnails::new(
            index.clone(),
            blobs.clone(),
            RiskPolicy::default(),
            metrics.clone(),
        );
        Rig {
            _dir: dir,
            index,
            blobs,
            facility,
            metrics,
            thumbs,
        }
    }

    /// Stores a flat 64 x 64 image of `level` as instance `sop` of `series`.
    async fn store(
        &self,
        sop: &str,
        series: &str,
        number: Option<i64>,
        level: u16,
        modality: &str,
    ) {
        let image = Image {
            values: Values::U16(vec![level; 64 * 64]),
            ..Image::gradient(64, 64)
        }
        .with(tags::SOP_INSTANCE_UID, VR::UI, sop.to_string())
        .with(tags::SERIES_INSTANCE_UID, VR::UI, series.to_string())
        .with(tags::MODALITY, VR::CS, modality.to_string())
        .with(tags::WINDOW_CENTER, VR::DS, "1000")
        .with(tags::WINDOW_WIDTH, VR::DS, "4000");
        let bytes = image.part10(EXPLICIT_LE);
        self.store_bytes(sop, series, number, super::fixtures::CT, modality, bytes)
            .await;
    }

    async fn store_bytes(
        &self,
        sop: &str,
        series: &str,
        number: Option<i64>,
        class: &str,
        modality: &str,
        bytes: Vec<u8>,
    ) {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let key = BlobKey::new(self.facility.id, &uid(STUDY), &uid(sop), &sha256);
        self.blobs.put(&key, vec![bytes.clone()]).await.unwrap();
        let record = InstanceRecord {
            facility: self.facility.id,
            sop_instance_uid: uid(sop),
            sop_class_uid: uid(class),
            study_uid: uid(STUDY),
            series_uid: uid(series),
            transfer_syntax: uid(EXPLICIT_LE),
            instance_number: number,
            number_of_frames: None,
            size_bytes: bytes.len() as i64,
            sha256,
            blob_key: key.as_str().to_string(),
            calling_ae: "CT".into(),
            received_at: 0,
            study: Default::default(),
            series: crate::db::instances::SeriesFields {
                modality: Some(modality.to_string()),
                ..Default::default()
            },
        };
        self.index.insert_instance(&record).await.unwrap();
    }
}

fn spec() -> ThumbnailSpec {
    ThumbnailSpec {
        size: 32,
        format: Format::Png,
    }
}

#[tokio::test]
async fn a_cache_hit_returns_the_same_bytes_without_rendering_and_the_sweep_keeps_it() {
    let rig = Rig::new().await;
    rig.store("1.2.3.10", "1.2.3.1", Some(1), 1000, "CT").await;
    let first = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.10"), spec())
        .await
        .unwrap();
    assert!(!first.cached);
    assert_eq!(first.mime, "image/png");
    let img = image::load_from_memory(&first.bytes).unwrap();
    assert_eq!((img.width(), img.height()), (32, 32));
    let again = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.10"), spec())
        .await
        .unwrap();
    assert!(again.cached);
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(
        (rig.metrics.made.get(), rig.metrics.cache_hits.get()),
        (1, 1)
    );
    // Cached under thumbnails/, where the blob sweep neither deletes nor counts.
    let dir = rig.blobs.root().join(crate::blobs::THUMBNAILS);
    assert!(dir.is_dir());
    let report = crate::ingest::sweep::sweep(&rig.index, &rig.blobs, Duration::ZERO).await;
    assert_eq!(
        (
            report.orphans_removed,
            report.unrecognized,
            report.blobs_seen
        ),
        (0, 0, 1)
    );
    let again = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.10"), spec())
        .await
        .unwrap();
    assert!(again.cached, "still cached after the sweep");
    // Another size is another entry; other risk classes never share entries.
    let big = ThumbnailSpec { size: 48, ..spec() };
    assert!(
        !rig.thumbs
            .instance(&rig.facility, &uid("1.2.3.10"), big)
            .await
            .unwrap()
            .cached
    );
    let other = Thumbnails::new(
        rig.index.clone(),
        rig.blobs.clone(),
        RiskPolicy::new(RiskClasses::none(), Default::default()),
        ThumbnailMetrics::default(),
    );
    assert!(
        !other
            .instance(&rig.facility, &uid("1.2.3.10"), spec())
            .await
            .unwrap()
            .cached
    );
    // Unknown instances are not found.
    let err = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.99"), spec())
        .await
        .unwrap_err();
    assert!(matches!(err, ThumbnailError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn a_series_is_shown_by_its_middle_instance_by_instance_number() {
    let rig = Rig::new().await;
    for (n, level) in [(5, 3000), (1, 0), (3, 1500), (2, 500), (4, 2500)] {
        let sop = format!("1.2.3.{}", 20 + n);
        rig.store(&sop, "1.2.3.2", Some(n), level, "CT").await;
    }
    let series = uid("1.2.3.2");
    let middle = rig
        .thumbs
        .representative(&rig.facility, &series)
        .await
        .unwrap();
    assert_eq!(middle, Some(uid("1.2.3.23")));
    let thumb = rig
        .thumbs
        .series(&rig.facility, &series, spec())
        .await
        .unwrap();
    let direct = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.23"), spec())
        .await
        .unwrap();
    assert!(direct.cached, "the series thumbnail is the instance's");
    assert_eq!(thumb.bytes, direct.bytes);
    let study = rig
        .thumbs
        .study(&rig.facility, &uid(STUDY), spec())
        .await
        .unwrap();
    assert_eq!(study.bytes, direct.bytes);
    let missing = rig
        .thumbs
        .series(&rig.facility, &uid("1.2.3.77"), spec())
        .await;
    assert!(matches!(missing, Err(ThumbnailError::NotFound(_))));
}

#[tokio::test]
async fn burned_in_risk_instances_get_no_thumbnail() {
    let rig = Rig::new().await;
    rig.store("1.2.3.30", "1.2.3.3", Some(1), 1000, "US").await;
    let err = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.30"), spec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ThumbnailError::Render(RenderError::Refused(_))),
        "{err}"
    );
    assert_eq!((rig.metrics.refused.get(), rig.metrics.made.get()), (1, 0));
    assert!(!rig.blobs.root().join(crate::blobs::THUMBNAILS).exists());
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_queue_makes_one_thumbnail_per_series_burst_and_drops_when_full() {
    let rig = Rig::new().await;
    rig.store("1.2.3.40", "1.2.3.4", Some(1), 1000, "CT").await;
    rig.store("1.2.3.50", "1.2.3.5", Some(1), 2000, "CT").await;
    let queue = ThumbnailQueue::spawn(
        rig.thumbs.clone(),
        spec(),
        1,
        Duration::from_millis(300),
        rig.metrics.clone(),
    );
    let (a, b, c) = (uid("1.2.3.4"), uid("1.2.3.5"), uid("1.2.3.6"));
    // A burst of series A: the worker takes it and waits out the delay.
    for _ in 0..5 {
        queue.offer(&rig.facility, &a);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.offer(&rig.facility, &b); // waits in the one slot
    queue.offer(&rig.facility, &b); // coalesced
    queue.offer(&rig.facility, &c); // no room: dropped
    assert_eq!(rig.metrics.dropped.get(), 1);
    wait_for("two thumbnails", || rig.metrics.made.get() == 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rig.metrics.made.get(), 2, "one per series");
    assert_eq!(rig.metrics.failed.get(), 0);
    // The worker's thumbnail is the cache entry an on-demand request gets.
    let cached = rig.thumbs.series(&rig.facility, &a, spec()).await.unwrap();
    assert!(cached.cached);
}

#[tokio::test]
async fn the_sweep_removes_thumbnails_of_removed_or_replaced_instances_only() {
    let rig = Rig::new().await;
    rig.store("1.2.3.60", "1.2.3.6", Some(1), 1000, "CT").await;
    let kept = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.60"), spec())
        .await
        .unwrap();
    let study = uid(STUDY);
    let stale = [
        // Same instance, other content (replaced since).
        BlobKey::thumbnail(
            rig.facility.id,
            &study,
            &uid("1.2.3.60"),
            &"ab".repeat(32),
            "1a2b3c4d.32.png",
        ),
        // An instance without a row (purged).
        BlobKey::thumbnail(
            rig.facility.id,
            &study,
            &uid("1.2.3.61"),
            &"cd".repeat(32),
            "1a2b3c4d.32.png",
        ),
    ];
    for key in &stale {
        rig.blobs.put_cache_blocking(key, &kept.bytes).unwrap();
    }
    let report = crate::ingest::sweep::sweep(&rig.index, &rig.blobs, Duration::ZERO).await;
    assert_eq!(report.thumbnails_removed, 2);
    assert!(stale.iter().all(|k| !rig.blobs.path_of(k).exists()));
    let again = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.60"), spec())
        .await
        .unwrap();
    assert!(again.cached, "the current thumbnail stays");
    // Younger than the safe age: left alone.
    rig.blobs
        .put_cache_blocking(&stale[1], &kept.bytes)
        .unwrap();
    let report =
        crate::ingest::sweep::sweep(&rig.index, &rig.blobs, Duration::from_secs(600)).await;
    assert_eq!(report.thumbnails_removed, 0);
}

/// A Key Object Selection document naming `named` in `series`.
fn key_objects(sop: &str, series: &str, named: &[&str]) -> Vec<u8> {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue};
    use dicom_object::InMemDicomObject;
    let item = |elements: Vec<DataElement<InMemDicomObject>>| {
        InMemDicomObject::from_element_iter(elements)
    };
    let seq = |tag, items: Vec<InMemDicomObject>| {
        DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
    };
    let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let sops = named
        .iter()
        .map(|uid| {
            item(vec![
                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, super::fixtures::CT),
                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid),
            ])
        })
        .collect();
    let series_item = item(vec![
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        seq(tags::REFERENCED_SOP_SEQUENCE, sops),
    ]);
    let study_item = item(vec![
        text(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
        seq(tags::REFERENCED_SERIES_SEQUENCE, vec![series_item]),
    ]);
    let object = item(vec![
        text(
            tags::SOP_CLASS_UID,
            VR::UI,
            crate::db::render::KEY_OBJECT_SELECTION,
        ),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop),
        text(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.88"),
        text(tags::MODALITY, VR::CS, "KO"),
        seq(
            tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
            vec![study_item],
        ),
    ]);
    super::fixtures::part10(object, EXPLICIT_LE)
}

#[tokio::test]
async fn a_key_object_selection_names_the_representative_instance() {
    let rig = Rig::new().await;
    for n in 1..=5 {
        rig.store(
            &format!("1.2.3.7{n}"),
            "1.2.3.7",
            Some(n),
            500 * n as u16,
            "CT",
        )
        .await;
    }
    let series = uid("1.2.3.7");
    let middle = rig
        .thumbs
        .representative(&rig.facility, &series)
        .await
        .unwrap();
    assert_eq!(middle, Some(uid("1.2.3.73")));
    // A document naming an instance that is not stored, then #5.
    let kos = key_objects("1.2.3.89", "1.2.3.7", &["1.2.3.999", "1.2.3.75"]);
    let class = crate::db::render::KEY_OBJECT_SELECTION;
    rig.store_bytes("1.2.3.89", "1.2.3.88", Some(1), class, "KO", kos)
        .await;
    let named = rig
        .thumbs
        .representative(&rig.facility, &series)
        .await
        .unwrap();
    assert_eq!(named, Some(uid("1.2.3.75")));
    let thumb = rig
        .thumbs
        .series(&rig.facility, &series, spec())
        .await
        .unwrap();
    let direct = rig
        .thumbs
        .instance(&rig.facility, &uid("1.2.3.75"), spec())
        .await
        .unwrap();
    assert_eq!((thumb.bytes, direct.cached), (direct.bytes, true));
}
