//! The life of stored studies, travelling in time with a manual clock: under a
//! 30-day hide-purge policy (notice 7 days, grace 14) two studies get their notice at
//! day 23; one answered "keep" (over HTTPS, as a clinician) stays; the other is hidden
//! at day 30 without an answer and is then absent from QIDO-RS and WADO-RS; the
//! facility admin restores it, it expires again and is purged after the grace period:
//! blobs gone, usage down, tombstone, feed and audit events; a re-send after the purge
//! is refused by the tombstone with a reason.

mod common;
mod http_support;
mod web_support;

use std::sync::Arc;

use common::{Backend, Options};
use gateway::db::lifecycle::{
    CountedFrom, LifecycleState, RetentionAction, RetentionPolicy, SetBy,
};
use gateway::lifecycle::{Answer, Lifecycle, ManualClock, RunReport};
use http_support::{DOC_A, PASSWORD};
use reqwest::StatusCode;
use web_support::{fixtures, json, start};

async fn kinds(
    index: &gateway::db::Index,
    facility: gateway::domain::FacilityId,
) -> Vec<(String, String)> {
    index
        .changes(facility, 0, 1000)
        .await
        .unwrap()
        .changes
        .into_iter()
        .map(|c| (c.kind, c.study_uid))
        .collect()
}

