//! The changes feed in the index (DESIGN.md "Changes feed"): which event each change
//! writes (new study, new series, more instances, replacement, deletion), one event
//! per study and kind per transaction, paging by seq, facilities kept apart,
//! concurrent writers never making a reader skip an event, and a C-STORE through the
//! real ingest path giving a `stored` event.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::peers::{Via, ct_association, dataset_bytes, deidentified_ct, store_bytes};
use common::{Backend, Options, Setup, TestGateway, data};
use dimse::Status;
use gateway::config::DuplicatePolicy;
use gateway::db::Index;
use gateway::db::changes::Change;
use gateway::db::instances::{Indexed, InstanceRecord, SeriesFields, StudyFields};
use gateway::domain::{FacilityId, FacilityName, Uid};

fn uid(s: String) -> Uid {
    Uid::parse(&s).unwrap()
}

fn study(n: u32) -> String {
    format!("1.2.826.0.1.3680043.10.1.{n}")
}

fn series(n: u32) -> String {
    format!("1.2.826.0.1.3680043.10.2.{n}")
}

/// A minimal index record: instance `sop` of series `se` of study `st`.
fn record(facility: FacilityId, st: u32, se: u32, sop: u32) -> InstanceRecord {
    InstanceRecord {
        facility,
        sop_instance_uid: uid(format!("1.2.826.0.1.3680043.10.3.{sop}")),
        sop_class_uid: uid(data::CT.to_string()),
        study_uid: uid(study(st)),
        series_uid: uid(series(se)),
        transfer_syntax: uid(data::EXPLICIT_LE.to_string()),
        instance_number: None,
        number_of_frames: None,
        size_bytes: 100,
        sha256: format!("{sop:064}"),
        blob_key: format!("test/{sop}"),
        calling_ae: "TEST".into(),
        received_at: 0,
        study: StudyFields::default(),
        series: SeriesFields {
            modality: Some("CT".into()),
            ..SeriesFields::default()
        },
    }
}

/// Every event of a facility after `after`.
async fn all_after(index: &Index, facility: FacilityId, after: i64) -> Vec<Change> {
    index.changes(facility, after, 1000).await.unwrap().changes
}

/// (kind, study, series, instances, series count) of each event.
fn summary(changes: &[Change]) -> Vec<(String, String, Option<String>, i64, i64)> {
    changes
        .iter()
        .map(|c| {
            (
                c.kind.clone(),
                c.study_uid.clone(),
                c.series_uid.clone(),
                c.instances,
                c.series,
            )
        })
        .collect()
}

fn ev(
    kind: &str,
    st: u32,
    se: Option<u32>,
    instances: i64,
    n_series: i64,
) -> (String, String, Option<String>, i64, i64) {
    (kind.into(), study(st), se.map(series), instances, n_series)
}

async fn batch(index: &Index, records: &[InstanceRecord]) {
    let refs: Vec<&InstanceRecord> = records.iter().collect();
    for r in index.insert_batch(&refs).await.unwrap() {
        assert!(matches!(r, Indexed::New(_)), "{r:?}");
    }
}

async fn each_change_writes_its_event(backend: Backend) {
    let setup = Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let f = setup.facility.id;
    assert!(all_after(&index, f, 0).await.is_empty());

    // A new study, instance by instance.
    assert!(matches!(
        index.insert_instance(&record(f, 1, 1, 1)).await.unwrap(),
        Indexed::New(_)
    ));
    // Two more instances of that series in one transaction: one `updated`.
    batch(&index, &[record(f, 1, 1, 2), record(f, 1, 1, 3)]).await;
    // A new series and one more instance of the old one, together.
    batch(
        &index,
        &[record(f, 1, 2, 4), record(f, 1, 2, 5), record(f, 1, 1, 6)],
    )
    .await;
    // A new study of two series and three instances in one transaction: one `stored`.
    batch(
        &index,
        &[record(f, 2, 3, 7), record(f, 2, 3, 8), record(f, 2, 4, 9)],
    )
    .await;
    let got = all_after(&index, f, 0).await;
    assert_eq!(
        summary(&got),
        vec![
            ev("stored", 1, Some(1), 1, 1),
            ev("updated", 1, Some(1), 3, 1),
            ev("series-added", 1, Some(2), 6, 2),
            ev("updated", 1, Some(1), 6, 2),
            ev("stored", 2, None, 3, 2),
        ]
    );
    let seqs: Vec<i64> = got.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "per facility, from 1, without gaps");
    let now = gateway::db::now_millis();
    assert!(
        got.iter().all(|c| (now - 60_000..=now).contains(&c.at)),
        "{got:?}"
    );

    // Refused and duplicate instances write nothing.
    assert_eq!(
        index.insert_instance(&record(f, 1, 1, 1)).await.unwrap(),
        Indexed::Exists
    );
    index.set_quota(f, Some(0)).await.unwrap();
    assert_eq!(
        index.insert_instance(&record(f, 5, 5, 50)).await.unwrap(),
        Indexed::OverQuota
    );
    index.set_quota(f, None).await.unwrap();
    assert!(all_after(&index, f, 5).await.is_empty());

    // A replacement is an update, also of a study it is the only instance of.
    let replaced = InstanceRecord {
        size_bytes: 50,
        ..record(f, 1, 1, 2)
    };
    assert!(matches!(
        index.replace_instance(&replaced).await.unwrap(),
        Indexed::New(_)
    ));
    assert!(matches!(
        index.insert_instance(&record(f, 3, 5, 10)).await.unwrap(),
        Indexed::New(_)
    ));
    let lone = InstanceRecord {
        size_bytes: 70,
        ..record(f, 3, 5, 10)
    };
    assert!(matches!(
        index.replace_instance(&lone).await.unwrap(),
        Indexed::New(_)
    ));
    // Deletion, once.
    let uid1 = uid(study(1));
    assert!(index.soft_delete_study(f, &uid1).await.unwrap());
    assert!(!index.soft_delete_study(f, &uid1).await.unwrap());
    assert!(!index.soft_delete_study(f, &uid(study(99))).await.unwrap());
    let got = all_after(&index, f, 5).await;
    assert_eq!(
        summary(&got),
        vec![
            ev("updated", 1, Some(1), 6, 2),
            ev("stored", 3, Some(5), 1, 1),
            ev("updated", 3, Some(5), 1, 1),
            ev("deleted", 1, None, 6, 2),
        ]
    );
    assert_eq!(got.iter().map(|c| c.seq).collect::<Vec<_>>(), [6, 7, 8, 9]);
    // The feed is append-only.
    let pool = sqlx::AnyPool::connect(&setup.config.database_url())
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE changes SET kind = 'stored' WHERE seq = 9")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "an event was rewritten");
    pool.close().await;
    index.close().await;
}
both_backends!(each_change_writes_its_event);

