//! Storage quotas at C-STORE: instances beyond a facility's quota are refused with
//! 0xA700 and leave nothing behind (no blob, no row, usage unchanged), also when
//! several associations race for the last bytes; raising the quota lets them in;
//! `stored_bytes` stays exact across replacements and identical duplicates; crossing
//! the warning level is audited once.

mod common;

use std::time::Duration;

use common::data::{self, Spec};
use common::peers::{Via, ct_association, dataset_bytes, eventually, store_bytes};
use common::{Backend, Options, TestGateway};
use dimse::Status;
use gateway::audit::{AuditFilter, EventKind, search};
use gateway::config::DuplicatePolicy;
use gateway::db::Index;
use gateway::db::instances::{Indexed, InstanceRecord, SeriesFields, StudyFields};
use gateway::domain::Uid;

/// Instances 10..=98 all have the same size (UIDs and accession of equal length).
fn spec(n: u32) -> Spec {
    assert!((10..=98).contains(&n));
    Spec::new(data::CT, "CT", n)
}

async fn stored_bytes(index: &Index, gw: &TestGateway) -> i64 {
    index
        .quota(gw.setup.facility.id)
        .await
        .unwrap()
        .unwrap()
        .stored_bytes
}

async fn sum_of_rows(index: &Index, gw: &TestGateway) -> i64 {
    index
        .instances(gw.setup.facility.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.size_bytes)
        .sum()
}

async fn store_one(gw: &TestGateway, spec: &Spec) -> Status {
    let mut scu = ct_association(gw, Via::Tls).await;
    let rsp = store_bytes(&mut scu, &spec.sop_uid, &dataset_bytes(spec)).await;
    scu.release().await.unwrap();
    rsp.status
}