async fn lifecycle_with_time_travel(backend: Backend) {
    let gw = start(backend, Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures(dir.path());
    let paths: Vec<_> = files.iter().map(|(_, p)| p.clone()).collect();
    gw.store(&paths).await;
    let (one, two) = (files[0].0.study_uid.clone(), files[2].0.study_uid.clone());
    let facility = gw.setup.facility.id;

    let index = gw.setup.index().await;
    index
        .set_policy(
            facility,
            &RetentionPolicy {
                set_by: SetBy::Operator,
                modality: None,
                label: None,
                period_days: 30,
                counted_from: CountedFrom::Receipt,
                notice_days: 7,
                grace_days: 14,
                action: RetentionAction::HidePurge,
            },
            gateway::db::now_millis(),
        )
        .await
        .unwrap();
    // The clock starts when the later of the two studies arrived.
    let mut received = 0;
    for study in [&one, &two] {
        let life = index.study_life(facility, study).await.unwrap().unwrap();
        received = received.max(life.received_at);
    }
    let used_before = index.quota(facility).await.unwrap().unwrap().stored_bytes;
    let clock = Arc::new(ManualClock::at(received));
    let audit = gateway::app::start_audit(&gw.setup.config, &index).unwrap();
    let blobs = gateway::blobs::BlobStore::open(&gw.setup.config.data_dir.join("blobs")).unwrap();
    let job = Lifecycle::new(index.clone(), blobs, audit.clone(), clock.clone());

    clock.advance_days(22);
    assert_eq!(
        job.run_once().await.unwrap(),
        RunReport::default(),
        "day 22: nothing yet"
    );
    clock.advance_days(1);
    let report = job.run_once().await.unwrap();
    assert_eq!(report.noticed, 2, "day 23: notices");

    // The facility sees its notices and answers "keep" for study two over HTTPS.
    let client = gw.client();
    let api = format!("https://localhost:{}/api/v1", gw.https_port);
    let (status, login) = json(
        client
            .post(format!("{api}/login"))
            .json(&serde_json::json!({"username": DOC_A, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["token"].as_str().unwrap().to_string();
    let (status, notices) = json(
        client
            .get(format!("{api}/lifecycle"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{notices}");
    let listed: Vec<&str> = notices["studies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["study_uid"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{notices}");
    assert!(listed.contains(&one.as_str()) && listed.contains(&two.as_str()));
    assert_eq!(notices["studies"][0]["state"], "expiring");
    assert!(notices["studies"][0]["hide_at"].is_string(), "{notices}");
    let (status, kept) = json(
        client
            .post(format!("{api}/studies/{two}/lifecycle"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"answer": "keep", "days": 90}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["state"], "active");
    // A clinician may not delete or restore.
    let refused = client
        .post(format!("{api}/studies/{one}/lifecycle"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"answer": "expire"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    clock.advance_days(7);
    let report = job.run_once().await.unwrap();
    assert_eq!((report.hidden, report.purged), (1, 0), "day 30: {report:?}");
    let life = index.study_life(facility, &one).await.unwrap().unwrap();
    assert_eq!(life.state, LifecycleState::Hidden);

    // Hidden: neither found nor retrieved; the kept study still is.
    let qido = |study: &str| {
        let client = client.clone();
        let url = format!("{}/studies?StudyInstanceUID={study}", gw.base());
        async move {
            let (status, body) = json(
                client
                    .get(url)
                    .basic_auth(DOC_A, Some(PASSWORD))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body.as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(qido(&one).await, 0, "a hidden study is not found");
    assert_eq!(qido(&two).await, 1);
    let wado = client
        .get(format!("{}/studies/{one}", gw.base()))
        .basic_auth(DOC_A, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(wado.status(), StatusCode::NOT_FOUND, "nor retrieved");

    // Restored by the facility admin (here through the job's own answer), found again.
    let restored = job
        .answer(facility, &one, Answer::Restore(Some(10)), "admin")
        .await
        .unwrap();
    assert_eq!(restored, Some(LifecycleState::Active));
    assert_eq!(qido(&one).await, 1, "restored");

    // Kept 10 days: notice at day 33, hidden at 40, purged at 54.
    clock.advance_days(3);
    assert_eq!(job.run_once().await.unwrap().noticed, 1, "day 33");
    clock.advance_days(7);
    assert_eq!(job.run_once().await.unwrap().hidden, 1, "day 40");
    clock.advance_days(13);
    assert_eq!(job.run_once().await.unwrap().purged, 0, "day 53: in grace");
    clock.advance_days(1);
    let report = job.run_once().await.unwrap();
    assert_eq!(report.purged, 1, "day 54: purged");
    assert!(report.bytes_freed > 0);

    assert!(index.study_life(facility, &one).await.unwrap().is_none());
    let tombstone = index.tombstone(facility, &one).await.unwrap().unwrap();
    assert_eq!(
        (tombstone.instances, tombstone.reason.as_str()),
        (2, "retention")
    );
    let used_after = index.quota(facility).await.unwrap().unwrap().stored_bytes;
    assert_eq!(used_after, used_before - report.bytes_freed, "usage down");
    let blobs_left: Vec<_> = walk(&gw.setup.config.data_dir.join("blobs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&one))
        .collect();
    assert!(blobs_left.is_empty(), "blobs gone: {blobs_left:?}");
    let events = kinds(&index, facility).await;
    for kind in ["expiring", "hidden", "restored", "purged"] {
        assert!(
            events.iter().any(|(k, s)| k == kind && *s == one),
            "{kind} in the feed: {events:?}"
        );
    }
    assert!(
        events.iter().any(|(k, s)| k == "kept" && *s == two),
        "{events:?}"
    );
    audit.shutdown(std::time::Duration::from_secs(5)).await;
    let trail = gateway::audit::search(
        &index,
        &gateway::audit::AuditFilter {
            facility_id: Some(facility),
            kind: Some(gateway::audit::EventKind::InstancesDeleted),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        trail.iter().any(|e| e.event.detail.contains("purged")),
        "the purge is audited: {trail:?}"
    );

    // A late re-send of the purged study is refused, with the reason.
    let out = common::dcmtk_async(
        "storescu",
        common::args(&[
            "-v",
            "-aet",
            common::PLAIN_AE,
            "-aec",
            common::GATEWAY_AE,
            "127.0.0.1",
            &gw.plain_port.to_string(),
            &paths[0].display().to_string(),
        ]),
    )
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Status: 0x124"), "refused: {said}");
    assert!(
        index.study_life(facility, &one).await.unwrap().is_none(),
        "not stored again"
    );
    index.close().await;
    gw.stop().await;
}
both_backends!(lifecycle_with_time_travel);

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