/// Pages by `after`/`limit`; another facility has its own numbering and sees none of
/// these events.
async fn pages_and_facilities(backend: Backend) {
    let setup = Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let f = setup.facility.id;
    let other = index
        .create_facility(&FacilityName::parse("other-clinic").unwrap(), true)
        .await
        .unwrap()
        .id;
    for n in 1..=25 {
        index.insert_instance(&record(f, n, n, n)).await.unwrap();
    }
    index
        .insert_instance(&record(other, 100, 100, 100))
        .await
        .unwrap();
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = index.changes(f, after, 10).await.unwrap();
        assert_eq!(page.latest, 25);
        pages.push((page.changes.len(), page.more));
        let Some(last) = page.changes.last() else {
            break;
        };
        after = last.seq;
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, [(10, true), (10, true), (5, false)]);
    assert_eq!(after, 25);
    let page = index.changes(f, 25, 10).await.unwrap();
    assert!(page.changes.is_empty() && !page.more);
    let page = index.changes(f, 24, 1).await.unwrap();
    assert_eq!((page.changes[0].seq, page.more), (25, false));
    let theirs = all_after(&index, other, 0).await;
    assert_eq!(summary(&theirs), vec![ev("stored", 100, Some(100), 1, 1)]);
    assert_eq!(theirs[0].seq, 1, "each facility counts from 1");
    let mine = all_after(&index, f, 0).await;
    assert!(mine.iter().all(|c| c.study_uid != study(100)));
    index.close().await;
}
both_backends!(pages_and_facilities);

