//! The C-FIND benchmark's pieces, checked for correctness without timing: 2,000
//! generated instances bulk-loaded into a fresh index (SQLite, and PostgreSQL when
//! `PACS_TEST_DATABASE_URL` is set) have the right row counts and aggregates, and a
//! gateway serving that index answers every kind of benchmark query, over a real
//! association with the clinician's password, with exactly the matches the
//! generator predicts.

use std::collections::BTreeMap;

use sqlx::any::install_default_drivers;
use sqlx::{AnyPool, Connection, Row};
use tests::findbench::data::{Dataset, Spec};
use tests::findbench::load::load;
use tests::findbench::peer::{BenchGateway, GATEWAY_AE, PASSWORD, Requestor, USER, add_clinician};
use tests::findbench::queries::{Find, Kind, picks};

const INSTANCES: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("index.db").display()
    );
    check(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(base) = std::env::var("PACS_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!("SKIPPED find_bench::postgres: PACS_TEST_DATABASE_URL is not set");
        return;
    };
    let name = format!(
        "pacs_find_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let dir = tempfile::tempdir().unwrap();
    check(&format!("{prefix}/{name}"), dir.path()).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn check(url: &str, work: &std::path::Path) {
    let data = Dataset::generate(Spec::new(INSTANCES));
    let report = load(url, &data, |_| {}).await.expect("bulk load");
    assert_eq!(report.instances, INSTANCES);
    check_rows(url, &data).await;

    add_clinician(url, report.facility_ids[0]).await.unwrap();
    let gateway = BenchGateway::start(url, &data.facilities[0].name, work)
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{}", gateway.port);
    let mut requestor = Requestor::connect(&addr, GATEWAY_AE, Some((USER, PASSWORD)))
        .await
        .expect("the clinician is admitted");
    let mut non_empty = BTreeMap::new();
    for find in finds(&data) {
        let expected = find.expected(&data, 0);
        let got = requestor.uids(&find).await.expect("C-FIND succeeds");
        assert_eq!(got, expected, "matches of {find:?}");
        if !expected.is_empty() {
            *non_empty.entry(find.kind()).or_insert(0) += 1;
        }
    }
    for kind in Kind::ALL {
        assert!(
            non_empty.get(&kind).copied().unwrap_or(0) > 0,
            "no query of kind {kind:?} had a match: the check would prove nothing"
        );
    }
    requestor.release().await.unwrap();
    gateway.stop().await.unwrap();
}

/// The benchmark's own picks, plus queries built from existing studies (so that the
/// date-range kind has matches at this small size) and UIDs of other facilities
/// (which must match nothing).
fn finds(data: &Dataset) -> Vec<Find> {
    let mut out: Vec<Find> = Kind::ALL
        .iter()
        .flat_map(|&kind| {
            picks(
                data,
                0,
                kind,
                if kind == Kind::Universal { 1 } else { 10 },
                7,
            )
        })
        .collect();
    let mine = data.studies.iter().filter(|s| s.facility == 0);
    for study in mine.take(5) {
        out.push(Find::ModalityDates {
            modality: study.modalities()[0],
            from: study.date.clone(),
            to: study.date.clone(),
        });
        out.push(Find::Patient(data.patients[study.patient].id.clone()));
    }
    let theirs = data.studies.iter().filter(|s| s.facility != 0);
    for study in theirs.take(3) {
        assert!(
            Find::StudyUid(study.uid.clone())
                .expected(data, 0)
                .is_empty()
        );
        out.push(Find::StudyUid(study.uid.clone()));
        out.push(Find::Images {
            study: study.uid.clone(),
            series: study.series[0].uid.clone(),
        });
    }
    out
}

async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get(0)
        .unwrap()
}

async fn check_rows(url: &str, data: &Dataset) {
    install_default_drivers();
    let pool = AnyPool::connect(url).await.unwrap();
    let series: usize = data.studies.iter().map(|s| s.series.len()).sum();
    let modalities: usize = data.studies.iter().map(|s| s.modalities().len()).sum();
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM facilities").await, 5);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM studies").await, 100);
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM series").await,
        series as i64
    );
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM instances").await, 2000);
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM study_modalities").await,
        modalities as i64
    );
    for (what, sql) in [
        (
            "studies.num_instances",
            "SELECT COUNT(*) FROM studies s WHERE s.num_instances <> (SELECT COUNT(*) FROM instances i \
             WHERE i.facility_id = s.facility_id AND i.study_uid = s.study_uid)",
        ),
        (
            "studies.num_series",
            "SELECT COUNT(*) FROM studies s WHERE s.num_series <> (SELECT COUNT(*) FROM series r \
             WHERE r.facility_id = s.facility_id AND r.study_uid = s.study_uid)",
        ),
        (
            "series.num_instances",
            "SELECT COUNT(*) FROM series r WHERE r.num_instances <> (SELECT COUNT(*) FROM instances i \
             WHERE i.facility_id = r.facility_id AND i.series_uid = r.series_uid)",
        ),
        (
            "study_modalities",
            "SELECT COUNT(*) FROM study_modalities m JOIN studies s ON s.facility_id = m.facility_id \
             AND s.study_uid = m.study_uid WHERE m.study_date <> s.study_date",
        ),
        (
            "instance study",
            "SELECT COUNT(*) FROM instances i JOIN series r ON r.facility_id = i.facility_id \
             AND r.series_uid = i.series_uid WHERE r.study_uid <> i.study_uid",
        ),
    ] {
        assert_eq!(count(&pool, sql).await, 0, "{what} disagrees with the rows");
    }
    let rows = sqlx::query(
        "SELECT s.study_uid, f.name, s.patient_id, s.study_date, s.modalities, s.num_series, s.num_instances \
         FROM studies s JOIN facilities f ON f.id = s.facility_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let by_uid: BTreeMap<&str, _> = data.studies.iter().map(|s| (s.uid.as_str(), s)).collect();
    for row in rows {
        let uid: String = row.try_get(0).unwrap();
        let study = by_uid[uid.as_str()];
        let facility: String = row.try_get(1).unwrap();
        assert_eq!(facility, data.facilities[study.facility].name);
        let patient: String = row.try_get(2).unwrap();
        assert_eq!(patient, data.patients[study.patient].id);
        let date: String = row.try_get(3).unwrap();
        assert_eq!(date, study.date);
        let modalities: String = row.try_get(4).unwrap();
        assert_eq!(modalities, study.modalities().join("\\"));
        let num_series: i64 = row.try_get(5).unwrap();
        assert_eq!(num_series, study.series.len() as i64);
        let num_instances: i64 = row.try_get(6).unwrap();
        assert_eq!(num_instances, study.instances() as i64);
    }
    pool.close().await;
}