async fn refused_beyond_quota_then_admitted(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let index = gw.index().await;
    let facility = gw.setup.facility.id;
    let size = dataset_bytes(&spec(10)).len() as i64;
    let quota = 2 * size + size / 2;
    index.set_quota(facility, Some(quota)).await.unwrap();
    index.set_quota_warn_percent(facility, 50).await.unwrap();

    assert_eq!(store_one(&gw, &spec(10)).await, Status::Success);
    assert_eq!(store_one(&gw, &spec(11)).await, Status::Success);
    let blobs_before = gw.setup.blob_files();
    assert_eq!(blobs_before.len(), 2);
    assert_eq!(store_one(&gw, &spec(12)).await, Status::OutOfResources);
    assert_eq!(
        gw.setup.blob_files(),
        blobs_before,
        "no blob for the refused one"
    );
    assert_eq!(index.instances(facility).await.unwrap().len(), 2, "no row");
    assert_eq!(stored_bytes(&index, &gw).await, 2 * size);
    let no_temp = eventually(Duration::from_secs(5), || gw.setup.temp_files().is_empty()).await;
    assert!(no_temp, "temp files left: {:?}", gw.setup.temp_files());

    index.set_quota(facility, Some(10 * size)).await.unwrap();
    assert_eq!(store_one(&gw, &spec(12)).await, Status::Success);
    assert_eq!(stored_bytes(&index, &gw).await, 3 * size);
    assert_eq!(sum_of_rows(&index, &gw).await, 3 * size);
    index.set_quota(facility, None).await.unwrap();
    assert_eq!(store_one(&gw, &spec(13)).await, Status::Success);
    assert_eq!(stored_bytes(&index, &gw).await, 4 * size);

    let setup = gw.stop().await; // flushes the audit trail; keeps the database
    let alerts = search(
        &index,
        &AuditFilter {
            kind: Some(EventKind::SecurityAlert),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    // 40% after the first, 80% after the second (crossing 50%), then 30% of the
    // raised quota: one warning.
    let percent = 2 * size * 100 / quota;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        alerts[0].event.detail,
        format!("storage quota {percent}% used")
    );
    assert_eq!(alerts[0].event.facility_id, Some(facility));
    let stores = search(
        &index,
        &AuditFilter {
            kind: Some(EventKind::InstancesTransferred),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    assert!(
        stores
            .iter()
            .any(|e| e.event.detail.contains("stored 0, refused 1")),
        "the refused association is audited: {stores:#?}"
    );
    index.close().await;
    drop(setup);
}

both_backends!(refused_beyond_quota_then_admitted);

async fn concurrent_associations_cannot_overrun_the_quota(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let index = gw.index().await;
    let facility = gw.setup.facility.id;
    let size = dataset_bytes(&spec(10)).len() as i64;
    index
        .set_quota(facility, Some(5 * size + size / 2))
        .await
        .unwrap();
    let gw = std::sync::Arc::new(gw);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..4u32 {
        let gw = gw.clone();
        tasks.spawn(async move {
            let mut scu = ct_association(&gw, Via::Tls).await;
            let mut statuses = Vec::new();
            for i in 0..3u32 {
                let s = spec(20 + t * 3 + i);
                statuses.push(
                    store_bytes(&mut scu, &s.sop_uid, &dataset_bytes(&s))
                        .await
                        .status,
                );
            }
            scu.release().await.unwrap();
            statuses
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = tasks.join_next().await {
        statuses.extend(done.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == Status::Success).count();
    let full = statuses
        .iter()
        .filter(|s| **s == Status::OutOfResources)
        .count();
    assert_eq!((ok, full), (5, 7), "{statuses:?}");
    assert_eq!(gw.setup.blob_files().len(), 5);
    assert_eq!(index.instances(facility).await.unwrap().len(), 5);
    assert_eq!(stored_bytes(&index, &gw).await, 5 * size);
    index.close().await;
    let Ok(gw) = std::sync::Arc::try_unwrap(gw) else {
        panic!("gateway still shared");
    };
    gw.stop().await;
}

both_backends!(concurrent_associations_cannot_overrun_the_quota);

async fn usage_is_exact_after_duplicates_and_replacements(backend: Backend) {
    let options = Options {
        duplicate_policy: DuplicatePolicy::Replace,
        ..Options::default()
    };
    let gw = TestGateway::spawn_with(backend, options).await;
    let index = gw.index().await;
    let facility = gw.setup.facility.id;
    let first = spec(10);
    let first_size = dataset_bytes(&first).len() as i64;
    assert_eq!(store_one(&gw, &first).await, Status::Success);
    assert_eq!(stored_bytes(&index, &gw).await, first_size);

    // Identical bytes again: success, nothing added.
    assert_eq!(store_one(&gw, &first).await, Status::Success);
    assert_eq!(stored_bytes(&index, &gw).await, first_size);

    // Same instance, smaller image: replaced, usage follows the new size.
    let smaller = Spec {
        size: 32,
        ..spec(10)
    };
    let smaller_size = dataset_bytes(&smaller).len() as i64;
    assert!(smaller_size < first_size);
    assert_eq!(store_one(&gw, &smaller).await, Status::Success);
    assert_eq!(stored_bytes(&index, &gw).await, smaller_size);
    assert_eq!(sum_of_rows(&index, &gw).await, smaller_size);

    // A larger replacement that does not fit the quota: refused, nothing changed.
    index
        .set_quota(facility, Some(smaller_size + 100))
        .await
        .unwrap();
    let blobs = gw.setup.blob_files();
    assert_eq!(store_one(&gw, &first).await, Status::OutOfResources);
    assert_eq!(stored_bytes(&index, &gw).await, smaller_size);
    assert_eq!(
        gw.setup.blob_files(),
        blobs,
        "the refused copy's blob is gone"
    );
    let rows = index.instances(facility).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].size_bytes, smaller_size, "the stored copy stays");

    // A second instance, then the quota lifted: the larger copy replaces.
    index.set_quota(facility, None).await.unwrap();
    assert_eq!(store_one(&gw, &spec(11)).await, Status::Success);
    assert_eq!(store_one(&gw, &first).await, Status::Success);
    assert_eq!(stored_bytes(&index, &gw).await, 2 * first_size);
    assert_eq!(sum_of_rows(&index, &gw).await, 2 * first_size);
    index.close().await;
    gw.stop().await;
}

both_backends!(usage_is_exact_after_duplicates_and_replacements);

/// A minimal index record of `size` bytes for instance `n`.
fn record(facility: gateway::domain::FacilityId, n: u32, size: i64) -> InstanceRecord {
    let uid = |s: String| Uid::parse(&s).unwrap();
    InstanceRecord {
        facility,
        sop_instance_uid: uid(format!("1.2.826.0.1.3680043.10.3.{n}")),
        sop_class_uid: uid(data::CT.to_string()),
        study_uid: uid("1.2.826.0.1.3680043.10.1.1".into()),
        series_uid: uid("1.2.826.0.1.3680043.10.2.1".into()),
        transfer_syntax: uid(data::EXPLICIT_LE.to_string()),
        instance_number: None,
        number_of_frames: None,
        size_bytes: size,
        sha256: format!("{n:064}"),
        blob_key: format!("test/{n}"),
        calling_ae: "TEST".into(),
        received_at: 0,
        study: StudyFields::default(),
        series: SeriesFields::default(),
    }
}

/// The index transaction itself enforces the quota (whatever a caller checked
/// before): in one batch, the instance that no longer fits is refused and leaves no
/// row, and usage counts only what was indexed.
async fn the_index_transaction_enforces_the_quota(backend: Backend) {
    let setup = common::Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let facility = setup.facility.id;
    index.set_quota(facility, Some(1000)).await.unwrap();
    let (a, b, c) = (
        record(facility, 1, 600),
        record(facility, 2, 600),
        record(facility, 3, 400),
    );
    let results = index.insert_batch(&[&a, &b, &c]).await.unwrap();
    assert!(matches!(results[0], Indexed::New(_)), "{results:?}");
    assert_eq!(results[1], Indexed::OverQuota);
    assert!(matches!(results[2], Indexed::New(_)), "{results:?}");
    assert_eq!(
        index.quota(facility).await.unwrap().unwrap().stored_bytes,
        1000
    );
    let rows = index.instances(facility).await.unwrap();
    let mut uids: Vec<_> = rows.iter().map(|r| r.sop_instance_uid.clone()).collect();
    uids.sort();
    assert_eq!(
        uids,
        [
            a.sop_instance_uid.to_string(),
            c.sop_instance_uid.to_string()
        ]
    );
    // A duplicate UID adds nothing; a replacement adjusts by the difference.
    assert_eq!(index.insert_instance(&a).await.unwrap(), Indexed::Exists);
    let smaller = InstanceRecord {
        size_bytes: 100,
        ..a.clone()
    };
    assert!(matches!(
        index.replace_instance(&smaller).await.unwrap(),
        Indexed::New(_)
    ));
    assert_eq!(
        index.quota(facility).await.unwrap().unwrap().stored_bytes,
        500
    );
    let larger = InstanceRecord {
        size_bytes: 700,
        ..a.clone()
    };
    assert_eq!(
        index.replace_instance(&larger).await.unwrap(),
        Indexed::OverQuota
    );
    assert_eq!(
        index.quota(facility).await.unwrap().unwrap().stored_bytes,
        500
    );
    index.close().await;
}

both_backends!(the_index_transaction_enforces_the_quota);