/// Several writers commit concurrently while a reader pages with a small limit: every
/// page starts right after the reader's cursor and counts up by one (a seq visible
/// before a smaller one commits would show as a jump), and the pages together hold
/// every event exactly once.
async fn concurrent_writers_never_make_a_reader_skip(backend: Backend) {
    const WRITERS: u32 = 4;
    const BATCHES: u32 = 25;
    let setup = Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let f = setup.facility.id;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (index, done) = (index.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: Vec<Change> = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let after = seen.last().map_or(0, |c| c.seq);
                let page = index.changes(f, after, 7).await.unwrap();
                for (i, c) in page.changes.iter().enumerate() {
                    assert_eq!(
                        c.seq,
                        after + 1 + i as i64,
                        "skipped past a seq after {after}"
                    );
                }
                let empty = page.changes.is_empty();
                seen.extend(page.changes);
                if finished && empty {
                    return seen;
                }
                if empty {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let index = index.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                // Each batch: a new study (two instances) and one more instance of
                // the writer's first study.
                let n = 1000 + w * 100 + b;
                let first = 1000 + w * 100;
                let mut records = vec![record(f, n, n, n * 10), record(f, n, n, n * 10 + 1)];
                if b > 0 {
                    records.push(record(f, first, first, n * 10 + 2));
                }
                let refs: Vec<&InstanceRecord> = records.iter().collect();
                index.insert_batch(&refs).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let expected = (WRITERS * BATCHES + WRITERS * (BATCHES - 1)) as i64;
    assert_eq!(seen.len() as i64, expected);
    let stored: BTreeSet<&str> = seen
        .iter()
        .filter(|c| c.kind == "stored")
        .map(|c| c.study_uid.as_str())
        .collect();
    assert_eq!(stored.len() as u32, WRITERS * BATCHES);
    assert_eq!(all_after(&index, f, 0).await, seen);
    index.close().await;
}
both_backends!(concurrent_writers_never_make_a_reader_skip);

/// C-STOREs through the real ingest path (and the group-committing writer) write
/// `stored`, then `series-added`; a replacement under the `replace` policy `updated`.
async fn c_store_writes_events(backend: Backend) {
    let options = Options {
        duplicate_policy: DuplicatePolicy::Replace,
        ..Options::default()
    };
    let gw = TestGateway::spawn_with(backend, options).await;
    let index = gw.index().await;
    let f = gw.setup.facility.id;
    let first = deidentified_ct(0);
    let second_series = deidentified_ct(3); // same study (n % 3), its own series
    assert_eq!(first.study_uid, second_series.study_uid);
    let mut scu = ct_association(&gw, Via::Tls).await;
    for spec in [&first, &second_series] {
        let rsp = store_bytes(&mut scu, &spec.sop_uid, &dataset_bytes(spec)).await;
        assert_eq!(rsp.status, Status::Success);
    }
    let changed = data::Spec {
        seed: first.seed.wrapping_add(1),
        ..first.clone()
    };
    let rsp = store_bytes(&mut scu, &changed.sop_uid, &dataset_bytes(&changed)).await;
    assert_eq!(rsp.status, Status::Success);
    scu.release().await.unwrap();
    // Each C-STORE is answered after its transaction committed.
    let got = all_after(&index, f, 0).await;
    let kinds: Vec<(&str, &str, Option<&str>, i64)> = got
        .iter()
        .map(|c| {
            (
                c.kind.as_str(),
                c.study_uid.as_str(),
                c.series_uid.as_deref(),
                c.instances,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "stored",
                first.study_uid.as_str(),
                Some(first.series_uid.as_str()),
                1
            ),
            (
                "series-added",
                first.study_uid.as_str(),
                Some(second_series.series_uid.as_str()),
                2
            ),
            (
                "updated",
                first.study_uid.as_str(),
                Some(first.series_uid.as_str()),
                2
            ),
        ]
    );
    index.close().await;
    gw.stop().await;
}
both_backends!(c_store_writes_events);

/// `pacs-gateway changes FACILITY`: JSON lines and a table, paged, clear errors.
async fn the_operator_cli_reads_the_feed(backend: Backend) {
    let setup = Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let f = setup.facility.id;
    for n in 1..=3 {
        index.insert_instance(&record(f, n, n, n)).await.unwrap();
    }
    index.close().await;
    let config = setup.dir.path().join("cli.toml");
    let mut text = format!("data_dir = {:?}\n", setup.config.data_dir);
    if let Some(url) = &setup.config.database_url {
        text += &format!("database_url = {url:?}\n");
    }
    std::fs::write(&config, text).unwrap();
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pacs-gateway"));
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG");
        command.output().expect("run pacs-gateway")
    };
    let out = cli(&["changes", common::FACILITY, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["kind"], "stored");
    assert_eq!(lines[2]["study_uid"], study(3));
    let out = cli(&["changes", common::FACILITY, "--after", "1", "--limit", "1"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&study(2)) && !stdout.contains(&study(3)),
        "{stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--after 2"), "{stderr}");
    let out = cli(&["changes", "no-such"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no facility named no-such"));
    let out = cli(&["changes", common::FACILITY, "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}
both_backends!(the_operator_cli_reads_the_feed);

/// What the feed costs the index writer: instances per second through
/// `insert_batch` in batches of 64 (8 studies of 8 instances, as the group-committing
/// writer sees under load). Not a pass/fail test: run with `--ignored --nocapture`
/// on this branch and on one without the feed to compare.
async fn ingest_cost(backend: Backend) {
    const BATCHES: u32 = 60;
    let setup = Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let f = setup.facility.id;
    let mut sop = 0;
    let started = std::time::Instant::now();
    for b in 0..BATCHES {
        let mut records = Vec::new();
        for s in 0..8 {
            // Every other batch adds to the previous batch's studies.
            let st = 10_000 + (b / 2) * 8 + s;
            for _ in 0..8 {
                sop += 1;
                records.push(record(f, st, st, sop));
            }
        }
        batch(&index, &records).await;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "ingest_cost {backend:?}: {} instances in {secs:.2}s = {:.0}/s",
        sop,
        f64::from(sop) / secs
    );
    index.close().await;
}

mod ingest_cost {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a measurement, not a test"]
    async fn sqlite() {
        super::ingest_cost(crate::common::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a measurement, not a test"]
    async fn postgres() {
        if crate::common::postgres_base_url().is_none() {
            eprintln!("SKIPPED ingest_cost::postgres: PACS_TEST_DATABASE_URL is not set");
            return;
        }
        super::ingest_cost(crate::common::Backend::Postgres).await;
    }
}
